"""The BARFI-style meta-gradient of channel coefficients (agents/learned_coefs.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rewardjax as rjx
from rewardjax.agents import learned_coefs, ppo
from rewardjax.types import stateless


def _problem(dtype):
  """A linear softmax policy over 3 actions, 64 samples, 3 channels."""
  k = jax.random.split(jax.random.PRNGKey(0), 5)
  obs = jax.random.normal(k[0], (64, 4), dtype)
  params = {"w": 0.3 * jax.random.normal(k[1], (4, 3), dtype), "b": jnp.zeros(3, dtype)}
  actions = jax.random.randint(k[2], (64,), 0, 3)

  def log_prob_fn(p):
    logits = obs @ p["w"] + p["b"]
    return jax.nn.log_softmax(logits)[jnp.arange(64), actions]

  adv_c = jax.random.normal(k[3], (64, 3), dtype)
  log_prob_old = log_prob_fn(params) + 0.05 * jax.random.normal(k[4], (64,), dtype)
  return params, log_prob_fn, log_prob_old, adv_c


def test_meta_gradient_equals_finite_differences_of_the_lookahead_objective():
  with jax.enable_x64(True):
    params, log_prob_fn, log_prob_old, adv_c = _problem(jnp.float64)
    coefs = jnp.asarray([1.0, 0.5, -0.7], jnp.float64)
    objective = lambda c: learned_coefs.lookahead_objective(
        c, params, log_prob_fn, log_prob_old, adv_c, 0, 0.5)
    g = learned_coefs.meta_gradient(coefs, params, log_prob_fn, log_prob_old, adv_c, 0, 0.5)
    eps = 1e-4
    fd = np.array([(objective(coefs + eps * e) - objective(coefs - eps * e)) / (2 * eps)
                   for e in np.eye(3)])
    assert np.all(np.abs(fd) > 1e-4)          # a non-trivial gradient in every direction
    np.testing.assert_allclose(g, fd, rtol=1e-2)
    # The closed form (L is linear in φ): α ⟨∇ surrogate_c(θ), ∇J(θ')⟩, by hand.
    surrogate = lambda p, a: jnp.mean(jnp.exp(log_prob_fn(p) - log_prob_old) * a)
    blend = jax.grad(lambda p: surrogate(p, adv_c @ coefs))(params)
    updated = jax.tree.map(lambda p, d: p + 0.5 * d, params, blend)
    grad_j = jax.grad(lambda p: surrogate(p, adv_c[:, 0]))(updated)
    for c in range(3):
      g_c = jax.grad(lambda p: surrogate(p, adv_c[:, c]))(params)
      dot = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g_c), jax.tree.leaves(grad_j)))
      np.testing.assert_allclose(g[c], 0.5 * dot, rtol=1e-6)


def test_meta_step_raises_an_aligned_channel_and_lowers_an_opposed_one():
  params, log_prob_fn, log_prob_old, adv_c = _problem(jnp.float32)
  primary = adv_c[:, 0]
  adv_c = jnp.stack([primary, primary, -primary], axis=1)    # helpful and harmful copies
  tx = optax.sgd(10.0)
  state = learned_coefs.meta_init(tx, jnp.ones(3))
  learned = jnp.asarray([False, True, True])
  new, g = learned_coefs.meta_step(tx, state, learned, (0.0, 1.02), params, log_prob_fn,
                                   log_prob_old, adv_c, 0, inner_lr=0.5)
  assert g[0] == 0 and new.coefs[0] == 1.0                  # the primary is not learned
  assert g[1] > 0 and g[2] < 0 and np.isclose(g[1], -g[2])
  assert new.coefs[1] == np.float32(1.02)                    # raised, kept within the bounds
  np.testing.assert_allclose(new.coefs[2], 1.0 + 10.0 * g[2], rtol=1e-6)   # lowered by β·g
  # prior_decay λ pulls the stepped coefficient back toward where it started.
  pulled, _ = learned_coefs.meta_step(tx, state, learned, (-5.0, 5.0), params, log_prob_fn,
                                      log_prob_old, adv_c, 0, inner_lr=0.5, prior_decay=0.25)
  np.testing.assert_allclose(pulled.coefs[1:], 1.0 + 0.75 * 10.0 * g[1:], rtol=1e-5)


def _cartpole_with_heuristics():
  env, env_params = rjx.envs.make("CartPole-v1")
  tilt = lambda b: jnp.abs(b.next_obs[..., 2]) / 0.21      # 0 upright … 1 at the 12° limit
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()),
      # harmful: pays for a tilted pole and costs time upright, so falling at once pays best
      harmful=rjx.rewards.channel(stateless(lambda b: 2.0 * (tilt(b) - 1.0))),
      # helpful: pays for an upright pole
      helpful=rjx.rewards.channel(stateless(lambda b: 1.0 - tilt(b))))
  return env, env_params, rewards


def test_ppo_learns_to_drop_a_harmful_channel_and_keep_a_helpful_one():
  env, env_params, rewards = _cartpole_with_heuristics()
  config = ppo.PPOConfig(total_timesteps=40 * 512, learn_coefs=("harmful", "helpful"))
  out = jax.jit(ppo.make_train(config, env, env_params, rewards))(jax.random.PRNGKey(0))
  m = jax.device_get(out.metrics)
  assert m["coef/harmful"][-1] < 0.5 < 1.5 < m["coef/helpful"][-1]
  assert np.all(np.diff(m["coef/harmful"][:10]) < 0)          # from the first updates on
  np.testing.assert_array_equal(out.runner_state.meta.coefs[0], 1.0)   # the primary stays


def test_learned_coefficients_name_their_channels():
  env, env_params, rewards = _cartpole_with_heuristics()
  for learn, message in ((("novelty",), "no channel named 'novelty'"),
                         (("extrinsic",), "cannot be learned against itself")):
    with pytest.raises(ValueError, match=message):
      ppo.make_train(ppo.PPOConfig(learn_coefs=learn), env, env_params, rewards)

"""The BARFI-style meta-gradient of channel coefficients (agents/learned_coefs.py)."""

import jax
import jax.numpy as jnp
import numpy as np


from rewardjax.agents import learned_coefs


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
  coefs = jnp.ones(3)
  learned = jnp.asarray([False, True, True])
  new, g = learned_coefs.meta_step(coefs, learned, params, log_prob_fn, log_prob_old, adv_c,
                                   0, inner_lr=0.5, meta_lr=10.0, max_step=0.05)
  assert g[0] == 0 and new[0] == 1.0                        # the primary is not learned
  assert g[1] > 0 and g[2] < 0 and np.isclose(g[1], -g[2])
  np.testing.assert_allclose(new[1:], [1.05, 0.95])          # steps clipped to ±0.05

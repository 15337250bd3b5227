"""Potential-based shaping: telescoping, terminal potentials, truncation, invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.envs import rollouts
from rewardjax.rewards import shaping
from rewardjax.types import Transition


def _transition(obs, next_obs, terminated, truncated=None):
  t = obs.shape[0]
  truncated = np.zeros(t, bool) if truncated is None else truncated
  return Transition(jnp.asarray(obs), jnp.zeros(t, jnp.int32), jnp.zeros(t),
                    jnp.asarray(next_obs), jnp.asarray(terminated), jnp.asarray(truncated))


def test_shaping_reward_hand_computed():
  f = shaping.shaping_reward(jnp.array([1.0, 2.0]), jnp.array([3.0, 5.0]),
                             jnp.array([False, True]), 0.9)
  np.testing.assert_allclose(f, [0.9 * 3.0 - 1.0, -2.0], rtol=1e-6)


def test_telescoping_sum_along_terminated_episode():
  gamma = 0.97
  rng = np.random.default_rng(0)
  states = rng.normal(size=(11, 3)).astype(np.float32)     # s_0 .. s_10, s_10 terminal
  phi = lambda s: jnp.sum(jnp.sin(s)) + 2.0
  term = np.zeros(10, bool)
  term[-1] = True
  module = rjx.rewards.potential_shaping(phi, gamma)
  f = np.asarray(module.reward(None, _transition(states[:-1], states[1:], term)))
  discounted = np.sum(gamma**np.arange(10) * f)
  np.testing.assert_allclose(discounted, -float(phi(states[0])), rtol=1e-5)


def test_telescoping_sum_without_termination_keeps_last_potential():
  gamma = 0.9
  states = np.linspace(0, 1, 6, dtype=np.float32)[:, None]
  phi = lambda s: 3.0 * s[0]
  module = rjx.rewards.potential_shaping(phi, gamma)
  f = np.asarray(module.reward(None, _transition(states[:-1], states[1:], np.zeros(5, bool))))
  expected = gamma**5 * phi(states[-1]) - phi(states[0])
  np.testing.assert_allclose(np.sum(gamma**np.arange(5) * f), expected, rtol=1e-5)


def test_terminal_potential_contributes_zero():
  # Φ is huge at the terminal observation; a terminated step must ignore it.
  phi = lambda s: s[0]
  module = rjx.rewards.potential_shaping(phi, 0.99)
  obs = np.array([[1.0]], np.float32)
  next_obs = np.array([[1000.0]], np.float32)
  f_term = module.reward(None, _transition(obs, next_obs, np.array([True])))
  f_trunc = module.reward(None, _transition(obs, next_obs, np.array([False]), np.array([True])))
  np.testing.assert_allclose(f_term, [-1.0])
  np.testing.assert_allclose(f_trunc, [0.99 * 1000.0 - 1.0])


def test_truncation_uses_true_final_observation():
  env, params = rjx.envs.make("CartPole-v1", max_steps_in_episode=5)
  traj = jax.jit(rollouts.random_rollout, static_argnums=(0, 3, 4))(
      env, params, jax.random.PRNGKey(1), 12, 3)
  assert bool(traj.truncated.any())
  phi = lambda s: s[0] + 10.0 * s[2]
  module = rjx.rewards.potential_shaping(phi, 0.9)
  f = np.asarray(module.reward(None, traj))
  assert f.shape == (12, 3)
  phi_b = jax.vmap(jax.vmap(phi))
  expected = 0.9 * phi_b(traj.next_obs) * (1 - traj.terminated) - phi_b(traj.obs)
  np.testing.assert_allclose(f, expected, rtol=1e-5, atol=1e-6)
  # The true next observation differs from the auto-reset one the env returned:
  # the next step's obs is a fresh reset state at truncation.
  trunc = np.asarray(traj.truncated[:-1])
  reset_obs = np.asarray(traj.obs[1:])[trunc]
  final_obs = np.asarray(traj.next_obs[:-1])[trunc]
  assert not np.allclose(reset_obs, final_obs)


def _value_iteration(p, r, terminal, gamma, iters=3000):
  """Q* for P[s, a, s'], R[s, a, s']; transitions into terminal states stop."""
  n_s, n_a, _ = p.shape
  q = np.zeros((n_s, n_a))
  cont = (~terminal).astype(float)
  for _ in range(iters):
    v = q.max(1) * cont
    q = np.einsum("sat,sat->sa", p, r + gamma * v[None, None, :])
  return q


@pytest.mark.parametrize("seed", range(5))
def test_optimal_policy_invariant_under_random_potentials(seed):
  rng = np.random.default_rng(seed)
  n_s, n_a, gamma = 12, 3, 0.9
  p = rng.dirichlet(np.ones(n_s) * 0.3, size=(n_s, n_a))
  r = rng.normal(size=(n_s, n_a, n_s))
  terminal = np.zeros(n_s, bool)
  terminal[[3, 7]] = True
  q = _value_iteration(p, r, terminal, gamma)

  potentials = rng.normal(scale=5.0, size=n_s).astype(np.float32)
  module = rjx.rewards.potential_shaping(lambda s: jnp.sum(s * potentials), gamma)
  eye = np.eye(n_s, dtype=np.float32)
  s, a, s2 = np.meshgrid(np.arange(n_s), np.arange(n_a), np.arange(n_s), indexing="ij")
  batch = Transition(eye[s], a, np.zeros(s.shape, np.float32), eye[s2],
                     terminal[s2], np.zeros(s.shape, bool))
  f = np.asarray(module.reward(None, batch))
  q_shaped = _value_iteration(p, r + f, terminal, gamma)

  live = ~terminal
  np.testing.assert_array_equal(q.argmax(1)[live], q_shaped.argmax(1)[live])
  # Stronger: Q_shaped(s, a) = Q*(s, a) − Φ(s) (Ng et al. 1999).
  np.testing.assert_allclose(q_shaped[live], (q - potentials[:, None])[live], atol=1e-4)


def test_potential_output_shape_is_checked():
  module = rjx.rewards.potential_shaping(lambda s: jnp.stack([s[0], s[1]]), 0.99)
  obs = np.zeros((4, 2), np.float32)
  with pytest.raises(ValueError, match="scalar"):
    module.reward(None, _transition(obs, obs, np.zeros(4, bool)))


def test_channel_refuses_mismatched_gamma():
  module = rjx.rewards.potential_shaping(lambda s: s[0], 0.9)
  with pytest.raises(ValueError, match="gamma"):
    rjx.rewards.channel(module, gamma=0.99)
  assert rjx.rewards.channel(module).gamma == 0.9


def test_bad_gamma_rejected():
  with pytest.raises(ValueError, match="gamma"):
    rjx.rewards.potential_shaping(lambda s: s[0], 1.5)


def test_argument_and_shape_errors_are_named():
  with pytest.raises(TypeError, match="potential_shaping: potential_fn must be callable, got 3"):
    rjx.rewards.potential_shaping(3, 0.9)
  with pytest.raises(ValueError, match="gamma must be in"):
    rjx.rewards.potential_shaping(lambda s: s[0], 0.0)
  assert rjx.rewards.potential_shaping(lambda s: s[0], 1.0).gamma == 1.0   # γ = 1 is allowed
  with pytest.raises(ValueError) as e:
    shaping.shaping_reward(jnp.zeros(2), jnp.zeros(2), jnp.zeros(3, bool), 0.9)
  assert str(e.value) == ("shaping_reward: shapes differ: phi_tm1 (2,), phi_t (2,), "
                          "terminated_t (3,)")
  with pytest.raises(ValueError) as e:
    shaping.shaping_reward(jnp.zeros(2), jnp.zeros(3), jnp.zeros(3, bool), 0.9)
  assert "phi_tm1 (2,), phi_t (3,)" in str(e.value)
  obs = np.zeros((4, 2), np.float32)
  with pytest.raises(ValueError, match=r"got shape \(2,\) for observations of shape \(2,\)"):
    shaping.evaluate_potential(lambda s: s * 2.0, obs, 1)


def test_init_checks_the_potential_and_update_keeps_no_state():
  obs = np.zeros((4, 2), np.float32)
  batch = _transition(obs, obs, np.zeros(4, bool))
  wide = rjx.rewards.potential_shaping(lambda s: jnp.stack([s[0], s[1]]), 0.99)
  with pytest.raises(ValueError, match="scalar"):
    wide.init(jax.random.PRNGKey(0), batch)
  module = rjx.rewards.potential_shaping(lambda s: s[0], 0.99)
  state = module.init(jax.random.PRNGKey(0), batch)
  assert module.update(state, batch, jax.random.PRNGKey(1)) == (state, {})


def test_potentials_of_shape_one_and_integer_potentials():
  obs = np.arange(8, dtype=np.float32).reshape(4, 2)
  phi = shaping.evaluate_potential(lambda s: s[1:], obs, 1)          # shape (1,) per obs
  np.testing.assert_array_equal(phi, [1.0, 3.0, 5.0, 7.0])
  ints = shaping.evaluate_potential(lambda s: s[0].astype(jnp.int32), obs, 1)
  assert ints.dtype == jnp.float32
  np.testing.assert_array_equal(ints, [0.0, 2.0, 4.0, 6.0])

"""rewardjax.episodes: per-rollout episode statistics equal the per-step wrapper's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import episodes
from rewardjax.envs import rollouts
from rewardjax.envs import wrappers


def _wrapper_reference(env_id, num_envs, num_steps, key, **kwargs):
  """Steps ``EpisodeStatistics`` under random actions; returns rewards, dones and its info."""
  env, params = rjx.envs.make(env_id, **kwargs)
  env = wrappers.EpisodeStatistics(env)

  @jax.jit
  def roll(key):
    k0, k1 = jax.random.split(key)
    _, state = rollouts.reset_batch(env, params, k0, num_envs)

    def step(state, key):
      ka, ks = jax.random.split(key)
      a = rollouts.sample_actions(env, params, ka, num_envs)
      _, state, r, term, trunc, info = rollouts.step_batch(env, params, ks, state, a)
      return state, (r.astype(jnp.float32), term | trunc, info["episode_return"],
                     info["episode_length"], info["episode_count"])

    return jax.lax.scan(step, state, jax.random.split(k1, num_steps))[1]

  return roll(key)


@pytest.mark.parametrize("chunks", [1, 3])
def test_update_matches_episode_statistics_wrapper(chunks):
  # CartPole truncated at 9 steps: many episodes end, some by truncation, and
  # episodes straddle the rollout boundaries when the rollout is split in chunks.
  r, done, ret_ref, len_ref, count_ref = _wrapper_reference(
      "CartPole-v1", num_envs=5, num_steps=60, key=jax.random.PRNGKey(0),
      max_steps_in_episode=9)
  assert int(done.sum()) > 20
  state = episodes.init(5)
  for r_c, d_c, ret_c, len_c, count_c in zip(*(np.split(np.asarray(x), chunks) for x in
                                               (r, done, ret_ref, len_ref, count_ref))):
    state, eps = episodes.update(state, jnp.asarray(r_c), jnp.asarray(d_c))
    d_c = d_c.astype(bool)
    np.testing.assert_allclose(np.asarray(eps.episode_return)[d_c], ret_c[d_c], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(eps.episode_length)[d_c], len_c[d_c])
    np.testing.assert_allclose(state.last_return, ret_c[-1], rtol=1e-6)
    np.testing.assert_array_equal(state.last_length, len_c[-1])
    np.testing.assert_array_equal(state.count, count_c[-1])


def test_update_hand_computed():
  # One env, rewards 1..6, episodes end after steps 1 and 4; 2.5 carried in.
  state = episodes.EpisodeState(jnp.array([2.5]), jnp.array([3]), jnp.array([7.0]),
                                jnp.array([4]), jnp.array([1]))
  r = jnp.arange(1.0, 7.0)[:, None]
  done = jnp.array([0, 1, 0, 0, 1, 0], bool)[:, None]
  state, eps = episodes.update(state, r, done)
  assert float(eps.episode_return[1, 0]) == 2.5 + 1 + 2          # carried episode
  assert int(eps.episode_length[1, 0]) == 3 + 2
  assert float(eps.episode_return[4, 0]) == 3 + 4 + 5
  assert int(eps.episode_length[4, 0]) == 3
  assert float(state.running_return[0]) == 6.0 and int(state.running_length[0]) == 1
  assert float(state.last_return[0]) == 12.0 and int(state.last_length[0]) == 3
  assert int(state.count[0]) == 3


def test_metrics_nan_before_any_episode_then_carried():
  state = episodes.init(2)
  r = jnp.ones((4, 2))
  state, m = episodes.track(state, r, jnp.zeros((4, 2), bool))
  assert np.isnan(float(m["episode_return"])) and int(m["num_episodes"]) == 0
  # Env 0 ends an episode of length 6 (4 carried + 2) at step 1.
  done = jnp.zeros((4, 2), bool).at[1, 0].set(True)
  state, m = episodes.track(state, r, done)
  assert float(m["episode_return"]) == 6.0 and int(m["num_episodes"]) == 1
  assert float(m["episode_return_max"]) == 6.0
  # No episode ends: the last finished one is reported (never a made-up 0).
  state, m = episodes.track(state, r, jnp.zeros((4, 2), bool))
  assert float(m["episode_return"]) == 6.0 and int(m["num_episodes"]) == 0


def test_update_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match=r"\[T, N\]"):
    episodes.update(episodes.init(2), jnp.zeros((4, 2)), jnp.zeros((4, 3), bool))

"""rewardjax.envs: make(), gymnax 1.0 API, wrappers."""

import copy

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.envs import wrappers


# MNISTBandit downloads MNIST at construction; CI has no network.
OFFLINE_IDS = sorted(set(gymnax.registered_envs) - {"MNISTBandit-bsuite"})


@pytest.mark.parametrize("env_id", OFFLINE_IDS)
def test_every_gymnax_id_steps_with_six_values(env_id):
  env, params = rjx.envs.make(env_id)
  key = jax.random.PRNGKey(0)
  obs, state = env.reset(key, params)
  action = env.action_space(params).sample(key)
  out = jax.jit(env.step)(key, state, action, params)
  assert len(out) == 6
  obs2, _, reward, terminated, truncated, info = out
  assert obs2.shape == obs.shape
  assert info["final_observation"].shape == obs.shape
  assert jnp.shape(reward) == () and terminated.dtype == bool and truncated.dtype == bool


def test_kwargs_reach_constructor_and_params():
  env, params = rjx.envs.make("DeepSea-bsuite", size=7, max_steps_in_episode=3)
  assert env.size == 7 and params.max_steps_in_episode == 3
  obs, _ = env.reset(jax.random.PRNGKey(0), params)
  assert obs.shape == (7, 7)


def test_unknown_id_lists_close_matches():
  with pytest.raises(ValueError, match="CartPole-v1"):
    rjx.envs.make("Cartpole-v1")
  with pytest.raises(ValueError, match="bad keyword"):
    rjx.envs.make("CartPole-v1", no_such_argument=1)


def test_episode_statistics_match_manual_sum():
  env, params = rjx.envs.make("CartPole-v1", max_steps_in_episode=7)
  env = wrappers.EpisodeStatistics(env)
  key = jax.random.PRNGKey(3)
  obs, state = env.reset(key, params)
  step = jax.jit(env.step)
  total, ended = 0.0, []
  for i in range(30):
    key, k = jax.random.split(key)
    obs, state, r, term, trunc, info = step(k, state, i % 2, params)
    total += float(r)
    if bool(info["episode_done"]):
      ended.append((float(info["episode_return"]), int(info["episode_length"])))
      assert float(info["episode_return"]) == pytest.approx(total)
      total = 0.0
  assert ended and all(length <= 7 for _, length in ended)


def test_flatten_observation_and_deepcopy():
  env, params = rjx.envs.make("DeepSea-bsuite", size=4)
  env = wrappers.FlattenObservation(wrappers.EpisodeStatistics(env))
  obs, state = env.reset(jax.random.PRNGKey(0), params)
  assert obs.shape == (16,)
  out = env.step(jax.random.PRNGKey(1), state, 1, params)
  assert out[5]["final_observation"].shape == (16,)
  assert env.observation_space(params).shape == (16,)
  clone = copy.deepcopy(env)      # must not recurse through __getattr__
  assert clone.num_actions == 2
  assert isinstance(env.unwrapped, type(rjx.envs.make("DeepSea-bsuite")[0]))


def test_mask_observation_hides_entries_and_keeps_dynamics():
  env, params = rjx.envs.make("UmbrellaChain-bsuite", chain_length=4)
  masked = wrappers.MaskObservation(env, [1])
  key = jax.random.PRNGKey(0)
  obs, state = env.reset(key, params)
  m_obs, m_state = masked.reset(key, params)
  np.testing.assert_array_equal(m_obs, obs.at[1].set(0.0))
  for t in range(5):                        # crosses the episode end (auto-reset)
    k = jax.random.PRNGKey(t + 1)
    obs, state, r, te, tr, info = env.step(k, state, 1, params)
    m_obs, m_state, m_r, m_te, m_tr, m_info = masked.step(k, m_state, 1, params)
    # has_umbrella (entry 1) becomes 1 after action 1 in the real observation ...
    assert float(info["final_observation"][1]) == 1.0
    # ... and is hidden in the masked one; everything else is unchanged.
    np.testing.assert_array_equal(m_obs, obs.at[1].set(0.0))
    np.testing.assert_array_equal(m_info["final_observation"],
                                  info["final_observation"].at[1].set(0.0))
    assert float(m_r) == float(r) and bool(m_te) == bool(te) and bool(m_tr) == bool(tr)
  with pytest.raises(ValueError, match="out of range"):
    wrappers.MaskObservation(env, [3]).reset(key, params)
  with pytest.raises(ValueError, match="at least one"):
    wrappers.MaskObservation(env, [])


def test_progress_registry_and_potentials():
  spec = rjx.envs.progress_functions.get("mountaincar")
  p = spec.fn(jnp.array([0.5, 0.0]))
  np.testing.assert_allclose(p, [1.0, 1.0], atol=1e-5)
  p = spec.fn(jnp.array([-1.2, 0.0]))
  assert float(p[0]) == 0.0
  grid = jnp.zeros((5, 5)).at[2, 4].set(1.0)
  np.testing.assert_allclose(rjx.envs.progress_functions.deepsea_progress(grid), [0.5, 1.0])
  phi = rjx.envs.progress_functions.potential("deepsea", scale=2.0)
  np.testing.assert_allclose(phi(grid), 1.5)
  with pytest.raises(ValueError, match="mountaincar"):
    rjx.envs.progress_functions.get("mountain_car")

"""Tests for the DelayedReward wrapper (rewardjax.envs.delayed_reward)."""

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.envs import make
from rewardjax.envs.delayed_reward import DelayedReward
from rewardjax.envs.delayed_reward import DelayedRewardState
from rewardjax.envs.wrappers import EpisodeStatistics

NUM_ENVS = 8
NUM_STEPS = 150
MAX_STEPS = 20


def _rollout(env, params, key, num_envs=NUM_ENVS, num_steps=NUM_STEPS):
  """A jitted, vmapped random-action rollout; leaves are [num_steps, num_envs]."""

  def run(key):
    key_reset, key_roll = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_envs), params)

    def body(carry, key):
      obs, state = carry
      key_act, key_step = jax.random.split(key)
      action = jax.random.randint(key_act, (num_envs,), 0, 2)
      obs, state, reward, terminated, truncated, info = jax.vmap(
          env.step, in_axes=(0, 0, 0, None))(
              jax.random.split(key_step, num_envs), state, action, params)
      out = dict(reward=reward, terminated=terminated, truncated=truncated, obs=obs,
                 final_observation=info["final_observation"],
                 undelayed_reward=info.get("undelayed_reward", reward))
      return (obs, state), out

    (_, state), traj = jax.lax.scan(body, (obs, state), jax.random.split(key_roll, num_steps))
    return state, traj

  return jax.jit(run)(key)


def _env():
  env, params = make("CartPole-v1", max_steps_in_episode=MAX_STEPS)
  return env, DelayedReward(env), params


def test_pays_episode_sum_at_episode_end_only():
  _, env, params = _env()
  state, traj = _rollout(env, params, jax.random.PRNGKey(0))
  paid = np.asarray(traj["reward"], np.float64)
  raw = np.asarray(traj["undelayed_reward"], np.float64)
  done = np.asarray(traj["terminated"]) | np.asarray(traj["truncated"])
  assert paid.shape == raw.shape == done.shape == (NUM_STEPS, NUM_ENVS)
  assert np.asarray(traj["truncated"]).any(), "expected some time-limit truncations"
  assert np.asarray(traj["terminated"]).any(), "expected some terminations"
  assert done.sum() >= NUM_ENVS * NUM_STEPS // MAX_STEPS
  assert np.all(paid[~done] == 0.0)
  for n in range(NUM_ENVS):
    acc = 0.0
    for t in range(NUM_STEPS):
      acc += raw[t, n]
      if done[t, n]:
        np.testing.assert_allclose(paid[t, n], acc, rtol=1e-6)
        assert paid[t, n] > 0  # CartPole pays 1 per step
        acc = 0.0
    # What is still owed is held in the state.
    np.testing.assert_allclose(state.accumulated_reward[n], acc, rtol=1e-6)


def test_total_reward_is_conserved():
  _, env, params = _env()
  state, traj = _rollout(env, params, jax.random.PRNGKey(1), num_steps=400)
  paid = np.asarray(traj["reward"], np.float64).sum()
  raw = np.asarray(traj["undelayed_reward"], np.float64).sum()
  owed = np.asarray(state.accumulated_reward, np.float64).sum()
  assert paid > 0
  np.testing.assert_allclose(paid + owed, raw, rtol=1e-6)
  # Unfinished episodes hold less than one episode's worth each.
  assert np.all(np.asarray(state.accumulated_reward) < MAX_STEPS)


def test_dynamics_and_info_match_unwrapped_env():
  base, env, params = _env()
  key = jax.random.PRNGKey(2)
  _, wrapped = _rollout(env, params, key, num_steps=60)
  _, plain = _rollout(base, params, key, num_steps=60)
  for name in ("terminated", "truncated", "obs", "final_observation"):
    np.testing.assert_array_equal(wrapped[name], plain[name], err_msg=name)
  np.testing.assert_array_equal(wrapped["undelayed_reward"], plain["reward"])


def test_state_info_and_attribute_fallthrough():
  base, env, params = _env()
  key = jax.random.PRNGKey(3)
  obs, state = env.reset(key, params)
  assert isinstance(state, DelayedRewardState)
  assert state.accumulated_reward.shape == () and state.accumulated_reward == 0.0
  obs, state, reward, terminated, truncated, info = jax.jit(env.step)(key, state, 1, params)
  assert "final_observation" in info and "undelayed_reward" in info
  assert reward.dtype == jnp.float32 and reward.shape == ()
  assert state.accumulated_reward == info["undelayed_reward"]
  assert env.num_actions == base.num_actions
  assert env.action_space(params).n == base.action_space(params).n
  assert env.unwrapped is base


def test_composes_with_episode_statistics():
  # EpisodeStatistics outside DelayedReward sees the paid (delayed) reward, whose
  # episode sums equal the true returns.
  _, env, params = _env()
  stats_env = EpisodeStatistics(env)
  state, traj = _rollout(stats_env, params, jax.random.PRNGKey(4), num_steps=80)
  del traj
  assert isinstance(state.env_state, DelayedRewardState)
  ret = np.asarray(state.returned_episode_return)
  length = np.asarray(state.returned_episode_length)
  assert np.all(length > 0)
  np.testing.assert_allclose(ret, length.astype(np.float64))  # CartPole: return == length

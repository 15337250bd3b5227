"""brax adapter (``make("brax/<name>")``) and reward modules on continuous observations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax.agents import common
from rewardjax.envs import brax_adapter

LIMIT = 5


@pytest.fixture(scope="module")
def pendulum():
  env, params = rjx.envs.make("brax/inverted_pendulum", max_steps_in_episode=LIMIT)
  return env, params, jax.jit(env.step), jax.jit(env.reset)


def test_spaces_and_defaults(pendulum):
  env, params, _, _ = pendulum
  assert env.backend == brax_adapter.DEFAULT_BACKENDS["inverted_pendulum"] == "generalized"
  assert params.max_steps_in_episode == LIMIT
  act, obs = env.action_space(params), env.observation_space(params)
  assert isinstance(act, spaces.Box) and act.shape == (1,)
  assert float(act.low) == -1.0 and float(act.high) == 1.0
  assert isinstance(obs, spaces.Box) and obs.shape == (4,)


def test_forced_time_limit_truncates_and_keeps_final_observation(pendulum):
  env, params, step, reset = pendulum
  key = jax.random.PRNGKey(0)
  obs, state = reset(key, params)
  raw = env.brax_env                      # the unwrapped brax env, for the true continuation
  raw_state = state.brax_state
  raw_step = jax.jit(raw.step)
  for t in range(1, LIMIT + 1):
    key, k = jax.random.split(key)
    obs, state, reward, term, trunc, info = step(k, state, jnp.zeros(1), params)
    raw_state = raw_step(raw_state, jnp.zeros(1))
    assert not bool(term)                  # upright for 5 steps: no termination
    assert bool(trunc) == (t == LIMIT)
    assert float(reward) == 1.0
    np.testing.assert_allclose(info["final_observation"], raw_state.obs, rtol=1e-5, atol=1e-7)
  # After the time limit: a fresh episode, not the continuation.
  assert int(state.time) == 0
  assert not np.allclose(obs, info["final_observation"])
  assert np.all(np.abs(np.asarray(obs)) <= 0.01 + 1e-6)   # brax's reset noise is U(−0.01, 0.01)
  # The next step continues from the new start.
  _, state, _, term, trunc, info = step(key, state, jnp.zeros(1), params)
  assert int(state.time) == 1 and not bool(term) and not bool(trunc)


def test_termination_is_braxs_done_and_not_truncation():
  env, params = rjx.envs.make("brax/inverted_pendulum", max_steps_in_episode=1000)
  n = 8
  obs, state = common.reset_batch(env, params, jax.random.PRNGKey(1), n)

  def body(carry, key):
    state, seen = carry
    # Push hard one way: the pole falls past 0.2 rad within a few dozen steps.
    obs, state, r, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, None, None))(
        jax.random.split(key, n), state, jnp.ones(1), params)
    return (state, seen), (obs, term, trunc, info["final_observation"], state.time)

  _, (obs, term, trunc, final, time) = jax.jit(
      lambda s: jax.lax.scan(body, (s, 0), jax.random.split(jax.random.PRNGKey(2), 100)))(state)
  term, trunc, obs, final = map(np.asarray, (term, trunc, obs, final))
  assert term.any(axis=0).all() and not trunc.any()
  t, i = np.argwhere(term)[0]
  assert abs(final[t, i, 1]) > 0.2                     # the pole angle that ended it
  assert np.all(np.abs(obs[t, i]) <= 0.01 + 1e-6)       # returned obs: a fresh start
  assert int(np.asarray(time)[t, i]) == 0
  # Re-randomised resets: envs that ended at the same step restart in different states.
  ended = np.argwhere(term[t])[:, 0]
  assert len(ended) >= 2
  starts = obs[t, ended]
  assert len({tuple(s) for s in starts.round(7)}) == len(ended)


def test_unknown_names_and_bad_arguments_are_clear():
  with pytest.raises(ValueError, match=r"unknown brax environment 'invertd_pendulum'.*"
                                       r"Did you mean: brax/inverted_pendulum.*Known: brax/ant"):
    rjx.envs.make("brax/invertd_pendulum")
  with pytest.raises(ValueError, match="backend"):
    rjx.envs.make("brax/inverted_pendulum", backend="warp")
  with pytest.raises(ValueError, match="max_steps_in_episode"):
    rjx.envs.make("brax/inverted_pendulum", max_steps_in_episode=0)
  assert "brax/ant" in rjx.envs.registered_ids()


def test_rnd_and_simhash_counts_work_on_brax_observations(pendulum):
  env, params, _, _ = pendulum
  batch = jax.jit(common.random_rollout, static_argnums=(0, 3, 4))(
      env, params, jax.random.PRNGKey(0), 16, 4)
  assert batch.obs.shape == (16, 4, 4) and batch.action.shape == (16, 4, 1)
  for module in (rjx.rewards.rnd(), rjx.rewards.count_bonus(key_fn="simhash")):
    state = module.init(jax.random.PRNGKey(1), batch)
    r0 = module.reward(state, batch)
    state, _ = jax.jit(module.update)(state, batch, jax.random.PRNGKey(2))
    r1 = module.reward(state, batch)
    assert r0.shape == r1.shape == (16, 4)
    assert np.isfinite(np.asarray(r1)).all()
    # Seeing the batch makes it less novel: counts grow, RND's predictor learns.
    assert float(r1.mean()) < float(r0.mean())


def test_progress_counts_on_continuous_mountain_car():
  env, params = rjx.envs.make("MountainCarContinuous-v0")
  spec = rjx.envs.progress_functions.get("mountaincar_continuous")
  assert spec.env_id == "MountainCarContinuous-v0"
  module = rjx.rewards.progress_counts(spec.fn, num_bins=10, low=spec.low, high=spec.high)
  batch = jax.jit(common.random_rollout, static_argnums=(0, 3, 4))(
      env, params, jax.random.PRNGKey(0), 32, 4)
  state = module.init(jax.random.PRNGKey(1), batch)
  state, _ = module.update(state, batch, jax.random.PRNGKey(2))
  r = np.asarray(module.reward(state, batch))
  assert r.shape == (32, 4) and np.isfinite(r).all() and (r > 0).all()
  # Hand check: a car near the valley floor at rest has ~0 energy progress and
  # position progress (x + 1.2) / 1.7.
  p = np.asarray(spec.fn(jnp.array([-0.5236, 0.0])))
  np.testing.assert_allclose(p, [(-0.5236 + 1.2) / 1.7, 0.0], atol=1e-3)

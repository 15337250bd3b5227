"""brax adapter (``make("brax/<name>")``) and reward modules on continuous observations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax.envs import rollouts
from rewardjax.envs import brax_adapter

LIMIT = 5
N, T = 6, 80


@pytest.fixture(scope="module")
def env():
  return rjx.envs.make("brax/inverted_pendulum")


@pytest.fixture(scope="module")
def rollout(env):
  """``rollout(params, action)``: N envs, T steps of one constant action (one compile)."""
  env, _ = env

  @jax.jit
  def run(params, action):
    obs, state = rollouts.reset_batch(env, params, jax.random.PRNGKey(1), N)

    def body(carry, key):
      obs, state = carry
      obs2, state, r, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, None, None))(
          jax.random.split(key, N), state, action, params)
      return (obs2, state), dict(obs=obs, next=obs2, reward=r, term=term, trunc=trunc,
                                 final=info["final_observation"], time=state.time)

    _, out = jax.lax.scan(body, (obs, state), jax.random.split(jax.random.PRNGKey(2), T))
    return out

  return lambda params, action: {k: np.asarray(v) for k, v in run(params, action).items()}


def test_spaces_and_defaults(env):
  env, params = env
  assert env.backend == brax_adapter.DEFAULT_BACKENDS["inverted_pendulum"] == "generalized"
  assert params.max_steps_in_episode == 1000
  act, obs = env.action_space(params), env.observation_space(params)
  assert isinstance(act, spaces.Box) and act.shape == (1,)
  assert float(act.low) == -1.0 and float(act.high) == 1.0
  assert isinstance(obs, spaces.Box) and obs.shape == (4,)


def _fresh(obs):
  return np.all(np.abs(obs) <= 0.01 + 1e-6, axis=-1)   # brax's reset noise is U(−0.01, 0.01)


def test_forced_time_limit_truncates_and_keeps_final_observation(env, rollout):
  _, params = env
  out = rollout(params.replace(max_steps_in_episode=LIMIT), jnp.zeros(1))
  t = np.arange(T)[:, None].repeat(N, 1)
  # Upright for the first steps of every episode: never terminated, truncated every LIMIT steps.
  assert not out["term"].any()
  np.testing.assert_array_equal(out["trunc"], (t + 1) % LIMIT == 0)
  np.testing.assert_array_equal(out["time"], (t + 1) % LIMIT)
  np.testing.assert_array_equal(out["reward"], 1.0)
  cut = out["trunc"]
  # Not cut: the next observation is the final one. Cut: the final observation
  # continues the episode (one small physics step from the last), the returned one
  # is a fresh start.
  np.testing.assert_array_equal(out["final"][~cut], out["next"][~cut])
  assert np.abs(out["final"][cut] - out["obs"][cut]).max() < 0.05
  assert not np.allclose(out["final"][cut], out["next"][cut])
  assert _fresh(out["next"][cut]).all()


def test_termination_is_braxs_done_and_resets_are_rerandomised(env, rollout):
  _, params = env
  out = rollout(params, jnp.ones(1))       # push hard one way: the pole falls past 0.2 rad
  term = out["term"]
  assert term.any(axis=0).all() and not out["trunc"].any()
  assert np.all(np.abs(out["final"][term][:, 1]) > 0.2)     # the pole angle that ended it
  assert np.all(np.abs(out["next"][~term][:, 1]) <= 0.2)
  assert _fresh(out["next"][term]).all() and (out["time"][term] == 0).all()
  # Every episode starts somewhere new: no two restarts are the same state.
  starts = out["next"][term]
  assert len(starts) >= 2 * N
  assert len({tuple(s) for s in starts.round(7)}) == len(starts)


def test_unknown_names_and_bad_arguments_are_clear():
  with pytest.raises(ValueError, match=r"unknown brax environment 'invertd_pendulum'.*"
                                       r"Did you mean: brax/inverted_pendulum.*Known: brax/ant"):
    rjx.envs.make("brax/invertd_pendulum")
  with pytest.raises(ValueError, match="backend"):
    rjx.envs.make("brax/inverted_pendulum", backend="warp")
  with pytest.raises(ValueError, match="max_steps_in_episode"):
    rjx.envs.make("brax/inverted_pendulum", max_steps_in_episode=0)
  assert "brax/ant" in rjx.envs.registered_ids()


def test_rnd_and_simhash_counts_work_on_brax_observations(env, rollout):
  _, params = env
  out = rollout(params, jnp.zeros(1))
  batch = rjx.rewards.Transition(out["obs"], np.zeros((T, N, 1), np.float32), out["reward"],
                                 out["final"], out["term"], out["trunc"])
  # Counts: seeing the batch makes it less novel.
  module = rjx.rewards.count_bonus(key_fn="simhash")
  state = jax.jit(module.init)(jax.random.PRNGKey(1), batch)
  r0 = module.reward(state, batch)
  state, _ = jax.jit(module.update)(state, batch, jax.random.PRNGKey(2))
  r1 = module.reward(state, batch)
  assert r0.shape == r1.shape == (T, N) and np.isfinite(np.asarray(r1)).all()
  assert float(r1.mean()) < float(r0.mean())

  # RND: the predictor learns the batch. Its raw prediction error (before the
  # return-std division, which shrinks the bonus anyway as the std grows) falls
  # far more than with a frozen predictor, whose error moves only with the
  # observation statistics.
  def raw_errors(module):
    state = jax.jit(module.init)(jax.random.PRNGKey(1), batch)
    update = jax.jit(module.update)
    state, m0 = update(state, batch, jax.random.PRNGKey(2))
    for i in range(3):
      state, m1 = update(state, batch, jax.random.PRNGKey(3 + i))
    r = module.reward(state, batch)
    assert r.shape == (T, N) and np.isfinite(np.asarray(r)).all()
    return float(m0["intrinsic_raw_mean"]), float(m1["intrinsic_raw_mean"])

  before, after = raw_errors(rjx.rewards.rnd())
  frozen_before, frozen_after = raw_errors(rjx.rewards.rnd(update_proportion=0.0))
  assert frozen_before == pytest.approx(before)          # same networks, same start
  assert after < 0.5 * before, (before, after)
  assert after < 0.5 * frozen_after, (frozen_after, after)


def test_progress_counts_on_continuous_mountain_car():
  env, params = rjx.envs.make("MountainCarContinuous-v0")
  spec = rjx.envs.progress_functions.get("mountaincar_continuous")
  assert spec.env_id == "MountainCarContinuous-v0"
  module = rjx.rewards.progress_counts(spec.fn, num_bins=10, low=spec.low, high=spec.high)
  batch = jax.jit(rollouts.random_rollout, static_argnums=(0, 3, 4))(
      env, params, jax.random.PRNGKey(0), 32, 4)
  state = jax.jit(module.init)(jax.random.PRNGKey(1), batch)
  state, _ = jax.jit(module.update)(state, batch, jax.random.PRNGKey(2))
  r = np.asarray(jax.jit(module.reward)(state, batch))
  assert r.shape == (32, 4) and np.isfinite(r).all() and (r > 0).all()
  # Hand check: a car near the valley floor at rest has ~0 energy progress and
  # position progress (x + 1.2) / 1.7.
  p = np.asarray(spec.fn(jnp.array([-0.5236, 0.0])))
  np.testing.assert_allclose(p, [(-0.5236 + 1.2) / 1.7, 0.0], atol=1e-3)

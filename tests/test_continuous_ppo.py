"""Continuous-action PPO: Gaussian policy head, action bounds, reward and observation normalisation."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax import stats
from rewardjax.rewards import channels
from rewardjax import distributions
from rewardjax.agents import ppo
from rewardjax.envs.wrappers import Wrapper

LOW = np.array([-2.0, 0.0, -1.0], np.float32)
HIGH = np.array([2.0, 1.0, 3.0], np.float32)


def _out(seed=0, batch=5):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  mean = jax.random.normal(k1, (batch, 3))
  log_std = 0.5 * jax.random.normal(k2, (3,))
  return mean, jnp.broadcast_to(log_std, mean.shape)


def test_gaussian_log_prob_and_entropy_match_distrax_and_numpy():
  policy = distributions.gaussian_policy(LOW, HIGH, squash=False)
  out = _out()
  u, lp = policy.sample(jax.random.PRNGKey(1), out)
  mean, log_std = (np.asarray(x, np.float64) for x in out)
  u64 = np.asarray(u, np.float64)
  # Independent per-dimension Normals (distrax) and the closed form.
  ref = distrax.Independent(distrax.Normal(out[0], jnp.exp(out[1])), 1).log_prob(u)
  by_hand = np.sum(-0.5 * ((u64 - mean) / np.exp(log_std))**2 - log_std
                   - 0.5 * np.log(2 * np.pi), axis=-1)
  np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(policy.log_prob(out, u), by_hand, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(policy.entropy(out),
                             np.sum(0.5 + 0.5 * np.log(2 * np.pi) + log_std, axis=-1), rtol=1e-5)


def test_squashed_log_prob_is_the_density_of_the_env_action():
  policy = distributions.gaussian_policy(LOW, HIGH, squash=True)
  mean, log_std = _out(seed=2)
  out = (0.5 * mean, log_std - 0.7)      # away from tanh saturation, where atanh(a) is inexact
  u, lp = policy.sample(jax.random.PRNGKey(3), out)
  a = policy.to_env(u)
  half, centre = (HIGH - LOW) / 2, (HIGH + LOW) / 2
  bijector = distrax.Block(distrax.Chain([distrax.ScalarAffine(centre, half), distrax.Tanh()]), 1)
  ref = distrax.Transformed(distrax.MultivariateNormalDiag(out[0], jnp.exp(out[1])),
                            bijector).log_prob(a)
  np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(policy.log_prob(out, u), lp, rtol=1e-6, atol=1e-6)
  assert np.all(np.asarray(a) > LOW) and np.all(np.asarray(a) < HIGH)


@pytest.mark.parametrize("squash", [False, True])
def test_env_actions_stay_in_the_box(squash):
  policy = distributions.gaussian_policy(LOW, HIGH, squash=squash)
  u = 100.0 * jax.random.normal(jax.random.PRNGKey(0), (1000, 3))
  a = np.asarray(policy.to_env(u))
  assert np.all(a >= LOW) and np.all(a <= HIGH)
  if not squash:   # clipping leaves in-bound samples alone
    inside = np.all((np.asarray(u) >= LOW) & (np.asarray(u) <= HIGH), axis=-1)
    np.testing.assert_array_equal(a[inside], np.asarray(u)[inside])


def test_bad_boxes_are_refused():
  with pytest.raises(ValueError, match="1-D"):
    distributions.box_bounds(spaces.Box(-1.0, 1.0, (2, 2)))
  with pytest.raises(ValueError, match="low < high"):
    distributions.box_bounds(spaces.Box(1.0, 1.0, (2,)))
  with pytest.raises(ValueError, match="bounded"):
    distributions.gaussian_policy(np.array([-np.inf]), np.array([np.inf]), squash=True)
  with pytest.raises(ValueError, match="init_log_std"):
    ppo.PPOConfig(init_log_std=float("nan"))


class OutOfBoundsPenalty(Wrapper):
  """Pendulum whose reward is minus how far the received action lies outside [-2, 2]."""

  def step(self, key, state, action, params=None):
    obs, state, _, term, trunc, info = self._env.step(key, state, action, params)
    excess = jnp.sum(jnp.maximum(jnp.abs(action) - 2.0, 0.0))
    return obs, state, -excess, term, trunc, info


@pytest.mark.parametrize("squash", [False, True])
def test_ppo_passes_only_in_bound_actions_to_the_env(squash):
  env, params = rjx.envs.make("Pendulum-v1")
  cfg = ppo.PPOConfig(total_timesteps=400, num_envs=2, num_steps=200, update_epochs=1,
                      num_minibatches=1, hidden_sizes=(8,), init_log_std=2.0,
                      squash_actions=squash)
  out = jax.jit(ppo.make_train(cfg, OutOfBoundsPenalty(env), params))(jax.random.PRNGKey(0))
  # std e² ≈ 7.4: most raw samples are outside the box, none of what the env sees.
  np.testing.assert_array_equal(out.metrics["episode_return"], 0.0)
  log_std = out.runner_state.params["params"]["log_std"]
  assert log_std.shape == (1,)


def test_normalize_rewards_divides_by_std_of_discounted_returns():
  chans = rjx.rewards.as_channels(None).resolve(0.9)
  norm = channels.normalize_rewards(chans)
  T, N = 6, 2
  rng = np.random.default_rng(0)
  r = rng.normal(size=(T, N)).astype(np.float32)
  term = np.zeros((T, N), bool)
  term[2, 0] = True
  obs = np.zeros((T, N, 1), np.float32)
  batch = rjx.rewards.Transition(obs, np.zeros((T, N), np.int32), r, obs, term, term & False)
  state = norm.init(jax.random.PRNGKey(0), batch)
  first = norm.reward(state, batch)[..., 0]
  state, _ = norm.update(state, batch, jax.random.PRNGKey(1))
  g, rets = np.zeros(N), []
  for t in range(T):
    g = 0.9 * g + r[t]
    rets.append(g.copy())
    g = np.where(term[t], 0.0, g)
  rets = np.array(rets)
  count = 1e-4 + rets.size
  var = rets.var() * rets.size / count + (1.0 * 1e-4 + rets.mean()**2 * 1e-4 * rets.size / count) / count
  np.testing.assert_allclose(state.returns.ret[:, 0], g, rtol=1e-5, atol=1e-6)
  # The batch's own returns are in the std it is divided by (stats.ReturnStd).
  np.testing.assert_allclose(first, r / np.sqrt(var + 1e-8), rtol=1e-4)


def test_observation_normaliser_matches_numpy_over_batches():
  # PPO's normalize_observations: moments merged rollout by rollout, then (x − μ)/σ, clip ±10.
  rng = np.random.default_rng(1)
  chunks = [rng.normal(loc=[0.0, 5.0], scale=[1.0, 1e-2], size=(16, 4, 2)) for _ in range(5)]
  m = stats.moments_init((2,))
  for c in chunks:
    m = stats.moments_update(m, c, axes=(0, 1))
  allx = np.concatenate([c.reshape(-1, 2) for c in chunks])
  # The reference includes the prior: mean 0, var 1, weight 1e-4 (baselines' RunningMeanStd).
  n, p = len(allx), 1e-4
  mean = n * allx.mean(0) / (n + p)
  var = (n * allx.var(0) + p * 1.0 + allx.mean(0)**2 * n * p / (n + p)) / (n + p)
  np.testing.assert_allclose(m.mean, mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m.var, var, rtol=1e-3)
  x = np.array([[0.0, 5.0], [1.0, 6.0]], np.float32)
  ref = np.clip((x - mean) / np.sqrt(var + 1e-8), -10, 10)
  np.testing.assert_allclose(stats.normalize(m, x, clip=10.0), ref, rtol=1e-3, atol=1e-3)


def test_pendulum_learns_with_observation_and_reward_normalisation():
  env, params = rjx.envs.make("Pendulum-v1")
  cfg = ppo.PPOConfig(total_timesteps=16 * 128 * 50, num_envs=16, num_steps=128, update_epochs=10,
                      num_minibatches=8, lr=3e-4, anneal_lr=False, ent_coef=0.0,
                      normalize_observations=True, normalize_rewards=True)
  out = jax.jit(ppo.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  ret = np.asarray(out.metrics["episode_return"])
  assert not np.asarray(out.metrics["nonfinite"]).any()
  # A random policy scores about −1200; after 100k steps returns are ~−800 (and
  # ~−200 at 200k: benchmarks/continuous.py).
  early, late = np.nanmean(ret[1:6]), ret[-5:].mean()
  assert late > early + 200, ret

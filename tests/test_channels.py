"""Channels, combine and reward transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import stats
from rewardjax.rewards import transforms
from rewardjax.types import Transition


def _batch(r, term=None):
  r = jnp.asarray(r, jnp.float32)
  z = jnp.zeros(r.shape + (2,))
  term = jnp.zeros(r.shape, bool) if term is None else jnp.asarray(term)
  return Transition(z, jnp.zeros(r.shape, jnp.int32), r, z, term, jnp.zeros(r.shape, bool))


def test_combine_stacks_channels_in_order():
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic(), coef=2.0, gamma=0.999),
      doubled=rjx.rewards.channel(
          rjx.rewards.extrinsic(), gamma=0.99, episodic=False,
          transforms=[rjx.rewards.scale(2.0)]),
  )
  assert rewards.names == ("extrinsic", "doubled")
  assert rewards.coefs == (2.0, 1.0)
  assert rewards.gammas == (0.999, 0.99)
  assert rewards.episodic == (True, False)
  b = _batch(np.arange(6.0).reshape(3, 2))
  state = rewards.init(jax.random.PRNGKey(0), b)
  r = rewards.reward(state, b)
  assert r.shape == (3, 2, 2)
  np.testing.assert_allclose(r[..., 1], 2 * r[..., 0])
  _, metrics = jax.jit(rewards.update)(state, b, jax.random.PRNGKey(1))
  assert isinstance(metrics, dict)


def test_resolve_fills_default_gamma_and_as_channels():
  ch = rjx.rewards.as_channels(None).resolve(0.95)
  assert ch.names == ("extrinsic",) and ch.gammas == (0.95,)
  ch = rjx.rewards.as_channels(rjx.rewards.extrinsic())
  assert ch.names == ("reward",)
  with pytest.raises(TypeError):
    rjx.rewards.as_channels("extrinsic")


@pytest.mark.parametrize("kwargs", [{"gamma": 0.0}, {"gamma": 1.5}, {"coef": float("nan")}])
def test_channel_validates(kwargs):
  with pytest.raises(ValueError):
    rjx.rewards.channel(rjx.rewards.extrinsic(), **kwargs)


def test_combine_reports_wrong_reward_shape_by_name():
  bad = rjx.types.stateless(lambda b: b.reward[..., None])
  rewards = rjx.rewards.combine(bad=bad)
  b = _batch(np.ones((3, 2)))
  with pytest.raises(ValueError, match="'bad'"):
    rewards.reward(rewards.init(jax.random.PRNGKey(0), b), b)


def test_clip_scale_symlog():
  b = _batch([[-3.0, 0.5], [2.0, -0.1]])
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.clip(-1, 1), rjx.rewards.scale(3.0))
  r = m.reward(m.init(jax.random.PRNGKey(0), b), b)
  np.testing.assert_allclose(r, [[-3.0, 1.5], [3.0, -0.3]], rtol=1e-6)
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.symlog())
  r = m.reward(m.init(jax.random.PRNGKey(0), b), b)
  np.testing.assert_allclose(r, np.sign(b.reward) * np.log1p(np.abs(b.reward)), rtol=1e-6)
  with pytest.raises(ValueError):
    rjx.rewards.clip(1, -1)


def test_normalize_by_return_std_matches_numpy_reference():
  rng = np.random.default_rng(0)
  gamma = 0.9
  batches = [rng.exponential(size=(5, 3)).astype(np.float32) for _ in range(3)]
  module = rjx.rewards.transform(rjx.rewards.extrinsic(),
                                 rjx.rewards.normalize_by_return_std(gamma))
  state = module.init(jax.random.PRNGKey(0), _batch(batches[0]))

  # numpy reference: RND's RewardForwardFilter + baselines' RunningMeanStd.
  ret = np.zeros(3)
  all_rets = []
  mean, var, count = 0.0, 1.0, 1e-4
  for r in batches:
    out = module.reward(state, _batch(r))
    state, _ = module.update(state, _batch(r), jax.random.PRNGKey(0))
    rets = []
    for t in range(r.shape[0]):
      ret = ret * gamma + r[t]
      rets.append(ret.copy())
    rets = np.stack(rets)
    all_rets.append(rets)
    b_mean, b_var, b_count = rets.mean(), rets.var(), rets.size
    delta = b_mean - mean
    tot = count + b_count
    new_mean = mean + delta * b_count / tot
    m2 = var * count + b_var * b_count + delta**2 * count * b_count / tot
    mean, var, count = new_mean, m2 / tot, tot
    # The batch's own returns are in the std it is divided by.
    np.testing.assert_allclose(out, r / np.sqrt(var + 1e-8), rtol=1e-5)
  # After enough data the running variance is the variance of every return seen.
  np.testing.assert_allclose(var, np.concatenate(all_rets).ravel().var(), rtol=1e-3)
  np.testing.assert_allclose(state.transforms[0].moments.var, var, rtol=1e-4)


def test_episodic_return_filter_resets():
  r = jnp.ones((4, 1))
  reset = jnp.array([[False], [True], [False], [False]])
  _, rets = stats.discounted_return_filter(jnp.zeros(1), r, 0.5, reset)
  np.testing.assert_allclose(rets[:, 0], [1.0, 1.5, 1.0, 1.5])


def test_standardize_centres():
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), transforms.standardize())
  b = _batch(np.full((8, 2), 5.0))
  s = m.init(jax.random.PRNGKey(0), b)
  s, _ = m.update(s, b, jax.random.PRNGKey(0))
  np.testing.assert_allclose(m.reward(s, b), 0.0, atol=1e-2)


def test_add_sums_modules_in_one_channel_and_keeps_shaping_gamma():
  phi = lambda s: s[0]
  module = rjx.rewards.add(rjx.rewards.extrinsic(), rjx.rewards.potential_shaping(phi, 0.9))
  assert module.gamma == 0.9
  with pytest.raises(ValueError, match="gamma"):
    rjx.rewards.channel(module, gamma=0.99)
  b = _batch(np.ones((3, 2)))
  b = b._replace(next_obs=b.next_obs + 1.0)
  state = module.init(jax.random.PRNGKey(0), b)
  r = module.reward(state, b)
  np.testing.assert_allclose(r, 1.0 + 0.9 * 1.0 - 0.0, rtol=1e-6)
  with pytest.raises(ValueError, match="different gammas"):
    rjx.rewards.add(rjx.rewards.potential_shaping(phi, 0.9),
                    rjx.rewards.potential_shaping(phi, 0.99))

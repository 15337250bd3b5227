"""Channels, combine and reward transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import stats
from rewardjax.rewards import transforms
from rewardjax.types import Transition


def _batch(r, term=None, trunc=None):
  r = jnp.asarray(r, jnp.float32)
  z = jnp.zeros(r.shape + (2,))
  term = jnp.zeros(r.shape, bool) if term is None else jnp.asarray(term)
  trunc = jnp.zeros(r.shape, bool) if trunc is None else jnp.asarray(trunc)
  return Transition(z, jnp.zeros(r.shape, jnp.int32), r, z, term, trunc)


def _np_merge(moments, x):
  """baselines' RunningMeanStd update of ``(mean, var, count)`` with the samples ``x``."""
  mean, var, count = moments
  b_mean, b_var, b_count = x.mean(), x.var(), x.size
  delta = b_mean - mean
  tot = count + b_count
  m2 = var * count + b_var * b_count + delta**2 * count * b_count / tot
  return mean + delta * b_count / tot, m2 / tot, tot


class _NpReturnStd:
  """NumPy reference of the return-std normaliser: RND's RewardForwardFilter
  (restarted after ``done`` steps when given) and RunningMeanStd of its output."""

  def __init__(self, num_envs, gamma):
    self.gamma, self.ret = gamma, np.zeros(num_envs)
    self.moments = (0.0, 1.0, 1e-4)

  def update(self, r, done=None):
    rets = []
    for t in range(r.shape[0]):
      self.ret = self.ret * self.gamma + r[t]
      rets.append(self.ret.copy())
      if done is not None:
        self.ret = np.where(done[t], 0.0, self.ret)
    self.moments = _np_merge(self.moments, np.stack(rets))
    return np.stack(rets)

  def scale(self, r, eps=1e-8):
    return r / np.sqrt(self.moments[1] + eps)


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


def test_clip_to_a_single_point():
  b = _batch([[-3.0, 0.5], [2.0, -0.1]])
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.clip(0.5, 0.5))
  np.testing.assert_allclose(m.reward(m.init(jax.random.PRNGKey(0), b), b), 0.5)
  with pytest.raises(ValueError, match="clip: low"):
    rjx.rewards.clip(0.5, 0.4)


def test_normalize_by_return_std_matches_numpy_reference():
  rng = np.random.default_rng(0)
  gamma = 0.9
  batches = [rng.exponential(size=(5, 3)).astype(np.float32) for _ in range(3)]
  module = rjx.rewards.transform(rjx.rewards.extrinsic(),
                                 rjx.rewards.normalize_by_return_std(gamma))
  state = module.init(jax.random.PRNGKey(0), _batch(batches[0]))

  # numpy reference: RND's RewardForwardFilter + baselines' RunningMeanStd.
  ref = _NpReturnStd(3, gamma)
  all_rets = []
  for r in batches:
    out = module.reward(state, _batch(r))
    state, _ = module.update(state, _batch(r), jax.random.PRNGKey(0))
    all_rets.append(ref.update(r))
    var = ref.moments[1]
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


def _tree_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_normalize_rewards_divides_each_channel_by_its_own_return_std():
  rng = np.random.default_rng(11)
  t, n = 5, 3
  channels = rjx.rewards.combine(
      ext=rjx.rewards.channel(rjx.rewards.extrinsic(), gamma=0.9),
      tripled=rjx.rewards.channel(rjx.rewards.extrinsic(), gamma=0.5, episodic=False,
                                  transforms=[rjx.rewards.scale(3.0)]))
  module = rjx.rewards.normalize_rewards(channels)
  assert module.names == ("ext", "tripled") and module.gammas == (0.9, 0.5)
  refs = [_NpReturnStd(n, 0.9), _NpReturnStd(n, 0.5)]
  state = None
  for i in range(3):
    r = rng.exponential(size=(t, n)).astype(np.float32)
    term, trunc = rng.random((t, n)) < 0.2, rng.random((t, n)) < 0.2
    b = _batch(r, term, trunc)
    state = module.init(jax.random.PRNGKey(0), b) if state is None else state
    # The episodic channel restarts its return after terminated or truncated
    # steps; the non-episodic one runs on.
    refs[0].update(r, term | trunc)
    refs[1].update(3 * r)
    expected = np.stack([refs[0].scale(r), refs[1].scale(3 * r)], -1)
    np.testing.assert_allclose(module.reward(state, b), expected, rtol=1e-5)
    out, new_state, _ = module.reward_and_update(state, b, jax.random.PRNGKey(i))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    _tree_equal(module.update(state, b, jax.random.PRNGKey(i))[0], new_state)
    state = new_state
  np.testing.assert_allclose(state.returns.moments.var, [refs[0].moments[1], refs[1].moments[1]],
                             rtol=1e-4)
  with pytest.raises(ValueError, match="^normalize_rewards: resolve the channels' gammas"):
    rjx.rewards.normalize_rewards(rjx.rewards.combine(ext=rjx.rewards.extrinsic()))


def test_intrinsic_channel_runs_across_episodes_and_divides_by_return_std():
  ch = rjx.rewards.intrinsic_channel(rjx.rewards.extrinsic(), coef=0.5, gamma=0.8,
                                     transforms=[rjx.rewards.clip(0.0, 1.0)])
  assert (ch.coef, ch.gamma, ch.episodic) == (0.5, 0.8, False)
  rng = np.random.default_rng(12)
  ref = _NpReturnStd(2, 0.8)
  state = None
  for i in range(2):
    r = rng.exponential(size=(6, 2)).astype(np.float32)
    b = _batch(r, term=rng.random((6, 2)) < 0.5)        # ignored: not episodic
    state = ch.module.init(jax.random.PRNGKey(0), b) if state is None else state
    clipped = np.clip(r, 0.0, 1.0)                       # the given transforms come first
    ref.update(clipped)
    out, state, _ = ch.module.reward_and_update(state, b, jax.random.PRNGKey(i))
    np.testing.assert_allclose(out, ref.scale(clipped), rtol=1e-5)
  raw = rjx.rewards.intrinsic_channel(rjx.rewards.extrinsic(), normalize=False)
  assert (raw.coef, raw.gamma, raw.episodic) == (1.0, 0.99, False)
  r = np.array([[3.0, -2.0]], np.float32)
  np.testing.assert_allclose(raw.module.reward(raw.module.init(jax.random.PRNGKey(0),
                                                               _batch(r)), _batch(r)), r)


def test_combined_reward_is_the_coefficient_weighted_sum():
  r = np.random.default_rng(13).normal(size=(4, 3, 2)).astype(np.float32)
  np.testing.assert_allclose(rjx.rewards.combined_reward(jnp.asarray(r), (2.0, -0.5)),
                             2.0 * r[..., 0] - 0.5 * r[..., 1], rtol=1e-6)


def test_signed_hyperbolic_matches_its_formula():
  r = np.array([[-4.0, -0.3], [0.0, 0.5], [9.0, 1e-3]], np.float32)
  h = lambda eps: np.sign(r) * (np.sqrt(np.abs(r) + 1.0) - 1.0) + eps * r
  for t, eps in ((transforms.signed_hyperbolic(0.1), 0.1),
                 (transforms.signed_hyperbolic(), 1e-3)):    # Pohlen et al.'s ε
    m = rjx.rewards.transform(rjx.rewards.extrinsic(), t)
    out = m.reward(m.init(jax.random.PRNGKey(0), _batch(r)), _batch(r))
    np.testing.assert_allclose(out, h(eps), rtol=1e-6, atol=1e-7)


def test_episodic_normalize_by_return_std_restarts_the_return_and_reports_its_std():
  rng = np.random.default_rng(14)
  m = rjx.rewards.transform(rjx.rewards.extrinsic(),
                            rjx.rewards.normalize_by_return_std(0.9, episodic=True))
  ref = _NpReturnStd(3, 0.9)
  state = None
  for i in range(2):
    r = rng.exponential(size=(5, 3)).astype(np.float32)
    term, trunc = rng.random((5, 3)) < 0.3, rng.random((5, 3)) < 0.3
    b = _batch(r, term, trunc)
    state = m.init(jax.random.PRNGKey(0), b) if state is None else state
    ref.update(r, term | trunc)
    out, state, metrics = m.reward_and_update(state, b, jax.random.PRNGKey(i))
    np.testing.assert_allclose(out, ref.scale(r), rtol=1e-5)
    np.testing.assert_allclose(metrics["transform0/return_std"],
                               np.sqrt(ref.moments[1] + 1e-8), rtol=1e-5)
  with pytest.raises(ValueError, match="gamma"):
    rjx.rewards.normalize_by_return_std(0.0)
  undiscounted = rjx.rewards.transform(rjx.rewards.extrinsic(),
                                       rjx.rewards.normalize_by_return_std(1.0))
  r = np.ones((3, 1), np.float32)
  ref = _NpReturnStd(1, 1.0)
  ref.update(r)
  state = undiscounted.init(jax.random.PRNGKey(0), _batch(r))
  np.testing.assert_allclose(undiscounted.reward(state, _batch(r)), ref.scale(r), rtol=1e-5)


def test_standardize_uses_the_running_mean_and_std_including_the_batch():
  rng = np.random.default_rng(15)
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), transforms.standardize())
  moments, state = (0.0, 1.0, 1e-4), None
  for i in range(2):
    r = rng.normal(2.0, 3.0, size=(4, 3)).astype(np.float32)
    b = _batch(r)
    state = m.init(jax.random.PRNGKey(0), b) if state is None else state
    moments = _np_merge(moments, r)
    mean, std = moments[0], np.sqrt(moments[1] + 1e-8)
    np.testing.assert_allclose(m.reward(state, b), (r - mean) / std, rtol=1e-4, atol=1e-5)
    out, state, metrics = m.reward_and_update(state, b, jax.random.PRNGKey(i))
    np.testing.assert_allclose(out, (r - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["transform0/reward_mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(metrics["transform0/reward_std"], std, rtol=1e-5)


def test_transform_chains_in_order_and_keeps_the_modules_discount():
  b = _batch(np.array([[0.5, -2.0], [3.0, 1.0]], np.float32))
  # clip then scale differs from scale then clip.
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.clip(-1.0, 1.0),
                            rjx.rewards.scale(3.0), rjx.rewards.normalize_by_return_std(0.9))
  state = m.init(jax.random.PRNGKey(0), b)
  r, new_state, metrics = m.reward_and_update(state, b, jax.random.PRNGKey(1))
  assert sorted(metrics) == ["transform2/return_std"]
  ref = _NpReturnStd(2, 0.9)
  x = 3.0 * np.clip(np.asarray(b.reward), -1.0, 1.0)
  ref.update(x)
  np.testing.assert_allclose(r, ref.scale(x), rtol=1e-5)
  np.testing.assert_allclose(m.reward(state, b), r, rtol=1e-6)
  _tree_equal(m.update(state, b, jax.random.PRNGKey(1))[0], new_state)
  shaping = rjx.rewards.potential_shaping(lambda s: s[0], 0.9)
  assert rjx.rewards.transform(shaping, rjx.rewards.scale(2.0)).gamma == 0.9
  with pytest.raises(TypeError, match="expected RewardTransform, got function"):
    rjx.rewards.transform(rjx.rewards.extrinsic(), lambda r: r)


def test_channels_fused_and_plain_updates_agree_and_name_their_metrics():
  rewards = rjx.rewards.combine(
      a=rjx.rewards.extrinsic(),
      b=rjx.rewards.channel(rjx.rewards.extrinsic(),
                            transforms=[rjx.rewards.normalize_by_return_std(0.9)]))
  assert rewards.num_channels == 2 and rewards.coefs == (1.0, 1.0)
  assert rewards.gammas == (None, None) and rewards.episodic == (True, True)
  b = _batch(np.arange(6.0).reshape(3, 2))
  state = rewards.init(jax.random.PRNGKey(0), b)
  r, fused_state, fused_metrics = rewards.reward_and_update(state, b, jax.random.PRNGKey(1))
  new_state, metrics = rewards.update(state, b, jax.random.PRNGKey(1))
  assert sorted(metrics) == sorted(fused_metrics) == ["b/transform0/return_std"]
  _tree_equal(new_state, fused_state)
  np.testing.assert_allclose(r, rewards.reward(state, b), rtol=1e-6)
  np.testing.assert_allclose(r[..., 0], b.reward)
  assert rjx.rewards.channel(rjx.rewards.potential_shaping(lambda s: s[0], 0.9)).gamma == 0.9
  assert rjx.rewards.channel(rjx.rewards.extrinsic(), gamma=1).gamma == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda: rjx.rewards.channel("extrinsic"), TypeError, "^channel: expected a RewardModule"),
    (lambda: rjx.rewards.channel(rjx.rewards.extrinsic(), coef=float("inf")), ValueError,
     "^channel: coef must be finite"),
    (lambda: rjx.rewards.channel(rjx.rewards.extrinsic(), gamma=0.0), ValueError,
     "^channel 'channel': gamma must be in"),
    (lambda: rjx.rewards.add(), ValueError, "^add: give at least one"),
    (lambda: rjx.rewards.add(rjx.rewards.extrinsic(), "x"), TypeError,
     "^add: expected a RewardModule, got str"),
    (lambda: rjx.rewards.combine(), ValueError, "^combine: give at least one channel"),
    (lambda: rjx.rewards.combine(e=rjx.rewards.extrinsic()).resolve(1.5), ValueError,
     "^channel 'default': gamma must be in"),
    (lambda: rjx.rewards.as_channels(3), TypeError, "got int"),
])
def test_channel_constructors_reject_bad_arguments(call, error, match):
  with pytest.raises(error, match=match):
    call()


def _key_module():
  """A module whose state and reward come from the keys it is given."""
  return rjx.RewardModule(
      init=lambda key, ex: jax.random.uniform(key),
      reward=lambda state, b: jnp.full(b.reward.shape, state),
      update=lambda state, b, key: (jax.random.uniform(key), {"u": state}))


def test_combined_modules_get_independent_keys_and_float32_rewards():
  rewards = rjx.rewards.combine(a=_key_module(), b=_key_module(), c=_key_module(),
                                d=rjx.types.stateless(lambda b: b.action + 1))
  b = _batch(np.zeros((2, 3)))
  state = rewards.init(jax.random.PRNGKey(0), b)
  inits = [float(state[n]) for n in "abc"]
  r, new_state, metrics = rewards.reward_and_update(state, b, jax.random.PRNGKey(1))
  assert r.dtype == jnp.float32
  np.testing.assert_allclose(r, np.broadcast_to(inits + [1.0], (2, 3, 4)))
  integer = rjx.rewards.combine(d=rjx.types.stateless(lambda b: b.action + 1))
  assert integer.reward(integer.init(jax.random.PRNGKey(0), b), b).dtype == jnp.float32
  updated = [float(new_state[n]) for n in "abc"]
  assert len(set(inits + updated)) == 6                     # no two modules share a key
  assert sorted(metrics) == ["a/u", "b/u", "c/u"]
  plain_state, plain_metrics = rewards.update(state, b, jax.random.PRNGKey(1))
  _tree_equal(plain_state, new_state)
  _tree_equal(plain_metrics, metrics)


def test_add_of_modules_without_a_discount_sums_them_on_every_path():
  module = rjx.rewards.add(rjx.rewards.extrinsic(), _key_module())
  assert module.gamma is None
  b = _batch(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
  state = module.init(jax.random.PRNGKey(0), b)
  u = float(state["term1"])
  np.testing.assert_allclose(module.reward(state, b), b.reward + u, rtol=1e-6)
  r, new_state, metrics = module.reward_and_update(state, b, jax.random.PRNGKey(1))
  np.testing.assert_allclose(r, b.reward + u, rtol=1e-6)
  assert r.shape == (2, 2) and sorted(metrics) == ["term1/u"]
  _tree_equal(module.update(state, b, jax.random.PRNGKey(1))[0], new_state)
  assert float(new_state["term1"]) != u


def test_resolve_keeps_the_channels_own_discounts():
  ch = rjx.rewards.combine(a=rjx.rewards.channel(rjx.rewards.extrinsic(), gamma=0.9),
                           b=rjx.rewards.extrinsic())
  assert ch.resolve(0.5).gammas == (0.9, 0.5)
  assert rjx.rewards.combine(a=rjx.rewards.extrinsic()).resolve(1.0).gammas == (1.0,)
  shaping = rjx.rewards.potential_shaping(lambda s: s[0], 0.9)
  assert rjx.rewards.channel(shaping, gamma=0.9).gamma == 0.9    # the matching γ is accepted
  with pytest.raises(ValueError, match=r"optimal policies only when they are equal \(Ng et al"):
    rjx.rewards.channel(shaping, gamma=0.99)


def test_transform_passes_state_keys_batch_and_metrics_through():
  # The inner module and a transform of one's own both read what they are given.
  inner = rjx.RewardModule(
      init=lambda key, ex: jax.random.uniform(key, ex.reward.shape),
      reward=lambda state, b: state + b.reward,
      update=lambda state, b, key: (jax.random.uniform(key, b.reward.shape), {"u": state.sum()}))
  own = transforms.RewardTransform(
      init=lambda r, b, key: jnp.zeros_like(b.reward),
      apply=lambda s, r, b: r + s + b.terminated,
      update=lambda s, r, b: (s + r, {"s": s.sum()}))
  m = rjx.rewards.transform(inner, own, rjx.rewards.scale(2.0))
  b = _batch(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), term=np.eye(2, dtype=bool))
  k0, k1 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
  state = m.init(k0, b)
  u0 = np.asarray(jax.random.uniform(k0, (2, 2)))
  np.testing.assert_allclose(state.module, u0)
  np.testing.assert_allclose(state.transforms[0], 0.0)
  r0 = u0 + np.asarray(b.reward)                             # the inner module's reward
  want = 2.0 * (r0 + r0 + np.eye(2))                         # own: s = 0 + r0, then + r + term
  np.testing.assert_allclose(m.reward(state, b), want, rtol=1e-6)
  r, new_state, metrics = m.reward_and_update(state, b, k1)
  np.testing.assert_allclose(r, want, rtol=1e-6)
  np.testing.assert_allclose(new_state.module, jax.random.uniform(k1, (2, 2)))
  np.testing.assert_allclose(new_state.transforms[0], r0, rtol=1e-6)
  assert sorted(metrics) == ["transform0/s", "u"]
  np.testing.assert_allclose(metrics["u"], u0.sum(), rtol=1e-6)
  _tree_equal(m.update(state, b, k1)[0], new_state)


def test_return_std_and_standardize_defaults_and_eps():
  rng = np.random.default_rng(17)
  r = rng.exponential(size=(4, 2)).astype(np.float32)
  b = _batch(r)
  for t, gamma, eps in ((rjx.rewards.normalize_by_return_std(), 0.99, 1e-8),
                        (rjx.rewards.normalize_by_return_std(0.9, eps=0.5), 0.9, 0.5)):
    m = rjx.rewards.transform(rjx.rewards.extrinsic(), t)
    ref = _NpReturnStd(2, gamma)
    ref.update(r)
    out, _, metrics = m.reward_and_update(m.init(jax.random.PRNGKey(0), b), b,
                                          jax.random.PRNGKey(0))
    np.testing.assert_allclose(out, ref.scale(r, eps), rtol=1e-5)
    np.testing.assert_allclose(metrics["transform0/return_std"], np.sqrt(ref.moments[1] + eps),
                               rtol=1e-5)
  with pytest.raises(ValueError, match="gamma"):
    rjx.rewards.normalize_by_return_std(1.5)
  m = rjx.rewards.transform(rjx.rewards.extrinsic(), transforms.standardize(eps=0.5))
  mean, var, _ = _np_merge((0.0, 1.0, 1e-4), r)
  out, _, metrics = m.reward_and_update(m.init(jax.random.PRNGKey(0), b), b, jax.random.PRNGKey(0))
  np.testing.assert_allclose(out, (r - mean) / np.sqrt(var + 0.5), rtol=1e-5)
  np.testing.assert_allclose(metrics["transform0/reward_std"], np.sqrt(var + 0.5), rtol=1e-5)

"""Tests for random network distillation (rewardjax.rewards.rnd)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax.rewards.channels import channel, combine
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.rewards.rnd import RNDState, rnd, rnd_init_obs_stats
from rewardjax.types import RewardModule, Transition

# Small networks keep every test well under a second of compute on a CPU.
SMALL = dict(target_hidden=(32, 32), predictor_hidden=(32, 32, 32), output_dim=16)


def make_batch(next_obs, batch_ndim=2):
  shape = next_obs.shape[:batch_ndim]
  next_obs = jnp.asarray(next_obs)
  return Transition(
      obs=next_obs, action=jnp.zeros(shape, jnp.int32),
      reward=jnp.zeros(shape, jnp.float32), next_obs=next_obs,
      terminated=jnp.zeros(shape, bool), truncated=jnp.zeros(shape, bool))


class _Identity(nn.Module):
  """A parameter-free "target": the flattened normalised observation itself."""

  @nn.compact
  def __call__(self, x):
    return jnp.reshape(x, (x.shape[0], -1))


class _Zeros(nn.Module):
  """A parameter-free "predictor" that always predicts 0."""

  @nn.compact
  def __call__(self, x):
    return jnp.zeros((x.shape[0], int(np.prod(x.shape[1:]))), x.dtype)


def jitted(module):
  """The module with ``reward`` and ``update`` jitted.

  ``init`` stays op-by-op: its eager primitives are cached across module
  instances with the same layer shapes, whereas a jitted ``init`` closes over a
  fresh module each test and recompiles every time.
  """
  return RewardModule(module.init, jax.jit(module.reward), jax.jit(module.update))


def small_rnd(**kw):
  return jitted(rnd(**{**SMALL, **kw}))


def analytic_rnd(**kw):
  # With these networks the raw bonus is mean_k clip((s − μ)/σ, ±5)_k², which a
  # numpy reference can compute exactly.
  return jitted(rnd(target_network=_Identity(), predictor_network=_Zeros(), **kw))


# ---------------------------------------------------------------- numpy references

class NumpyRunningMeanStd:
  """baselines' RunningMeanStd (as used by the RND reference code)."""

  def __init__(self, shape=(), epsilon=1e-4):
    self.mean = np.zeros(shape, np.float64)
    self.var = np.ones(shape, np.float64)
    self.count = epsilon

  def update(self, x):
    batch_mean, batch_var, batch_count = x.mean(0), x.var(0), x.shape[0]
    delta = batch_mean - self.mean
    tot = self.count + batch_count
    new_mean = self.mean + delta * batch_count / tot
    m2 = (self.var * self.count + batch_var * batch_count
          + delta**2 * self.count * batch_count / tot)
    self.mean, self.var, self.count = new_mean, m2 / tot, tot


class NumpyRewardForwardFilter:
  """The reference code's RewardForwardFilter."""

  def __init__(self, gamma):
    self.rewems = None
    self.gamma = gamma

  def update(self, rews):
    self.rewems = rews if self.rewems is None else self.rewems * self.gamma + rews
    return self.rewems


def numpy_bonus(obs_rms, next_obs, obs_shape_ndim, clip=5.0, eps=1e-8):
  x = np.clip((next_obs - obs_rms.mean) / np.sqrt(obs_rms.var + eps), -clip, clip)
  axes = tuple(range(next_obs.ndim - obs_shape_ndim, next_obs.ndim))
  return np.mean(x**2, axis=axes)


# ---------------------------------------------------------------- tests

def test_bonus_drops_on_trained_observations_and_stays_high_on_novel_ones():
  rng = np.random.default_rng(0)
  T, N, D = 8, 8, 4
  seen = rng.normal(size=(T, N, D)).astype(np.float32)
  novel = (seen + 4.0).astype(np.float32)   # ~4 std away in every feature
  module = rnd(learning_rate=3e-3, **SMALL)
  raw = rnd(normalize_reward=False, **SMALL)   # same state, unnormalised bonus
  batch = make_batch(seen)
  state = module.init(jax.random.PRNGKey(0), batch)
  raw_reward = jax.jit(raw.reward)

  @jax.jit
  def train(state, key):
    def body(s, k):
      return module.update(s, batch, k)
    return jax.lax.scan(body, state, jax.random.split(key, 200))

  before = raw_reward(state, batch)
  trained, metrics = train(state, jax.random.PRNGKey(1))
  after = raw_reward(trained, batch)
  assert float(metrics["rnd_loss"][-1]) < 0.2 * float(metrics["rnd_loss"][0])
  assert float(after.mean()) < 0.2 * float(before.mean())

  # Seen and novel observations side by side in one batch, so that both are
  # divided by the same running return std.
  mixed = make_batch(np.concatenate([seen, novel], axis=1))
  mixed_state = trained._replace(returns=trained.returns._replace(ret=jnp.zeros((2 * N,))))
  r = jax.jit(module.reward)(mixed_state, mixed)
  assert bool(jnp.all(jnp.isfinite(r)))
  r_seen, r_novel = r[:, :N], r[:, N:]
  assert float(r_novel.mean()) > 5.0 * float(r_seen.mean())
  # Nearly every novel observation is more surprising than every seen one.
  assert float(jnp.mean(r_novel > jnp.max(r_seen))) > 0.9


def test_obs_normaliser_matches_numpy_reference():
  rng = np.random.default_rng(1)
  T, N = 5, 4
  scale = np.array([1.0, 10.0, 0.1], np.float32)
  example = (rng.normal(size=(T, N, 3)) * scale + [3.0, -2.0, 0.5]).astype(np.float32)
  batch1 = (rng.normal(size=(T, N, 3)) * scale * 2 + 1.0).astype(np.float32)
  batch1[0, 0] = [1e3, -1e3, 0.0]   # far outliers must be clipped at ±5
  module = analytic_rnd(normalize_reward=False)

  ref = NumpyRunningMeanStd((3,))
  ref.update(example.reshape(-1, 3))
  state = module.init(jax.random.PRNGKey(0), make_batch(example))
  np.testing.assert_allclose(state.obs_moments.mean, ref.mean, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(state.obs_moments.var, ref.var, rtol=1e-4)
  np.testing.assert_allclose(state.obs_moments.count, T * N + 1e-4, rtol=1e-6)
  # The public warm-up function gives the same statistics.
  m = rnd_init_obs_stats(example, batch_ndim=2)
  np.testing.assert_allclose(m.mean, state.obs_moments.mean, rtol=1e-6)
  np.testing.assert_allclose(m.var, state.obs_moments.var, rtol=1e-6)

  # The bonus uses the statistics from before the batch, with clipping at 5.
  r = module.reward(state, make_batch(batch1))
  expected = numpy_bonus(ref, batch1, 1)
  np.testing.assert_allclose(r, expected, rtol=1e-4, atol=1e-5)
  assert float(r[0, 0]) == pytest.approx((25.0 + 25.0 + expected[0, 0] * 3 - 50.0) / 3, rel=1e-4)
  x00 = (batch1[0, 0] - ref.mean) / np.sqrt(ref.var)
  assert abs(x00[0]) > 5 and abs(x00[1]) > 5   # the outliers really were clipped

  # ``update`` merges the batch's next observations into the statistics.
  state, _ = module.update(state, make_batch(batch1), jax.random.PRNGKey(1))
  ref.update(batch1.reshape(-1, 3))
  np.testing.assert_allclose(state.obs_moments.mean, ref.mean, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(state.obs_moments.var, ref.var, rtol=1e-4)


def test_rnd_init_obs_stats_checks_batch_ndim():
  with pytest.raises(ValueError, match="batch_ndim"):
    rnd_init_obs_stats(jnp.zeros((3, 4)), batch_ndim=3)


@pytest.mark.parametrize("gamma", [0.99, 0.5])
def test_return_std_normaliser_matches_numpy_reference_over_two_batches(gamma):
  rng = np.random.default_rng(2)
  T, N, D = 6, 3, 2
  example, b1, b2 = (rng.normal(size=(T, N, D)).astype(np.float32) * s for s in (1, 2, 3))
  module = analytic_rnd(gamma=gamma)
  state = module.init(jax.random.PRNGKey(0), make_batch(example))

  obs_rms = NumpyRunningMeanStd((D,))
  obs_rms.update(example.reshape(-1, D))
  rff = NumpyRewardForwardFilter(gamma)
  ret_rms = NumpyRunningMeanStd()

  for b in (b1, b2):
    # Reference order (ppo_agent.py): bonus with the pre-rollout obs stats, then
    # filter the batch, update the return moments, divide by their std.
    e = numpy_bonus(obs_rms, b, 1)                     # [T, N]
    rets = np.array([rff.update(rew) for rew in e])    # time-major
    ret_rms.update(rets.ravel())
    expected = e / np.sqrt(ret_rms.var)
    obs_rms.update(b.reshape(-1, D))

    r = module.reward(state, make_batch(b))
    np.testing.assert_allclose(r, expected, rtol=1e-4, atol=1e-6)
    state, metrics = module.update(state, make_batch(b), jax.random.PRNGKey(1))
    np.testing.assert_allclose(state.returns.ret, rff.rewems, rtol=1e-4)
    np.testing.assert_allclose(state.returns.moments.var, ret_rms.var, rtol=1e-4)
    np.testing.assert_allclose(metrics["intrinsic_return_std"], np.sqrt(ret_rms.var), rtol=1e-4)
    np.testing.assert_allclose(metrics["intrinsic_mean"], expected.mean(), rtol=1e-4)
    np.testing.assert_allclose(metrics["intrinsic_raw_mean"], e.mean(), rtol=1e-4)

  # Switched off, the bonus is the raw error, but the statistics still run.
  plain = analytic_rnd(gamma=gamma, normalize_reward=False)
  s = plain.init(jax.random.PRNGKey(0), make_batch(example))
  s, _ = plain.update(s, make_batch(b1), jax.random.PRNGKey(1))
  np.testing.assert_allclose(
      plain.reward(s, make_batch(b2)),
      numpy_bonus(_rms_of(example, b1), b2, 1), rtol=1e-4, atol=1e-6)
  assert float(s.returns.moments.count) > 1.0


def _rms_of(*batches):
  rms = NumpyRunningMeanStd((batches[0].shape[-1],))
  for b in batches:
    rms.update(b.reshape(-1, b.shape[-1]))
  return rms


@pytest.mark.parametrize("obs_shape,dtype", [((10, 10), np.float32), ((5, 5, 2), np.uint8)])
def test_shapes_and_finiteness_for_image_like_observations(obs_shape, dtype):
  rng = np.random.default_rng(3)
  T, N = 4, 3
  obs = rng.integers(0, 255, size=(T, N) + obs_shape).astype(dtype)
  obs[..., 0, 0] = 7   # a constant pixel: zero variance must not produce NaNs
  module = small_rnd()
  state = module.init(jax.random.PRNGKey(0), make_batch(obs))
  assert isinstance(state, RNDState)
  assert state.obs_moments.mean.shape == obs_shape
  assert state.returns.ret.shape == (N,)
  r = module.reward(state, make_batch(obs))
  assert r.shape == (T, N)
  assert r.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(r))) and bool(jnp.all(r >= 0))
  state, metrics = module.update(state, make_batch(obs), jax.random.PRNGKey(1))
  for name in ("rnd_loss", "intrinsic_mean", "intrinsic_return_std"):
    assert metrics[name].shape == ()
    assert bool(jnp.isfinite(metrics[name]))
  assert bool(jnp.all(jnp.isfinite(module.reward(state, make_batch(obs)))))


def test_flat_batches():
  rng = np.random.default_rng(4)
  obs = rng.normal(size=(16, 4)).astype(np.float32)
  module = small_rnd()
  state = module.init(jax.random.PRNGKey(0), make_batch(obs, batch_ndim=1))
  assert module.reward(state, make_batch(obs, 1)).shape == (16,)
  state, metrics = module.update(state, make_batch(obs, 1), jax.random.PRNGKey(1))
  assert state.returns.ret.shape == ()
  assert bool(jnp.isfinite(metrics["rnd_loss"]))


def test_jit_and_vmap_over_keys():
  rng = np.random.default_rng(5)
  batch = make_batch(rng.normal(size=(4, 2, 3)).astype(np.float32))
  module = rnd(**SMALL)
  single = jitted(module)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)

  init = jax.jit(jax.vmap(module.init, in_axes=(0, None)))
  reward = jax.jit(jax.vmap(module.reward, in_axes=(0, None)))
  update = jax.jit(jax.vmap(module.update, in_axes=(0, None, 0)))
  states = init(keys, batch)
  r = reward(states, batch)
  assert r.shape == (3, 4, 2)
  # Different keys, different random targets.
  assert float(jnp.abs(r[0] - r[1]).max()) > 0
  new_states, metrics = update(states, batch, keys)
  assert metrics["rnd_loss"].shape == (3,)

  # Each vmapped lane equals the unbatched computation.
  s1 = single.init(keys[1], batch)
  np.testing.assert_allclose(r[1], single.reward(s1, batch), rtol=1e-5, atol=1e-6)
  s1, m1 = single.update(s1, batch, keys[1])
  np.testing.assert_allclose(metrics["rnd_loss"][1], m1["rnd_loss"], rtol=1e-5)
  np.testing.assert_allclose(
      reward(new_states, batch)[1], single.reward(s1, batch), rtol=1e-4, atol=1e-6)


def test_predictor_trained_only_on_chosen_proportion():
  rng = np.random.default_rng(6)
  batch = make_batch(rng.normal(size=(8, 8, 3)).astype(np.float32))
  key = jax.random.PRNGKey(0)

  frozen = small_rnd(update_proportion=0.0, num_grad_steps=3)
  state = frozen.init(key, batch)
  new, metrics = frozen.update(state, batch, jax.random.PRNGKey(1))
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                      state.predictor_params, new.predictor_params)
  assert all(jax.tree.leaves(same))
  assert float(metrics["rnd_loss"]) == 0.0
  assert float(metrics["rnd_update_fraction"]) == 0.0
  # The statistics still move; the target never does.
  assert not bool(jnp.array_equal(state.obs_moments.count, new.obs_moments.count))
  assert all(jax.tree.leaves(jax.tree.map(
      lambda a, b: bool(jnp.array_equal(a, b)), state.target_params, new.target_params)))

  full = small_rnd(update_proportion=1.0)
  # The three modules differ only in ``update``: they share one initial state.
  new, metrics = full.update(state, batch, jax.random.PRNGKey(1))
  changed = jax.tree.map(lambda a, b: not bool(jnp.array_equal(a, b)),
                         state.predictor_params, new.predictor_params)
  assert all(jax.tree.leaves(changed))
  assert float(metrics["rnd_update_fraction"]) == 1.0

  # With proportion p, about p of the samples enter each gradient step.
  part = small_rnd(update_proportion=0.25, num_grad_steps=4)
  big = make_batch(rng.normal(size=(256, 8, 3)).astype(np.float32))
  _, metrics = part.update(state, big, jax.random.PRNGKey(2))
  assert float(metrics["rnd_update_fraction"]) == pytest.approx(0.25, abs=0.03)


def test_masked_loss_uses_only_selected_samples():
  # A loss on a subset gives a different gradient from the full-batch loss, so
  # the trained predictor differs between proportions 0.5 and 1 (same key).
  rng = np.random.default_rng(7)
  batch = make_batch(rng.normal(size=(8, 4, 3)).astype(np.float32))
  key = jax.random.PRNGKey(0)
  half, full = small_rnd(update_proportion=0.5), small_rnd(update_proportion=1.0)
  s = half.init(key, batch)
  s_half, m_half = half.update(s, batch, jax.random.PRNGKey(3))
  s_full, m_full = full.update(s, batch, jax.random.PRNGKey(3))
  assert 0.0 < float(m_half["rnd_update_fraction"]) < 1.0
  assert float(m_half["rnd_loss"]) != pytest.approx(float(m_full["rnd_loss"]), rel=1e-6)
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                      s_half.predictor_params, s_full.predictor_params)
  assert max(jax.tree.leaves(diff)) > 0


def test_paper_setup_channels():
  rng = np.random.default_rng(8)
  obs = rng.normal(size=(4, 2, 3)).astype(np.float32)
  batch = make_batch(obs)._replace(reward=jnp.ones((4, 2)))
  rewards = combine(
      extrinsic=channel(extrinsic(), coef=2.0, gamma=0.999),
      novelty=channel(rnd(), coef=1.0, gamma=0.99, episodic=False),
  )
  assert rewards.names == ("extrinsic", "novelty")
  assert rewards.episodic == (True, False)
  state = rewards.init(jax.random.PRNGKey(0), batch)
  r = jax.jit(rewards.reward)(state, batch)
  assert r.shape == (4, 2, 2)
  np.testing.assert_allclose(r[..., 0], 1.0)
  assert bool(jnp.all(r[..., 1] > 0))
  state, metrics = jax.jit(rewards.update)(state, batch, jax.random.PRNGKey(1))
  assert "novelty/rnd_loss" in metrics


@pytest.mark.parametrize("kw", [
    dict(update_proportion=1.5), dict(update_proportion=-0.1), dict(num_grad_steps=0),
    dict(gamma=0.0), dict(gamma=1.5), dict(obs_clip=0.0), dict(learning_rate=0.0)])
def test_rejects_bad_hyperparameters(kw):
  with pytest.raises(ValueError):
    rnd(**kw)


def _all_finite(tree) -> bool:
  return all(bool(np.isfinite(np.asarray(x)).all()) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_nonfinite_observation_cannot_poison_the_state(bad):
  module = jitted(rnd(**SMALL))
  clean = make_batch(jax.random.normal(jax.random.PRNGKey(0), (8, 4, 3)))
  state = module.init(jax.random.PRNGKey(1), clean)
  poisoned = clean._replace(next_obs=clean.next_obs.at[2, 1, 0].set(bad))
  # The bad observation is paid 0; the others keep their finite bonus.
  r = np.asarray(module.reward(state, poisoned))
  assert np.isfinite(r).all() and r[2, 1] == 0.0 and (np.delete(r.ravel(), 2 * 4 + 1) > 0).all()
  state, metrics = module.update(state, poisoned, jax.random.PRNGKey(2))
  assert _all_finite(state) and _all_finite(metrics)
  assert float(metrics["nonfinite_inputs"]) == 1.0
  # Later clean batches give finite rewards, and count no bad input.
  for k in range(3):
    r = module.reward(state, clean)
    assert np.isfinite(np.asarray(r)).all()
    state, metrics = module.update(state, clean, jax.random.PRNGKey(3 + k))
    assert _all_finite(state) and float(metrics["nonfinite_inputs"]) == 0.0


def test_nonfinite_observations_are_left_out_of_the_statistics():
  module = jitted(rnd(**SMALL, update_proportion=1.0))
  obs = jax.random.normal(jax.random.PRNGKey(0), (8, 4, 3))
  clean = make_batch(obs)
  state = module.init(jax.random.PRNGKey(1), clean)
  poisoned = clean._replace(next_obs=obs.at[0, 0, 1].set(jnp.nan).at[5, 3].set(jnp.inf))
  after, metrics = module.update(state, poisoned, jax.random.PRNGKey(2))
  assert float(metrics["nonfinite_inputs"]) == 2.0
  # Observation moments: the 30 finite observations stand for the batch of 32.
  finite = np.delete(np.asarray(obs).reshape(32, 3), [0, 5 * 4 + 3], axis=0)
  m = state.obs_moments
  total = m.count + 32
  delta = finite.mean(0) - m.mean
  np.testing.assert_allclose(after.obs_moments.mean, m.mean + delta * 32 / total, rtol=1e-5)
  np.testing.assert_allclose(
      after.obs_moments.var,
      (m.var * m.count + finite.var(0) * 32 + delta**2 * m.count * 32 / total) / total, rtol=1e-5)
  # A batch with no finite observation leaves the statistics and predictor finite.
  all_bad = clean._replace(next_obs=jnp.full_like(obs, jnp.nan))
  state2, metrics = module.update(after, all_bad, jax.random.PRNGKey(3))
  assert float(metrics["nonfinite_inputs"]) == 32.0 and _all_finite(state2)
  np.testing.assert_array_equal(state2.obs_moments.mean, after.obs_moments.mean)
  assert np.all(np.asarray(module.reward(after, all_bad)) == 0.0)


"""Tests for attention-based reward redistribution (rewardjax.rewards.redistribution)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardjax.rewards.redistribution import last_valid_step
from rewardjax.rewards.redistribution import redistribute
from rewardjax.rewards.redistribution import uniform_redistribution

RTOL = 1e-5
ATOL = 1e-6
SETTINGS = settings(max_examples=50, deadline=None)

# Values are 0 or at least 1e-6 in magnitude: float64 numbers that would be float32
# subnormals are flushed to zero by XLA on CPU, which the float64 reference would not do.
def _not_tiny(x):
  return x == 0.0 or abs(x) >= 1e-6


_attn_value = st.one_of(
    st.just(0.0),
    st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False,
              allow_subnormal=False).filter(_not_tiny))
_reward = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False,
                    allow_subnormal=False).filter(_not_tiny)
_beta = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)


@st.composite
def _sequence(draw, min_t=1, max_t=12):
  """(attention[T], mask[T] with >= 1 valid step, R, beta) as float64 numpy."""
  t = draw(st.integers(min_t, max_t))
  attention = np.asarray(draw(st.lists(_attn_value, min_size=t, max_size=t)))
  mask = np.asarray(draw(st.lists(st.booleans(), min_size=t, max_size=t)))
  mask[draw(st.integers(0, t - 1))] = True
  return attention, mask, draw(_reward), draw(_beta)


def _close(actual, expected, scale=1.0):
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL,
                             atol=ATOL * max(1.0, abs(scale)))


# ----------------------------------------------------------------------------
# Properties.


@SETTINGS
@given(_sequence())
def test_conserves_return(seq):
  attention, mask, r, beta = seq
  out = redistribute(attention, r, mask, beta)
  _close(np.sum(np.asarray(out, np.float64)), r, r)


@SETTINGS
@given(_sequence())
def test_beta_zero_pays_everything_at_last_valid_step(seq):
  attention, mask, r, _ = seq
  out = np.asarray(redistribute(attention, r, mask, 0.0))
  last = np.flatnonzero(mask)[-1]
  expected = np.zeros(mask.shape)
  expected[last] = r
  np.testing.assert_array_equal(out, expected.astype(out.dtype))


@SETTINGS
@given(_sequence(), st.floats(0.01, 10.0, allow_subnormal=False))
def test_beta_one_uniform_attention_is_r_over_t(seq, c):
  _, mask, r, _ = seq
  n = mask.sum()
  expected = np.where(mask, r / n, 0.0)
  _close(redistribute(np.full(mask.shape, c), r, mask, 1.0), expected, r)
  _close(uniform_redistribution(r, mask), expected, r)


@SETTINGS
@given(_sequence(), st.lists(st.floats(-5.0, 50.0, allow_subnormal=False), min_size=12,
                             max_size=12))
def test_padded_positions_get_exactly_zero(seq, junk):
  attention, mask, r, beta = seq
  # Whatever the attention says at padded positions (even large or negative).
  attention = np.where(mask, attention, np.asarray(junk[:mask.size]))
  out = np.asarray(redistribute(attention, r, mask, beta))
  assert np.all(out[~mask] == 0.0)


@SETTINGS
@given(_sequence())
def test_matches_reference_formula(seq):
  attention, mask, r, beta = seq
  a = np.where(mask, attention, 0.0)
  w = a / a.sum() if a.sum() > 0 else mask / mask.sum()
  last = np.zeros(mask.shape)
  last[np.flatnonzero(mask)[-1]] = 1.0
  expected = np.where(mask, beta * r * w + (1 - beta) * r * last, 0.0)
  _close(redistribute(attention, r, mask, beta), expected, r)


@SETTINGS
@given(
    st.integers(1, 10).flatmap(
        lambda n: st.lists(_attn_value, min_size=n, max_size=n)),
    _reward, _beta, st.integers(0, 6),
    st.lists(st.floats(0.0, 10.0, allow_subnormal=False), min_size=6, max_size=6))
def test_invariant_to_padding_side(valid_attention, r, beta, pad, junk):
  valid_attention = np.asarray(valid_attention)
  n = valid_attention.size
  junk = np.asarray(junk[:pad])
  left_attn = np.concatenate([junk, valid_attention])
  left_mask = np.concatenate([np.zeros(pad, bool), np.ones(n, bool)])
  right_attn = np.concatenate([valid_attention, junk])
  right_mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
  left = np.asarray(redistribute(left_attn, r, left_mask, beta))
  right = np.asarray(redistribute(right_attn, r, right_mask, beta))
  unpadded = np.asarray(redistribute(valid_attention, r, np.ones(n, bool), beta))
  np.testing.assert_allclose(left[pad:], right[:n], rtol=RTOL, atol=ATOL * max(1, abs(r)))
  np.testing.assert_allclose(left[pad:], unpadded, rtol=RTOL, atol=ATOL * max(1, abs(r)))


# ----------------------------------------------------------------------------
# Edge cases and documented choices.


def test_all_zero_attention_falls_back_to_uniform():
  mask = jnp.array([False, True, True, True, False])
  out = redistribute(jnp.array([5.0, 0.0, 0.0, 0.0, 7.0]), 6.0, mask, 1.0)
  np.testing.assert_allclose(out, [0.0, 2.0, 2.0, 2.0, 0.0], rtol=RTOL)
  out = redistribute(jnp.zeros(5), 6.0, mask, 0.5)
  np.testing.assert_allclose(out, [0.0, 1.0, 1.0, 4.0, 0.0], rtol=RTOL)


def test_negative_attention_is_clipped_to_zero():
  mask = jnp.ones(3, bool)
  out = redistribute(jnp.array([-1.0, 1.0, 3.0]), 4.0, mask, 1.0)
  np.testing.assert_allclose(out, [0.0, 1.0, 3.0], rtol=RTOL)
  # All negative: no mass left, so uniform.
  out = redistribute(jnp.array([-1.0, -2.0, -3.0]), 3.0, mask, 1.0)
  np.testing.assert_allclose(out, [1.0, 1.0, 1.0], rtol=RTOL)


def test_no_valid_step_gives_zeros():
  out = redistribute(jnp.ones((2, 4)), jnp.array([1.0, 2.0]), jnp.zeros((2, 4), bool), 0.3)
  np.testing.assert_array_equal(out, np.zeros((2, 4)))
  np.testing.assert_array_equal(last_valid_step(jnp.zeros(4, bool)), np.zeros(4, bool))


def test_numeric_mask_and_integer_inputs():
  # Hugging Face style int attention mask, integer rewards.
  out = redistribute(jnp.array([[1, 1, 2]]), jnp.array([8]), jnp.array([[0, 1, 1]]), 1.0)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, [[0.0, 8 / 3, 16 / 3]], rtol=RTOL)


def test_last_valid_step_left_and_right_padding():
  mask = jnp.array([[0, 0, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0]], bool)
  np.testing.assert_array_equal(
      last_valid_step(mask),
      [[0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])


def test_rlhf_batch_example_left_padded():
  b, t = 3, 6
  key = jax.random.PRNGKey(0)
  logits = jax.random.normal(key, (b, t))
  attn = jax.nn.softmax(logits, axis=-1)
  lengths = jnp.array([6, 4, 2])
  attention_mask = jnp.arange(t)[None, :] >= (t - lengths)[:, None]  # left padding
  scores = jnp.array([1.5, -0.5, 2.0])
  out = redistribute(attn, scores, attention_mask, beta=0.5)
  assert out.shape == (b, t)
  np.testing.assert_allclose(out.sum(-1), scores, rtol=RTOL)
  assert np.all(np.asarray(out)[~np.asarray(attention_mask)] == 0.0)
  # Half of each score sits on the final token on top of its attention share.
  w_last = attn[:, -1] / jnp.sum(jnp.where(attention_mask, attn, 0), -1)
  np.testing.assert_allclose(out[:, -1], scores * (0.5 + 0.5 * w_last), rtol=RTOL)


# ----------------------------------------------------------------------------
# Transformations.


def test_jit_with_traced_beta_and_vmap():
  key1, key2, key3 = jax.random.split(jax.random.PRNGKey(1), 3)
  attn = jax.random.uniform(key1, (5, 7))
  mask = jax.random.bernoulli(key2, 0.6, (5, 7)).at[:, 3].set(True)
  r = jax.random.normal(key3, (5,))
  eager = redistribute(attn, r, mask, 0.7)
  jitted = jax.jit(redistribute)(attn, r, mask, 0.7)
  np.testing.assert_allclose(jitted, eager, rtol=RTOL, atol=ATOL)
  vmapped = jax.vmap(redistribute, in_axes=(0, 0, 0, None))(attn, r, mask, 0.7)
  np.testing.assert_allclose(vmapped, eager, rtol=RTOL, atol=ATOL)
  # vmap over beta too (per-sequence beta).
  betas = jnp.linspace(0.0, 1.0, 5)
  per_row = jax.jit(jax.vmap(redistribute))(attn, r, mask, betas)
  np.testing.assert_allclose(per_row, redistribute(attn, r, mask, betas), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(per_row.sum(-1), r, rtol=RTOL, atol=ATOL)
  uni = jax.jit(jax.vmap(uniform_redistribution))(r, mask)
  np.testing.assert_allclose(uni.sum(-1), r, rtol=RTOL, atol=ATOL)


def test_gradients_are_finite_with_zero_attention_rows():
  mask = jnp.array([[True, True, False], [True, True, True]])
  attn = jnp.array([[0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])

  def loss(a):
    return jnp.sum(redistribute(a, jnp.array([1.0, 2.0]), mask, 0.5) ** 2)

  g = jax.grad(loss)(attn)
  assert np.all(np.isfinite(np.asarray(g)))


# ----------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("attn_shape,reward_shape,mask_shape,match", [
    ((2, 5), (2,), (2, 4), "mask shape"),
    ((2, 5), (3,), (2, 5), "reward shape"),
    ((2, 5), (), (2, 5), "reward shape"),
    ((), (), (), "time axis"),
])
def test_shape_errors(attn_shape, reward_shape, mask_shape, match):
  with pytest.raises(ValueError, match=match):
    redistribute(jnp.ones(attn_shape), jnp.ones(reward_shape), jnp.ones(mask_shape, bool))


@pytest.mark.parametrize("beta", [-0.1, 1.5, True])
def test_beta_range_error(beta):
  with pytest.raises(ValueError, match="beta"):
    redistribute(jnp.ones(3), 1.0, jnp.ones(3, bool), beta)


def test_beta_shape_error():
  with pytest.raises(ValueError, match="beta shape"):
    redistribute(jnp.ones((2, 3)), jnp.ones(2), jnp.ones((2, 3), bool), jnp.ones(3))


def test_uniform_redistribution_needs_time_axis():
  with pytest.raises(ValueError, match="time axis"):
    uniform_redistribution(1.0, True)


# ----------------------------------------------------------------------------
# Batches, dtypes, defaults and numeric masks against a per-row NumPy reference.


def _reference(attention, reward, mask, beta):
  """``r_t = β·R·w_t + (1 − β)·R·1[t = t_last]`` row by row in float64 NumPy."""
  attention = np.asarray(attention, np.float64)
  mask = np.asarray(mask) != 0
  reward = np.broadcast_to(np.asarray(reward, np.float64), attention.shape[:-1])
  beta = np.broadcast_to(np.asarray(beta, np.float64), attention.shape[:-1])
  out = np.zeros(attention.shape)
  for i in np.ndindex(attention.shape[:-1]):
    valid = np.flatnonzero(mask[i])
    if valid.size == 0:
      continue
    a = np.where(mask[i], np.maximum(attention[i], 0.0), 0.0)
    w = a / a.sum() if a.sum() > 0 else mask[i] / valid.size
    last = np.zeros(mask.shape[-1])
    last[valid[-1]] = 1.0
    out[i] = np.where(mask[i], beta[i] * reward[i] * w + (1 - beta[i]) * reward[i] * last, 0.0)
  return out


def test_default_beta_is_pure_attention_credit():
  attention = jnp.array([1.0, 3.0, 0.0, 4.0])
  mask = jnp.array([True, True, True, False])
  out = redistribute(attention, 8.0, mask)
  np.testing.assert_allclose(out, [2.0, 6.0, 0.0, 0.0], rtol=RTOL)


def test_any_nonzero_mask_value_marks_a_valid_step():
  # Valid steps 1, 3 and 4 (mask values 2, 5, -1); the last valid step is 4.
  mask = jnp.array([0, 2, 0, 5, -1, 0])
  attention = jnp.array([1.0, 1.0, 1.0, 3.0, 1.0, 9.0])
  out = redistribute(attention, 6.0, mask, 0.5)
  # w = [0, .2, 0, .6, .2, 0]; out = 3·w + 3·1[t = 4].
  np.testing.assert_allclose(out, [0.0, 0.6, 0.0, 1.8, 3.6, 0.0], rtol=RTOL)
  np.testing.assert_array_equal(last_valid_step(mask), [0, 0, 0, 0, 1, 0])


def test_last_valid_step_of_batched_masks_with_empty_rows():
  rng = np.random.default_rng(0)
  mask = rng.integers(-1, 2, size=(3, 4, 6)) * rng.integers(0, 2, size=(3, 4, 6))
  mask[0, 1] = 0                        # rows without a valid step
  mask[2, 3] = 0
  mask[1, 2] = [0, 0, 0, 0, 0, 7]       # only the final step valid
  expected = np.zeros(mask.shape, bool)
  for i in np.ndindex(mask.shape[:-1]):
    valid = np.flatnonzero(mask[i])
    if valid.size:
      expected[i + (valid[-1],)] = True
  np.testing.assert_array_equal(last_valid_step(jnp.asarray(mask)), expected)
  np.testing.assert_array_equal(
      last_valid_step(jnp.array([[0, 0, 0, 0], [0, 3, 0, 0], [1, 0, 0, 0]])),
      [[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])


def test_batched_rows_match_the_per_row_reference():
  rng = np.random.default_rng(1)
  attention = rng.uniform(0.0, 1.0, size=(2, 3, 5)) * (rng.uniform(size=(2, 3, 5)) > 0.3)
  mask = rng.uniform(size=(2, 3, 5)) > 0.4
  mask[:, :, 1] = True
  attention[0, 0] = 0.0                              # no attention mass: uniform
  attention[0, 1] = [0.0, 0.0, 0.0, -1.0, 0.0]       # one valid step, zero attention
  mask[0, 1] = [False, False, True, False, False]
  mask[1, 2] = False                                 # no valid step
  attention[1, 0] = [0.1, 0.05, 0.2, 0.1, 0.05]      # attention mass below 1
  mask[1, 0] = True
  reward = rng.normal(size=(2, 3)) * 5
  beta = rng.uniform(size=(2, 3))
  out = redistribute(attention.astype(np.float32), reward.astype(np.float32), mask,
                     beta.astype(np.float32))
  np.testing.assert_allclose(out, _reference(attention, reward, mask, beta), rtol=RTOL,
                             atol=1e-5)
  np.testing.assert_allclose(out[0, 1], [0.0, 0.0, reward[0, 1], 0.0, 0.0], rtol=RTOL)
  uniform = uniform_redistribution(reward.astype(np.float32), mask)
  np.testing.assert_allclose(uniform, _reference(np.ones(mask.shape), reward, mask, 1.0),
                             rtol=RTOL, atol=1e-5)


def test_one_valid_step_without_attention_gets_the_whole_return():
  mask = jnp.array([False, True, False])
  for beta in (1.0, 0.3):
    np.testing.assert_allclose(redistribute(jnp.zeros(3), 5.0, mask, beta), [0.0, 5.0, 0.0],
                               rtol=RTOL)
  np.testing.assert_allclose(uniform_redistribution(5.0, mask), [0.0, 5.0, 0.0], rtol=RTOL)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_inputs_keep_their_dtype(dtype):
  attention = jnp.array([[0.5, 1.5, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype)
  mask = jnp.array([[True, True, True, False], [True, False, True, True]])
  reward = jnp.array([4.0, 3.0], dtype)
  out = redistribute(attention, reward, mask, 0.5)
  assert out.dtype == dtype
  np.testing.assert_allclose(np.asarray(out, np.float64),
                             _reference(attention, reward, mask, 0.5), rtol=1e-2, atol=1e-2)
  uniform = uniform_redistribution(reward, mask)
  assert uniform.dtype == dtype
  np.testing.assert_allclose(np.asarray(uniform, np.float64),
                             _reference(np.ones(mask.shape), reward, mask, 1.0), rtol=1e-2)


def test_mixed_precision_inputs_promote():
  mask = jnp.ones(3, bool)
  half = jnp.array([1.0, 1.0, 2.0], jnp.float16)
  full = jnp.array([1.0, 1.0, 2.0], jnp.float32)
  assert redistribute(half, jnp.float32(4.0), mask).dtype == jnp.float32
  assert redistribute(full, jnp.float16(4.0), mask).dtype == jnp.float32
  np.testing.assert_allclose(redistribute(full, jnp.float16(4.0), mask), [1.0, 1.0, 2.0])


def test_integer_inputs_with_fractional_beta():
  out = redistribute(jnp.array([[1, 1, 2]]), jnp.array([8]), jnp.array([[1, 1, 1]]), 0.5)
  assert out.dtype == jnp.float32
  # w = [1/4, 1/4, 1/2]: 4·w plus 4 at the last step.
  np.testing.assert_allclose(out, [[1.0, 1.0, 6.0]], rtol=RTOL)
  uniform = uniform_redistribution(jnp.array([6]), jnp.array([[0, 1, 1, 1]]))
  assert uniform.dtype == jnp.float32
  np.testing.assert_allclose(uniform, [[0.0, 2.0, 2.0, 2.0]], rtol=RTOL)


def test_shape_error_messages_name_the_shapes():
  with pytest.raises(ValueError, match=r"attention's batch shape \(2, 3\) \(attention is "
                                       r"\[\.\.\., T\] = \(2, 3, 5\)\)"):
    redistribute(jnp.ones((2, 3, 5)), jnp.ones(2), jnp.ones((2, 3, 5), bool))
  with pytest.raises(ValueError, match=r"mask shape \(2, 4\) must equal attention shape "
                                       r"\(2, 5\)"):
    redistribute(jnp.ones((2, 5)), jnp.ones(2), jnp.ones((2, 4), bool))
  with pytest.raises(ValueError, match=r"beta shape \(3,\) does not broadcast to reward "
                                       r"shape \(2,\)"):
    redistribute(jnp.ones((2, 3)), jnp.ones(2), jnp.ones((2, 3), bool), jnp.ones(3))

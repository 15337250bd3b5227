"""Running statistics used by observation and reward normalisers.

``RunningMoments`` merges batch moments with Chan et al.'s parallel algorithm
(the same update as OpenAI baselines' ``RunningMeanStd``, which RND's reference
code uses), so a sharded or vmapped update can combine partial statistics
exactly. ``discounted_return_filter`` is RND's ``RewardForwardFilter``: a per-
environment running discounted sum of rewards whose standard deviation scales
intrinsic rewards (Burda et al. 2018).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rewardjax import sharding
from rewardjax.types import Array


class RunningMoments(NamedTuple):
  """Mean, variance and (float) count of everything seen so far."""
  mean: Array
  var: Array
  count: Array


def moments_init(shape=(), count: float = 1e-4) -> RunningMoments:
  """Zero mean, unit variance, and a tiny prior count (as baselines does)."""
  return RunningMoments(
      mean=jnp.zeros(shape, jnp.float32),
      var=jnp.ones(shape, jnp.float32),
      count=jnp.asarray(count, jnp.float32))


def moments_merge(a: RunningMoments, b_mean: Array, b_var: Array,
                  b_count: Array) -> RunningMoments:
  """Merges moments ``a`` with a batch's (mean, var, count) exactly."""
  delta = b_mean - a.mean
  total = a.count + b_count
  mean = a.mean + delta * b_count / total
  m2 = a.var * a.count + b_var * b_count + delta**2 * a.count * b_count / total
  return RunningMoments(mean=mean, var=m2 / total, count=total)


def moments_update(m: RunningMoments, x: Array, axes=None) -> RunningMoments:
  """Updates moments with samples ``x``, reducing over ``axes``.

  By default every leading axis that ``m.mean`` does not have is a sample axis.
  Under sharded training (``rewardjax.sharding``) the samples are every
  device's ``x``: the batch moments are reduced across devices first.
  """
  x = jnp.asarray(x, jnp.float32)
  if axes is None:
    axes = tuple(range(x.ndim - m.mean.ndim))
  count = 1
  for a in axes:
    count *= x.shape[a]
  if sharding.current_axis() is not None:
    total = sharding.psum(jnp.asarray(count, jnp.float32))
    mean = sharding.psum(jnp.sum(x, axes)) / total
    var = sharding.psum(jnp.sum(jnp.square(x - mean), axes)) / total
    return moments_merge(m, mean, var, total)
  return moments_merge(m, jnp.mean(x, axes), jnp.var(x, axes),
                       jnp.asarray(count, jnp.float32))


def moments_std(m: RunningMoments, eps: float = 1e-8) -> Array:
  return jnp.sqrt(m.var + eps)


def normalize(m: RunningMoments, x: Array, clip: float | None = None,
              eps: float = 1e-8) -> Array:
  """``(x - mean) / std``, optionally clipped to ``[-clip, clip]``."""
  y = (x - m.mean) / jnp.sqrt(m.var + eps)
  if clip is not None:
    y = jnp.clip(y, -clip, clip)
  return y


def discounted_return_filter(ret_tm1: Array, r_t: Array, gamma: float,
                             reset_t: Array | None = None) -> tuple[Array, Array]:
  """Runs ``G_t = γ·G_{t-1}·(1 − reset_{t-1}) + r_t`` over a time-major sequence.

  Args:
    ret_tm1: ``[N]`` running discounted return before the sequence.
    r_t: ``[T, N]`` rewards, time first.
    gamma: discount of the filter.
    reset_t: optional ``[T, N]`` bool; where true, the running return restarts
      after step ``t`` (episodic filters). RND's filter never resets.

  Returns:
    ``(G_T, G)``: the final running return ``[N]`` and every ``G_t`` ``[T, N]``.
  """
  if reset_t is None:
    reset_t = jnp.zeros_like(r_t, dtype=bool)

  def step(ret, xs):
    r, reset = xs
    ret = ret * gamma + r
    return jnp.where(reset, 0.0, ret), ret

  ret_T, rets = jax.lax.scan(step, ret_tm1, (r_t, reset_t))
  return ret_T, rets

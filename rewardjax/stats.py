"""Running statistics used by observation and reward normalisers.

``RunningMoments`` merges batch moments with Chan et al.'s parallel algorithm
(the same update as OpenAI baselines' ``RunningMeanStd``, which RND's reference
code uses), so a sharded or vmapped update can combine partial statistics
exactly. ``discounted_return_filter`` is RND's ``RewardForwardFilter``: a per-
environment running discounted sum of rewards whose standard deviation scales
intrinsic rewards (Burda et al. 2018).

``ReturnStd`` is the library's one return-std normaliser (used by the
``normalize_by_return_std`` transform, ``normalize_rewards`` and ``rnd``). Its
one ordering: a batch's own discounted returns enter the statistics *before*
the batch is divided by their std (``return_std_update`` then
``scale_by_return_std``), as in RND's reference code, baselines'
``VecNormalize`` and PureJaxRL's ``NormalizeVecReward``.

``moments_update`` leaves out samples with a NaN or ±inf entry, so one bad
observation or reward cannot poison the running statistics.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

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


def finite_samples(x: Array, axes) -> Array:
  """Whether each sample (an index over the sample ``axes``) has only finite entries.

  Shaped like ``x`` with every other (feature) axis kept at size 1, so it
  broadcasts against ``x``.
  """
  features = tuple(a for a in range(x.ndim) if a not in axes)
  return jnp.all(jnp.isfinite(x), axis=features, keepdims=True)


def count_nonfinite(x: Array) -> Array:
  """How many entries of ``x`` are NaN or ±inf, on every device when sharded."""
  return sharding.psum(jnp.sum(~jnp.isfinite(x)))


def repair_if(bad: Array, plain, repaired: Callable[[], Any]):
  """``plain``, or ``repaired()`` where the scalar ``bad`` is true.

  ``repaired`` runs in a ``while_loop`` of zero or one trips, so a program
  whose inputs are finite is the one XLA compiled before (its fusions, and
  so its float rounding, unchanged), and ``repaired`` costs nothing then.
  Under ``vmap`` it runs if any member is bad and is selected per member.
  Only floating-point leaves are repaired: integer and boolean leaves (step
  counters) are ``plain``'s, which ``repaired`` must leave as they are.
  """
  leaves, tree = jax.tree.flatten(plain)
  floats = [i for i, x in enumerate(leaves) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  pick = lambda xs: [xs[i] for i in floats]
  fixed, _ = jax.lax.while_loop(
      lambda c: c[1], lambda c: (pick(jax.tree.leaves(repaired())), jnp.zeros_like(bad)),
      (pick(leaves), bad))
  for i, x in zip(floats, fixed):
    leaves[i] = x
  return jax.tree.unflatten(tree, leaves)


def _batch_moments(x: Array, axes, count: int) -> tuple[Array, Array, Array]:
  """``(mean, var, count)`` of every sample, across devices when sharded."""
  if sharding.current_axis() is not None:
    total = sharding.psum(jnp.asarray(count, jnp.float32))
    mean = sharding.psum(jnp.sum(x, axes)) / total
    var = sharding.psum(jnp.sum(jnp.square(x - mean), axes)) / total
    return mean, var, total
  return jnp.mean(x, axes), jnp.var(x, axes), jnp.asarray(count, jnp.float32)


def _finite_batch_moments(m: RunningMoments, x: Array, axes, count: int) -> tuple[Array, Array]:
  """``m``'s mean and variance merged with the finite samples' moments, which
  stand for the whole batch (weight ``count``); unchanged if none is finite."""
  valid = finite_samples(x, axes)
  num_valid = sharding.psum(jnp.sum(valid, dtype=jnp.float32))
  denominator = jnp.maximum(num_valid, 1.0)
  mean = sharding.psum(jnp.sum(jnp.where(valid, x, 0.0), axes)) / denominator
  var = sharding.psum(jnp.sum(jnp.where(valid, jnp.square(x - mean), 0.0), axes)) / denominator
  merged = moments_merge(m, mean, var, sharding.psum(jnp.asarray(count, jnp.float32)))
  return (jnp.where(num_valid > 0, merged.mean, m.mean),
          jnp.where(num_valid > 0, merged.var, m.var))


def moments_update(m: RunningMoments, x: Array, axes=None) -> RunningMoments:
  """Updates moments with samples ``x``, reducing over ``axes``.

  By default every leading axis that ``m.mean`` does not have is a sample axis.
  Under sharded training (``rewardjax.sharding``) the samples are every
  device's ``x``: the batch moments are reduced across devices first.

  A sample with a NaN or ±inf entry (``finite_samples``) is left out of the
  batch's mean and variance, which the finite samples then estimate for the
  whole batch (the count still grows by the batch size); a batch with no finite
  sample leaves mean and variance as they were. One bad sample cannot poison
  the statistics, and finite batches take the plain update (``repair_if``).
  """
  x = jnp.asarray(x, jnp.float32)
  if axes is None:
    axes = tuple(range(x.ndim - m.mean.ndim))
  axes = tuple(a % x.ndim for a in axes)
  count = 1
  for a in axes:
    count *= x.shape[a]
  plain = moments_merge(m, *_batch_moments(x, axes, count))
  mean, var = repair_if(count_nonfinite(x) > 0, (plain.mean, plain.var),
                        lambda: _finite_batch_moments(m, x, axes, count))
  return RunningMoments(mean, var, plain.count)


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

  A non-finite ``G_t`` (from a NaN or ±inf reward) is returned as it is, for
  ``moments_update`` to leave out, and the running return restarts from 0 after
  it: one bad reward cannot poison the filter of its environment for good.
  """
  if reset_t is None:
    reset_t = jnp.zeros_like(r_t, dtype=bool)

  def step(ret, xs):
    r, reset = xs
    ret = ret * gamma + r
    return jnp.where(reset | ~jnp.isfinite(ret), 0.0, ret), ret

  ret_T, rets = jax.lax.scan(step, ret_tm1, (r_t, reset_t))
  return ret_T, rets


class ReturnStd(NamedTuple):
  """Running std of discounted returns: a forward filter and the moments of its output."""
  moments: RunningMoments   # moments of every G_t seen, per channel if shaped so
  ret: Array                # running G per environment (and channel), the filter's state


def return_std_init(ret_shape, moments_shape=()) -> ReturnStd:
  """Prior moments (``moments_init``) and a zero running return of ``ret_shape``."""
  return ReturnStd(moments_init(moments_shape), jnp.zeros(ret_shape, jnp.float32))


def return_std_update(state: ReturnStd, r_t: Array, gamma, reset_t: Array | None = None
                      ) -> ReturnStd:
  """Runs ``G_t = γ·G_{t−1}·(1 − reset_{t−1}) + r_t`` over the time-major batch ``r_t``
  (``discounted_return_filter``) and merges every ``G_t`` into the moments, reducing
  over the leading axes the moments do not have."""
  ret, rets = discounted_return_filter(state.ret, r_t, gamma, reset_t)
  return ReturnStd(moments_update(state.moments, rets), ret)


def scale_by_return_std(state: ReturnStd, r: Array, eps: float = 1e-8) -> Array:
  """``r / σ(G)``; the mean is not subtracted, so rewards keep their sign."""
  return r / moments_std(state.moments, eps)

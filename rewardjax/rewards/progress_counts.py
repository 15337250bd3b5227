"""ProgressCounts: count bonuses over a discretised progress space.

Sarukkai et al. (2024, "Automated Rewards via LLM-Generated Progress
Functions") let a language model write a *progress function*
``p: s -> [0, 1]^k`` (how far along the task a state is, per component), bin each
component and reward ``β/√N(bins(p(s')))``: a count bonus whose key forgets
everything about the state except task progress. A handful of progress bins
replaces an intractable state space, so counts stay meaningful and exploration
is pushed along the axes that matter for the task.

Binning, per component ``j`` with range ``[low_j, high_j]`` and ``B_j`` bins::

    u_j = clip((p_j(s) − low_j) / (high_j − low_j), 0, 1)
    b_j = min(⌊u_j · B_j⌋, B_j − 1)                  # values outside fall in the edge bins
    key = Σ_j b_j · Π_{i>j} B_i                      # np.ravel_multi_index order

The key is an exact index in ``[0, Π_j B_j)``, so with the default table every
bin has its own cell; counting, episodic resets and the meaning of ``N``
(including the current visit) are those of ``count_bonus``, which this module
reuses with a progress-binning key.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.progress.registry import ProgressSpec
from rewardjax.progress.registry import get
from rewardjax.rewards.counts import StateKey, count_bonus, ravel_index
from rewardjax.rewards.shaping import apply_per_observation
from rewardjax.types import Array, RewardModule


class ProgressKeyParams(NamedTuple):
  low: Array    # float32[k]: value mapped to the first bin's lower edge
  high: Array   # float32[k]: value mapped to the last bin's upper edge


def _resolve_progress(progress_fn, low, high):
  """``(fn, low, high)`` from a callable, a registered name or a ``ProgressSpec``."""
  if isinstance(progress_fn, str):
    progress_fn = get(progress_fn)
  if isinstance(progress_fn, ProgressSpec):
    spec = progress_fn
    low = spec.low if low is None else low
    high = spec.high if high is None else high
    progress_fn = spec.fn
  if not callable(progress_fn):
    raise TypeError(f"progress_counts: progress_fn must be callable, a registered name or "
                    f"a ProgressSpec, got {progress_fn!r}")
  return progress_fn, low, high


def progress_key(progress_fn: Callable[[Array], Array],
                 num_bins: int | Sequence[int] = 10,
                 low: float | Sequence[float] | None = None,
                 high: float | Sequence[float] | None = None) -> StateKey:
  """The binned-progress index of one observation, as a ``count_bonus`` key.

  Args:
    progress_fn: pure ``obs -> Array[k]`` for ONE observation.
    num_bins: bins per component ``B`` (an int for all, or one per component).
    low, high: range of each component (scalars broadcast). ``None``: estimated
      at ``init`` as the min / max over the example observations; a component
      the example does not vary falls back to the progress-function contract
      range [0, 1] (widened to include the value seen).
  """
  def progress(obs):
    p = jnp.ravel(jnp.asarray(progress_fn(obs))).astype(jnp.float32)
    return p

  def dims(obs) -> int:
    return int(jax.eval_shape(progress, obs).shape[0])

  def bins(k: int) -> tuple[int, ...]:
    b = np.broadcast_to(np.asarray(num_bins, np.int64), (k,)) if np.ndim(num_bins) == 0 \
        else np.asarray(num_bins, np.int64)
    if b.shape != (k,) or np.any(b < 1):
      raise ValueError(f"progress_counts: num_bins must be a positive int or {k} positive "
                       f"ints (one per progress component), got {num_bins!r}")
    return tuple(int(x) for x in b)

  def num_keys(obs) -> int:
    return int(np.prod(bins(dims(obs))))

  def given_range(value, k, name):
    if value is None:
      return None
    v = np.asarray(value, np.float32)
    v = np.broadcast_to(v, (k,)) if v.ndim == 0 else v
    if v.shape != (k,):
      raise ValueError(f"progress_counts: {name} must be a scalar or have {k} entries "
                       f"(one per progress component), got shape {v.shape}")
    return v

  def init_fn(key, observations):
    del key
    k = dims(observations[0])
    bins(k)  # validates num_bins early
    lo, hi = given_range(low, k, "low"), given_range(high, k, "high")
    if lo is not None and hi is not None and np.any(hi <= lo):
      raise ValueError(f"progress_counts: high {hi} must exceed low {lo}")
    if lo is None or hi is None:
      p = apply_per_observation(progress, observations, 1)   # [M, k]
      p_lo, p_hi = jnp.min(p, axis=0), jnp.max(p, axis=0)
      flat = (p_hi - p_lo) <= 1e-6 * jnp.maximum(1.0, jnp.abs(p_lo))
      # A constant component carries no scale: use the contract range [0, 1].
      lo = jnp.where(flat, jnp.minimum(p_lo, 0.0), p_lo) if lo is None else jnp.asarray(lo)
      hi = jnp.where(flat, jnp.maximum(p_hi, 1.0), p_hi) if hi is None else jnp.asarray(hi)
      hi = jnp.maximum(hi, lo + 1e-6)
    return ProgressKeyParams(jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32))

  def apply_fn(params: ProgressKeyParams, obs):
    p = progress(obs)
    b = np.asarray(bins(p.shape[0]), np.int32)
    u = jnp.clip((p - params.low) / (params.high - params.low), 0.0, 1.0)
    u = jnp.where(jnp.isnan(u), 0.0, u)       # a NaN progress value goes to bin 0
    digits = jnp.minimum(jnp.floor(u * b).astype(jnp.int32), b - 1)
    return ravel_index(digits, tuple(int(x) for x in b))

  return StateKey(init_fn, apply_fn, num_keys)


def progress_counts(progress_fn,
                    beta: float = 0.01,
                    num_bins: int | Sequence[int] = 10,
                    low: float | Sequence[float] | None = None,
                    high: float | Sequence[float] | None = None,
                    episodic: bool = False,
                    table_size: int | None = None,
                    num_hashes: int = 1,
                    batch_counts: str = "total") -> RewardModule:
  """Count bonus ``β/√N(bins(p(s')))`` over binned progress (Sarukkai et al. 2024).

  Args:
    progress_fn: per-observation ``obs -> Array[k]``; or the name of a
      registered progress function (``rewardjax.progress.REGISTRY``) or a
      ``ProgressSpec``, whose ``low`` / ``high`` are used unless given here.
    beta: bonus scale β.
    num_bins: bins per progress component (int or one per component).
    low, high: component ranges; ``None`` estimates them from
      ``example.next_obs`` at ``init`` (see ``progress_key``). Give them when
      known: an example batch of start states rarely spans the task.
    episodic, table_size, num_hashes, batch_counts: as for ``count_bonus``. The
      default table has one cell per bin combination (exact counts).

  Returns:
    ``count_bonus(beta, key_fn=progress_key(...), ...)``; its state's
    ``key_params`` is a ``ProgressKeyParams`` holding the ranges used.
  """
  fn, low, high = _resolve_progress(progress_fn, low, high)
  return count_bonus(beta=beta, key_fn=progress_key(fn, num_bins, low, high),
                     table_size=table_size, num_hashes=num_hashes, episodic=episodic,
                     batch_counts=batch_counts)


__all__ = ["ProgressKeyParams", "progress_key", "progress_counts"]

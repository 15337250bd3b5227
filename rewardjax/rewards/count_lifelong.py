"""Lifelong counts: one table shared by every environment, never reset.

Pure functions of a ``CountConfig`` (``count_bonus`` binds it): ``init``,
``reward``, ``update`` and the fused ``reward_and_update``. Under sharded
training (``rewardjax.sharding``) the table is global: ``update`` adds every
device's visits (a ``psum`` of the batch's scatter-add).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rewardjax import sharding
from rewardjax.rewards.count_tables import (CountConfig, CountState, bonus, cell_indices,
                                            count_metrics, flat_next_obs, occurrences,
                                            table_layout, visits_in_batch)
from rewardjax.types import Array, Metrics, PRNGKey, Transition


def init(config: CountConfig, key: PRNGKey, example: Transition) -> CountState:
  flat, _ = flat_next_obs(example)
  lay = table_layout(config, flat[0])
  params = config.state_key.init(key, flat)
  counts = jnp.zeros((lay.rows, lay.size), jnp.int32)
  return CountState(counts, params, jnp.zeros((lay.rows,), jnp.int32))


def reward(config: CountConfig, state: CountState, batch: Transition) -> Array:
  """``β/√N``: the table's counts plus the batch's own visits (nothing written)."""
  flat, _ = flat_next_obs(batch)
  idx = cell_indices(config, state.key_params, flat)          # [rows, M]
  rows = jnp.arange(idx.shape[0])[:, None]
  prior = state.counts[rows, idx]
  n = jnp.min(prior + visits_in_batch(config.batch_counts, idx), axis=0)
  return bonus(config.beta, n, batch)


def update(config: CountConfig, state: CountState, batch: Transition,
           key: PRNGKey) -> tuple[CountState, Metrics]:
  del key
  new_state, metrics, _ = _count_batch(config, state, batch)
  return new_state, metrics


def reward_and_update(config: CountConfig, state: CountState, batch: Transition,
                      key: PRNGKey) -> tuple[Array, CountState, Metrics]:
  """``reward`` then ``update`` in one pass: ``N`` is read from the updated table."""
  del key
  new_state, metrics, n = _count_batch(config, state, batch)
  return bonus(config.beta, n, batch), new_state, metrics


def _count_batch(config: CountConfig, state: CountState, batch: Transition):
  """``(new state, metrics, N per transition)``.

  ``N`` is read back from the UPDATED table (``N_old = N_new −`` the batch's
  visits to that cell), so nothing reads the old table after the scatter-add.
  Reading the old table there (as ``reward`` does) makes XLA keep it alive
  across the scatter, i.e. copy the whole table (2²⁰ cells by default) every
  update inside a ``lax.scan``.
  """
  flat, _ = flat_next_obs(batch)
  idx = cell_indices(config, state.key_params, flat)          # [rows, M]
  rows = jnp.arange(idx.shape[0])[:, None]
  rank, size = jax.vmap(lambda i: occurrences((i,)))(idx)
  if sharding.current_axis() is None:
    counts, prior, occupied = _add_visits(state, rows, idx, rank, size)
  else:
    counts, prior, occupied = _add_visits_sharded(state, rows, idx)
  if config.batch_counts == "total":
    # The count after the whole batch (every device's visits when sharded).
    n = jnp.min(counts[rows, idx], axis=0)
  else:
    # Visits before this one (ranks are per device when sharded), plus itself.
    n = jnp.min(prior + rank, axis=0)
  unique = jnp.max(occupied).astype(jnp.float32)
  metrics = count_metrics(config.beta, n, batch, unique, counts.shape[-1])
  return CountState(counts, state.key_params, occupied), metrics, n


def _add_visits(state: CountState, rows: Array, idx: Array, rank: Array, size: Array):
  """``(counts, prior, occupied)`` after a scatter-add of the batch's visits.

  ``prior`` is each visit's cell count before the batch. Cells this batch fills
  for the first time are the first visits (rank 1) of cells that were empty;
  counting them keeps ``occupied`` exact without a pass over the whole table.
  """
  counts = state.counts.at[rows, idx].add(1)
  prior = counts[rows, idx] - size
  occupied = state.occupied + jnp.sum((rank == 1) & (prior == 0), axis=1, dtype=jnp.int32)
  return counts, prior, occupied


def _add_visits_sharded(state: CountState, rows: Array, idx: Array):
  """As ``_add_visits``, with every device's visits added to one global table."""
  prior = state.counts[rows, idx]
  visits = jnp.zeros_like(state.counts).at[rows, idx].add(1)
  counts = state.counts + sharding.psum(visits)
  occupied = jnp.sum(counts > 0, axis=-1, dtype=jnp.int32)
  return counts, prior, occupied


__all__ = ["init", "reward", "update", "reward_and_update"]

"""Count tables shared by lifelong and episodic counts: layout, cells, ranks, bonus.

A table has ``rows`` count-min rows of ``size`` cells (Cormode & Muthukrishnan
2005). Index keys (``StateKey.num_keys`` not ``None``) that fit the table use
their index as the cell of a single row, so counts are exact; other keys are
hashed, row ``r`` with its own seed, and ``N(s) = min_r table[r, h_r(s)]``,
which never undercounts and overcounts only if ``s`` collides in *every* row.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.rewards.count_keys import StateKey, as_words, hash_words, row_hashes
from rewardjax.rewards.shaping import apply_per_observation
from rewardjax.types import Array, Metrics, PyTree, Transition

# Lifelong tables are shared by every environment and never cleared, so they are
# made large; episodic tables hold one episode per environment, so they are
# smaller (the expected number of colliding pairs among L states is L²/(2·size)).
DEFAULT_TABLE_SIZE = 2**20
DEFAULT_EPISODIC_TABLE_SIZE = 2**16


class CountState(NamedTuple):
  """State of ``count_bonus``.

  Attributes:
    counts: ``int32[num_hashes, table_size]`` visit counts (lifelong), or
      ``int32[num_hashes, num_envs, table_size]`` counts of the current episode
      of each environment (episodic).
    key_params: parameters of the state key (e.g. the SimHash projection).
    occupied: ``int32[num_hashes]`` nonzero cells per row (lifelong counts),
      kept up to date by ``update`` so that its ``unique_keys`` metric does not
      scan the whole table every update; ``None`` for episodic counts.
  """
  counts: Array
  key_params: PyTree
  occupied: Array | None = None


class CountConfig(NamedTuple):
  """The static settings of a ``count_bonus`` (validated by it).

  Attributes:
    state_key: the key counted.
    beta: bonus scale β.
    table_size: cells per row, or ``None`` for the key's ``num_keys`` when it
      is an index key of at most ``DEFAULT_TABLE_SIZE`` cells, else
      ``default_size``.
    num_hashes: count-min rows for hashed keys.
    batch_counts: ``"total"`` or ``"sequential"`` (see ``count_bonus``).
    default_size: cells per row of a hashed table when ``table_size`` is None.
  """
  state_key: StateKey
  beta: float
  table_size: int | None
  num_hashes: int
  batch_counts: str
  default_size: int


class TableLayout(NamedTuple):
  direct: bool      # keys are exact indices into the table
  size: int         # cells per row
  rows: int         # count-min rows


def table_layout(config: CountConfig, obs_one: Array) -> TableLayout:
  """The table's shape for observations like ``obs_one`` (a static property)."""
  n = config.state_key.num_keys(obs_one)
  size = config.table_size
  if size is None:
    size = n if n is not None and n <= DEFAULT_TABLE_SIZE else config.default_size
  direct = n is not None and n <= size
  return TableLayout(direct, int(size), 1 if direct else config.num_hashes)


def flat_next_obs(batch: Transition) -> tuple[Array, tuple[int, ...]]:
  """Flattened next observations ``[M, ...]`` and the leading batch shape."""
  shape = tuple(jnp.shape(batch.reward))
  obs = batch.next_obs
  if not shape:  # a single transition
    shape, obs = (1,), obs[None]
  flat = jnp.reshape(obs, (-1,) + jnp.shape(obs)[len(shape):])
  return flat, shape


def cell_indices(config: CountConfig, key_params: PyTree, flat_obs: Array) -> Array:
  """``int32[rows, M]``: each observation's cell in each row."""
  lay = table_layout(config, flat_obs[0])
  keys = apply_per_observation(lambda o: config.state_key.apply(key_params, o), flat_obs, 1)
  if lay.direct:
    idx = jnp.reshape(keys, (keys.shape[0], -1))
    if idx.shape[1] != 1 or not jnp.issubdtype(idx.dtype, jnp.integer):
      raise ValueError("count_bonus: an index key (num_keys not None) must return one "
                       f"integer per observation, got {keys.shape[1:]} {keys.dtype}")
    # An index key promises [0, num_keys); clip so gather and scatter agree anyway.
    return jnp.clip(idx[:, 0].astype(jnp.int32), 0, lay.size - 1)[None]
  words = jax.vmap(as_words)(keys)
  h = row_hashes(hash_words(words), lay.rows)              # [rows, M], independent rows
  return (h % np.uint32(lay.size)).astype(jnp.int32)


def occurrences(group: tuple[Array, ...]) -> tuple[Array, Array]:
  """Per element of ``M``: (inclusive rank among equal groups in index order,
  size of its group), where a group is a tuple of equal int32 ``[M]`` keys.

  One stable sort (O(M log M)) instead of an O(M²) comparison or an O(table)
  scatter, so it is cheap for rollouts of any length and table of any size.
  """
  m = group[0].shape[0]
  pos = jnp.arange(m, dtype=jnp.int32)
  *sorted_keys, order = jax.lax.sort(tuple(group) + (pos,), num_keys=len(group),
                                     is_stable=True)
  same = jnp.ones((m - 1,), bool)
  for k in sorted_keys:
    same = same & (k[1:] == k[:-1])
  start = jnp.concatenate([jnp.ones((1,), bool), ~same])
  end = jnp.concatenate([~same, jnp.ones((1,), bool)])
  first = jax.lax.cummax(jnp.where(start, pos, 0))
  last = jax.lax.cummin(jnp.where(end, pos, m - 1), reverse=True)
  rank = jnp.zeros((m,), jnp.int32).at[order].set(pos - first + 1)
  size = jnp.zeros((m,), jnp.int32).at[order].set(last - first + 1)
  return rank, size


def visits_in_batch(batch_counts: str, idx: Array, *group: Array) -> Array:
  """``int32[rows, M]``: the batch's visits that each transition's ``N`` includes.

  Visits are to the same cell of ``idx [rows, M]`` and the same ``group`` keys
  (e.g. environment and episode): all of them for ``"total"``, those up to and
  including the transition itself for ``"sequential"``.
  """
  pick = 0 if batch_counts == "sequential" else 1
  return jax.vmap(lambda i: occurrences(group + (i,))[pick])(idx)


def bonus(beta: float, n: Array, batch: Transition) -> Array:
  """``β / √N`` shaped like ``batch.reward`` (float32 unless that is a float)."""
  r = beta / jnp.sqrt(n.astype(jnp.float32))
  return jnp.reshape(r, jnp.shape(batch.reward)).astype(
      batch.reward.dtype if jnp.issubdtype(batch.reward.dtype, jnp.floating) else jnp.float32)


def count_metrics(beta: float, n: Array, batch: Transition, unique: Array,
                  table_size: int) -> Metrics:
  """``update``'s metrics from ``N`` per transition and the distinct keys seen."""
  return {
      "bonus_mean": jnp.mean(bonus(beta, n, batch)).astype(jnp.float32),
      "count_mean": jnp.mean(n.astype(jnp.float32)),
      "unique_keys": unique,
      "table_occupancy": unique / table_size,
  }


__all__ = [
    "DEFAULT_TABLE_SIZE", "DEFAULT_EPISODIC_TABLE_SIZE", "CountState", "CountConfig",
    "TableLayout", "table_layout", "flat_next_obs", "cell_indices", "occurrences",
    "visits_in_batch", "bonus", "count_metrics",
]

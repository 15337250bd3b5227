"""Count-based exploration bonuses: ``r⁺(s') = β / √N(key(s'))``.

Strehl & Littman (2008, MBIE-EB) show that a bonus ``β/√N(s, a)`` yields PAC-MDP
exploration in tabular MDPs; Tang et al. (2017, "#Exploration") carry it to large
and continuous state spaces by counting a discrete *key* of the state, e.g. the
SimHash code ``sgn(A·φ(s))``. ``count_bonus`` counts keys of the true next
observation ``batch.next_obs`` (the state the transition discovered) in a
fixed-size device array, so the whole bonus is jit-able, vmap-able and lives in
the reward module's state.

The module is assembled from pieces that each do one job:

* ``count_keys``: ``StateKey`` and the keys (``onehot_key``, ``grid_key``,
  ``exact_key``, ``simhash_key``, or any callable ``obs -> array``), and the
  32-bit hashes of their values.
* ``count_tables``: the ``int32`` table ``[num_hashes, table_size]``
  (lifelong) or ``[num_hashes, num_envs, table_size]`` (episodic). With
  ``num_hashes = d > 1`` it is a count-min sketch (Cormode & Muthukrishnan
  2005): ``N(s) = min_r table[r, h_r(s)]``, which never undercounts.
* ``count_lifelong`` / ``count_episodic``: ``init``, ``reward``, ``update`` and
  the fused ``reward_and_update`` of each kind of table.

Semantics of N (``batch_counts``). ``N`` always *includes the current visit*,
so ``N >= 1`` and a state's ``n``-th visit earns exactly ``β/√n``. ``reward``
reads the state only (nothing is written); the visits of the batch itself are
counted on the fly:

* ``"total"`` (default): every transition uses the count after the whole batch,
  as in Tang et al.'s Algorithm 1 (update the table with the batch, then compute
  bonuses). The bonus is then one gather from the updated table; sharded over
  devices, that table holds every device's visits, so bonuses equal the
  single-device ones.
* ``"sequential"``: the batch is read in row-major order (for a time-major
  ``[T, N]`` rollout: step by step, environments in order) and each transition
  counts the visits before it plus itself. Bonuses then do not depend on how a
  stream of transitions is cut into batches: an online count (sharded, the
  ranks are taken within each device's share of the batch). It needs each
  visit's rank among equal keys, one sort of the batch, on the way to the bonus
  (throughput in benchmarks/RESULTS.md).

``update`` adds the batch's visits to the table with a scatter-add, so after
``update`` the state agrees with what ``reward`` counted.

Episodic counts (``episodic=True``) keep one table per environment and restart
it after every ``terminated | truncated`` transition; the episode's final
observation (``next_obs`` of that transition) still counts in the ending
episode. Batches must be time-major ``[T, N, ...]`` (``[T]`` for one
environment) with the same ``N`` as the ``init`` example.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

from rewardjax.rewards import count_episodic, count_lifelong
from rewardjax.rewards.count_keys import (SimHashParams, StateKey, as_words, auto_key,
                                          exact_key, grid_key, hash_words, onehot_key,
                                          ravel_index, resolve_key, simhash_key)
from rewardjax.rewards.count_tables import (DEFAULT_EPISODIC_TABLE_SIZE, DEFAULT_TABLE_SIZE,
                                            CountConfig, CountState)
from rewardjax.types import Array, RewardModule


def count_bonus(beta: float = 0.01,
                key_fn: str | StateKey | Callable[[Array], Array] = "auto",
                table_size: int | None = None,
                num_hashes: int = 1,
                episodic: bool = False,
                batch_counts: str = "total",
                simhash_bits: int = 32) -> RewardModule:
  """Count-based exploration bonus ``β / √N(key(s'))`` on ``batch.next_obs``.

  Args:
    beta: bonus scale β (Tang et al. 2017 use 0.01 with SimHash).
    key_fn: how observations become discrete keys: ``"auto"`` (exact for
      integer/bool observations, SimHash for floats), ``"exact"``, ``"onehot"``,
      ``"simhash"``, a ``StateKey`` (``grid_key``, ``simhash_key``, ...) or a
      per-observation callable whose output values are the key.
    table_size: cells per table row. ``None``: the key's ``num_keys`` when it is
      an index key of at most ``DEFAULT_TABLE_SIZE`` cells (exact, no
      hashing), else ``DEFAULT_TABLE_SIZE`` (2²⁰) for lifelong and
      ``DEFAULT_EPISODIC_TABLE_SIZE`` (2¹⁶, per environment) for episodic counts.
    num_hashes: rows of the count-min sketch; ``N = min`` over rows. Ignored
      (one row) when index keys fit the table, since counts are then exact.
    episodic: count within episodes, one table per environment, reset after
      ``terminated | truncated``; otherwise lifelong counts over all
      environments, never reset.
    batch_counts: ``"total"`` (every transition counts the whole batch, Tang et
      al.'s Algorithm 1) or ``"sequential"`` (each transition counts the batch's
      visits up to and including itself). Either way ``N`` includes the current
      visit.
    simhash_bits: ``k`` for ``key_fn="simhash"`` / ``"auto"``.

  Returns:
    A reward module whose state is a ``CountState``, with the fused
    ``reward_and_update``. ``update`` reports ``bonus_mean``, ``count_mean``,
    ``unique_keys`` (nonzero cells of the fullest row: the number of distinct
    keys seen when there are no collisions; per environment and averaged when
    episodic) and ``table_occupancy`` (``unique_keys / table_size``).
  """
  _check_options(beta, table_size, num_hashes, batch_counts)
  config = CountConfig(
      state_key=resolve_key(key_fn, simhash_bits), beta=float(beta), table_size=table_size,
      num_hashes=num_hashes, batch_counts=batch_counts,
      default_size=DEFAULT_EPISODIC_TABLE_SIZE if episodic else DEFAULT_TABLE_SIZE)
  table = count_episodic if episodic else count_lifelong
  return RewardModule(
      init=functools.partial(table.init, config),
      reward=functools.partial(table.reward, config),
      update=functools.partial(table.update, config),
      reward_and_update=functools.partial(table.reward_and_update, config))


def _check_options(beta, table_size, num_hashes, batch_counts) -> None:
  if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
    raise ValueError(f"count_bonus: beta must be a finite number >= 0, got {beta!r}")
  if table_size is not None and (not isinstance(table_size, int) or not 1 <= table_size < 2**31):
    raise ValueError(f"count_bonus: table_size must be an int in [1, 2^31), got {table_size!r}")
  if not isinstance(num_hashes, int) or num_hashes < 1:
    raise ValueError(f"count_bonus: num_hashes must be a positive int, got {num_hashes!r}")
  if batch_counts not in ("sequential", "total"):
    raise ValueError(
        f"count_bonus: batch_counts must be 'sequential' or 'total', got {batch_counts!r}")


__all__ = [
    "StateKey", "CountState", "SimHashParams", "count_bonus", "exact_key",
    "onehot_key", "grid_key", "simhash_key", "auto_key", "resolve_key", "as_words",
    "hash_words", "ravel_index", "DEFAULT_TABLE_SIZE", "DEFAULT_EPISODIC_TABLE_SIZE",
]

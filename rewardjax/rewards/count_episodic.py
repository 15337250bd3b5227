"""Episodic counts: one table per environment, restarted after every episode.

Pure functions of a ``CountConfig`` (``count_bonus`` binds it): ``init``,
``reward``, ``update`` and ``reward_and_update``. A table restarts after every
``terminated | truncated`` transition; the episode's final observation
(``next_obs`` of that transition) still counts in the ending episode. Batches
are time-major ``[T, N, ...]`` (``[T]`` for one environment) with the ``N`` of
the ``init`` example. Tables are per environment, so sharding the environments
over devices needs no reduction.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rewardjax.rewards.count_tables import (CountConfig, CountState, bonus, cell_indices,
                                            count_metrics, flat_next_obs, table_layout,
                                            visits_in_batch)
from rewardjax.types import Array, Metrics, PRNGKey, Transition


def init(config: CountConfig, key: PRNGKey, example: Transition) -> CountState:
  flat, shape = flat_next_obs(example)
  lay = table_layout(config, flat[0])
  params = config.state_key.init(key, flat)
  counts = jnp.zeros((lay.rows, _num_envs(shape), lay.size), jnp.int32)
  return CountState(counts, params)


def reward(config: CountConfig, state: CountState, batch: Transition) -> Array:
  """``β/√N``: the episode's counts plus the batch's own visits (nothing written)."""
  n = _visit_counts(config, state, batch)[0]
  return bonus(config.beta, n, batch)


def update(config: CountConfig, state: CountState, batch: Transition,
           key: PRNGKey) -> tuple[CountState, Metrics]:
  """Restarts the tables of episodes that ended, then adds the open episodes' visits."""
  del key
  n, idx, env, open_seg, ended = _visit_counts(config, state, batch)
  rows = jnp.arange(idx.shape[0])[:, None]
  counts = jnp.where(ended[None, :, None], 0, state.counts)
  counts = counts.at[rows, env[None], idx].add(open_seg.astype(jnp.int32)[None])
  nonzero = jnp.max(jnp.sum(counts > 0, axis=-1), axis=0)   # [envs]
  unique = jnp.mean(nonzero.astype(jnp.float32))
  metrics = count_metrics(config.beta, n, batch, unique, counts.shape[-1])
  return CountState(counts, state.key_params), metrics


def reward_and_update(config: CountConfig, state: CountState, batch: Transition,
                      key: PRNGKey) -> tuple[Array, CountState, Metrics]:
  return reward(config, state, batch), *update(config, state, batch, key)


def _num_envs(shape: tuple[int, ...]) -> int:
  return int(np.prod(shape[1:], dtype=np.int64))


def _episodes(batch: Transition, shape: tuple[int, ...]):
  """Per flattened transition: environment id, episode segment in the batch and
  whether that segment is still open after it; per environment: whether an
  episode ended in the batch."""
  t = shape[0]
  e = _num_envs(shape)
  done = jnp.reshape(jnp.logical_or(batch.terminated, batch.truncated), (t, e))
  done = done.astype(jnp.int32)
  seg = jnp.cumsum(done, axis=0) - done            # episode ends strictly before t
  last = jnp.sum(done, axis=0)                     # segment still open after the batch
  env = jnp.broadcast_to(jnp.arange(e, dtype=jnp.int32), (t, e))
  return env.reshape(-1), seg.reshape(-1), (seg == last).reshape(-1), last > 0


def _check_envs(state: CountState, shape: tuple[int, ...]) -> None:
  e = _num_envs(shape)
  if state.counts.shape[1] != e:
    raise ValueError(
        f"count_bonus(episodic=True): the state holds {state.counts.shape[1]} "
        f"environments but the batch {shape} has {e} (batches must be time-major "
        "[T, N, ...] with the N of the init example)")


def _visit_counts(config: CountConfig, state: CountState, batch: Transition):
  """``N`` per transition (``int32[M]``), cell indices and the episode layout."""
  flat, shape = flat_next_obs(batch)
  idx = cell_indices(config, state.key_params, flat)          # [rows, M]
  rows = jnp.arange(idx.shape[0])[:, None]
  _check_envs(state, shape)
  env, seg, open_seg, ended = _episodes(batch, shape)
  # Only the batch's first segment continues the episode the table holds.
  prior = jnp.where(seg == 0, state.counts[rows, env[None], idx], 0)
  within = visits_in_batch(config.batch_counts, idx, env, seg)
  return jnp.min(prior + within, axis=0), idx, env, open_seg, ended


__all__ = ["init", "reward", "update", "reward_and_update"]

"""Count-based exploration bonuses: ``r⁺(s') = β / √N(key(s'))``.

Strehl & Littman (2008, MBIE-EB) show that a bonus ``β/√N(s, a)`` yields PAC-MDP
exploration in tabular MDPs; Tang et al. (2017, "#Exploration") carry it to large
and continuous state spaces by counting a discrete *key* of the state, e.g. the
SimHash code ``sgn(A·φ(s))``. This module counts keys of the true next
observation ``batch.next_obs`` (the state the transition discovered) in a
fixed-size device array, so the whole bonus is jit-able, vmap-able and lives in
the reward module's state.

Keys (``StateKey``, a pair of pure functions over a parameter pytree):

* ``onehot_key()`` and ``grid_key(low, high)``: *index* keys, integers in
  ``[0, num_keys)`` used directly as the table index. Distinct states get
  distinct cells, so counts are exact whenever ``num_keys <= table_size`` (the
  default table then has exactly ``num_keys`` cells). Use these for one-hot
  observations (DeepSea) and bounded integer grids.
* ``exact_key()``: equality of the observation's values (float bit patterns or
  integers), through a 32-bit hash. Exact up to hash collisions: two distinct
  states share a cell of a row with probability ≈ 1/table_size; count-min rows
  (``num_hashes``) make a shared *count* much less likely still.
* ``simhash_key(bits)``: Charikar's SimHash, ``k`` sign bits of a fixed Gaussian
  projection ``A·φ(s)`` drawn at ``init`` (Tang et al. 2017). Nearby
  observations share codes; the code is hashed into the table unless
  ``2**bits <= table_size``.
* any callable ``obs -> array``: its output values are keys, as ``exact_key(fn)``.

Counts live in an ``int32`` table ``[num_hashes, table_size]`` (lifelong) or
``[num_hashes, num_envs, table_size]`` (episodic). With ``num_hashes = d > 1``
the table is a count-min sketch (Cormode & Muthukrishnan 2005): row ``r`` hashes
the key with its own seed and ``N(s) = min_r table[r, h_r(s)]``, which never
undercounts and overcounts only if ``s`` collides in *every* row.

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
  visit's rank among equal keys (one sort of the batch) on the way to the bonus;
  on a 2-core CPU, PPO + counts on CartPole with 4 environments kept 0.78× of
  plain PPO's steps/s with it against 0.94–0.96× with ``"total"``
  (benchmarks/RESULTS.md).

``update`` adds the batch's visits to the table with a scatter-add, so after
``update`` the state agrees with what ``reward`` counted.

Episodic counts (``episodic=True``) keep one table per environment and restart
it after every ``terminated | truncated`` transition; the episode's final
observation (``next_obs`` of that transition) still counts in the ending
episode. Batches must be time-major ``[T, N, ...]`` (``[T]`` for one
environment) with the same ``N`` as the ``init`` example.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax import sharding
from rewardjax.rewards.shaping import apply_per_observation
from rewardjax.types import Array, PRNGKey, PyTree, RewardModule, Transition

# Lifelong tables are shared by every environment and never cleared, so they are
# made large; episodic tables hold one episode per environment, so they are
# smaller (the expected number of colliding pairs among L states is L²/(2·size)).
DEFAULT_TABLE_SIZE = 2**20
DEFAULT_EPISODIC_TABLE_SIZE = 2**16


class StateKey(NamedTuple):
  """A discrete key of ONE observation.

  Attributes:
    init: ``(key, observations[M, *obs_shape]) -> params`` (a pytree, e.g. a
      SimHash projection; ``()`` if the key has none).
    apply: ``(params, obs) -> integer array``: the key of one observation (a
      scalar index for index keys, any integer/float array otherwise).
    num_keys: ``(obs) -> int | None``, from the observation's shape only: if an
      int, ``apply`` returns an index in ``[0, num_keys)`` that is used directly
      as the table index (exact counts); if ``None`` the key is hashed.
  """
  init: Callable[[PRNGKey, Array], PyTree]
  apply: Callable[[PyTree, Array], Array]
  num_keys: Callable[[Array], int | None]


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


# ----------------------------------------------------------------------------
# Hashing. Everything is uint32 arithmetic (wraps mod 2³²), so it runs the same
# with or without jax_enable_x64 and on every backend.

_GOLDEN = np.uint32(0x9E3779B9)


def _fmix32(h: Array) -> Array:
  """MurmurHash3's finaliser: a bijection of uint32 with full avalanche."""
  h = h ^ (h >> np.uint32(16))
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> np.uint32(13))
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> np.uint32(16))


def as_words(x: Array) -> Array:
  """The exact values of ``x`` as a flat ``uint32`` vector.

  Floats are compared by their float32 bit pattern (``-0.0`` is folded onto
  ``0.0``); integers by their int32 value; booleans as 0/1.
  """
  x = jnp.ravel(jnp.asarray(x))
  if jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32) + 0.0  # -0.0 + 0.0 == +0.0: one key for zero
    return jax.lax.bitcast_convert_type(x, jnp.uint32)
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32)
  if jnp.issubdtype(x.dtype, jnp.integer):
    return jax.lax.bitcast_convert_type(x.astype(jnp.int32), jnp.uint32)
  raise TypeError(f"count keys must be bool, integer or float arrays, got {x.dtype}")


def hash_words(words: Array) -> Array:
  """A 32-bit hash of ``uint32[..., w]`` word vectors -> ``uint32[...]``.

  Each word is mixed with a bijection seeded by its position and the results
  are summed mod 2³², then finalised. Two vectors that differ in exactly one
  word never share a 32-bit hash (a sum of bijections, then a bijection), which
  matters for grids where neighbours differ in one coordinate; others do with
  probability ≈ 2⁻³². (Reducing the hash to a table cell adds collisions with
  probability ≈ 1/table_size per pair and row.) Vectorised over words, so long
  observations (images) cost one elementwise pass, not a sequential loop.
  """
  w = words.shape[-1]
  pos_seed = _fmix32(jnp.arange(1, w + 1, dtype=jnp.uint32) * _GOLDEN)
  mixed = _fmix32(words ^ pos_seed)
  h = jnp.sum(mixed, axis=-1, dtype=jnp.uint32)
  return _fmix32(h ^ np.uint32(w))


def _row_seeds(num_rows: int) -> Array:
  return _fmix32(jnp.arange(1, num_rows + 1, dtype=jnp.uint32) * np.uint32(0x85EBCA77))


# ----------------------------------------------------------------------------
# State keys.


def _no_params(key, observations):
  del key, observations
  return ()


def exact_key(fn: Callable[[Array], Array] | None = None) -> StateKey:
  """Equality of the observation (or of ``fn(obs)``), hashed into the table.

  Args:
    fn: optional per-observation function whose output values are the key
      (e.g. ``lambda o: jnp.floor(o * 10)`` to discretise); identity if None.
  """
  f = (lambda o: o) if fn is None else fn
  return StateKey(_no_params, lambda params, obs: f(obs), lambda obs: None)


def onehot_key() -> StateKey:
  """The index of the hot cell of a one-hot observation (e.g. DeepSea's grid).

  ``key = argmax(obs.ravel())`` for an observation of ``D`` cells, and ``D`` for
  an all-zero observation (DeepSea's terminal state), so ``num_keys = D + 1``:
  an exact index. Observations with several nonzero cells take the first
  maximum.
  """

  def apply_fn(params, obs):
    del params
    flat = jnp.ravel(obs)
    hot = jnp.argmax(flat).astype(jnp.int32)
    return jnp.where(jnp.any(flat != 0), hot, flat.size).astype(jnp.int32)

  return StateKey(_no_params, apply_fn, lambda obs: int(np.size(obs)) + 1)


def grid_key(low: Sequence[int] | int, high: Sequence[int] | int) -> StateKey:
  """Exact mixed-radix index of an integer-valued observation with known bounds.

  Coordinate ``j`` takes integer values in ``[low_j, high_j]`` (inclusive; values
  are rounded and clipped into it). With radices ``n_j = high_j − low_j + 1`` the
  key ``Σ_j (x_j − low_j)·Π_{i>j} n_i`` (``np.ravel_multi_index`` order) is a
  bijection onto ``[0, Π_j n_j)``.
  """
  low_np = np.asarray(low, np.int64)
  high_np = np.asarray(high, np.int64)
  if np.any(high_np < low_np):
    raise ValueError(f"grid_key: high {high_np} must be >= low {low_np}")

  def sizes(obs):
    d = int(np.size(obs))
    lo = np.broadcast_to(low_np, (d,)) if low_np.ndim == 0 else low_np
    hi = np.broadcast_to(high_np, (d,)) if high_np.ndim == 0 else high_np
    if lo.shape != (d,) or hi.shape != (d,):
      raise ValueError(f"grid_key: low/high must be scalars or have {d} entries "
                       f"(the observation's size), got {low_np.shape}, {high_np.shape}")
    return lo, hi

  def num_keys(obs):
    lo, hi = sizes(obs)
    n = int(np.prod(hi - lo + 1))
    if n >= 2**31:
      raise ValueError(f"grid_key: {n} cells do not fit an int32 index; use exact_key()")
    return n

  def apply_fn(params, obs):
    del params
    lo, hi = sizes(obs)
    x = jnp.round(jnp.ravel(obs).astype(jnp.float32)).astype(jnp.int32)
    x = jnp.clip(x, lo.astype(np.int32), hi.astype(np.int32)) - lo.astype(np.int32)
    return ravel_index(x, tuple(int(n) for n in hi - lo + 1))

  return StateKey(_no_params, apply_fn, num_keys)


def ravel_index(digits: Array, radices: Sequence[int]) -> Array:
  """``Σ_j digits_j · Π_{i>j} radices_i`` as int32 (first digit most significant)."""
  strides = np.cumprod((1,) + tuple(radices[::-1]))[:-1][::-1].astype(np.int32)
  return jnp.sum(digits.astype(jnp.int32) * strides).astype(jnp.int32)


class SimHashParams(NamedTuple):
  projection: Array   # A: float32[bits, dim φ(s)], i.i.d. N(0, 1)


def simhash_key(bits: int = 32,
                preprocess: Callable[[Array], Array] | None = None) -> StateKey:
  """SimHash: ``sgn(A·φ(s)) ∈ {0, 1}^k`` with ``A_ij ~ N(0, 1)`` (Charikar 2002).

  Tang et al. (2017) count these codes: the angle between ``φ(s)`` and ``φ(s')``
  bounds the probability that a bit differs (θ/π per bit), so near-identical
  observations share a code and distant ones rarely do; ``k`` trades
  generalisation for resolution. Note that hyperplanes pass through the origin:
  only the *direction* of ``φ(s)`` matters, so centre / scale low-dimensional
  observations in ``preprocess`` when their magnitude carries information.

  Args:
    bits: ``k``, the number of sign bits.
    preprocess: ``φ``, applied to one observation before the projection
      (default: flatten to float32).
  """
  if not isinstance(bits, int) or bits < 1:
    raise ValueError(f"simhash_key: bits must be a positive int, got {bits!r}")
  phi = preprocess or (lambda o: o)

  def features(obs):
    return jnp.ravel(phi(obs)).astype(jnp.float32)

  def init_fn(key, observations):
    dim = jax.eval_shape(features, observations[0]).shape[0]
    return SimHashParams(jax.random.normal(key, (bits, dim), jnp.float32))

  def apply_fn(params, obs):
    code = (params.projection @ features(obs)) >= 0.0
    if bits <= 31:  # one word, a direct index when 2^bits fits the table
      return jnp.sum(code.astype(jnp.int32) << jnp.arange(bits, dtype=jnp.int32))
    pad = (-bits) % 32
    code = jnp.pad(code, (0, pad)).reshape(-1, 32).astype(jnp.uint32)
    return jnp.sum(code << jnp.arange(32, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)

  return StateKey(init_fn, apply_fn, lambda obs: 2**bits if bits <= 31 else None)


def auto_key(simhash_bits: int = 32) -> StateKey:
  """``exact_key()`` for integer/bool observations, ``simhash_key()`` for floats.

  The choice is made from the observation dtype (a static property). Float
  one-hot observations such as gymnax's DeepSea get SimHash here, which keeps
  distinct cells apart only with high probability: pass ``"onehot"`` for exact
  counts.
  """
  sim = simhash_key(simhash_bits)
  exact = exact_key()

  def pick(obs):
    return sim if jnp.issubdtype(jnp.asarray(obs).dtype, jnp.floating) else exact

  return StateKey(
      init=lambda key, observations: pick(observations).init(key, observations),
      apply=lambda params, obs: pick(obs).apply(params, obs),
      num_keys=lambda obs: pick(obs).num_keys(obs))


def resolve_key(key_fn, simhash_bits: int = 32) -> StateKey:
  """A ``StateKey`` from a name (``"auto"``, ``"exact"``, ``"onehot"``,
  ``"simhash"``), a ``StateKey`` or a per-observation callable."""
  if isinstance(key_fn, StateKey):
    return key_fn
  if isinstance(key_fn, str):
    named = {
        "auto": lambda: auto_key(simhash_bits),
        "exact": exact_key,
        "onehot": onehot_key,
        "simhash": lambda: simhash_key(simhash_bits),
    }
    if key_fn not in named:
      raise ValueError(f"unknown key_fn {key_fn!r}; expected one of {sorted(named)}, "
                       "a StateKey or a callable obs -> key")
    return named[key_fn]()
  if callable(key_fn):
    return exact_key(key_fn)
  raise TypeError(f"key_fn must be a str, StateKey or callable, got {type(key_fn).__name__}")


# ----------------------------------------------------------------------------
# Counting.


def _occurrences(group: tuple[Array, ...]) -> tuple[Array, Array]:
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


class _Layout(NamedTuple):
  direct: bool      # keys are exact indices into the table
  size: int         # cells per row
  rows: int         # count-min rows


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
    A reward module whose state is a ``CountState``. ``update`` reports
    ``bonus_mean``, ``count_mean``, ``unique_keys`` (nonzero cells of the
    fullest row: the number of distinct keys seen when there are no
    collisions; per environment and averaged when episodic) and
    ``table_occupancy`` (``unique_keys / table_size``).
  """
  if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
    raise ValueError(f"count_bonus: beta must be a finite number >= 0, got {beta!r}")
  if table_size is not None and (not isinstance(table_size, int) or not 1 <= table_size < 2**31):
    raise ValueError(f"count_bonus: table_size must be an int in [1, 2^31), got {table_size!r}")
  if not isinstance(num_hashes, int) or num_hashes < 1:
    raise ValueError(f"count_bonus: num_hashes must be a positive int, got {num_hashes!r}")
  if batch_counts not in ("sequential", "total"):
    raise ValueError(
        f"count_bonus: batch_counts must be 'sequential' or 'total', got {batch_counts!r}")
  beta = float(beta)
  state_key = resolve_key(key_fn, simhash_bits)
  default_size = DEFAULT_EPISODIC_TABLE_SIZE if episodic else DEFAULT_TABLE_SIZE

  def layout(obs_one) -> _Layout:
    n = state_key.num_keys(obs_one)
    size = table_size
    if size is None:
      size = n if n is not None and n <= DEFAULT_TABLE_SIZE else default_size
    direct = n is not None and n <= size
    return _Layout(direct, int(size), 1 if direct else num_hashes)

  def split(batch: Transition):
    """Flattened next observations ``[M, ...]`` and the leading batch shape."""
    shape = tuple(jnp.shape(batch.reward))
    obs = batch.next_obs
    if not shape:  # a single transition
      shape, obs = (1,), obs[None]
    flat = jnp.reshape(obs, (-1,) + jnp.shape(obs)[len(shape):])
    return flat, shape

  def table_index(state: CountState, flat_obs) -> Array:
    """``int32[rows, M]``: each observation's cell in each row."""
    lay = layout(flat_obs[0])
    keys = apply_per_observation(lambda o: state_key.apply(state.key_params, o), flat_obs, 1)
    if lay.direct:
      idx = jnp.reshape(keys, (keys.shape[0], -1))
      if idx.shape[1] != 1 or not jnp.issubdtype(idx.dtype, jnp.integer):
        raise ValueError("count_bonus: an index key (num_keys not None) must return one "
                         f"integer per observation, got {keys.shape[1:]} {keys.dtype}")
      # An index key promises [0, num_keys); clip so gather and scatter agree anyway.
      return jnp.clip(idx[:, 0].astype(jnp.int32), 0, lay.size - 1)[None]
    words = jax.vmap(as_words)(keys)
    h = hash_words(words)                                   # [M]
    h = _fmix32(h[None, :] ^ _row_seeds(lay.rows)[:, None])  # [rows, M], independent rows
    return (h % np.uint32(lay.size)).astype(jnp.int32)

  def episodes(batch: Transition, shape):
    """Per flattened transition: environment id and episode segment in the batch."""
    t = shape[0]
    e = int(np.prod(shape[1:], dtype=np.int64))
    done = jnp.reshape(jnp.logical_or(batch.terminated, batch.truncated), (t, e))
    done = done.astype(jnp.int32)
    seg = jnp.cumsum(done, axis=0) - done            # episode ends strictly before t
    last = jnp.sum(done, axis=0)                     # segment still open after the batch
    env = jnp.broadcast_to(jnp.arange(e, dtype=jnp.int32), (t, e))
    return env.reshape(-1), seg.reshape(-1), (seg == last).reshape(-1), last > 0

  def check_envs(state, shape):
    e = int(np.prod(shape[1:], dtype=np.int64))
    if state.counts.shape[1] != e:
      raise ValueError(
          f"count_bonus(episodic=True): the state holds {state.counts.shape[1]} "
          f"environments but the batch {shape} has {e} (batches must be time-major "
          "[T, N, ...] with the N of the init example)")

  def visit_counts(state: CountState, batch: Transition):
    """``N`` per transition (``int32[M]``), cell indices and episode layout."""
    flat, shape = split(batch)
    idx = table_index(state, flat)                   # [rows, M]
    rows = jnp.arange(idx.shape[0])[:, None]
    pick = 0 if batch_counts == "sequential" else 1
    if episodic:
      check_envs(state, shape)
      env, seg, open_seg, ended = episodes(batch, shape)
      prior = jnp.where(seg == 0, state.counts[rows, env[None], idx], 0)
      within = jax.vmap(lambda i: _occurrences((env, seg, i))[pick])(idx)
      eps = (env, open_seg, ended)
    else:
      prior = state.counts[rows, idx]
      within = jax.vmap(lambda i: _occurrences((i,))[pick])(idx)
      eps = None
    return jnp.min(prior + within, axis=0), idx, shape, eps

  def bonus_of(n, shape, batch):
    r = beta / jnp.sqrt(n.astype(jnp.float32))
    return jnp.reshape(r, jnp.shape(batch.reward)).astype(
        batch.reward.dtype if jnp.issubdtype(batch.reward.dtype, jnp.floating) else jnp.float32)

  def init_fn(key, example: Transition) -> CountState:
    flat, shape = split(example)
    lay = layout(flat[0])
    params = state_key.init(key, flat)
    if episodic:
      e = int(np.prod(shape[1:], dtype=np.int64))
      counts = jnp.zeros((lay.rows, e, lay.size), jnp.int32)
      return CountState(counts, params)
    counts = jnp.zeros((lay.rows, lay.size), jnp.int32)
    return CountState(counts, params, jnp.zeros((lay.rows,), jnp.int32))

  def reward_fn(state: CountState, batch: Transition) -> Array:
    n, _, shape, _ = visit_counts(state, batch)
    return bonus_of(n, shape, batch)

  def update_fn(state: CountState, batch: Transition, key: PRNGKey):
    del key
    if not episodic:
      return update_lifelong(state, batch)[:2]
    n, idx, shape, eps = visit_counts(state, batch)
    rows = jnp.arange(idx.shape[0])[:, None]
    env, open_seg, ended = eps
    counts = jnp.where(ended[None, :, None], 0, state.counts)
    counts = counts.at[rows, env[None], idx].add(open_seg.astype(jnp.int32)[None])
    nonzero = jnp.max(jnp.sum(counts > 0, axis=-1), axis=0)   # [envs]
    unique = jnp.mean(nonzero.astype(jnp.float32))
    metrics = {
        "bonus_mean": jnp.mean(bonus_of(n, shape, batch)).astype(jnp.float32),
        "count_mean": jnp.mean(n.astype(jnp.float32)),
        "unique_keys": unique,
        "table_occupancy": unique / counts.shape[-1],
    }
    return CountState(counts, state.key_params), metrics

  def reward_and_update_fn(state: CountState, batch: Transition, key: PRNGKey):
    # Lifelong counts: the bonus is read back from the updated table (see
    # update_lifelong), so the old table is never read after the scatter.
    if episodic:
      return reward_fn(state, batch), *update_fn(state, batch, key)
    new_state, metrics, n, shape = update_lifelong(state, batch)
    return bonus_of(n, shape, batch), new_state, metrics

  def update_lifelong(state: CountState, batch: Transition):
    """``(new state, metrics, N per transition, batch shape)``."""
    # N is read back from the UPDATED table (N_old = N_new − the batch's visits
    # to that cell), so nothing reads the old table after the scatter-add. Reading
    # the old table there (as ``visit_counts`` does) makes XLA keep it alive across
    # the scatter, i.e. copy the whole table (2²⁰ cells by default) every update
    # inside a ``lax.scan`` — which dominated the cost of small collections.
    flat, shape = split(batch)
    idx = table_index(state, flat)                   # [rows, M]
    rows = jnp.arange(idx.shape[0])[:, None]
    rank, size = jax.vmap(lambda i: _occurrences((i,)))(idx)
    if sharding.current_axis() is None:
      counts = state.counts.at[rows, idx].add(1)
      prior = counts[rows, idx] - size
      # Cells this batch fills for the first time: the first visit (rank 1) of a
      # cell that was empty. Counting them keeps ``occupied`` exact without a
      # pass over the whole table.
      occupied = state.occupied + jnp.sum((rank == 1) & (prior == 0), axis=1, dtype=jnp.int32)
    else:   # sharded: one global table gets every device's visits
      prior = state.counts[rows, idx]
      visits = jnp.zeros_like(state.counts).at[rows, idx].add(1)
      counts = state.counts + sharding.psum(visits)
      occupied = jnp.sum(counts > 0, axis=-1, dtype=jnp.int32)
    if batch_counts == "total":
      # The count after the whole batch (every device's visits when sharded).
      n = jnp.min(counts[rows, idx], axis=0)
    else:
      # Visits before this one (ranks are per device when sharded), plus itself.
      n = jnp.min(prior + rank, axis=0)
    unique = jnp.max(occupied).astype(jnp.float32)
    metrics = {
        "bonus_mean": jnp.mean(bonus_of(n, shape, batch)).astype(jnp.float32),
        "count_mean": jnp.mean(n.astype(jnp.float32)),
        "unique_keys": unique,
        "table_occupancy": unique / counts.shape[-1],
    }
    new_state = CountState(counts, state.key_params, occupied)
    return new_state, metrics, n, shape

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = [
    "StateKey", "CountState", "SimHashParams", "count_bonus", "exact_key",
    "onehot_key", "grid_key", "simhash_key", "auto_key", "resolve_key", "as_words",
    "hash_words", "ravel_index", "DEFAULT_TABLE_SIZE", "DEFAULT_EPISODIC_TABLE_SIZE",
]

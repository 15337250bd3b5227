"""Discrete keys of observations for count-based bonuses, and their hashes.

A ``StateKey`` is a pair of pure functions over a parameter pytree that maps ONE
observation to a discrete key; ``count_bonus`` counts these keys.

* ``onehot_key()`` and ``grid_key(low, high)``: *index* keys, integers in
  ``[0, num_keys)`` used directly as the table index. Distinct states get
  distinct cells, so counts are exact whenever ``num_keys <= table_size``. Use
  these for one-hot observations (DeepSea) and bounded integer grids.
* ``exact_key()``: equality of the observation's values (float bit patterns or
  integers), through a 32-bit hash (``hash_words``). Exact up to hash
  collisions: two distinct states share a cell of a row with probability
  ≈ 1/table_size.
* ``simhash_key(bits)``: Charikar's SimHash, ``k`` sign bits of a fixed Gaussian
  projection ``A·φ(s)`` drawn at ``init`` (Tang et al. 2017). Nearby
  observations share codes; the code is hashed into the table unless
  ``2**bits <= table_size``.
* any callable ``obs -> array``: its output values are keys, as ``exact_key(fn)``.

Hashing is uint32 arithmetic (wraps mod 2³²), so it runs the same with or
without ``jax_enable_x64`` and on every backend.
"""

from __future__ import annotations

import math

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.types import Array, PRNGKey, PyTree


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


# ----------------------------------------------------------------------------
# Hashing.

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
    x = x.astype(jnp.float32)
    # One key for zero. (Not ``x + 0.0``: XLA simplifies that to ``x`` under jit.)
    x = jnp.where(x == 0, jnp.zeros((), jnp.float32), x)
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


def row_hashes(h: Array, num_rows: int) -> Array:
  """``uint32[num_rows, M]``: the hashes ``h [M]`` re-mixed with one seed per row.

  The rows of a count-min sketch need independent hash functions; a row seed
  folded in before a full-avalanche bijection gives each row its own.
  """
  return _fmix32(h[None, :] ^ _row_seeds(num_rows)[:, None])


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
    n = math.prod(int(k) for k in hi - lo + 1)     # Python ints: no int64 overflow
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



__all__ = [
    "StateKey", "SimHashParams", "exact_key", "onehot_key", "grid_key", "simhash_key",
    "auto_key", "resolve_key", "as_words", "hash_words", "row_hashes", "ravel_index",
]

"""Checks that a function traces under ``jax.jit`` and keeps the progress contract.

The contract: ONE observation in (no batch dimension), ONE 1-D floating-point
array of fixed length k ≥ 1 out, finite, with values roughly in [0, 1].
"""

from __future__ import annotations

import inspect
import traceback
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.types import Array

# Hints for the errors JAX raises when a function is not traceable. The order
# matters: TracerBoolConversionError and TracerIntegerConversionError are
# subclasses of ConcretizationTypeError.
_TRACE_HINTS = (
    (jax.errors.TracerBoolConversionError,
     "it uses Python control flow on a traced array value (`if`, `and`/`or`/"
     "`not`, `bool()`, builtin `min`/`max` of arrays, or a chained comparison); "
     "jax.jit cannot branch on array values. Use jnp.where(cond, a, b), "
     "jnp.logical_and/jnp.logical_or, jnp.minimum/jnp.maximum or jnp.clip"),
    (jax.errors.TracerIntegerConversionError,
     "it converts a traced array value to a Python int (`int(x)`, `range(x)`, "
     "or indexing a Python list/tuple with an array). Keep the value in jnp, "
     "e.g. index a jnp.array instead of a list"),
    (jax.errors.ConcretizationTypeError,
     "it needs the concrete value of a traced array (`float(x)`, `math.*` on an "
     "array, or a shape computed from values). Use jnp.* functions, which trace"),
    (jax.errors.TracerArrayConversionError,
     "it converts a traced array to a NumPy array (numpy functions or "
     "np.asarray). Use jax.numpy (jnp) instead"),
    (jax.errors.NonConcreteBooleanIndexError,
     "boolean-mask indexing gives a shape that depends on values. Use "
     "jnp.where(mask, x, 0.0) instead"),
)


class LoadTimeout(ValueError):
  """Loading a progress function took longer than its time limit."""


def first_line(exc: BaseException) -> str:
  """``TypeName: first line of the message`` of ``exc``."""
  text = str(exc).strip().splitlines()
  return f"{type(exc).__name__}: {text[0] if text else ''}"


def _describe(obs) -> str:
  """``shape (2,) float32`` for an array, or the pytree structure otherwise."""
  if isinstance(obs, (jax.Array, np.ndarray)):
    return f"shape {tuple(obs.shape)} {obs.dtype}"
  return f"pytree {jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), obs)}"


def _user_location(fn, exc: BaseException) -> str:
  """`` (line N: `code`)`` of the deepest traceback frame inside ``fn``'s file."""
  code = getattr(inspect.unwrap(fn), "__code__", None)
  if code is None:
    return ""
  frames = [f for f in traceback.extract_tb(exc.__traceback__)
            if f.filename == code.co_filename]
  if not frames:
    return ""
  line = (frames[-1].line or "").strip()
  return f" (line {frames[-1].lineno}: `{line}`)" if line else (
      f" (line {frames[-1].lineno})")


def _as_observation(example_obs: Any):
  """``example_obs`` as arrays; a list or tuple of numbers is ONE array."""
  if isinstance(example_obs, (list, tuple)) and not hasattr(example_obs,
                                                            "_fields"):
    return jnp.asarray(example_obs)  # [0.1, 0.2] is one array, not a pytree.
  return jax.tree.map(jnp.asarray, example_obs)


def _trace(fn, obs, label: str, where: str):
  """``jax.eval_shape(fn, obs)``; a ``ValueError`` with a hint if it does not trace."""
  try:
    return jax.eval_shape(fn, obs)
  except LoadTimeout:
    raise
  except Exception as e:  # pylint: disable=broad-except
    hint = next((h for cls, h in _TRACE_HINTS if isinstance(e, cls)), None)
    problem = hint or f"it raised {first_line(e)}"
    raise ValueError(
        f"progress function {label!r} cannot be traced by jax.jit {where}"
        f"{_user_location(fn, e)}: {problem}."
        + (f"\n  original error: {first_line(e)}" if hint else "")) from e


def _check_output_struct(out, label: str) -> None:
  """Refuses anything but ONE 1-D, non-empty, floating-point array."""
  if not isinstance(out, jax.ShapeDtypeStruct):
    raise ValueError(
        f"progress function {label!r} returns a {type(out).__name__}, not one "
        f"array; return a single 1-D array, e.g. jnp.stack([a, b])")
  if out.ndim == 0:
    raise ValueError(
        f"progress function {label!r} returns a scalar (shape ()); it must return "
        f"a 1-D array of k values, e.g. jnp.stack([x]) or jnp.atleast_1d(x)")
  if out.ndim != 1:
    raise ValueError(
        f"progress function {label!r} returns shape {tuple(out.shape)}; it must "
        f"be 1-D of shape (k,): build it with jnp.stack of scalars or flatten it "
        f"with jnp.ravel")
  if out.shape[0] == 0:
    raise ValueError(
        f"progress function {label!r} returns an empty array (shape (0,)); it "
        f"must return at least one value")
  if not jnp.issubdtype(out.dtype, jnp.floating):
    raise ValueError(
        f"progress function {label!r} returns dtype {out.dtype}; progress must be "
        f"floating point (comparisons give bool and integer arithmetic gives "
        f"int): convert with .astype(jnp.float32)")


def _run_finite(fn, obs, label: str, where: str) -> np.ndarray:
  """``jax.jit(fn)(obs)`` as NumPy; a ``ValueError`` if it fails or is not finite."""
  try:
    value = np.asarray(jax.jit(fn)(obs))
  except LoadTimeout:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"progress function {label!r} traces but fails to run {where}"
        f"{_user_location(fn, e)}: {first_line(e)}") from e
  if not np.all(np.isfinite(value)):
    raise ValueError(
        f"progress function {label!r} returns non-finite values "
        f"{value.tolist()} {where}; guard divisions, logs and square roots, "
        f"e.g. jnp.maximum(denominator, 1e-8) or jnp.where")
  return value


def check_for_caller(fn, example_obs, name: str | None, stacklevel: int) -> int:
  """``check``, with its out-of-range warning at ``stacklevel`` from here."""
  label = name or getattr(fn, "__name__", None) or repr(fn)
  obs = _as_observation(example_obs)
  where = f"on an example observation of {_describe(obs)}"
  out = _trace(fn, obs, label, where)
  _check_output_struct(out, label)
  value = _run_finite(fn, obs, label, where)
  if np.any(value < -0.01) or np.any(value > 1.01):
    warnings.warn(
        f"progress function {label!r} returns {value.tolist()} {where}: values "
        f"should lie roughly in [0, 1] (jnp.clip(x, 0.0, 1.0))",
        stacklevel=stacklevel)
  return int(out.shape[0])


def check(fn: Callable[[Array], Array], example_obs: Any, *,
          name: str | None = None) -> int:
  """Checks that ``fn`` is a valid progress function and returns its length k.

  ``fn`` is traced once with ``jax.eval_shape`` on ``example_obs`` (as
  ``jax.jit`` would trace it), then compiled and run once on it. It must

  * trace: no Python control flow or conversions on traced values;
  * return ONE 1-D floating-point array of fixed length k ≥ 1 (a scalar is
    refused too: count keys and potentials need a consistent [k] layout);
  * return finite values on the example.

  Values outside [0, 1] only warn: the contract says "roughly".

  Args:
    fn: ``obs -> Array[k]`` for one observation.
    example_obs: one observation (no batch dimension), e.g. from ``env.reset``;
      a list or tuple of numbers is converted to an array.
    name: what to call ``fn`` in error messages (default: its ``__name__``).

  Returns:
    k, the number of progress components.

  Raises:
    ValueError: naming the problem (and the offending line when it is known).
  """
  return check_for_caller(fn, example_obs, name, stacklevel=3)

"""Shaping potentials from progress functions: Φ(s) = scale · weighted mean of progress(s)."""

from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from rewardjax.progress.registry import get
from rewardjax.types import Array


def potential(name_or_fn: str | Callable[[Array], Array], scale: float = 1.0,
              weights: Sequence[float] | None = None) -> Callable[[Array], Array]:
  """A potential Φ(s) = scale · Σ_i w_i·progress_i(s) / Σ_i w_i.

  Args:
    name_or_fn: a registered name or a progress function.
    scale: multiplies Φ.
    weights: non-negative weight per component. ``None``: the registered
      ``potential_weights`` of a named function, else equal weights (the mean).

  Returns:
    ``obs -> scalar`` for one observation.
  """
  if isinstance(name_or_fn, str):
    spec = get(name_or_fn)
    fn = spec.fn
    weights = spec.potential_weights if weights is None else weights
  else:
    fn = name_or_fn
  if weights is None:
    return lambda obs: scale * jnp.mean(fn(obs))
  w = np.asarray(weights, np.float32)
  if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.sum(w) > 0:
    raise ValueError(
        "potential: weights must be a non-empty 1-D sequence of non-negative numbers "
        f"with a positive sum, got {weights!r}")
  w = jnp.asarray(w / np.sum(w))
  return lambda obs: scale * jnp.dot(w, fn(obs))


def as_potential(progress: str | Callable[[Array], Array],
                 weights: Sequence[float] | None = None,
                 scale: float = 1.0) -> Callable[[Array], Array]:
  """A potential Φ(s) = scale · (weighted) mean of ``progress(s)``.

  Args:
    progress: a registered name (see ``REGISTRY``) or a progress function.
    weights: optional non-negative weight per component; ``None``: the
      registered ``potential_weights`` of a named function, else equal weights.
    scale: multiplies Φ.

  Returns:
    ``obs -> scalar`` for one observation.
  """
  return potential(progress, scale, weights)

"""Hand-written progress functions for built-in environments.

A progress function is a pure ``obs -> Array[k]`` for ONE observation, values in
[0, 1], higher meaning closer to the goal. It serves as a potential for shaping
(``potential(name)``: the mean of its components) and as a count key
(``progress_counts``). Look one up by name with ``get(name)``.
"""

from __future__ import annotations

import difflib
from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


class ProgressSpec(NamedTuple):
  fn: Callable[[Array], Array]
  env_id: str
  description: str
  low: tuple[float, ...]    # range of each component, for binning
  high: tuple[float, ...]
  # Weights of the components in the shaping potential (None: their mean). A
  # component can be good for counting but a misleading potential.
  potential_weights: tuple[float, ...] | None = None


# MountainCar dynamics (gymnax / Gym): v' = v + 0.001·(a−1) − 0.0025·cos(3x).
# The potential energy per unit mass is then U(x) = (0.0025 / 3)·sin(3x).
_MC_MIN, _MC_GOAL = -1.2, 0.5
_MC_U = 0.0025 / 3.0


def _mountaincar_energy(x, v):
  return _MC_U * jnp.sin(3.0 * x) + 0.5 * v**2


def mountaincar_progress(obs: Array) -> Array:
  """``[position progress, mechanical-energy progress]`` for MountainCar(-Continuous).

  Position progress is ``(x − x_min) / (x_goal − x_min)``. Energy progress
  normalises ``U(x) + v²/2`` between the valley floor's energy and the energy of
  standing at the goal: a car needs that much energy to get there, which
  straight position progress does not capture (it must first swing back).
  """
  x, v = obs[0], obs[1]
  pos = (x - _MC_MIN) / (_MC_GOAL - _MC_MIN)
  e_min = -_MC_U
  e_goal = _MC_U * jnp.sin(3.0 * _MC_GOAL)
  energy = (_mountaincar_energy(x, v) - e_min) / (e_goal - e_min)
  return jnp.clip(jnp.stack([pos, energy]), 0.0, 1.0)


def deepsea_progress(obs: Array) -> Array:
  """``[depth, rightward position]`` for DeepSea-bsuite (an N×N one-hot grid).

  The goal is the bottom-right cell, reachable only by moving right at every
  row; the column is the progress that matters. The terminal observation (all
  zeros) maps to ``[1, column unknown → 0]``; shaping multiplies it by 0 anyway.
  """
  grid = jnp.reshape(obs, (int(round(obs.size**0.5)),) * 2)
  n = grid.shape[0]
  rows = jnp.arange(n, dtype=jnp.float32)
  occupied = jnp.sum(grid)
  row = jnp.sum(grid.sum(axis=1) * rows)
  col = jnp.sum(grid.sum(axis=0) * rows)
  denom = jnp.maximum(n - 1, 1)
  depth = jnp.where(occupied > 0, row / denom, 1.0)
  right = jnp.where(occupied > 0, col / denom, 0.0)
  return jnp.stack([depth, right]).astype(jnp.float32)


def deepsea_right_progress(obs: Array) -> Array:
  """DeepSea's rightward position alone (``deepsea_progress(obs)[1:]``)."""
  return deepsea_progress(obs)[1:]


def cartpole_progress(obs: Array) -> Array:
  """``[uprightness, centredness]`` for CartPole-v1 (1 = upright and centred)."""
  x, theta = obs[0], obs[2]
  upright = 1.0 - jnp.abs(theta) / 0.2095
  centred = 1.0 - jnp.abs(x) / 2.4
  return jnp.clip(jnp.stack([upright, centred]), 0.0, 1.0)


# As a potential, position alone rewards pushing right from the start, which is
# exactly wrong (the car must swing back first); energy rewards the swing.
_MC_POTENTIAL_WEIGHTS = (0.0, 1.0)

REGISTRY: dict[str, ProgressSpec] = {
    "mountaincar": ProgressSpec(
        mountaincar_progress, "MountainCar-v0",
        "position and mechanical energy relative to what reaching the flag needs",
        (0.0, 0.0), (1.0, 1.0), potential_weights=_MC_POTENTIAL_WEIGHTS),
    "mountaincar_continuous": ProgressSpec(
        mountaincar_progress, "MountainCarContinuous-v0",
        "position and mechanical energy relative to what reaching the flag needs",
        (0.0, 0.0), (1.0, 1.0), potential_weights=_MC_POTENTIAL_WEIGHTS),
    "deepsea": ProgressSpec(
        deepsea_progress, "DeepSea-bsuite", "depth and column in the grid",
        (0.0, 0.0), (1.0, 1.0)),
    "deepsea_right": ProgressSpec(
        deepsea_right_progress, "DeepSea-bsuite", "column in the grid",
        (0.0,), (1.0,)),
    "cartpole": ProgressSpec(
        cartpole_progress, "CartPole-v1", "pole uprightness and cart centredness",
        (0.0, 0.0), (1.0, 1.0)),
}


def get(name: str) -> ProgressSpec:
  """The registered progress function ``name``; a ``ValueError`` lists close names."""
  try:
    return REGISTRY[name]
  except KeyError:
    close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown progress function {name!r}.{hint} Known: {', '.join(sorted(REGISTRY))}"
    ) from None


def potential(name_or_fn, scale: float = 1.0,
              weights: Sequence[float] | None = None) -> Callable[[Array], Array]:
  """A potential Φ(s) = scale · Σ_i w_i·progress_i(s) / Σ_i w_i.

  Args:
    name_or_fn: a registered name or a progress function.
    scale: multiplies Φ.
    weights: non-negative weight per component. ``None``: the registered
      ``potential_weights`` of a named function, else equal weights (the mean).
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

"""Hand-written progress functions for built-in environments.

Each is a pure ``obs -> Array[k]`` for ONE observation, values in [0, 1],
higher meaning closer to the goal; ``registry.REGISTRY`` names them.
"""

from __future__ import annotations

import jax.numpy as jnp

from rewardjax.types import Array

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

"""Potential-based reward shaping (Ng, Harada & Russell 1999).

``F(s, s') = γ·Φ(s')·(1 − terminated) − Φ(s)``.

Adding ``F`` to the reward leaves every optimal policy unchanged, provided that

* γ is the discount the learner uses for the shaped stream;
* Φ of a terminal state is taken as 0 (Grześ 2017: otherwise the shaped return of
  an episode depends on where it ends, and optimal policies can change);
* a time-limit truncation is *not* terminal: Φ(s') is computed on the true next
  observation (``info["final_observation"]``), not on the auto-reset one.

Along any episode that terminates, the shaping terms telescope:
``Σ_t γ^t F_t = −Φ(s_0)``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rewardjax.types import Array, EmptyState, RewardModule, Transition


def shaping_reward(phi_tm1: Array, phi_t: Array, terminated_t: Array,
                   gamma: float) -> Array:
  """``F_t = γ·Φ(s_t)·(1 − terminated_t) − Φ(s_{t−1})`` elementwise."""
  if jnp.shape(phi_tm1) != jnp.shape(phi_t) or jnp.shape(phi_t) != jnp.shape(terminated_t):
    raise ValueError(
        f"shaping_reward: shapes differ: phi_tm1 {jnp.shape(phi_tm1)}, phi_t "
        f"{jnp.shape(phi_t)}, terminated_t {jnp.shape(terminated_t)}")
  not_terminal = 1.0 - jnp.asarray(terminated_t, phi_t.dtype)
  return gamma * phi_t * not_terminal - phi_tm1


def apply_per_observation(fn: Callable[[Array], Array], obs: Array,
                          batch_ndim: int) -> Array:
  """Applies a single-observation function to ``obs[*batch, *obs_shape]``."""
  batch = jnp.shape(obs)[:batch_ndim]
  flat = jnp.reshape(obs, (-1,) + jnp.shape(obs)[batch_ndim:])
  out = jax.vmap(fn)(flat)
  return jnp.reshape(out, batch + jnp.shape(out)[1:])


def evaluate_potential(potential_fn: Callable[[Array], Array], obs: Array,
                       batch_ndim: int) -> Array:
  """Φ over a batch of observations, checking that Φ is a scalar per observation."""
  phi = apply_per_observation(potential_fn, obs, batch_ndim)
  extra = jnp.shape(phi)[batch_ndim:]
  if extra == (1,):
    phi = phi[..., 0]
  elif extra != ():
    raise ValueError(
        f"potential_fn must return a scalar (or shape (1,)) per observation, got shape "
        f"{extra} for observations of shape {jnp.shape(obs)[batch_ndim:]}")
  if not jnp.issubdtype(phi.dtype, jnp.floating):
    phi = phi.astype(jnp.float32)
  return phi


def potential_shaping(potential_fn: Callable[[Array], Array],
                      gamma: float) -> RewardModule:
  """Potential-based shaping reward ``F = γ·Φ(s')·(1 − terminated) − Φ(s)``.

  Args:
    potential_fn: pure ``obs -> scalar`` for ONE observation (vmapped here).
    gamma: the learner's discount for the channel carrying this reward;
      ``channel()`` refuses a different γ.

  Returns:
    A stateless reward module that requires ``gamma`` of its channel
    (``RewardModule.gamma``).
  """
  if not callable(potential_fn):
    raise TypeError(f"potential_shaping: potential_fn must be callable, got {potential_fn!r}")
  if not (isinstance(gamma, (int, float)) and 0.0 < gamma <= 1.0):
    raise ValueError(f"potential_shaping: gamma must be in (0, 1], got {gamma!r}")
  gamma = float(gamma)

  def reward_fn(state, batch: Transition):
    del state
    nd = jnp.ndim(batch.reward)
    phi_tm1 = evaluate_potential(potential_fn, batch.obs, nd)
    phi_t = evaluate_potential(potential_fn, batch.next_obs, nd)
    return shaping_reward(phi_tm1, phi_t, batch.terminated, gamma)

  def init_fn(key, example):
    del key
    reward_fn(None, example)  # checks Φ's output shape while tracing
    return EmptyState()

  def update_fn(state, batch, key):
    del batch, key
    return state, {}

  return RewardModule(init_fn, reward_fn, update_fn, gamma=gamma)

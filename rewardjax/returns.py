"""Multi-channel return and advantage estimators (rlax style: time-major, pure).

Each reward channel has its own discount γ_c and an episodic flag. For an
episodic channel, ``terminated`` zeroes the bootstrap and any episode end
(terminated or truncated) cuts the λ-recursion; a truncated step bootstraps
from V(true next observation). A non-episodic channel treats the stream of
experience as one continuing episode (Burda et al. 2018): it bootstraps from the
value of the next observation *in the rollout* (the reset observation after an
episode end) and never cuts the recursion.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rewardjax.types import Array


def channel_bootstrap(v_next_true: Array, v_next_seq: Array, terminated: Array,
                      done: Array, episodic: Sequence[bool]) -> tuple[Array, Array]:
  """Per-channel bootstrap values and recursion continuation flags.

  Args:
    v_next_true: ``[T, N, C]`` V(true next observation).
    v_next_seq: ``[T, N, C]`` V(next observation in the rollout sequence).
    terminated, done: ``[T, N]`` bool; ``done = terminated | truncated``.
    episodic: ``C`` static flags.

  Returns:
    ``(v_t [T, N, C], continue_t [T, N, C])``: the value to bootstrap each step
    from (already zero at terminal steps of episodic channels) and whether the
    λ-recursion carries on past this step.
  """
  epi = jnp.asarray(episodic, bool)
  term = terminated[..., None]
  dn = done[..., None]
  v_t = jnp.where(epi, jnp.where(term, 0.0, v_next_true), v_next_seq)
  cont = jnp.where(epi, ~dn, True).astype(v_t.dtype)
  return v_t, cont


def generalized_advantage_estimation(r_t: Array, v_tm1: Array, v_t: Array,
                                     discount_t: Array, continue_t: Array,
                                     lambda_: float) -> Array:
  """GAE (Schulman et al. 2016), time-major, any trailing batch shape.

  ``δ_t = r_t + discount_t·v_t − v_{t−1}``;
  ``A_t = δ_t + discount_t·λ·continue_t·A_{t+1}``.

  Args:
    r_t: ``[T, ...]`` rewards.
    v_tm1: ``[T, ...]`` values of the states the actions were taken in.
    v_t: ``[T, ...]`` bootstrap values (zero where terminal).
    discount_t: ``[T, ...]`` or broadcastable discounts γ.
    continue_t: ``[T, ...]`` 1 where the recursion continues past step t.
    lambda_: the GAE λ.

  Returns:
    ``[T, ...]`` advantages.
  """
  if not (r_t.shape == v_tm1.shape == v_t.shape == continue_t.shape):
    raise ValueError(
        f"generalized_advantage_estimation: shapes differ: r_t {r_t.shape}, v_tm1 "
        f"{v_tm1.shape}, v_t {v_t.shape}, continue_t {continue_t.shape}")
  discount_t = jnp.broadcast_to(discount_t, r_t.shape)
  delta = r_t + discount_t * v_t - v_tm1
  factor = discount_t * lambda_ * continue_t

  def step(a_tp1, xs):
    d, f = xs
    a = d + f * a_tp1
    return a, a

  _, adv = jax.lax.scan(step, jnp.zeros_like(r_t[0]), (delta, factor), reverse=True)
  return adv


def multichannel_gae(r_t: Array, v_tm1: Array, v_next_true: Array, v_next_seq: Array,
                     terminated: Array, truncated: Array, gammas: Sequence[float],
                     episodic: Sequence[bool], lambda_: float) -> tuple[Array, Array]:
  """Per-channel GAE over ``[T, N, C]`` rewards and values.

  Returns ``(advantages [T, N, C], value targets [T, N, C])``.
  """
  done = jnp.logical_or(terminated, truncated)
  v_t, cont = channel_bootstrap(v_next_true, v_next_seq, terminated, done, episodic)
  gam = jnp.asarray(gammas, r_t.dtype)
  adv = generalized_advantage_estimation(r_t, v_tm1, v_t, gam, cont, lambda_)
  return adv, adv + v_tm1

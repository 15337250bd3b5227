"""Q-learning targets (rlax style: time-major, pure, shape-checked).

Episode ends follow the library's rule: a *terminated* step bootstraps from 0,
a *truncated* step bootstraps from the value of the TRUE final observation, and
neither lets a multi-step return run on into the next episode. A non-episodic
channel (``episodic=False``) ignores both: its stream runs across episode ends.

With several reward channels a Q-network has one head per channel,
``q[..., A, C]``; the greedy action maximises the coefficient-weighted sum
``Σ_c coef_c · q[..., a, c]`` and every head bootstraps from its own value at
that shared action (Q-decomposition: Russell & Zimdars 2003; van Seijen et al.
2017, "Hybrid Reward Architecture"). With one channel of coefficient > 0 this
is ordinary Q-learning.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rewardjax.types import Array


def _check_same(fn: str, **arrays) -> None:
  shapes = {k: tuple(v.shape) for k, v in arrays.items()}
  if len(set(shapes.values())) > 1:
    raise ValueError(f"{fn}: shapes differ: " + ", ".join(f"{k} {s}" for k, s in shapes.items()))


def lambda_returns(r_t: Array, discount_t: Array, v_t: Array, lambda_t: Array | float = 1.0) -> Array:
  """λ-returns over a time-major sequence (Watkins 1989; rlax.lambda_returns).

  ``G_t = r_t + discount_t · [(1 − λ_t) · v_t + λ_t · G_{t+1}]`` with
  ``G_T := v_{T−1}`` beyond the last step, so the last step bootstraps from its
  own ``v``. With ``v_t = max_a Q(s_{t+1}, a)`` this is Peng's Q(λ)
  (Peng & Williams 1996: no trace cut at exploratory actions), as in PQN
  (Gallici et al. 2024); with ``λ_t = 1`` it is the n-step
  return ``Σ_k γ^k r_{t+k} + γ^n v``.

  Args:
    r_t: ``[T, ...]`` rewards of the transitions ``t → t+1``.
    discount_t: ``[T, ...]`` discounts (0 where the episode terminated).
    v_t: ``[T, ...]`` bootstrap values of the next states ``s_{t+1}``.
    lambda_t: a scalar or ``[T, ...]``; set ``λ_t = 0`` to cut the return at an
      episode end (it then bootstraps from ``v_t`` alone).

  Returns:
    ``[T, ...]`` returns ``G_t``.
  """
  lambda_t = jnp.broadcast_to(jnp.asarray(lambda_t, r_t.dtype), r_t.shape)
  _check_same("lambda_returns", r_t=r_t, discount_t=discount_t, v_t=v_t, lambda_t=lambda_t)

  def step(g_tp1, xs):
    r, d, v, lam = xs
    g = r + d * ((1.0 - lam) * v + lam * g_tp1)
    return g, g

  _, g = jax.lax.scan(step, v_t[-1], (r_t, discount_t, v_t, lambda_t), reverse=True)
  return g


def episode_discounts(terminated_t: Array, truncated_t: Array, gammas: Sequence[float],
                      episodic: Sequence[bool]) -> tuple[Array, Array]:
  """Per-channel discounts and continuation flags for ``[T, ...]`` episode flags.

  Returns ``(discount_t [T, ..., C], continue_t [T, ..., C])``: for an episodic
  channel ``discount = γ_c · (1 − terminated)`` and ``continue = 1 − done``
  (a return never runs past an episode end; a truncated step bootstraps from
  the true final observation's value); a non-episodic channel gets ``γ_c`` and
  ``1`` everywhere. Use ``continue_t`` (times λ) as ``lambda_t``.
  """
  _check_same("episode_discounts", terminated_t=terminated_t, truncated_t=truncated_t)
  if len(gammas) != len(episodic):
    raise ValueError(f"episode_discounts: {len(gammas)} gammas but {len(episodic)} episodic flags")
  gam = jnp.asarray(gammas, jnp.float32)
  epi = jnp.asarray(episodic, bool)
  term = terminated_t[..., None]
  done = jnp.logical_or(terminated_t, truncated_t)[..., None]
  discount = gam * jnp.where(epi & term, 0.0, 1.0)
  cont = jnp.where(epi & done, 0.0, 1.0) * jnp.ones_like(gam)
  return discount, cont


def n_step_target(r_t: Array, discount_t: Array, v_t: Array, continue_t: Array) -> Array:
  """The n-step Q-learning target of the FIRST step of ``[n, ...]`` sequences.

  ``G_0 = r_0 + d_0 · (c_0 ? G_1 : v_0)``, ..., ``G_{n−1} = r_{n−1} + d_{n−1} · v_{n−1}``:
  ``Σ_{k<m} (Π_{j<k} d_j) r_k + (Π_{j≤m} d_j) v_m`` where ``m`` is the first step
  that ends the episode (``continue = 0``) or ``n − 1``. (Sutton & Barto 2018,
  §7.1; Hessel et al. 2018 for n-step DQN.)
  """
  return lambda_returns(r_t, discount_t, v_t, continue_t)[0]


def greedy_action(q_t: Array, coefs: Sequence[float] | Array) -> Array:
  """``argmax_a Σ_c coef_c · q_t[..., a, c]`` for ``q_t [..., A, C]`` (regular space)."""
  coefs = jnp.asarray(coefs, q_t.dtype)
  if q_t.shape[-1] != coefs.shape[-1]:
    raise ValueError(f"greedy_action: q_t has {q_t.shape[-1]} channels, coefs {coefs.shape[-1]}")
  return jnp.argmax(q_t @ coefs, axis=-1)


def select(q_t: Array, a_t: Array) -> Array:
  """``q_t[..., a_t, :]``: per-channel values ``[..., C]`` of actions ``a_t [...]``.

  A one-hot product rather than a gather: inside a gradient its transpose is
  elementwise, where a gather's is a scatter (slow in CPU minibatch loops).
  """
  if q_t.shape[:-2] != a_t.shape:
    raise ValueError(f"select: q_t {q_t.shape} (…, A, C) does not match actions {a_t.shape}")
  one_hot = jax.nn.one_hot(a_t, q_t.shape[-2], dtype=q_t.dtype)
  return jnp.einsum("...ac,...a->...c", q_t, one_hot)


def q_learning_bootstrap(q_target_t: Array, coefs: Sequence[float] | Array) -> Array:
  """DQN bootstrap: the target network both selects and evaluates (Mnih et al. 2015).

  ``v_t[..., c] = q_target_t[..., a*, c]``, ``a* = argmax_a Σ_c coef_c q_target_t[..., a, c]``;
  with one channel, ``max_a q_target_t``.
  """
  return select(q_target_t, greedy_action(q_target_t, coefs))


def double_q_bootstrap(q_target_t: Array, q_selector_t: Array,
                       coefs: Sequence[float] | Array) -> Array:
  """Double-DQN bootstrap (van Hasselt, Guez & Silver 2016).

  The ONLINE network selects, ``a* = argmax_a Σ_c coef_c q_selector_t[..., a, c]``,
  and the TARGET network evaluates: ``v_t = q_target_t[..., a*, :]``. Gradients
  do not flow into either.
  """
  _check_same("double_q_bootstrap", q_target_t=q_target_t, q_selector_t=q_selector_t)
  a = greedy_action(jax.lax.stop_gradient(q_selector_t), coefs)
  return jax.lax.stop_gradient(select(q_target_t, a))


def td_loss(q_tm1: Array, target_tm1: Array, kind: str = "huber", delta: float = 1.0) -> Array:
  """Elementwise TD loss: ``"huber"`` (δ-Huber of the error) or ``"mse"`` (½ error²)."""
  _check_same("td_loss", q_tm1=q_tm1, target_tm1=target_tm1)
  err = q_tm1 - jax.lax.stop_gradient(target_tm1)
  if kind == "huber":
    abs_err = jnp.abs(err)
    quad = jnp.minimum(abs_err, delta)
    return 0.5 * quad**2 + delta * (abs_err - quad)
  if kind == "mse":
    return 0.5 * err**2
  raise ValueError(f"td_loss: kind must be 'huber' or 'mse', got {kind!r}")

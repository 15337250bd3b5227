"""Channel coefficients learned by a one-step look-ahead meta-gradient (BARFI-style).

A heuristic reward channel helps when it points where the primary (extrinsic)
objective does and hurts when it does not. Gupta et al. 2023 ("Behavior
Alignment via Reward Function Optimization", BARFI) learn how much to use each
auxiliary reward with a bi-level problem: the inner level updates the policy on
the blended reward, the outer level changes the blend so that the *updated*
policy does better on the primary objective alone.

With channel advantages ``A_c`` of a batch collected by ``π_old``, coefficients
``φ``, and ``ρ_θ = π_θ(a|s) / π_old(a|s)``:

* inner step (a policy-gradient step on the blend):
  ``θ'(φ) = θ − α ∇_θ L(θ; φ)``, ``L(θ; φ) = −mean ρ_θ · Σ_c φ_c A_c``;
* outer objective (the primary channel ``p`` at the updated policy):
  ``J(φ) = mean ρ_θ'(φ) · A_p``;
* meta-gradient ``∂J/∂φ`` through the inner step (``jax.grad`` of a
  ``jax.grad``). Since ``L`` is linear in ``φ``,
  ``∂J/∂φ_c = α ⟨∇_θ mean(ρ_θ A_c), ∇_θ' J⟩``: a channel whose policy gradient
  agrees with the primary objective's at the updated policy gains weight, one
  that disagrees loses it, and one whose gradient is orthogonal stays.

``meta_step`` takes one ascent step on the learned coefficients (a mask picks
which), all pure and traceable, so it runs inside the jitted training loop and
under ``vmap``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rewardjax.types import Array, PyTree


def lookahead_objective(coefs: Array, params: PyTree, log_prob_fn: Callable[[PyTree], Array],
                        log_prob_old: Array, adv_c: Array, primary: int,
                        inner_lr: float) -> Array:
  """``J(φ)``: the primary objective of the policy after one inner step on the blend.

  Args:
    coefs: ``[C]`` channel coefficients ``φ``.
    params: policy parameters ``θ`` (any pytree).
    log_prob_fn: ``params -> [B]`` log-probabilities of the batch's actions.
    log_prob_old: ``[B]`` log-probabilities under the policy that collected the batch.
    adv_c: ``[B, C]`` advantages per channel.
    primary: index of the primary (extrinsic) channel.
    inner_lr: ``α``, the inner step size.
  """
  if adv_c.ndim != 2 or adv_c.shape[-1] != coefs.shape[-1]:
    raise ValueError(f"lookahead_objective: adv_c must be [B, C={coefs.shape[-1]}], "
                     f"got {adv_c.shape}")

  def surrogate(p, adv):
    return jnp.mean(jnp.exp(log_prob_fn(p) - log_prob_old) * adv)

  grads = jax.grad(lambda p: -surrogate(p, adv_c @ coefs))(params)
  updated = jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)
  return surrogate(updated, adv_c[:, primary])


def meta_gradient(coefs: Array, params: PyTree, log_prob_fn: Callable[[PyTree], Array],
                  log_prob_old: Array, adv_c: Array, primary: int, inner_lr: float) -> Array:
  """``∂J/∂φ`` (``[C]``), differentiating through the inner step."""
  return jax.grad(lookahead_objective)(coefs, params, log_prob_fn, log_prob_old, adv_c,
                                       primary, inner_lr)


def meta_step(coefs: Array, learned: Array, params: PyTree,
              log_prob_fn: Callable[[PyTree], Array], log_prob_old: Array, adv_c: Array,
              primary: int, inner_lr: float, meta_lr: float,
              max_step: float = 0.1) -> tuple[Array, Array]:
  """One ascent step ``φ ← φ + clip(β ∂J/∂φ, ±max_step)`` on the ``learned`` channels.

  ``learned`` is a ``[C]`` bool mask; other coefficients (the primary's among
  them) stay as they are. Clipping each step keeps one large-gradient batch from
  flipping a coefficient. Returns ``(coefs, meta_gradient)``.
  """
  g = meta_gradient(coefs, params, log_prob_fn, log_prob_old, adv_c, primary, inner_lr)
  g = jnp.where(learned, g, 0.0)
  return coefs + jnp.clip(meta_lr * g, -max_step, max_step), g

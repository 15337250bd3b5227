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

``meta_step`` takes one step of an optax optimiser (ascent) on the learned
coefficients (a mask picks which), all pure and traceable, so it runs inside
the jitted training loop and under ``vmap``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rewardjax import sharding
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


class MetaState(NamedTuple):
  """Learned coefficients, their optimiser's state and where they started."""
  coefs: Array          # [C], every channel's coefficient (only the learned ones move)
  opt_state: PyTree
  prior: Array          # [C], the initial coefficients (``prior_decay`` pulls back to them)


def meta_init(tx: optax.GradientTransformation, coefs: Array) -> MetaState:
  """The coefficients ``coefs`` and ``tx``'s initial state for them."""
  return MetaState(coefs, tx.init(coefs), coefs)


def meta_step(tx: optax.GradientTransformation, state: MetaState, learned: Array,
              bounds: tuple[float, float], params: PyTree,
              log_prob_fn: Callable[[PyTree], Array], log_prob_old: Array, adv_c: Array,
              primary: int, inner_lr: float,
              prior_decay: float = 0.0) -> tuple[MetaState, Array]:
  """One ascent step of ``tx`` on the ``learned`` coefficients along ``∂J/∂φ``.

  ``learned`` is a ``[C]`` bool mask; other coefficients (the primary's among
  them) stay as they are. Learned ones are kept within ``bounds``. With
  ``prior_decay`` λ > 0 each step also pulls them back by ``λ·(φ − φ_0)``, so a
  meta-gradient that is only noise leaves them near their initial values
  ``φ_0`` (a random walk of step β settles at a spread of about ``β/√(2λ)``)
  while a consistent one still moves them. Under sharded training the
  meta-gradient is averaged over devices first. Returns ``(state, meta-gradient)``.
  """
  g = meta_gradient(state.coefs, params, log_prob_fn, log_prob_old, adv_c, primary, inner_lr)
  g = jnp.where(learned, sharding.pmean(g), 0.0)
  updates, opt_state = tx.update(-g, state.opt_state, state.coefs)     # ascent on J
  coefs = optax.apply_updates(state.coefs, updates)
  coefs = jnp.clip(coefs - prior_decay * (coefs - state.prior), *bounds)
  return MetaState(jnp.where(learned, coefs, state.coefs), opt_state, state.prior), g


class CoefLearner(NamedTuple):
  """What an agent calls: ``init(coefs) -> MetaState`` and
  ``step(state, params, log_prob_fn, log_prob_old [B], adv_c [B, C]) -> (state, metrics)``."""
  init: Callable[[Array], MetaState]
  step: Callable[..., tuple[MetaState, dict]]


def coef_learner(names: tuple[str, ...], learn: tuple[str, ...], primary: str,
                 meta_lr: float, inner_lr: float, bounds: tuple[float, float],
                 prior_decay: float = 0.0) -> CoefLearner | None:
  """The coefficients of channels ``learn`` learned against channel ``primary``
  (Adam, step size ``meta_lr``, within ``bounds``, pulled back to their initial
  values by ``prior_decay``); ``None`` if ``learn`` is empty.

  Metrics per update: ``coef/<name>`` and ``meta_grad/<name>`` of each learned channel.
  """
  if not learn:
    return None
  for name in (*learn, primary):
    if name not in names:
      raise ValueError(f"learned coefficients: no channel named {name!r}; channels: "
                       f"{', '.join(names)}")
  if primary in learn:
    raise ValueError(f"learned coefficients: the primary channel {primary!r} cannot be "
                     "learned against itself")
  if not (meta_lr > 0 and inner_lr > 0 and bounds[0] < bounds[1] and 0 <= prior_decay < 1):
    raise ValueError(f"learned coefficients: need meta_lr > 0, inner_lr > 0, bounds "
                     f"low < high and 0 <= prior_decay < 1; got {meta_lr}, {inner_lr}, "
                     f"{bounds}, {prior_decay}")
  tx = optax.adam(meta_lr)
  learned = jnp.asarray([n in learn for n in names])
  p = names.index(primary)

  def step(state, params, log_prob_fn, log_prob_old, adv_c):
    state, g = meta_step(tx, state, learned, bounds, params, log_prob_fn, log_prob_old,
                         adv_c, p, inner_lr, prior_decay)
    metrics = {}
    for i, name in enumerate(names):
      if name in learn:
        metrics[f"coef/{name}"], metrics[f"meta_grad/{name}"] = state.coefs[i], g[i]
    return state, metrics

  return CoefLearner(lambda coefs: meta_init(tx, coefs), step)

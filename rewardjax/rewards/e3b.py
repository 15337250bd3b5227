"""Exploration via elliptical episodic bonuses, E3B (Henaff et al. 2022).

For each environment, over the current episode::

    C_t = λ·I + Σ_{j<t} φ(s'_j) φ(s'_j)ᵀ        (the episode's earlier next obs)
    b_t = φ(s'_t)ᵀ C_t⁻¹ φ(s'_t)

``C⁻¹`` is kept per environment and updated by Sherman–Morrison after each
bonus, ``C⁻¹ ← C⁻¹ − (C⁻¹φ)(C⁻¹φ)ᵀ / (1 + φᵀC⁻¹φ)`` (as the reference code
does), and reset to ``I/λ`` after a ``terminated | truncated`` transition (the
final observation still counts in the ending episode). ``φ`` is an
inverse-dynamics encoder trained on every rollout (``embed="inverse_dynamics"``)
or any fixed feature map (``embeddings``). Batches are time-major ``[T, N]``
(``[T]``: one environment) with the ``N`` of the ``init`` example; ``C⁻¹`` is
per environment, so a sharded run needs no reduction beyond the encoder's
averaged gradients. An observation with a NaN or ±inf entry earns 0 and leaves
``C⁻¹`` unchanged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from rewardjax import sharding
from rewardjax.rewards import embeddings as E
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class E3BState(NamedTuple):
  """State of ``e3b``: encoder parameters, their optimiser state, and ``C⁻¹``
  of each environment's current episode, ``[N, K, K]``."""
  embed_params: PyTree
  opt_state: optax.OptState
  cov_inv: Array


def elliptical_bonus(cov_inv: Array, phi: Array, done: Array, ok: Array,
                     ridge: float) -> tuple[Array, Array]:
  """Bonuses ``[T, E]`` and the final ``C⁻¹ [E, K, K]`` for features ``φ [T, E, K]``.

  ``done [T, E]`` resets ``C⁻¹`` to ``I/λ`` after a step; where ``ok [T, E]`` is
  false the bonus is 0 and ``C⁻¹`` is left as it was.
  """
  eye = jnp.eye(cov_inv.shape[-1], dtype=jnp.float32) / ridge

  def step(c_inv, xs):
    phi_t, done_t, ok_t = xs
    h = jnp.einsum("ekl,el->ek", c_inv, phi_t)
    b_t = jnp.sum(phi_t * h, axis=-1)
    updated = c_inv - h[:, :, None] * h[:, None, :] / (1.0 + b_t)[:, None, None]
    c_inv = jnp.where(ok_t[:, None, None], updated, c_inv)
    c_inv = jnp.where(done_t[:, None, None], eye, c_inv)
    return c_inv, jnp.where(ok_t, b_t, 0.0)

  cov_inv, b = jax.lax.scan(step, cov_inv, (phi, done, ok))
  return b, cov_inv


def e3b(embed: str | Callable[[Array], Array] = "inverse_dynamics",
        num_actions: int | None = None,
        ridge: float = 0.1,
        hidden: Sequence[int] = (64, 64),
        feature_dim: int = 32,
        learning_rate: float = 1e-3,
        num_grad_steps: int = 8,
        update_proportion: float = 0.25) -> RewardModule:
  """Elliptical episodic bonus ``φ(s')ᵀ C⁻¹ φ(s')`` (Henaff et al. 2022).

  Args:
    embed: ``"inverse_dynamics"`` (learned), ``"random"``, ``"identity"`` or a
      function of one observation (see ``embeddings``).
    num_actions: size of a discrete action space (the inverse head's outputs).
    ridge: λ of ``C = λI + Σ φφᵀ`` (paper: 0.1).
    hidden, feature_dim: the learned or random encoder's sizes.
    learning_rate, num_grad_steps, update_proportion: Adam steps of the
      inverse-dynamics model per update, each on a random subset of the rollout.

  Returns:
    A ``RewardModule`` with state ``E3BState``; ``update`` reports
    ``e3b_bonus_mean``, ``e3b_inverse_loss`` and ``nonfinite_inputs``.
  """
  if not ridge > 0.0:
    raise ValueError(f"e3b: ridge must be positive, got {ridge}")
  E.check_training("e3b", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "e3b", num_actions, hidden, feature_dim)
  opt = optax.adam(learning_rate)
  ridge = float(ridge)

  def init_fn(key: PRNGKey, example: Transition) -> E3BState:
    data = E.flatten(example)
    params = emb.init(key, data)
    k = emb.apply(params, data.next_obs[:1]).shape[-1]
    envs = E.num_envs(example)
    cov_inv = jnp.broadcast_to(jnp.eye(k, dtype=jnp.float32) / ridge, (envs, k, k))
    return E3BState(params, opt.init(params), cov_inv)

  def bonus(state: E3BState, batch: Transition, data: E.Flat):
    E.check_envs("e3b", state.cov_inv.shape[0], batch)
    phi, ok = E.finite_features(emb.apply(state.embed_params, data.next_obs), data.valid)
    b, cov_inv = elliptical_bonus(state.cov_inv, E.time_major(phi, batch),
                                  E.episode_ends(batch), E.time_major(ok, batch), ridge)
    return E.as_reward(b, batch), cov_inv, ok

  def reward_fn(state: E3BState, batch: Transition) -> Array:
    return bonus(state, batch, E.flatten(batch))[0]

  def reward_and_update_fn(state: E3BState, batch: Transition, key: PRNGKey):
    data = E.flatten(batch)
    r, cov_inv, ok = bonus(state, batch, data)
    params, opt_state, loss = E.train_embedding(emb, opt, state.embed_params, state.opt_state,
                                                data, key, num_grad_steps, update_proportion)
    metrics: Metrics = {
        "e3b_bonus_mean": jnp.mean(r).astype(jnp.float32),
        "e3b_inverse_loss": loss,
        "nonfinite_inputs": sharding.psum(jnp.sum(~ok)).astype(jnp.float32),
    }
    return r, E3BState(params, opt_state, cov_inv), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = ["E3BState", "e3b", "elliptical_bonus"]

"""Rewarding impact-driven exploration, RIDE (Raileanu & Rocktäschel 2020).

    r_t = ‖φ(s'_t) − φ(s_t)‖₂ / √N_ep(s'_t)

``N_ep`` counts visits to ``s'`` in the current episode of the environment,
the current one included (``count_bonus(episodic=True,
batch_counts="sequential")`` with β = 1: one table per environment, restarted
after ``terminated | truncated``). ``φ`` is an inverse-dynamics encoder trained on
every rollout (the paper trains it jointly with a forward model; here the
inverse loss alone shapes it) or any fixed feature map (``embeddings``). An
observation with a NaN or ±inf entry earns 0.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from rewardjax import sharding
from rewardjax.rewards import embeddings as E
from rewardjax.rewards.counts import count_bonus
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class RIDEState(NamedTuple):
  """State of ``ride``: encoder parameters, their optimiser state and the
  episodic count tables (a ``CountState``)."""
  embed_params: PyTree
  opt_state: optax.OptState
  counts: PyTree


def ride(embed: str | Callable[[Array], Array] = "inverse_dynamics",
         num_actions: int | None = None,
         key_fn: str | Callable[[Array], Array] = "auto",
         table_size: int | None = None,
         hidden: Sequence[int] = (64, 64),
         feature_dim: int = 32,
         learning_rate: float = 1e-3,
         num_grad_steps: int = 8,
         update_proportion: float = 0.25) -> RewardModule:
  """Impact bonus ``‖φ(s') − φ(s)‖ / √N_ep(s')`` (Raileanu & Rocktäschel 2020).

  Args:
    embed: ``"inverse_dynamics"`` (learned), ``"random"``, ``"identity"`` or a
      function of one observation (see ``embeddings``).
    num_actions: size of a discrete action space (the inverse head's outputs).
    key_fn, table_size: how ``s'`` is counted (see ``count_bonus``).
    hidden, feature_dim: the learned or random encoder's sizes.
    learning_rate, num_grad_steps, update_proportion: Adam steps of the
      inverse-dynamics model per update, each on a random subset of the rollout.

  Returns:
    A ``RewardModule`` with state ``RIDEState``; ``update`` reports
    ``ride_bonus_mean``, ``ride_impact_mean``, ``ride_inverse_loss``,
    ``count_mean`` and ``nonfinite_inputs``.
  """
  E.check_training("ride", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "ride", num_actions, hidden, feature_dim)
  counter = count_bonus(beta=1.0, key_fn=key_fn, table_size=table_size, episodic=True,
                        batch_counts="sequential")
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> RIDEState:
    k_embed, k_count = jax.random.split(key)
    params = emb.init(k_embed, E.flatten(example))
    return RIDEState(params, opt.init(params), counter.init(k_count, example))

  def impact(state: RIDEState, data: E.Flat) -> tuple[Array, Array]:
    phi, ok = E.finite_features(emb.apply(state.embed_params, data.obs), data.valid)
    next_phi, ok = E.finite_features(emb.apply(state.embed_params, data.next_obs), ok)
    return jnp.where(ok, jnp.linalg.norm(next_phi - phi, axis=-1), 0.0), ok

  def reward_fn(state: RIDEState, batch: Transition) -> Array:
    d, _ = impact(state, E.flatten(batch))
    return E.as_reward(d, batch) * counter.reward(state.counts, batch)

  def reward_and_update_fn(state: RIDEState, batch: Transition, key: PRNGKey):
    data = E.flatten(batch)
    d, ok = impact(state, data)
    inv_sqrt_n, counts, count_metrics = counter.reward_and_update(state.counts, batch, key)
    r = E.as_reward(d, batch) * inv_sqrt_n
    params, opt_state, loss = E.train_embedding(emb, opt, state.embed_params, state.opt_state,
                                                data, key, num_grad_steps, update_proportion)
    metrics: Metrics = {
        "ride_bonus_mean": jnp.mean(r).astype(jnp.float32),
        "ride_impact_mean": jnp.mean(d),
        "ride_inverse_loss": loss,
        "count_mean": count_metrics["count_mean"],
        "nonfinite_inputs": sharding.psum(jnp.sum(~ok)).astype(jnp.float32),
    }
    return r, RIDEState(params, opt_state, counts), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = ["RIDEState", "ride"]

"""Random encoders for efficient exploration, RE3 (Seo et al. 2021).

    y_i = f(s'_i)                                  (a fixed random encoder)
    r_i = log(1 + ‖y_i − y_i^{(k)}‖₂)

``y_i^{(k)}`` is the ``k``-th nearest neighbour of ``y_i`` among the other
samples of the batch (a state entropy estimate's summand). Under sharded
training the batch is every device's: the embeddings are gathered first, so a
sharded run pays the single-device bonus. ``embed="random"`` is the paper's;
any other feature map (``embeddings``) works too, the learned
``"inverse_dynamics"`` encoder included. Observations with a NaN or ±inf entry
earn 0 and are nobody's neighbour.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from rewardjax import sharding
from rewardjax.rewards import embeddings as E
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class RE3State(NamedTuple):
  """State of ``re3``: encoder parameters and their optimiser state (unused
  by a fixed encoder)."""
  embed_params: PyTree
  opt_state: optax.OptState


def knn_distance(y: Array, ok: Array, y_all: Array, ok_all: Array, offset: Array | int,
                 k: int) -> Array:
  """``[M]``: the distance from each row of ``y [M, K]`` to its ``k``-th nearest
  row of ``y_all [A, K]`` other than itself (row ``offset + i`` of ``y_all`` is
  ``y[i]``); rows where ``ok``/``ok_all`` is false are left out (distance 0 if
  fewer than ``k`` rows remain).

  The neighbour is found on squared distances in Gram form (one matmul), by
  ``k`` passes of ``argmin`` (on a CPU far cheaper than a sort or ``top_k`` of
  the ``[M, A]`` matrix); its distance is then recomputed exactly, so a
  duplicate is at distance 0.
  """
  gram = jnp.matmul(y, y_all.T, precision=jax.lax.Precision.HIGHEST)
  sq = jnp.sum(jnp.square(y), -1)[:, None] + jnp.sum(jnp.square(y_all), -1)[None, :] - 2 * gram
  self_mask = jnp.arange(y_all.shape[0])[None, :] == (jnp.arange(y.shape[0]) + offset)[:, None]
  sq = jnp.where(self_mask | ~ok_all[None, :], jnp.inf, sq)
  rows = jnp.arange(y.shape[0])
  for _ in range(k - 1):
    sq = sq.at[rows, jnp.argmin(sq, axis=-1)].set(jnp.inf)
  idx = jnp.argmin(sq, axis=-1)
  found = jnp.isfinite(sq[rows, idx])
  d = jnp.linalg.norm(y - y_all[idx], axis=-1)
  return jnp.where(ok & found, d, 0.0)


def re3(embed: str | Callable[[Array], Array] = "random",
        k: int = 3,
        num_actions: int | None = None,
        hidden: Sequence[int] = (64, 64),
        feature_dim: int = 32,
        learning_rate: float = 1e-3,
        num_grad_steps: int = 8,
        update_proportion: float = 0.25) -> RewardModule:
  """State-entropy bonus ``log(1 + ‖y − y_kNN‖)`` (Seo et al. 2021).

  Args:
    embed: ``"random"`` (the paper's fixed encoder), ``"inverse_dynamics"``,
      ``"identity"`` or a function of one observation (see ``embeddings``).
    k: which nearest neighbour (paper: 3).
    num_actions: size of a discrete action space (learned encoder only).
    hidden, feature_dim: the encoder's sizes.
    learning_rate, num_grad_steps, update_proportion: Adam steps of a learned
      encoder per update.

  Returns:
    A ``RewardModule`` with state ``RE3State``; ``update`` reports
    ``re3_bonus_mean``, ``re3_knn_distance_mean`` and ``nonfinite_inputs``.
  """
  if int(k) != k or k < 1:
    raise ValueError(f"re3: k must be a positive integer, got {k}")
  k = int(k)
  E.check_training("re3", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "re3", num_actions, hidden, feature_dim)
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> RE3State:
    params = emb.init(key, E.flatten(example))
    return RE3State(params, opt.init(params))

  def distances(state: RE3State, data: E.Flat) -> tuple[Array, Array]:
    y, ok = E.finite_features(emb.apply(state.embed_params, data.next_obs), data.valid)
    y_all, ok_all = sharding.all_gather(y), sharding.all_gather(ok)
    offset = sharding.axis_index() * y.shape[0]      # where this device's rows sit
    return knn_distance(y, ok, y_all, ok_all, offset, k), ok

  def reward_fn(state: RE3State, batch: Transition) -> Array:
    return E.as_reward(jnp.log1p(distances(state, E.flatten(batch))[0]), batch)

  def reward_and_update_fn(state: RE3State, batch: Transition, key: PRNGKey):
    data = E.flatten(batch)
    d, ok = distances(state, data)
    r = E.as_reward(jnp.log1p(d), batch)
    params, opt_state, _ = E.train_embedding(emb, opt, state.embed_params, state.opt_state,
                                             data, key, num_grad_steps, update_proportion)
    metrics: Metrics = {
        "re3_bonus_mean": jnp.mean(r).astype(jnp.float32),
        "re3_knn_distance_mean": jnp.mean(d),
        "nonfinite_inputs": sharding.psum(jnp.sum(~ok)).astype(jnp.float32),
    }
    return r, RE3State(params, opt_state), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = ["RE3State", "re3", "knn_distance"]

"""Random encoders for efficient exploration, RE3 (Seo et al. 2021).

    y_i = f(s'_i)                                  (a fixed random encoder)
    r_i = log(1 + ‖y_i − y_i^{(k)}‖₂)

``y_i^{(k)}`` is the ``k``-th nearest neighbour of ``y_i`` (a state entropy
estimate's summand) among the other samples of

* ``neighbours="env"`` (the default): the batch's steps of ``y_i``'s own
  environment (RLeXplore's RE3 does the same). A time-major ``[T, N]`` batch
  costs ``O(N·T²)`` distances, linear in the number of environments; over the
  whole batch it would be ``O((N·T)²)``, which at 64 environments × 128 steps
  costs PPO several times over. The entropy estimate is then per environment
  and the batch's bonus their concatenation; a sharded run needs no gather;
* ``neighbours="batch"``: every sample of the batch, of every device under
  sharded training (the embeddings are gathered first, so a sharded run pays
  the single-device bonus). A state seen more than ``k`` times in the rollout
  is at distance 0, so the bonus goes to the states the current policy rarely
  visits: what a singleton task with sparse reward needs, where one
  environment's few episodes make nearly every state a stranger (DeepSea:
  benchmarks/RESULTS.md, "RE3 with the whole batch as neighbours").

A ``[T]`` batch is one environment, for which both are the same.
``embed="random"`` is the paper's;
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

  The neighbour is found on squared distances in Gram form (one matmul):
  their ``k``-th smallest value by ``kth_smallest``, then the first column
  holding it, read out by a one-hot matmul (exact: one product by 1, the rest
  by 0). Only elementwise passes, ``min`` reductions and matmuls, which a CPU
  vectorises (``argmin``, a sort or ``top_k`` of the ``[M, A]`` matrix cost
  several times more). The distance to that neighbour is then recomputed
  exactly, so a duplicate is at distance 0.
  """
  hi = jax.lax.Precision.HIGHEST
  gram = jnp.matmul(y, y_all.T, precision=hi)
  sq = jnp.sum(jnp.square(y), -1)[:, None] + jnp.sum(jnp.square(y_all), -1)[None, :] - 2 * gram
  cols = jnp.arange(y_all.shape[0])[None, :]
  self_mask = cols == (jnp.arange(y.shape[0]) + offset)[:, None]
  sq = jnp.where(self_mask | ~ok_all[None, :], jnp.inf, sq)
  kth = kth_smallest(sq, k)
  idx = jnp.min(jnp.where(sq == kth[:, None], cols, y_all.shape[0]), axis=-1)
  y_nn = jnp.matmul((cols == idx[:, None]).astype(y_all.dtype), y_all, precision=hi)
  d = jnp.linalg.norm(y - y_nn, axis=-1)
  return jnp.where(ok & jnp.isfinite(kth), d, 0.0)


def kth_smallest(x: Array, k: int) -> Array:
  """``[M]``: the ``k``-th smallest entry of each row of ``x [M, A]``, ties
  counted with their multiplicity (``inf`` if the row has fewer finite ones).

  ``k`` passes of ``min``: each masks every entry equal to its minimum and
  counts them; the pass where the count reaches ``k`` holds the answer.
  """
  need = jnp.full(x.shape[:-1], k, jnp.int32)
  out = jnp.full(x.shape[:-1], jnp.inf, x.dtype)
  for _ in range(k):
    low = jnp.min(x, axis=-1)
    at_low = x == low[:, None]
    count = jnp.sum(at_low, axis=-1, dtype=jnp.int32)
    out = jnp.where((need > 0) & (count >= need), low, out)
    need = need - count
    x = jnp.where(at_low, jnp.inf, x)
  return out


NEIGHBOURS = ("env", "batch")


def env_knn_distance(y: Array, ok: Array, k: int) -> Array:
  """``[T, E]``: ``knn_distance`` of each ``y [T, E, K]`` among the other steps of
  its own environment (``ok [T, E]`` as there)."""
  per_env = jax.vmap(lambda y_e, ok_e: knn_distance(y_e, ok_e, y_e, ok_e, 0, k),
                     in_axes=1, out_axes=1)
  return per_env(y, ok)


def re3(embed: str | Callable[[Array], Array] = "random",
        k: int = 3,
        neighbours: str = "env",
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
    neighbours: ``"env"`` (the other steps of the sample's environment in the
      batch) or ``"batch"`` (every other sample of the batch); see above.
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
  if neighbours not in NEIGHBOURS:
    raise ValueError(f"re3: neighbours must be one of {NEIGHBOURS}, got {neighbours!r}")
  k = int(k)
  E.check_training("re3", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "re3", num_actions, hidden, feature_dim)
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> RE3State:
    params = emb.init(key, E.flatten(example))
    return RE3State(params, opt.init(params))

  def distances(state: RE3State, batch: Transition, data: E.Flat) -> tuple[Array, Array]:
    y, ok = E.finite_features(emb.apply(state.embed_params, data.next_obs), data.valid)
    if neighbours == "env":
      d = env_knn_distance(E.time_major(y, batch), E.time_major(ok, batch), k)
      return jnp.reshape(d, (-1,)), ok
    y_all, ok_all = sharding.all_gather(y), sharding.all_gather(ok)
    offset = sharding.axis_index() * y.shape[0]      # where this device's rows sit
    return knn_distance(y, ok, y_all, ok_all, offset, k), ok

  def reward_fn(state: RE3State, batch: Transition) -> Array:
    return E.as_reward(jnp.log1p(distances(state, batch, E.flatten(batch))[0]), batch)

  def reward_and_update_fn(state: RE3State, batch: Transition, key: PRNGKey):
    data = E.flatten(batch)
    d, ok = distances(state, batch, data)
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


__all__ = ["RE3State", "re3", "knn_distance", "kth_smallest", "env_knn_distance", "NEIGHBOURS"]

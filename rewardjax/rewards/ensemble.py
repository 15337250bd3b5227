"""``ensemble``: n independently initialised copies of a reward module, reduced to one reward.

A learned reward (RND's predictor error, an attention return model) is an
estimate; an ensemble of independently initialised copies trained on the same
batches says how far to trust it. With ``r_i`` the reward of member ``i`` and
``μ``, ``σ`` their mean and (population) standard deviation across members:

* ``reduce="mean"``: ``μ`` (a lower-variance estimate);
* ``reduce="min"``: ``min_i r_i`` (pessimistic);
* ``reduce="lcb"``: ``μ − κ·σ``, a lower confidence bound: a reward the
  members disagree on is discounted (cf. reward-model ensembles in RLHF,
  Coste et al. 2024; pessimism under model uncertainty, Yu et al. 2020).

Members are one module's functions over a stacked state (``jax.vmap``), so the
ensemble is one compiled program, works under ``vmap`` over seeds, and on a
device mesh each member reduces its statistics as the module does alone.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rewardjax.types import PyTree, RewardModule, reward_and_update

REDUCTIONS = ("mean", "min", "lcb")


class EnsembleState(NamedTuple):
  """The members' states, stacked."""
  members: PyTree   # the member module's state, each leaf with a leading [n] axis


def reduce_members(r_members: jax.Array, reduce: str, kappa: float) -> jax.Array:
  """``[n, ...]`` member rewards to ``[...]`` by ``reduce`` (module docstring)."""
  if reduce == "mean":
    return jnp.mean(r_members, axis=0)
  if reduce == "min":
    return jnp.min(r_members, axis=0)
  return jnp.mean(r_members, axis=0) - kappa * jnp.std(r_members, axis=0)


def ensemble(factory: Callable[[], RewardModule] | RewardModule, n: int = 5,
             reduce: str = "mean", kappa: float = 1.0) -> RewardModule:
  """``n`` copies of ``factory()`` (or of a given module), initialised from independent keys.

  Every member is updated on every batch with its own key. Metrics: each of the
  module's metrics averaged over members, and ``ensemble_spread``, the batch
  mean of the members' standard deviation (how much they disagree).
  """
  module = factory if isinstance(factory, RewardModule) else factory()
  if not isinstance(module, RewardModule):
    raise TypeError(f"ensemble: factory must return a RewardModule, got {type(module).__name__}")
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"ensemble: n must be a positive integer, got {n!r}")
  if reduce not in REDUCTIONS:
    raise ValueError(f"ensemble: reduce must be one of {REDUCTIONS}, got {reduce!r}")
  kappa = float(kappa)
  if not kappa >= 0.0:
    raise ValueError(f"ensemble: kappa must be >= 0, got {kappa}")

  def init_fn(key, example):
    keys = jax.random.split(key, n)
    return EnsembleState(jax.vmap(module.init, (0, None))(keys, example))

  def reward_fn(state, batch):
    r_members = jax.vmap(module.reward, (0, None))(state.members, batch)
    return reduce_members(r_members, reduce, kappa)

  def reward_and_update_fn(state, batch, key):
    member = lambda s, k: reward_and_update(module, s, batch, k)
    r_members, members, metrics = jax.vmap(member)(state.members, jax.random.split(key, n))
    metrics = {name: jnp.mean(v, axis=0) for name, v in metrics.items()}
    metrics["ensemble_spread"] = jnp.mean(jnp.std(r_members, axis=0))
    return reduce_members(r_members, reduce, kappa), EnsembleState(members), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn, gamma=module.gamma)

"""Core types shared by reward modules, agents and environments."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any
Metrics = dict[str, Array]


class Transition(NamedTuple):
  """A batch of environment transitions.

  Leaves share leading batch dimensions, e.g. ``[T, N]`` for a rollout of ``T``
  steps in ``N`` environments (time first), or ``[B]`` for a replay sample.

  Attributes:
    obs: observation the action was taken in, ``s_t``.
    action: action ``a_t``.
    reward: extrinsic reward ``r_{t+1}`` from the environment.
    next_obs: the TRUE next observation ``s_{t+1}`` (gymnax
      ``info["final_observation"]``), never the auto-reset observation.
    terminated: ``s_{t+1}`` is terminal: bootstrap with 0.
    truncated: the episode was cut by a time limit: bootstrap from ``next_obs``.
  """
  obs: Array
  action: Array
  reward: Array
  next_obs: Array
  terminated: Array
  truncated: Array


class RewardModule(NamedTuple):
  """A reward stream as pure functions (cf. ``optax.GradientTransformation``).

  Attributes:
    init: ``(key, example: Transition) -> state``. ``example`` has the shape of
      the batches later passed to ``reward``/``update`` (for on-policy agents a
      ``[T, N]`` rollout: time is the leading axis).
    reward: ``(state, batch) -> Array`` with ``batch.reward``'s shape. Reads the
      state only.
    update: ``(state, batch, key) -> (state, metrics)``: learns, counts or updates
      statistics from the batch.
    reward_and_update: optional ``(state, batch, key) -> (reward, state, metrics)``,
      equal to ``reward`` followed by ``update`` on the same batch but computed
      in one pass. A count table that is read by ``reward`` and then updated in
      place by ``update`` has to be copied whole between the two (XLA keeps the
      old table alive for the read), which the fused path avoids. ``None``:
      ``with_fused_update`` fills it with ``reward`` then ``update``.
    gamma: optional discount the module's reward requires of the channel that
      carries it (potential shaping preserves optimal policies only at the
      learner's γ); ``channel()`` refuses a different one. ``None``: any γ.
  """
  init: Callable[[PRNGKey, Transition], PyTree]
  reward: Callable[[PyTree, Transition], Array]
  update: Callable[[PyTree, Transition, PRNGKey], tuple[PyTree, Metrics]]
  reward_and_update: Callable[[PyTree, Transition, PRNGKey],
                              tuple[Array, PyTree, Metrics]] | None = None
  gamma: float | None = None


def with_fused_update(module: RewardModule) -> RewardModule:
  """``module`` with its optional ``reward_and_update`` filled in.

  A module that declares its own fused path keeps it; otherwise the field
  becomes ``reward`` followed by ``update`` on the same batch (as optax's
  ``with_extra_args_support`` fills in what a transformation does not declare).
  """
  if not isinstance(module, RewardModule):
    raise TypeError(f"expected a RewardModule, got {type(module).__name__}")
  if module.reward_and_update is not None:
    return module

  def reward_and_update_fn(state, batch, key):
    r = module.reward(state, batch)
    state, metrics = module.update(state, batch, key)
    return r, state, metrics

  return module._replace(reward_and_update=reward_and_update_fn)


def reward_and_update(module, state: PyTree, batch: Transition,
                      key: PRNGKey) -> tuple[Array, PyTree, Metrics]:
  """``module.reward(state, batch)`` then ``module.update(state, batch, key)``, fused
  where the module declares a fused path. ``module`` is a ``RewardModule`` or
  ``Channels``."""
  if module.reward_and_update is None:
    module = with_fused_update(module)
  return module.reward_and_update(state, batch, key)


class EmptyState(NamedTuple):
  """State of a stateless reward module."""


def stateless(reward_fn: Callable[[Transition], Array]) -> RewardModule:
  """Builds a reward module from a pure ``batch -> reward`` function."""

  def init_fn(key, example):
    del key, example
    return EmptyState()

  def reward_fn_(state, batch):
    del state
    return reward_fn(batch)

  def update_fn(state, batch, key):
    del batch, key
    return state, {}

  return RewardModule(init_fn, reward_fn_, update_fn)


def batch_shape(batch: Transition) -> tuple[int, ...]:
  """The leading batch shape of a transition batch (that of ``batch.reward``)."""
  return tuple(jnp.shape(batch.reward))


def check_reward_shape(name: str, r: Array, batch: Transition) -> None:
  """Raises a ``ValueError`` naming ``name`` if ``r`` is not shaped like ``batch.reward``."""
  expected = batch_shape(batch)
  if tuple(jnp.shape(r)) != expected:
    raise ValueError(
        f"reward module {name!r} returned shape {tuple(jnp.shape(r))}, expected "
        f"{expected} (the shape of batch.reward)")


__all__ = [
    "Array", "PRNGKey", "PyTree", "Metrics", "Transition", "RewardModule",
    "EmptyState", "stateless", "batch_shape", "check_reward_shape", "reward_and_update",
    "with_fused_update",
]

"""``select``: a bandit inside the training loop picks which intrinsic reward to pay (AIRS).

Yuan et al. 2023 ("Automatic Intrinsic Reward Shaping for Exploration in Deep
Reinforcement Learning", AIRS) treat the choice among intrinsic reward
functions as a multi-armed bandit whose payoff is how much the extrinsic return
improves while an arm is in use. Here the arms are reward modules (optionally
``"none"``, no bonus). A window ends at the first update, ``every`` or more
updates (calls of ``reward_and_update``) after it began, by which some episode
has ended in it:

* its payoff is the change of the mean extrinsic return of the episodes that
  ended in it, window against the previous window: ``u = R̄_window −
  R̄_previous`` (no payoff for the first). Episode returns, not the reward per
  step: on MountainCar every step pays −1 whatever the policy, and only the
  episodes' lengths, so their returns, improve;
* the active arm's value is the running mean of its payoffs;
* the next arm is the UCB choice ``argmax_k v_k + c·√(ln n / n_k)`` (Auer et
  al. 2002), an untried arm first.

Every candidate learns from every batch (a learned bonus keeps training while
another is in use); only the active arm's reward is paid. The module follows
each environment's episode through the ``[T, N]`` rollouts
(``rewardjax.episodes``; an episode ends at ``terminated | truncated``). Under
sharded training the window's return statistics are summed over devices, so
every device chooses the same arm. Metrics: ``select/arm`` (the index paid in this
batch) and each arm's ``select/value/<name>``; the choice history is the
``select/arm`` curve.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax.numpy as jnp

from rewardjax import episodes
from rewardjax import sharding
from rewardjax.rewards.channels import stack_modules
from rewardjax.types import Array, PyTree, RewardModule, stateless


class SelectState(NamedTuple):
  """The candidates' states and the bandit's."""
  candidates: PyTree      # dict by arm name
  arm: Array              # int32: the arm paid in the current window
  pulls: Array            # [K] windows credited to each arm
  values: Array           # [K] mean payoff of each arm
  window_return: Array    # extrinsic returns of the episodes ended in the window, summed
  window_episodes: Array  # episodes ended in the window
  previous_return: Array  # the previous window's mean episode return (NaN before one ends)
  updates: Array          # int32: updates in the current window
  episodes: episodes.EpisodeState   # each environment's running extrinsic return


def ucb_choice(values: Array, pulls: Array, c: float) -> Array:
  """``argmax_k v_k + c·√(ln n / n_k)`` with ``n = Σ n_k``; an arm never pulled first."""
  total = jnp.maximum(jnp.sum(pulls), 1.0)
  bonus = c * jnp.sqrt(jnp.log(total) / jnp.maximum(pulls, 1.0))
  return jnp.argmax(jnp.where(pulls == 0, jnp.inf, values + bonus)).astype(jnp.int32)


def _zero_bonus() -> RewardModule:
  return stateless(lambda batch: jnp.zeros_like(batch.reward, jnp.float32))


def select(candidates: Mapping[str, RewardModule | None], every: int = 10,
           c: float = 1.0) -> RewardModule:
  """A reward module paying one of ``candidates`` at a time, chosen by UCB (module docstring).

  Use it as an intrinsic channel: ``intrinsic_channel(select({"counts": count_bonus(),
  "rnd": rnd(), "none": None}))``.

  Args:
    candidates: ``{name: module}``; a ``None`` module is the arm "no bonus".
    every: updates per window at least (how often the arm may change).
    c: UCB exploration constant, in units of extrinsic episode return.
  """
  if not candidates or len(candidates) < 2:
    raise ValueError("select: give at least two candidates")
  if isinstance(every, bool) or not isinstance(every, int) or every < 1:
    raise ValueError(f"select: every must be a positive integer, got {every!r}")
  if not c >= 0:
    raise ValueError(f"select: c must be >= 0, got {c}")
  modules = {}
  for name, m in candidates.items():
    if m is not None and not isinstance(m, RewardModule):
      raise TypeError(f"select: candidate {name!r} is a {type(m).__name__}, not a RewardModule")
    if m is not None and m.gamma is not None:
      raise ValueError(f"select: candidate {name!r} is potential shaping; switching it on "
                       "and off would not keep it policy-invariant")
    modules[name] = _zero_bonus() if m is None else m
  names = tuple(modules)
  stacked = stack_modules(modules)
  k = len(names)

  def init_fn(key, example):
    if jnp.ndim(example.reward) != 2:
      raise ValueError("select: batches must be [T, N] rollouts (its payoff is the return of "
                       f"the episodes that end in them); got reward shape "
                       f"{jnp.shape(example.reward)}")
    zero = jnp.zeros((), jnp.float32)
    return SelectState(stacked.init(key, example), jnp.zeros((), jnp.int32),
                       jnp.zeros(k, jnp.float32), jnp.zeros(k, jnp.float32), zero, zero,
                       jnp.full((), jnp.nan, jnp.float32), jnp.zeros((), jnp.int32),
                       episodes.init(jnp.shape(example.reward)[1]))

  def reward_fn(state, batch):
    return stacked.reward(state.candidates, batch)[..., state.arm]

  def bandit_update(state, batch):
    """Adds the batch's ended episodes to the window; at its end, credits the arm
    and picks the next."""
    done = batch.terminated | batch.truncated
    episode_state, ended = episodes.update(state.episodes, batch.reward, done)
    window_return = state.window_return + sharding.psum(
        jnp.sum(jnp.where(ended.done, ended.episode_return, 0.0)))
    window_episodes = state.window_episodes + sharding.psum(
        jnp.sum(ended.done, dtype=jnp.float32))
    updates = state.updates + 1
    ends = (updates >= every) & (window_episodes > 0)
    mean_return = window_return / jnp.maximum(window_episodes, 1.0)
    credit = ends & jnp.isfinite(state.previous_return)
    one_hot = (jnp.arange(k) == state.arm) & credit
    pulls = state.pulls + one_hot
    payoff = mean_return - state.previous_return
    values = jnp.where(one_hot, state.values + (payoff - state.values) / jnp.maximum(pulls, 1),
                       state.values)
    arm = jnp.where(ends, ucb_choice(values, pulls, c), state.arm)
    zero = jnp.zeros((), jnp.float32)
    return state._replace(
        arm=arm, pulls=pulls, values=values,
        window_return=jnp.where(ends, zero, window_return),
        window_episodes=jnp.where(ends, zero, window_episodes),
        previous_return=jnp.where(ends, mean_return, state.previous_return),
        updates=jnp.where(ends, 0, updates), episodes=episode_state)

  def reward_and_update_fn(state, batch, key):
    r, candidate_states, metrics = stacked.reward_and_update(state.candidates, batch, key)
    paid = r[..., state.arm]
    metrics["select/arm"] = state.arm.astype(jnp.float32)
    new = bandit_update(state._replace(candidates=candidate_states), batch)
    metrics.update({f"select/value/{n}": new.values[i] for i, n in enumerate(names)})
    return paid, new, metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)

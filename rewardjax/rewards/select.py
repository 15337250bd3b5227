"""``select``: a bandit inside the training loop picks which intrinsic reward to pay (AIRS).

Yuan et al. 2023 ("Automatic Intrinsic Reward Shaping for Exploration in Deep
Reinforcement Learning", AIRS) treat the choice among intrinsic reward
functions as a multi-armed bandit whose payoff is how much the extrinsic return
improves while an arm is in use. Here the arms are reward modules (optionally
``"none"``, no bonus). Every ``every`` updates (calls of ``reward_and_update``)
one window ends:

* its payoff is the change of the extrinsic reward per step, window against the
  previous window: ``u = r̄_window − r̄_previous`` (no payoff for the first);
* the active arm's value is the running mean of its payoffs;
* the next arm is the UCB choice ``argmax_k v_k + c·√(ln n / n_k)`` (Auer et
  al. 2002), an untried arm first.

Every candidate learns from every batch (a learned bonus keeps training while
another is in use); only the active arm's reward is paid. Under sharded
training the window's reward statistics are summed over devices, so every
device chooses the same arm. Metrics: ``select/arm`` (the index paid in this
batch) and each arm's ``select/value/<name>``; the choice history is the
``select/arm`` curve.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax.numpy as jnp

from rewardjax import sharding
from rewardjax.rewards.channels import stack_modules
from rewardjax.types import Array, PyTree, RewardModule, stateless


class SelectState(NamedTuple):
  """The candidates' states and the bandit's."""
  candidates: PyTree      # dict by arm name
  arm: Array              # int32: the arm paid in the current window
  pulls: Array            # [K] windows credited to each arm
  values: Array           # [K] mean payoff of each arm
  window_reward: Array    # extrinsic reward summed over the current window
  window_steps: Array     # transitions in the current window
  previous_rate: Array    # the previous window's reward per step (NaN before one ends)
  updates: Array          # int32: updates in the current window


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
    every: updates per window (how often the arm may change).
    c: UCB exploration constant, in units of extrinsic reward per step.
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
    zero = jnp.zeros((), jnp.float32)
    return SelectState(stacked.init(key, example), jnp.zeros((), jnp.int32),
                       jnp.zeros(k, jnp.float32), jnp.zeros(k, jnp.float32), zero, zero,
                       jnp.full((), jnp.nan, jnp.float32), jnp.zeros((), jnp.int32))

  def reward_fn(state, batch):
    return stacked.reward(state.candidates, batch)[..., state.arm]

  def bandit_update(state, batch):
    """Adds the batch to the window; at its end, credits the arm and picks the next."""
    window_reward = state.window_reward + sharding.psum(jnp.sum(batch.reward))
    window_steps = state.window_steps + sharding.psum(jnp.asarray(batch.reward.size,
                                                                  jnp.float32))
    updates = state.updates + 1
    ends = updates >= every
    rate = window_reward / window_steps
    credit = ends & jnp.isfinite(state.previous_rate)
    one_hot = (jnp.arange(k) == state.arm) & credit
    pulls = state.pulls + one_hot
    payoff = rate - state.previous_rate
    values = jnp.where(one_hot, state.values + (payoff - state.values) / jnp.maximum(pulls, 1),
                       state.values)
    arm = jnp.where(ends, ucb_choice(values, pulls, c), state.arm)
    zero = jnp.zeros((), jnp.float32)
    return state._replace(
        arm=arm, pulls=pulls, values=values,
        window_reward=jnp.where(ends, zero, window_reward),
        window_steps=jnp.where(ends, zero, window_steps),
        previous_rate=jnp.where(ends, rate, state.previous_rate),
        updates=jnp.where(ends, 0, updates))

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

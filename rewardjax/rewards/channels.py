"""Named reward channels: one coefficient, discount and episodic flag per stream.

    rewards = combine(
        extrinsic=channel(extrinsic(), coef=2.0, gamma=0.999),
        novelty=channel(rnd(), coef=1.0, gamma=0.99, episodic=False),
    )
    r = rewards.reward(state, batch)      # [..., C], channels in the given order

Agents keep one value head per channel, compute each channel's advantages with
its own γ (a non-episodic channel ignores ``terminated``, as RND's intrinsic
stream does) and combine advantages by coefficient (Burda et al. 2018).
The combined state is a dict keyed by channel name (as optax's ``named_chain``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rewardjax import schedules, stats
from rewardjax.schedules import Schedule
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.rewards.transforms import RewardTransform, transform
from rewardjax.types import (RewardModule, Transition, check_reward_shape, reward_and_update,
                             with_fused_update)


class Channel(NamedTuple):
  """A reward module with the learner-side settings of its stream."""
  module: RewardModule
  coef: float = 1.0
  gamma: float | None = None   # None: the agent's default γ
  episodic: bool = True
  schedule: Schedule | None = None   # the coefficient's schedule; None: constant


def _check_gamma(name: str, gamma) -> None:
  if gamma is not None and not (isinstance(gamma, (int, float)) and 0.0 < gamma <= 1.0):
    raise ValueError(f"channel {name!r}: gamma must be in (0, 1], got {gamma!r}")


def _check_module(where: str, module) -> None:
  if not isinstance(module, RewardModule):
    raise TypeError(f"{where}: expected a RewardModule, got {type(module).__name__}")


def channel(module: RewardModule, coef: float = 1.0, gamma: float | None = None,
            episodic: bool = True,
            transforms: Sequence[RewardTransform] = (),
            schedule: Schedule | str | None = None) -> Channel:
  """Wraps ``module`` as a channel.

  Args:
    module: any reward module.
    coef: weight of this channel's advantages (or rewards, for single-critic
      agents). Must be finite.
    gamma: the channel's discount; ``None`` takes the agent's ``gamma``. A
      module that requires a discount (``RewardModule.gamma``, e.g. potential
      shaping) fixes the channel's, which must then match.
    episodic: if False, returns of this channel run across episode ends
      (``terminated`` is ignored), as for RND's intrinsic stream.
    transforms: reward transforms applied to the module's reward, in order.
    schedule: the coefficient at update ``t`` is ``coef · f(t)``
      (``rewardjax.schedules``: ``"exp:κ"`` decays it as ``(1 − κ)^t``, as
      RLeXplore does); ``None`` keeps it constant.
  """
  _check_module("channel", module)
  if isinstance(schedule, str):
    schedule = schedules.parse(schedule)
  elif schedule is not None:
    schedules.check(schedule, "channel")
  coef = float(coef)
  if not math.isfinite(coef):
    raise ValueError(f"channel: coef must be finite, got {coef}")
  _check_gamma("channel", gamma)
  if module.gamma is not None:
    if gamma is None:
      gamma = module.gamma
    elif abs(gamma - module.gamma) > 1e-12:
      raise ValueError(
          f"channel: potential shaping was built with gamma={module.gamma} but the channel "
          f"discounts with gamma={gamma}; shaping preserves optimal policies only when "
          "they are equal (Ng et al. 1999)")
  module = transform(module, *transforms)
  return Channel(module, coef, None if gamma is None else float(gamma), bool(episodic), schedule)


def intrinsic_channel(module: RewardModule, coef: float = 1.0, gamma: float = 0.99,
                      normalize: bool = True,
                      transforms: Sequence[RewardTransform] = (),
                      schedule: Schedule | str | None = None) -> Channel:
  """An exploration bonus channel with the RND paper's learner settings.

  Non-episodic (the bonus stream runs across episode ends), its own γ (0.99),
  coefficient 1 beside an extrinsic channel of coefficient 2 (Burda et al.
  2018), and — unless ``normalize=False`` — rewards divided by the running std of
  their discounted return. That normalisation makes the channel invariant to
  the bonus's scale (β), so one default works across environments whose
  extrinsic rewards differ (DeepSea's +1 at the goal, MountainCar's −1 per step).
  Turn it off for modules that normalise themselves (``rnd()``). ``schedule``
  decays the coefficient over training (``channel``).
  """
  from rewardjax.rewards.transforms import normalize_by_return_std  # pylint: disable=g-import-not-at-top
  ts = tuple(transforms) + ((normalize_by_return_std(gamma),) if normalize else ())
  return channel(module, coef=coef, gamma=gamma, episodic=False, transforms=ts,
                 schedule=schedule)


class Channels(NamedTuple):
  """Several channels combined: a reward module whose reward is ``[..., C]``,
  with each channel's name, coefficient, discount and episodic flag.

  ``init`` / ``reward`` / ``update`` / ``reward_and_update`` are the combined
  module's (the last always set: fused where the channels' modules are).
  """
  module: RewardModule
  names: tuple[str, ...]
  coefs: tuple[float, ...]
  gammas: tuple[float | None, ...]
  episodic: tuple[bool, ...]
  schedules: tuple[Schedule | None, ...] = ()    # per channel; () or None: constant

  @property
  def init(self):
    return self.module.init

  @property
  def reward(self):
    return self.module.reward

  @property
  def update(self):
    return self.module.update

  @property
  def reward_and_update(self):
    return self.module.reward_and_update

  @property
  def num_channels(self) -> int:
    return len(self.names)

  def resolve(self, default_gamma: float) -> "Channels":
    """Fills unset discounts with ``default_gamma``."""
    _check_gamma("default", default_gamma)
    gammas = tuple(default_gamma if g is None else g for g in self.gammas)
    return self._replace(gammas=gammas)


def stack_modules(modules: dict[str, RewardModule]) -> RewardModule:
  """One module whose reward stacks ``modules``' rewards on a last axis ``[..., C]``.

  Its state is a dict keyed like ``modules``; keys split in the given order.
  Every module's fused ``reward_and_update`` is used where it declares one.
  """
  names = tuple(modules)
  mods = tuple(with_fused_update(m) for m in modules.values())

  def init_fn(key, example: Transition):
    keys = jax.random.split(key, len(mods))
    return {n: m.init(k, example) for n, m, k in zip(names, mods, keys)}

  def stacked(rewards: dict, batch):
    for name, r in rewards.items():
      check_reward_shape(name, r, batch)
    return jnp.stack([jnp.asarray(r, jnp.float32) for r in rewards.values()], axis=-1)

  def reward_fn(state, batch: Transition):
    return stacked({n: m.reward(state[n], batch) for n, m in zip(names, mods)}, batch)

  def reward_and_update_fn(state, batch: Transition, key):
    keys = jax.random.split(key, len(mods))
    rs, new_state, metrics = {}, {}, {}
    for name, m, k in zip(names, mods, keys):
      rs[name], new_state[name], mt = m.reward_and_update(state[name], batch, k)
      metrics.update({f"{name}/{n}": v for n, v in mt.items()})
    return stacked(rs, batch), new_state, metrics

  def update_fn(state, batch: Transition, key):
    keys = jax.random.split(key, len(mods))
    new_state, metrics = {}, {}
    for name, m, k in zip(names, mods, keys):
      new_state[name], mt = m.update(state[name], batch, k)
      metrics.update({f"{name}/{n}": v for n, v in mt.items()})
    return new_state, metrics

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


def combine(**channels: Channel | RewardModule) -> Channels:
  """Combines named channels (bare modules get ``channel()``'s defaults)."""
  if not channels:
    raise ValueError("combine: give at least one channel, e.g. combine(extrinsic=extrinsic())")
  chans = {name: c if isinstance(c, Channel) else channel(c) for name, c in channels.items()}
  return Channels(
      stack_modules({name: c.module for name, c in chans.items()}),
      tuple(chans),
      tuple(c.coef for c in chans.values()),
      tuple(c.gamma for c in chans.values()),
      tuple(c.episodic for c in chans.values()),
      tuple(c.schedule for c in chans.values()))


def add(*modules: RewardModule) -> RewardModule:
  """One reward module whose reward is the sum of ``modules``' rewards.

  Use it to put several streams in ONE channel (one value head, one γ), e.g.
  ``channel(add(extrinsic(), potential_shaping(phi, gamma=0.99)))``: shaping then
  adds no head and no GAE of its own. A discount required by a module inside
  (``RewardModule.gamma``) is required by the sum.
  """
  if not modules:
    raise ValueError("add: give at least one reward module")
  for m in modules:
    _check_module("add", m)
  gammas = {m.gamma for m in modules if m.gamma is not None}
  if len(gammas) > 1:
    raise ValueError(f"add: shaping modules built with different gammas {sorted(gammas)}")
  stacked = stack_modules({f"term{i}": m for i, m in enumerate(modules)})

  def reward_fn(state, batch):
    return jnp.sum(stacked.reward(state, batch), axis=-1)

  def reward_and_update_fn(state, batch, key):
    r, state, metrics = stacked.reward_and_update(state, batch, key)
    return jnp.sum(r, axis=-1), state, metrics

  return RewardModule(stacked.init, reward_fn, stacked.update, reward_and_update_fn,
                      gamma=gammas.pop() if gammas else None)


def as_channels(rewards: Channels | Channel | RewardModule | None) -> Channels:
  """Normalises an agent's ``rewards=`` argument to ``Channels``.

  ``None`` means the extrinsic reward alone; a bare module or channel becomes a
  single channel named ``reward``.
  """
  if rewards is None:
    return combine(extrinsic=channel(extrinsic()))
  if isinstance(rewards, Channels):
    return rewards
  if isinstance(rewards, (Channel, RewardModule)):
    return combine(reward=rewards)
  raise TypeError(
      f"rewards must be a RewardModule, a Channel or combine(...), got {type(rewards).__name__}")


def combined_reward(r: jax.Array, coefs: Sequence[float]) -> jax.Array:
  """``Σ_c coef_c · r[..., c]``: the scalar reward a single-critic agent learns from."""
  return jnp.tensordot(r, jnp.asarray(coefs, r.dtype), axes=1)


class ReturnNormState(NamedTuple):
  channels: Any                   # the wrapped channels' state
  returns: stats.ReturnStd        # G per env and channel [N, C], moments per channel [C]


def normalize_rewards(channels: Channels) -> Channels:
  """Divides each channel's reward by the running std of its discounted return.

  The reward normalisation of PPO implementations (baselines' ``VecNormalize``,
  PureJaxRL's ``NormalizeVecReward``): per environment and channel
  ``G_t = γ_c·G_{t−1}·(1 − done_{t−1}) + r_t`` (non-episodic channels never
  reset), and ``r_t / std(G)`` is returned, the batch's own returns included
  (``stats.ReturnStd``, as ``normalize_by_return_std``). The mean is not
  subtracted, so signs are kept. ``channels`` must be resolved (every γ set).
  """
  if any(g is None for g in channels.gammas):
    raise ValueError("normalize_rewards: resolve the channels' gammas first")
  gammas = jnp.asarray(channels.gammas, jnp.float32)
  episodic = jnp.asarray(channels.episodic)
  c = channels.num_channels

  def returns_update(returns, r, batch):
    done = jnp.logical_or(batch.terminated, batch.truncated)[..., None] & episodic
    return stats.return_std_update(returns, r, gammas, done)

  def init_fn(key, example: Transition):
    return ReturnNormState(channels.init(key, example),
                           stats.return_std_init(example.reward.shape[1:] + (c,), (c,)))

  def reward_fn(state, batch):
    r = channels.reward(state.channels, batch)
    return stats.scale_by_return_std(returns_update(state.returns, r, batch), r)

  def reward_and_update_fn(state, batch, key):
    r, inner, metrics = reward_and_update(channels, state.channels, batch, key)  # raw
    returns = returns_update(state.returns, r, batch)
    return stats.scale_by_return_std(returns, r), ReturnNormState(inner, returns), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return channels._replace(module=RewardModule(init_fn, reward_fn, update_fn,
                                               reward_and_update_fn))

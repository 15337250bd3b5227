"""Named reward channels: one coefficient, discount and episodic flag per stream.

    rewards = combine(
        extrinsic=channel(extrinsic(), coef=2.0, gamma=0.999),
        novelty=channel(rnd(), coef=1.0, gamma=0.99, episodic=False),
    )
    r = rewards.reward(state, batch)      # [..., C], channels in the given order

Agents keep one value head per channel, compute each channel's advantages with
its own γ (a non-episodic channel ignores ``terminated``, as RND's intrinsic
stream does) and combine advantages by coefficient (Burda et al. 2018).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rewardjax import stats
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.rewards.transforms import RewardTransform, transform
from rewardjax.types import RewardModule, Transition, check_reward_shape, reward_and_update


class Channel(NamedTuple):
  """A reward module with the learner-side settings of its stream."""
  module: RewardModule
  coef: float = 1.0
  gamma: float | None = None   # None: the agent's default γ
  episodic: bool = True


def _check_gamma(name: str, gamma) -> None:
  if gamma is not None and not (isinstance(gamma, (int, float)) and 0.0 < gamma <= 1.0):
    raise ValueError(f"channel {name!r}: gamma must be in (0, 1], got {gamma!r}")


def channel(module: RewardModule, coef: float = 1.0, gamma: float | None = None,
            episodic: bool = True,
            transforms: Sequence[RewardTransform] = ()) -> Channel:
  """Wraps ``module`` as a channel.

  Args:
    module: any reward module.
    coef: weight of this channel's advantages (or rewards, for single-critic
      agents). Must be finite.
    gamma: the channel's discount; ``None`` takes the agent's ``gamma``. A
      potential-shaping module fixes its own γ, which must match.
    episodic: if False, returns of this channel run across episode ends
      (``terminated`` is ignored), as for RND's intrinsic stream.
    transforms: reward transforms applied to the module's reward, in order.
  """
  if not isinstance(module, tuple) or not all(hasattr(module, f) for f in ("init", "reward", "update")):
    raise TypeError(f"channel: expected a RewardModule, got {type(module).__name__}")
  coef = float(coef)
  if not math.isfinite(coef):
    raise ValueError(f"channel: coef must be finite, got {coef}")
  _check_gamma("channel", gamma)
  required = getattr(module, "gamma", None)
  if required is not None:
    if gamma is None:
      gamma = required
    elif abs(gamma - required) > 1e-12:
      raise ValueError(
          f"channel: potential shaping was built with gamma={required} but the channel "
          f"discounts with gamma={gamma}; shaping preserves optimal policies only when "
          "they are equal (Ng et al. 1999)")
  module = transform(module, *transforms)
  return Channel(module, coef, None if gamma is None else float(gamma), bool(episodic))


def intrinsic_channel(module: RewardModule, coef: float = 1.0, gamma: float = 0.99,
                      normalize: bool = True,
                      transforms: Sequence[RewardTransform] = ()) -> Channel:
  """An exploration bonus channel with the RND paper's learner settings.

  Non-episodic (the bonus stream runs across episode ends), its own γ (0.99),
  coefficient 1 beside an extrinsic channel of coefficient 2 (Burda et al.
  2018), and — unless ``normalize=False`` — rewards divided by the running std of
  their discounted return. That normalisation makes the channel invariant to
  the bonus's scale (β), so one default works across environments whose
  extrinsic rewards differ (DeepSea's +1 at the goal, MountainCar's −1 per step).
  Turn it off for modules that normalise themselves (``rnd()``).
  """
  from rewardjax.rewards.transforms import normalize_by_return_std  # pylint: disable=g-import-not-at-top
  ts = tuple(transforms) + ((normalize_by_return_std(gamma),) if normalize else ())
  return channel(module, coef=coef, gamma=gamma, episodic=False, transforms=ts)


class Channels(NamedTuple):
  """Several channels combined; a reward module whose reward is ``[..., C]``."""
  init: Callable
  reward: Callable
  update: Callable
  names: tuple[str, ...]
  coefs: tuple[float, ...]
  gammas: tuple[float | None, ...]
  episodic: tuple[bool, ...]
  reward_and_update: Callable | None = None   # fused; see types.reward_and_update

  @property
  def num_channels(self) -> int:
    return len(self.names)

  def resolve(self, default_gamma: float) -> "Channels":
    """Fills unset discounts with ``default_gamma``."""
    _check_gamma("default", default_gamma)
    gammas = tuple(default_gamma if g is None else g for g in self.gammas)
    return self._replace(gammas=gammas)


def combine(**channels: Channel | RewardModule) -> Channels:
  """Combines named channels (bare modules get ``channel()``'s defaults)."""
  if not channels:
    raise ValueError("combine: give at least one channel, e.g. combine(extrinsic=extrinsic())")
  chans = {}
  for name, c in channels.items():
    if not isinstance(c, Channel):
      c = channel(c)
    chans[name] = c
  names = tuple(chans)
  mods = tuple(c.module for c in chans.values())

  def init_fn(key, example: Transition):
    keys = jax.random.split(key, len(mods))
    return tuple(m.init(k, example) for m, k in zip(mods, keys))

  def reward_fn(state, batch: Transition):
    rs = []
    for name, m, s in zip(names, mods, state):
      r = m.reward(s, batch)
      check_reward_shape(name, r, batch)
      rs.append(jnp.asarray(r, jnp.float32))
    return jnp.stack(rs, axis=-1)

  def update_fn(state, batch: Transition, key):
    keys = jax.random.split(key, len(mods))
    new_states, metrics = [], {}
    for name, m, s, k in zip(names, mods, state, keys):
      s, mt = m.update(s, batch, k)
      new_states.append(s)
      metrics.update({f"{name}/{n}": v for n, v in mt.items()})
    return tuple(new_states), metrics

  def reward_and_update_fn(state, batch: Transition, key):
    keys = jax.random.split(key, len(mods))
    rs, new_states, metrics = [], [], {}
    for name, m, s, k in zip(names, mods, state, keys):
      r, s, mt = reward_and_update(m, s, batch, k)
      check_reward_shape(name, r, batch)
      rs.append(jnp.asarray(r, jnp.float32))
      new_states.append(s)
      metrics.update({f"{name}/{n}": v for n, v in mt.items()})
    return jnp.stack(rs, axis=-1), tuple(new_states), metrics

  return Channels(
      init_fn, reward_fn, update_fn, names,
      tuple(c.coef for c in chans.values()),
      tuple(c.gamma for c in chans.values()),
      tuple(c.episodic for c in chans.values()),
      reward_and_update_fn)


def add(*modules: RewardModule) -> RewardModule:
  """One reward module whose reward is the sum of ``modules``' rewards.

  Use it to put several streams in ONE channel (one value head, one γ), e.g.
  ``channel(add(extrinsic(), potential_shaping(phi, gamma=0.99)))``: shaping then
  adds no head and no GAE of its own. Shaping modules inside fix the channel's γ.
  """
  if not modules:
    raise ValueError("add: give at least one reward module")
  combined = combine(**{f"term{i}": m for i, m in enumerate(modules)})
  gammas = {g for g in (getattr(m, "gamma", None) for m in modules) if g is not None}
  if len(gammas) > 1:
    raise ValueError(f"add: shaping modules built with different gammas {sorted(gammas)}")

  def reward_fn(state, batch):
    return jnp.sum(combined.reward(state, batch), axis=-1)

  def reward_and_update_fn(state, batch, key):
    r, state, metrics = combined.reward_and_update(state, batch, key)
    return jnp.sum(r, axis=-1), state, metrics

  module = RewardModule(combined.init, reward_fn, combined.update, reward_and_update_fn)
  if gammas:
    from rewardjax.rewards.shaping import ShapingModule  # pylint: disable=g-import-not-at-top
    return ShapingModule(module.init, module.reward, module.update, gammas.pop())
  return module


def as_channels(rewards: Channels | Channel | RewardModule | None) -> Channels:
  """Normalises an agent's ``rewards=`` argument to ``Channels``.

  ``None`` means the extrinsic reward alone; a bare module or channel becomes a
  single channel named ``reward``.
  """
  if rewards is None:
    return combine(extrinsic=channel(extrinsic()))
  if isinstance(rewards, Channels):
    return rewards
  if isinstance(rewards, (Channel, tuple)):
    return combine(reward=rewards)
  raise TypeError(
      f"rewards must be a RewardModule, a Channel or combine(...), got {type(rewards).__name__}")


def combined_reward(r: jax.Array, coefs: Sequence[float]) -> jax.Array:
  """``Σ_c coef_c · r[..., c]``: the scalar reward a single-critic agent learns from."""
  return jnp.tensordot(r, jnp.asarray(coefs, r.dtype), axes=1)


class ReturnNormState(NamedTuple):
  channels: Any                   # the wrapped channels' state
  ret: jax.Array                  # [N, C] running discounted return per env and channel
  moments: Any                    # stats.RunningMoments of shape [C]


def normalize_rewards(channels: Channels) -> Channels:
  """Divides each channel's reward by the running std of its discounted return.

  The reward normalisation of PPO implementations (baselines' ``VecNormalize``,
  PureJaxRL's ``NormalizeVecReward``): per environment and channel
  ``G_t = γ_c·G_{t−1}·(1 − done_{t−1}) + r_t`` (``stats.discounted_return_filter``;
  non-episodic channels never reset), and ``r_t / std(G)`` is returned, with the
  statistics of the batches seen before (as ``normalize_by_return_std``). The
  mean is not subtracted, so signs are kept. ``channels`` must be resolved
  (every γ set).
  """
  if any(g is None for g in channels.gammas):
    raise ValueError("normalize_rewards: resolve the channels' gammas first")
  gammas = jnp.asarray(channels.gammas, jnp.float32)
  episodic = jnp.asarray(channels.episodic)
  c = channels.num_channels

  def init_fn(key, example: Transition):
    inner = channels.init(key, example)
    ret = jnp.zeros(example.reward.shape[1:] + (c,), jnp.float32)
    return ReturnNormState(inner, ret, stats.moments_init((c,)))

  def reward_fn(state, batch):
    return channels.reward(state.channels, batch) / stats.moments_std(state.moments)

  def reward_and_update_fn(state, batch, key):
    r, inner, metrics = reward_and_update(channels, state.channels, batch, key)  # raw
    done = jnp.logical_or(batch.terminated, batch.truncated)[..., None] & episodic
    ret, rets = stats.discounted_return_filter(state.ret, r, gammas, done)
    moments = stats.moments_update(state.moments, rets, axes=tuple(range(rets.ndim - 1)))
    return (r / stats.moments_std(state.moments), ReturnNormState(inner, ret, moments),
            metrics)

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return channels._replace(init=init_fn, reward=reward_fn, update=update_fn,
                           reward_and_update=reward_and_update_fn)

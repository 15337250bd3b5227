"""Reward transforms that compose onto any reward module (and so any channel).

A transform is a triple of pure functions over its own state, applied after the
module's reward::

    module = transform(rnd(), clip(-1.0, 1.0), normalize_by_return_std(gamma=0.99))

``reward`` runs the module, then each transform in order; ``update`` updates the
module and each transform's statistics. A stateful transform's statistics
include the batch it transforms: each transform first updates its state with
its input reward, then applies itself with the updated state (the ordering of
``stats.ReturnStd``). ``reward`` computes the same without keeping the state.
A random transform (``dither``) keeps its key in its state and advances it in
``update``, so a run is deterministic given its seed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rewardjax import stats
from rewardjax.types import (Array, Metrics, PRNGKey, PyTree, RewardModule, Transition,
                             reward_and_update)


class RewardTransform(NamedTuple):
  """``init(example_reward, batch, key) -> state``; ``update(state, r, batch) ->
  (state, metrics)`` and then ``apply(state, r, batch) -> r`` with the updated
  state, where ``r`` is the transform's input reward for ``batch``."""
  init: Callable[[Array, Transition, PRNGKey], PyTree]
  apply: Callable[[PyTree, Array, Transition], Array]
  update: Callable[[PyTree, Array, Transition], tuple[PyTree, Metrics]]


class _NoState(NamedTuple):
  pass


def _stateless_transform(fn: Callable[[Array], Array]) -> RewardTransform:
  return RewardTransform(
      init=lambda r, batch, key: _NoState(),
      apply=lambda state, r, batch: fn(r),
      update=lambda state, r, batch: (state, {}))


def scale(factor: float) -> RewardTransform:
  """``r ↦ factor · r``."""
  factor = float(factor)
  return _stateless_transform(lambda r: r * factor)


def clip(low: float, high: float) -> RewardTransform:
  """``r ↦ clip(r, low, high)``."""
  if not low <= high:
    raise ValueError(f"clip: low ({low}) must not exceed high ({high})")
  return _stateless_transform(lambda r: jnp.clip(r, low, high))


def signed_hyperbolic(eps: float = 1e-3) -> RewardTransform:
  """Bounded-growth transform ``h(r) = sign(r)(√(|r|+1) − 1) + ε·r`` (Pohlen et al. 2018)."""
  return _stateless_transform(
      lambda r: jnp.sign(r) * (jnp.sqrt(jnp.abs(r) + 1.0) - 1.0) + eps * r)


def symlog() -> RewardTransform:
  """``r ↦ sign(r)·log(1 + |r|)`` (Hafner et al. 2023)."""
  return _stateless_transform(lambda r: jnp.sign(r) * jnp.log1p(jnp.abs(r)))


def normalize_by_return_std(gamma: float = 0.99, episodic: bool = False,
                            eps: float = 1e-8) -> RewardTransform:
  """Divides rewards by the running std of their discounted return (Burda et al. 2018).

  ``G_t = γ·G_{t-1} + r_t`` runs per environment over time-major batches
  ``[T, N]`` (the state keeps ``G`` across batches), and ``r_t / std(G)`` is
  returned, the batch's own returns included (``stats.ReturnStd``); the mean is
  not subtracted, so the sign of rewards is kept. With ``episodic=True`` the
  running return restarts after terminated/truncated steps.
  """
  if not 0.0 < gamma <= 1.0:
    raise ValueError(f"normalize_by_return_std: gamma must be in (0, 1], got {gamma}")

  def init_fn(r, batch, key):
    del batch, key
    return stats.return_std_init(jnp.shape(r)[1:])

  def apply_fn(state, r, batch):
    del batch
    return stats.scale_by_return_std(state, r, eps)

  def update_fn(state, r, batch):
    reset = jnp.logical_or(batch.terminated, batch.truncated) if episodic else None
    state = stats.return_std_update(state, r, gamma, reset)
    return state, {"return_std": stats.moments_std(state.moments, eps)}

  return RewardTransform(init_fn, apply_fn, update_fn)


def standardize(eps: float = 1e-8) -> RewardTransform:
  """Centres and scales rewards by their own running mean and std."""

  def init_fn(r, batch, key):
    return stats.moments_init()

  def apply_fn(state, r, batch):
    return stats.normalize(state, r, eps=eps)

  def update_fn(state, r, batch):
    m = stats.moments_update(state, r, axes=tuple(range(jnp.ndim(r))))
    return m, {"reward_mean": m.mean, "reward_std": stats.moments_std(m, eps)}

  return RewardTransform(init_fn, apply_fn, update_fn)


class DitherState(NamedTuple):
  """The key of ``dither``'s noise."""
  key: PRNGKey     # advanced by every update; the noise of a batch comes from it


def dither(scale: float, kind: str = "gaussian") -> RewardTransform:
  """Reward dithering (ReDit; Wei et al. 2025): ``r ↦ r + ε``, ε zero-mean noise.

  ``kind="gaussian"``: ε ~ N(0, scale²); ``"uniform"``: ε ~ U(−scale, scale).
  Dithering a discrete or sparse reward smooths the gradient signal it gives
  while leaving its expectation unchanged. The noise of each batch is drawn
  from a key kept in the state (from the channel's key at ``init``) and advanced
  by every ``update``, so runs are deterministic per seed and differ across seeds.
  """
  scale = float(scale)
  if not scale >= 0.0:
    raise ValueError(f"dither: scale must be >= 0, got {scale}")
  if kind not in ("gaussian", "uniform"):
    raise ValueError(f"dither: kind must be 'gaussian' or 'uniform', got {kind!r}")

  def init_fn(r, batch, key):
    del r, batch
    return DitherState(key)

  def apply_fn(state, r, batch):
    del batch
    if kind == "gaussian":
      noise = jax.random.normal(state.key, jnp.shape(r)) * scale
    else:
      noise = jax.random.uniform(state.key, jnp.shape(r), minval=-scale, maxval=scale)
    return r + noise.astype(jnp.result_type(r, jnp.float32))

  def update_fn(state, r, batch):
    del r, batch
    return DitherState(jax.random.split(state.key)[0]), {}

  return RewardTransform(init_fn, apply_fn, update_fn)


def par(reference: float | None = None, temperature: float = 1.0) -> RewardTransform:
  """Centred, bounded reward ``r ↦ σ((r − ref) / temperature)`` in ``(0, 1)``.

  In the spirit of PAR (Fu et al. 2025, "Reward Shaping to Mitigate Reward
  Hacking in RLHF"): a reward far above its reference can no longer dominate,
  and the slope is largest around the reference. ``reference=None`` centres on
  the running mean of the rewards seen so far, this batch's included
  (``stats.moments_update``); a number fixes it.
  """
  temperature = float(temperature)
  if not temperature > 0.0:
    raise ValueError(f"par: temperature must be > 0, got {temperature}")

  def init_fn(r, batch, key):
    del r, batch, key
    return stats.moments_init()

  def apply_fn(state, r, batch):
    del batch
    ref = state.mean if reference is None else reference
    return jax.nn.sigmoid((r - ref) / temperature)

  def update_fn(state, r, batch):
    del batch
    if reference is not None:
      return state, {}
    m = stats.moments_update(state, r, axes=tuple(range(jnp.ndim(r))))
    return m, {"reward_reference": m.mean}

  return RewardTransform(init_fn, apply_fn, update_fn)


class TransformedState(NamedTuple):
  module: PyTree
  transforms: tuple


def transform(module: RewardModule, *transforms: RewardTransform) -> RewardModule:
  """Applies ``transforms`` in order to ``module``'s reward; returns a reward module."""
  if not transforms:
    return module
  for t in transforms:
    if not isinstance(t, RewardTransform):
      raise TypeError(f"transform: expected RewardTransform, got {type(t).__name__}")

  def init_fn(key, example):
    ms = module.init(key, example)
    r = module.reward(ms, example)
    states = []
    for i, t in enumerate(transforms):
      # fold_in leaves ``key`` itself to the module, whose init stays as without transforms.
      ts = t.init(r, example, jax.random.fold_in(key, i + 1))
      states.append(ts)
      r = t.apply(ts, r, example)
    return TransformedState(ms, tuple(states))

  def apply_transforms(transform_states, r, batch):
    """Each transform updates its state with its input, then applies itself."""
    states, metrics = [], {}
    for i, (t, ts) in enumerate(zip(transforms, transform_states)):
      ts, m = t.update(ts, r, batch)
      r = t.apply(ts, r, batch)
      states.append(ts)
      metrics.update({f"transform{i}/{k}": v for k, v in m.items()})
    return r, tuple(states), metrics

  def reward_fn(state, batch):
    return apply_transforms(state.transforms, module.reward(state.module, batch), batch)[0]

  def reward_and_update_fn(state, batch, key):
    # The module's own fused path where it has one (count tables).
    r, ms, metrics = reward_and_update(module, state.module, batch, key)
    r, states, transform_metrics = apply_transforms(state.transforms, r, batch)
    return r, TransformedState(ms, states), dict(metrics, **transform_metrics)

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  # A discount the module requires (potential shaping) is required of the result.
  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn, gamma=module.gamma)

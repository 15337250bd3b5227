"""Feature maps ``φ(obs)`` for embedding-based bonuses, and the training they share.

Every embedding-based module (``e3b``, ``ride``, ``re3``, ``ngu``, ``icm``,
``disagreement``) takes ``embed=``:

* ``"inverse_dynamics"``: a learned encoder ``φ`` trained, together with an
  inverse head ``g``, to predict the action from ``(φ(s), φ(s'))``
  (Pathak et al. 2017): cross-entropy for discrete actions (which needs
  ``num_actions``), squared error for continuous ones;
* ``"random"``: a fixed, randomly initialised encoder (Seo et al. 2021);
* ``"identity"``: the flattened observation;
* any pure function ``obs -> features`` of ONE observation (a progress
  function, say): the bonus is then an exact formula of the observations.

An ``Embedding`` is a pair of pure functions over a parameter pytree plus its
training loss; ``train_steps`` takes Adam steps on random subsets of a
time-ordered rollout (RND's sampling: consecutive slices of permutations),
with gradients averaged over the devices of a sharded run.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewardjax import sharding, stats
from rewardjax.nets import MLP
from rewardjax.shuffle import shuffle_order
from rewardjax.types import Array, PRNGKey, PyTree, Transition, batch_shape

EMBED_NAMES = ("inverse_dynamics", "random", "identity")


class Embedding(NamedTuple):
  """A feature map of observations.

  Attributes:
    init: ``(key, example: Flat) -> params``.
    apply: ``(params, obs [M, *obs_shape]) -> float32 [M, K]``.
    loss: ``(params, data: Flat) -> float32 [M]`` per-sample training loss
      (zeros for a fixed map).
    learned: whether ``loss`` depends on ``params``.
  """
  init: Callable[[PRNGKey, "Flat"], PyTree]
  apply: Callable[[PyTree, Array], Array]
  loss: Callable[[PyTree, "Flat"], Array]
  learned: bool


class Flat(NamedTuple):
  """A batch flattened to ``M`` samples, non-finite samples zeroed and flagged.

  Attributes:
    obs, action, next_obs: ``[M, ...]`` float32 (``action`` as given).
    valid: ``bool[M]``: ``obs`` and ``next_obs`` have only finite entries.
  """
  obs: Array
  action: Array
  next_obs: Array
  valid: Array


def flatten(batch: Transition) -> Flat:
  """The batch as ``M = prod(batch_shape)`` samples; observations with a NaN or
  ±inf entry are replaced by zeros and marked invalid."""
  ndim = jnp.ndim(batch.reward)
  if ndim < 1:
    raise ValueError("batches need a leading time (or sample) axis, e.g. [T, N] or [B]")

  def rows(x):
    x = jnp.asarray(x)
    return jnp.reshape(x, (-1,) + x.shape[ndim:])

  obs = rows(batch.obs).astype(jnp.float32)
  next_obs = rows(batch.next_obs).astype(jnp.float32)
  valid = _finite_rows(obs) & _finite_rows(next_obs)
  mask = lambda x: jnp.where(jnp.reshape(valid, (-1,) + (1,) * (x.ndim - 1)), x, 0.0)
  return Flat(mask(obs), rows(batch.action), mask(next_obs), valid)


def _vectors(obs: Array) -> Array:
  """``[M, D]``: each observation of ``obs [M, ...]`` as one vector (grids, images)."""
  return jnp.reshape(obs, (obs.shape[0], -1))


def _finite_rows(x: Array) -> Array:
  return jnp.reshape(stats.finite_samples(x, (0,)), (-1,))


def action_features(action: Array, num_actions: int | None) -> Array:
  """``[M, A]`` float32: one-hot discrete actions, flattened continuous ones."""
  if jnp.issubdtype(action.dtype, jnp.integer):
    if num_actions is None:
      raise ValueError("discrete actions need num_actions (the size of the action space)")
    return jax.nn.one_hot(jnp.reshape(action, (-1,)), num_actions, dtype=jnp.float32)
  return jnp.reshape(action, (action.shape[0], -1)).astype(jnp.float32)


class _InverseHead(nn.Module):
  """``g(φ(s), φ(s'))``: action logits (discrete) or the action (continuous)."""
  hidden: Sequence[int]
  out: int

  @nn.compact
  def __call__(self, phi, next_phi):
    return MLP(tuple(self.hidden), self.out, activation="relu")(
        jnp.concatenate([phi, next_phi], axis=-1))


def inverse_dynamics(num_actions: int | None = None, hidden: Sequence[int] = (64, 64),
                     feature_dim: int = 32) -> Embedding:
  """A learned encoder ``φ`` trained by inverse dynamics (Pathak et al. 2017).

  ``loss`` is ``−log p_g(a | φ(s), φ(s'))`` for integer actions and
  ``‖g(φ(s), φ(s')) − a‖²`` (mean over action dimensions) for float ones.
  """
  encoder = MLP(tuple(hidden), int(feature_dim), activation="relu")

  def init(key, example: Flat):
    k_enc, k_inv = jax.random.split(key)
    enc = encoder.init(k_enc, _vectors(example.obs[:1]))
    out = (num_actions if jnp.issubdtype(example.action.dtype, jnp.integer)
           else action_features(example.action, None).shape[-1])
    if out is None:
      raise ValueError("embed='inverse_dynamics' with discrete actions needs num_actions "
                       "(the size of the action space)")
    head = _InverseHead(tuple(hidden), int(out))
    phi = jnp.zeros((1, int(feature_dim)), jnp.float32)
    return {"encoder": enc, "inverse": head.init(k_inv, phi, phi)}

  def apply(params, obs):
    return encoder.apply(params["encoder"], _vectors(obs))

  def loss(params, data: Flat):
    discrete = jnp.issubdtype(data.action.dtype, jnp.integer)
    out = num_actions if discrete else action_features(data.action, None).shape[-1]
    head = _InverseHead(tuple(hidden), int(out))
    pred = head.apply(params["inverse"], apply(params, data.obs), apply(params, data.next_obs))
    if discrete:
      labels = jnp.reshape(data.action, (-1,)).astype(jnp.int32)
      return optax.softmax_cross_entropy_with_integer_labels(pred, labels)
    return jnp.mean(jnp.square(pred - action_features(data.action, None)), axis=-1)

  return Embedding(init, apply, loss, learned=True)


def random_encoder(hidden: Sequence[int] = (64, 64), feature_dim: int = 32) -> Embedding:
  """A fixed, randomly initialised MLP encoder (never trained)."""
  encoder = MLP(tuple(hidden), int(feature_dim), activation="relu")
  return Embedding(lambda key, ex: encoder.init(key, _vectors(ex.obs[:1])),
                   lambda params, obs: encoder.apply(params, _vectors(obs)), _no_loss,
                   learned=False)


def fixed(fn: Callable[[Array], Array]) -> Embedding:
  """``φ = fn`` applied to each observation, flattened to a float32 vector."""

  def apply(params, obs):
    del params
    out = jax.vmap(fn)(obs)
    return jnp.reshape(out, (obs.shape[0], -1)).astype(jnp.float32)

  return Embedding(lambda key, ex: (), apply, _no_loss, learned=False)


def _no_loss(params, data: Flat) -> Array:
  del params
  return jnp.zeros(data.valid.shape, jnp.float32)


def resolve_embed(embed, where: str, num_actions: int | None = None,
                  hidden: Sequence[int] = (64, 64), feature_dim: int = 32) -> Embedding:
  """The ``Embedding`` named by ``embed`` (see the module docstring)."""
  if callable(embed):
    return fixed(embed)
  if embed == "inverse_dynamics":
    return inverse_dynamics(num_actions, hidden, feature_dim)
  if embed == "random":
    return random_encoder(hidden, feature_dim)
  if embed == "identity":
    return fixed(lambda o: o)
  raise ValueError(f"{where}: embed must be one of {EMBED_NAMES} or a function obs -> "
                   f"features, got {embed!r}")


def check_training(where: str, learning_rate: float, num_grad_steps: int,
                   update_proportion: float) -> None:
  """Argument checks shared by modules that train networks."""
  if not learning_rate > 0.0:
    raise ValueError(f"{where}: learning_rate must be positive, got {learning_rate}")
  if int(num_grad_steps) != num_grad_steps or num_grad_steps < 1:
    raise ValueError(f"{where}: num_grad_steps must be a positive integer, got {num_grad_steps}")
  if not 0.0 < update_proportion <= 1.0:
    raise ValueError(f"{where}: update_proportion must be in (0, 1], got {update_proportion}")


def train_steps(opt: optax.GradientTransformation, loss_fn: Callable[[PyTree, Flat], Array],
                params: PyTree, opt_state: PyTree, data: Flat, key: PRNGKey,
                num_grad_steps: int, update_proportion: float):
  """``num_grad_steps`` optimiser steps on ``mean`` of ``loss_fn``'s per-sample
  losses over random subsets of ``round(update_proportion · M)`` valid samples.

  Returns ``(params, opt_state, mean loss over the steps)``.
  """
  m = data.valid.shape[0]
  subset = max(int(round(update_proportion * m)), 1)

  def batch_loss(p, sub: Flat):
    per_sample = jnp.where(sub.valid, loss_fn(p, sub), 0.0)
    return jnp.sum(per_sample) / jnp.maximum(jnp.sum(sub.valid), 1)

  def step(carry, idx):
    p, s = carry
    sub = jax.tree.map(lambda x: x[idx], data)
    loss, grads = jax.value_and_grad(batch_loss)(p, sub)
    grads = sharding.pmean(grads)      # sharded: every device's subset counts
    updates, s = opt.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), loss

  passes = -(-num_grad_steps * subset // m)
  order = shuffle_order(key, m, passes).reshape(-1)
  idx = order[:num_grad_steps * subset].reshape(num_grad_steps, subset)
  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), idx)
  return params, opt_state, jnp.mean(losses)


def train_embedding(emb: Embedding, opt: optax.GradientTransformation, params: PyTree,
                    opt_state: PyTree, data: Flat, key: PRNGKey, num_grad_steps: int,
                    update_proportion: float):
  """``(params, opt_state, loss)``: ``train_steps`` on ``emb.loss`` if the map is
  learned (``loss``: the mean over its steps), else unchanged (0)."""
  if not emb.learned:
    return params, opt_state, jnp.zeros((), jnp.float32)
  return train_steps(opt, emb.loss, params, opt_state, data, key, int(num_grad_steps),
                     update_proportion)


def time_major(x: Array, batch: Transition) -> Array:
  """``[M, ...]`` per-sample values as ``[T, E, ...]`` (``E = 1`` for ``[T]``
  batches, the product of the trailing batch axes otherwise)."""
  return jnp.reshape(x, (batch_shape(batch)[0], -1) + x.shape[1:])


def num_envs(batch: Transition) -> int:
  """``E``: environments of a time-major batch (1 for ``[T]``)."""
  shape = batch_shape(batch)
  return int(np.prod(shape[1:], dtype=np.int64))


def check_envs(where: str, expected: int, batch: Transition) -> None:
  """Raises if the batch does not hold the ``expected`` environments of ``init``."""
  if num_envs(batch) != expected:
    raise ValueError(
        f"{where}: the state holds {expected} environments but the batch "
        f"{batch_shape(batch)} has {num_envs(batch)} (batches must be time-major "
        "[T, N, ...] with the N of the init example)")


def episode_ends(batch: Transition) -> Array:
  """``bool[T, E]``: the transition ended its episode (``terminated | truncated``)."""
  done = jnp.logical_or(batch.terminated, batch.truncated)
  return jnp.reshape(done, (jnp.shape(done)[0], -1))


def finite_features(phi: Array, valid: Array) -> tuple[Array, Array]:
  """``(φ with non-finite rows zeroed, valid & finite)`` for ``φ [M, K]``."""
  ok = valid & jnp.all(jnp.isfinite(phi), axis=-1)
  return jnp.where(ok[:, None], phi, 0.0), ok


def valid_mean(x: Array, ok: Array) -> Array:
  """Mean of ``x [M]`` over samples where ``ok``, over every device when sharded."""
  total = sharding.psum(jnp.sum(jnp.where(ok, x, 0.0)))
  return total / jnp.maximum(sharding.psum(jnp.sum(ok)), 1)


def as_reward(r: Array, batch: Transition) -> Array:
  """``r`` shaped and typed like ``batch.reward`` (float32 for non-float rewards)."""
  dtype = (batch.reward.dtype if jnp.issubdtype(batch.reward.dtype, jnp.floating)
           else jnp.float32)
  return jnp.reshape(r, jnp.shape(batch.reward)).astype(dtype)


__all__ = [
    "EMBED_NAMES", "Embedding", "Flat", "flatten", "action_features", "inverse_dynamics",
    "random_encoder", "fixed", "resolve_embed", "check_training", "train_steps",
    "train_embedding", "time_major", "num_envs", "check_envs", "episode_ends",
    "finite_features", "valid_mean", "as_reward",
]

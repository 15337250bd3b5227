"""Action distributions of policy-gradient agents, as pure functions.

A categorical policy over ``A`` actions given its logits, and a diagonal
Gaussian over a bounded box (``GaussianPolicy``), clipped or tanh-squashed into
the box when the environment receives the action.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
  """log π(a|s) of a categorical policy given its logits ``[..., A]``."""
  # A one-hot product rather than a gather: its gradient is elementwise, where a
  # gather's is a scatter (several times slower inside CPU minibatch loops).
  log_p = jax.nn.log_softmax(logits)
  return jnp.sum(jax.nn.one_hot(action, logits.shape[-1], dtype=log_p.dtype) * log_p, axis=-1)


def categorical_entropy(logits: jax.Array) -> jax.Array:
  """Entropy of a categorical policy given its logits ``[..., A]``."""
  log_p = jax.nn.log_softmax(logits)
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


class GaussianPolicy(NamedTuple):
  """A diagonal-Gaussian policy head over a bounded box, as pure functions.

  The policy's raw output is ``(mean, log_std)`` and its sample ``u`` is what
  agents store as the action: log-probabilities and the PPO ratio are always of
  ``u``. ``to_env(u)`` is what the environment receives: ``u`` clipped to the
  box (PureJaxRL / CleanRL), or with ``squash``, ``low + (tanh(u) + 1)·(high −
  low)/2`` (Haarnoja et al. 2018; brax's PPO). For squashed actions ``log_prob``
  includes the change of variables, ``−Σ log|da/du|``; it does not depend on the
  policy's parameters, so it cancels in the PPO ratio. ``entropy`` is the
  Gaussian's (the squashed density has no closed form; brax does the same up to
  a sampled correction).
  """
  sample: Callable        # (key, (mean, log_std)) -> (u, log_prob)
  log_prob: Callable      # ((mean, log_std), u) -> log_prob
  entropy: Callable       # (mean, log_std) -> entropy
  to_env: Callable        # u -> action passed to env.step


def gaussian_policy(low, high, squash: bool = False) -> GaussianPolicy:
  """A ``GaussianPolicy`` for actions in the box ``[low, high]`` (arrays ``[A]``)."""
  import distrax  # pylint: disable=g-import-not-at-top  (only continuous agents need it)
  low = jnp.asarray(low, jnp.float32)
  high = jnp.asarray(high, jnp.float32)
  if squash and not (np.all(np.isfinite(np.asarray(low))) and np.all(np.isfinite(np.asarray(high)))):
    raise ValueError("tanh squashing needs a bounded action space; this one has infinite bounds")
  half = (high - low) / 2.0
  tanh = distrax.Block(distrax.Tanh(), 1)
  log_half = jnp.sum(jnp.log(half)) if squash else 0.0

  def dist(out):
    mean, log_std = out
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))

  def correction(u):
    return tanh.forward_log_det_jacobian(u) + log_half

  def sample(key, out):
    u, log_prob = dist(out).sample_and_log_prob(seed=key)
    return u, (log_prob - correction(u) if squash else log_prob)

  def log_prob(out, u):
    lp = dist(out).log_prob(u)
    return lp - correction(u) if squash else lp

  def entropy(out):
    return dist(out).entropy()

  def to_env(u):
    if squash:
      return low + (jnp.tanh(u) + 1.0) * half
    return jnp.clip(u, low, high)

  return GaussianPolicy(sample, log_prob, entropy, to_env)


def box_bounds(space) -> tuple[np.ndarray, np.ndarray]:
  """``(low, high)`` of a 1-D ``Box`` action space as float32 arrays ``[A]``."""
  shape = tuple(space.shape)
  if len(shape) != 1:
    raise ValueError(f"continuous actions must be a 1-D Box; got shape {shape}")
  low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
  high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
  if not np.all(low < high):
    raise ValueError(f"action space bounds must satisfy low < high, got {low} and {high}")
  return low, high

"""Attention-based reward redistribution (Chan et al. 2024, "Dense Reward for Free in RLHF").

A sequence of ``T`` steps that receives one scalar return ``R`` at its end (a
reward model's score of a completion, an episode's return paid at the last
step) is turned into a dense per-step reward

    r_t = β · R · w_t + (1 − β) · R · 1[t = t_last],     t = 0, …, T−1,

where

    w_t = a_t · m_t / Σ_s a_s · m_s

are attention weights ``a`` (e.g. the final token's attention row of the reward
model, averaged over heads) renormalised over the valid steps ``m``, and
``t_last`` is the last valid step. Because ``Σ_t w_t = 1``,

    Σ_t r_t = β · R + (1 − β) · R = R:

redistribution conserves the return, so (as Chan et al. show, via potential-based
shaping arguments) the set of optimal policies is unchanged while the credit for
``R`` is spread over the steps the reward model attended to. ``β = 0`` recovers
the sparse end-of-sequence reward; ``β = 1`` is pure attention-based credit
(ABC); Chan et al. use intermediate β.

Conventions:

* ``mask`` marks valid steps (``True`` or any nonzero number); the last valid
  step is the last ``True`` in the mask wherever it lies, so left- and
  right-padded sequences give the same rewards at their valid steps. Padded
  positions get exactly 0.
* Negative attention is clipped to 0 (softmax attention is nonnegative; tiny
  negatives only come from numerical noise or from signed attribution scores,
  for which "no credit" is the sensible reading). A check that raises would be
  impossible under ``jit``.
* If the (clipped) attention is zero on every valid step, the weights fall back
  to uniform over the valid steps, so ``Σ_t r_t = R`` still holds.
* A sequence with no valid step gets all-zero rewards (``R`` has nowhere to go).

Use in an RLHF pipeline: token-level rewards for a batch of ``B`` completions,
left-padded to length ``T``, scored by a reward model whose last layer's
attention from the final token (averaged over heads) is ``attn[B, T]``:

    import rewardjax as rjx

    # attention_mask[B, T]: 1 for real tokens, 0 for (left) padding.
    # scores[B]: the reward model's scalar reward per completion.
    # attn[B, T]: last-layer attention of the final token, mean over heads.
    # (To credit only response tokens, pass mask = attention_mask & response_mask.)
    token_rewards = rjx.rewards.redistribute(attn, scores, attention_mask, beta=0.5)
    # token_rewards[B, T]; padded tokens get exactly 0, and
    # token_rewards.sum(-1) == scores (up to float rounding).

The token rewards then replace the sparse end-of-sequence reward in the PPO
advantage computation (per-token KL penalties are added as usual).
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp

from rewardjax.types import Array


def _check_beta(beta) -> None:
  """Range-checks ``beta`` when it is a concrete Python number."""
  if isinstance(beta, bool):
    raise ValueError(f"redistribute: beta must be a number in [0, 1], got {beta!r}")
  if isinstance(beta, numbers.Real):
    if not 0.0 <= float(beta) <= 1.0:
      raise ValueError(f"redistribute: beta must be in [0, 1], got {beta!r}")


def last_valid_step(mask: Array) -> Array:
  """One-hot ``[..., T]`` of the last valid step of each row of ``mask``.

  Rows without a valid step are all ``False``.
  """
  mask = jnp.asarray(mask) != 0
  t = mask.shape[-1]
  idx = (t - 1) - jnp.argmax(mask[..., ::-1], axis=-1)
  onehot = jnp.arange(t) == idx[..., None]
  return jnp.logical_and(onehot, jnp.any(mask, axis=-1, keepdims=True))


def redistribute(attention: Array, reward: Array, mask: Array, beta=1.0) -> Array:
  """Redistributes a sequence-level reward over its steps by attention.

  ``r_t = β·R·w_t + (1 − β)·R·1[t = t_last]``, with
  ``w_t = max(a_t, 0)·m_t / Σ_s max(a_s, 0)·m_s`` (uniform over valid steps if
  that sum is 0) and ``t_last`` the last valid step. ``Σ_t r_t = R`` whenever a
  row has at least one valid step. See the module docstring and Chan et al.
  2024, "Dense Reward for Free in Reinforcement Learning from Human Feedback".

  Args:
    attention: ``[..., T]`` nonnegative credit scores per step (negative values
      are clipped to 0).
    reward: ``[...]`` the return ``R`` of each sequence.
    mask: ``[..., T]`` valid steps (bool, or numbers where nonzero is valid);
      may be left- or right-padded, or have holes.
    beta: mixing coefficient in ``[0, 1]``; a scalar, or an array broadcastable
      to ``reward``'s shape (checked only when it is a Python number).

  Returns:
    ``[..., T]`` per-step rewards, exactly 0 at invalid steps, in the floating
    dtype of ``attention`` and ``reward`` (float32 for integer inputs).

  Raises:
    ValueError: on mismatched shapes, a missing time axis, or a Python-number
      ``beta`` outside ``[0, 1]``.
  """
  attention = jnp.asarray(attention)
  reward = jnp.asarray(reward)
  mask = jnp.asarray(mask)
  if attention.ndim < 1:
    raise ValueError(
        f"redistribute: attention must have a time axis, shape [..., T]; got shape "
        f"{attention.shape}")
  if mask.shape != attention.shape:
    raise ValueError(
        f"redistribute: mask shape {mask.shape} must equal attention shape "
        f"{attention.shape} ([..., T])")
  if reward.shape != attention.shape[:-1]:
    raise ValueError(
        f"redistribute: reward shape {reward.shape} must equal attention's batch "
        f"shape {attention.shape[:-1]} (attention is [..., T] = {attention.shape})")
  _check_beta(beta)
  beta = jnp.asarray(beta)
  try:
    jnp.broadcast_shapes(beta.shape, reward.shape)
  except ValueError as e:
    raise ValueError(
        f"redistribute: beta shape {beta.shape} does not broadcast to reward shape "
        f"{reward.shape}") from e

  dtype = jnp.result_type(attention.dtype, reward.dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.float32
  valid = mask != 0
  a = jnp.where(valid, jnp.maximum(attention.astype(dtype), 0), 0)
  total = jnp.sum(a, axis=-1, keepdims=True)
  has_mass = total > 0
  # Double `where` keeps gradients finite when a row has no attention mass.
  w_att = a / jnp.where(has_mass, total, 1)
  n_valid = jnp.sum(valid, axis=-1, keepdims=True).astype(dtype)
  w_uniform = valid.astype(dtype) / jnp.maximum(n_valid, 1)
  w = jnp.where(has_mass, w_att, w_uniform)

  last = last_valid_step(valid).astype(dtype)
  r = reward.astype(dtype)[..., None]
  b = beta.astype(dtype)[..., None]
  out = b * r * w + (1 - b) * r * last
  return jnp.where(valid, out, jnp.zeros((), dtype))


def uniform_redistribution(reward: Array, mask: Array) -> Array:
  """``R / T_valid`` at every valid step (0 elsewhere): the uniform baseline.

  ``redistribute`` with constant attention and ``β = 1``.

  Args:
    reward: ``[...]`` the return of each sequence.
    mask: ``[..., T]`` valid steps.

  Returns:
    ``[..., T]`` per-step rewards summing to ``R`` over the valid steps.
  """
  mask = jnp.asarray(mask)
  if mask.ndim < 1:
    raise ValueError(
        f"uniform_redistribution: mask must have a time axis, shape [..., T]; got "
        f"shape {mask.shape}")
  reward = jnp.asarray(reward)
  dtype = reward.dtype if jnp.issubdtype(reward.dtype, jnp.floating) else jnp.float32
  return redistribute(jnp.ones(mask.shape, dtype), reward, mask, beta=1.0)


__all__ = ["redistribute", "uniform_redistribution", "last_valid_step"]

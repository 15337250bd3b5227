"""A small causal-attention return model for attention-based credit assignment.

The model reads an episode's sequence of ``(obs_t, a_t)`` pairs and predicts the
episode's return from its LAST position, through one layer of multi-head
attention (the "last token" of Chan et al. 2024's reward model; the return
decomposition model of ARES and of RUDDER, Arjona-Medina et al.
2019, plays the same role for control):

    e_t   = tanh(W_in [obs_t, onehot(a_t)]) + P[step_t]          (step_t: index in the episode)
    α^h_t = softmax_t( (W^h_q e_T)·(W^h_k e_t) / √d  +  log mask_t )
    h     = e_T + W_o concat_h( Σ_t α^h_t W^h_v e_t )
    R̂     = w_out · (h + MLP(h))

and exposes ``ᾱ_t = mean_h α^h_t``: the last position's attention row averaged
over heads, which ``rewardjax.rewards.redistribute`` turns into per-step credit.

One layer keeps the attention row interpretable (it is the only route from
step ``t`` to the prediction) and cheap: training reads only the last query,
``O(B·L·d)`` per batch. ``apply(..., method=ReturnModel.all_queries)`` runs
every position as a query under an arbitrary ``[S, S]`` mask (e.g. block-causal
over several episodes packed into one sequence), ``O(S²·d)``.

Observations are flattened; discrete actions (integer dtype) are one-hot
encoded with ``num_actions`` classes, continuous actions are used as they are.
Positions are episode-step indices ``step_t`` (clipped to ``max_len − 1``),
so a window's padding side does not matter.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from rewardjax.types import Array

_NEG = -1e9


def action_features(action: Array, num_actions: int | None) -> Array:
  """One-hot ``[..., A]`` for integer actions, else the float action as ``[..., k]``."""
  action = jnp.asarray(action)
  if jnp.issubdtype(action.dtype, jnp.integer) or action.dtype == jnp.bool_:
    if num_actions is None:
      raise ValueError("action_features: integer actions need num_actions")
    return jax.nn.one_hot(action, num_actions, dtype=jnp.float32)
  return action.astype(jnp.float32)


class ReturnModel(nn.Module):
  """One-layer causal-attention return model (see the module docstring).

  Attributes:
    max_len: number of learned step embeddings (longer episodes reuse the last).
    num_actions: classes for one-hot integer actions (``None`` for continuous
      actions, passed as ``[..., S, k]`` floats).
    width: embedding width ``d``.
    num_heads: attention heads (``width`` must be divisible by it).
  """
  max_len: int
  num_actions: int | None = None
  width: int = 32
  num_heads: int = 1

  def setup(self):
    if self.width % self.num_heads:
      raise ValueError(f"ReturnModel: width ({self.width}) must be divisible by "
                       f"num_heads ({self.num_heads})")
    self.embed_in = nn.Dense(self.width)
    self.embed_pos = nn.Embed(self.max_len, self.width,
                              embedding_init=nn.initializers.normal(0.1))
    self.query = nn.DenseGeneral((self.num_heads, self.width // self.num_heads), use_bias=False)
    self.key = nn.DenseGeneral((self.num_heads, self.width // self.num_heads), use_bias=False)
    self.value = nn.DenseGeneral((self.num_heads, self.width // self.num_heads), use_bias=False)
    self.out = nn.DenseGeneral(self.width, axis=(-2, -1))
    self.mlp_hidden = nn.Dense(self.width)
    self.mlp_out = nn.Dense(self.width)
    self.head = nn.Dense(1)

  def embed(self, obs, action, step):
    """``[..., S, d]`` step embeddings."""
    obs = jnp.reshape(obs, obs.shape[:step.ndim] + (-1,)).astype(jnp.float32)
    act = action_features(action, self.num_actions)
    if act.ndim == step.ndim:     # continuous scalar action
      act = act[..., None]
    act = jnp.reshape(act, act.shape[:step.ndim] + (-1,))
    x = jnp.tanh(self.embed_in(jnp.concatenate([obs, act], axis=-1)))
    return x + self.embed_pos(jnp.clip(step, 0, self.max_len - 1))

  def attend(self, e_q, e_k, mask):
    """Predictions ``[..., Q]`` and head-averaged attention ``[..., Q, S]``."""
    q, k, v = self.query(e_q), self.key(e_k), self.value(e_k)      # [..., *, H, dh]
    logits = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(q.shape[-1])
    m = mask[..., None, :, :]
    logits = jnp.where(m, logits, _NEG)
    attn = jax.nn.softmax(logits, axis=-1)
    # Rows with no valid key would be uniform over padding; make them exactly 0.
    attn = jnp.where(m, attn, 0.0)
    ctx = jnp.einsum("...hqk,...khd->...qhd", attn, v)
    h = e_q + self.out(ctx)
    h = h + self.mlp_out(nn.relu(self.mlp_hidden(h)))
    return self.head(h)[..., 0], attn.mean(axis=-3)

  def __call__(self, obs, action, step, valid):
    """The last position's prediction and attention row.

    Args:
      obs: ``[..., S, *obs_shape]``; action: ``[..., S]`` (or ``[..., S, k]``);
      step: ``[..., S]`` int episode-step indices; valid: ``[..., S]`` bool.
      The LAST position (index ``S − 1``) must be the episode's final step
      (windows are left-padded; ``valid`` may also have padding elsewhere).

    Returns:
      ``(return_prediction [...], attention [..., S])``: the attention row of the
      last position, averaged over heads; 0 at invalid positions.
    """
    e = self.embed(obs, action, step)
    pred, attn = self.attend(e[..., -1:, :], e, valid[..., None, :])
    return pred[..., 0], attn[..., 0, :]

  def all_queries(self, obs, action, step, mask):
    """Every position as a query under ``mask [..., S, S]`` (query, key).

    Returns ``(predictions [..., S], attention [..., S, S])``.
    """
    e = self.embed(obs, action, step)
    return self.attend(e, e, mask)


__all__ = ["ReturnModel", "action_features"]

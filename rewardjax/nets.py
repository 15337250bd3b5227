"""Small flax networks shared by agents and reward modules."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def orthogonal(scale: float):
  return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
  """An MLP on flattened inputs with orthogonal init (as in PPO implementations).

  ``obs_ndim`` trailing axes of the input are the observation and are flattened.
  """
  hidden_sizes: Sequence[int]
  out_size: int
  activation: str = "tanh"
  out_scale: float = 1.0
  obs_ndim: int = 1
  layer_norm: bool = False
  # One Dense(1) per output instead of one Dense(out_size): the same function
  # class, but on a CPU a critic with C = 2 heads trains ~15 % slower as a
  # [64, 2] matmul (and its [B, 2] × [2, 64] backward) than as two
  # matrix-vector products, which cost what one head does (measured).
  split_outputs: bool = False

  @nn.compact
  def __call__(self, x):
    lead = x.shape[:x.ndim - self.obs_ndim]
    x = jnp.reshape(x, lead + (-1,)).astype(jnp.float32)
    act = activation(self.activation)
    for h in self.hidden_sizes:
      x = nn.Dense(h, kernel_init=orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros)(x)
      if self.layer_norm:
        x = nn.LayerNorm()(x)
      x = act(x)
    if self.split_outputs and self.out_size > 1:
      return jnp.concatenate(
          [nn.Dense(1, kernel_init=orthogonal(self.out_scale), bias_init=nn.initializers.zeros,
                    name=f"head_{i}")(x) for i in range(self.out_size)], axis=-1)
    return nn.Dense(self.out_size, kernel_init=orthogonal(self.out_scale),
                    bias_init=nn.initializers.zeros)(x)


class DiscreteActorCritic(nn.Module):
  """Separate actor and critic towers; the critic has one head per reward channel.

  With an ``encoder`` (``rewardjax.encoders``: observations ``[..., *obs_shape]``
  to features ``[..., F]``) both towers read the encoder's features, which
  both losses train; without one they read the flattened observation.
  """
  num_actions: int
  num_channels: int = 1
  hidden_sizes: Sequence[int] = (64, 64)
  activation: str = "tanh"
  obs_ndim: int = 1
  encoder: nn.Module | None = None

  def setup(self):
    in_ndim = self.obs_ndim if self.encoder is None else 1
    self.actor = MLP(self.hidden_sizes, self.num_actions, self.activation, 0.01, in_ndim)
    self.critic = MLP(self.hidden_sizes, self.num_channels, self.activation, 1.0, in_ndim,
                      split_outputs=True)       # one value head per channel

  def __call__(self, obs):
    """Returns ``(logits [..., A], values [..., C])``."""
    x = _encode(self.encoder, obs)
    return self.actor(x), self.critic(x)

  def policy(self, obs):
    return self.actor(_encode(self.encoder, obs))

  def value(self, obs):
    return self.critic(_encode(self.encoder, obs))


def _encode(encoder: nn.Module | None, obs):
  return obs if encoder is None else encoder(obs)


class ContinuousActorCritic(nn.Module):
  """A diagonal-Gaussian actor with a state-independent log-std, and a critic.

  The actor's mean comes from an MLP (small final-layer init, so the initial
  policy is centred); ``log_std`` is one learned parameter per action
  dimension, initialised to ``init_log_std`` (PureJaxRL / CleanRL continuous
  PPO). The critic has one head per reward channel.
  """
  action_dim: int
  num_channels: int = 1
  hidden_sizes: Sequence[int] = (64, 64)
  activation: str = "tanh"
  obs_ndim: int = 1
  init_log_std: float = 0.0
  encoder: nn.Module | None = None     # as DiscreteActorCritic's

  def setup(self):
    in_ndim = self.obs_ndim if self.encoder is None else 1
    self.actor = MLP(self.hidden_sizes, self.action_dim, self.activation, 0.01, in_ndim)
    self.critic = MLP(self.hidden_sizes, self.num_channels, self.activation, 1.0, in_ndim,
                      split_outputs=True)       # one value head per channel
    self.log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                              (self.action_dim,))

  def __call__(self, obs):
    """Returns ``((mean [..., A], log_std [..., A]), values [..., C])``."""
    x = _encode(self.encoder, obs)
    return self._policy(x), self.critic(x)

  def _policy(self, x):
    mean = self.actor(x)
    return mean, jnp.broadcast_to(self.log_std, mean.shape)

  def policy(self, obs):
    return self._policy(_encode(self.encoder, obs))

  def value(self, obs):
    return self.critic(_encode(self.encoder, obs))


class QNetwork(nn.Module):
  """An MLP Q-network with one head per reward channel: ``obs -> q [..., A, C]``.

  ``layer_norm=True`` normalises every hidden layer, as PQN requires for stable
  TD learning without a target network (Gallici et al. 2024).
  """
  num_actions: int
  num_channels: int = 1
  hidden_sizes: Sequence[int] = (64, 64)
  activation: str = "relu"
  obs_ndim: int = 1
  layer_norm: bool = False
  encoder: nn.Module | None = None     # observations -> features, as DiscreteActorCritic's

  @nn.compact
  def __call__(self, obs):
    in_ndim = self.obs_ndim if self.encoder is None else 1
    q = MLP(self.hidden_sizes, self.num_actions * self.num_channels, self.activation, 1.0,
            in_ndim, self.layer_norm)(_encode(self.encoder, obs))
    return q.reshape(q.shape[:-1] + (self.num_actions, self.num_channels))

"""Forward models ``f(φ(s), a) -> φ(s')`` for ICM and Disagreement, as an ensemble.

``ForwardEnsemble`` holds ``E`` independently initialised MLPs (``E = 1`` for
ICM); their parameters are stacked on a leading axis and applied with ``vmap``,
so the ensemble costs one batched forward pass. Each member's loss is
``½‖f_e(φ(s), a) − φ(s')‖²`` with the features held fixed (``stop_gradient``):
the encoder is shaped by the inverse-dynamics loss only (``embeddings``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rewardjax.nets import MLP
from rewardjax.rewards import embeddings as E
from rewardjax.types import Array, PRNGKey, PyTree


class ForwardEnsemble(NamedTuple):
  """``init(key, phi [M, K], act [M, A]) -> params`` (leading axis ``E``);
  ``apply(params, phi, act) -> [E, M, K]`` predictions of ``φ(s')``."""
  init: Callable[[PRNGKey, Array, Array], PyTree]
  apply: Callable[[PyTree, Array, Array], Array]


def forward_ensemble(size: int, hidden: Sequence[int]) -> ForwardEnsemble:
  """``size`` forward MLPs with ReLU hidden layers."""
  if int(size) != size or size < 1:
    raise ValueError(f"the forward ensemble needs a positive integer size, got {size}")

  def net(out):
    return MLP(tuple(hidden), out, activation="relu")

  def init(key, phi, act):
    x = jnp.concatenate([phi, act], axis=-1)[:1]
    return jax.vmap(lambda k: net(phi.shape[-1]).init(k, x))(jax.random.split(key, int(size)))

  def apply(params, phi, act):
    x = jnp.concatenate([phi, act], axis=-1)
    return jax.vmap(lambda p: net(phi.shape[-1]).apply(p, x))(params)

  return ForwardEnsemble(init, apply)


class Features(NamedTuple):
  """``φ(s)``, ``φ(s')`` ``[M, K]`` (non-finite rows zeroed), the action
  features ``[M, A]`` and ``ok [M]`` (finite observations and features)."""
  phi: Array
  next_phi: Array
  act: Array
  ok: Array


def features(emb: E.Embedding, embed_params: PyTree, data: E.Flat,
             num_actions: int | None) -> Features:
  phi, ok = E.finite_features(emb.apply(embed_params, data.obs), data.valid)
  next_phi, ok = E.finite_features(emb.apply(embed_params, data.next_obs), ok)
  return Features(phi, next_phi, E.action_features(data.action, num_actions), ok)


def init_params(emb: E.Embedding, model: ForwardEnsemble, key: PRNGKey, example: E.Flat,
                num_actions: int | None) -> dict:
  """``{"embed": ..., "forward": ...}``: the encoder's and the ensemble's parameters."""
  k_embed, k_forward = jax.random.split(key)
  embed_params = emb.init(k_embed, example)
  f = features(emb, embed_params, example, num_actions)
  return {"embed": embed_params, "forward": model.init(k_forward, f.phi, f.act)}


def forward_errors(model: ForwardEnsemble, params: PyTree, f: Features) -> Array:
  """``[E, M]``: ``½‖f_e(φ(s), a) − φ(s')‖²`` per member and sample, features fixed."""
  phi, next_phi = jax.lax.stop_gradient(f.phi), jax.lax.stop_gradient(f.next_phi)
  pred = model.apply(params, phi, f.act)
  return 0.5 * jnp.sum(jnp.square(pred - next_phi[None]), axis=-1)


__all__ = ["ForwardEnsemble", "forward_ensemble", "Features", "features", "init_params",
           "forward_errors"]

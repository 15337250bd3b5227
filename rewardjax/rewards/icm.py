"""Intrinsic curiosity module, ICM (Pathak, Agrawal, Efros & Darrell 2017).

    r_t = η · ½‖f(φ(s_t), a_t) − φ(s'_t)‖²

The forward model ``f`` predicts the next features from the features and the
action; ``φ`` is an encoder trained by inverse dynamics (predict ``a_t`` from
``φ(s_t), φ(s'_t)``), so that it keeps what the agent can control. Both train on
every rollout, after its bonus is read, on ``(1 − β)·L_inverse + β·L_forward``
(paper: β = 0.2); the forward loss does not reach the encoder (``dynamics``).
``embed=`` a fixed feature map (``embeddings``) trains the forward model alone.
Gradients are averaged over the devices of a sharded run. Transitions with a
NaN or ±inf observation earn 0 and are left out of the losses.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import optax

from rewardjax import sharding
from rewardjax.rewards import embeddings as E
from rewardjax.rewards.dynamics import (features, forward_ensemble, forward_errors,
                                         init_params)
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class ICMState(NamedTuple):
  """State of ``icm``: ``{"embed": ..., "forward": ...}`` parameters and their
  optimiser state."""
  params: PyTree
  opt_state: optax.OptState


def icm(embed: str | Callable[[Array], Array] = "inverse_dynamics",
        num_actions: int | None = None,
        eta: float = 1.0,
        beta: float = 0.2,
        hidden: Sequence[int] = (64, 64),
        feature_dim: int = 32,
        learning_rate: float = 1e-3,
        num_grad_steps: int = 8,
        update_proportion: float = 0.25) -> RewardModule:
  """Curiosity bonus: the forward model's error in feature space (Pathak et al. 2017).

  Args:
    embed: ``"inverse_dynamics"`` (learned), ``"random"``, ``"identity"`` or a
      function of one observation (see ``embeddings``).
    num_actions: size of a discrete action space (one-hot actions, inverse head).
    eta: scale η of the bonus.
    beta: weight β of the forward loss against the inverse loss.
    hidden, feature_dim: sizes of the encoder, the inverse head and the forward model.
    learning_rate, num_grad_steps, update_proportion: Adam steps per update,
      each on a random subset of the rollout.

  Returns:
    A ``RewardModule`` with state ``ICMState``; ``update`` reports
    ``icm_bonus_mean``, ``icm_forward_loss`` and ``icm_inverse_loss`` (both on
    the batch, before the update) and ``nonfinite_inputs``.
  """
  if not (eta > 0.0 and 0.0 < beta <= 1.0):
    raise ValueError(f"icm: need eta > 0 and beta in (0, 1], got eta={eta}, beta={beta}")
  E.check_training("icm", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "icm", num_actions, hidden, feature_dim)
  model = forward_ensemble(1, hidden)
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> ICMState:
    params = init_params(emb, model, key, E.flatten(example), num_actions)
    return ICMState(params, opt.init(params))

  def losses(params, data: E.Flat):
    """Per sample: (forward error, inverse loss), ``[M]`` each."""
    f = features(emb, params["embed"], data, num_actions)
    return forward_errors(model, params["forward"], f)[0], emb.loss(params["embed"], data), f.ok

  def bonus(state: ICMState, batch: Transition):
    forward, inverse, ok = losses(state.params, E.flatten(batch))
    return E.as_reward(jnp.where(ok, eta * forward, 0.0), batch), forward, inverse, ok

  def reward_and_update_fn(state: ICMState, batch: Transition, key: PRNGKey):
    r, forward, inverse, ok = bonus(state, batch)

    def loss_fn(params, data):
      fwd, inv, _ = losses(params, data)
      return (1.0 - beta) * inv + beta * fwd

    params, opt_state, _ = E.train_steps(opt, loss_fn, state.params, state.opt_state,
                                         E.flatten(batch), key, int(num_grad_steps),
                                         update_proportion)
    metrics: Metrics = {
        "icm_bonus_mean": jnp.mean(r).astype(jnp.float32),
        "icm_forward_loss": E.valid_mean(forward, ok),
        "icm_inverse_loss": E.valid_mean(inverse, ok),
        "nonfinite_inputs": sharding.psum(jnp.sum(~ok)).astype(jnp.float32),
    }
    return r, ICMState(params, opt_state), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, lambda state, batch: bonus(state, batch)[0], update_fn,
                      reward_and_update_fn)


__all__ = ["ICMState", "icm"]

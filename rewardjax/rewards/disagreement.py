"""Self-supervised exploration via disagreement (Pathak, Gandhi & Gupta 2019).

    r_t = η · mean_k Var_e[f_e(φ(s_t), a_t)_k]

the variance, across an ensemble of ``E`` forward models, of their predictions
of the next features (averaged over feature dimensions). Members differ by their
random initialisation and all train on every rollout, after its bonus is read;
where the data have pinned them down they agree, on unseen transitions they do
not. ``φ`` is an inverse-dynamics encoder trained alongside (the forward losses
do not reach it; ``dynamics``) or any fixed feature map (``embeddings``).
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


class DisagreementState(NamedTuple):
  """State of ``disagreement``: ``{"embed": ..., "forward": ...}`` parameters
  (forward members stacked on a leading axis) and their optimiser state."""
  params: PyTree
  opt_state: optax.OptState


def disagreement(embed: str | Callable[[Array], Array] = "inverse_dynamics",
                 num_actions: int | None = None,
                 ensemble_size: int = 5,
                 eta: float = 1.0,
                 hidden: Sequence[int] = (64, 64),
                 feature_dim: int = 32,
                 learning_rate: float = 1e-3,
                 num_grad_steps: int = 8,
                 update_proportion: float = 0.25) -> RewardModule:
  """Ensemble-variance bonus (Pathak et al. 2019).

  Args:
    embed: ``"inverse_dynamics"`` (learned), ``"random"``, ``"identity"`` or a
      function of one observation (see ``embeddings``).
    num_actions: size of a discrete action space (one-hot actions, inverse head).
    ensemble_size: forward models in the ensemble (paper: 5), at least 2.
    eta: scale η of the bonus.
    hidden, feature_dim: sizes of the encoder, the inverse head and the forward models.
    learning_rate, num_grad_steps, update_proportion: Adam steps per update,
      each on a random subset of the rollout.

  Returns:
    A ``RewardModule`` with state ``DisagreementState``; ``update`` reports
    ``disagreement_bonus_mean``, ``disagreement_forward_loss`` (mean member
    error) and ``disagreement_inverse_loss`` on the batch before the update,
    and ``nonfinite_inputs``.
  """
  if int(ensemble_size) != ensemble_size or ensemble_size < 2:
    raise ValueError(f"disagreement: ensemble_size must be an integer >= 2, got {ensemble_size}")
  if not eta > 0.0:
    raise ValueError(f"disagreement: eta must be positive, got {eta}")
  E.check_training("disagreement", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "disagreement", num_actions, hidden, feature_dim)
  model = forward_ensemble(int(ensemble_size), hidden)
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> DisagreementState:
    params = init_params(emb, model, key, E.flatten(example), num_actions)
    return DisagreementState(params, opt.init(params))

  def bonus(state: DisagreementState, batch: Transition):
    f = features(emb, state.params["embed"], E.flatten(batch), num_actions)
    pred = model.apply(state.params["forward"], f.phi, f.act)          # [E, M, K]
    var = jnp.mean(jnp.var(pred, axis=0), axis=-1)
    return E.as_reward(jnp.where(f.ok, eta * var, 0.0), batch), f

  def loss_fn(params, data: E.Flat):
    f = features(emb, params["embed"], data, num_actions)
    fwd = jnp.mean(forward_errors(model, params["forward"], f), axis=0)
    return fwd + emb.loss(params["embed"], data)

  def reward_and_update_fn(state: DisagreementState, batch: Transition, key: PRNGKey):
    r, f = bonus(state, batch)
    data = E.flatten(batch)
    forward = jnp.mean(forward_errors(model, state.params["forward"], f), axis=0)
    inverse = emb.loss(state.params["embed"], data)
    params, opt_state, _ = E.train_steps(opt, loss_fn, state.params, state.opt_state, data,
                                         key, int(num_grad_steps), update_proportion)
    metrics: Metrics = {
        "disagreement_bonus_mean": jnp.mean(r).astype(jnp.float32),
        "disagreement_forward_loss": E.valid_mean(forward, f.ok),
        "disagreement_inverse_loss": E.valid_mean(inverse, f.ok),
        "nonfinite_inputs": sharding.psum(jnp.sum(~f.ok)).astype(jnp.float32),
    }
    return r, DisagreementState(params, opt_state), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, lambda state, batch: bonus(state, batch)[0], update_fn,
                      reward_and_update_fn)


__all__ = ["DisagreementState", "disagreement"]

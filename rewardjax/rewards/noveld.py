"""NovelD: novelty differences at the boundary of the explored region (Zhang et al. 2021).

    r_t = max(n(s'_t) − α·n(s_t), 0) · 1[N_ep(s'_t) = 1]

``n`` is RND's prediction error (``rnd(normalize_reward=False)``: its
predictor, target, observation normaliser and training, on ``s'``), read for
``s`` and ``s'`` with the networks from before the batch's update. The gate pays
a state only on its first visit in the current episode of its environment
(``count_bonus(episodic=True, batch_counts="sequential")``: one table per
environment, restarted after ``terminated | truncated``). The paper divides the
bonus by the running std of its return; the spec kind ``noveld`` does so through
its channel (``normalize``). Observations with a NaN or ±inf entry earn 0 (RND's
rule).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rewardjax.rewards import embeddings as E
from rewardjax.rewards.counts import count_bonus
from rewardjax.rewards.rnd import RNDState, rnd
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class NovelDState(NamedTuple):
  """State of ``noveld``: RND's state and the episodic count tables."""
  rnd: RNDState
  counts: PyTree


def noveld(alpha: float = 0.5,
           key_fn: str | Callable[[Array], Array] = "auto",
           table_size: int | None = None,
           target_hidden: Sequence[int] = (64, 64),
           predictor_hidden: Sequence[int] = (64, 64, 64),
           output_dim: int = 64,
           learning_rate: float = 3e-3,
           update_proportion: float = 0.25,
           num_grad_steps: int = 8) -> RewardModule:
  """NovelD bonus ``max(n(s') − α·n(s), 0)`` on first episodic visits (Zhang et al. 2021).

  Args:
    alpha: the scale α of ``n(s)`` (paper: 0.5).
    key_fn, table_size: how ``s'`` is counted for the gate (``count_bonus``).
    target_hidden: RND's target network (``rnd``).
    predictor_hidden: RND's predictor network.
    output_dim: RND's embedding size.
    learning_rate: RND's predictor learning rate.
    update_proportion: share of the batch RND's predictor trains on.
    num_grad_steps: RND's predictor steps per update.

  Returns:
    A ``RewardModule`` with state ``NovelDState``; ``update`` reports
    ``noveld_bonus_mean``, ``noveld_first_visit_fraction`` and RND's metrics.
  """
  if not (isinstance(alpha, (int, float)) and alpha >= 0.0):
    raise ValueError(f"noveld: alpha must be a number >= 0, got {alpha!r}")
  novelty = rnd(target_hidden, predictor_hidden, output_dim, learning_rate, update_proportion,
                num_grad_steps, normalize_reward=False)
  counter = count_bonus(beta=1.0, key_fn=key_fn, table_size=table_size, episodic=True,
                        batch_counts="sequential")
  alpha = float(alpha)

  def init_fn(key: PRNGKey, example: Transition) -> NovelDState:
    k_rnd, k_count = jax.random.split(key)
    return NovelDState(novelty.init(k_rnd, example), counter.init(k_count, example))

  def difference(state: NovelDState, batch: Transition) -> Array:
    """``max(n(s') − α·n(s), 0)``, batch-shaped."""
    n_next = novelty.reward(state.rnd, batch)
    n_now = novelty.reward(state.rnd, batch._replace(next_obs=batch.obs))
    return jnp.maximum(n_next - alpha * n_now, 0.0)

  def reward_fn(state: NovelDState, batch: Transition) -> Array:
    # β/√N with β = 1 is exactly 1 where N = 1 and below 1 elsewhere.
    first = counter.reward(state.counts, batch) >= 1.0
    return E.as_reward(jnp.where(first, difference(state, batch), 0.0), batch)

  def reward_and_update_fn(state: NovelDState, batch: Transition, key: PRNGKey):
    inv_sqrt_n, counts, _ = counter.reward_and_update(state.counts, batch, key)
    first = inv_sqrt_n >= 1.0
    r = E.as_reward(jnp.where(first, difference(state, batch), 0.0), batch)
    rnd_state, rnd_metrics = novelty.update(state.rnd, batch, key)
    metrics: Metrics = dict(
        rnd_metrics,
        noveld_bonus_mean=jnp.mean(r).astype(jnp.float32),
        noveld_first_visit_fraction=jnp.mean(first.astype(jnp.float32)))
    return r, NovelDState(rnd_state, counts), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = ["NovelDState", "noveld"]

"""A delayed-reward wrapper for credit-assignment experiments.

``DelayedReward`` withholds every reward and pays an episode's undiscounted sum
at its last step (terminated or truncated), as in the episodic-reward
benchmarks used to study credit assignment (e.g. Arjona-Medina et al. 2019,
RUDDER; Ren et al. 2022, randomized return decomposition):

    r̃_t = 0                       if the episode goes on after step t,
    r̃_t = Σ_{s ≤ t in episode} r_s  if step t ends the episode.

Over any finished episode ``Σ_t r̃_t = Σ_t r_t``; over a rollout, the paid total
equals the raw total minus what the unfinished episodes have accumulated so
far (``state.accumulated_reward``).

The raw reward of each step stays available as ``info["undelayed_reward"]`` so
agents can log true returns; ``info["final_observation"]`` (and the rest of the
wrapped environment's ``info``) are passed through unchanged.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rewardjax.envs.wrappers import Wrapper


@struct.dataclass
class DelayedRewardState:
  """State of ``DelayedReward``.

  Attributes:
    env_state: the wrapped environment's state.
    accumulated_reward: float32 scalar, the sum of the current episode's raw
      rewards so far (0 right after an episode ends).
  """
  env_state: Any
  accumulated_reward: jax.Array


class DelayedReward(Wrapper):
  """Pays each episode's summed reward at its last step and 0 elsewhere.

  The paid reward is float32. ``info`` gains ``undelayed_reward``: the raw
  reward of this step from the wrapped environment.
  """

  def reset(self, key, params=None):
    obs, env_state = self._env.reset(key, params)
    return obs, DelayedRewardState(env_state, jnp.zeros((), jnp.float32))

  def step(self, key, state, action, params=None):
    obs, env_state, reward, terminated, truncated, info = self._env.step(
        key, state.env_state, action, params)
    done = jnp.logical_or(terminated, truncated)
    accumulated = state.accumulated_reward + jnp.asarray(reward, jnp.float32)
    paid = jnp.where(done, accumulated, jnp.zeros_like(accumulated))
    new_state = DelayedRewardState(
        env_state=env_state,
        accumulated_reward=jnp.where(done, jnp.zeros_like(accumulated), accumulated),
    )
    info = {**info, "undelayed_reward": reward}
    return obs, new_state, paid, terminated, truncated, info


__all__ = ["DelayedReward", "DelayedRewardState"]

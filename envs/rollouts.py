"""Batches of environments stepped together, and random-action rollouts.

``reset_batch`` / ``step_batch`` vmap a gymnax-1.0-style environment over ``N``
copies; ``random_rollout`` collects a time-major ``[T, N]`` ``Transition`` of
uniformly random actions, the example batch agents give reward modules' ``init``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rewardjax.types import Transition


def reset_batch(env, env_params, key, num_envs: int):
  """``(obs, state)`` of ``num_envs`` environments reset with independent keys."""
  keys = jax.random.split(key, num_envs)
  return jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)


def step_batch(env, env_params, key, env_state, action):
  """``env.step`` vmapped over a batch of states and actions ``[N]``, one key each."""
  keys = jax.random.split(key, action.shape[0])
  return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, env_state, action, env_params)


def sample_actions(env, env_params, key, num_envs: int):
  space = env.action_space(env_params)
  keys = jax.random.split(key, num_envs)
  return jax.vmap(space.sample)(keys)


def random_rollout(env, env_params, key, num_steps: int, num_envs: int) -> Transition:
  """A ``[num_steps, num_envs]`` rollout of uniformly random actions.

  Agents pass such a rollout to ``rewards.init`` as its example batch, so
  reward modules can initialise statistics (e.g. RND's observation moments)
  from real observations, explicitly and purely.
  """
  k_reset, k_roll = jax.random.split(key)
  obs, state = reset_batch(env, env_params, k_reset, num_envs)

  def step(carry, key):
    obs, state = carry
    k_a, k_s = jax.random.split(key)
    action = sample_actions(env, env_params, k_a, num_envs)
    obs2, state, reward, term, trunc, info = step_batch(env, env_params, k_s, state, action)
    tr = Transition(obs, action, reward.astype(jnp.float32), info["final_observation"],
                    term, trunc)
    return (obs2, state), tr

  _, traj = jax.lax.scan(step, (obs, state), jax.random.split(k_roll, num_steps))
  return traj

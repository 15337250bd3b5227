"""What the Q-learning agents (DQN, PQN) share: ε-greedy acting and the Q-network setup.

Both keep one Q head per reward channel (own γ, episodic flag and value mapping,
``rewardjax.value_mapping``) and act greedily on the coefficient-weighted sum of
the heads in the regular space, ``Σ_c coef_c · f_c⁻¹(q̃_c)``
(``rewardjax.q_targets``), with ε decaying linearly over a share of training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rewardjax import encoders, q_targets
from rewardjax import value_mapping as vm
from rewardjax.agents import evaluation, trainer
from rewardjax.envs.rollouts import step_batch
from rewardjax.nets import QNetwork
from rewardjax.rewards.channels import as_channels
from rewardjax.types import Transition


@dataclasses.dataclass(frozen=True)
class QEvalConfig(evaluation.EvalConfig):
  """``evaluation.EvalConfig`` with the Q-learners' evaluation ε."""
  eval_epsilon: float = 0.0      # 0: greedy evaluation; > 0: ε-greedy

  def check_eval(self) -> None:
    super().check_eval()
    trainer.check_unit_interval("eval_epsilon", self.eval_epsilon, closed_low=True)


def greedy_act(q_values: Callable, params, coefs, num_actions: int, epsilon: float):
  """``act(key, obs)``: ε-greedy (greedy at ε = 0) on the coefficient-weighted Q; for evaluation."""
  def act(key, obs):
    greedy = q_targets.greedy_action(q_values(params, obs), coefs)
    return greedy if epsilon == 0 else epsilon_greedy(key, greedy, num_actions, epsilon)
  return act


def linear_epsilon(config, env_steps, eps_start=None, eps_end=None):
  """ε decays linearly from ``eps_start`` to ``eps_end`` over ``exploration_fraction`` of training.

  ``eps_start`` / ``eps_end`` (possibly traced) override the config's.
  """
  eps_start = config.eps_start if eps_start is None else eps_start
  eps_end = config.eps_end if eps_end is None else eps_end
  horizon = max(config.exploration_fraction * config.total_timesteps, 1.0)
  frac = jnp.clip(env_steps / horizon, 0.0, 1.0)
  return eps_start + frac * (eps_end - eps_start)


def epsilon_greedy(key, greedy, num_actions, epsilon):
  """Greedy actions replaced by uniform ones with probability ε."""
  k_explore, k_action = jax.random.split(key)
  random = jax.random.randint(k_action, greedy.shape, 0, num_actions)
  return jnp.where(jax.random.uniform(k_explore, greedy.shape) < epsilon, random, greedy)


class QAgentSetup(NamedTuple):
  """What DQN's and PQN's ``make_train`` build the same way from their arguments."""
  channels: Any               # resolved ``Channels``
  unresolved_gammas: tuple    # per channel: its own γ, or None (the agent's ``gamma``)
  mappings: Any               # per-channel value mappings
  num_actions: int
  network: QNetwork
  q_values: Callable          # (params, obs) -> Q in the regular space [..., A, C]


def q_agent_setup(agent: str, config, env, env_params, rewards,
                  check_rewards: bool) -> QAgentSetup:
  """Channels, value mappings and the Q-network of a value-based agent named ``agent``."""
  space = env.action_space(env_params)
  if not hasattr(space, "n"):
    raise ValueError(f"{agent} needs a discrete action space; {type(space).__name__} given")
  unresolved_gammas = as_channels(rewards).gammas
  channels = as_channels(rewards).resolve(config.gamma)
  mappings = vm.per_channel(config.value_mapping, channels.num_channels)
  if check_rewards:
    trainer.check_rewards(channels, env, env_params)
  obs_space = env.observation_space(env_params)
  network = QNetwork(int(space.n), channels.num_channels, tuple(config.hidden_sizes),
                     config.activation, len(obs_space.shape), config.layer_norm,
                     encoders.network_encoder(config.encoder, obs_space))

  def q_values(params, obs):
    return vm.apply(mappings, network.apply(params, obs), inverse=True)

  return QAgentSetup(channels, unresolved_gammas, mappings, int(space.n), network, q_values)


def epsilon_greedy_rollout(env, env_params, q_values, num_actions: int, num_steps: int,
                           env_state, obs, key, params, epsilon, coefs):
  """``num_steps`` ε-greedy steps of a batch of environments (a ``lax.scan``).

  Actions are greedy on the coefficient-weighted regular-space Q
  (``q_targets.greedy_action``). Returns ``((env_state, obs, key), traj, q_greedy,
  episode_info)``: the carry after the last step, time-major ``Transition``s
  ``[T, N]`` (with the true next observation at episode ends), ``Q(s_t, greedy_t)``
  per channel ``[T, N, C]`` (PQN bootstraps from it; DQN ignores it and XLA drops
  it) and the environment's ``info["episode_metrics"]`` stacked ``[T, N]`` (None
  when it has none; ``rewardjax.episodes``).
  """
  def step(carry, _):
    env_state, obs, key = carry
    key, k_act, k_env = jax.random.split(key, 3)
    q = q_values(params, obs)
    greedy = q_targets.greedy_action(q, coefs)
    action = epsilon_greedy(k_act, greedy, num_actions, epsilon)
    obs2, env_state, reward, term, trunc, info = step_batch(
        env, env_params, k_env, env_state, action)
    tr = Transition(obs, action, reward.astype(jnp.float32), info["final_observation"],
                    term, trunc)
    return (env_state, obs2, key), (tr, q_targets.select(q, greedy),
                                    info.get("episode_metrics"))

  carry, (traj, q_greedy, episode_info) = jax.lax.scan(step, (env_state, obs, key), None,
                                                       num_steps)
  return carry, traj, q_greedy, episode_info

"""Every hyperparameter an agent's record calls sweepable changes what it trains.

For each agent in ``rewardjax.agents.registry`` one tiny run is compiled once,
vmapped over settings: the defaults, then one setting per sweepable name with
only that name moved to a value that must matter (a tiny ``max_grad_norm``, a
huge ``ent_coef``, ...). Each moved setting's metrics must differ from the
defaults'. A traced override the agent ignores shows up here as equal metrics.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import envs
from rewardjax.agents.dqn import DDQNConfig, DQNConfig
from rewardjax.agents.ppo import PPOConfig
from rewardjax.agents.pqn import PQNConfig
from rewardjax.agents.registry import AGENTS

_DQN_TINY = dict(total_timesteps=192, num_envs=8, num_steps=4, num_gradient_steps=2,
                 minibatch_size=16, buffer_size=1000, learning_starts=32,
                 target_update_interval=32, hidden_sizes=(16, 16))

# One tiny config per agent: a few updates, learning from the second one on.
TINY = {
    "ppo": PPOConfig(total_timesteps=192, num_envs=4, num_steps=16, update_epochs=2,
                     num_minibatches=2, hidden_sizes=(16, 16)),
    "dqn": DQNConfig(**_DQN_TINY),
    "ddqn": DDQNConfig(**_DQN_TINY),
    "pqn": PQNConfig(total_timesteps=192, num_envs=4, num_steps=16, update_epochs=1,
                     num_minibatches=2, hidden_sizes=(16, 16)),
}

# A value per name far enough from every agent's default that it must change training.
MOVED = {
    "lr": 3e-2, "clip_eps": 1e-3, "ent_coef": 1.0, "vf_coef": 20.0, "max_grad_norm": 1e-6,
    "gae_lambda": 0.0, "gamma": 0.5, "tau": 0.5, "eps_start": 0.0, "eps_end": 0.5,
    "q_lambda": 0.0,
}

CASES = [(agent, name) for agent, spec in AGENTS.items() for name in spec.sweepable]


def test_every_registered_agent_has_a_tiny_config_and_moved_values():
  assert set(AGENTS) <= set(TINY)
  assert {name for _, name in CASES} <= set(MOVED)


@functools.cache
def _metrics_per_setting(agent: str):
  """``(names, metrics)``: metrics ``[1 + len(names), updates, ...]``, defaults first."""
  spec = AGENTS[agent]
  config = TINY[agent]
  names = spec.sweepable
  for name in names:
    assert getattr(config, name) != MOVED[name], (agent, name)
  env, env_params = envs.make("CartPole-v1")
  train = spec.make_train(config, env, env_params)
  # Row 0: the defaults; row i + 1: names[i] moved, every other name at its default.
  hparams = {n: jnp.asarray([getattr(config, n)] * (len(names) + 1), jnp.float32)
             for n in names}
  for i, n in enumerate(names):
    hparams[n] = hparams[n].at[i + 1].set(MOVED[n])
  out = jax.jit(jax.vmap(train, (None, 0)))(jax.random.PRNGKey(0), hparams)
  return names, jax.device_get(out.metrics)


@pytest.mark.parametrize("agent, name", CASES)
def test_sweeping_changes_the_trained_metrics(agent, name):
  names, metrics = _metrics_per_setting(agent)
  row = names.index(name) + 1
  changed = sorted(k for k, v in metrics.items()
                   if np.issubdtype(np.asarray(v).dtype, np.floating)
                   and not np.array_equal(v[0], v[row], equal_nan=True))
  assert changed, f"{agent}: sweeping {name} to {MOVED[name]} changed no metric"

"""Exploration that works, at a test-sized budget (the full table: benchmarks/exploration.py).

DeepSea of size 20: a uniform random policy finds the treasure with probability
2^-20 per episode, and PPO, which pays a move cost for going right, learns to
go left. With the library's default count bonus it finds the treasure on every
seed. Seeds are fixed, so the outcome is deterministic on a given machine.
"""

import jax
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import spec
from rewardjax.agents import ppo

SIZE, STEPS, SEEDS = 20, 200_000, 2


def _goal_reached(rewards_spec):
  env, params = rjx.envs.make("DeepSea-bsuite", size=SIZE)
  cfg = ppo.PPOConfig(total_timesteps=STEPS, num_envs=32, num_steps=128, lr=3e-4)
  rewards = spec.parse_rewards(rewards_spec, env_id="DeepSea-bsuite", env=env,
                               env_params=params, gamma=cfg.gamma)
  out = jax.jit(jax.vmap(ppo.make_train(cfg, env, params, rewards)))(
      jax.random.split(jax.random.PRNGKey(0), SEEDS))
  assert not np.asarray(out.metrics["nonfinite"]).any()
  best = np.asarray(out.metrics["episode_return_max"])
  return (best > 0.5).any(axis=1)          # per seed: found the treasure at least once


@pytest.mark.slow
def test_count_bonus_finds_deepsea_treasure_where_ppo_does_not():
  with_counts = _goal_reached("extrinsic+counts")
  plain = _goal_reached("extrinsic")
  assert with_counts.all(), with_counts
  assert not plain.any(), plain

"""Coefficient schedules (``rewardjax.schedules``) on reward channels and PPO's entropy."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import schedules, spec
from rewardjax.agents import ppo, pqn

from _toy_envs import Chain

R = rjx.rewards


@pytest.mark.parametrize("text,param,t,want", [
    # (1 − κ)^t, hand-computed (exact in float32).
    ("exp:0.5", 0.5, [0, 1, 2, 3, 4], [1.0, 0.5, 0.25, 0.125, 0.0625]),
    ("exp:0.25", 0.25, [0, 1, 3, 4], [1.0, 0.75, 0.421875, 0.31640625]),
    # 1 + (floor − 1)·min(1, t / (φ·U)) with U = 8, φ = 0.5, floor = 0.5.
    ("linear:0.5:0.5", 0.5, [0, 1, 2, 3, 4, 7], [1.0, 0.875, 0.75, 0.625, 0.5, 0.5]),
    # To 0 over all of training.
    ("linear:1", 1.0, [0, 2, 4, 6], [1.0, 0.75, 0.5, 0.25]),
    # 1 before φ·U = 2 updates, then the floor.
    ("step:0.25:0.5", 0.25, [0, 1, 2, 7], [1.0, 1.0, 0.5, 0.5]),
])
def test_factor_follows_its_formula(text, param, t, want):
  schedule = schedules.parse(text)
  assert schedule.param == param
  got = jax.jit(lambda p, t: schedules.factor(schedule, p, t, 8))(param, jnp.asarray(t))
  np.testing.assert_array_equal(got, np.asarray(want, np.float32))


@pytest.mark.parametrize("text,match", [
    ("exp", "expected exp:<rate>"), ("exp:1.5", "decay rate"), ("linear:0", "fraction"),
    ("cosine:0.5", "expected exp:<rate>"), ("linear:0.5:x", "expected"),
    ("exp:0.1:0.2", "expected"), ("step:0.5:inf", "floor"),
])
def test_bad_schedules_are_named_errors(text, match):
  with pytest.raises(ValueError, match=match):
    schedules.parse(text)


def test_spec_decay_option_sets_the_channel_schedule():
  env, params = rjx.envs.make("DeepSea-bsuite", size=4)
  channels = spec.parse_rewards("extrinsic+counts@decay=exp:0.001", env_id="DeepSea-bsuite",
                                env=env, env_params=params, gamma=0.99)
  assert channels.schedules == (None, schedules.Schedule("exp", 0.001, 0.0))
  channels = spec.parse_rewards("extrinsic+counts@decay=linear:0.5:0.1,coef=2",
                                env_id="DeepSea-bsuite", env=env, env_params=params, gamma=0.99)
  assert channels.schedules[1] == schedules.Schedule("linear", 0.5, 0.1)
  assert channels.coefs == (1.0, 2.0)
  with pytest.raises(ValueError, match="counts@decay=exp:2.*decay rate"):
    spec.parse_rewards("extrinsic+counts@decay=exp:2", env_id="DeepSea-bsuite", env=env,
                       env_params=params, gamma=0.99)


def _chain_channels(schedule):
  return R.combine(extrinsic=R.extrinsic(),
                   counts=R.intrinsic_channel(R.count_bonus(beta=0.5), coef=2.0,
                                              schedule=schedule))


PQN_TINY = pqn.PQNConfig(total_timesteps=4 * 8 * 5, num_envs=4, num_steps=8, num_minibatches=1,
                         update_epochs=1, hidden_sizes=(8,))


def test_decayed_coefficient_in_training_and_a_sweep_over_its_rate_compiles_once():
  env = Chain(length=4)
  train = pqn.make_train(PQN_TINY, env, None, _chain_channels("exp:0.5"))
  assert "counts.decay" in train.sweepable
  sweep = jax.jit(jax.vmap(train, in_axes=(None, 0)))
  key = jax.random.PRNGKey(0)
  out = sweep(key, {"counts.decay": jnp.array([0.5, 0.25])})
  coef = np.asarray(out.metrics["schedule/counts.coef"])      # [2 settings, 5 updates]
  # β·(1 − κ)^t with β = 2, hand-computed.
  np.testing.assert_array_equal(coef[0], [2.0, 1.0, 0.5, 0.25, 0.125])
  np.testing.assert_array_equal(coef[1], [2.0, 1.5, 1.125, 0.84375, 0.6328125])
  assert not np.array_equal(out.metrics["loss"][0], out.metrics["loss"][1])
  sweep(key, {"counts.decay": jnp.array([0.1, 0.0])})
  assert sweep._cache_size() == 1                    # traced: one compile for every κ


def test_a_schedule_that_keeps_the_coefficient_trains_as_no_schedule():
  # κ = 0: (1 − κ)^t = 1, so training is bit-identical to the unscheduled channel's.
  env = Chain(length=4)
  key = jax.random.PRNGKey(2)
  plain = jax.jit(pqn.make_train(PQN_TINY, env, None, _chain_channels(None)))(key)
  kept = jax.jit(pqn.make_train(PQN_TINY, env, None, _chain_channels("exp:0")))(key)
  assert set(kept.metrics) == set(plain.metrics) | {"schedule/counts.coef"}
  for k, v in plain.metrics.items():
    np.testing.assert_array_equal(kept.metrics[k], v, err_msg=k)


def test_ppo_entropy_coefficient_anneals():
  cfg = ppo.PPOConfig(total_timesteps=4 * 8 * 4, num_envs=4, num_steps=8, num_minibatches=1,
                      update_epochs=1, hidden_sizes=(8,), ent_coef=0.5,
                      ent_schedule="linear:1")
  train = ppo.make_train(cfg, Chain(length=4), None)
  out = jax.jit(train)(jax.random.PRNGKey(0))
  # ent_coef · (1 − t / U) with U = 4 updates.
  np.testing.assert_array_equal(out.metrics["schedule/ent_coef"], [0.5, 0.375, 0.25, 0.125])
  assert "ent_decay" in train.sweepable
  with pytest.raises(ValueError, match="bad schedule"):
    dataclasses.replace(cfg, ent_schedule="linear")

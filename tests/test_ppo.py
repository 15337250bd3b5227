"""PPO: config validation, learning, multi-channel runs, vmapped seeds."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.agents import ppo


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1e-3}, "lr"),
    ({"gamma": 1.5}, "gamma"),
    ({"gamma": 0.0}, "gamma"),
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "divisible"),
    ({"num_envs": 0}, "num_envs"),
    ({"total_timesteps": 100}, "total_timesteps"),
    ({"activation": "sigmoid"}, "activation"),
    ({"num_envs": 2.5}, "num_envs"),
])
def test_config_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ppo.PPOConfig(**kwargs)


def test_config_is_frozen():
  cfg = ppo.PPOConfig()
  with pytest.raises(Exception):
    cfg.lr = 1.0


def test_bad_potentials_fail_before_compiling():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = ppo.PPOConfig(total_timesteps=1024, num_steps=16)
  nan_phi = rjx.rewards.potential_shaping(lambda s: jnp.log(s[0] - 100.0), 0.99)
  with pytest.raises(ValueError, match="'shaping'.*non-finite"):
    ppo.make_train(cfg, env, params, rjx.rewards.combine(
        extrinsic=rjx.rewards.extrinsic(), shaping=nan_phi))
  wide_phi = rjx.rewards.potential_shaping(lambda s: s[:2], 0.99)
  with pytest.raises(ValueError, match="scalar"):
    ppo.make_train(cfg, env, params, rjx.rewards.combine(shaping=wide_phi))


def test_unsupported_action_spaces_rejected_clearly():
  # Box spaces are supported (tests/test_continuous_ppo.py); a 2-D Box or a Dict is not.
  from gymnax.environments import spaces
  env, params = rjx.envs.make("Pendulum-v1")
  for space, match in [(spaces.Box(-1.0, 1.0, (2, 2)), "1-D"), (spaces.Dict({}), "Box")]:
    env.action_space = lambda params=None, space=space: space
    with pytest.raises(ValueError, match=match):
      ppo.make_train(ppo.PPOConfig(total_timesteps=1024), env, params)


@pytest.mark.slow
def test_cartpole_solved_on_every_vmapped_seed():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = ppo.PPOConfig(total_timesteps=500_000)
  train = jax.jit(jax.vmap(ppo.make_train(cfg, env, params)))
  out = train(jax.random.split(jax.random.PRNGKey(42), 4))
  ret = np.asarray(out.metrics["episode_return"])
  assert ret.shape == (4, cfg.num_updates)
  assert not np.asarray(out.metrics["nonfinite"]).any()
  np.testing.assert_array_equal(out.metrics["env_steps"][0, -1], cfg.num_updates * cfg.batch_size)
  assert (ret[:, -1] >= 475).all(), ret[:, -1]


def test_same_code_learns_catch():
  env, params = rjx.envs.make("Catch-bsuite")
  cfg = ppo.PPOConfig(total_timesteps=100_000, num_envs=16, num_steps=32, lr=1e-3)
  out = jax.jit(jax.vmap(ppo.make_train(cfg, env, params)))(
      jax.random.split(jax.random.PRNGKey(0), 2))
  ret = np.asarray(out.metrics["episode_return"])
  # A random policy scores about -0.6 on Catch; the optimum is +1.
  assert (ret[:, -5:].mean(1) > 0.8).all(), ret[:, -5:]


def test_multichannel_ppo_with_shaping_runs_and_reports_channels():
  env, params = rjx.envs.make("MountainCar-v0")
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic(), coef=1.0),
      shaping=rjx.rewards.channel(rjx.rewards.potential_shaping(
          rjx.envs.progress_functions.potential("mountaincar", 10.0), 0.99)),
      norm=rjx.rewards.channel(rjx.rewards.extrinsic(), coef=0.1, gamma=0.9, episodic=False,
                               transforms=[rjx.rewards.normalize_by_return_std(0.9)]),
  )
  cfg = ppo.PPOConfig(total_timesteps=4096, num_envs=4, num_steps=64)
  out = jax.jit(ppo.make_train(cfg, env, params, rewards))(jax.random.PRNGKey(0))
  m = out.metrics
  for name in ("reward/extrinsic", "reward/shaping", "reward/norm", "policy_loss",
               "value_loss", "episode_return", "env_steps"):
    assert m[name].shape == (cfg.num_updates,), name
  np.testing.assert_allclose(m["reward/extrinsic"], -1.0)
  assert np.isfinite(np.asarray(m["reward/shaping"])).all()
  assert not np.asarray(m["nonfinite"]).any()
  # One value head per channel: the critic maps observations to 3 different values.
  network = ppo.make_policy(cfg, env.action_space(params), 3, 1).network
  obs = jnp.array([[-0.5, 0.0], [-0.9, 0.03], [0.3, -0.05]])
  logits, values = network.apply(out.runner_state.params, obs)
  assert logits.shape == (3, env.action_space(params).n) and values.shape == (3, 3)
  assert sorted(out.runner_state.params["params"]["critic"]) == [
      "Dense_0", "Dense_1", "head_0", "head_1", "head_2"]
  v = np.asarray(values)
  assert not np.allclose(v[:, 0], v[:, 1]) and not np.allclose(v[:, 1], v[:, 2])


def test_callback_reports_progress():
  seen = []
  env, params = rjx.envs.make("CartPole-v1")
  cfg = ppo.PPOConfig(total_timesteps=2048, num_steps=64)
  train = ppo.make_train(cfg, env, params, callback=lambda m: seen.append(int(m["update"])))
  jax.block_until_ready(jax.jit(train)(jax.random.PRNGKey(0)))
  jax.effects_barrier()
  assert sorted(seen) == list(range(1, cfg.num_updates + 1))


def test_import_sets_xla_flag_and_vmapped_seeds_finish():
  """Regression: jaxlib 0.10.2 deadlocks here without the scheduler flag."""
  code = textwrap.dedent("""
      import os
      import jax
      import rewardjax as rjx
      from rewardjax.agents import ppo
      assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in os.environ["XLA_FLAGS"]
      env, params = rjx.envs.make("CartPole-v1")
      cfg = ppo.PPOConfig(total_timesteps=8 * 512)
      out = jax.jit(jax.vmap(ppo.make_train(cfg, env, params)))(
          jax.random.split(jax.random.PRNGKey(0), 2))
      jax.block_until_ready(out)
      print("OK", out.metrics["episode_return"].shape)
  """)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "OK (2, 8)" in proc.stdout


def test_observation_normalization_tracks_every_rollout():
  env, params = rjx.envs.make("MountainCar-v0")
  cfg = ppo.PPOConfig(total_timesteps=4 * 256, num_envs=4, num_steps=64,
                      normalize_observations=True)
  out = jax.jit(ppo.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  m = out.runner_state.obs_moments
  # Prior count 1e-4, the random-action rollout used at init, then every rollout.
  np.testing.assert_allclose(m.count, 1e-4 + (cfg.num_updates + 1) * cfg.batch_size, rtol=1e-6)
  assert m.mean.shape == (2,) and np.isfinite(np.asarray(m.var)).all()
  assert -1.2 <= float(m.mean[0]) <= 0.6
  assert not np.asarray(out.metrics["nonfinite"]).any()

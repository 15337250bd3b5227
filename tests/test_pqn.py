"""PQN: config validation, its loss, reward channels, CLI, learning on CartPole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import cli
from rewardjax.agents import pqn


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0}, "lr"),
    ({"q_lambda": 1.5}, "q_lambda"),
    ({"gamma": 0.0}, "gamma"),
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "divisible"),
    ({"total_timesteps": 100}, "total_timesteps"),
    ({"loss": "l1"}, "loss"),
    ({"activation": "sigmoid"}, "activation"),
    ({"value_mapping": ("exp",)}, "value mapping"),
    ({"exploration_fraction": -0.1}, "exploration_fraction"),
])
def test_config_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    pqn.PQNConfig(**kwargs)


def test_wrong_config_type():
  env, params = rjx.envs.make("CartPole-v1")
  with pytest.raises(TypeError, match="PQNConfig"):
    pqn.make_train(rjx.agents.dqn.DQNConfig(), env, params)


def test_pqn_learns_cartpole():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = pqn.PQNConfig(total_timesteps=150_000)
  out = jax.jit(pqn.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  ret = np.asarray(out.metrics["episode_return"])
  assert ret[:3].mean() < 30                      # random play at first (ε = 1)
  assert ret[-5:].mean() > 100, ret[-5:]
  assert not bool(out.metrics["nonfinite"].any())


def test_counts_channel_with_log_mapping_on_deepsea():
  env, params = rjx.envs.make("DeepSea-bsuite", size=8)
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()),
      novelty=rjx.rewards.intrinsic_channel(rjx.rewards.count_bonus()))
  cfg = pqn.PQNConfig(total_timesteps=4096, num_envs=8, num_steps=16, num_minibatches=2,
                      update_epochs=1, hidden_sizes=(16,), value_mapping=("identity", "log"))
  out = jax.jit(pqn.make_train(cfg, env, params, rewards))(jax.random.PRNGKey(0))
  m = out.metrics
  for k in ("episode_return", "env_steps", "update", "reward/extrinsic", "reward/novelty",
            "loss", "q_mean", "epsilon", "nonfinite"):
    assert m[k].shape == (cfg.num_updates,), k
  assert not bool(m["nonfinite"].any())
  assert float(m["reward/novelty"].mean()) > 0
  counts = out.runner_state.reward_state["novelty"].module.counts
  assert int(counts.sum()) == cfg.total_timesteps


@pytest.mark.slow
def test_cli_trains_pqn_and_ddqn(tmp_path, capsys):
  common = ["--env", "CartPole-v1", "--seeds", "2", "--no-progress"]
  rc = cli.main(["train", "--agent", "pqn", "--total-timesteps", "4096", "--pqn.num-envs", "8",
                 "--pqn.num-steps", "16", "--pqn.hidden-sizes", "16", "16",
                 "--out", str(tmp_path / "pqn"), *common])
  assert rc == 0, capsys.readouterr().err
  assert (tmp_path / "pqn" / "metrics.csv").exists()
  rc = cli.main(["train", "--agent", "ddqn", "--total-timesteps", "2048",
                 "--ddqn.learning-starts", "512", "--ddqn.hidden-sizes", "16",
                 "--out", str(tmp_path / "ddqn"), *common])
  assert rc == 0, capsys.readouterr().err
  summary = (tmp_path / "ddqn" / "summary.json").read_text()
  assert '"double_dqn": true' in summary
  # Options of another agent are refused, as for PPO.
  assert cli.main(["train", "--agent", "pqn", "--dqn.lr", "1e-3",
                   "--out", str(tmp_path / "x"), *common]) == 2


def _table(q):
  """A Q "network" that looks its values up: obs ``[..., 1]`` holds a state index."""
  q = jnp.asarray(q, jnp.float32)
  return lambda params, obs: params[obs[..., 0].astype(jnp.int32)], q


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_pqn_loss_is_sum_over_channels_of_mean_td_loss(kind):
  # Q[s, a, c] for 3 states, 2 actions, 2 channels.
  apply_fn, q = _table([[[0.0, 1.0], [2.0, -1.0]],
                        [[0.5, 0.0], [4.0, 3.0]],
                        [[1.0, 1.0], [0.0, 0.0]]])
  obs = jnp.array([[0.0], [1.0], [2.0], [1.0]])
  action = jnp.array([1, 1, 0, 0])
  target = jnp.array([[2.5, 0.0], [0.0, 3.2], [1.0, -2.0], [0.5, 0.5]])
  # q_taken = [[2, -1], [4, 3], [1, 1], [.5, 0]]; errors:
  err = np.array([[-0.5, -1.0], [4.0, -0.2], [0.0, 3.0], [0.0, -0.5]])
  per = 0.5 * err**2 if kind == "mse" else np.where(np.abs(err) <= 1, 0.5 * err**2,
                                                     np.abs(err) - 0.5)
  loss, metrics = pqn.pqn_loss(apply_fn, q, obs, action, target, kind)
  np.testing.assert_allclose(loss, per.mean(0).sum(), rtol=1e-6)
  np.testing.assert_allclose(metrics["q_mean"], np.mean([2, -1, 4, 3, 1, 1, .5, 0]), rtol=1e-6)
  # Its gradient moves only the taken entries, towards the targets (targets are constants).
  grad = np.asarray(jax.grad(lambda p: pqn.pqn_loss(apply_fn, p, obs, action, target, kind)[0])(q))
  d_err = err if kind == "mse" else np.clip(err, -1, 1)
  want = np.zeros_like(grad)
  for (s, a), d in zip([(0, 1), (1, 1), (2, 0), (1, 0)], d_err / len(obs)):
    want[s, a] += d
  np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-7)

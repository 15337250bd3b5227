"""Scale and operations: traced hyperparameter sweeps, chunked runs and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import checkpoint
from rewardjax.agents import dqn, ppo, pqn

TINY = ppo.PPOConfig(total_timesteps=4 * 16 * 6, num_envs=4, num_steps=16, num_minibatches=2,
                     update_epochs=1, hidden_sizes=(16, 16))
PQN_TINY = pqn.PQNConfig(total_timesteps=4 * 16 * 4, num_envs=4, num_steps=16, num_minibatches=2,
                         update_epochs=1, hidden_sizes=(16,))
# Learning starts after 4 of the 8 updates, so chunks on both sides of it run.
DQN_TINY = dqn.DQNConfig(total_timesteps=4 * 4 * 8, num_envs=4, num_steps=4, num_gradient_steps=2,
                         minibatch_size=8, buffer_size=64, learning_starts=64,
                         target_update_interval=32, hidden_sizes=(16,))


def _rewards():
  return rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.count_bonus(beta=0.1), episodic=False))


@pytest.fixture(scope="module")
def cartpole():
  return rjx.envs.make("CartPole-v1")


class CompileCounter:
  """Counts XLA backend compilations while active."""

  def __init__(self):
    self.count = 0
    self.active = False
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event, duration, **kwargs):
    del duration, kwargs
    if self.active and event == "/jax/core/compile/backend_compile_duration":
      self.count += 1

  def __enter__(self):
    self.count, self.active = 0, True
    return self

  def __exit__(self, *exc):
    self.active = False


def test_sweep_of_3_coefs_by_4_seeds_is_one_compilation(cartpole):
  train = ppo.make_train(TINY, *cartpole, _rewards())
  grid = jax.jit(jax.vmap(jax.vmap(train, (0, None)), (None, 0)))
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  coefs = {"novelty.coef": jnp.asarray([0.1, 0.3, 1.0])}
  counter = CompileCounter()
  with counter:
    out = jax.block_until_ready(grid(keys, coefs))
  assert counter.count == 1, f"the sweep compiled {counter.count} programs"
  assert out.metrics["episode_return"].shape == (3, 4, TINY.num_updates)
  # Other values of the traced coefficients reuse the compiled program.
  with counter:
    jax.block_until_ready(grid(keys, {"novelty.coef": jnp.asarray([0.0, 2.0, 5.0])}))
  assert counter.count == 0
  # The coefficient changes learning (policy losses differ across settings) ...
  loss = np.asarray(out.metrics["policy_loss"])
  assert not np.allclose(loss[0], loss[2])
  # ... and a traced override equals the same value set in the channel.
  fixed = rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.count_bonus(beta=0.1), coef=0.3, episodic=False))
  ref = jax.jit(ppo.make_train(TINY, *cartpole, fixed))(keys[1])
  np.testing.assert_allclose(out.metrics["policy_loss"][1, 1], ref.metrics["policy_loss"],
                             rtol=1e-4, atol=1e-6)


def test_traced_agent_hparams_match_config(cartpole):
  train = ppo.make_train(TINY, *cartpole)
  hp = {"lr": 1e-3, "ent_coef": 0.0, "clip_eps": 0.1, "gamma": 0.95}
  swept = jax.jit(train)(jax.random.PRNGKey(3), {k: jnp.asarray(v) for k, v in hp.items()})
  cfg = ppo.PPOConfig(**{**TINY.__dict__, **hp})
  ref = jax.jit(ppo.make_train(cfg, *cartpole))(jax.random.PRNGKey(3))
  for k in ("policy_loss", "value_loss", "episode_return"):
    np.testing.assert_allclose(swept.metrics[k], ref.metrics[k], rtol=1e-4, atol=1e-6)


def test_unknown_hparam_is_named(cartpole):
  train = ppo.make_train(TINY, *cartpole)
  with pytest.raises(ValueError, match="'learning_rate'.*sweepable.*lr"):
    train(jax.random.PRNGKey(0), {"learning_rate": 1e-3})


def _kill_and_resume(make, num_updates, tmp_path, compare):
  """Chunked == resumed-from-disk (bitwise) and ≈ the one-scan ``train(key)``."""
  train = make()
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  init = jax.jit(jax.vmap(train.init))
  chunk = 2
  run = jax.jit(jax.vmap(lambda r, s: train.run(r, s, chunk), (0, None)))
  n = num_updates // chunk

  # Uninterrupted, chunked.
  runner, parts = init(keys), []
  for c in range(n):
    runner, m = run(runner, c * chunk)
    parts.append(jax.device_get(m))
  full = checkpoint.concat_metrics(parts, axis=1)

  # Stopped after half: save, drop everything, restore from disk into the
  # structure a fresh trainer describes, and go on.
  runner, parts = init(keys), []
  for c in range(n // 2):
    runner, m = run(runner, c * chunk)
    parts.append(jax.device_get(m))
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  ckpt.save((n // 2) * chunk, runner, checkpoint.concat_metrics(parts, axis=1), {"note": "half"})
  ckpt.close()
  del runner, parts

  like = jax.eval_shape(jax.vmap(make().init), keys)
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  runner, done, meta = ckpt.restore(like)
  assert meta == {"note": "half"} and ckpt.latest_step() == (n // 2) * chunk
  parts = [done]
  # (the compiled chunk is reused: a fresh trainer builds the same program,
  # which the CLI test checks across processes)
  for c in range(n // 2, n):
    runner, m = run(runner, c * chunk)
    parts.append(jax.device_get(m))
  resumed = checkpoint.concat_metrics(parts, axis=1)

  assert resumed.keys() == full.keys()
  for k in full:
    np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)
  np.testing.assert_array_equal(resumed["update"][0], np.arange(1, num_updates + 1))
  # The one-scan train(key) runs the same updates.
  whole = jax.jit(jax.vmap(train))(keys)
  for k in compare:
    np.testing.assert_allclose(np.asarray(whole.metrics[k]), full[k], rtol=1e-5, atol=1e-6,
                               err_msg=k)
  return full


@pytest.mark.parametrize("agent", ["ppo", "pqn", "dqn"])
def test_kill_and_resume_is_bitwise(cartpole, tmp_path, agent):
  if agent == "ppo":
    _kill_and_resume(lambda: ppo.make_train(TINY, *cartpole, _rewards()), TINY.num_updates,
                     tmp_path, ("episode_return", "policy_loss", "reward/novelty"))
  elif agent == "pqn":
    _kill_and_resume(lambda: pqn.make_train(PQN_TINY, *cartpole, _rewards()),
                     PQN_TINY.num_updates, tmp_path, ("episode_return", "loss", "reward/novelty"))
  else:
    full = _kill_and_resume(lambda: dqn.make_train(DQN_TINY, *cartpole, _rewards()),
                            DQN_TINY.num_updates, tmp_path,
                            ("episode_return", "loss", "q_mean", "reward/novelty"))
    loss = full["loss"]
    assert np.isnan(loss[:, :3]).all() and np.isfinite(loss[:, 4:]).all()   # replay learned


def test_pqn_sweep_of_3_coefs_by_2_seeds_is_one_compilation(cartpole):
  train = pqn.make_train(PQN_TINY, *cartpole, _rewards())
  grid = jax.jit(jax.vmap(jax.vmap(train, (0, None)), (None, 0)))
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  hp = {"novelty.coef": jnp.asarray([0.1, 1.0, 10.0]), "lr": jnp.asarray([1e-3, 1e-3, 1e-3])}
  counter = CompileCounter()
  with counter:
    out = jax.block_until_ready(grid(keys, hp))
  assert counter.count == 1, f"the sweep compiled {counter.count} programs"
  assert out.metrics["episode_return"].shape == (3, 2, PQN_TINY.num_updates)
  # The coefficient steers acting (greedy on Σ coef·Q), so learning differs ...
  loss = np.asarray(out.metrics["loss"])
  assert not np.allclose(loss[0], loss[2])
  # ... and settings are not mixed up: a traced override equals the same
  # coefficient set in the channel.
  fixed = rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.count_bonus(beta=0.1), coef=10.0, episodic=False))
  cfg = pqn.PQNConfig(**{**PQN_TINY.__dict__, "lr": 1e-3})
  ref = jax.jit(pqn.make_train(cfg, *cartpole, fixed))(keys[1])
  for k in ("loss", "q_mean", "episode_return"):
    np.testing.assert_allclose(out.metrics[k][2, 1], ref.metrics[k], rtol=1e-4, atol=1e-6,
                               err_msg=k)


def test_dqn_sweep_matches_config(cartpole):
  train = dqn.make_train(DQN_TINY, *cartpole)
  hp = {"lr": jnp.asarray([1e-3, 3e-3]), "gamma": jnp.asarray([0.9, 0.99]),
        "tau": jnp.asarray([1.0, 0.5]), "eps_end": jnp.asarray([0.05, 0.2])}
  out = jax.jit(jax.vmap(train, (None, 0)))(jax.random.PRNGKey(2), hp)
  assert out.metrics["loss"].shape == (2, DQN_TINY.num_updates)
  cfg = dqn.DQNConfig(**{**DQN_TINY.__dict__, "lr": 3e-3, "gamma": 0.99, "tau": 0.5,
                         "eps_end": 0.2})
  ref = jax.jit(dqn.make_train(cfg, *cartpole))(jax.random.PRNGKey(2))
  for k in ("loss", "q_mean", "epsilon", "episode_return"):
    np.testing.assert_allclose(out.metrics[k][1], ref.metrics[k], rtol=1e-4, atol=1e-6,
                               err_msg=k)
  assert not np.allclose(out.metrics["loss"][0, -1], out.metrics["loss"][1, -1])

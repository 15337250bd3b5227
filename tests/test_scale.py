"""Scale and operations: traced hyperparameter sweeps, chunked runs and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import checkpoint
from rewardjax.agents import ppo

TINY = ppo.PPOConfig(total_timesteps=4 * 16 * 6, num_envs=4, num_steps=16, num_minibatches=2,
                     update_epochs=1)


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


def test_kill_and_resume_is_bitwise(cartpole, tmp_path):
  train = ppo.make_train(TINY, *cartpole, _rewards())
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  init = jax.jit(jax.vmap(train.init))
  chunk = 2
  run = jax.jit(jax.vmap(lambda r, s: train.run(r, s, chunk), (0, None)))
  n = TINY.num_updates // chunk

  # Uninterrupted, chunked.
  runner, parts = init(keys), []
  for c in range(n):
    runner, m = run(runner, c * chunk)
    parts.append(jax.device_get(m))
  full = checkpoint.concat_metrics(parts, axis=1)

  # Stopped after half: save, drop everything, resume from disk in a fresh trainer.
  runner, parts = init(keys), []
  for c in range(n // 2):
    runner, m = run(runner, c * chunk)
    parts.append(jax.device_get(m))
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  ckpt.save((n // 2) * chunk, runner, checkpoint.concat_metrics(parts, axis=1), {"note": "half"})
  ckpt.close()
  del runner, parts

  fresh = ppo.make_train(TINY, *cartpole, _rewards())
  like = jax.eval_shape(jax.vmap(fresh.init), keys)
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  runner, done, meta = ckpt.restore(like)
  assert meta == {"note": "half"} and ckpt.latest_step() == (n // 2) * chunk
  run2 = jax.jit(jax.vmap(lambda r, s: fresh.run(r, s, chunk), (0, None)))
  parts = [done]
  for c in range(n // 2, n):
    runner, m = run2(runner, c * chunk)
    parts.append(jax.device_get(m))
  resumed = checkpoint.concat_metrics(parts, axis=1)

  assert resumed.keys() == full.keys()
  for k in full:
    np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)
  np.testing.assert_array_equal(resumed["update"][0], np.arange(1, TINY.num_updates + 1))
  # The one-scan train(key) runs the same updates.
  whole = jax.jit(jax.vmap(train))(keys)
  for k in ("episode_return", "policy_loss", "reward/novelty"):
    np.testing.assert_allclose(np.asarray(whole.metrics[k]), full[k], rtol=1e-5, atol=1e-6)

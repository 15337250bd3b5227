"""Recurrent PPO (``PPOConfig(network="gru")``, agents/ppo_recurrent.py).

The core's state is reset exactly at episode ends (in the sequence unroll and in
the rollout), minibatches hold whole environment sequences, the loss with a GRU
that ignores its state is feed-forward PPO's loss, and the library's machinery
(chunked runs, sweeps, sharding, the CLI, reward channels) runs it.
MemoryChain (bsuite) has episodes of exactly ``memory_length + 1`` steps, so
every environment ends its episodes at the same known steps.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax import cli
from rewardjax.agents import ppo, ppo_recurrent, trainer
from rewardjax.agents.ppo_recurrent import Memory, RecurrentActorCritic, Sequences

A, H = 3, 8
HP = {"clip_eps": 0.2, "vf_coef": 0.5, "ent_coef": 0.01}
TINY = ppo.PPOConfig(network="gru", num_envs=4, num_steps=6, num_minibatches=2, update_epochs=2,
                     total_timesteps=4 * 6 * 2, rnn_hidden=H, head_hidden=8,
                     prev_action_embedding=4, lr=1e-2)


def memory_chain(length=3):
  return rjx.envs.make("MemoryChain-bsuite", memory_length=length)   # episodes of length + 1


def _network(embedding=4):
  return RecurrentActorCritic(num_actions=A, num_channels=2, rnn_hidden=H, head_hidden=8,
                              prev_action_embedding=embedding, obs_ndim=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(network="lstm"), "network must be"),
    (dict(network="gru", num_envs=6, num_minibatches=4), "split environments"),
    (dict(network="gru", learn_coefs=("extrinsic",)), "learn_coefs"),
    (dict(network="gru", rnn_hidden=0), "rnn_hidden"),
    (dict(network="gru", prev_action_embedding=-1), "prev_action_embedding"),
])
def test_config_errors_name_the_problem(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ppo.PPOConfig(**kwargs)


def test_continuous_actions_are_refused_before_compiling():
  with pytest.raises(ValueError, match="discrete action space"):
    ppo.make_train(TINY, *rjx.envs.make("Pendulum-v1"))


def test_unroll_resets_the_state_exactly_after_episode_ends():
  """A hand-made sequence: after an episode end the core's output is the output
  from a zero state and the start token; elsewhere it carries the history."""
  net = _network()
  T, N = 6, 2
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(ks[0], (T, N, 5))
  action = jax.random.randint(ks[1], (T, N), 0, A)
  done = np.zeros((T, N), bool)
  done[2, 0] = done[4, 1] = True           # env 0 resets before t=3, env 1 before t=5
  start = Memory(jax.random.normal(ks[2], (N, H)), jnp.array([1, 2], jnp.int32))
  params = net.init(jax.random.PRNGKey(1), x[0])
  out, value = jax.jit(lambda *a: ppo_recurrent.unroll(net, *a))(params, start, x, action,
                                                                 jnp.asarray(done))

  # Reference: a Python loop over steps, written here.
  h, prev = np.asarray(start.h), np.asarray(start.prev_action)
  apply = jax.jit(net.apply)
  for t in range(T):
    h_t, logits, v = apply(params, x[t], jnp.asarray(h), jnp.asarray(prev))
    np.testing.assert_allclose(out[t], logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value[t], v, rtol=1e-5, atol=1e-6)
    fresh = apply(params, x[t])[1]                  # zero state, start token
    for n in range(N):
      after_reset = t > 0 and done[t - 1, n]
      same = np.allclose(out[t, n], fresh[n], rtol=1e-6, atol=1e-7)
      assert same == after_reset, (t, n)
    h = np.where(done[t][:, None], 0.0, np.asarray(h_t))
    prev = np.where(done[t], A, np.asarray(action[t]))


@pytest.fixture(scope="module")
def chain_runs():
  """One tiny GRU run on MemoryChain (episodes of 4 steps, rollouts of 6), whole and chunked."""
  env, params = memory_chain(3)
  train = ppo.make_train(TINY, env, params)
  key = jax.random.PRNGKey(3)
  whole = jax.jit(train)(key)
  run = jax.jit(train.run, static_argnums=2)
  runner = jax.jit(train.init)(key)
  runner1, m1 = run(runner, 0, 1)
  runner2, m2 = run(runner1, 1, 1)
  return whole, (runner1, runner2), (m1, m2), train


def test_rollout_resets_the_memory_at_every_episode_end(chain_runs):
  """After 6 steps no episode just ended: the state carries on; after 12 every one did."""
  _, (runner1, runner2), _, _ = chain_runs
  assert np.all(np.abs(np.asarray(runner1.memory.h)).sum(-1) > 0)
  assert np.all(np.asarray(runner1.memory.prev_action) < 2)         # a real action
  np.testing.assert_array_equal(runner2.memory.h, 0.0)
  np.testing.assert_array_equal(runner2.memory.prev_action, 2)      # the start token


def test_chunked_run_equals_the_whole_run_bit_for_bit(chain_runs):
  whole, (_, runner2), (m1, m2), _ = chain_runs
  for k, v in whole.metrics.items():
    chunked = np.concatenate([np.asarray(m1[k]), np.asarray(m2[k])])
    np.testing.assert_array_equal(np.asarray(v), chunked, err_msg=k)
  for a, b in zip(jax.tree.leaves(whole.runner_state), jax.tree.leaves(runner2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.isfinite(np.asarray(whole.metrics["value_loss"])).all()


def test_sweep_rows_equal_single_runs(chain_runs):
  """A vmapped sweep over ``lr``: the row at the config's lr is the plain run (to
  float rounding: vmap batches the matmuls differently); another lr differs."""
  whole, _, _, train = chain_runs
  swept = jax.jit(jax.vmap(train, in_axes=(None, 0)))(jax.random.PRNGKey(3),
                                                      {"lr": jnp.array([TINY.lr, 1e-3])})
  for k in ("value_loss", "policy_loss", "entropy", "episode_return"):
    np.testing.assert_allclose(np.asarray(swept.metrics[k])[0], whole.metrics[k], rtol=1e-3,
                               atol=1e-6, err_msg=k)
  assert not np.allclose(swept.metrics["value_loss"][0, 1:], swept.metrics["value_loss"][1, 1:],
                         rtol=1e-3)


def _sequences(M=4, T=5, seed=0):
  """Env-major sequences whose observations encode (environment, step)."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 6)
  obs = jax.random.normal(ks[0], (M, T, 5))
  action = jax.random.randint(ks[1], (M, T), 0, A)
  done = jax.random.bernoulli(ks[2], 0.3, (M, T))
  start = Memory(jax.random.normal(ks[3], (M, H)), jax.random.randint(ks[4], (M,), 0, A + 1))
  data = ppo.MinibatchData(obs, action, -jnp.ones((M, T)), jnp.zeros((M, T, 2)))
  adv = jax.random.normal(ks[5], (M, T))
  targets = jnp.stack([adv, -adv], -1)
  return Sequences(data, done, start), adv, targets


def test_minibatches_hold_whole_environment_sequences():
  """``minibatch_epochs`` over env-major data: every minibatch row is one
  environment's sequence in time order, each environment once per epoch."""
  M, T = 8, 5
  tag = jnp.arange(M)[:, None] * 100 + jnp.arange(T)[None, :]       # env * 100 + t
  seq, adv, targets = _sequences(M, T)
  seq = seq._replace(data=seq.data._replace(log_prob=tag.astype(jnp.float32)))

  def loss_fn(theta, s, a, g):
    del a, g
    return jnp.sum(theta) * 0.0, {"rows": s.data.log_prob, "start": s.start.h}

  tx = ppo.make_optimizer(dataclasses.replace(TINY, anneal_lr=False), {"lr": 1e-3,
                                                                        "max_grad_norm": 1.0})
  theta = jnp.zeros(3)
  _, out = trainer.minibatch_epochs(loss_fn, tx, theta, tx.init(theta), (seq, adv, targets),
                                    jax.random.PRNGKey(0), 2, 4)
  rows = np.asarray(out["rows"])                      # [epochs, minibatches, M/4, T]
  assert rows.shape == (2, 4, 2, T)
  for epoch in rows:
    envs = (epoch[..., 0] // 100).astype(int).ravel()
    assert sorted(envs) == list(range(M))
    np.testing.assert_array_equal(epoch % 100, np.broadcast_to(np.arange(T), epoch.shape))
    np.testing.assert_array_equal(epoch // 100, np.broadcast_to(epoch[..., :1] // 100, epoch.shape))
  # Each row's start state travels with it.
  starts = np.asarray(out["start"]).reshape(-1, H)
  envs = (rows[..., 0] // 100).astype(int).reshape(-1)
  np.testing.assert_array_equal(starts, np.asarray(seq.start.h)[envs])


def test_sequence_loss_permutes_with_environments_not_with_time():
  net = _network()
  policy = ppo.make_policy(TINY, spaces.Discrete(A), 2, 1)._replace(network=net)
  seq, adv, targets = _sequences()
  params = net.init(jax.random.PRNGKey(1), seq.data.obs[:, 0])
  loss = jax.jit(lambda s, a, g: ppo_recurrent.sequence_loss(
      policy, params, s, a, g, HP, clip_value_loss=True, normalize_advantages=True)[0])
  base = loss(seq, adv, targets)
  perm = jnp.array([2, 0, 3, 1])
  np.testing.assert_allclose(loss(jax.tree.map(lambda x: x[perm], seq), adv[perm], targets[perm]),
                             base, rtol=1e-6)
  rev = lambda x: x[:, ::-1]
  time_reversed = seq._replace(data=jax.tree.map(rev, seq.data), done=rev(seq.done))
  assert abs(float(loss(time_reversed, rev(adv), rev(targets))) - float(base)) > 1e-4


def test_loss_with_a_stateless_gru_is_feed_forward_ppos_loss():
  """Update gate closed (z = 0) and recurrent kernels zero: h_t depends on o_t
  only, so the sequence loss equals ``ppo.ppo_loss`` on the flattened batch
  with the zero-state network as a feed-forward network."""
  net = _network(embedding=0)
  base = ppo.make_policy(TINY, spaces.Discrete(A), 2, 1)
  policy = base._replace(network=net)
  seq, adv, targets = _sequences()
  params = net.init(jax.random.PRNGKey(1), seq.data.obs[:, 0])
  loss = lambda p, s: ppo_recurrent.sequence_loss(
      policy, p, s, adv, targets, HP, clip_value_loss=True, normalize_advantages=True)

  class FeedForward:          # obs -> (logits, values): the core from a zero state
    @staticmethod
    def apply(p, obs):
      return net.apply(p, obs)[1:]

  flat = lambda a: a.reshape((-1,) + a.shape[2:])
  ff = lambda p: ppo.ppo_loss(base._replace(network=FeedForward), p,
                              jax.tree.map(flat, seq.data), flat(adv), flat(targets), HP,
                              clip_value_loss=True, normalize_advantages=True)
  assert abs(float(loss(params, seq)[0]) - float(ff(params)[0])) > 1e-4   # the state matters

  gru = dict(params["params"]["GRUCell_0"])
  for name in ("hr", "hz", "hn"):
    gru[name] = jax.tree.map(jnp.zeros_like, gru[name])
  gru["iz"] = {"kernel": jnp.zeros_like(gru["iz"]["kernel"]),
               "bias": jnp.full_like(gru["iz"]["bias"], -1e4)}
  stateless = {"params": dict(params["params"], GRUCell_0=gru)}
  got, want = loss(stateless, seq), ff(stateless)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
  for k in want[1]:
    np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-6, err_msg=k)


@pytest.mark.slow
def test_cli_runs_gru_with_counts_rnd_and_resumes(tmp_path):
  """``--ppo.network gru`` through the command, with a count bonus and RND as
  channels (one critic head each on the shared core) and checkpoints; a run
  resumed from its second checkpoint rewrites the same metrics. (Evaluation
  with a GRU: ``test_sharded_gru_equals_single_device``.)"""
  out = tmp_path / "gru"
  rc = cli.main(["train", "--env", "MemoryChain-bsuite", "--env-kwargs", "memory_length=3",
                 "--rewards", "extrinsic+counts+rnd", "--seeds", "1", "--total-timesteps", "96",
                 "--checkpoint-every", "1", "--out", str(out),
                 "--no-progress", "--ppo.network", "gru", "--ppo.rnn-hidden", "8",
                 "--ppo.head-hidden", "8", "--ppo.prev-action-embedding", "4",
                 "--ppo.num-envs", "4", "--ppo.num-steps", "8", "--ppo.num-minibatches", "2",
                 "--ppo.update-epochs", "1"])
  assert rc == 0
  first = (out / "metrics.csv").read_text()
  header = first.splitlines()[0]
  for name in ("reward/counts", "reward/rnd", "value_loss"):
    assert name in header, name
  assert len(first.splitlines()) == 1 + 3
  shutil.rmtree(out / "checkpoints" / "3")
  (out / "metrics.csv").unlink()
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 0
  assert (out / "metrics.csv").read_text() == first


@pytest.mark.slow
def test_sharded_gru_equals_single_device():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  script = Path(__file__).with_name("_sharded_check.py")
  proc = subprocess.run([sys.executable, str(script), "check_sharded_gru"], capture_output=True,
                        text=True, env=env, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
  assert "sharded PPO-GRU == single device" in proc.stdout


def test_the_configured_encoder_is_the_gru_cores_first_layer():
  """``PPOConfig.encoder`` reaches recurrent PPO: on xminigrid's uint8 grid ``"auto"``
  puts tile embeddings (16 per channel) before the GRU, ``"flat"`` none."""
  env, params = rjx.envs.make("xminigrid/MiniGrid-Empty-5x5")
  shapes = {}
  for name in ("auto", "flat"):
    cfg = ppo.PPOConfig(network="gru", encoder=name, num_envs=4, num_steps=4, num_minibatches=2,
                        total_timesteps=32, rnn_hidden=8, head_hidden=8)
    runner = jax.eval_shape(ppo.make_train(cfg, env, params, check_rewards=False).init,
                            jax.random.PRNGKey(0))
    shapes[name] = {"/".join(str(getattr(k, "key", k)) for k in path): leaf.shape
                    for path, leaf in jax.tree_util.tree_leaves_with_path(runner.params)}
  tables = {k: v for k, v in shapes["auto"].items() if "embed_" in k}
  assert sorted(v[1] for v in tables.values()) == [16, 16], shapes["auto"]
  assert not any("embed_" in k for k in shapes["flat"])
  # the GRU's input: 7·7·2·16 tile features vs 98 raw ids
  gru_in = lambda s: max(v[0] for k, v in s.items() if "gru" in k.lower() and len(v) == 2)
  assert gru_in(shapes["auto"]) == 7 * 7 * 2 * 16 and gru_in(shapes["flat"]) == 7 * 7 * 2

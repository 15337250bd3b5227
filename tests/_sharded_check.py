"""Run by tests/test_sharding.py in a fresh process with 4 forced host devices."""

import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import rewardjax as rjx  # noqa: E402  (sets XLA flags before jax starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rewardjax import sharding, stats  # noqa: E402
from rewardjax.agents import dqn, ppo, pqn  # noqa: E402
from rewardjax.envs import rollouts  # noqa: E402

from _toy_envs import Chain  # noqa: E402  (this script's directory is on sys.path)

D = 4


def split_envs(tree):
  """[T, N, ...] -> [D, T, N/D, ...]: device d gets environments d*N/D ... ."""
  def f(x):
    t, n = x.shape[:2]
    return jnp.moveaxis(x.reshape((t, D, n // D) + x.shape[2:]), 1, 0)
  return jax.tree.map(f, tree)


def same_on_devices(stacked, single, exact):
  for got, want in zip(jax.tree.leaves(stacked), jax.tree.leaves(single)):
    for d in range(D):
      if exact:
        np.testing.assert_array_equal(got[d], want)
      else:
        np.testing.assert_allclose(got[d], want, rtol=2e-5, atol=1e-6)


def check_reward_statistics():
  assert jax.device_count() == D, jax.devices()
  mesh = sharding.make_mesh(D)
  env, params = rjx.envs.make("CartPole-v1")
  batch = rollouts.random_rollout(env, params, jax.random.PRNGKey(0), 16, 8)   # [16, 8]
  key = jax.random.PRNGKey(1)

  def sharded_update(module, state):
    fn = lambda s, b, k: module.update(s, b, k)
    return jax.jit(sharding.shard(fn, mesh, (False, True, False)))(state, split_envs(batch), key)

  # Count table (SimHash over CartPole's continuous observations): exact.
  counts = rjx.rewards.count_bonus(beta=0.1)
  s0 = counts.init(key, batch)
  s0, _ = jax.jit(counts.update)(s0, batch, key)          # a non-empty table to start from
  single, _ = jax.jit(counts.update)(s0, batch, key)
  sharded, _ = sharded_update(counts, s0)
  assert int(single.counts.sum()) == 2 * batch.reward.size
  same_on_devices(sharded.counts, single.counts, exact=True)
  # Bonuses ("total", the default): the count after every device's visits, as on one device.
  bonus = lambda s, b, k: (counts.reward_and_update(s, b, k)[0], ())
  single_b = jax.jit(bonus)(s0, batch, key)[0]
  sharded_b = jax.jit(sharding.shard(bonus, mesh, (False, True, False)))(
      s0, split_envs(batch), key)[0]
  np.testing.assert_array_equal(sharded_b, split_envs(single_b))

  # Running moments.
  m0 = stats.moments_update(stats.moments_init((4,)), batch.obs, axes=(0, 1))
  single_m = jax.jit(stats.moments_update, static_argnames="axes")(m0, batch.next_obs, axes=(0, 1))
  sharded_m = jax.jit(sharding.shard(
      lambda m, x: (stats.moments_update(m, x, axes=(0, 1)), ()), mesh, (False, True)))(
          m0, split_envs(batch.next_obs))[0]
  same_on_devices(sharded_m, single_m, exact=False)

  # RND: observation and return moments, and the predictor after averaged gradients
  # (update_proportion=1: every device trains on all of its samples).
  rnd = rjx.rewards.rnd(update_proportion=1.0, num_grad_steps=2)
  r0 = rnd.init(key, batch)
  single_r, _ = jax.jit(rnd.update)(r0, batch, key)
  # Each device filters the returns of its own environments (all zero at init).
  local_returns = r0.returns._replace(ret=r0.returns.ret[:batch.reward.shape[1] // D])
  sharded_r, _ = sharded_update(rnd, r0._replace(returns=local_returns))
  for name in ("obs_moments", "predictor_params", "target_params"):
    same_on_devices(getattr(sharded_r, name), getattr(single_r, name), exact=False)
  same_on_devices(sharded_r.returns.moments, single_r.returns.moments, exact=False)
  # The per-environment return filter is split over devices.
  np.testing.assert_allclose(np.concatenate(list(sharded_r.returns.ret)), single_r.returns.ret,
                             rtol=1e-5)
  # An ensemble of RNDs: each member reduces across devices as RND alone does.
  ens = rjx.rewards.ensemble(rnd, n=2)
  e0 = ens.init(key, batch)
  single_e, _ = jax.jit(ens.update)(e0, batch, key)
  local = e0.members.returns._replace(ret=e0.members.returns.ret[:, :batch.reward.shape[1] // D])
  sharded_e, _ = sharded_update(ens, e0._replace(members=e0.members._replace(returns=local)))
  # (vmapped over members, the reductions sum in another order: a looser atol)
  for got, want in zip(jax.tree.leaves(sharded_e.members.predictor_params),
                       jax.tree.leaves(single_e.members.predictor_params)):
    for d in range(D):
      np.testing.assert_allclose(got[d], want, rtol=2e-5, atol=2e-5)
  same_on_devices(sharded_e.members.returns.moments, single_e.members.returns.moments,
                  exact=False)
  print("reward statistics: sharded == single device")


def check_sharded_ppo():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = ppo.PPOConfig(total_timesteps=32_768, num_envs=8, num_steps=64, num_minibatches=2,
                      lr=1e-3)
  single = jax.jit(ppo.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  train = ppo.make_train(cfg, env, params, mesh=sharding.make_mesh(D))
  out = jax.jit(train)(jax.random.PRNGKey(0))
  for k, v in single.metrics.items():
    assert out.metrics[k].shape == v.shape, (k, out.metrics[k].shape, v.shape)
  # Parameters stay replicated: every device holds the same copy.
  for leaf in jax.tree.leaves(out.runner_state.params):
    assert leaf.shape[0] == D
    for d in range(1, D):
      np.testing.assert_array_equal(leaf[d], leaf[0])
  assert out.runner_state.obs.shape == (D, cfg.num_envs // D, 4)
  # Learning: both runs improve on their first updates by a wide margin.
  for name, o in (("single", single), ("sharded", out)):
    ret = np.asarray(o.metrics["episode_return"])
    first, last = np.nanmean(ret[:10]), np.nanmean(ret[-10:])
    print(f"{name}: first 10 updates {first:.1f}, last 10 {last:.1f}")
    assert last > 2 * first and last > 60, (name, first, last)
  # With vmapped seeds (and a traced sweep) on top of the mesh.
  # (traced only: a compile would double this test's time)
  grid = jax.eval_shape(jax.vmap(jax.vmap(train, (0, None)), (None, 0)),
                        jax.random.split(jax.random.PRNGKey(1), 2),
                        {"lr": jnp.asarray([5e-4, 1e-3])})
  assert grid.metrics["episode_return"].shape == (2, 2, cfg.num_updates)
  assert jax.tree.leaves(grid.runner_state.params)[0].shape[:3] == (2, 2, D)
  print("sharded PPO: ok")


def check_sharded_pqn():
  env, params = rjx.envs.make("CartPole-v1")
  # A constant rate and ε floor 0.05: the learning bar below is for 80k steps at them.
  cfg = pqn.PQNConfig(total_timesteps=80_000, hidden_sizes=(64, 64), lr=3e-4, anneal_lr=False,
                      eps_end=0.05)
  single = jax.jit(pqn.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  train = pqn.make_train(cfg, env, params, mesh=sharding.make_mesh(D))
  out = jax.jit(train)(jax.random.PRNGKey(0))
  for k, v in single.metrics.items():
    assert out.metrics[k].shape == v.shape, (k, out.metrics[k].shape, v.shape)
  theta = np.asarray(out.runner_state.theta)
  assert theta.shape == (D,) + single.runner_state.theta.shape
  for d in range(1, D):
    np.testing.assert_array_equal(theta[d], theta[0])
  assert out.runner_state.obs.shape == (D, cfg.num_envs // D, 4)
  # Learning: from random play (~20) to well above it, on one device and on four.
  for name, o in (("single", single), ("sharded", out)):
    ret = np.asarray(o.metrics["episode_return"])
    first, last = np.nanmean(ret[:5]), np.nanmean(ret[-5:])
    print(f"PQN {name}: first 5 updates {first:.1f}, last 5 {last:.1f}")
    assert last > 2 * first and last > 50, (name, first, last)
    assert not np.asarray(o.metrics["nonfinite"]).any()
  print("sharded PQN: ok")


def check_sharded_dqn():
  """Replay split per device: each device's buffer holds its own environments' data."""
  env, params = rjx.envs.make("CartPole-v1")
  cfg = dqn.DQNConfig(total_timesteps=128, num_envs=8, num_steps=4, num_gradient_steps=2,
                      minibatch_size=16, buffer_size=128, learning_starts=32,
                      target_update_interval=32, hidden_sizes=(16,))
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.count_bonus(beta=0.1), episodic=False))
  single = jax.jit(dqn.make_train(cfg, env, params, rewards))(jax.random.PRNGKey(0))
  train = dqn.make_train(cfg, env, params, rewards, mesh=sharding.make_mesh(D))
  out = jax.jit(train)(jax.random.PRNGKey(0))
  for k, v in single.metrics.items():
    assert out.metrics[k].shape == v.shape, (k, out.metrics[k].shape, v.shape)
  rs = out.runner_state
  assert np.isfinite(np.asarray(out.metrics["loss"])[-1])      # it learned from replay
  counts = rs.reward_state["novelty"].counts            # the novelty channel's table
  for leaf in (rs.theta, rs.target_theta, counts):
    leaf = np.asarray(leaf)
    for d in range(1, D):
      np.testing.assert_array_equal(leaf[d], leaf[0])             # replicated
  # The count table saw every device's transitions: as many as one device's run.
  assert int(counts[0].sum()) == int(single.runner_state.reward_state["novelty"].counts.sum()) == \
      cfg.total_timesteps
  # Each device's buffer: its num_envs / D columns, all of the same length of time ...
  obs = np.asarray(rs.buffer_state.experience.obs)
  single_obs = np.asarray(single.runner_state.buffer_state.experience.obs)
  assert obs.shape == (D, cfg.num_envs // D) + single_obs.shape[1:], (obs.shape, single_obs.shape)
  # ... filled with its own environments' (different) observations, which are
  # exactly what its environments were last at.
  t = int(np.asarray(rs.buffer_state.current_index)[0])
  assert t == cfg.num_updates * cfg.num_steps % single_obs.shape[1]
  for d in range(1, D):
    assert not np.array_equal(obs[d], obs[0])
  print("sharded DQN: ok")


def same_metrics(sharded, single, what, rtol=1e-5, atol=1e-5):
  """Every metric of a sharded run equals the single-device run's (NaNs in the same places)."""
  assert sharded.metrics.keys() == single.metrics.keys(), what
  for k, v in single.metrics.items():
    np.testing.assert_allclose(np.asarray(sharded.metrics[k], np.float64),
                               np.asarray(v, np.float64), rtol=rtol, atol=atol,
                               err_msg=f"{what}: {k}")


def _chain_channels():
  return rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic(), coef=2.0),
      novelty=rjx.rewards.channel(rjx.rewards.count_bonus(beta=0.5), coef=0.5, gamma=0.9,
                                  episodic=False,
                                  transforms=[rjx.rewards.normalize_by_return_std(0.9)]))


def check_sharded_equals_single_device():
  """Sharded runs compute the single-device run's numbers, where randomness cannot differ.

  Each device draws its own keys (``sharding.device_key``), so runs agree number
  for number only where no draw matters: a deterministic chain (no random
  resets or dynamics), one whole-batch minibatch (no shuffling into different
  minibatches) and actions that do not depend on keys: PQN greedy (ε = 0),
  PPO and DQN with a single action. Counts, return-std statistics, episode
  statistics, losses and parameters must then match within float tolerance.
  """
  mesh = sharding.make_mesh(D)
  key = jax.random.PRNGKey(0)
  ev = dict(eval_every=2, eval_episodes=8, eval_max_steps=8, eval_goal_return=0.5)
  runs = {
      "PPO": (ppo, ppo.PPOConfig(total_timesteps=8 * 12 * 6, num_envs=8, num_steps=12,
                                 num_minibatches=1, update_epochs=2, hidden_sizes=(16,),
                                 lr=1e-2, **ev),
              Chain(length=4, num_actions=1)),
      "PQN": (pqn, pqn.PQNConfig(total_timesteps=8 * 12 * 8, num_envs=8, num_steps=12,
                                 num_minibatches=1, update_epochs=2, hidden_sizes=(16,),
                                 lr=1e-2, eps_start=0.0, eps_end=0.0, **ev), Chain(length=4)),
      # One action from a start one step from the end: every transition is the same,
      # so each device's replay samples what one device's would.
      "DQN": (dqn, dqn.DQNConfig(total_timesteps=8 * 4 * 8, num_envs=8, num_steps=4,
                                 num_gradient_steps=2, minibatch_size=16, buffer_size=128,
                                 learning_starts=32, target_update_interval=32,
                                 hidden_sizes=(16,), lr=1e-2, **ev),
              Chain(length=2, num_actions=1)),
  }
  for name, (agent, cfg, env) in runs.items():
    # (DQN's replay samples rewards of different times: a count bonus, which
    # decays with time, would make samples differ.)
    channels = _chain_channels() if name != "DQN" else rjx.rewards.combine(
        extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic(), coef=2.0))
    single = jax.jit(agent.make_train(cfg, env, None, channels))(key)
    sharded = jax.jit(agent.make_train(cfg, env, None, channels, mesh=mesh))(key)
    same_metrics(sharded, single, name)
    params = lambda o: (o.runner_state.params if name == "PPO" else o.runner_state.theta)
    for got, want in zip(jax.tree.leaves(params(sharded)), jax.tree.leaves(params(single))):
      np.testing.assert_allclose(np.asarray(got)[0], want, rtol=1e-4, atol=1e-6)
    if name != "DQN":
      counts = lambda o: o.runner_state.reward_state["novelty"].module.counts
      np.testing.assert_array_equal(np.asarray(counts(sharded))[0], counts(single))
    assert float(np.asarray(single.metrics["num_episodes"]).sum()) > 0, name
    assert np.isfinite(np.asarray(sharded.metrics["eval/return"])[1:]).all(), name
    print(f"sharded {name} == single device")


def check_intrinsic_zoo():
  """E3B (per-environment C⁻¹, an encoder trained by averaged gradients, as every
  learned part here is: ``embeddings.train_steps``) and RE3 (kNN within each
  environment, and with ``neighbours="batch"`` over every device's batch), sharded
  over environments: rewards and learned parameters as
  on one device (full-batch training, so no subset depends on the device)."""
  from rewardjax.rewards import e3b, re3  # noqa: E402
  mesh = sharding.make_mesh(D)
  env, params = rjx.envs.make("CartPole-v1")
  batch = rollouts.random_rollout(env, params, jax.random.PRNGKey(0), 16, 8)   # [16, 8]
  key = jax.random.PRNGKey(1)
  full = dict(num_actions=2, update_proportion=1.0, num_grad_steps=2)
  modules = {"e3b": e3b(**full), "re3": re3(k=3), "re3 batch": re3(k=3, neighbours="batch")}
  for name, module in modules.items():
    def run(b, k, module=module):
      r, state, _ = module.reward_and_update(module.init(k, b), b, k)
      return (r, state), ()
    (single_r, single_s), _ = jax.jit(run)(batch, key)
    (sharded_r, sharded_s), _ = jax.jit(sharding.shard(run, mesh, (True, False)))(
        split_envs(batch), key)
    np.testing.assert_allclose(sharded_r, split_envs(single_r), rtol=2e-4, atol=1e-6,
                               err_msg=name)
    # Adam divides near-zero gradients by their root: float noise shows.
    for got, want in zip(jax.tree.leaves(sharded_s.embed_params),
                         jax.tree.leaves(single_s.embed_params)):
      for d in range(D):
        np.testing.assert_allclose(got[d], want, rtol=1e-4, atol=2e-5, err_msg=name)
  print("intrinsic zoo: sharded == single device")


def check_sharded_gru():
  """Recurrent PPO sharded over environments computes the single-device numbers
  (as ``check_sharded_equals_single_device``: a deterministic chain, one action,
  one whole-batch minibatch per device's share)."""
  mesh = sharding.make_mesh(D)
  key = jax.random.PRNGKey(0)
  cfg = ppo.PPOConfig(network="gru", total_timesteps=8 * 12 * 4, num_envs=8, num_steps=12,
                      num_minibatches=1, update_epochs=2, rnn_hidden=8, head_hidden=8,
                      prev_action_embedding=4, lr=1e-2, eval_every=2, eval_episodes=8,
                      eval_max_steps=8, eval_goal_return=0.5)
  env = Chain(length=4, num_actions=1)
  single = jax.jit(ppo.make_train(cfg, env, None, _chain_channels()))(key)
  sharded = jax.jit(ppo.make_train(cfg, env, None, _chain_channels(), mesh=mesh))(key)
  same_metrics(sharded, single, "PPO-GRU")
  for got, want in zip(jax.tree.leaves(sharded.runner_state.params),
                       jax.tree.leaves(single.runner_state.params)):
    np.testing.assert_allclose(np.asarray(got)[0], want, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
      np.concatenate(list(np.asarray(sharded.runner_state.memory.h))),
      single.runner_state.memory.h, rtol=1e-4, atol=1e-6)
  assert np.isfinite(np.asarray(sharded.metrics["eval/return"])[1:]).all()
  print("sharded PPO-GRU == single device")


if __name__ == "__main__":
  for name in sys.argv[1:]:
    globals()[name]()

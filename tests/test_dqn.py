"""DQN / Double DQN: config validation, the per-channel loss, reward modules, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rewardjax as rjx
from rewardjax import value_mapping as vm
from rewardjax.agents import dqn
from rewardjax.nets import QNetwork


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1e-3}, "lr"),
    ({"gamma": 1.5}, "gamma"),
    ({"tau": 0.0}, "tau"),
    ({"n_step": 0}, "n_step"),
    ({"loss": "l1"}, "loss"),
    ({"value_mapping": ("sqrt",)}, "value mapping"),
    ({"eps_end": 1.5}, "eps_end"),
    ({"num_envs": 2.5}, "num_envs"),
    ({"buffer_size": 16}, "buffer_size"),
    ({"total_timesteps": 20_000, "learning_starts": 20_000}, "learning_starts"),
    ({"total_timesteps": 10}, "total_timesteps"),
])
def test_config_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    dqn.DQNConfig(**kwargs)


def test_ddqn_config_and_frozen():
  assert dqn.DDQNConfig().double_dqn and not dqn.DQNConfig().double_dqn
  with pytest.raises(Exception):
    dqn.DQNConfig().lr = 1.0


def test_value_mapping_count_checked_against_channels():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = dqn.DQNConfig(total_timesteps=2048, learning_starts=0, value_mapping=("log", "identity"))
  with pytest.raises(ValueError, match="one per reward channel"):
    dqn.make_train(cfg, env, params)


def test_continuous_actions_rejected():
  env, params = rjx.envs.make("Pendulum-v1")
  with pytest.raises(ValueError, match="discrete"):
    dqn.make_train(dqn.DQNConfig(), env, params)


def _batch(key, b=32, n=1, obs_dim=4, num_actions=2, channels=1):
  ks = jax.random.split(key, 6)
  return dqn.Stored(
      obs=jax.random.normal(ks[0], (b, n, obs_dim)),
      action=jax.random.randint(ks[1], (b, n), 0, num_actions),
      reward=jax.random.normal(ks[2], (b, n, channels)),
      next_obs=jax.random.normal(ks[3], (b, n, obs_dim)),
      terminated=jax.random.bernoulli(ks[4], 0.2, (b, n)),
      truncated=jax.random.bernoulli(ks[5], 0.2, (b, n)))


def _plain_dqn_loss(apply, params, target_params, batch, gamma, double):
  """Textbook one-step (Double) DQN with Huber loss, written out independently."""
  q = apply(params, batch.obs[:, 0])[..., 0]
  q_a = q[jnp.arange(q.shape[0]), batch.action[:, 0]]
  q_next_t = apply(target_params, batch.next_obs[:, 0])[..., 0]
  if double:
    a_star = jnp.argmax(apply(jax.lax.stop_gradient(params), batch.next_obs[:, 0])[..., 0], -1)
    v = q_next_t[jnp.arange(q.shape[0]), a_star]
  else:
    v = q_next_t.max(-1)
  y = jax.lax.stop_gradient(batch.reward[:, 0, 0] + gamma * (1.0 - batch.terminated[:, 0]) * v)
  return optax.huber_loss(q_a, y).mean()


@pytest.mark.parametrize("double", [False, True])
def test_one_channel_identity_equals_plain_dqn_loss(double):
  net = QNetwork(num_actions=3, num_channels=1, hidden_sizes=(16,))
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  batch = _batch(k3, num_actions=3)
  params, target_params = net.init(k1, batch.obs[:, 0]), net.init(k2, batch.obs[:, 0])

  def ours(p):
    return dqn.q_loss(net.apply, p, target_params, batch, coefs=(1.0,), gammas=(0.9,),
                      episodic=(True,), mappings=vm.per_channel("identity", 1),
                      double_dqn=double, loss="huber")[0]

  def plain(p):
    return _plain_dqn_loss(net.apply, p, target_params, batch, 0.9, double)

  np.testing.assert_allclose(jax.jit(ours)(params), jax.jit(plain)(params), rtol=1e-6)
  # Gradients agree too (target values are constants in both).
  g_ours = jax.jit(jax.grad(ours))(params)
  g_plain = jax.jit(jax.grad(plain))(params)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_log_mapping_loss_regresses_mapped_heads_onto_mapped_targets():
  net = QNetwork(num_actions=2, num_channels=1, hidden_sizes=(16,))
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  batch = _batch(k2)
  params = net.init(k1, batch.obs[:, 0])
  log = vm.logarithmic()
  ours, _ = dqn.q_loss(net.apply, params, params, batch, coefs=(1.0,), gammas=(0.9,),
                       episodic=(True,), mappings=(log,), double_dqn=False, loss="mse")
  q_mapped = net.apply(params, batch.obs[:, 0])[..., 0]
  q_a = q_mapped[jnp.arange(32), batch.action[:, 0]]
  v = log.inverse(net.apply(params, batch.next_obs[:, 0])[..., 0]).max(-1)
  y = batch.reward[:, 0, 0] + 0.9 * (1.0 - batch.terminated[:, 0]) * v
  np.testing.assert_allclose(ours, (0.5 * (q_a - log.forward(y))**2).mean(), rtol=1e-5)


def test_two_channels_sum_of_per_channel_losses():
  """Channels are separate regressions: the loss is the sum of one-channel losses."""
  net2 = QNetwork(num_actions=2, num_channels=2, hidden_sizes=(16,))
  k1, k2 = jax.random.split(jax.random.PRNGKey(2))
  batch = _batch(k2, n=3, channels=2)
  params = net2.init(k1, batch.obs[:, 0])
  kw = dict(gammas=(0.9, 0.5), episodic=(True, False), double_dqn=False, loss="huber",
            mappings=vm.per_channel("identity", 2))
  total, _ = dqn.q_loss(net2.apply, params, params, batch, coefs=(1.0, 0.0), **kw)

  # With coef 0 on channel 1 the greedy action is channel 0's; check channel 0 alone.
  def head(c):
    return lambda p, x: net2.apply(p, x)[..., c:c + 1]
  b0 = batch._replace(reward=batch.reward[..., :1])
  b1 = batch._replace(reward=batch.reward[..., 1:])
  l0, _ = dqn.q_loss(head(0), params, params, b0, coefs=(1.0,), gammas=(0.9,),
                     episodic=(True,), mappings=vm.per_channel("identity", 1),
                     double_dqn=False)
  assert float(total) > float(l0)   # channel 1 adds a non-negative, here positive, loss
  # Channel 1 bootstraps at channel 0's greedy action, not its own max: rebuild it.
  q_next = net2.apply(params, batch.next_obs.reshape(-1, 4)).reshape(32, 3, 2, 2)
  a_star = jnp.argmax(q_next[..., 0], -1)
  v1 = jnp.take_along_axis(q_next[..., 1], a_star[..., None], -1)[..., 0]     # [B, n]
  g = batch.reward[:, 2, 1] + 0.5 * v1[:, 2]
  g = batch.reward[:, 1, 1] + 0.5 * g
  g = batch.reward[:, 0, 1] + 0.5 * g                                         # non-episodic
  q1 = net2.apply(params, batch.obs[:, 0])[jnp.arange(32), batch.action[:, 0], 1]
  np.testing.assert_allclose(float(total) - float(l0), optax.huber_loss(q1, g).mean(),
                             rtol=1e-4)


def test_counts_plug_in_and_metrics():
  env, params = rjx.envs.make("DeepSea-bsuite", size=6)
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()),
      novelty=rjx.rewards.intrinsic_channel(rjx.rewards.count_bonus()))
  cfg = dqn.DQNConfig(total_timesteps=1024, num_envs=4, num_steps=8, learning_starts=256,
                      minibatch_size=16, buffer_size=1024, hidden_sizes=(16,), n_step=3,
                      double_dqn=True, value_mapping=("identity", "log"))
  out = jax.jit(dqn.make_train(cfg, env, params, rewards))(jax.random.PRNGKey(0))
  m = out.metrics
  n = cfg.num_updates
  for k in ("episode_return", "env_steps", "update", "reward/extrinsic", "reward/novelty",
            "loss", "epsilon", "nonfinite"):
    assert m[k].shape == (n,), k
  assert not bool(m["nonfinite"].any())
  assert float(m["reward/novelty"].sum()) > 0
  # No learning before learning_starts, then finite losses.
  loss = np.asarray(m["loss"])
  steps = np.asarray(m["env_steps"])
  assert np.isnan(loss[steps < 256]).all() and np.isfinite(loss[steps >= 256]).all()
  # ε follows the linear schedule.
  eps = np.asarray(m["epsilon"])
  assert eps[0] == 1.0 and np.all(np.diff(eps) <= 0) and eps[-1] == pytest.approx(0.01)
  # The counts saw every collected transition exactly once.
  counts = out.runner_state.reward_state["novelty"].module.counts      # [1 row, table]
  assert int(counts.sum()) == n * cfg.batch_size


def test_dqn_learns_cartpole_small_budget():
  env, params = rjx.envs.make("CartPole-v1")
  cfg = dqn.DDQNConfig(total_timesteps=40_000, learning_starts=5_000, hidden_sizes=(64, 64))
  out = jax.jit(dqn.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  ret = np.asarray(out.metrics["episode_return"])
  # A random policy scores ~22; the first 5k steps are random.
  assert np.nanmean(ret[:100]) < 40
  assert np.nanmean(ret[-100:]) > 100, np.nanmean(ret[-100:])


def test_q_loss_hand_computed_n_step_targets_with_coefficients():
  """Two 2-step sequences through a lookup-table Q, every target worked out by hand.

  Channel 0: episodic, γ = .5; channel 1: non-episodic, γ = .9; coefficients (1, 2).
  Sequence 0 runs through states 0 → 1 → 2; sequence 1 starts in state 3 and is
  truncated after its first step (true final observation: state 1).
  """
  q_on, q_tg = np.zeros((5, 2, 2), np.float32), np.zeros((5, 2, 2), np.float32)
  q_on[0, 1] = [1.0, 1.0]          # Q(s0, a=1): the taken value of sequence 0
  q_on[3, 0] = [2.0, -1.0]         # Q(s3, a=0): the taken value of sequence 1
  q_on[2] = [[5.0, 0.0], [0.0, 0.0]]   # online prefers a=0 in state 2
  q_on[1] = [[4.0, 0.0], [0.0, 0.0]]   # and in state 1
  # Target net, state 2: Σ coef·q = 1.5 for a=0, 2 for a=1 -> a* = 1 (weights 1, 1
  # would pick a=0). State 1: 2 for a=0, 7 for a=1 -> a* = 1.
  q_tg[2] = [[1.5, 0.0], [0.0, 1.0]]
  q_tg[1] = [[2.0, 0.0], [1.0, 3.0]]
  apply_fn = lambda params, obs: params[obs[..., 0].astype(jnp.int32)]
  batch = dqn.Stored(
      obs=jnp.array([[[0.0], [1.0]], [[3.0], [4.0]]]),
      action=jnp.array([[1, 0], [0, 1]]),
      reward=jnp.array([[[1.0, 0.5], [2.0, -1.0]], [[1.0, 0.5], [2.0, -1.0]]]),
      next_obs=jnp.array([[[1.0], [2.0]], [[1.0], [2.0]]]),
      terminated=jnp.zeros((2, 2), bool),
      truncated=jnp.array([[False, False], [True, False]]))
  kw = dict(coefs=(1.0, 2.0), gammas=(0.5, 0.9), episodic=(True, False), loss="mse",
            mappings=vm.per_channel("identity", 2))
  q_taken = np.array([[1.0, 1.0], [2.0, -1.0]])
  targets = {
      # DQN, v(s2) = Q_tg(s2, 1) = [0, 1], v(s1) = Q_tg(s1, 1) = [1, 3]:
      # seq 0: [1 + .5·(2 + .5·0), .5 + .9·(−1 + .9·1)] = [2, .41]
      # seq 1: channel 0 stops at the truncation: 1 + .5·1 = 1.5; channel 1 runs on: .41
      False: [[2.0, 0.41], [1.5, 0.41]],
      # Double DQN, the online net selects a=0 in states 1 and 2:
      # v(s2) = [1.5, 0], v(s1) = [2, 0];
      # seq 0: [1 + .5·(2 + .75), .5 + .9·(−1)] = [2.375, −.4]; seq 1: [1 + .5·2, −.4] = [2, −.4]
      True: [[2.375, -0.4], [2.0, -0.4]],
  }
  for double, g in targets.items():
    loss, metrics = dqn.q_loss(apply_fn, jnp.asarray(q_on), jnp.asarray(q_tg), batch,
                               double_dqn=double, **kw)
    want = (0.5 * (q_taken - np.array(g))**2).sum(1).mean()
    np.testing.assert_allclose(loss, want, rtol=1e-6, err_msg=f"double_dqn={double}")
    np.testing.assert_allclose(metrics["q_mean"], q_taken.mean(), rtol=1e-6)

"""Tests for the return model and the attention_redistribution reward module."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
import rewardjax.envs
from rewardjax import cli, spec
from rewardjax.envs import rollouts
from rewardjax.agents.ppo import TrainOutput
from rewardjax.agents.registry import AgentSpec
from rewardjax.rewards.attention import Episodes, attention_redistribution, predict_returns
from rewardjax.types import Transition

# ---------------------------------------------------------------- a synthetic credit task
# Episodes of H steps, aligned across N environments. At step K a cue c ∈ {−1, +1}
# is shown; the return is +1 if the action at step K matches the cue (a = 1 iff
# c = +1) and −1 otherwise, plus noise rewards of ±NOISE at every other step. The
# later observations carry no trace of the cue or of the decisive action, only
# random distractor features. The reward is delayed: the episode's sum is paid at
# its last step.
H, K, NOISE = 10, 1, 0.2
NUM_ACTIONS = 2


def synthetic_rollout(key, num_episodes: int, num_envs: int):
  """``[num_episodes·H, num_envs]`` aligned rollout of the synthetic task, and its returns."""
  k_cue, k_act, k_noise, k_feat = jax.random.split(key, 4)
  e, n = num_episodes, num_envs
  cue = jnp.where(jax.random.bernoulli(k_cue, 0.5, (e, n)), 1.0, -1.0)
  action = jax.random.randint(k_act, (e, H, n), 0, NUM_ACTIONS)
  noise = NOISE * jnp.where(jax.random.bernoulli(k_noise, 0.5, (e, H, n)), 1.0, -1.0)
  noise = noise.at[:, K].set(0.0)
  correct = (action[:, K] == (cue > 0)).astype(jnp.float32)
  ret = 2.0 * correct - 1.0 + noise.sum(1)                          # [E, N]
  t = jnp.arange(H)[None, :, None]
  feats = jax.random.normal(k_feat, (e, H, n, 2))
  obs = jnp.concatenate([
      jnp.where(t == K, cue[:, None, :], 0.0)[..., None],
      jnp.broadcast_to(t / H, (e, H, n))[..., None].astype(jnp.float32),
      feats], axis=-1)                                               # [E, H, N, 4]
  last = jnp.broadcast_to(t == H - 1, (e, H, n))
  reward = jnp.where(last, ret[:, None, :], 0.0)
  flat = lambda x: x.reshape((e * H, n) + x.shape[3:])
  tr = Transition(flat(obs), flat(action), flat(reward), flat(obs), flat(last),
                  jnp.zeros((e * H, n), bool))
  return tr, ret


def _module(**kw):
  defaults = dict(max_len=H, num_actions=NUM_ACTIONS, width=32, num_heads=1,
                  buffer_size=512, episodes_per_update=64, batch_size=64, train_steps=4,
                  learning_rate=3e-3)
  return attention_redistribution(**{**defaults, **kw})


@pytest.fixture(scope="module", params=[False, True], ids=["last-step", "every-step"])
def trained(request):
  """A module trained on 150 batches of 4 episodes × 16 environments of the task,
  with the return loss at the last step only, or at every step's prefix."""
  module = _module(train_every_step=request.param)
  num_updates, episodes_per_batch, num_envs = 150, 4, 16

  @jax.jit
  def run(key):
    k_init, k_data, k_upd = jax.random.split(key, 3)
    example, _ = synthetic_rollout(k_init, episodes_per_batch, num_envs)
    state = module.init(k_init, example)

    def body(state, keys):
      batch, _ = synthetic_rollout(keys[0], episodes_per_batch, num_envs)
      state, metrics = module.update(state, batch, keys[1])
      return state, metrics["model_loss"]

    keys = jax.random.split(k_data, 2 * num_updates).reshape(num_updates, 2, 2)
    return jax.lax.scan(body, state, keys)

  state, losses = run(jax.random.PRNGKey(0))
  return module, state, np.asarray(losses)


def _windows(tr: Transition, num_envs: int) -> Episodes:
  """Aligned episodes of an aligned rollout as ``[E·N, H]`` windows."""
  def to_windows(x):
    x = x.reshape((-1, H, num_envs) + x.shape[2:])
    x = jnp.swapaxes(x, 1, 2)
    return x.reshape((-1, H) + x.shape[3:])
  steps = jnp.broadcast_to(jnp.arange(H, dtype=jnp.int32), (tr.reward.size // H, H))
  return Episodes(to_windows(tr.obs), to_windows(tr.action), steps,
                  jnp.ones(steps.shape, bool))


def test_return_model_predicts_held_out_returns(trained):
  _, state, losses = trained
  assert losses[-10:].mean() < 0.5 * losses[:10].mean()
  tr, ret = synthetic_rollout(jax.random.PRNGKey(123), 16, 16)        # held out
  pred, _ = predict_returns(state, _windows(tr, 16), max_len=H, num_actions=NUM_ACTIONS,
                            width=32, num_heads=1)
  true = np.asarray(jnp.swapaxes(ret, 0, 1)).reshape(-1)
  pred = np.asarray(pred).reshape(16, 16).T.reshape(-1)
  # The noise rewards are unpredictable: the best possible correlation is
  # 1/sqrt(1 + Var(noise)) = 1/sqrt(1 + 9·0.04) ≈ 0.86.
  corr = np.corrcoef(pred, true)[0, 1]
  assert corr > 0.7, corr


def test_attention_concentrates_on_the_decisive_step(trained):
  _, state, _ = trained
  tr, _ = synthetic_rollout(jax.random.PRNGKey(7), 16, 16)
  _, attn = predict_returns(state, _windows(tr, 16), max_len=H, num_actions=NUM_ACTIONS,
                            width=32, num_heads=1)
  attn = np.asarray(attn)
  np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)
  # Uniform attention would give 1/H = 0.1 to the decisive step.
  assert attn[:, K].mean() > 0.5, attn.mean(0)
  assert np.argmax(attn.mean(0)) == K


def test_module_rewards_credit_the_decisive_step(trained):
  module, state, _ = trained
  tr, ret = synthetic_rollout(jax.random.PRNGKey(9), 4, 16)
  r = np.asarray(jax.jit(module.reward)(state, tr)).reshape(4, H, 16)
  ret = np.asarray(ret)
  np.testing.assert_allclose(r.sum(1), ret, rtol=1e-5, atol=1e-5)
  # Most of each return lands on step K: r_K has the sign of the return.
  share = (r[:, K] * np.sign(ret)).sum() / np.abs(ret).sum()
  assert share > 0.5, share


# ---------------------------------------------------------------- conservation


def _consecutive_batches(env_id, key, num_batches, t, n, delayed):
  env, params = rjx.envs.make(env_id)
  if delayed:
    env = rjx.envs.DelayedReward(env)
  long = jax.jit(rollouts.random_rollout, static_argnums=(0, 3, 4))(
      env, params, key, num_batches * t, n)
  return long, [jax.tree.map(lambda x: x[i * t:(i + 1) * t], long) for i in range(num_batches)]


@pytest.mark.parametrize("kw, delayed", [
    (dict(), False),
    (dict(beta=0.5, target="prediction"), True),
    (dict(target="prediction", residual="last", train_every_step=True), True),
    (dict(max_len=8), False),        # episodes longer than the window
    (dict(uniform=True), True),
])
def test_module_conserves_each_finished_episode_return(kw, delayed):
  t, n = 16, 3
  long, batches = _consecutive_batches("CartPole-v1", jax.random.PRNGKey(3), 6, t, n, delayed)
  module = attention_redistribution(**{**dict(max_len=40, num_actions=2, width=16,
                                               buffer_size=32, episodes_per_update=8,
                                               batch_size=8), **kw})

  @jax.jit
  def run(stacked):
    def body(state, xs):
      b, key = xs
      r = module.reward(state, b)
      state, metrics = module.update(state, b, key)
      return state, (r, metrics.get("model_loss", jnp.zeros(())))  # uniform: no model
    state = module.init(jax.random.PRNGKey(0), batches[0])
    return jax.lax.scan(body, state, (stacked, jax.random.split(jax.random.PRNGKey(1), 6)))

  state, (r, loss) = run(jax.tree.map(lambda *x: jnp.stack(x), *batches))
  assert r.shape == (6,) + batches[0].reward.shape and r.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(loss)))
  r = np.asarray(r).reshape(long.reward.shape)
  raw = np.asarray(long.reward)
  done = np.asarray(long.terminated | long.truncated)
  checked = 0
  for e in range(n):
    acc_r = acc_raw = 0.0
    for s in range(len(raw)):
      acc_r += r[s, e]
      acc_raw += raw[s, e]
      if done[s, e]:
        np.testing.assert_allclose(acc_r, acc_raw, rtol=1e-5, atol=1e-4)
        acc_r = acc_raw = 0.0
        checked += 1
    # An unfinished episode has not been paid anything yet.
    assert acc_r == 0.0
    # ... and its reward so far is carried in the state.
    np.testing.assert_allclose(float(state.prefix_return[e]), acc_raw, atol=1e-4)
  assert checked >= 2 * n


def test_credit_crosses_batch_boundaries_to_the_first_step():
  # One environment; an episode of 6 steps split 4 + 2 over two batches: its
  # credit for the first 4 steps is paid at the first step of the second batch.
  def batch(rewards, dones):
    t = len(rewards)
    z = jnp.zeros((t, 1, 2))
    return Transition(z, jnp.zeros((t, 1), jnp.int32), jnp.asarray(rewards, jnp.float32)[:, None],
                      z, jnp.asarray(dones)[:, None], jnp.zeros((t, 1), bool))
  b1 = batch([1.0, 1.0, 1.0, 1.0], [False] * 4)
  b2 = batch([1.0, 1.0], [False, True])
  module = attention_redistribution(max_len=8, num_actions=2, width=8, buffer_size=4,
                                    episodes_per_update=2, batch_size=2)
  init, reward, update = (jax.jit(f) for f in (module.init, module.reward, module.update))
  state = init(jax.random.PRNGKey(0), b1)
  np.testing.assert_array_equal(reward(state, b1), 0.0)
  state, _ = update(state, b1, jax.random.PRNGKey(1))
  assert int(state.prefix_length[0]) == 4 and float(state.prefix_return[0]) == 4.0
  r = np.asarray(reward(state, b2))[:, 0]
  assert r.sum() == pytest.approx(6.0, rel=1e-6)
  # Identical observations and actions: attention is uniform up to the step
  # embeddings, so steps 0..3 (paid at r[0]) get the bulk.
  assert r[0] > r[1] and r[0] > 6.0 * 3 / 6
  state, _ = update(state, b2, jax.random.PRNGKey(2))
  assert int(state.prefix_length[0]) == 0 and int(state.buffer_count) == 1
  np.testing.assert_array_equal(np.asarray(state.buffer.valid[0]), [0, 0, 1, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(np.asarray(state.buffer.step[0])[2:], np.arange(6))
  assert float(state.buffer_return[0]) == 6.0


def test_uniform_residual_moves_the_prediction_error_off_the_last_step():
  # Same model state, the two residual placements: per episode of H steps the
  # difference is c/H at every step minus c at the last, c = R − R̂.
  tr, ret = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)
  last = _module(target="prediction", residual="last", width=8)
  even = _module(target="prediction", residual="uniform", width=8)
  state = last.init(jax.random.PRNGKey(0), tr)
  state, _ = jax.jit(last.update)(state, tr, jax.random.PRNGKey(1))   # R̂ ≠ mean
  r_last = np.asarray(jax.jit(last.reward)(state, tr)).reshape(2, H, 4)
  r_even = np.asarray(jax.jit(even.reward)(state, tr)).reshape(2, H, 4)
  ret = np.asarray(ret)
  np.testing.assert_allclose(r_last.sum(1), ret, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(r_even.sum(1), ret, rtol=1e-5, atol=1e-5)
  d = r_even - r_last
  c_over_h = d[:, :1]                                                  # [2, 1, 4]
  assert np.abs(c_over_h).max() > 1e-3                                 # a real residual
  np.testing.assert_allclose(d[:, :-1], np.broadcast_to(c_over_h, d[:, :-1].shape), atol=1e-5)
  np.testing.assert_allclose(d[:, -1], c_over_h[:, 0] * (1 - H), rtol=1e-4, atol=1e-5)


def test_differences_pay_each_step_the_change_in_the_prefix_prediction():
  from rewardjax.return_model import ReturnModel
  tr, ret = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)
  module = _module(target="differences", residual="last", width=8, train_every_step=True)
  state = module.init(jax.random.PRNGKey(0), tr)
  state, _ = jax.jit(module.update)(state, tr, jax.random.PRNGKey(1))
  r = np.asarray(jax.jit(module.reward)(state, tr)).reshape(2, H, 4)
  np.testing.assert_allclose(r.sum(1), np.asarray(ret), rtol=1e-5, atol=1e-5)
  # By hand: the model's causal prediction after each step of each episode.
  win = _windows(tr, 4)                                             # [2·4, H], episode-major
  model = ReturnModel(max_len=H, num_actions=NUM_ACTIONS, width=8)
  causal = jnp.broadcast_to(jnp.tril(jnp.ones((H, H), bool)), (win.step.shape[0], H, H))
  pred, _ = model.apply(state.params, win.obs, win.action, win.step, causal,
                        method=ReturnModel.all_queries)
  returns = np.asarray(state.buffer_return[:int(state.buffer_count)])
  p = np.asarray(pred) * max(returns.std(), 1e-3) + returns.mean()  # [8, H] return units
  p = p.reshape(2, 4, H).transpose(0, 2, 1)                         # [2, H, 4]
  expected = np.diff(p, axis=1, prepend=0.0)
  expected[:, -1] += np.asarray(ret) - p[:, -1]                     # residual at the last step
  np.testing.assert_allclose(r, expected, rtol=1e-4, atol=1e-4)


def test_warmup_pays_uniform_credit_until_the_model_has_seen_enough_episodes():
  tr, ret = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)          # 8 episodes per batch
  module = _module(target="prediction", width=8, warmup_episodes=16)
  uniform = np.asarray(jnp.repeat(ret / H, H, axis=0))
  state = module.init(jax.random.PRNGKey(0), tr)
  update, reward = jax.jit(module.update), jax.jit(module.reward)
  for i, seen in enumerate((8, 16)):
    np.testing.assert_allclose(reward(state, tr), uniform, rtol=1e-5)
    state, _ = update(state, tr, jax.random.PRNGKey(i))
    assert int(state.episodes_seen) == seen
  r = np.asarray(reward(state, tr))
  assert not np.allclose(r, uniform, atol=1e-3)                     # the model's credit now
  np.testing.assert_allclose(r.reshape(2, H, 4).sum(1), ret, rtol=1e-5, atol=1e-5)


def test_beta_zero_pays_the_return_at_the_last_step():
  tr, ret = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)
  module = _module(beta=0.0, width=8)
  r = jax.jit(lambda k: module.reward(module.init(k, tr), tr))(jax.random.PRNGKey(0))
  np.testing.assert_allclose(r, tr.reward, atol=1e-6)


def test_uniform_pays_return_over_length_per_step():
  tr, ret = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)
  expected = jnp.repeat(ret / H, H, axis=0)                       # [2·H, 4]
  # No model, so integer actions need no num_actions.
  for module in (_module(uniform=True, width=8), attention_redistribution(max_len=H, uniform=True)):
    r = jax.jit(lambda k: module.reward(module.init(k, tr), tr))(jax.random.PRNGKey(0))
    np.testing.assert_allclose(r, expected, rtol=1e-5)


def test_jit_and_vmap_over_seeds():
  tr, _ = synthetic_rollout(jax.random.PRNGKey(0), 2, 4)
  module = _module(width=16, num_heads=1, train_steps=1)

  def run(key):
    state = module.init(key, tr)
    r = module.reward(state, tr)
    state, metrics = module.update(state, tr, key)
    return r, module.reward(state, tr), metrics["model_loss"]

  r0, r1, loss = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(1), 3))
  assert r0.shape == (3,) + tr.reward.shape and loss.shape == (3,)
  # Each seed conserves each episode's return.
  np.testing.assert_allclose(r1.sum(1), jnp.broadcast_to(tr.reward.sum(0), (3, 4)), rtol=1e-5)
  # Different seeds, different models, different credit.
  assert not np.allclose(r1[0], r1[1])


def test_bad_arguments_are_clear_errors():
  with pytest.raises(ValueError, match="beta"):
    attention_redistribution(beta=1.5)
  with pytest.raises(ValueError, match="target"):
    attention_redistribution(target="sum")
  with pytest.raises(ValueError, match="residual"):
    attention_redistribution(target="prediction", residual="first")
  with pytest.raises(ValueError, match="train_every_step"):
    attention_redistribution(train_every_step="yes")
  with pytest.raises(ValueError, match="warmup_episodes"):
    attention_redistribution(warmup_episodes=-1)
  with pytest.raises(ValueError, match="max_len"):
    attention_redistribution(max_len=0)
  with pytest.raises(ValueError, match="divisible"):
    attention_redistribution(width=30, num_heads=4)
  with pytest.raises(ValueError, match="buffer_size"):
    attention_redistribution(buffer_size=8, episodes_per_update=16)
  tr, _ = synthetic_rollout(jax.random.PRNGKey(0), 1, 2)
  with pytest.raises(ValueError, match="num_actions"):
    attention_redistribution(max_len=H).init(jax.random.PRNGKey(0), tr)
  flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tr)
  with pytest.raises(ValueError, match=r"\[T, N\]"):
    _module().init(jax.random.PRNGKey(0), flat)


# ---------------------------------------------------------------- spec and CLI


def test_spec_builds_attention_with_the_env_action_count_and_limit():
  env, params = rjx.envs.make("UmbrellaChain-bsuite")
  channels = spec.parse_rewards("attention@beta=0.5,width=16", env_id="UmbrellaChain-bsuite",
                                env=env, env_params=params, gamma=0.99)
  assert channels.names == ("attention",)
  tr = rollouts.random_rollout(env, params, jax.random.PRNGKey(0), 8, 2)
  state, r = jax.jit(lambda k: (lambda s: (s, channels.reward(s, tr)))(channels.init(k, tr)))(
      jax.random.PRNGKey(0))
  assert state["attention"].prefix.obs.shape[1] == params.max_steps_in_episode
  assert r.shape == (8, 2, 1)
  with pytest.raises(ValueError, match="unknown option 'bta'"):
    spec.parse_rewards("attention@bta=0.5", env_id="CartPole-v1", env=env, env_params=params,
                       gamma=0.99)


@dataclasses.dataclass(frozen=True)
class _Config:
  total_timesteps: int = 256
  gamma: float = 0.99
  batch_size = 128
  num_updates = property(lambda self: self.total_timesteps // self.batch_size)


def test_cli_delay_rewards_wraps_the_env(monkeypatch, tmp_path):
  seen = {}

  def make_train(config, env, env_params, rewards=None, callback=None):
    seen["env"], seen["rewards"] = env, rewards

    def train(key):
      u = jnp.arange(1, config.num_updates + 1)
      return TrainOutput(None, {"update": u, "env_steps": u * 128,
                                "episode_return": u.astype(jnp.float32) + key[-1] * 0,
                                "num_episodes": u, "nonfinite": u < 0})
    return train

  monkeypatch.setitem(cli.AGENTS, "fake", AgentSpec("fake", _Config, make_train))
  rc = cli.main(["train", "--agent", "fake", "--delay-rewards", "--rewards", "attention",
                 "--seeds", "1", "--total-timesteps", "256", "--no-progress",
                 "--out", str(tmp_path / "o")])
  assert rc == 0
  assert isinstance(seen["env"], rjx.envs.DelayedReward)
  assert seen["rewards"].names == ("attention",)
  rc = cli.main(["train", "--agent", "fake", "--seeds", "1", "--total-timesteps", "256",
                 "--no-progress", "--out", str(tmp_path / "p")])
  assert rc == 0 and not isinstance(seen["env"], rjx.envs.DelayedReward)

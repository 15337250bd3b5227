"""Craftax adapter (``make("craftax/<id>")``) and environment episode metrics.

One Craftax-Classic step and reset are compiled once for the module (about
30 s on a 2-core CPU); every test reuses them with other parameters (traced, so
no recompile). The generic episode-metrics path is tested on a toy environment.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import episodes
from rewardjax.agents import dqn, ppo, pqn
from rewardjax.envs import craftax_adapter

from _toy_envs import Chain

pytest.importorskip("craftax")

CLASSIC = "craftax/Craftax-Classic-Symbolic-v1"
NOOP, DO = 0, 5                        # Craftax-Classic's actions


@pytest.fixture(scope="module")
def classic():
  env, params = rjx.envs.make(CLASSIC, max_timesteps=3)
  return env, params, jax.jit(env.reset), jax.jit(env.step)


def test_make_builds_every_id_with_its_spaces():
  shapes = {}
  for name in craftax_adapter.CRAFTAX_IDS:
    env, params = rjx.envs.make("craftax/" + name)
    shapes[name] = env.observation_space(params).shape
    assert env.action_space(params).n == (17 if "Classic" in name else 43)
    assert "craftax/" + name in rjx.envs.registered_ids()
  assert len(shapes["Craftax-Classic-Symbolic-v1"]) == 1
  assert len(shapes["Craftax-Symbolic-v1"]) == 1
  assert shapes["Craftax-Classic-Pixels-v1"][-1] == shapes["Craftax-Pixels-v1"][-1] == 3
  assert rjx.envs.make(CLASSIC)[1].max_timesteps == 10_000        # Craftax's own default
  with pytest.raises(ValueError, match=r"unknown Craftax environment.*Did you mean: "
                                       r"craftax/Craftax-Classic-Symbolic-v1"):
    rjx.envs.make("craftax/Craftax-Clasic-Symbolic-v1")
  with pytest.raises(ValueError, match="max_timesteps must be a positive integer"):
    rjx.envs.make(CLASSIC, max_timesteps=0)
  with pytest.raises(ValueError, match=r"unknown keyword arguments \['max_steps'\]"):
    rjx.envs.make(CLASSIC, max_steps=5)


def test_missing_craftax_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "craftax", None)       # import craftax -> ImportError
  monkeypatch.setitem(sys.modules, "craftax.craftax_env", None)
  with pytest.raises(ImportError, match=r'craftax/Craftax-Symbolic-v1 needs .*'
                                        r'pip install "rewardjax\[craftax\]"'):
    rjx.envs.make("craftax/Craftax-Symbolic-v1")


def test_time_limit_truncates_keeps_the_final_observation_and_resets(classic):
  env, params, reset, step = classic
  _, state = reset(jax.random.PRNGKey(0), params)
  flags = []
  for t in range(3):
    key = jax.random.PRNGKey(100 + t)
    obs, nxt, _, terminated, truncated, info = step(key, state, NOOP, params)
    flags.append((bool(terminated), bool(truncated)))
    if t < 2:
      # The adapter returns the same array twice; XLA may compute it once per output
      # fusion, which without LLVM optimisation (tests/conftest.py) can round the
      # last bit differently.
      np.testing.assert_allclose(obs, info["final_observation"], rtol=1e-6, atol=0)
      state = nxt
  assert flags == [(False, False), (False, False), (False, True)]
  # The final observation is what the same step shows without a time limit.
  obs_free, state_free, *_ = step(key, state, NOOP, params.replace(max_timesteps=100))
  np.testing.assert_array_equal(info["final_observation"], obs_free)
  assert int(state_free.timestep) == 3
  # The returned observation belongs to a new episode in a newly generated world.
  assert int(nxt.timestep) == 0
  np.testing.assert_array_equal(obs, env.craftax_env.get_obs(nxt))
  assert not np.array_equal(obs, obs_free)
  assert not np.array_equal(nxt.map, state.map)


def test_death_terminates_and_is_never_truncated(classic):
  _, params, reset, step = classic
  _, state = reset(jax.random.PRNGKey(1), params)
  # (Edits keep the state's dtypes and weak types, so the compiled step is reused.)
  dying = state.replace(player_health=state.player_health * 0)
  _, nxt, _, terminated, truncated, info = step(jax.random.PRNGKey(2), dying, NOOP, params)
  assert bool(terminated) and not bool(truncated)
  assert float(info["discount"]) == 0.0 and int(nxt.timestep) == 0
  # Dying on the step that reaches the time limit: terminated only.
  last = dying.replace(timestep=dying.timestep * 0 + params.max_timesteps - 1)
  _, _, _, terminated, truncated, _ = step(jax.random.PRNGKey(2), last, NOOP, params)
  assert bool(terminated) and not bool(truncated)
  # Alive, far from the limit: neither.
  _, _, _, terminated, truncated, _ = step(jax.random.PRNGKey(2), state, NOOP, params)
  assert not bool(terminated) and not bool(truncated)


def test_resets_with_different_keys_generate_different_worlds(classic):
  _, params, reset, _ = classic
  (obs_a, a), (obs_b, b) = reset(jax.random.PRNGKey(3), params), reset(jax.random.PRNGKey(4), params)
  assert not np.array_equal(a.map, b.map) and not np.array_equal(obs_a, obs_b)
  np.testing.assert_array_equal(reset(jax.random.PRNGKey(3), params)[1].map, a.map)


def _tree_in_front(state):
  """``state`` with a tree on the block the player faces, and no mob on it."""
  from craftax.craftax_classic.constants import DIRECTIONS, BlockType  # pylint: disable=g-import-not-at-top
  x, y = np.asarray(state.player_position) + np.asarray(DIRECTIONS[int(state.player_direction)])
  return state.replace(map=state.map.at[x, y].set(BlockType.TREE.value),
                       mob_map=state.mob_map.at[x, y].set(False))


def test_achievement_metrics_equal_a_hand_count(classic):
  """Env 0 collects wood, env 1 idles; both episodes hit the 3-step limit."""
  env, params, reset, step = classic
  names = env.achievement_names
  states = [_tree_in_front(reset(jax.random.PRNGKey(5), params)[1]),
            reset(jax.random.PRNGKey(6), params)[1]]
  actions = [(DO, NOOP, NOOP), (NOOP, NOOP, NOOP)]
  rewards, dones, metrics = np.zeros((3, 2)), np.zeros((3, 2), bool), []
  for t in range(3):
    row = []
    for n in range(2):
      _, states[n], r, term, trunc, info = step(jax.random.PRNGKey(10 * t + n), states[n],
                                                actions[n][t], params)
      rewards[t, n], dones[t, n] = r, term | trunc
      row.append(info["episode_metrics"])
    metrics.append(row)
  assert dones.tolist() == [[False, False], [False, False], [True, True]]
  assert rewards[0, 0] == 1.0                       # the first wood pays 1
  metrics_t = {k: jnp.asarray([[m[n][k] for n in range(2)] for m in metrics]) for k in metrics[0][0]}
  state, out = episodes.track(episodes.init(2, tuple(metrics_t)), jnp.asarray(rewards),
                              jnp.asarray(dones), metrics_t)
  # By hand: 1 of 2 episodes collected wood (50 %), nothing else; the score is
  # the mean over episodes of 100 × (unlocked / 22), each Classic achievement weighing 1.
  assert len(names) == 22
  assert float(out["achievements/collect_wood"]) == 50.0
  for name in names:
    if name != "collect_wood":
      assert float(out[f"achievements/{name}"]) == 0.0, name
  np.testing.assert_allclose(float(out["craftax/score"]), (100.0 / 22 + 0.0) / 2, rtol=1e-6)
  assert float(out["episode_return"]) == 0.5
  np.testing.assert_array_equal(state.last_metrics["achievements/collect_wood"], [100.0, 0.0])


def test_craftax_score_weights_achievements_by_their_reward():
  names, weights = craftax_adapter.achievement_weights("Craftax-Symbolic-v1")
  assert len(names) == 67 and float(weights.sum()) == 226.0   # the paper's maximum return
  from craftax.craftax.constants import Achievement  # pylint: disable=g-import-not-at-top
  a = np.zeros(67, bool)                               # indexed by Craftax's enum values
  for unlocked in (Achievement.COLLECT_WOOD, Achievement.COLLECT_SAPPHIRE,
                   Achievement.ENTER_FIRE_REALM):
    a[unlocked.value] = True
  out = craftax_adapter.episode_metrics(jnp.asarray(a), names, weights)
  # Rewards 1 (basic), 3 (intermediate) and 8 (very advanced) out of 226.
  np.testing.assert_allclose(float(out["craftax/score"]), 100.0 * (1 + 3 + 8) / 226.0, rtol=1e-6)
  on = sorted(k for k, v in out.items() if k.startswith("achievements/") and float(v) == 100.0)
  assert on == ["achievements/collect_sapphire", "achievements/collect_wood",
                "achievements/enter_fire_realm"]


# ----------------------------------------------- the generic episode-metrics path


class CountedChain(Chain):
  """``Chain`` (always right, 3 steps per episode) reporting the episode's index
  (0, 1, 2 … per environment) as the episode metric ``index`` when it ends."""

  def reset(self, key, params=None):
    obs, state = super().reset(key, params)
    return obs, (state, jnp.int32(0))

  def step(self, key, state, action, params=None):
    inner, index = state
    obs, inner, r, term, trunc, info = super().step(key, inner, action, params)
    done = term | trunc
    info = dict(info, episode_metrics={"index": index.astype(jnp.float32)})
    return obs, (inner, index + done.astype(jnp.int32)), r, term, trunc, info


TINY_AGENTS = {
    "ppo": (ppo, dict(update_epochs=1, num_minibatches=1)),
    "dqn": (dqn, dict(learning_starts=0, minibatch_size=4, buffer_size=64, hidden_sizes=(8,),
                      target_update_interval=4)),
    "pqn": (pqn, dict(update_epochs=1, num_minibatches=1, hidden_sizes=(8,))),
    "ppo-gru": (ppo, dict(update_epochs=1, num_minibatches=1, network="gru", rnn_hidden=8,
                          head_hidden=8)),
}


@pytest.mark.parametrize("agent", sorted(TINY_AGENTS))
def test_agents_average_env_episode_metrics_over_the_episodes_that_ended(agent):
  module, kwargs = TINY_AGENTS[agent]
  config_cls = {"ppo": ppo.PPOConfig, "dqn": dqn.DQNConfig, "pqn": pqn.PQNConfig,
                "ppo-gru": ppo.PPOConfig}[agent]
  env = CountedChain(length=4, num_actions=1, max_steps=10)   # every episode: 3 steps
  config = config_cls(num_envs=2, num_steps=2, total_timesteps=20, **kwargs)
  out = jax.jit(module.make_train(config, env, None))(jax.random.PRNGKey(0))
  got = np.asarray(out.metrics["index"])
  # Episodes end at steps 3, 6, 9 (indices 0, 1, 2) in both environments.
  # Updates cover steps 1–2, 3–4, 5–6, 7–8, 9–10: none ended yet (NaN), index 0,
  # index 1, none (the last one held: 1), index 2.
  np.testing.assert_array_equal(np.isnan(got), [True, False, False, False, False])
  np.testing.assert_array_equal(got[1:], [0.0, 1.0, 1.0, 2.0])
  np.testing.assert_array_equal(out.metrics["num_episodes"], [0, 2, 2, 0, 2])
  assert "index" not in jax.eval_shape(module.make_train(config, Chain(), None),
                                      jax.random.PRNGKey(0)).metrics


def test_episode_metrics_average_over_envs_and_hold_when_none_ended():
  state = episodes.init(3, ("m",))
  done = jnp.asarray([[True, False, False], [False, False, True]])
  m = jnp.asarray([[4.0, 9.0, 9.0], [9.0, 9.0, 1.0]])          # 9: read nowhere (no episode end)
  state, out = episodes.track(state, jnp.zeros((2, 3)), done, {"m": m})
  assert float(out["m"]) == (4.0 + 1.0) / 2
  state, out = episodes.track(state, jnp.zeros((2, 3)), jnp.zeros((2, 3), bool),
                              {"m": jnp.full((2, 3), 7.0)})
  assert float(out["m"]) == (4.0 + 1.0) / 2                  # envs 0 and 2's last episodes
  with pytest.raises(ValueError, match="differ from those the episode state was initialised"):
    episodes.track(state, jnp.zeros((2, 3)), done, {"other": m})
  with pytest.raises(ValueError, match=r"\['episode_return'\] would replace"):
    episodes.init(3, ("episode_return",))


@pytest.mark.slow
def test_ppo_on_craftax_classic_reports_achievements_and_score():
  """Tiny PPO run: 4-step episodes, so every update ends one episode per env."""
  env, params = rjx.envs.make(CLASSIC, max_timesteps=4)
  config = ppo.PPOConfig(num_envs=2, num_steps=4, total_timesteps=16, update_epochs=1,
                         num_minibatches=1)
  out = jax.jit(ppo.make_train(config, env, params))(jax.random.PRNGKey(0))
  m = {k: np.asarray(v) for k, v in out.metrics.items()}
  rates = np.stack([m[f"achievements/{n}"] for n in env.achievement_names])    # [22, updates]
  assert rates.shape == (22, 2) and np.all(np.isfinite(rates))
  assert np.all((rates >= 0) & (rates <= 100))
  # Classic weighs every achievement 1: the score is the mean success rate.
  np.testing.assert_allclose(m["craftax/score"], rates.mean(0), rtol=1e-5)
  assert np.all(m["num_episodes"] == 2)

"""xminigrid adapter (``make("xminigrid/<id>")``): the gymnax-1.0 contract on gridworlds."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax.envs import rollouts
from rewardjax.envs import xminigrid_adapter

xminigrid = pytest.importorskip("xminigrid")

FORWARD, TURN_RIGHT = 0, 1


def _run(env, params, actions, key=0, num_envs=1):
  """Steps ``num_envs`` copies through ``actions`` [T] (one action for all); a dict of [T, N]."""
  actions = jnp.asarray(actions, jnp.int32)

  @jax.jit
  def run(actions):
    obs, state = rollouts.reset_batch(env, params, jax.random.PRNGKey(key), num_envs)

    def body(carry, xs):
      obs, state = carry
      k, a = xs
      obs2, state, r, term, trunc, info = rollouts.step_batch(
          env, params, k, state, jnp.full((num_envs,), a))
      return (obs2, state), dict(obs=obs, next=obs2, reward=r, term=term, trunc=trunc,
                                 final=info["final_observation"], step_num=state.state.step_num)

    keys = jax.random.split(jax.random.PRNGKey(key + 1), actions.shape[0])
    return jax.lax.scan(body, (obs, state), (keys, actions))[1]

  return {k: np.asarray(v) for k, v in run(actions).items()}


def test_every_xminigrid_id_is_listed_and_the_list_matches_xminigrid():
  assert set(xminigrid_adapter.XMINIGRID_ENVS) == set(xminigrid.registered_environments())
  ids = rjx.envs.registered_ids()
  for name in xminigrid.registered_environments():
    assert "xminigrid/" + name in ids


@pytest.mark.parametrize("name,view", [("MiniGrid-DoorKey-8x8", 7), ("MiniGrid-MemoryS8", 3),
                                       ("XLand-MiniGrid-R1-9x9", 5)])
def test_spaces_and_reset(name, view):
  env, params = rjx.envs.make("xminigrid/" + name)
  obs_space, act_space = env.observation_space(params), env.action_space(params)
  assert isinstance(obs_space, spaces.Box) and obs_space.shape == (view, view, 2)
  assert obs_space.dtype == jnp.uint8
  assert isinstance(act_space, spaces.Discrete) and act_space.n == 6
  obs, _ = env.reset(jax.random.PRNGKey(0), params)
  assert obs.shape == (view, view, 2) and obs.dtype == jnp.uint8
  assert bool(obs_space.contains(obs))
  # channel 0 holds tile ids (< 13), channel 1 colour ids (< 12)
  np.testing.assert_array_equal(np.asarray(obs_space.high)[0, 0], [12, 11])


def test_xland_gets_the_documented_default_ruleset():
  _, params = rjx.envs.make("xminigrid/XLand-MiniGrid-R1-9x9")
  ball = [3, 5]                                  # Tiles.BALL, Colors.YELLOW
  np.testing.assert_array_equal(np.asarray(params.ruleset.init_tiles), [ball])
  np.testing.assert_array_equal(np.asarray(params.ruleset.goal), [1, *ball, 0, 0])  # AgentHoldGoal


def test_forced_step_limit_truncates_and_keeps_the_final_observation():
  env, params = rjx.envs.make("xminigrid/MiniGrid-Empty-5x5", max_steps=3)
  assert params.max_steps_in_episode == 3
  # Turning in place never reaches the goal: every episode is cut at 3 steps.
  out = _run(env, params, [TURN_RIGHT] * 9, num_envs=2)
  t = np.arange(9)[:, None].repeat(2, 1)
  assert not out["term"].any()
  np.testing.assert_array_equal(out["trunc"], (t + 1) % 3 == 0)
  np.testing.assert_array_equal(out["step_num"], (t + 1) % 3)
  np.testing.assert_array_equal(out["reward"], 0.0)
  cut = out["trunc"]
  np.testing.assert_array_equal(out["final"][~cut], out["next"][~cut])
  # The final view is the third right turn from the start (facing up); the returned
  # one is the start again (facing right): they differ.
  assert not np.array_equal(out["final"][cut], out["next"][cut])
  np.testing.assert_array_equal(out["next"][cut], np.broadcast_to(out["obs"][0, 0],
                                                                  out["next"][cut].shape))


def test_reaching_the_goal_terminates_with_xminigrids_reward():
  # Empty-5x5: the agent starts at (1, 1) facing right, the goal is at (3, 3).
  env, params = rjx.envs.make("xminigrid/MiniGrid-Empty-5x5")
  actions = [FORWARD, FORWARD, TURN_RIGHT, FORWARD, FORWARD, FORWARD]
  out = _run(env, params, actions)
  np.testing.assert_array_equal(out["term"][:, 0], [0, 0, 0, 0, 1, 0])
  assert not out["trunc"].any()
  np.testing.assert_allclose(out["reward"][:, 0], [0, 0, 0, 0, 1 - 0.9 * 5 / 100, 0], rtol=1e-6)
  # The final observation shows the goal under the agent (centre bottom of its view:
  # row 6, column 3); the returned one is a fresh start, equal to the first.
  assert list(out["final"][4, 0, 6, 3]) == [6, 2]      # Tiles.GOAL, Colors.GREEN
  np.testing.assert_array_equal(out["next"][4, 0], out["obs"][0, 0])
  assert out["step_num"][4, 0] == 0


def test_truncation_is_never_set_on_a_terminal_step():
  env, params = rjx.envs.make("xminigrid/MiniGrid-Empty-5x5", max_steps=5)
  out = _run(env, params, [FORWARD, FORWARD, TURN_RIGHT, FORWARD, FORWARD])
  assert out["term"][4, 0] and not out["trunc"][4, 0]


@pytest.mark.parametrize("name", ["MiniGrid-DoorKey-8x8", "MiniGrid-FourRooms"])
def test_auto_reset_rerandomises_the_layout(name):
  env, params = rjx.envs.make("xminigrid/" + name, max_steps=1)
  # Every step truncates, so each returned observation comes from a fresh reset with
  # that step's key: the layouts (full grids) are not all the same.

  @jax.jit
  def grids(key):
    _, state = env.reset(key, params)
    state = env.step(jax.random.fold_in(key, 1), state, 2, params)[1]
    return state.state.grid
  out_grids = [np.asarray(grids(jax.random.PRNGKey(k))) for k in range(4)]
  assert any(not np.array_equal(out_grids[0], g) for g in out_grids[1:])
  a, _ = env.reset(jax.random.PRNGKey(0), params)
  b, _ = env.reset(jax.random.PRNGKey(0), params)
  np.testing.assert_array_equal(a, b)           # same key, same layout


def test_bad_ids_and_kwargs_are_named():
  with pytest.raises(ValueError, match=r"unknown xminigrid environment .*Did you mean: "
                                       r"xminigrid/MiniGrid-DoorKey-8x8"):
    rjx.envs.make("xminigrid/MiniGrid-DoorKey-8x9")
  with pytest.raises(ValueError, match="max_steps must be a positive integer"):
    rjx.envs.make("xminigrid/MiniGrid-Empty-5x5", max_steps=0)
  with pytest.raises(ValueError, match="ruleset= applies to XLand"):
    rjx.envs.make("xminigrid/MiniGrid-Empty-5x5", ruleset=xminigrid_adapter.default_ruleset())


def test_missing_xminigrid_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "xminigrid", None)      # import xminigrid -> ImportError
  with pytest.raises(ImportError, match=r'xminigrid/MiniGrid-Empty-5x5 needs .*'
                                        r'pip install "rewardjax\[minigrid\]"'):
    rjx.envs.make("xminigrid/MiniGrid-Empty-5x5")

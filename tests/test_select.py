"""``select`` (AIRS): the bandit's bookkeeping by hand, and what it pays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.rewards.select import select, ucb_choice
from rewardjax.types import Transition, stateless


def _batch(extrinsic, ends=True, truncated=False):
  """[T, N] = [4, 2]: reward `extrinsic` at every step; with `ends`, each env's
  episode ends at the last step (terminated, or truncated), returning 4·extrinsic."""
  r = jnp.full((4, 2), extrinsic, jnp.float32)
  z = jnp.zeros((4, 2, 1))
  f = jnp.zeros((4, 2), bool)
  done = f.at[-1].set(ends)
  return Transition(z, jnp.zeros((4, 2), jnp.int32), r, z, done & (not truncated),
                    done & truncated)


def _constant(value):
  return stateless(lambda b: jnp.full(b.reward.shape, value, jnp.float32))


def test_ucb_choice_by_hand():
  # An arm never pulled comes first, the lowest index among several.
  assert ucb_choice(jnp.asarray([5.0, 0.0, 0.0]), jnp.asarray([3.0, 0.0, 0.0]), 1.0) == 1
  # n = 4: bonuses c·√(ln 4 / n_k) = √(ln 4 / 3) ≈ 0.680 and √(ln 4) ≈ 1.177.
  values, pulls = jnp.asarray([0.5, 0.1]), jnp.asarray([3.0, 1.0])
  assert ucb_choice(values, pulls, 1.0) == 1                 # 1.180 < 1.277
  assert ucb_choice(values, pulls, 0.0) == 0                 # greedy


def test_select_windows_payoffs_and_choices_by_hand():
  module = select({"a": _constant(10.0), "b": _constant(20.0), "none": None}, every=2, c=0.5)
  rates = [1.0, 1.0, 3.0, 3.0, 2.0, 2.0, 7.0, 7.0, 0.0, 0.0]   # extrinsic reward per step
  state = module.init(jax.random.PRNGKey(0), _batch(0.0))
  step = jax.jit(module.reward_and_update)
  paid, arms = [], []
  for i, rate in enumerate(rates):     # every batch ends 2 episodes of return 4·rate
    r, state, metrics = step(state, _batch(rate, truncated=i % 3 == 0), jax.random.PRNGKey(i))
    paid.append(float(r[0, 0]))
    arms.append(int(metrics["select/arm"]))
  # Window 1 (updates 1-2) has no predecessor: nothing credited, every arm untried,
  # so arm 0 again; then each untried arm in turn, credited with the change of the
  # mean episode return: arm 0: 12 − 4 = 8 (window 2); arm 1: 8 − 12 = −4 (window 3);
  # arm 2: 28 − 8 = 20 (window 4). Then UCB, c = 0.5, n = 3, every bonus
  # 0.5·√ln 3 ≈ 0.52: arm 2 (20.52) again, credited 0 − 28 = −28 (window 5), so its
  # value is (20 − 28) / 2 = −4.
  assert arms == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
  assert paid == [10.0, 10.0, 10.0, 10.0, 20.0, 20.0, 0.0, 0.0, 0.0, 0.0]
  np.testing.assert_allclose(state.pulls, [1.0, 1.0, 2.0])
  np.testing.assert_allclose(state.values, [8.0, -4.0, -4.0])
  # Next: n = 4; arm 0: 8 + 0.5·√ln 4 ≈ 8.59 beats −4 + 0.59 and −4 + 0.5·√(ln 4 / 2).
  assert int(state.arm) == 0
  np.testing.assert_allclose(float(state.previous_return), 0.0)


def test_select_pays_for_shorter_episodes_at_a_constant_reward_per_step():
  # MountainCar-like: −1 every step, so the reward per step never changes, but
  # episodes that end sooner have higher returns. A window stays open until an
  # episode has ended in it.
  module = select({"a": _constant(1.0), "b": _constant(2.0)}, every=1, c=0.0)
  state = module.init(jax.random.PRNGKey(0), _batch(-1.0))
  step = jax.jit(module.reward_and_update)
  ends = [True, False, True, True, False, False, False, True]
  # Episodes of 4, 8, 4 steps (returns −4, −8, −4), then one of 16 steps (−16).
  arms = []
  for i, e in enumerate(ends):
    _, state, metrics = step(state, _batch(-1.0, ends=e), jax.random.PRNGKey(i))
    arms.append(int(metrics["select/arm"]))
  # Windows end at updates 1, 3, 4 and 8. Window 2 (arm 0, untried first): −8 − (−4)
  # = −4; window 3 (arm 1, untried): −4 − (−8) = +4; then greedy (c = 0): arm 1,
  # credited −16 − (−4) = −12 in window 4, so its value is (4 − 12) / 2 = −4.
  assert arms == [0, 0, 0, 1, 1, 1, 1, 1]
  np.testing.assert_allclose(state.pulls, [1.0, 2.0])
  np.testing.assert_allclose(state.values, [-4.0, -4.0])
  np.testing.assert_allclose(float(state.previous_return), -16.0)
  with pytest.raises(ValueError, match=r"\[T, N\] rollouts"):
    module.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[0], _batch(-1.0)))


def test_select_keeps_every_candidate_learning_and_runs_in_ppo():
  env, params = rjx.envs.make("DeepSea-bsuite", size=5)
  module = select({"counts": rjx.rewards.count_bonus(), "rnd": rjx.rewards.rnd(),
                   "none": None}, every=2)
  from rewardjax.agents import ppo  # pylint: disable=g-import-not-at-top
  rewards = rjx.rewards.combine(extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()),
                                novelty=rjx.rewards.intrinsic_channel(module))
  config = ppo.PPOConfig(total_timesteps=12 * 512, num_envs=4)
  out = jax.jit(ppo.make_train(config, env, params, rewards))(jax.random.PRNGKey(0))
  m = jax.device_get(out.metrics)
  arms = m["rewards/novelty/select/arm"]
  assert set(np.unique(arms)) == {0.0, 1.0, 2.0}           # every arm was tried
  assert np.all(arms[:2] == 0)                             # windows of 2 updates
  counts = out.runner_state.reward_state["novelty"].module.candidates["counts"]
  assert int(np.sum(counts.counts)) == 12 * 512            # counted while not paid too


def test_select_refuses_bad_candidates():
  with pytest.raises(ValueError, match="at least two"):
    select({"a": _constant(1.0)})
  with pytest.raises(TypeError, match="not a RewardModule"):
    select({"a": _constant(1.0), "b": 3})
  with pytest.raises(ValueError, match="potential shaping"):
    select({"a": _constant(1.0), "b": rjx.rewards.potential_shaping(lambda o: o[0], 0.99)})


def test_select_spec_kind_builds_its_candidates_as_their_kinds_do():
  from rewardjax import spec  # pylint: disable=g-import-not-at-top
  env, params = rjx.envs.make("DeepSea-bsuite", size=5)
  channels = spec.parse_rewards("extrinsic+select:counts|rnd|none@every=3",
                                env_id="DeepSea-bsuite", env=env, env_params=params, gamma=0.99)
  assert channels.names == ("extrinsic", "select")
  assert channels.gammas[1] == 0.99 and not channels.episodic[1]
  batch = rjx.envs.rollouts.random_rollout(env, params, jax.random.PRNGKey(0), 4, 2)
  state = channels.init(jax.random.PRNGKey(0), batch)["select"]
  assert set(state.candidates) == {"counts", "rnd", "none"}
  # counts is normalised by its return std, as its kind is; rnd normalises itself.
  assert type(state.candidates["counts"]).__name__ == "TransformedState"
  with pytest.raises(ValueError, match="unknown select candidate 'potential'"):
    spec.parse_rewards("select:counts|potential", env_id="DeepSea-bsuite", env=env,
                       env_params=params, gamma=0.99)

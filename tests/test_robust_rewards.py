"""Reward-model ensembles, reward dithering (ReDit) and the centred bounded transform (PAR)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import spec
from rewardjax.envs import rollouts
from rewardjax.rewards.ensemble import reduce_members
from rewardjax.types import Transition


def _batch(t=16, n=8, seed=0):
  env, params = rjx.envs.make("CartPole-v1")
  return rollouts.random_rollout(env, params, jax.random.PRNGKey(seed), t, n)


def _member(states, i):
  return jax.tree.map(lambda x: x[i], states)


# --------------------------------------------------------------------------- ensemble


def test_ensemble_updates_each_member_as_alone_and_reduces_their_rewards():
  batch, key = _batch(8, 4), jax.random.PRNGKey(3)
  member = rjx.rewards.rnd(update_proportion=1.0)
  module = rjx.rewards.ensemble(lambda: member, n=3, reduce="mean")
  state = module.init(key, batch)
  r, new_state, metrics = jax.jit(module.reward_and_update)(state, batch, key)
  # Each member alone, on the batch, with the key the ensemble gives it.
  alone_fn = jax.jit(lambda s, k: rjx.types.reward_and_update(member, s, batch, k))
  keys = jax.random.split(key, 3)
  alone = [alone_fn(_member(state.members, i), keys[i]) for i in range(3)]
  rs = np.stack([np.asarray(a[0]) for a in alone])
  np.testing.assert_allclose(r, rs.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["ensemble_spread"], rs.std(0).mean(), rtol=1e-5)
  for i in range(3):        # each member's state moved as it does alone
    for got, ref in zip(jax.tree.leaves(_member(new_state.members, i)),
                        jax.tree.leaves(alone[i][1])):
      np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_ensemble_reward_is_the_stated_reduction_of_its_members():
  batch, key = _batch(8, 4), jax.random.PRNGKey(4)
  member = rjx.rewards.rnd()
  state = rjx.rewards.ensemble(member, n=3).init(key, batch)
  member_reward = jax.jit(member.reward)
  rs = np.stack([np.asarray(member_reward(_member(state.members, i), batch)) for i in range(3)])
  for reduce, want in (("mean", rs.mean(0)), ("min", rs.min(0)),
                       ("lcb", rs.mean(0) - 0.5 * rs.std(0))):
    module = rjx.rewards.ensemble(member, n=3, reduce=reduce, kappa=0.5)
    np.testing.assert_allclose(jax.jit(module.reward)(state, batch), want, rtol=1e-5, atol=1e-6)


def test_ensemble_members_are_independent_and_seeds_differ():
  batch = _batch(8, 4)
  module = rjx.rewards.ensemble(rjx.rewards.rnd(), n=2)
  state = module.init(jax.random.PRNGKey(0), batch)
  first, second = (_member(state.members, i).predictor_params for i in range(2))
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first),
                                                        jax.tree.leaves(second)))
  reward = jax.jit(rjx.rewards.rnd().reward)
  members = [reward(_member(state.members, i), batch) for i in range(2)]
  assert not np.allclose(members[0], members[1])
  # vmapped over seeds, one compiled call.
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  r = jax.jit(jax.vmap(lambda k: module.reward(module.init(k, batch), batch)))(keys)
  assert r.shape == (2,) + batch.reward.shape and not np.allclose(r[0], r[1])


def test_ensemble_refuses_bad_arguments():
  with pytest.raises(ValueError, match="reduce must be one of"):
    rjx.rewards.ensemble(rjx.rewards.rnd(), reduce="max")
  with pytest.raises(ValueError, match="n must be a positive integer"):
    rjx.rewards.ensemble(rjx.rewards.rnd(), n=0)
  with pytest.raises(TypeError, match="must return a RewardModule"):
    rjx.rewards.ensemble(lambda: 3)


def test_reduce_members_by_hand():
  r = jnp.asarray([[1.0, 4.0], [3.0, 0.0], [5.0, 2.0]])
  np.testing.assert_allclose(reduce_members(r, "mean", 2.0), [3.0, 2.0])
  np.testing.assert_allclose(reduce_members(r, "min", 2.0), [1.0, 0.0])
  std = np.sqrt([8 / 3, 8 / 3])
  np.testing.assert_allclose(reduce_members(r, "lcb", 2.0),
                             [3.0 - 2 * std[0], 2.0 - 2 * std[1]], rtol=1e-6)


# --------------------------------------------------------------------------- dither


def _sparse_batch(t=200, n=50):
  r = (np.arange(t * n).reshape(t, n) % 7 == 0).astype(np.float32)   # a sparse 0/1 reward
  z = np.zeros((t, n, 1), np.float32)
  f = np.zeros((t, n), bool)
  return Transition(z, np.zeros((t, n), np.int32), jnp.asarray(r), z, f, f)


@pytest.mark.parametrize("kind,std", [("gaussian", 0.3), ("uniform", 0.3 / np.sqrt(3))])
def test_dither_is_zero_mean_noise_of_the_stated_scale(kind, std):
  batch = _sparse_batch()
  module = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.dither(0.3, kind))
  state = module.init(jax.random.PRNGKey(0), batch)
  rs = []
  for i in range(4):
    r, state, _ = module.reward_and_update(state, batch, jax.random.PRNGKey(i))
    rs.append(np.asarray(r))
  noise = np.stack(rs) - np.asarray(batch.reward)
  # 40,000 draws: the mean is within 4 standard errors of 0, the std within 2 %.
  assert abs(noise.mean()) < 4 * std / np.sqrt(noise.size)
  np.testing.assert_allclose(noise.std(), std, rtol=0.02)
  if kind == "uniform":
    assert np.abs(noise).max() <= 0.3
  assert not np.allclose(rs[0], rs[1])          # fresh noise each batch


def test_dither_is_deterministic_per_seed_and_differs_across_seeds():
  batch = _sparse_batch(8, 4)
  module = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.dither(0.1))

  def run(seed):
    state = module.init(jax.random.PRNGKey(seed), batch)
    return [np.asarray(module.reward_and_update(state, batch, jax.random.PRNGKey(9))[0])
            for _ in range(1)]

  np.testing.assert_array_equal(run(0), run(0))
  assert not np.allclose(run(0), run(1))
  with pytest.raises(ValueError, match="kind must be"):
    rjx.rewards.dither(0.1, kind="laplace")


# --------------------------------------------------------------------------- PAR


def test_par_is_a_sigmoid_around_the_running_mean_or_a_given_reference():
  batch = _sparse_batch(10, 3)
  module = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.par(temperature=0.5))
  state = module.init(jax.random.PRNGKey(0), batch)
  seen = []
  for scale in (1.0, 3.0):
    b = batch._replace(reward=batch.reward * scale)
    r, state, _ = module.reward_and_update(state, b, jax.random.PRNGKey(0))
    seen.append(np.asarray(b.reward))
    mean = np.concatenate([x.ravel() for x in seen]).mean()   # this batch included
    np.testing.assert_allclose(r, 1 / (1 + np.exp(-(np.asarray(b.reward) - mean) / 0.5)),
                               rtol=1e-5)
  fixed = rjx.rewards.transform(rjx.rewards.extrinsic(), rjx.rewards.par(reference=0.25))
  r = fixed.reward(fixed.init(jax.random.PRNGKey(0), batch), batch)
  np.testing.assert_allclose(r, 1 / (1 + np.exp(-(np.asarray(batch.reward) - 0.25))), rtol=1e-6)
  assert np.all((r > 0) & (r < 1))


# --------------------------------------------------------------------------- spec


def test_spec_options_wrap_any_term():
  env, params = rjx.envs.make("DeepSea-bsuite", size=5)
  channels = spec.parse_rewards(
      "extrinsic@dither=0.05,par=0.5+rnd@ensemble=3,ensemble_reduce=lcb,ensemble_kappa=2",
      env_id="DeepSea-bsuite", env=env, env_params=params, gamma=0.99)
  batch = rollouts.random_rollout(env, params, jax.random.PRNGKey(0), 8, 4)
  state = channels.init(jax.random.PRNGKey(1), batch)
  assert jax.tree.leaves(state["rnd"].members)[0].shape[0] == 3
  # The extrinsic channel: dithered, then PAR around 0.5 (bounded in (0, 1)).
  r, _, _ = rjx.types.reward_and_update(channels, state, batch, jax.random.PRNGKey(2))
  assert r.shape == batch.reward.shape + (2,) and np.all((r[..., 0] > 0) & (r[..., 0] < 1))
  for bad, message in (("extrinsic@ensemble_reduce=min", "need ensemble=<n>"),
                       ("extrinsic@par=high", "option par"),
                       ("rnd@ensemble=2,ensemble_reduce=max", "reduce must be one of")):
    with pytest.raises(ValueError, match=message):
      spec.parse_rewards(bad, env_id="DeepSea-bsuite", env=env, env_params=params, gamma=0.99)

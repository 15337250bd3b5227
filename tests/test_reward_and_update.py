"""The fused reward_and_update path equals reward() then update() for every combinator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax import rewards as R
from rewardjax.rewards import channels
from rewardjax.envs import rollouts
from rewardjax.types import reward_and_update


def _rollout(env_id="CartPole-v1", steps=16, envs=4, seed=0, **kw):
  env, params = rjx.envs.make(env_id, **kw)
  return rollouts.random_rollout(env, params, jax.random.PRNGKey(seed), steps, envs)


def _two_calls(module, state, batch, key):
  r = module.reward(state, batch)
  state, metrics = module.update(state, batch, key)
  return r, state, metrics


def _assert_same(a, b):
  ra, sa, ma = a
  rb, sb, mb = b
  np.testing.assert_allclose(ra, rb, rtol=1e-6, atol=1e-7)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), sa, sb)
  assert set(ma) == set(mb)
  for k in ma:
    np.testing.assert_allclose(ma[k], mb[k], rtol=1e-6, atol=1e-7, err_msg=k)


CASES = {
    "counts_simhash": lambda: R.count_bonus(beta=0.5),
    "counts_exact_deepsea": lambda: R.count_bonus(beta=1.0),
    "counts_count_min": lambda: R.count_bonus(beta=0.5, table_size=64, num_hashes=3),
    "counts_episodic": lambda: R.count_bonus(beta=0.5, episodic=True),
    "intrinsic_channel_counts": lambda: R.combine(
        extrinsic=R.channel(R.extrinsic()),
        novelty=R.intrinsic_channel(R.count_bonus())),
    "add_with_counts": lambda: R.add(R.extrinsic(), R.count_bonus(beta=0.1)),
    "rnd_and_counts": lambda: R.combine(e=R.extrinsic(), rnd=R.rnd(), counts=R.count_bonus()),
    "normalize_rewards": lambda: channels.normalize_rewards(R.combine(
        e=R.channel(R.extrinsic(), gamma=0.99),
        c=R.channel(R.count_bonus(), gamma=0.99, episodic=False))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_equals_reward_then_update(name):
  batch = (_rollout("DeepSea-bsuite", size=6) if "deepsea" in name else _rollout())
  module = CASES[name]()
  assert getattr(module, "reward_and_update", None) is not None
  state = jax.jit(module.init)(jax.random.PRNGKey(1), batch)
  fused_fn = jax.jit(lambda s, b, k: reward_and_update(module, s, b, k))
  two_calls_fn = jax.jit(lambda s, b, k: _two_calls(module, s, b, k))
  for i in range(3):    # several batches, so later ones see earlier counts
    b = _rollout("DeepSea-bsuite", size=6, seed=i) if "deepsea" in name else _rollout(seed=i)
    key = jax.random.PRNGKey(10 + i)
    fused = fused_fn(state, b, key)
    _assert_same(fused, two_calls_fn(state, b, key))
    state = fused[1]


def test_modules_without_a_fused_path_fall_back_to_two_calls():
  batch = _rollout()
  module = R.extrinsic()
  assert module.reward_and_update is None
  state = module.init(jax.random.PRNGKey(0), batch)
  r, _, metrics = reward_and_update(module, state, batch, jax.random.PRNGKey(1))
  np.testing.assert_array_equal(r, batch.reward)
  assert metrics == {}

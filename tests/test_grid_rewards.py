"""Reward modules on xminigrid's integer grids ``uint8 [7, 7, 2]``: they accept them as they are."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.envs import rollouts
from rewardjax.types import reward_and_update

xminigrid = pytest.importorskip("xminigrid")
R = rjx.rewards
T, N = 6, 4


@pytest.fixture(scope="module")
def batch():
  env, params = rjx.envs.make("xminigrid/MiniGrid-DoorKey-5x5")
  tr = rollouts.random_rollout(env, params, jax.random.PRNGKey(0), T, N)
  assert tr.obs.dtype == jnp.uint8 and tr.obs.shape == (T, N, 7, 7, 2)
  return tr


MODULES = {
    "rnd": lambda: R.rnd(),
    "counts_simhash": lambda: R.count_bonus(key_fn="simhash"),
    "counts_auto": lambda: R.count_bonus(),
    "e3b": lambda: R.e3b(num_actions=6),
    "icm": lambda: R.icm(num_actions=6),
    "noveld": lambda: R.noveld(),
    "ride": lambda: R.ride(num_actions=6),
    "re3": lambda: R.re3(),
    "ngu": lambda: R.ngu(num_actions=6),
    "disagreement": lambda: R.disagreement(num_actions=6),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_accepts_uint8_grids(name, batch):
  module = MODULES[name]()
  state = module.init(jax.random.PRNGKey(1), batch)
  r, state, metrics = jax.jit(lambda s, b: reward_and_update(module, s, b, jax.random.PRNGKey(2))
                              )(state, batch)
  assert r.shape == (T, N) and r.dtype == jnp.float32
  assert np.isfinite(np.asarray(r)).all()
  for k, v in metrics.items():
    assert np.isfinite(np.asarray(v)).all(), k


def _counts(key_fn, batch):
  module = R.count_bonus(beta=1.0, key_fn=key_fn)
  state = module.init(jax.random.PRNGKey(1), batch)
  state, _ = module.update(state, batch, jax.random.PRNGKey(2))
  return np.asarray(module.reward(state, batch))


@pytest.mark.parametrize("key_fn", ["simhash", "auto"])
def test_counts_are_equal_for_identical_grids(key_fn, batch):
  # Every environment shows the same grid at every step: one key, so one bonus.
  same = jax.tree.map(lambda x: jnp.broadcast_to(x[:1, :1], x.shape), batch)
  r = _counts(key_fn, same)
  np.testing.assert_array_equal(r, np.full_like(r, r[0, 0]))
  # The uint8 grid is counted as the same grid in float32 would be.
  as_float = same._replace(obs=same.obs.astype(jnp.float32),
                           next_obs=same.next_obs.astype(jnp.float32))
  np.testing.assert_array_equal(r, _counts(key_fn, as_float))
  # Distinct grids in the random rollout get larger bonuses than the repeated one.
  assert _counts(key_fn, batch).max() > r.max()

"""Count bonuses: exact keys, SimHash, count-min sketch, episodic resets, ProgressCounts."""

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax.rewards import count_keys, counts
import importlib

# The package re-exports the factory under the module's name; fetch the module.
pc = importlib.import_module("rewardjax.rewards.progress_counts")
from rewardjax.types import Transition

KEY = jax.random.PRNGKey(0)


def _jit(module):
  """The module with jitted functions: one compile each instead of op-by-op dispatch."""
  return type(module)(module.init, jax.jit(module.reward), jax.jit(module.update))


def _batch(next_obs, terminated=None, truncated=None):
  """A transition batch whose batch shape is ``terminated``'s (default: next_obs[:1])."""
  next_obs = jnp.asarray(next_obs)
  shape = next_obs.shape[:1] if terminated is None else np.shape(terminated)
  term = np.zeros(shape, bool) if terminated is None else terminated
  trunc = np.zeros(shape, bool) if truncated is None else truncated
  zeros = jnp.zeros(shape, jnp.float32)
  return Transition(next_obs, jnp.zeros(shape, jnp.int32), zeros, next_obs,
                    jnp.asarray(term), jnp.asarray(trunc))


def _n(bonus, beta):
  """Recovers N from a bonus β/√N."""
  return np.rint((beta / np.asarray(bonus)) ** 2).astype(int)


def _deepsea_obs(cells, size=10):
  """DeepSea-style float one-hot grids; cell ``size*size`` is the all-zero terminal obs."""
  eye = np.concatenate([np.eye(size * size), np.zeros((1, size * size))])
  return jnp.asarray(eye[np.asarray(cells)].reshape(-1, size, size), jnp.float32)


def test_bonus_is_beta_over_sqrt_n_for_a_state_seen_n_times():
  beta = 0.3
  module = _jit(counts.count_bonus(beta=beta, key_fn="onehot", batch_counts="sequential"))
  rng = np.random.default_rng(0)
  cells = rng.integers(0, 101, size=200)                  # 100 cells + terminal
  state = module.init(KEY, _batch(_deepsea_obs(cells[:50])))
  assert state.counts.shape == (1, 101)                   # exact: one cell per state
  seen = np.zeros(101, int)
  for chunk in np.split(cells, 4):
    batch = _batch(_deepsea_obs(chunk))
    bonus = module.reward(state, batch)
    expected = []
    for c in chunk:                                       # N includes the current visit
      seen[c] += 1
      expected.append(beta / math.sqrt(seen[c]))
    np.testing.assert_allclose(bonus, expected, rtol=1e-6)
    state, metrics = module.update(state, batch, KEY)
  np.testing.assert_array_equal(state.counts[0], seen)
  assert float(metrics["unique_keys"]) == np.count_nonzero(seen)
  # A state seen n times in earlier batches earns β/√(n + 1) on its next visit.
  probe = _batch(_deepsea_obs(np.arange(101)))
  np.testing.assert_allclose(module.reward(state, probe), beta / np.sqrt(seen + 1), rtol=1e-6)


def test_total_batch_counts_use_the_count_after_the_batch():
  module = _jit(counts.count_bonus(beta=1.0, key_fn="onehot", batch_counts="total"))
  batch = _batch(_deepsea_obs([3, 5, 3, 3, 7], size=3))
  state = module.init(KEY, batch)
  np.testing.assert_array_equal(_n(module.reward(state, batch), 1.0), [3, 1, 3, 3, 1])
  state, _ = module.update(state, batch, KEY)
  np.testing.assert_array_equal(_n(module.reward(state, batch), 1.0), [6, 2, 6, 6, 2])
  # "total" is the default (Tang et al.'s Algorithm 1), also on the fused path agents use.
  default = counts.count_bonus(beta=1.0, key_fn="onehot")
  r, _, _ = jax.jit(default.reward_and_update)(default.init(KEY, batch), batch, KEY)
  np.testing.assert_array_equal(_n(r, 1.0), [3, 1, 3, 3, 1])


def test_sequential_bonuses_do_not_depend_on_how_the_stream_is_batched():
  rng = np.random.default_rng(1)
  obs = jnp.asarray(rng.integers(0, 4, size=(24, 2)), jnp.int32)   # integer grid, exact keys
  module = _jit(counts.count_bonus(beta=1.0, key_fn="exact", batch_counts="sequential"))
  whole = module.reward(module.init(KEY, _batch(obs)), _batch(obs))
  state = module.init(KEY, _batch(obs[:6]))
  parts = []
  for i in range(0, 24, 6):
    b = _batch(obs[i:i + 6])
    parts.append(module.reward(state, b))
    state, _ = module.update(state, b, KEY)
  np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)


def test_exact_and_grid_keys_count_an_integer_grid_without_collisions():
  xy = np.stack(np.meshgrid(np.arange(-10, 11), np.arange(-10, 11)), -1).reshape(-1, 2)
  visits = np.arange(len(xy)) % 5 + 1                    # state i visited visits[i] times
  stream = jnp.asarray(np.repeat(xy, visits, axis=0), jnp.int32)
  stream = stream[np.random.default_rng(2).permutation(len(stream))]
  probe = _batch(jnp.asarray(xy, jnp.int32))
  for key_fn in ("exact", counts.grid_key(-10, 10)):
    module = _jit(counts.count_bonus(beta=1.0, key_fn=key_fn))
    state = module.init(KEY, _batch(stream))
    state, _ = module.update(state, _batch(stream), KEY)
    np.testing.assert_array_equal(_n(module.reward(state, probe), 1.0), visits + 1)
  assert state.counts.shape == (1, 21 * 21)              # grid_key: exact index table


def test_grid_key_is_the_mixed_radix_index():
  key = counts.grid_key([0, -1], [2, 3])                  # radices 3, 5
  assert key.num_keys(jnp.zeros(2)) == 15
  assert int(key.apply((), jnp.array([2, 1]))) == 2 * 5 + (1 + 1)


def test_simhash_near_observations_share_keys_far_ones_do_not():
  key = counts.simhash_key(bits=32)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(64, 8)), jnp.float32)
  params = key.init(jax.random.PRNGKey(4), x)
  code = jax.vmap(lambda o: key.apply(params, o))
  near = x + 1e-5 * jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  far = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  np.testing.assert_array_equal(code(x), code(near))
  assert np.all(np.asarray(code(x)) != np.asarray(code(far)))
  assert np.all(np.asarray(code(x)) != np.asarray(code(-x)))   # every bit flips
  assert len(np.unique(np.asarray(code(x)))) == 64
  # Through the module: a near-duplicate counts as a second visit.
  module = _jit(counts.count_bonus(beta=1.0, key_fn="simhash", batch_counts="sequential"))
  state = module.init(jax.random.PRNGKey(4), _batch(x))
  n = _n(module.reward(state, _batch(jnp.concatenate([x, near, far]))), 1.0)
  np.testing.assert_array_equal(n, [1] * 64 + [2] * 64 + [1] * 64)


def test_simhash_with_many_bits_uses_several_words():
  key = counts.simhash_key(bits=70)
  x = jnp.asarray(np.random.default_rng(5).normal(size=(4, 3)), jnp.float32)
  params = key.init(KEY, x)
  assert key.apply(params, x[0]).shape == (3,)           # ⌈70/32⌉ words, hashed
  assert key.num_keys(x[0]) is None


def test_count_min_sketch_never_undercounts_and_is_exact_without_collisions():
  rng = np.random.default_rng(6)
  states = rng.integers(0, 1000, size=(300, 3))          # distinct w.h.p.; made distinct below
  states = np.unique(states, axis=0)[:200]
  visits = rng.integers(1, 6, size=len(states))
  stream = jnp.asarray(np.repeat(states, visits, axis=0), jnp.int32)
  probe = _batch(jnp.asarray(states, jnp.int32))

  def sketch_counts(table_size, num_hashes):
    module = _jit(counts.count_bonus(beta=1.0, key_fn="exact", table_size=table_size,
                                     num_hashes=num_hashes))
    state = module.init(KEY, _batch(stream))
    assert state.counts.shape == (num_hashes, table_size)
    state, _ = module.update(state, _batch(stream), KEY)
    return _n(module.reward(state, probe), 1.0) - 1      # minus the probe's own visit

  small = sketch_counts(64, 4)                            # 200 keys in 64 cells: collisions
  assert np.all(small >= visits) and np.any(small > visits)
  one_row = sketch_counts(64, 1)
  assert np.all(small <= one_row)                        # more rows never hurt
  np.testing.assert_array_equal(sketch_counts(2**16, 4), visits)


def test_episodic_counts_reset_at_episode_end():
  t, n = 4, 3
  obs = np.zeros((t, n, 2), np.int32)                     # every env sees the same state
  term = np.zeros((t, n), bool)
  trunc = np.zeros((t, n), bool)
  term[1, 0] = True                                       # env 0: episode ends at step 1
  trunc[0, 1] = True                                      # env 1: truncated at step 0 and 2
  trunc[2, 1] = True
  module = _jit(counts.count_bonus(beta=1.0, key_fn="exact", episodic=True, batch_counts="sequential"))
  batch = _batch(obs, term, trunc)
  state = module.init(KEY, batch)
  assert state.counts.shape == (1, n, counts.DEFAULT_EPISODIC_TABLE_SIZE)
  np.testing.assert_array_equal(
      _n(module.reward(state, batch), 1.0),
      [[1, 1, 1], [2, 1, 2], [1, 2, 3], [2, 1, 4]])
  state, metrics = module.update(state, batch, KEY)
  assert float(metrics["unique_keys"]) == 1.0
  # The open episodes carry over: env 0 has seen the state twice, env 1 once, env 2 four times.
  nxt = _batch(obs[:1], np.zeros((1, n), bool))
  np.testing.assert_array_equal(_n(module.reward(state, nxt), 1.0), [[3, 2, 5]])
  # A lifelong count over the same batch never resets.
  lifelong = _jit(counts.count_bonus(beta=1.0, key_fn="exact", batch_counts="sequential"))
  np.testing.assert_array_equal(
      _n(lifelong.reward(lifelong.init(KEY, batch), batch), 1.0).reshape(-1),
      np.arange(1, t * n + 1))
  with pytest.raises(ValueError, match="environments"):
    module.reward(state, _batch(obs[:, :2], term[:, :2]))


def test_batch_shapes_t_n_and_b_agree_for_lifelong_counts():
  rng = np.random.default_rng(7)
  obs = jnp.asarray(rng.integers(0, 3, size=(5, 4, 2, 2)), jnp.float32)   # [T, N, 2, 2]
  module = _jit(counts.count_bonus(beta=0.5))                            # auto: SimHash
  tn = _batch(obs, np.zeros((5, 4), bool))
  b = _batch(obs.reshape(20, 2, 2))
  state = module.init(KEY, tn)
  r_tn = module.reward(state, tn)
  assert r_tn.shape == (5, 4)
  np.testing.assert_allclose(r_tn.reshape(-1), module.reward(state, b))
  s_tn, _ = module.update(state, tn, KEY)
  s_b, _ = module.update(state, b, KEY)
  np.testing.assert_array_equal(s_tn.counts, s_b.counts)


def _mountaincar_key_by_hand(x, v, bins=10):
  u = 0.0025 / 3.0
  pos = (x + 1.2) / 1.7
  energy = (u * math.sin(3 * x) + 0.5 * v * v + u) / (u * math.sin(1.5) + u)
  b = [min(int(min(max(p, 0.0), 1.0) * bins), bins - 1) for p in (pos, energy)]
  return b[0] * bins + b[1]


def test_progress_counts_bins_mountaincar_progress():
  from rewardjax import progress  # pylint: disable=g-import-not-at-top
  spec = progress.get("mountaincar")
  key = pc.progress_key(spec.fn, num_bins=10, low=spec.low, high=spec.high)
  obs = jnp.array([[-0.9, 0.02], [0.3, 0.04], [-0.5, 0.0]], jnp.float32)
  params = key.init(KEY, obs)
  got = jax.jit(jax.vmap(key.apply, in_axes=(None, 0)))(params, obs).tolist()
  # x=-0.9: position (0.3/1.7)=0.176 -> bin 1; energy 0.407 -> bin 4  => 1·10 + 4
  # x=0.3:  position 0.882 -> bin 8; energy 1.37, clipped -> bin 9     => 89
  # x=-0.5: position 0.412 -> bin 4; energy 0.0013 -> bin 0            => 40
  assert got == [14, 89, 40]
  assert got == [_mountaincar_key_by_hand(float(x), float(v)) for x, v in np.asarray(obs)]
  # The registered name gives the same module, with a 100-cell exact table.
  module = _jit(pc.progress_counts("mountaincar", beta=1.0, num_bins=10))
  state = module.init(KEY, _batch(obs))
  assert state.counts.shape == (1, 100)
  state, _ = module.update(state, _batch(obs), KEY)
  assert sorted(np.flatnonzero(state.counts[0]).tolist()) == [14, 40, 89]


def test_progress_counts_rewards_rarely_visited_bins_more():
  from rewardjax.progress import hand_written  # pylint: disable=g-import-not-at-top
  module = _jit(pc.progress_counts(hand_written.mountaincar_progress, beta=1.0,
                                   num_bins=10, low=0.0, high=1.0))
  rng = np.random.default_rng(8)
  common = np.stack([rng.uniform(-0.55, -0.45, 50), np.zeros(50)], -1)   # valley floor
  rare = np.array([[0.3, 0.04]])
  batch = _batch(jnp.asarray(np.concatenate([common, rare]), jnp.float32))
  state = module.init(KEY, batch)
  state, _ = module.update(state, batch, KEY)
  r = module.reward(state, _batch(jnp.asarray([common[0], rare[0]], jnp.float32)))
  assert r[1] > r[0]
  np.testing.assert_allclose(r[1], 1 / math.sqrt(2), rtol=1e-6)


def test_progress_ranges_are_estimated_from_the_example():
  fn = lambda o: jnp.array([o[0], 0.5])                  # second component constant
  key = pc.progress_key(fn, num_bins=4)
  example = jnp.array([[2.0], [6.0], [4.0]])
  params = key.init(KEY, example)
  np.testing.assert_allclose(params.low, [2.0, 0.0])
  np.testing.assert_allclose(params.high, [6.0, 1.0])    # constant: contract range [0, 1]
  keys = jax.vmap(key.apply, in_axes=(None, 0))(params, jnp.array([[2.1], [4.5], [9.0]]))
  keys = keys.tolist()
  assert keys == [0 * 4 + 2, 2 * 4 + 2, 3 * 4 + 2]       # out of range -> edge bin


def test_jit_and_vmap_over_keys():
  module = counts.count_bonus(beta=0.1, key_fn="simhash", simhash_bits=16, num_hashes=2,
                              table_size=4096)
  rng = np.random.default_rng(9)
  batch = _batch(jnp.asarray(rng.normal(size=(6, 3, 4)), jnp.float32), np.zeros((6, 3), bool))
  keys = jax.random.split(KEY, 3)
  states = jax.jit(jax.vmap(module.init, in_axes=(0, None)))(keys, batch)
  assert states.counts.shape == (3, 2, 4096)             # 2^16 codes > 4096 cells: hashed
  assert not np.allclose(states.key_params.projection[0], states.key_params.projection[1])

  @jax.jit
  @jax.vmap
  def step(state, key):
    r = module.reward(state, batch)
    state, metrics = module.update(state, batch, key)
    return state, r, metrics

  new, r, metrics = step(states, keys)
  assert r.shape == (3, 6, 3) and metrics["bonus_mean"].shape == (3,)
  reward, update = jax.jit(module.reward), jax.jit(module.update)
  for i in range(3):
    s_i = jax.tree.map(lambda x: x[i], states)
    np.testing.assert_allclose(r[i], reward(s_i, batch), rtol=1e-6)
    np.testing.assert_array_equal(new.counts[i], update(s_i, batch, keys[i])[0].counts)


def test_episodic_progress_counts_jit_and_vmap():
  batch = _batch(jnp.asarray(np.random.default_rng(10).normal(size=(6, 3, 4)), jnp.float32),
                 np.eye(6, 3, dtype=bool))
  keys = jax.random.split(KEY, 3)
  prog = pc.progress_counts(lambda o: jax.nn.sigmoid(o[:2]), num_bins=5, low=0.0, high=1.0,
                            episodic=True)
  st = jax.vmap(prog.init, in_axes=(0, None))(keys, batch)
  st, m = jax.jit(jax.vmap(prog.update, in_axes=(0, None, 0)))(st, batch, keys)
  assert st.counts.shape == (3, 1, 3, 25) and np.all(np.asarray(m["count_mean"]) >= 1)
  # Env e ended its episode at step e: only the steps after it remain counted.
  np.testing.assert_array_equal(st.counts[:, 0].sum(-1), [[5, 4, 3]] * 3)


def test_metrics_and_argument_checks():
  module = _jit(counts.count_bonus(beta=1.0, key_fn="onehot", batch_counts="sequential"))
  batch = _batch(_deepsea_obs([0, 0, 1, 2], size=2))
  state = module.init(KEY, batch)
  _, metrics = module.update(state, batch, KEY)
  assert float(metrics["unique_keys"]) == 3.0
  np.testing.assert_allclose(metrics["table_occupancy"], 3 / 5)
  np.testing.assert_allclose(metrics["bonus_mean"], (1 + 1 / math.sqrt(2) + 1 + 1) / 4, rtol=1e-6)
  with pytest.raises(ValueError, match="key_fn"):
    counts.count_bonus(key_fn="nope")
  with pytest.raises(ValueError, match="batch_counts"):
    counts.count_bonus(batch_counts="later")
  with pytest.raises(ValueError, match="beta"):
    counts.count_bonus(beta=-1.0)
  with pytest.raises(ValueError, match="num_bins"):
    pc.progress_counts(lambda o: o, num_bins=[3, 4]).init(KEY, _batch(jnp.zeros((2, 3))))


def test_unique_keys_tracks_occupied_cells_across_updates():
  # ``update`` keeps the occupied-cell count incrementally (no pass over the
  # table); with a tiny hashed count-min table (collisions, two rows) it must
  # still equal the nonzero cells of the fullest row after every update, and N
  # must match a recount from the table.
  module = _jit(counts.count_bonus(key_fn="exact", table_size=16, num_hashes=2))
  rng = np.random.default_rng(1)
  obs = jnp.asarray(rng.integers(0, 40, size=(6, 12, 1)), jnp.int32)
  state = module.init(KEY, _batch(obs[0]))
  for chunk in obs:
    batch = _batch(chunk)
    before = np.asarray(state.counts)
    state, metrics = module.update(state, batch, KEY)
    after = np.asarray(state.counts)
    assert float(metrics["unique_keys"]) == np.max(np.count_nonzero(after, axis=-1))
    np.testing.assert_array_equal(state.occupied, np.count_nonzero(after, axis=-1))
    assert after.sum() == before.sum() + 2 * len(chunk)       # one visit per row


def test_grid_key_with_more_cells_than_int64_names_the_limit():
  # 6**36 cells overflow an int64 product; the error must still be grid_key's own.
  with pytest.raises(ValueError, match="do not fit an int32"):
    counts.grid_key(0, 5).num_keys(np.zeros(36))


@pytest.mark.parametrize("batch_counts", ["total", "sequential"])
def test_counts_over_simulated_devices_add_every_devices_visits(batch_counts):
  # Two "devices" as a named vmap inside sharding.data_axis (what shard_map
  # traces): the table gains both devices' visits, as on one device; "total"
  # bonuses count the whole global batch, "sequential" ones the visits before
  # them on their own device.
  from rewardjax import sharding  # pylint: disable=g-import-not-at-top
  module = counts.count_bonus(beta=1.0, key_fn="onehot", batch_counts=batch_counts)
  prior_cells = [3, 3, 8]
  state = module.init(KEY, _batch(_deepsea_obs(prior_cells, size=3)))
  state, _ = jax.jit(module.update)(state, _batch(_deepsea_obs(prior_cells, size=3)), KEY)
  cells = np.array([[3, 5, 3, 0], [3, 7, 5, 1]])          # device 0's and device 1's visits
  shards = _batch(_deepsea_obs(cells.reshape(-1), size=3).reshape(2, 4, 3, 3),
                  np.zeros((2, 4), bool))
  with sharding.data_axis("d"):
    r, new, metrics = jax.jit(jax.vmap(module.reward_and_update, in_axes=(None, 0, None),
                                       axis_name="d"))(state, shards, KEY)
  prior = np.bincount(prior_cells, minlength=10)
  after = prior + np.bincount(cells.reshape(-1), minlength=10)
  if batch_counts == "total":
    n = after[cells]
  else:
    n = np.array([[prior[c] + list(row[:i + 1]).count(c) for i, c in enumerate(row)]
                  for row in cells])
  np.testing.assert_allclose(r, 1 / np.sqrt(n), rtol=1e-6)
  for d in range(2):                                       # replicated on every device
    np.testing.assert_array_equal(new.counts[d, 0], after)
    np.testing.assert_array_equal(new.occupied[d], [np.count_nonzero(after)])
  np.testing.assert_array_equal(metrics["unique_keys"], [np.count_nonzero(after)] * 2)


def test_count_metrics_lifelong_and_episodic():
  cells = np.array([[0, 1], [2, 1], [0, 0]])               # [T, N]: env 0 sees 0, 2, 0
  obs = _deepsea_obs(cells.reshape(-1), size=2).reshape(3, 2, 2, 2)
  batch = _batch(obs, np.zeros((3, 2), bool))
  n_by_kind = {
      # lifelong totals: cell 0 three times, cell 1 twice, cell 2 once
      False: (np.array([[3, 2], [1, 2], [3, 3]]), 3.0),
      # per environment: env 0 sees 0 twice and 2 once; env 1 sees 1 twice and 0 once
      True: (np.array([[2, 2], [1, 2], [2, 1]]), 2.0),
  }
  for episodic, (n, unique) in n_by_kind.items():
    module = counts.count_bonus(beta=2.0, key_fn="onehot", episodic=episodic)
    r, _, metrics = jax.jit(lambda b: module.reward_and_update(module.init(KEY, b), b, KEY))(
        batch)
    np.testing.assert_allclose(r, 2.0 / np.sqrt(n), rtol=1e-6)
    np.testing.assert_allclose(metrics["count_mean"], n.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["bonus_mean"], (2.0 / np.sqrt(n)).mean(), rtol=1e-6)
    assert float(metrics["unique_keys"]) == unique
    np.testing.assert_allclose(metrics["table_occupancy"], unique / 5, rtol=1e-6)
  # An integer reward gets a float32 bonus; a float one keeps its dtype.
  module = counts.count_bonus(beta=1.0, key_fn="onehot")
  int_batch = batch._replace(reward=jnp.zeros((3, 2), jnp.int32))
  assert module.reward(module.init(KEY, int_batch), int_batch).dtype == jnp.float32


def test_keys_named_and_callable_count_what_they_promise():
  floats = jnp.array([[0.0], [-0.0], [0.5], [0.5], [0.7]], jnp.float32)
  bools = jnp.array([[True], [False], [True], [True], [False]])

  def n_total(key_fn, obs):
    module = counts.count_bonus(beta=1.0, key_fn=key_fn)
    r = jax.jit(lambda b: module.reward(module.init(KEY, b), b))(_batch(obs))
    return _n(r, 1.0).tolist()

  assert n_total("exact", floats) == [2, 2, 2, 2, 1]       # -0.0 and 0.0 are one state
  assert n_total("exact", bools) == [3, 2, 3, 3, 2]
  assert n_total("exact", floats.astype(jnp.int32)) == [5, 5, 5, 5, 5]
  assert n_total(lambda o: jnp.floor(o * 2), floats) == [2, 2, 3, 3, 3]  # exact_key(fn)
  assert n_total(counts.exact_key(lambda o: o > 0.6), floats) == [4, 4, 4, 4, 1]
  # "auto": exact keys (hashed) for integers, SimHash for floats.
  ints = jnp.array([[1, 2], [1, 2], [2, 1]], jnp.int32)
  assert n_total("auto", ints) == [2, 2, 1]
  module = counts.count_bonus(key_fn="auto", simhash_bits=6)
  assert module.init(KEY, _batch(floats)).counts.shape == (1, 2**6)   # 2^6 codes: exact index
  assert module.init(KEY, _batch(ints)).counts.shape == (1, counts.DEFAULT_TABLE_SIZE)
  assert counts.resolve_key("onehot").num_keys(jnp.zeros((3, 3))) == 10
  key = counts.grid_key(0, 3)
  assert counts.resolve_key(key) is key
  with pytest.raises(TypeError, match="key_fn"):
    counts.resolve_key(3)


def test_simhash_keys_are_a_bijection_of_the_sign_codes():
  rng = np.random.default_rng(16)
  x = jnp.asarray(rng.normal(size=(256, 5)), jnp.float32)
  for bits in (4, 31, 40):
    key = counts.simhash_key(bits, preprocess=lambda o: o - 0.5)
    params = key.init(KEY, x)
    keys = np.asarray(jax.jit(jax.vmap(lambda o: key.apply(params, o)))(x)).reshape(len(x), -1)
    codes = (np.asarray(x - 0.5) @ np.asarray(params.projection).T) >= 0     # sgn(A·φ(s))
    # equal codes <=> equal keys
    same_code = (codes[:, None] == codes[None]).all(-1)
    same_key = (keys[:, None] == keys[None]).all(-1)
    np.testing.assert_array_equal(same_key, same_code)
    if bits <= 31:                                           # a direct index
      assert key.num_keys(x[0]) == 2**bits and keys.min() >= 0 and keys.max() < 2**bits
    else:
      assert key.num_keys(x[0]) is None
  with pytest.raises(ValueError, match="bits"):
    counts.simhash_key(0)


def test_grid_key_rounds_and_clips_into_its_box():
  key = counts.grid_key([0, -1, 0], [3, 1, 3])              # radices 4, 3, 4
  assert key.num_keys(jnp.zeros(3)) == 48
  apply = lambda o: int(key.apply((), jnp.asarray(o, jnp.float32)))
  assert apply([2.6, -0.4, 1.0]) == 3 * 12 + 1 * 4 + 1     # rounded: (3, 0, 1)
  assert apply([-5.0, 7.0, 9.0]) == 0 * 12 + 2 * 4 + 3     # clipped: (0, 1, 3)
  assert counts.ravel_index(jnp.array([1, 2]), (3, 4)) == 1 * 4 + 2
  with pytest.raises(ValueError, match="high"):
    counts.grid_key(2, 1)
  with pytest.raises(ValueError, match="entries"):
    counts.grid_key([0, 0], [1, 1]).num_keys(jnp.zeros(3))


@pytest.mark.parametrize("kwargs, match", [
    ({"table_size": 0}, "table_size"), ({"table_size": 2**31}, "table_size"),
    ({"table_size": 8.0}, "table_size"), ({"num_hashes": 0}, "num_hashes"),
    ({"num_hashes": 2.0}, "num_hashes"), ({"beta": float("inf")}, "beta"),
    ({"beta": "0.1"}, "beta"),
])
def test_count_bonus_rejects_bad_options(kwargs, match):
  with pytest.raises(ValueError, match=match):
    counts.count_bonus(**kwargs)


def test_index_keys_must_return_one_integer_per_observation():
  bad = counts.StateKey(lambda k, o: (), lambda p, o: jnp.ravel(o)[:2].astype(jnp.int32),
                        lambda o: 4)
  module = counts.count_bonus(key_fn=bad)
  batch = _batch(jnp.zeros((3, 2), jnp.int32))
  with pytest.raises(ValueError, match="one\\s+integer"):
    module.reward(module.init(KEY, batch), batch)
  # A table smaller than the index range hashes the index: counts stay exact here.
  small = counts.count_bonus(beta=1.0, key_fn="onehot", table_size=64, num_hashes=2)
  obs = _deepsea_obs([0, 5, 5, 99], size=10)
  state = small.init(KEY, _batch(obs))
  assert state.counts.shape == (2, 64)
  np.testing.assert_array_equal(_n(jax.jit(small.reward)(state, _batch(obs)), 1.0), [1, 2, 2, 1])


def test_a_single_transition_and_a_single_environment_stream():
  cells = [4, 4, 2, 4]
  obs = _deepsea_obs(cells, size=3)
  module = counts.count_bonus(beta=1.0, key_fn="onehot", batch_counts="sequential")
  state = module.init(KEY, _batch(obs))
  one = jax.tree.map(lambda x: x[0], _batch(obs))            # reward shape (): one transition
  r, state, _ = jax.jit(module.reward_and_update)(state, one, KEY)
  assert r.shape == () and float(r) == 1.0
  np.testing.assert_allclose(jax.jit(module.reward)(state, one), 1 / np.sqrt(2), rtol=1e-6)
  # Episodic counts of one environment take a [T] batch, as [T, 1].
  episodic = counts.count_bonus(beta=1.0, key_fn="onehot", episodic=True,
                                batch_counts="sequential")
  term = np.array([False, True, False, False])
  flat = _batch(obs, term)
  column = _batch(obs[:, None], term[:, None])
  r_flat = jax.jit(episodic.reward)(episodic.init(KEY, flat), flat)
  r_column = jax.jit(episodic.reward)(episodic.init(KEY, column), column)
  np.testing.assert_array_equal(_n(r_flat, 1.0), [1, 2, 1, 1])   # restarted after step 1
  np.testing.assert_allclose(r_column[:, 0], r_flat)


def test_count_bonus_defaults_and_option_boundaries():
  # Defaults: β = 0.01, "auto" keys (SimHash with 32 bits for floats, exact for
  # integers), one hashed row of 2²⁰ cells (2¹⁶ per environment when episodic),
  # and "total" batch counts.
  obs = jnp.asarray(np.random.default_rng(2).normal(size=(4, 3)), jnp.float32)
  batch = _batch(jnp.concatenate([obs, obs[:1]]))          # obs[0] visited twice
  module = counts.count_bonus()
  state = module.init(KEY, batch)
  assert state.counts.shape == (1, 2**20)
  assert state.key_params.projection.shape == (32, 3)
  np.testing.assert_allclose(jax.jit(module.reward)(state, batch),
                             0.01 / np.sqrt([2, 1, 1, 1, 2]), rtol=1e-6)
  ints = _batch(jnp.array([[1, 2], [3, 4], [1, 2]], jnp.int32))
  exact = counts.count_bonus()
  exact_state = exact.init(KEY, ints)
  assert exact_state.key_params == () and exact_state.counts.shape == (1, 2**20)
  np.testing.assert_allclose(jax.jit(exact.reward)(exact_state, ints),
                             0.01 / np.sqrt([2, 1, 2]), rtol=1e-6)
  episodic = counts.count_bonus(episodic=True)
  steps = _batch(jnp.zeros((2, 3, 2), jnp.int32), np.zeros((2, 3), bool))
  assert episodic.init(KEY, steps).counts.shape == (1, 3, 2**16)
  # The edges of the valid ranges are accepted.
  zero = counts.count_bonus(beta=0, key_fn="exact", table_size=1, num_hashes=1)
  np.testing.assert_array_equal(zero.reward(zero.init(KEY, ints), ints), [0.0, 0.0, 0.0])
  counts.count_bonus(table_size=2**31 - 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": -1.0}, "count_bonus: beta must be a finite number >= 0, got -1.0"),
    ({"table_size": 0}, r"count_bonus: table_size must be an int in \[1, 2\^31\), got 0"),
    ({"num_hashes": 0}, "count_bonus: num_hashes must be a positive int, got 0"),
    ({"batch_counts": "later"},
     "count_bonus: batch_counts must be 'sequential' or 'total', got 'later'"),
])
def test_count_bonus_option_errors_name_the_option_and_value(kwargs, message):
  with pytest.raises(ValueError, match=message):
    counts.count_bonus(**kwargs)


def test_bonus_dtype_follows_a_floating_reward_and_is_float32_otherwise():
  module = counts.count_bonus(beta=1.0, key_fn="onehot")
  batch = _batch(_deepsea_obs([0, 1, 1], size=2))
  state = module.init(KEY, batch)
  for reward, dtype in ((jnp.zeros(3, jnp.int32), jnp.float32), (jnp.zeros(3, bool), jnp.float32),
                        (jnp.zeros(3, jnp.bfloat16), jnp.bfloat16)):
    bonus = module.reward(state, batch._replace(reward=reward))
    assert bonus.dtype == dtype
    np.testing.assert_allclose(np.asarray(bonus, np.float32), [1, 2**-0.5, 2**-0.5], rtol=1e-2)


def test_index_keys_out_of_range_are_clipped_into_the_table():
  # Keys 3, 9 → 3, −5 → 0 and 0 for a key that promises [0, 4).
  key = counts.StateKey(lambda k, o: (), lambda p, o: jnp.sum(o).astype(jnp.int32), lambda o: 4)
  module = counts.count_bonus(beta=1.0, key_fn=key, batch_counts="sequential")
  batch = _batch(jnp.array([[3], [9], [-5], [0]], jnp.int32))
  state = module.init(KEY, batch)
  assert state.counts.shape == (1, 4)
  np.testing.assert_array_equal(_n(module.reward(state, batch), 1.0), [1, 2, 1, 2])
  state, _ = module.update(state, batch, KEY)
  np.testing.assert_array_equal(state.counts, [[2, 0, 0, 2]])
  bad = counts.StateKey(lambda k, o: (), lambda p, o: jnp.ravel(o)[:2].astype(jnp.int32),
                        lambda o: 4)
  wrong = counts.count_bonus(key_fn=bad)
  batch = _batch(jnp.zeros((3, 2), jnp.int32))
  with pytest.raises(ValueError, match=r"one integer per observation, got \(2,\) int32"):
    wrong.reward(wrong.init(KEY, batch), batch)


def test_index_layout_boundaries():
  # An index key of exactly table_size cells is exact: one row, whatever num_hashes says.
  module = counts.count_bonus(beta=1.0, key_fn="onehot", table_size=5, num_hashes=3)
  batch = _batch(_deepsea_obs([0, 3, 3, 4], size=2))
  state = module.init(KEY, batch)
  assert state.counts.shape == (1, 5)
  state, _ = module.update(state, batch, KEY)
  np.testing.assert_array_equal(state.counts, [[1, 0, 0, 2, 1]])
  # An index key of exactly DEFAULT_TABLE_SIZE cells is exact by default, episodic too.
  grid = counts.grid_key(0, counts.DEFAULT_TABLE_SIZE - 1)
  ep = counts.count_bonus(key_fn=grid, episodic=True)
  steps = _batch(jnp.zeros((2, 1, 1), jnp.int32), np.zeros((2, 1), bool))
  assert ep.init(KEY, steps).counts.shape == (1, 1, counts.DEFAULT_TABLE_SIZE)


def test_episodic_counts_of_a_single_transition():
  module = counts.count_bonus(beta=1.0, key_fn="onehot", episodic=True)
  obs = _deepsea_obs([2, 2], size=2)
  one = jax.tree.map(lambda x: x[0], _batch(obs))
  state = module.init(KEY, one)
  assert state.counts.shape == (1, 1, 5)
  r, state, _ = module.reward_and_update(state, one, KEY)
  assert r.shape == () and float(r) == 1.0
  np.testing.assert_allclose(module.reward(state, one), 2**-0.5, rtol=1e-6)


def _episodic_batch(cells, term=None, size=2):
  """An episodic ``[T, N]`` batch of DeepSea one-hot observations of ``cells [T, N]``."""
  cells = np.asarray(cells)
  obs = _deepsea_obs(cells.reshape(-1), size=size).reshape(cells.shape + (size, size))
  return _batch(obs, np.zeros(cells.shape, bool) if term is None else term)


def test_episodic_tables_carry_over_until_an_episode_end_resets_them():
  # Two updates: a table holding an earlier batch's visits keeps them while its
  # episode runs on, and one episode end (a single done in the batch) restarts it.
  module = _jit(counts.count_bonus(beta=1.0, key_fn="onehot", episodic=True))
  ones = np.ones((2, 2), int)                              # [T, N]: every visit is to cell 1
  state = module.init(KEY, _episodic_batch(ones))
  assert state.counts.dtype == jnp.int32
  end = np.zeros((2, 2), bool)
  end[0, 0] = True                                         # env 0: its episode ends at step 0
  with warnings.catch_warnings():
    warnings.simplefilter("error")                         # no dtype casts in the scatter
    state, _ = module.update(state, _episodic_batch(ones), KEY)
    np.testing.assert_array_equal(state.counts[0, :, 1], [2, 2])
    state, _ = module.update(state, _episodic_batch(ones, end), KEY)
  expected = np.zeros((1, 2, 5), int)
  expected[0, :, 1] = [1, 4]                               # env 0: step 1 only; env 1: 2 + 2
  np.testing.assert_array_equal(state.counts, expected)
  assert state.counts.dtype == jnp.int32
  probe = _episodic_batch(np.ones((1, 2), int))
  np.testing.assert_array_equal(_n(module.reward(state, probe), 1.0), [[2, 5]])


def test_episodic_count_min_rows_are_read_and_written_row_by_row():
  # A hashed episodic table with 3 rows and a batch of M = 6 transitions: every
  # row holds every open visit, and N is exact (no key collides in all rows).
  module = _jit(counts.count_bonus(beta=1.0, key_fn="exact", episodic=True,
                                   table_size=2**10, num_hashes=3))
  obs = jnp.asarray([[[1], [1]], [[2], [1]], [[1], [3]]], jnp.int32)   # [T=3, N=2, 1]
  batch = _batch(obs, np.zeros((3, 2), bool))
  state = module.init(KEY, batch)
  assert state.counts.shape == (3, 2, 2**10)
  np.testing.assert_array_equal(_n(module.reward(state, batch), 1.0), [[2, 2], [1, 2], [2, 1]])
  state, _ = module.update(state, batch, KEY)
  np.testing.assert_array_equal(state.counts.sum(-1), [[3, 3]] * 3)     # per row and env
  np.testing.assert_array_equal(np.count_nonzero(state.counts, -1), [[2, 2]] * 3)
  np.testing.assert_array_equal(_n(module.reward(state, batch), 1.0), [[4, 4], [2, 4], [4, 2]])


def test_episodic_unique_keys_average_the_environments():
  # Env 0 sees cells 0, 1, 2 (3 keys), env 1 sees cell 3 only (1 key): mean 2.
  module = _jit(counts.count_bonus(beta=1.0, key_fn="onehot", episodic=True))
  batch = _episodic_batch([[0, 3], [1, 3], [2, 3]])
  _, metrics = module.update(module.init(KEY, batch), batch, KEY)
  assert float(metrics["unique_keys"]) == 2.0
  np.testing.assert_allclose(metrics["table_occupancy"], 2 / 5, rtol=1e-6)


def test_episodic_simhash_keys_draw_their_projection_from_the_init_key_and_keep_it():
  module = counts.count_bonus(beta=1.0, key_fn="simhash", simhash_bits=40, episodic=True)
  obs = jnp.asarray(np.random.default_rng(17).normal(size=(2, 3, 4)), jnp.float32)
  batch = _batch(obs, np.zeros((2, 3), bool))
  state = module.init(KEY, batch)
  drawn = counts.simhash_key(40).init(KEY, obs.reshape(6, 4)).projection
  np.testing.assert_array_equal(state.key_params.projection, drawn)
  other = module.init(jax.random.PRNGKey(1), batch).key_params.projection
  assert not np.allclose(other, drawn)
  new, _ = jax.jit(module.update)(state, batch, KEY)
  np.testing.assert_array_equal(new.key_params.projection, drawn)


def test_episodic_environment_mismatch_error_names_both_counts():
  module = counts.count_bonus(beta=1.0, key_fn="onehot", episodic=True)
  state = module.init(KEY, _episodic_batch(np.zeros((2, 3), int)))
  message = ("count_bonus(episodic=True): the state holds 3 environments but the batch "
             "(2, 2) has 2 (batches must be time-major [T, N, ...] with the N of the init "
             "example)")
  with pytest.raises(ValueError, match=re.escape(message)):
    module.reward(state, _episodic_batch(np.zeros((2, 2), int)))


def test_lifelong_state_holds_int32_counts_and_occupied_cells():
  module = _jit(counts.count_bonus(beta=1.0, key_fn="exact", table_size=64, num_hashes=2))
  batch = _batch(jnp.asarray([[1], [2], [1]], jnp.int32))
  state = module.init(KEY, batch)
  assert state.counts.dtype == jnp.int32 and state.occupied.dtype == jnp.int32
  np.testing.assert_array_equal(state.occupied, [0, 0])
  state, _ = module.update(state, batch, KEY)
  assert state.counts.dtype == jnp.int32 and state.occupied.dtype == jnp.int32
  np.testing.assert_array_equal(state.occupied, np.count_nonzero(state.counts, axis=-1))


def test_sharded_lifelong_counts_keep_occupied_cells_per_count_min_row():
  # Two simulated devices (a named vmap inside sharding.data_axis) update a hashed
  # table of two rows: each row holds the 4 distinct keys once (no collisions).
  from rewardjax import sharding  # pylint: disable=g-import-not-at-top
  module = counts.count_bonus(beta=1.0, key_fn="exact", table_size=2**10, num_hashes=2)
  state = module.init(KEY, _batch(jnp.zeros((3, 1), jnp.int32)))
  shards = _batch(jnp.asarray([[[1], [3], [4]], [[3], [5], [1]]], jnp.int32),
                  np.zeros((2, 3), bool))
  with sharding.data_axis("d"):
    _, new, metrics = jax.jit(jax.vmap(module.reward_and_update, in_axes=(None, 0, None),
                                       axis_name="d"))(state, shards, KEY)
  assert new.occupied.shape == (2, 2)                      # [devices, rows]
  np.testing.assert_array_equal(new.occupied, [[4, 4], [4, 4]])
  np.testing.assert_array_equal(np.count_nonzero(new.counts, axis=-1), [[4, 4], [4, 4]])
  np.testing.assert_array_equal(metrics["unique_keys"], [4.0, 4.0])


def test_index_key_shape_error_names_the_contract():
  bad = counts.StateKey(lambda k, o: (), lambda p, o: jnp.ravel(o)[:2].astype(jnp.int32),
                        lambda o: 4)
  module = counts.count_bonus(key_fn=bad)
  batch = _batch(jnp.zeros((3, 2), jnp.int32))
  message = ("count_bonus: an index key (num_keys not None) must return one integer per "
             "observation, got (2,) int32")
  with pytest.raises(ValueError, match=re.escape(message)):
    module.reward(module.init(KEY, batch), batch)


def test_counts_above_float32_integer_range_stay_exact():
  # A cell visited 2^24 + 1 times (a count float32 cannot hold) is visited again:
  # N is 2^24 + 2 exactly, for lifelong and episodic tables (float32 would round
  # the old count to 2^24 and then 2^24 + 1 back to 2^24).
  big = 2**24 + 1
  cases = [(False, "sequential", _batch(_deepsea_obs([1], size=2)), (0, 1)),
           (True, "total", _episodic_batch([[1]]), (0, 0, 1))]
  for episodic, batch_counts, batch, cell in cases:
    module = counts.count_bonus(beta=1.0, key_fn="onehot", episodic=episodic,
                                batch_counts=batch_counts)
    state = module.init(KEY, batch)
    state = state._replace(counts=state.counts.at[cell].set(big))
    if not episodic:
      state = state._replace(occupied=jnp.ones((1,), jnp.int32))
    _, new, metrics = jax.jit(module.reward_and_update)(state, batch, KEY)
    assert float(metrics["count_mean"]) == big + 1, (episodic, batch_counts)
    assert int(new.counts[cell]) == big + 1


_M32 = 0xFFFFFFFF


def _fmix32_ref(h):
  """MurmurHash3's 32-bit finaliser on a Python int."""
  h ^= h >> 16
  h = (h * 0x85EBCA6B) & _M32
  h ^= h >> 13
  h = (h * 0xC2B2AE35) & _M32
  return h ^ (h >> 16)


def _hash_words_ref(words):
  """Σ_i fmix(word_i ^ fmix(i·0x9E3779B9)) mod 2³² (i from 1), finalised with the length."""
  total = sum(_fmix32_ref(int(x) ^ _fmix32_ref((i * 0x9E3779B9) & _M32))
              for i, x in enumerate(words, start=1))
  return _fmix32_ref((total & _M32) ^ len(words))


def _row_hashes_ref(h, rows):
  return [_fmix32_ref(h ^ _fmix32_ref((r * 0x85EBCA77) & _M32)) for r in range(1, rows + 1)]


def test_as_words_are_the_float32_or_int32_bit_patterns():
  # MurmurHash3_x86_32 of no bytes with seed 1 is fmix32(1) = 0x514E28B7 (SMHasher).
  assert _fmix32_ref(1) == 0x514E28B7
  f32 = np.array([[1.0, -0.0], [-2.25, 0.0]], np.float32)
  bits = f32.reshape(-1).view(np.uint32).copy()
  bits[1] = 0                                              # -0.0 folds onto 0.0
  np.testing.assert_array_equal(counts.as_words(jnp.asarray(f32)), bits)
  np.testing.assert_array_equal(counts.as_words(jnp.asarray([1.5], jnp.float16)), [0x3FC00000])
  words = counts.as_words(jnp.asarray([-1, 7], jnp.int8))
  assert words.dtype == jnp.uint32
  np.testing.assert_array_equal(words, [_M32, 7])
  np.testing.assert_array_equal(counts.as_words(jnp.asarray([200], jnp.uint8)), [200])
  words = counts.as_words(jnp.asarray([True, False]))
  assert words.dtype == jnp.uint32
  np.testing.assert_array_equal(words, [1, 0])
  with pytest.raises(TypeError, match="count keys must be bool, integer or float arrays, "
                                      "got complex64"):
    counts.as_words(jnp.asarray([1j], jnp.complex64))


def test_hash_words_and_row_hashes_match_a_python_reference():
  words = np.random.default_rng(19).integers(0, 2**32, size=(2, 2, 3), dtype=np.uint64)
  hash_words = jax.jit(counts.hash_words)
  got = hash_words(jnp.asarray(words, jnp.uint32))                # [..., w] -> [...]
  assert got.shape == (2, 2) and got.dtype == jnp.uint32
  np.testing.assert_array_equal(
      got, [[_hash_words_ref(words[i, j]) for j in range(2)] for i in range(2)])
  one = hash_words(jnp.asarray([[5]], jnp.uint32))
  np.testing.assert_array_equal(one, [_hash_words_ref([5])])
  h = [int(x) for x in np.asarray(got).reshape(-1)]
  rows = jax.jit(lambda x: count_keys.row_hashes(x, 3))(jnp.asarray(h, jnp.uint32))
  np.testing.assert_array_equal(rows, np.array([_row_hashes_ref(x, 3) for x in h]).T)


def test_exact_keys_fill_the_cells_of_the_reference_hashes():
  module = counts.count_bonus(beta=1.0, key_fn="exact", table_size=1000, num_hashes=2)
  batch = _batch(jnp.asarray([[3, -1]], jnp.int32))
  state, _ = jax.jit(module.update)(module.init(KEY, batch), batch, KEY)
  cells = [x % 1000 for x in _row_hashes_ref(_hash_words_ref([3, _M32]), 2)]
  expected = np.zeros((2, 1000), int)
  expected[[0, 1], cells] = 1
  np.testing.assert_array_equal(state.counts, expected)


def test_simhash_defaults_boundaries_and_word_packing():
  x = jnp.asarray(np.random.default_rng(20).normal(size=(8, 5)), jnp.float32)
  zero = jnp.zeros(5, jnp.float32)

  def keys_of(key, bits):
    """(projection A, key of x[0], key of the zero observation) for a drawn A."""
    a = np.random.default_rng(bits).normal(size=(bits, 5)).astype(np.float32)
    apply = jax.jit(lambda o: key.apply(counts.SimHashParams(jnp.asarray(a)), o))
    return a, apply(x[0]), apply(zero)

  # 32 bits by default, whichever way the key is made.
  for key in (counts.simhash_key(), counts.auto_key(), counts.resolve_key("simhash")):
    assert jax.eval_shape(key.init, KEY, x).projection.shape == (32, 5)
  assert counts.simhash_key(1).num_keys(x[0]) == 2       # the smallest k
  # sgn(0) counts as +: the zero observation has every bit set. Up to 31 bits the
  # key is one int32 index.
  _, _, zero4 = keys_of(counts.simhash_key(4), 4)
  assert int(zero4) == 15
  _, key31, _ = keys_of(counts.simhash_key(31), 31)
  assert key31.shape == () and key31.dtype == jnp.int32
  # Beyond 31 bits: ⌈k/32⌉ uint32 words, bit b of word j being code bit 32·j + b.
  for bits, zero_words in ((32, [_M32]), (40, [_M32, 0xFF])):
    key = counts.simhash_key(bits)
    assert key.num_keys(x[0]) is None
    a, words, words0 = keys_of(key, bits)
    code = np.concatenate([a @ np.asarray(x[0]) >= 0,
                           np.zeros(64 - bits, bool)]).reshape(2, 32)[:len(zero_words)]
    assert words.dtype == jnp.uint32
    np.testing.assert_array_equal(words, [sum(int(b) << i for i, b in enumerate(w))
                                          for w in code])
    np.testing.assert_array_equal(words0, zero_words)

def test_resolve_key_errors_name_the_choices_and_the_type():
  message = ("unknown key_fn 'nope'; expected one of ['auto', 'exact', 'onehot', 'simhash'], "
             "a StateKey or a callable obs -> key")
  with pytest.raises(ValueError, match=re.escape(message)):
    counts.resolve_key("nope")
  with pytest.raises(TypeError, match="key_fn must be a str, StateKey or callable, got int"):
    counts.resolve_key(3)


def test_grid_key_bounds_edges_and_large_exact_indices():
  assert counts.grid_key([0, 2], [1, 2]).num_keys(jnp.zeros(2)) == 2   # high == low: one value
  with pytest.raises(ValueError, match="entries"):
    counts.grid_key(0, [1, 1]).num_keys(jnp.zeros(3))    # only high has the wrong size
  with pytest.raises(ValueError, match="do not fit an int32"):
    counts.grid_key(0, 2**31 - 1).num_keys(jnp.zeros(1))  # exactly 2^31 cells
  # Offsets and indices beyond float32's integers stay exact (int32 arithmetic).
  offset = counts.grid_key(2**25 + 1, 2**25 + 9)
  assert int(offset.apply((), jnp.asarray([2**25 + 4], jnp.int32))) == 3
  tall = counts.grid_key(0, [63, 2**24 - 1])
  assert int(tall.apply((), jnp.asarray([1, 1], jnp.int32))) == 2**24 + 1
  assert int(counts.ravel_index(jnp.asarray([1, 1]), (64, 2**24))) == 2**24 + 1


def test_onehot_and_grid_keys_of_large_or_fractional_inputs():
  # An index beyond float32's integers (2^24 + 1) is exact.
  obs = jnp.zeros(2**24 + 2, jnp.int8).at[2**24 + 1].set(1)
  assert int(jax.jit(lambda o: counts.onehot_key().apply((), o))(obs)) == 2**24 + 1
  # Fractional bounds are cast to integers (toward zero): [0, 3] and [-3, 0] here.
  key = counts.grid_key([0.5, -3], [3.7, -0.5])
  assert key.num_keys(jnp.zeros(2)) == 16
  assert int(key.apply((), jnp.asarray([3.0, 0.0]))) == 3 * 4 + 3


def test_episode_segments_stay_exact_beyond_2_to_the_24_steps():
  """Episodic tables number each environment's episodes within a batch by a running
  count of episode ends: an integer count, so segment 2²⁴ + 1 (which float32 cannot
  hold) is still told apart from 2²⁴."""
  count_episodic = importlib.import_module("rewardjax.rewards.count_episodic")
  t = 2**24 + 2
  done = jnp.ones((t, 1), bool).at[-1].set(False)    # an episode ends at every step but the last
  batch = Transition(obs=None, action=None, reward=None, next_obs=None, terminated=done,
                     truncated=jnp.zeros_like(done))
  env, seg, still_open, ended = count_episodic._episodes(batch, (t, 1))
  assert int(seg[-1]) == t - 1 and int(seg[-2]) == t - 2      # 2²⁴ + 1 and 2²⁴
  assert bool(still_open[-1]) and not bool(still_open[-2]) and bool(ended[0])
  assert int(env.max()) == 0

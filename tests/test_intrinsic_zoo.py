"""Intrinsic rewards beyond RND and counts: formulas against NumPy references,
learning of the learned parts, CLI kinds, and one short PPO run with
every module as a channel.

Formula tests use ``embed=`` a fixed function, so each bonus is an exact
function of hand-made episodes; the references below are written from the
papers' formulas, loop by loop, independently of the modules' vectorised code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax.rewards.channels import channel, combine
from rewardjax.rewards.counts import count_bonus
from rewardjax.rewards.disagreement import disagreement
from rewardjax.rewards.e3b import e3b
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.rewards.icm import icm
from rewardjax.rewards.ngu import ngu
from rewardjax.rewards.noveld import noveld
from rewardjax.rewards.product import product
from rewardjax.rewards.re3 import kth_smallest, re3
from rewardjax.rewards.ride import ride
from rewardjax.rewards.rnd import rnd
from rewardjax.types import Transition

from _toy_envs import Chain

KEY = jax.random.PRNGKey(0)


def _batch(obs, next_obs, terminated=None, truncated=None, action=None):
  """A Transition from ``[T, N, D]`` observations (float32)."""
  next_obs = jnp.asarray(next_obs, jnp.float32)
  shape = next_obs.shape[:2]
  zeros = np.zeros(shape, bool)
  return Transition(
      obs=jnp.asarray(obs, jnp.float32),
      action=jnp.zeros(shape, jnp.int32) if action is None else jnp.asarray(action),
      reward=jnp.zeros(shape, jnp.float32),
      next_obs=next_obs,
      terminated=jnp.asarray(zeros if terminated is None else terminated),
      truncated=jnp.asarray(zeros if truncated is None else truncated))


def _episodes(rng, t=7, n=3, d=3, levels=None):
  """Random observations with episode ends inside the batch (one terminated, one truncated)."""
  if levels is None:
    next_obs = rng.normal(size=(t, n, d)).astype(np.float32)
  else:   # few distinct observations, so states repeat within episodes
    next_obs = rng.integers(0, levels, size=(t, n, d)).astype(np.float32)
  obs = np.concatenate([rng.normal(size=(1, n, d)).astype(np.float32), next_obs[:-1]], 0)
  term = np.zeros((t, n), bool)
  trunc = np.zeros((t, n), bool)
  term[2, 0] = True
  trunc[4, 1] = True
  term[1, 2] = trunc[5, 2] = True
  return obs, next_obs, term, trunc


# --------------------------------------------------------------------- E3B


def _e3b_reference(next_obs, done, ridge, fn, history=None):
  """Explicit inverses: b_t = φ_tᵀ (λI + Σ_{earlier in episode} φφᵀ)⁻¹ φ_t."""
  t, n = done.shape
  history = [[] for _ in range(n)] if history is None else history
  out = np.zeros((t, n))
  for e in range(n):
    for i in range(t):
      phi = fn(next_obs[i, e])
      c = ridge * np.eye(len(phi)) + sum((np.outer(p, p) for p in history[e]),
                                          np.zeros((len(phi), len(phi))))
      out[i, e] = phi @ np.linalg.inv(c) @ phi
      history[e].append(phi)
      if done[i, e]:
        history[e] = []
  return out, history


def test_e3b_sherman_morrison_equals_the_explicit_inverse_across_episodes_and_batches():
  rng = np.random.default_rng(0)
  fn_np = lambda o: np.array([o[0], o[1] * o[2], 1.0])
  fn = lambda o: jnp.stack([o[0], o[1] * o[2], 1.0])
  module = e3b(embed=fn, ridge=0.5)
  b1 = _batch(*_episodes(rng))
  b2 = _batch(*_episodes(rng))
  state = module.init(KEY, b1)
  r1, state, m1 = jax.jit(module.reward_and_update)(state, b1, KEY)
  r2 = jax.jit(module.reward)(state, b2)
  done1 = np.asarray(b1.terminated | b1.truncated)
  ref1, hist = _e3b_reference(np.asarray(b1.next_obs), done1, 0.5, fn_np)
  ref2, _ = _e3b_reference(np.asarray(b2.next_obs), np.asarray(b2.terminated | b2.truncated),
                           0.5, fn_np, hist)
  np.testing.assert_allclose(r1, ref1, rtol=2e-4)
  np.testing.assert_allclose(r2, ref2, rtol=2e-4)
  np.testing.assert_allclose(m1["e3b_bonus_mean"], ref1.mean(), rtol=2e-4)
  # reward reads the state only: the same as the fused path.
  np.testing.assert_allclose(module.reward(module.init(KEY, b1), b1), r1, rtol=1e-6)


# --------------------------------------------------------------------- RIDE


def _episodic_counts_reference(next_obs, done, tables=None):
  """Per env: N_ep(s') counting the current visit; tables restart after done."""
  t, n = done.shape
  tables = [dict() for _ in range(n)] if tables is None else tables
  out = np.zeros((t, n))
  for e in range(n):
    for i in range(t):
      key = tuple(next_obs[i, e].tolist())
      tables[e][key] = tables[e].get(key, 0) + 1
      out[i, e] = tables[e][key]
      if done[i, e]:
        tables[e] = {}
  return out, tables


def test_ride_divides_the_impact_by_the_root_of_the_episodic_count():
  rng = np.random.default_rng(1)
  fn_np = lambda o: np.array([2.0 * o[0], o[1] - o[2]])
  fn = lambda o: jnp.stack([2.0 * o[0], o[1] - o[2]])
  module = ride(embed=fn, key_fn="exact")
  b1 = _batch(*_episodes(rng, t=12, levels=2))
  b2 = _batch(*_episodes(rng, t=12, levels=2))
  state = module.init(KEY, b1)
  r1, state, _ = jax.jit(module.reward_and_update)(state, b1, KEY)
  r2, _, m2 = jax.jit(module.reward_and_update)(state, b2, KEY)
  tables = None
  for b, r in ((b1, r1), (b2, r2)):
    obs, next_obs = np.asarray(b.obs), np.asarray(b.next_obs)
    n, tables = _episodic_counts_reference(next_obs, np.asarray(b.terminated | b.truncated),
                                           tables)
    impact = np.array([[np.linalg.norm(fn_np(next_obs[i, e]) - fn_np(obs[i, e]))
                        for e in range(obs.shape[1])] for i in range(obs.shape[0])])
    assert n.max() >= 3            # states repeat within episodes
    np.testing.assert_allclose(r, impact / np.sqrt(n), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m2["count_mean"], n.mean(), rtol=1e-6)
  np.testing.assert_allclose(module.reward(state, b2), r2, rtol=1e-6)


# --------------------------------------------------------------------- RE3


@pytest.mark.parametrize("k", [1, 3])
def test_re3_is_the_log_of_the_kth_nearest_neighbour_distance_in_the_batch(k):
  rng = np.random.default_rng(2)
  obs, next_obs, term, trunc = _episodes(rng, t=6, n=4)
  next_obs[3, 1] = next_obs[0, 2]          # a duplicate: distance 0 to another sample
  next_obs[4, 3, 0] = np.nan               # earns 0 and is nobody's neighbour
  fn_np = lambda o: np.array([o[0] + o[1], o[2] ** 2])
  module = re3(embed=lambda o: jnp.stack([o[0] + o[1], o[2] ** 2]), k=k, neighbours="batch")
  batch = _batch(obs, next_obs, term, trunc)
  state = module.init(KEY, batch)
  r, _, metrics = jax.jit(module.reward_and_update)(state, batch, KEY)
  ys = [fn_np(o) for o in next_obs.reshape(-1, 3)]
  ref = []
  for i, y in enumerate(ys):
    if not np.all(np.isfinite(y)):
      ref.append(0.0)
      continue
    d = sorted(np.linalg.norm(y - z) for j, z in enumerate(ys)
               if j != i and np.all(np.isfinite(z)))
    ref.append(math.log(1.0 + d[k - 1]))
  np.testing.assert_allclose(r, np.reshape(ref, (6, 4)), rtol=1e-5, atol=1e-6)
  assert float(metrics["nonfinite_inputs"]) == 1.0
  if k == 1:
    assert r[3, 1] == 0.0 and r[0, 2] == 0.0


@pytest.mark.parametrize("k", [1, 3])
def test_re3_by_default_looks_for_neighbours_among_the_steps_of_the_same_environment(k):
  rng = np.random.default_rng(2)
  obs, next_obs, term, trunc = _episodes(rng, t=6, n=4)
  next_obs[3, 1] = next_obs[0, 2]          # a duplicate in another environment: no effect
  next_obs[5, 2] = next_obs[0, 2]          # a duplicate in the same environment: distance 0
  next_obs[4, 3, 0] = np.nan               # earns 0 and is nobody's neighbour
  fn_np = lambda o: np.array([o[0] + o[1], o[2] ** 2])
  module = re3(embed=lambda o: jnp.stack([o[0] + o[1], o[2] ** 2]), k=k)
  batch = _batch(obs, next_obs, term, trunc)
  state = module.init(KEY, batch)
  r, _, metrics = jax.jit(module.reward_and_update)(state, batch, KEY)
  ref = np.zeros((6, 4))
  for e in range(4):
    ys = [fn_np(next_obs[t, e]) for t in range(6)]
    for t, y in enumerate(ys):
      if not np.all(np.isfinite(y)):
        continue
      d = sorted(np.linalg.norm(y - z) for j, z in enumerate(ys)
                 if j != t and np.all(np.isfinite(z)))
      ref[t, e] = math.log(1.0 + d[k - 1])
  np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(module.reward(state, batch), r, rtol=1e-6)
  assert float(metrics["nonfinite_inputs"]) == 1.0
  if k == 1:
    assert r[5, 2] == 0.0 and r[0, 2] == 0.0 and r[3, 1] > 0.0


def test_re3_kth_smallest_counts_ties_with_their_multiplicity():
  x = np.array([[3.0, 1.0, 1.0, 2.0, np.inf],
                [5.0, np.inf, 4.0, np.inf, np.inf],
                [2.0, 2.0, 2.0, 0.0, 7.0]], np.float32)
  for k in range(1, 6):
    ref = np.sort(x, axis=-1)[:, k - 1]
    np.testing.assert_array_equal(kth_smallest(jnp.asarray(x), k), ref)


# --------------------------------------------------------------------- NovelD


def test_noveld_pays_the_clipped_novelty_difference_on_first_episodic_visits_only():
  rng = np.random.default_rng(3)
  module = noveld(alpha=0.7, key_fn="exact")
  b1 = _batch(*_episodes(rng, t=12, levels=2))
  b2 = _batch(*_episodes(rng, t=12, levels=2))
  state = module.init(KEY, b1)
  # n(x) from the module's own RND state, read on the chosen observations.
  plain = rnd(normalize_reward=False)
  tables, step = None, jax.jit(module.reward_and_update)
  for b in (b1, b2):
    n_next = np.asarray(plain.reward(state.rnd, b))
    n_now = np.asarray(plain.reward(state.rnd, b._replace(next_obs=b.obs)))
    visits, tables = _episodic_counts_reference(np.asarray(b.next_obs),
                                                np.asarray(b.terminated | b.truncated), tables)
    ref = np.where(visits == 1, np.maximum(n_next - 0.7 * n_now, 0.0), 0.0)
    r, state, metrics = step(state, b, KEY)
    assert (visits > 1).any() and (ref > 0).any() and (n_next - 0.7 * n_now < 0).any()
    np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["noveld_first_visit_fraction"], np.mean(visits == 1))
  assert float(metrics["rnd_loss"]) > 0.0


# --------------------------------------------------------------------- NGU


def _ngu_episodic_reference(next_obs, done, fn, k, size, eps=1e-3, xi=8e-3, c=1e-3,
                            s_max=8.0, carry=None):
  """NGU's Algorithm 1, per env: the episode's memory (current embedding
  included, FIFO of ``size``), kernel sum over the k nearest, normalised by the
  running mean of every squared kNN distance so far."""
  t, n = done.shape
  memory, mean, count = carry or ([[] for _ in range(n)], [0.0] * n, [0] * n)
  out = np.zeros((t, n))
  for e in range(n):
    for i in range(t):
      phi = fn(next_obs[i, e])
      memory[e] = (memory[e] + [phi])[-size:]
      d2 = sorted(float(np.sum((phi - m) ** 2)) for m in memory[e])[:k]
      count[e] += len(d2)
      mean[e] += (sum(d2) - len(d2) * mean[e]) / count[e]
      scaled = [max((d / mean[e] if mean[e] > 0 else 0.0) - xi, 0.0) for d in d2]
      s = math.sqrt(sum(eps / (x + eps) for x in scaled)) + c
      out[i, e] = 1.0 / s if s <= s_max else 0.0
      if done[i, e]:
        memory[e] = []
  return out, (memory, mean, count)


def test_ngu_episodic_novelty_is_the_kernel_sum_over_the_episode_memory():
  rng = np.random.default_rng(4)
  fn_np = lambda o: np.array([o[0], 0.5 * o[1] + o[2]])
  module = ngu(embed=lambda o: jnp.stack([o[0], 0.5 * o[1] + o[2]]), k=3, memory_size=4,
               lifelong=False)
  b1 = _batch(*_episodes(rng, t=12, levels=3))
  b2 = _batch(*_episodes(rng, t=12, levels=3))
  state = module.init(KEY, b1)
  carry, step = None, jax.jit(module.reward_and_update)
  for b in (b1, b2):
    ref, carry = _ngu_episodic_reference(np.asarray(b.next_obs),
                                         np.asarray(b.terminated | b.truncated), fn_np, 3, 4,
                                         carry=carry)
    np.testing.assert_allclose(module.reward(state, b), ref, rtol=1e-4)
    r, state, _ = step(state, b, KEY)
    np.testing.assert_allclose(r, ref, rtol=1e-4)
    assert (ref == 0.0).any() or len(np.unique(np.round(ref, 4))) > 3   # repeats and novelty


def test_ngu_lifelong_factor_is_the_clipped_standardised_rnd_error():
  rng = np.random.default_rng(5)
  fn = lambda o: o[:2]
  batch = _batch(*_episodes(rng, t=8))
  episodic = ngu(embed=fn, lifelong=False)
  module = ngu(embed=fn, max_scale=1.5)
  state = module.init(KEY, batch)
  r, _, metrics = module.reward_and_update(state, batch, KEY)
  r_ep = episodic.reward(episodic.init(KEY, batch), batch)
  err = np.asarray(rnd(normalize_reward=False).reward(state.rnd, batch), np.float64)
  # Running moments from a prior (mean 0, var 1, count 1e-4) merged with the batch's errors.
  c0, m = 1e-4, err.size
  total = c0 + m
  mean = m * err.mean() / total
  var = (c0 + m * err.var() + err.mean() ** 2 * c0 * m / total) / total
  factor = np.clip(1.0 + (err - mean) / np.sqrt(var + 1e-8), 1.0, 1.5)
  assert (factor > 1.0).any() and (factor == 1.5).any() and (factor == 1.0).any()
  np.testing.assert_allclose(r, np.asarray(r_ep) * factor, rtol=1e-4)
  assert float(metrics["rnd_loss"]) > 0.0


# --------------------------------------------------------------------- learning


def _controlled_data(seed, shift=0.0, t=32, n=8):
  """s ~ N(shift, 1)⁴, a ∈ {0, 1, 2}, s' = s + e_a: the action is visible in (s, s')."""
  rng = np.random.default_rng(seed)
  obs = rng.normal(shift, 1.0, size=(t, n, 4)).astype(np.float32)
  action = rng.integers(0, 3, size=(t, n)).astype(np.int32)
  next_obs = obs + np.eye(4, dtype=np.float32)[action]
  return _batch(obs, next_obs, action=action)


def _train(module, batch, steps):
  """``steps`` updates on the same batch: (metrics of the first, metrics of the last, state)."""
  state = module.init(KEY, batch)
  update = jax.jit(module.update)
  first = None
  for i in range(steps):
    state, metrics = update(state, batch, jax.random.fold_in(KEY, i))
    first = metrics if first is None else first
  return first, metrics, state


def test_icm_forward_loss_and_e3b_inverse_loss_fall_on_a_fixed_data_set():
  batch = _controlled_data(6)
  first, last, _ = _train(icm(num_actions=3), batch, 40)
  assert float(last["icm_forward_loss"]) < 0.5 * float(first["icm_forward_loss"])
  assert float(last["icm_inverse_loss"]) < 0.5 * float(first["icm_inverse_loss"])
  first, last, _ = _train(e3b(num_actions=3), batch, 40)
  assert float(first["e3b_inverse_loss"]) > 0.8 * math.log(3)      # near chance at first
  assert float(last["e3b_inverse_loss"]) < 0.3 * float(first["e3b_inverse_loss"])


def test_disagreement_is_higher_on_unseen_transitions_than_on_trained_ones():
  seen, unseen = _controlled_data(7), _controlled_data(8, shift=4.0)
  module = disagreement(embed="identity", num_actions=3)
  first, last, state = _train(module, seen, 60)
  assert float(last["disagreement_forward_loss"]) < 0.3 * float(first["disagreement_forward_loss"])
  v_seen = float(jnp.mean(module.reward(state, seen)))
  v_unseen = float(jnp.mean(module.reward(state, unseen)))
  assert v_unseen > 5.0 * v_seen
  # Training made the difference: before it the ratio was far smaller.
  fresh = module.init(KEY, seen)
  ratio = float(jnp.mean(module.reward(fresh, unseen)) / jnp.mean(module.reward(fresh, seen)))
  assert v_unseen / v_seen > 3.0 * ratio


# --------------------------------------------------------------------- product


def test_product_multiplies_an_episodic_bonus_by_a_global_one():
  rng = np.random.default_rng(9)
  b1 = _batch(*_episodes(rng, t=12, levels=2))
  b2 = _batch(*_episodes(rng, t=12, levels=2))
  episodic = e3b(embed=lambda o: o, ridge=1.0)
  global_ = count_bonus(beta=1.0, key_fn="exact")
  module = product(episodic, global_)
  state = module.init(KEY, b1)
  s_e, s_g = state["episodic"], state["global"]
  for b in (b1, b2):
    r_e, s_e, _ = episodic.reward_and_update(s_e, b, KEY)
    r_g, s_g, _ = global_.reward_and_update(s_g, b, KEY)
    np.testing.assert_allclose(module.reward(state, b), r_e * r_g, rtol=1e-6)
    r, state, metrics = jax.jit(module.reward_and_update)(state, b, KEY)
    np.testing.assert_allclose(r, np.asarray(r_e) * np.asarray(r_g), rtol=1e-6)
  assert "episodic/e3b_bonus_mean" in metrics and "global/count_mean" in metrics
  with pytest.raises(TypeError, match="global_"):
    product(episodic, "rnd")


# --------------------------------------------------------------------- errors


def test_bad_arguments_are_refused_early_with_their_names():
  with pytest.raises(ValueError, match="embed"):
    e3b(embed="pixels")
  with pytest.raises(ValueError, match="ridge"):
    e3b(ridge=0.0)
  with pytest.raises(ValueError, match="k must"):
    re3(k=0)
  with pytest.raises(ValueError, match="neighbours"):
    re3(neighbours="episode")
  with pytest.raises(ValueError, match="ensemble_size"):
    disagreement(ensemble_size=1)
  with pytest.raises(ValueError, match="alpha"):
    noveld(alpha=-1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    icm(learning_rate=0.0)
  with pytest.raises(ValueError, match="max_scale"):
    ngu(max_scale=0.5)
  batch = _batch(*_episodes(np.random.default_rng(11)))
  with pytest.raises(ValueError, match="num_actions"):
    ride().init(KEY, batch)                        # discrete actions, no num_actions
  module = e3b(embed=lambda o: o)
  state = module.init(KEY, batch)
  with pytest.raises(ValueError, match="environments"):
    module.reward(state, jax.tree.map(lambda x: x[:, :2], batch))


# --------------------------------------------------------------------- agents


def _zoo(num_actions):
  """Every new module with small networks, each as its own channel."""
  small = dict(hidden=(16,), feature_dim=8, num_actions=num_actions)
  return {
      "e3b": e3b(**small), "ride": ride(**small), "re3": re3(**small),
      "noveld": noveld(target_hidden=(16,), predictor_hidden=(16,), output_dim=8),
      "ngu": ngu(memory_size=16, **small), "icm": icm(**small),
      "disagreement": disagreement(ensemble_size=2, **small),
      "product": product(e3b(**small), count_bonus(key_fn="exact")),
  }


@pytest.mark.parametrize("name", ["e3b", "re3"])   # learned and random encoders
def test_grid_observations_earn_what_their_flattened_vectors_earn(name):
  """A ``[6, 6]`` grid observation (DeepSea's) is one input vector of 36 entries to
  every encoder: the module's rewards, and its state after an update, equal those of
  the same batch with each observation flattened, under the same keys."""
  rng = np.random.default_rng(3)
  obs, next_obs, term, trunc = _episodes(rng, t=6, n=3, d=36, levels=2)
  action = rng.integers(0, 2, size=(6, 3)).astype(np.int32)
  flat = _batch(obs, next_obs, term, trunc, action)
  grid = flat._replace(obs=flat.obs.reshape(6, 3, 6, 6), next_obs=flat.next_obs.reshape(6, 3, 6, 6))
  outs = []
  for batch in (flat, grid):
    module = _zoo(num_actions=2)[name]
    state = module.init(KEY, batch)
    r0 = module.reward(state, batch)
    r1, state, _ = module.reward_and_update(state, batch, jax.random.PRNGKey(1))
    outs.append((r0, r1, module.reward(state, batch)))
  for a, b in zip(*outs):
    assert a.shape == (6, 3)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_every_module_trains_as_a_channel_of_ppo():
  """One short PPO run with every module as a channel: each channel's reward
  and metrics are present and finite. One run for all eight modules (~40 s of
  CPU, nearly all compilation) instead of eight runs."""
  from rewardjax.agents import ppo  # pylint: disable=g-import-not-at-top
  env = Chain(length=5, num_actions=2, max_steps=8)
  zoo = _zoo(2)
  rewards = combine(extrinsic=extrinsic(),
                    **{name: channel(m, coef=0.1, gamma=0.99, episodic=False)
                       for name, m in zoo.items()})
  config = ppo.PPOConfig(total_timesteps=4 * 8 * 3, num_envs=4, num_steps=8, update_epochs=1,
                         num_minibatches=1, hidden_sizes=(16,))
  out = jax.jit(ppo.make_train(config, env, None, rewards))(KEY)
  metrics = {k: np.asarray(v) for k, v in out.metrics.items()}
  for name in zoo:
    assert metrics[f"reward/{name}"].shape == (3,)
    assert np.all(np.isfinite(metrics[f"reward/{name}"])), name
    own = [k for k in metrics if k.startswith(f"rewards/{name}/")]
    assert own and all(np.all(np.isfinite(metrics[k])) for k in own), name
  assert metrics["reward/e3b"].max() > 0.0 and metrics["reward/icm"].max() > 0.0
  assert not metrics["nonfinite"].any()
  assert np.all(np.isfinite(metrics["policy_loss"]))


# --------------------------------------------------------------------- CLI kinds


def test_spec_kinds_build_each_module_with_the_environments_action_count():
  from rewardjax import envs, spec  # pylint: disable=g-import-not-at-top
  env, params = envs.make("CartPole-v1")
  parse = lambda text: spec.parse_rewards(text, env_id="CartPole-v1", env=env,
                                          env_params=params, gamma=0.97)
  channels = parse("extrinsic+icm+e3b+noveld@alpha=0.3+ride+re3@k=2"
                   "+disagreement@ensemble_size=3+ngu@lifelong=false")
  assert channels.names == ("extrinsic", "icm", "e3b", "noveld", "ride", "re3",
                            "disagreement", "ngu")
  assert channels.gammas[1:] == (0.99,) * 7 and channels.episodic[1:] == (False,) * 7
  # Options reach the factories, and num_actions comes from the action space.
  channels = parse("icm@feature_dim=8+e3b@ridge=0.5,embed=identity")
  rng = np.random.default_rng(10)
  obs = rng.normal(size=(6, 2, 4)).astype(np.float32)
  batch = _batch(obs, obs + 0.1, action=rng.integers(0, 2, size=(6, 2)).astype(np.int32))
  state = jax.jit(channels.init)(KEY, batch)
  e3b_state = state["e3b"].module                  # normalised: inside a transform
  np.testing.assert_allclose(e3b_state.cov_inv, np.broadcast_to(np.eye(4) / 0.5, (2, 4, 4)))
  embed = state["icm"].module.params["embed"]
  assert jax.tree.leaves(embed["encoder"])[-1].shape[-1] == 8        # feature_dim
  assert jax.tree.leaves(embed["inverse"])[-1].shape[-1] == 2        # CartPole's actions
  with pytest.raises(ValueError, match="embed"):
    parse("e3b@embed=pixels")

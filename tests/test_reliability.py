"""No silent wrong results: traced hyperparameters are checked, divergence is warned of."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import envs
from rewardjax.agents import ppo, trainer

# ----------------------------------------------------------- traced hyperparameters

VALID = {"lr": 1e-3, "clip_eps": 0.1, "max_grad_norm": 1.0, "ent_coef": 0.0, "vf_coef": 0.0,
         "gamma": 1.0, "tau": 1.0, "gae_lambda": 0.0, "q_lambda": 1.0, "eps_start": 1.0,
         "eps_end": 0.0, "novelty.coef": -2.0}
INVALID = [("lr", 0.0), ("lr", -1.0), ("clip_eps", 0.0), ("max_grad_norm", -0.5),
           ("ent_coef", -0.01), ("vf_coef", np.inf), ("gamma", 0.0), ("gamma", 1.5),
           ("tau", 0.0), ("tau", 1.01), ("gae_lambda", -0.1), ("q_lambda", 1.1),
           ("eps_start", 1.5), ("eps_end", -0.1), ("novelty.coef", np.nan), ("lr", np.nan)]


def test_bounds_cover_every_agents_sweepable_names():
  from rewardjax.agents.registry import AGENTS  # pylint: disable=g-import-not-at-top
  names = {n for spec in AGENTS.values() for n in spec.sweepable}
  assert names <= set(trainer.HPARAM_BOUNDS)


def test_invalid_hparams_uses_the_configs_bounds():
  assert not bool(trainer.invalid_hparams(None))
  assert not bool(jax.jit(trainer.invalid_hparams)(VALID))
  for name, value in INVALID:
    assert bool(jax.jit(trainer.invalid_hparams)(dict(VALID, **{name: value}))), (name, value)


@functools.cache
def _tiny_ppo():
  env, env_params = envs.make("CartPole-v1")
  config = ppo.PPOConfig(total_timesteps=4 * 16 * 3, num_envs=4, num_steps=16,
                         num_minibatches=2, update_epochs=1, hidden_sizes=(16,))
  return ppo.make_train(config, env, env_params)


def test_a_bad_traced_sweep_value_is_reported_as_nonfinite():
  train = jax.jit(jax.vmap(_tiny_ppo(), (None, 0)))
  hparams = {"lr": jnp.asarray([2.5e-4, -1.0, 2.5e-4]), "gamma": jnp.asarray([0.99, 0.99, 1.5])}
  metrics = jax.device_get(train(jax.random.PRNGKey(0), hparams).metrics)
  np.testing.assert_array_equal(metrics["invalid_hparams"].all(axis=1), [False, True, True])
  np.testing.assert_array_equal(metrics["nonfinite"].any(axis=1), [False, True, True])
  # The CLI's report finds it like any other non-finite run.
  from rewardjax import cli  # pylint: disable=g-import-not-at-top
  assert cli.first_nonfinite(metrics)[2] == [1, 2]


# ------------------------------------------------------------------- divergence


def _metrics(**arrays):
  u = len(next(iter(arrays.values())))
  return {"update": np.arange(1, u + 1), **{k: np.asarray(v, float) for k, v in arrays.items()}}


def test_divergence_warnings_flag_a_loss_far_beyond_its_running_range():
  healthy = [30.0, 38.0, 55.0, 51.0, 46.0, 80.0, 120.0, 90.0]
  returns = [20.0, 25.0, 30.0, 40.0, 60.0, 90.0, 150.0, 200.0]
  assert not trainer.divergence_warnings(_metrics(value_loss=healthy, episode_return=returns))
  blown = healthy[:4] + [4e8, 3e8, 2e8, 1e8]
  (message,) = trainer.divergence_warnings(_metrics(value_loss=blown, episode_return=returns))
  assert "value_loss" in message and "update 5" in message and "run(s) 0" in message
  # The Q-learners' TD loss, with NaN before learning starts (the first finite
  # value only sets the range), across two runs.
  loss = np.array([[np.nan, np.nan, 3.6, 0.4, 1.9, 5e6], [np.nan, np.nan, 3.2, 0.3, 1.5, 4.0]])
  (message,) = trainer.divergence_warnings({"loss": loss, "episode_return": np.full((2, 6), 10.0)})
  assert "loss jumped to 5e+06 at update 6" in message and "run(s) 0:" in message


def test_divergence_warnings_flag_an_entropy_collapse_not_a_slow_decay():
  collapse = [0.69, 0.044, 1e-7, 0.0, 0.0, 0.0]
  (message,) = trainer.divergence_warnings(_metrics(entropy=collapse))
  assert "entropy collapsed" in message and "update 3" in message
  slow = np.linspace(0.69, 0.004, 200)          # converging over 200 updates
  assert not trainer.divergence_warnings(_metrics(entropy=slow))
  gaussian = np.linspace(1.4, -2.0, 35)         # a Gaussian policy's entropy passes 0
  assert not trainer.divergence_warnings(_metrics(entropy=gaussian))


def test_divergence_warnings_on_real_runs_a_learning_rate_of_1e3_and_a_healthy_one():
  env, env_params = envs.make("CartPole-v1")
  config = ppo.PPOConfig(total_timesteps=4 * 128 * 8)
  train = jax.jit(jax.vmap(ppo.make_train(config, env, env_params), (None, 0)))
  out = train(jax.random.PRNGKey(0), {"lr": jnp.asarray([2.5e-4, 1e3])})
  metrics = jax.device_get(out.metrics)
  healthy, diverged = ({k: v[i] for k, v in metrics.items()} for i in range(2))
  assert trainer.divergence_warnings(healthy) == []
  warnings = trainer.divergence_warnings(diverged)
  assert any("entropy collapsed" in w for w in warnings), warnings
  assert not diverged["nonfinite"].any()      # no NaN: only the detector tells


# ------------------------------------------------------------ running statistics


def test_return_std_recovers_from_a_nonfinite_reward():
  from rewardjax import stats  # pylint: disable=g-import-not-at-top
  r = np.ones((4, 3), np.float32)
  bad = r.copy()
  bad[1, 2] = np.inf
  state = stats.return_std_update(stats.return_std_init((3,)), bad, 0.5)
  # The running return of env 2 restarts after the bad step: G = 1, 1.5 after it.
  np.testing.assert_array_equal(state.ret, [1.875, 1.875, 1.5])
  assert np.isfinite(state.moments.mean) and np.isfinite(state.moments.var)
  later = stats.return_std_update(state, r, 0.5)
  assert np.all(np.isfinite(later.ret)) and np.isfinite(stats.moments_std(later.moments))
  assert np.isfinite(stats.scale_by_return_std(later, r)).all()


def test_running_moments_leave_out_nonfinite_samples():
  from rewardjax import stats  # pylint: disable=g-import-not-at-top
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (6, 5, 3)))
  m = stats.moments_update(stats.moments_init((3,)), x)            # a state to start from
  bad = x.copy()
  bad[1, 2, 0], bad[4, 4, 2] = np.inf, np.nan
  got = jax.jit(stats.moments_update)(m, bad)
  finite = np.delete(x.reshape(30, 3), [1 * 5 + 2, 4 * 5 + 4], axis=0)
  want = stats.moments_merge(m, finite.mean(0), finite.var(0), 30.0)   # they stand for 30
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5)
  # No finite sample: mean and variance stay; the count still advances.
  none = stats.moments_update(m, np.full_like(x, np.nan))
  np.testing.assert_array_equal(none.mean, m.mean)
  np.testing.assert_allclose(none.var, m.var, rtol=1e-6)
  assert float(none.count) == pytest.approx(float(m.count) + 30)
  # Rewards (moments over every axis) too.
  r = stats.moments_update(stats.moments_init(), np.array([1.0, np.inf, 3.0]), axes=(0,))
  assert np.isfinite(r.mean) and np.isfinite(r.var)

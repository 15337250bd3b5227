"""Evaluation inside the training loop (``rewardjax.agents.evaluation``)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.agents import dqn, evaluation, ppo, pqn

from _toy_envs import Chain

EVAL = ("eval/return", "eval/success", "eval/length")


def _always(action):
  return lambda key, obs: jnp.full((obs.shape[0],), action, jnp.int32)


def test_run_episodes_counts_each_environments_first_episode_only():
  env = Chain(length=4, max_steps=8)
  key = jax.random.PRNGKey(0)
  # Right every step: the end (+1, terminated) after 3 steps. The loop runs on for
  # up to 20 steps; the environments' later episodes must not be counted.
  ret, length = evaluation.run_episodes(env, None, _always(1), key, 5, max_steps=20)
  np.testing.assert_array_equal(ret, np.ones(5))
  np.testing.assert_array_equal(length, np.full(5, 3))
  # Left every step: nothing until the 8-step time limit.
  ret, length = evaluation.run_episodes(env, None, _always(0), key, 3, max_steps=20)
  np.testing.assert_array_equal(ret, np.zeros(3))
  np.testing.assert_array_equal(length, np.full(3, 8))
  # Cut at max_steps before the episode ends.
  ret, length = evaluation.run_episodes(env, None, _always(0), key, 3, max_steps=5)
  np.testing.assert_array_equal(length, np.full(3, 5))


def _force_right(params):
  """PPO actor parameters whose policy picks action 1 with probability 1 − e^-100."""
  def f(path, x):
    names = [str(getattr(p, "key", "")) for p in path]
    if "actor" in names and x.shape[-1] == 2:
      return (jnp.array([-50.0, 50.0]) if names[-1] == "bias" else jnp.zeros_like(x))
    return x
  return jax.tree_util.tree_map_with_path(f, params)


@pytest.mark.parametrize("sampled", [False, True])
def test_hand_set_ppo_policy_evaluates_to_the_optimal_return(sampled):
  # Chain(4): the optimal return is 1 in 3 steps; the goal is a return above 0.5.
  cfg = ppo.PPOConfig(total_timesteps=4 * 8 * 2, num_envs=4, num_steps=8, num_minibatches=1,
                      update_epochs=1, hidden_sizes=(8,), eval_every=1, eval_episodes=6,
                      eval_max_steps=16, eval_goal_return=0.5, eval_sampled=sampled)
  train = ppo.make_train(cfg, Chain(length=4, max_steps=8), None)
  runner = train.init(jax.random.PRNGKey(0))
  runner = runner._replace(params=_force_right(runner.params))
  _, metrics = jax.jit(train.run, static_argnums=2)(runner, 0, 2)
  np.testing.assert_array_equal(metrics["eval/return"], [1.0, 1.0])
  np.testing.assert_array_equal(metrics["eval/length"], [3.0, 3.0])
  np.testing.assert_array_equal(metrics["eval/success"], [1.0, 1.0])


@pytest.mark.parametrize("agent,cfg", [
    (dqn, dqn.DQNConfig(total_timesteps=4 * 4 * 4, num_envs=4, num_steps=4, num_gradient_steps=1,
                        minibatch_size=8, buffer_size=64, learning_starts=16,
                        hidden_sizes=(8,), eval_every=2, eval_episodes=4, eval_max_steps=8)),
    (pqn, pqn.PQNConfig(total_timesteps=4 * 4 * 4, num_envs=4, num_steps=4, num_minibatches=1,
                        update_epochs=1, hidden_sizes=(8,), eval_every=2, eval_episodes=4,
                        eval_max_steps=8, eval_epsilon=0.5)),
])
def test_q_learners_evaluate_a_one_action_chain_exactly(agent, cfg):
  # One action: every policy is optimal (return 1 after 2 steps of Chain(3)).
  out = jax.jit(agent.make_train(cfg, Chain(length=3, num_actions=1), None))(
      jax.random.PRNGKey(1))
  # Evaluated after updates 2 and 4 (every 2nd), held after update 3.
  np.testing.assert_array_equal(out.metrics["eval/return"], [np.nan, 1.0, 1.0, 1.0])
  np.testing.assert_array_equal(out.metrics["eval/length"], [np.nan, 2.0, 2.0, 2.0])
  assert np.isnan(out.metrics["eval/success"]).all()      # no goal set


def _tiny(agent):
  if agent is ppo:
    return ppo.PPOConfig(total_timesteps=4 * 16 * 6, num_envs=4, num_steps=16,
                         num_minibatches=2, update_epochs=2, hidden_sizes=(16,))
  if agent is pqn:
    return pqn.PQNConfig(total_timesteps=4 * 16 * 6, num_envs=4, num_steps=16,
                         num_minibatches=2, update_epochs=2, hidden_sizes=(16,))
  return dqn.DDQNConfig(total_timesteps=4 * 8 * 6, num_envs=4, num_steps=8,
                        num_gradient_steps=2, minibatch_size=16, buffer_size=256,
                        learning_starts=64, target_update_interval=64, hidden_sizes=(16,))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "ppo_continuous", "ddqn", "pqn"])
def test_evaluation_consumes_no_training_randomness(name):
  """Training metrics and state with evaluation on equal those with it off, bit for bit
  (vmapped seeds); evaluation metrics are NaN before the first evaluation and held
  between them; (PPO) a run resumed in chunks reports the same evaluation metrics."""
  agent = {"ppo": ppo, "ppo_continuous": ppo, "ddqn": dqn, "pqn": pqn}[name]
  env_id = "Pendulum-v1" if name == "ppo_continuous" else "CartPole-v1"
  env, params = rjx.envs.make(env_id)
  off = _tiny(agent)
  on = dataclasses.replace(off, eval_every=2, eval_episodes=3, eval_max_steps=20)
  keys = jax.random.split(jax.random.PRNGKey(3), 2)       # vmapped seeds
  out_off = jax.jit(jax.vmap(agent.make_train(off, env, params)))(keys)
  train_on = agent.make_train(on, env, params)
  out_on = jax.jit(jax.vmap(train_on))(keys)
  assert set(out_on.metrics) == set(out_off.metrics) | set(EVAL)
  for k, v in out_off.metrics.items():
    np.testing.assert_array_equal(out_on.metrics[k], v, err_msg=k)
  state_on = out_on.runner_state._replace(evaluation=None)
  for a, b in zip(jax.tree.leaves(state_on), jax.tree.leaves(out_off.runner_state)):
    np.testing.assert_array_equal(a, b)

  ret = np.asarray(out_on.metrics["eval/return"])           # [seeds, 6 updates]
  assert np.isnan(ret[:, 0]).all() and np.isfinite(ret[:, 1:]).all()
  np.testing.assert_array_equal(ret[:, 2], ret[:, 1])       # held until update 4
  np.testing.assert_array_equal(ret[:, 4], ret[:, 3])
  assert (np.asarray(out_on.metrics["eval/length"])[:, 1:] >= 1).all()
  assert (np.asarray(out_on.metrics["eval/length"])[:, 1:] <= 20).all()

  if name != "ppo":
    return
  # In chunks of 3 + 3 updates (a checkpointed run): the same evaluation metrics.
  run = jax.jit(train_on.run, static_argnums=2)
  runner, first = run(jax.jit(train_on.init)(keys[0]), 0, 3)
  _, second = run(runner, 3, 3)
  for k in EVAL:
    np.testing.assert_array_equal(np.concatenate([first[k], second[k]]),
                                  np.asarray(out_on.metrics[k])[0], err_msg=k)


def test_bad_evaluation_settings_fail_early_with_named_errors():
  with pytest.raises(ValueError, match="eval_every"):
    ppo.PPOConfig(eval_every=-1)
  with pytest.raises(ValueError, match="eval_episodes"):
    pqn.PQNConfig(eval_episodes=0)
  with pytest.raises(ValueError, match="eval_epsilon"):
    dqn.DQNConfig(eval_epsilon=1.5)
  with pytest.raises(ValueError, match="eval_goal_return"):
    ppo.PPOConfig(eval_goal_return=float("nan"))
  # Chain has no EnvParams.max_steps_in_episode: the step limit must be given.
  with pytest.raises(ValueError, match="eval_max_steps"):
    ppo.make_train(ppo.PPOConfig(total_timesteps=512, eval_every=1), Chain(), None)
  assert evaluation.goal_return("DeepSea-bsuite") == 0.5
  assert evaluation.goal_return("CartPole-v1") is None

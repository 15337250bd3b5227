"""Evaluation of the current policy inside the jitted training loop.

Every ``eval_every`` updates (and after the last one) an agent runs
``eval_episodes`` episodes of its current policy on fresh environments and
reports, over those episodes,

* ``eval/return``: the mean undiscounted extrinsic return (the environment's
  reward; no reward channel is evaluated and nothing is learned);
* ``eval/length``: the mean episode length;
* ``eval/success``: the fraction of episodes whose return exceeds
  ``eval_goal_return`` (NaN when the config sets no goal; ``GOAL_RETURN``
  holds the goals of the environments that have one).

Between evaluations the metrics hold the last evaluation's values; before the
first they are NaN. The values are carried in the agent's runner state
(``RunnerState.evaluation``), so a run resumed from a checkpoint reports the
same metrics as one run straight through.

The policy each agent evaluates: PPO the mode of its action distribution
(``eval_sampled``: a sample; recurrent PPO with one GRU state per evaluation
environment, a ``RecurrentAct``), DQN / PQN greedy on the combined Q
(``eval_epsilon``: ε-greedy).

Randomness: the evaluation key is ``fold_in(runner.key, EVAL_KEY_TAG)`` after the
update; training never folds that tag into its key, and nothing is drawn from
the runner's key itself, so training consumes exactly the random numbers it
consumes with evaluation off and its metrics are bit-identical.

Off (``eval_every == 0``, the default) the agent's loop is the one it has
without this module: ``RunnerState.evaluation`` is ``None`` (no arrays) and no
operation is added.

Sharded, each device runs ``eval_episodes / devices`` episodes with its own
key and the metrics are averaged across devices.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rewardjax import sharding
from rewardjax.envs.rollouts import reset_batch, step_batch

# Folded into the runner's key to make the evaluation key (ASCII "eval").
EVAL_KEY_TAG = 0x6576616C

METRIC_KEYS = ("eval/return", "eval/success", "eval/length")

# Environments with a goal: an episode reaches it iff its return exceeds this.
# DeepSea: the treasure is the only positive reward (+1 minus move costs < 0.01
# per step); MountainCar-v0: an episode that reaches the flag ends before the
# 200-step limit, so its return is above −200.
GOAL_RETURN = {"DeepSea-bsuite": 0.5, "MountainCar-v0": -199.5}


def goal_return(env_id: str) -> float | None:
  """The return above which an episode of ``env_id`` reached its goal, or None."""
  return GOAL_RETURN.get(env_id)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Evaluation fields every agent config has (off by default)."""
  eval_every: int = 0            # updates between evaluations; 0: no evaluation
  eval_episodes: int = 16        # episodes per evaluation, run in parallel
  # Steps after which an unfinished evaluation episode is cut; 0: the
  # environment's ``max_steps_in_episode``.
  eval_max_steps: int = 0
  # An episode succeeds iff its return exceeds this; None: ``eval/success`` is NaN.
  eval_goal_return: float | None = None

  def check_eval(self) -> None:
    """Named errors for bad evaluation fields (called by the configs' checks)."""
    for name in ("eval_every", "eval_max_steps"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if isinstance(self.eval_episodes, bool) or not isinstance(self.eval_episodes, int) \
        or self.eval_episodes < 1:
      raise ValueError(f"eval_episodes must be an integer >= 1, got {self.eval_episodes!r}")
    goal = self.eval_goal_return
    if goal is not None and (isinstance(goal, bool) or not isinstance(goal, (int, float))
                             or not math.isfinite(goal)):
      raise ValueError(f"eval_goal_return must be a finite number or None, got {goal!r}")


def horizon(config: EvalConfig, env_params) -> int:
  """Steps per evaluation episode at most: ``eval_max_steps`` or the env's time limit."""
  if config.eval_max_steps:
    return config.eval_max_steps
  fields = ({f.name for f in dataclasses.fields(env_params)}
            if dataclasses.is_dataclass(env_params) else set())
  if "max_steps_in_episode" not in fields:
    raise ValueError("evaluation needs a step limit: this environment's parameters have no "
                     "max_steps_in_episode; set eval_max_steps")
  return int(env_params.max_steps_in_episode)


def per_device_episodes(config: EvalConfig, mesh) -> int:
  """Evaluation episodes per device; a named error if they do not split evenly."""
  num_devices = sharding.mesh_size(mesh)
  if config.eval_episodes % num_devices:
    raise ValueError(f"eval_episodes ({config.eval_episodes}) must split evenly over "
                     f"{num_devices} devices")
  return config.eval_episodes // num_devices


class RecurrentAct(NamedTuple):
  """A policy with a state per environment (a recurrent core), for ``run_episodes``."""
  init: Callable           # num_envs -> state [N, ...] at an episode's first step
  step: Callable           # (key, obs [N, ...], state) -> (env actions [N, ...], state)


def run_episodes(env, env_params, act: Callable | RecurrentAct, key: jax.Array, num_envs: int,
                 max_steps: int):
  """The first episode of each of ``num_envs`` fresh environments under ``act``.

  ``act(key, obs [N, ...]) -> env actions [N, ...]``, or a ``RecurrentAct``
  whose state each environment carries from step to step. Steps all environments
  together (``lax.while_loop``) until every one has ended its first episode or
  ``max_steps`` steps have passed; rewards after an environment's first episode
  ended are not counted. Returns ``(return [N], length [N])``; an episode cut
  at ``max_steps`` counts its return so far and length ``max_steps``.
  """
  k_reset, k_run = jax.random.split(key)
  obs, env_state = reset_batch(env, env_params, k_reset, num_envs)
  zeros_f = jnp.zeros((num_envs,), jnp.float32)
  zeros_i = jnp.zeros((num_envs,), jnp.int32)
  recurrent = isinstance(act, RecurrentAct)
  state = act.init(num_envs) if recurrent else None   # only the first episode is counted:
  carry = (obs, env_state, zeros_f, zeros_i, jnp.zeros((num_envs,), jnp.bool_),
           jnp.int32(0), k_run, state)               # its state is never reset

  def running(carry):
    *_, ended, t, _, _ = carry
    return (t < max_steps) & ~jnp.all(ended)

  def step(carry):
    obs, env_state, ret, length, ended, t, key, state = carry
    key, k_act, k_env = jax.random.split(key, 3)
    action, state = act.step(k_act, obs, state) if recurrent else (act(k_act, obs), None)
    obs, env_state, r_t, term_t, trunc_t, _ = step_batch(env, env_params, k_env, env_state,
                                                          action)
    ret = ret + jnp.where(ended, 0.0, r_t.astype(jnp.float32))
    length = length + jnp.where(ended, 0, 1)
    ended = ended | term_t | trunc_t
    return obs, env_state, ret, length, ended, t + 1, key, state

  _, _, ret, length, *_ = jax.lax.while_loop(running, step, carry)
  return ret, length


def summarise(ret: jax.Array, length: jax.Array, goal: float | None) -> dict:
  """``eval/return``, ``eval/success``, ``eval/length`` of one evaluation, over devices."""
  success = (jnp.mean((ret > goal).astype(jnp.float32)) if goal is not None
             else jnp.float32(jnp.nan))
  metrics = {"eval/return": ret.mean(), "eval/success": success,
             "eval/length": length.astype(jnp.float32).mean()}
  return {k: sharding.pmean(v) for k, v in metrics.items()}


def init_metrics() -> dict:
  """What the evaluation metrics hold before the first evaluation: NaN."""
  return {k: jnp.float32(jnp.nan) for k in METRIC_KEYS}


def make_evaluate(config: EvalConfig, env, env_params, mesh=None):
  """``evaluate(act, key) -> metrics``, or None when evaluation is off.

  ``act(key, obs) -> env actions`` (or a ``RecurrentAct``) is the policy to
  evaluate (closing over the current parameters). Checks the fields and the step limit before any compile.
  """
  if not config.eval_every:
    return None
  max_steps = horizon(config, env_params)
  num_envs = per_device_episodes(config, mesh)

  def evaluate(act, key):
    ret, length = run_episodes(env, env_params, act, key, num_envs, max_steps)
    return summarise(ret, length, config.eval_goal_return)

  return evaluate


def after_update(evaluate, config: EvalConfig, num_updates: int, runner, i,
                 metrics: dict, make_act: Callable[[Any], Callable]):
  """Evaluates after update ``i`` (0-based) when it is due; adds the held metrics.

  Due when ``(i + 1) % eval_every == 0`` or ``i`` is the last update.
  ``make_act(runner)`` is the policy of the updated runner. A no-op when
  ``evaluate`` is None. Returns ``(runner, metrics)``.
  """
  if evaluate is None:
    return runner, metrics
  due = ((i + 1) % config.eval_every == 0) | (i + 1 == num_updates)
  key = jax.random.fold_in(runner.key, EVAL_KEY_TAG)
  held = jax.lax.cond(due, lambda: evaluate(make_act(runner), key), lambda: runner.evaluation)
  return runner._replace(evaluation=held), dict(metrics, **held)

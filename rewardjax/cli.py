"""The ``rewardjax`` command: train N seeds in one compiled call, then report.

    rewardjax train                                   # CartPole-v1 demo, 4 seeds
    rewardjax train --env MountainCar-v0 --rewards extrinsic+potential:mountaincar@scale=10 \\
        --seeds 8 --total-timesteps 1000000 --out runs/mc-shaped
    rewardjax train --env DeepSea-bsuite --env-kwargs size=20 --rewards extrinsic+counts \\
        --ppo.lr 3e-4 --ppo.num-envs 16
    rewardjax train --help                            # every option, with agent hyperparameters

A run is three steps: ``resolve`` (arguments -> a validated ``Plan``: env,
reward channels, agent config, sweep grid, output folder), ``train`` (compile,
then train in one call or in checkpointed chunks, with a progress bar) and
``report`` (CSV, JSON, plot, summary table). Training is one
``jax.jit(jax.vmap(train))`` over seeds (and sweep settings); compile time is
measured separately (``.lower(keys).compile()``). The output folder receives
``metrics.csv`` (one row per seed and update), ``summary.json`` and
``learning_curve.png``, each written atomically (a temporary file renamed over
the old one).

Everything that can be checked is checked before compiling: arguments, reward
spec, ``--env-kwargs`` against the environment's parameter types, the seed
range, and the output folder, which is created and test-written; a folder that
holds another run's results or checkpoints is refused unless ``--overwrite``
(``--resume`` continues that run instead). A ``--total-timesteps`` that is not
a whole number of rollouts is rounded down, and the output says to how many.

Exit status (``Exit``):

  0    success
  1    a bug: an unexpected error, printed with its traceback
  2    bad arguments or an unusable output folder, found before compiling
  3    trained, but parameters or rewards became NaN/inf (metrics are written)
  4    a checkpoint problem: nothing intact to resume from, or a save that failed
  5    stalled: no progress and no CPU use for ``--stall-timeout`` seconds (the
       jaxlib 0.10.2 CPU deadlock, README "A CPU deadlock")
  130  interrupted (Ctrl-C); one line gives the ``--resume`` command when
       checkpoints exist, and nothing already written is removed

``--resume DIR`` continues a run saved with ``--checkpoint-every`` from its
newest intact checkpoint (a damaged newer one is renamed ``<step>.broken``
with a one-line warning), with the saved arguments; ``rewardjax.resume`` says
which options may change (a longer ``--total-timesteps``, ``--checkpoint-every``,
output options). Resuming a finished run says so and trains nothing.

``--distributed`` calls ``jax.distributed.initialize`` (coordinator, process
count and id from ``--coordinator-address`` / ``--num-processes`` /
``--process-id``, else ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
``JAX_PROCESS_ID``, else the cluster's own variables, e.g. Slurm's) before
anything touches a JAX backend; the mesh spans every process's devices, every
process trains and saves checkpoints (orbax coordinates them), and only
process 0 writes metrics, plot and summary.

A channel whose γ the rewards spec leaves unset follows the agent's ``gamma``,
so ``--sweep gamma=...`` reaches it (``summary.json`` then gives its ``gamma``
as null; the settings list the values). Channels built with the agent's γ
(potential shaping, return-std normalisation) cannot follow a γ sweep, which is
refused unless their terms set ``@gamma=``.

Agent hyperparameters are nested under the agent's name (``--ppo.lr``); the
command reads what it needs of an agent from its record in
``rewardjax.agents.registry`` (a new agent is one ``AgentSpec`` there).
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import inspect
import itertools
import json
import math
import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from rich.console import Console
from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from rewardjax import (checkpoint, envs, plots, resume, run_folder, sharding, spec, watchdog,
                       writers)
from rewardjax.agents import evaluation
from rewardjax.agents import trainer as agent_trainer
from rewardjax.agents.registry import AGENTS, AgentSpec


class Exit(enum.IntEnum):
  """The command's exit status (module docstring)."""
  OK = 0
  BUG = 1
  USAGE = 2
  NONFINITE = 3
  CHECKPOINT = 4
  STALLED = 5
  INTERRUPTED = 130


@dataclasses.dataclass(frozen=True)
class TrainArgs:
  """Train an agent on several seeds at once and write metrics and a learning curve.

  Reward specs are terms joined by '+': kind[:arg][@option=value,...], e.g.
  'extrinsic+potential:mountaincar@scale=10' or 'extrinsic+rnd@coef=0.5'. Every
  term takes coef, gamma, episodic and name; other options go to its reward
  module (an unknown option lists the valid ones).
  """
  agent: str = "ppo"
  """Algorithm (one of the keys of rewardjax.agents.registry.AGENTS)."""
  env: str = "CartPole-v1"
  """Environment id (any gymnax id or one registered with rewardjax.envs)."""
  env_kwargs: tuple[str, ...] = ()
  """Environment keyword arguments as name=value, e.g. size=20 max_steps_in_episode=200."""
  delay_rewards: bool = False
  """Withhold rewards and pay each episode's sum at its last step (rewardjax.envs.DelayedReward)."""
  rewards: str = "extrinsic"
  """Reward spec, e.g. extrinsic+rnd or extrinsic+potential:mountaincar@scale=10."""
  seeds: int = 4
  """Number of seeds, trained together in one vmapped, compiled call."""
  seed: int = 0
  """First seed; seed i of the run uses PRNGKey(seed + i), so single seeds can be rerun."""
  total_timesteps: int = 500_000
  """Environment steps per seed (overrides the agent config's total_timesteps)."""
  eval_every: int = 0
  """Evaluate the current policy every K updates and after the last (0: never): greedy,
  extrinsic return only, on fresh environments; metrics eval/return, eval/success (for
  environments with a goal: DeepSea, MountainCar) and eval/length."""
  eval_episodes: int = 16
  """Episodes per evaluation, run in parallel."""
  out: str | None = None
  """Output folder; default runs/<agent>-<env>-<rewards>."""
  progress: bool = True
  """Show a progress bar while training."""
  sweep: tuple[str, ...] = ()
  """Traced sweeps, all in one compiled call: name=v1,v2,... with an agent hyperparameter
  (lr or ppo.lr, ent_coef, clip_eps, gamma, ...) or a channel coefficient (novelty.coef);
  several assignments after one --sweep form a grid (repeating --sweep is an error)."""
  checkpoint_every: int = 0
  """Run in chunks of K updates and save the full state with orbax after each (0: one call)."""
  resume: str | None = None
  """Continue a stopped run from its output folder (its checkpoints/ and saved arguments;
  options given again must match them, except a longer --total-timesteps, --checkpoint-every
  and output options)."""
  overwrite: bool = False
  """Replace the results and checkpoints of an earlier run in --out (without it such a
  folder is refused)."""
  stall_timeout: float = 300.0
  """Stop with exit status 5 after this many seconds with no progress and no CPU use (the
  jaxlib 0.10.2 CPU deadlock; CPU backend only); 0 disables."""
  num_devices: int = 1
  """Split the environments over this many local devices (data-parallel, jax.shard_map)."""
  tensorboard: str | None = None
  """Write TensorBoard scalars (tensorboardX) to this folder, one run per setting and seed."""
  wandb_project: str | None = None
  """Log metrics to this Weights & Biases project (needs the wandb package)."""
  distributed: bool = False
  """One process of a multi-process run: jax.distributed.initialize first; the mesh spans
  every process's devices; only process 0 writes metrics, plot and summary."""
  coordinator_address: str | None = None
  """With --distributed: host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS, or
  detected on Slurm and other clusters)."""
  num_processes: int | None = None
  """With --distributed: the number of processes (default: $JAX_NUM_PROCESSES, or detected)."""
  process_id: int | None = None
  """With --distributed: this process's index (default: $JAX_PROCESS_ID, or detected)."""


def _args_class() -> type:
  """``TrainArgs`` plus one nested config field per agent (``--ppo.lr``)."""
  fields = [(name, agent.config_cls, dataclasses.field(default_factory=agent.config_cls))
            for name, agent in AGENTS.items()]
  cls = dataclasses.make_dataclass("TrainArgs", fields, bases=(TrainArgs,), frozen=True)
  cls.__doc__ = f"{inspect.cleandoc(TrainArgs.__doc__)}\n\nReward kinds:\n{spec.describe_kinds()}"
  cls.__module__ = __name__
  return cls


class UsageError(ValueError):
  """A bad argument combination, reported without a traceback (exit status 2)."""


# --------------------------------------------------------------------------- setup


def parse_env_kwargs(items: Sequence[str]) -> dict[str, Any]:
  """``["size=20", "a=1,b=true"]`` -> ``{"size": 20, "a": 1, "b": True}``."""
  out = {}
  for item in items:
    for part in spec.split_top_level(item, ","):
      name, eq, value = part.partition("=")
      name = name.strip()
      if not eq or not name.isidentifier() or not value.strip():
        raise UsageError(f"--env-kwargs: expected name=value, got {part!r}")
      out[name] = spec.parse_value(value)
  return out


def check_env_params(env_params, env_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
  """``(env_params, env_kwargs)`` with each kwarg that sets a parameter field checked
  against (and converted to) the type of the field's default, before anything compiles.

  Constructor arguments (DeepSea's ``size``) are left to the constructor. Raises
  ``UsageError`` naming the field and the expected type, or an episode limit below 1.
  """
  if not dataclasses.is_dataclass(env_params):
    return env_params, env_kwargs
  defaults = {f.name: f.default for f in dataclasses.fields(env_params)
              if f.default is not dataclasses.MISSING}
  checked = dict(env_kwargs)
  for name, value in env_kwargs.items():
    default = defaults.get(name)
    if not isinstance(default, (bool, int, float)):
      continue
    try:
      checked[name] = spec.coerce(name, value, spec.Option(default))
    except ValueError:
      expected = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
      raise UsageError(f"--env-kwargs {name}={value}: {name} takes {expected} (its default "
                       f"is {default!r})") from None
  params = {k: v for k, v in checked.items() if k in defaults}
  env_params = dataclasses.replace(env_params, **params) if params else env_params
  limit = getattr(env_params, "max_steps_in_episode", 1)
  if isinstance(limit, int) and limit < 1:
    given = " ".join(f"{k}={v}" for k, v in env_kwargs.items())
    raise UsageError(f"--env-kwargs {given}: max_steps_in_episode must be >= 1 (steps per "
                     f"episode), got {limit}")
  return env_params, checked


# PRNGKey seeds of a vmapped batch are int32.
MAX_SEED = 2**31 - 1


def check_seeds(first: int, count: int) -> None:
  """Refuses seeds outside int32 (``jax.random.PRNGKey`` of a vmapped batch)."""
  if count < 1:
    raise UsageError(f"--seeds must be >= 1, got {count}")
  last = first + count - 1
  if first < -MAX_SEED - 1 or last > MAX_SEED:
    raise UsageError(
        f"--seed {first} --seeds {count}: seeds run from {first} to {last}, outside the "
        f"int32 range of PRNGKey seeds [{-MAX_SEED - 1}, {MAX_SEED}]; use --seed <= "
        f"{MAX_SEED - count + 1}")


def rounding_note(total_timesteps: int, config) -> str | None:
  """Says how many steps a run trains when ``--total-timesteps`` is not whole rollouts."""
  batch = config.batch_size
  trained = config.num_updates * batch
  if trained == total_timesteps:
    return None
  return (f"--total-timesteps {total_timesteps:,} is not a multiple of one rollout "
          f"({batch:,} env steps): training {config.num_updates:,} updates = {trained:,} env "
          f"steps per seed (whole-rollout totals nearby: {trained:,} or {trained + batch:,})")


def agent_config(args) -> Any:
  """The selected agent's config with the top-level overrides applied."""
  if args.agent not in AGENTS:
    raise UsageError(f"unknown agent {args.agent!r}; available: {', '.join(AGENTS)}")
  cfg_cls = AGENTS[args.agent].config_cls
  for name, other in AGENTS.items():
    if name != args.agent and getattr(args, name) != other.config_cls():
      raise UsageError(f"--{name}.* options were given but the agent is {args.agent!r}")
  config = getattr(args, args.agent)
  evaluates = AGENTS[args.agent].evaluates
  if args.eval_every and not evaluates:
    raise UsageError(f"agent {args.agent!r} does not evaluate: --eval-every needs one that does")
  default = cfg_cls()
  top_level = ("total_timesteps", "eval_every", "eval_episodes") if evaluates else (
      "total_timesteps",)
  for name in top_level:
    if getattr(config, name) not in (getattr(default, name), getattr(args, name)):
      flag = name.replace("_", "-")
      raise UsageError(f"use --{flag} rather than --{args.agent}.{flag}")
  config = dataclasses.replace(config, total_timesteps=args.total_timesteps)
  if not evaluates:
    return config
  goal = config.eval_goal_return
  return dataclasses.replace(
      config, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
      eval_goal_return=evaluation.goal_return(args.env) if goal is None else goal)


def default_out(args) -> Path:
  rewards = re.sub(r"[^A-Za-z0-9._=-]+", "_", args.rewards)[:80]
  env = args.env.replace("/", "_")    # brax/<name> ids: one folder, not two
  return Path("runs") / f"{args.agent}-{env}-{rewards}"


class ProgressTracker:
  """Drives a rich progress bar from the agent's per-update host callback.

  Under ``vmap``, ``jax.debug.callback`` is called once per seed per update
  with scalars (jax 0.10); a batched call with ``[seeds]`` arrays is counted
  element by element, so either way the bar advances by one update once every
  seed has reported it.
  """

  def __init__(self, progress: Progress, task, num_seeds: int,
               heartbeat: watchdog.Heartbeat | None = None):
    self.progress, self.task, self.num_seeds = progress, task, num_seeds
    self.heartbeat = heartbeat
    self.returns: dict[int, list[float]] = {}

  def __call__(self, metrics: dict) -> None:
    if self.heartbeat is not None:
      self.heartbeat.beat()
    updates = np.ravel(metrics["update"])
    returns = np.ravel(metrics["episode_return"])
    if updates.size != returns.size:     # unbatched update counter, batched returns
      updates = np.broadcast_to(updates, returns.shape)
    description = None
    for u, r in zip(updates.tolist(), returns.tolist()):
      seen = self.returns.setdefault(u, [])
      seen.append(r)
      if len(seen) == self.num_seeds:
        description = f"return {np.mean(self.returns.pop(u)):8.2f}"
    self.progress.update(self.task, advance=updates.size / self.num_seeds,
                         **({"description": description} if description else {}))


# --------------------------------------------------------------------------- outputs


def scalar_metrics(metrics: dict) -> dict[str, np.ndarray]:
  """The ``[seeds, updates]`` metrics, ``update`` and ``env_steps`` first."""
  arrays = {k: np.asarray(v) for k, v in metrics.items()}
  order = ["update", "env_steps"] + [k for k in arrays if k not in ("update", "env_steps")]
  return {k: arrays[k] for k in order if k in arrays and arrays[k].ndim == 2}


def write_csv(path: Path, seeds: Sequence[int], columns: dict[str, np.ndarray],
              settings: Sequence[str] | None = None) -> None:
  """One row per seed and update; with ``settings`` (one label per seed row), a sweep's.
  Written atomically: ``path`` holds the old file or the complete new one."""
  names = list(columns)
  with run_folder.atomic_open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow((["setting"] if settings is not None else []) + ["seed", *names])
    lists = {k: (v.astype(np.int64) if v.dtype == bool else v).tolist()
             for k, v in columns.items()}
    for i, seed in enumerate(seeds):
      first = [settings[i]] if settings is not None else []
      for u in range(columns[names[0]].shape[1]):
        writer.writerow([*first, seed, *(lists[k][i][u] for k in names)])


def _json_safe(x):
  """NaN/inf become null: strict JSON has no spelling for them."""
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: _json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_json_safe(v) for v in x]
  return x


def first_nonfinite(metrics: dict) -> tuple[int, int, list[int]] | None:
  """``(update, env_steps, seed indices)`` where NaN/inf first appeared, or ``None``."""
  bad = np.asarray(metrics.get("nonfinite", False))
  if not bad.any():
    return None
  bad = bad.reshape(-1, bad.shape[-1])
  first = int(np.min(np.where(bad.any(axis=1), np.argmax(bad, axis=1), bad.shape[1])))
  update = np.asarray(metrics["update"]).reshape(bad.shape)[0, first]
  steps = np.asarray(metrics["env_steps"]).reshape(bad.shape)[0, first]
  return int(update), int(steps), [int(s) for s in np.flatnonzero(bad[:, first])]


def summary_table(seeds, final, best, episodes, eval_final=None, eval_success=None) -> Table:
  """Per seed: the final and best training returns, the episodes finished and, when the
  run evaluated, the last evaluation's return and success rate."""
  table = Table(title="episode return per seed")
  columns = ["seed", "final return", "best return", "episodes"]
  evals = [c for c in (eval_final, eval_success) if c is not None]
  columns += ["eval return", "eval success"][:len(evals)]
  for col in columns:
    table.add_column(col, justify="right")
  for i, (s, f, b, e) in enumerate(zip(seeds, final, best, episodes)):
    table.add_row(str(s), f"{f:.2f}", f"{b:.2f}", str(e), *(f"{c[i]:.2f}" for c in evals))
  if len(seeds) > 1:
    table.add_row("mean ± std", f"{np.mean(final):.2f} ± {np.std(final):.2f}",
                  f"{np.mean(best):.2f}", f"{np.mean(episodes):.0f}",
                  *(f"{np.mean(c):.2f} ± {np.std(c):.2f}" for c in evals), style="bold")
  return table


# --------------------------------------------------------------------------- resolve


def parse_sweep(items: Sequence[str], agent: str, config, sweepable: Sequence[str]
                ) -> list[dict[str, float]]:
  """``["lr=1e-3,3e-4", "novelty.coef=0.1,1"]`` -> the grid of settings (dicts)."""
  axes: dict[str, list[float]] = {}
  config_fields = {f.name for f in dataclasses.fields(config)}
  for item in items:
    name, eq, values = item.partition("=")
    name = name.strip()
    if name.startswith(agent + "."):
      name = name[len(agent) + 1:]
    name = name.replace("-", "_") if "." not in name else name
    if not eq or not values.strip():
      raise UsageError(f"--sweep: expected name=v1,v2,..., got {item!r}")
    if name not in sweepable:
      raise UsageError(f"--sweep: {name!r} cannot be swept; sweepable: {', '.join(sweepable)}")
    if name in axes:
      raise UsageError(f"--sweep: {name!r} given twice")
    vals = []
    for v in spec.split_top_level(values, ","):
      x = spec.parse_value(v)
      if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise UsageError(f"--sweep {name}: expected finite numbers, got {v.strip()!r}")
      if name in config_fields:   # the config's own validation (e.g. lr > 0, gamma in (0, 1])
        try:
          dataclasses.replace(config, **{name: float(x)})
        except ValueError as e:
          raise UsageError(f"--sweep {name}={v.strip()}: {e}") from e
      vals.append(float(x))
    axes[name] = vals
  if not axes:
    return []
  names = list(axes)
  return [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]


def setting_label(setting: dict[str, float]) -> str:
  return ",".join(f"{k}={v:g}" for k, v in setting.items())


@dataclasses.dataclass(frozen=True)
class Plan:
  """A run, resolved and validated from the arguments before anything compiles."""
  args: Any                  # the arguments (a resumed run's own, new output options)
  agent: AgentSpec
  config: Any                # the agent's config, with --total-timesteps applied
  env: Any
  env_params: Any
  env_kwargs: dict[str, Any]
  rewards: spec.Rewards      # channels; γ left unset where it follows the agent's
  settings: list[dict[str, float]]   # the sweep grid; [] without --sweep
  seeds: list[int]
  out_dir: Path
  mesh: Any                  # None on one device
  resume_dir: Path | None
  writes: bool = True        # this process writes the outputs (process 0)

  @property
  def sweep(self) -> bool:
    return bool(self.settings)

  @property
  def chunked(self) -> bool:
    return self.args.checkpoint_every > 0 or self.resume_dir is not None

  @property
  def checkpoint_dir(self) -> Path:
    return self.out_dir / run_folder.CHECKPOINTS

  @property
  def row_seeds(self) -> list[int]:
    """The seed of each run, settings outer and seeds inner (the rows of the outputs)."""
    return self.seeds * max(1, len(self.settings))

  @property
  def row_settings(self) -> list[str] | None:
    """The setting label of each run; ``None`` without a sweep."""
    if not self.sweep:
      return None
    return [setting_label(st) for st in self.settings for _ in self.seeds]


def _resumed_args(args, given: frozenset[str] | None, err: Console
                  ) -> tuple[Any, Path | None]:
  """With ``--resume``, the stopped run's arguments merged with the new command line."""
  if not args.resume:
    return args, None
  resume_dir = Path(args.resume)
  if args.overwrite:
    raise UsageError("--resume continues the run in its folder; --overwrite would delete it")
  if args.out is not None and Path(args.out) != resume_dir:
    raise UsageError(f"--resume writes to the run's own folder {resume_dir}; leave out --out")
  ckpt_dir = resume_dir / run_folder.CHECKPOINTS
  if not ckpt_dir.is_dir():
    raise UsageError(f"--resume: no checkpoints in {ckpt_dir} (run with --checkpoint-every K)")
  ckpt = checkpoint.Checkpointer(ckpt_dir)
  try:
    meta, step, _ = ckpt.newest_meta(resume.check_record)
  finally:
    ckpt.close()
  try:
    saved = resume.args_from_json(meta["args"], args)
  except (KeyError, TypeError, ValueError) as e:
    raise checkpoint.CheckpointError(
        f"checkpoint {step} in {ckpt_dir}: its saved arguments do not fit this version of "
        f"rewardjax ({checkpoint.first_line(e)})") from e
  try:
    merged = resume.merge(args, saved, given)
  except ValueError as e:
    raise UsageError(str(e)) from e
  err.print(Text(f"resuming {resume_dir} from update {step}", style="dim"))
  return merged, resume_dir


def check_gamma_sweep(settings: list[dict[str, float]], rewards: spec.Rewards,
                      config) -> None:
  """Refuses a γ sweep that channels built with the agent's γ could not follow."""
  if not settings or "gamma" not in settings[0] or not rewards.fixed_agent_gamma:
    return
  raise UsageError(
      f"--sweep gamma: channel(s) {', '.join(rewards.fixed_agent_gamma)} were built with the "
      f"agent's gamma ({config.gamma:g}) because their reward needs it when built (potential "
      "shaping, return-std normalisation), so a gamma sweep would not reach them; set their "
      f"gamma in the rewards spec (e.g. @gamma={config.gamma:g}) to sweep the other channels'")


def _make_mesh(args):
  """The device mesh: every process's devices with ``--distributed``; ``None`` on one."""
  if args.distributed:
    count = jax.device_count()
    if args.num_devices not in (1, count):
      raise UsageError(f"--distributed uses all {count} devices of all processes; "
                       f"leave out --num-devices {args.num_devices}")
    return sharding.make_mesh(count)
  return sharding.make_mesh(args.num_devices) if args.num_devices != 1 else None


def _environment(args) -> tuple[Any, Any, dict[str, Any]]:
  """``(env, env_params, env_kwargs)`` with the kwargs checked against the parameter types."""
  env_kwargs = parse_env_kwargs(args.env_kwargs)
  env, env_params = envs.make(args.env, **env_kwargs)
  env_params, env_kwargs = check_env_params(env_params, env_kwargs)
  if args.delay_rewards:
    env = envs.DelayedReward(env)
  return env, env_params, env_kwargs


def _out_dir(args, resume_dir: Path | None, writes: bool) -> Path:
  """The output folder, created and checked writable (by the writing process)."""
  out = resume_dir or (Path(args.out) if args.out else default_out(args))
  if writes:
    run_folder.prepare(out, overwrite=args.overwrite, resuming=resume_dir is not None)
    if args.tensorboard:
      run_folder.check_writable(Path(args.tensorboard), "--tensorboard")
  return out


def resolve(args, err: Console, given: frozenset[str] | None = None) -> Plan:
  """Arguments -> a validated ``Plan``; every bad argument is a ``UsageError`` here.

  The output folder is prepared last, so that a run refused for any other
  reason leaves no folder behind.
  """
  args, resume_dir = _resumed_args(args, given, err)
  try:
    config = agent_config(args)
    check_seeds(args.seed, args.seeds)
    agent = AGENTS[args.agent]
    env, env_params, env_kwargs = _environment(args)
    rewards = spec.build_rewards(args.rewards, env_id=args.env, env=env,
                                 env_params=env_params, gamma=config.gamma)
    if args.checkpoint_every < 0:
      raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.stall_timeout < 0:
      raise UsageError(f"--stall-timeout must be >= 0 (0 disables), got {args.stall_timeout}")
    mesh = _make_mesh(args)
  except (ValueError, TypeError) as e:
    raise UsageError(str(e)) from e
  if mesh is not None and not agent.supports_mesh:
    raise UsageError(f"agent {args.agent!r} does not support --num-devices / --distributed")
  channels = rewards.channels
  scheduled = [n for n, s in zip(channels.names, channels.schedules) if s is not None]
  settings = parse_sweep(args.sweep, args.agent, config,
                         agent.sweepable_names(channels.names, scheduled))
  check_gamma_sweep(settings, rewards, config)
  if (args.checkpoint_every > 0 or resume_dir or settings) and not agent.trainer:
    raise UsageError(f"agent {args.agent!r} does not support --sweep / --checkpoint-every")
  writes = jax.process_index() == 0
  try:
    out_dir = _out_dir(args, resume_dir, writes)
  except run_folder.FolderError as e:
    raise UsageError(str(e)) from e
  return Plan(args, agent, config, env, env_params, env_kwargs, rewards, settings,
              list(range(args.seed, args.seed + args.seeds)), out_dir, mesh, resume_dir, writes)


# --------------------------------------------------------------------------- train


class Trained(NamedTuple):
  """What ``train`` returns: the metrics as ``[runs, updates]`` rows, and timings."""
  metrics: dict[str, np.ndarray]
  compile_s: float
  train_s: float
  start_update: int = 0      # updates restored from a checkpoint (0: a fresh run)

  @property
  def updates_trained(self) -> int:
    """Updates trained by this call (0: a resumed run that had already finished)."""
    return int(np.shape(self.metrics["update"])[-1]) - self.start_update


class Watch(NamedTuple):
  """What training shares with the thread that supervises it (``watchdog.supervise``)."""
  heartbeat: watchdog.Heartbeat      # beaten on progress: callbacks, compiles, chunks
  stop: threading.Event              # set on Ctrl-C or a stall: end between chunks


def _new_watch() -> Watch:
  return Watch(watchdog.Heartbeat(), threading.Event())


def _over_grid(fn, seed_axes, setting_axes, sweep: bool):
  """vmap over seeds (inner) and, for a sweep, over settings (outer)."""
  f = jax.vmap(fn, seed_axes)
  return jax.vmap(f, setting_axes) if sweep else f


def _rows(metrics: dict, sweep: bool) -> dict[str, np.ndarray]:
  """A sweep's ``[settings, seeds, ...]`` metrics as ``[settings × seeds, ...]`` rows."""
  return {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) if sweep else np.asarray(v)
          for k, v in metrics.items()}


def _progress_bar(err: Console, enabled: bool) -> Progress:
  return Progress(
      TextColumn("[bold]training[/bold] {task.description}"), BarColumn(),
      TextColumn("{task.completed:.0f}/{task.total:.0f} updates"),
      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
      console=err, disable=not enabled, transient=False)


def _make_trainer(plan: Plan, tracker: ProgressTracker | None):
  """The agent's ``train``; its reward check (bad potentials, wrong shapes) fails here,
  before the long compile."""
  kwargs = {}
  if plan.mesh is not None:
    kwargs["mesh"] = plan.mesh
  if tracker is not None:
    kwargs["callback"] = tracker
  try:
    return plan.agent.make_train(plan.config, plan.env, plan.env_params,
                                 plan.rewards.channels, **kwargs)
  except ValueError as e:
    raise UsageError(str(e)) from e


def _announce(plan: Plan, err: Console) -> None:
  args, config = plan.args, plan.config
  note = rounding_note(args.total_timesteps, config)
  if note:
    err.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)
  err.print(Text(
      f"{args.agent} on {args.env}, rewards {args.rewards!r} (channels "
      f"{', '.join(plan.rewards.channels.names)}), {len(plan.seeds)} seeds"
      f"{f' × {len(plan.settings)} settings' if plan.sweep else ''} × {config.num_updates} "
      f"updates × {config.batch_size} steps"
      f"{f' on {plan.mesh.size} devices' if plan.mesh else ''}; compiling...", style="dim"))


def _train_once(trainer, keys, hparams, sweep: bool, progress: Progress, task, writer,
                watch: Watch):
  """The whole run in one compiled call: ``(metrics, compile_s, train_s)``."""
  t_compile = time.perf_counter()
  # Without a sweep, train(key) alone: agents need not take hparams.
  args_in = (keys, hparams) if sweep else (keys,)
  train_all = _over_grid(trainer, (0, None), (None, 0), sweep) if sweep else jax.vmap(trainer)
  compiled = jax.jit(train_all).lower(*args_in).compile()
  compile_s = time.perf_counter() - t_compile
  watch.heartbeat.beat()
  t_train = time.perf_counter()
  with progress:
    progress.start_task(task)
    output = jax.block_until_ready(compiled(*args_in))
  train_s = time.perf_counter() - t_train
  metrics = jax.device_get(output.metrics)
  writer.write(_rows(metrics, sweep))
  return metrics, compile_s, train_s


def _chunk_functions(trainer, sweep: bool):
  """``(cache, get)``: ``get(n)`` is ``train.run`` over ``n`` updates, jitted once per ``n``."""
  cache = {}

  def get(n):
    if n not in cache:
      fn = lambda r, s, h: trainer.run(r, s, n, h)
      cache[n] = jax.jit(_over_grid(fn, (0, None, None), (0, None, 0), sweep))
    return cache[n]

  return cache, get


def _restore(plan: Plan, ckpt: checkpoint.Checkpointer, like, err: Console
             ) -> checkpoint.Restored:
  """The newest intact checkpoint; each damaged newer one is set aside with a warning."""
  restored = ckpt.restore_newest_intact(like, resume.check_record)
  for step, why in restored.broken:
    where = ckpt.directory / str(step)
    if plan.writes:
      where = ckpt.set_aside(step)
    err.print(Text(f"warning: checkpoint {step} is damaged ({why}); set aside as {where}, "
                   f"resuming from checkpoint {restored.step}", style="yellow"), soft_wrap=True)
  return restored


def _first_runner(plan: Plan, trainer, ckpt, keys, hparams, err: Console):
  """``(runner, next update, metrics so far)``: fresh, or restored from the newest intact
  checkpoint."""
  init_all = jax.jit(_over_grid(trainer.init, (0, None), (None, 0), plan.sweep))
  if plan.resume_dir is None:
    return init_all(keys, hparams), 0, []
  restored = _restore(plan, ckpt, jax.eval_shape(init_all, keys, hparams), err)
  return restored.state, restored.step, [restored.metrics] if restored.metrics else []


def _train_in_chunks(plan: Plan, trainer, keys, hparams, progress: Progress, task, writer,
                     watch: Watch, err: Console) -> Trained:
  """Chunks of ``--checkpoint-every`` updates, each saved with orbax; resumes from
  ``plan.resume_dir``. Stops between chunks once ``watch.stop`` is set."""
  num_updates = plan.config.num_updates
  every = plan.args.checkpoint_every or num_updates
  ckpt = checkpoint.Checkpointer(plan.checkpoint_dir)
  cache, chunk_fn = _chunk_functions(trainer, plan.sweep)
  t_compile = time.perf_counter()
  runner, start, parts = _first_runner(plan, trainer, ckpt, keys, hparams, err)
  first = start
  if start >= num_updates:     # a finished run: nothing to compile or train
    ckpt.close()
    return Trained(_rows(checkpoint.concat_metrics(parts, axis=-1), plan.sweep), 0.0, 0.0, start)
  _announce(plan, err)
  n0 = min(every, num_updates - start)
  cache[n0] = chunk_fn(n0).lower(runner, jnp.int32(start), hparams).compile()
  compile_s = time.perf_counter() - t_compile
  watch.heartbeat.beat()
  t_train = time.perf_counter()
  with progress:
    progress.start_task(task)
    progress.update(task, completed=start)
    while start < num_updates and not watch.stop.is_set():
      n = min(every, num_updates - start)
      runner, m = chunk_fn(n)(runner, jnp.int32(start), hparams)
      m = jax.device_get(m)
      if watch.stop.is_set():
        break
      parts.append(m)
      writer.write(_rows(m, plan.sweep))
      start += n
      ckpt.save(start, runner, checkpoint.concat_metrics(parts, axis=-1),
                meta={"args": resume.args_json(plan.args), "next_update": start})
      watch.heartbeat.beat()
  train_s = time.perf_counter() - t_train
  ckpt.close()
  metrics = _rows(checkpoint.concat_metrics(parts, axis=-1), plan.sweep)
  return Trained(metrics, compile_s, train_s, first)


def train(plan: Plan, err: Console, watch: Watch | None = None,
          progress: Progress | None = None) -> Trained:
  """Builds the agent's ``train``, compiles it and trains every seed and setting."""
  watch = watch or _new_watch()
  progress = progress or _progress_bar(err, plan.args.progress and plan.writes)
  # Started after compiling, so elapsed time and ETA measure training alone.
  task = progress.add_task("", total=plan.config.num_updates, start=False)
  tracker = None
  if plan.args.progress and plan.agent.reports_progress:
    # The callback reports once per seed and setting.
    tracker = ProgressTracker(progress, task, len(plan.row_seeds), watch.heartbeat)
  trainer = _make_trainer(plan, tracker)
  labels = ([f"{st}/seed{sd}" for st, sd in zip(plan.row_settings, plan.row_seeds)]
            if plan.sweep else [f"seed{sd}" for sd in plan.seeds])
  writer = writers.Writers()
  if plan.writes:
    writer = writers.make(labels, tensorboard=plan.args.tensorboard,
                          wandb_project=plan.args.wandb_project,
                          config=resume.args_json(plan.args), name=plan.out_dir.name)
  # Host arrays: under --distributed every process passes the same values.
  hparams = ({k: np.asarray([s[k] for s in plan.settings], np.float32)
              for k in plan.settings[0]} if plan.sweep else None)
  keys = np.asarray(jax.vmap(jax.random.PRNGKey)(jnp.asarray(plan.seeds)))
  if plan.chunked:
    trained = _train_in_chunks(plan, trainer, keys, hparams, progress, task, writer, watch, err)
  else:
    _announce(plan, err)
    metrics, compile_s, train_s = _train_once(trainer, keys, hparams, plan.sweep, progress,
                                              task, writer, watch)
    trained = Trained(_rows(metrics, plan.sweep), compile_s, train_s)
  writer.close()
  return trained


def _train_watched(plan: Plan, err: Console) -> Trained:
  """``train`` in a worker thread under the stall watchdog (``watchdog.supervise``)."""
  watch = _new_watch()
  progress = _progress_bar(err, plan.args.progress and plan.writes)
  # The deadlock is the CPU backend's; on an accelerator a quiet host thread is normal.
  timeout = plan.args.stall_timeout if jax.default_backend() == "cpu" else 0.0
  try:
    return watchdog.supervise(lambda: train(plan, err, watch, progress),
                              heartbeat=watch.heartbeat, stall_timeout=timeout, stop=watch.stop)
  finally:
    progress.stop()


# --------------------------------------------------------------------------- report


class Returns(NamedTuple):
  """Episode returns per row (seed, or setting and seed)."""
  curves: np.ndarray         # [rows, updates] float64
  env_steps: np.ndarray      # [updates]
  final: np.ndarray          # [rows]
  best: np.ndarray           # [rows]; NaN where no episode finished
  episodes: list[int]        # episodes finished per row
  eval_curves: np.ndarray | None = None    # [rows, updates] eval/return (held), if evaluated
  eval_success: np.ndarray | None = None   # [rows] last eval/success, if the env has a goal

  @property
  def eval_final(self) -> np.ndarray | None:
    """[rows] the last evaluation's return (the final policy's), if evaluated."""
    return None if self.eval_curves is None else self.eval_curves[:, -1]


def episode_returns(metrics: dict) -> Returns:
  ret = np.asarray(metrics["episode_return"], np.float64)
  best = np.array([np.nanmax(r) if np.isfinite(r).any() else np.nan for r in ret])
  # Agents report how many episodes ended in each update; count them per row.
  num_episodes = metrics.get("num_episodes", np.zeros_like(ret))
  episodes = np.asarray(num_episodes).sum(axis=1).astype(int).tolist()
  eval_curves = eval_success = None
  if "eval/return" in metrics:
    eval_curves = np.asarray(metrics["eval/return"], np.float64)
    success = np.asarray(metrics["eval/success"], np.float64)[:, -1]
    eval_success = success if np.isfinite(success).all() else None
  return Returns(ret, np.asarray(metrics["env_steps"])[0], ret[:, -1], best, episodes,
                 eval_curves, eval_success)


def _plot(plan: Plan, returns: Returns) -> None:
  args = plan.args
  title = f"{args.env} · {args.agent.upper()} · rewards: {args.rewards}"
  rows = {setting_label(st): slice(i * len(plan.seeds), (i + 1) * len(plan.seeds))
          for i, st in enumerate(plan.settings)} if plan.sweep else {args.rewards: slice(None)}
  curves = {label: (returns.env_steps, returns.curves[r]) for label, r in rows.items()}
  if returns.eval_curves is not None:     # evaluation (held between evaluations) beside them
    curves.update({f"{label} · eval": (returns.env_steps, returns.eval_curves[r])
                   for label, r in rows.items()})
  # Per-update returns are noisy; a short moving average (1% of the run) keeps
  # the trend readable without hiding when learning happened.
  figure = plots.plot_learning_curves(curves, title=title,
                                      smooth=max(1, returns.curves.shape[1] // 100))
  with run_folder.atomic_open(plan.out_dir / "learning_curve.png", "wb") as f:
    figure.savefig(f, format="png")


def _channels_summary(plan: Plan) -> dict:
  """Each channel's coefficient, γ and episodic flag; γ ``None`` where it follows a swept γ."""
  channels = plan.rewards.channels
  if not (plan.sweep and "gamma" in plan.settings[0]):
    channels = channels.resolve(plan.config.gamma)
  return {n: {"coef": c, "gamma": g, "episodic": e} for n, c, g, e in zip(
      channels.names, channels.coefs, channels.gammas, channels.episodic)}


def _steps_per_second(plan: Plan, trained: Trained, env_steps: np.ndarray) -> float:
  """Env steps per second of the updates trained by this call (all rows together)."""
  start = trained.start_update
  steps = int(env_steps[-1]) - (int(env_steps[start - 1]) if start else 0)
  return steps * len(plan.row_seeds) / trained.train_s


def _summary(plan: Plan, trained: Trained, returns: Returns, nonfinite, wall_s: float) -> dict:
  args, final = plan.args, returns.final
  summary = {
      "agent": args.agent,
      "env": args.env,
      "env_kwargs": plan.env_kwargs,
      "rewards": args.rewards,
      "channels": _channels_summary(plan),
      "seeds": plan.seeds,
      "args": {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainArgs)},
      "out": str(plan.out_dir),
      "config": dataclasses.asdict(plan.config),
      "num_updates": int(returns.curves.shape[1]),
      "env_steps_per_seed": int(returns.env_steps[-1]),
      "final_episode_return": final.tolist(),
      "final_episode_return_mean": float(np.mean(final)),
      "final_episode_return_std": float(np.std(final)),
      "best_episode_return": returns.best.tolist(),
      "episodes": returns.episodes,
      "final_eval_return": None if returns.eval_final is None else returns.eval_final.tolist(),
      "final_eval_success": (None if returns.eval_success is None
                             else returns.eval_success.tolist()),
      "compile_seconds": trained.compile_s,
      "train_seconds": trained.train_s,
      "wall_clock_seconds": wall_s,
      "env_steps_per_second": _steps_per_second(plan, trained, returns.env_steps),
      "resumed_at_update": trained.start_update,
      "nonfinite": None if nonfinite is None else
                   {"update": nonfinite[0], "env_steps": nonfinite[1],
                    "seeds": [plan.row_seeds[i] for i in nonfinite[2]]},
      "device": str(jax.devices()[0]),
      "num_devices": 1 if plan.mesh is None else plan.mesh.size,
      "jax_version": jax.__version__,
  }
  if plan.sweep:
    summary["settings"] = plan.settings
    summary["rows"] = [{"setting": st, "seed": sd}
                       for st, sd in zip(plan.row_settings, plan.row_seeds)]
  return summary


def _write_outputs(plan: Plan, trained: Trained, returns: Returns, summary: dict) -> None:
  """metrics.csv, learning_curve.png and summary.json, each written atomically."""
  out_dir = plan.out_dir
  write_csv(out_dir / "metrics.csv", plan.row_seeds, scalar_metrics(trained.metrics),
            settings=plan.row_settings)
  _plot(plan, returns)
  with run_folder.atomic_open(out_dir / "summary.json", "w", encoding="utf-8") as f:
    json.dump(_json_safe(summary), f, indent=2)
    f.write("\n")


def report(plan: Plan, trained: Trained, t_start: float, console: Console,
           err: Console) -> int:
  """Writes metrics.csv, learning_curve.png and summary.json (process 0), prints the
  summary; returns the exit status (``Exit.NONFINITE`` if NaN/inf appeared)."""
  returns = episode_returns(trained.metrics)
  nonfinite = first_nonfinite(trained.metrics)
  summary = _summary(plan, trained, returns, nonfinite, time.perf_counter() - t_start)
  row_names = ([f"{a} {b}" for a, b in zip(plan.row_settings, plan.row_seeds)] if plan.sweep
               else plan.row_seeds)
  # Divergence without NaN (a loss far beyond its range, an entropy collapse).
  run_names = ([f"{a} seed {b}" for a, b in zip(plan.row_settings, plan.row_seeds)]
               if plan.sweep else [f"seed {b}" for b in plan.row_seeds])
  summary["warnings"] = agent_trainer.divergence_warnings(trained.metrics, run_names=run_names)
  if plan.writes:
    _write_outputs(plan, trained, returns, summary)
  console.print(summary_table(row_names, returns.final, returns.best, returns.episodes,
                              returns.eval_final, returns.eval_success))
  resumed = f" · resumed at update {trained.start_update}" if trained.start_update else ""
  console.print(
      f"compile {trained.compile_s:.1f} s · train {trained.train_s:.1f} s · "
      f"{summary['env_steps_per_second']:,.0f} env steps/s{resumed} · outputs in "
      f"{plan.out_dir}/")
  for warning in summary["warnings"]:
    err.print(Text(f"warning: {warning}", style="yellow"))
  if nonfinite is None:
    return Exit.OK
  update, steps, bad = nonfinite
  err.print(
      f"[bold red]error:[/bold red] non-finite values (NaN/inf) in the agent's parameters "
      f"or rewards, first at update {update} (env step {steps}) in seed(s) "
      f"{', '.join(str(row_names[i]) for i in bad)}. Results after that point are "
      f"meaningless; lower the learning rate (--{plan.args.agent}.lr) or check the reward "
      "scales and progress functions.")
  return Exit.NONFINITE


# --------------------------------------------------------------------------- run


def _newest_checkpoint(plan: Plan) -> int | None:
  """The newest complete checkpoint's update on disk (orbax names them by step)."""
  folder = plan.checkpoint_dir
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(steps, default=None)


def _resume_hint(plan: Plan) -> str:
  """How to continue a stopped run, in one line."""
  step = _newest_checkpoint(plan)
  if step is None:
    return "no checkpoint was saved (a run saved every K updates with --checkpoint-every K resumes)"
  return (f"continue from update {step} of {plan.config.num_updates} with: "
          f"rewardjax train --resume {shlex.quote(str(plan.out_dir))}")


def _stalled_message(plan: Plan, stalled: watchdog.Stalled) -> str:
  return (f"error: no progress and no CPU use for {stalled.seconds:.0f} s: training is stalled, "
          "most likely by the jaxlib 0.10.2 CPU deadlock (README, 'A CPU deadlock'). Train the "
          "seeds in separate calls (--seeds 1 --seed i), or use a newer jaxlib (Python >= "
          f"3.12); --stall-timeout 0 disables this check; {_resume_hint(plan)}")


def run(args, console: Console | None = None, given: frozenset[str] | None = None) -> int:
  """Resolves, trains and reports; returns the exit status.

  ``given``: the option names on the command line (``resume.given_options``), which
  ``--resume`` compares with the saved run; ``None`` compares non-default values.
  """
  console = console or Console()
  err = Console(stderr=True)
  t_start = time.perf_counter()
  plan = resolve(args, err, given)
  if not plan.writes:
    console = Console(quiet=True)
  try:
    trained = _train_watched(plan, err)
  except watchdog.Stalled as e:
    err.print(Text(_stalled_message(plan, e)), soft_wrap=True)
    return Exit.STALLED
  except KeyboardInterrupt:
    err.print(Text(f"interrupted; {_resume_hint(plan)}"), soft_wrap=True)
    return Exit.INTERRUPTED
  if trained.updates_trained == 0:
    console.print(Text(
        f"{plan.out_dir} is finished: all {plan.config.num_updates} updates were trained; "
        "nothing to do (resume with a larger --total-timesteps to train longer)"),
        soft_wrap=True)
    return Exit.OK
  return report(plan, trained, t_start, console, err)


def start_distributed(args) -> None:
  """``jax.distributed.initialize`` with the flags, else ``JAX_*`` variables, else what
  JAX detects (Slurm, MPI, TPU pods); must run before anything starts a JAX backend."""
  if jax.distributed.is_initialized():     # e.g. by a script that then calls main()
    return

  def from_env(value, name):
    if value is not None or not os.environ.get(name):
      return value
    try:
      return int(os.environ[name])
    except ValueError:
      raise UsageError(f"--distributed: ${name} must be an integer, got "
                       f"{os.environ[name]!r}") from None

  num_processes = from_env(args.num_processes, "JAX_NUM_PROCESSES")
  process_id = from_env(args.process_id, "JAX_PROCESS_ID")
  try:
    jax.distributed.initialize(coordinator_address=args.coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  except (RuntimeError, ValueError) as e:
    raise UsageError(f"--distributed: {checkpoint.first_line(e, 400)}") from e


def _parse(raw: list[str]):
  """The ``train`` arguments (``SystemExit`` on --help and malformed arguments)."""
  if raw[:1] == ["train"]:
    # tyro.cli on the class itself: errors name options without the wrapper that
    # subcommand_cli_from_dict adds (``__tyro-dummy-inner__``).
    return tyro.cli(_args_class(), prog="rewardjax train", args=raw[1:])
  return tyro.extras.subcommand_cli_from_dict(
      {"train": _args_class()}, prog="rewardjax", args=raw,
      description="rewardjax: reinforcement learning with intrinsic and shaped rewards.")


def _error(message: str, prefix: str = "error:") -> None:
  Console(stderr=True).print(f"[bold red]{prefix}[/bold red]", Text(message), soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``rewardjax`` console script; returns the exit status (``Exit``)."""
  raw = list(sys.argv[1:] if argv is None else argv)
  if sum(a == "--sweep" or a.startswith("--sweep=") for a in raw) > 1:
    # tyro keeps only the last occurrence of a repeated option: refuse rather than
    # silently dropping a sweep.
    _error("--sweep given more than once; list every assignment after one --sweep, "
           "e.g. --sweep ppo.lr=1e-3,3e-4 novelty.coef=0.1,1")
    return Exit.USAGE
  try:
    args = _parse(raw)
  except SystemExit as e:
    # tyro exits on --help and on malformed arguments (after printing why);
    # return the status instead so that main() can be called from Python.
    return e.code if isinstance(e.code, int) else int(e.code is not None)
  code = _run_reporting_errors(args, resume.given_options(raw[1:], args))
  if argv is None and code in (Exit.STALLED, Exit.INTERRUPTED):
    # The console script: training may still be running in XLA, whose threads can
    # abort the interpreter's teardown; end the process at once instead.
    watchdog.end_process(code)
  return code


def _run_reporting_errors(args, given: frozenset[str]) -> int:
  """``run``, with the errors a user can act on printed in one line and mapped to ``Exit``."""
  try:
    if args.distributed:
      start_distributed(args)
    return run(args, given=given)
  except UsageError as e:
    # Setup errors (unknown env, bad spec or hyperparameters, unusable --out) are
    # the user's to fix; a traceback would only bury the message. Errors during
    # compilation or training keep their traceback (exit status 1).
    _error(str(e))
    return Exit.USAGE
  except checkpoint.CheckpointError as e:
    _error(f"{e}. Start the run again with --overwrite, or resume another folder.",
           "checkpoint error:")
    return Exit.CHECKPOINT
  except KeyboardInterrupt:
    _error("stopped outside training; files already written are complete", "interrupted:")
    return Exit.INTERRUPTED


if __name__ == "__main__":
  sys.exit(main())

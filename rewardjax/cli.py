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
``learning_curve.png``. Exit status: 0 on success, 1 if any parameter or reward
became NaN/inf during training, 2 on bad arguments.

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
import inspect
import itertools
import json
import math
import re
import sys
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

from rewardjax import checkpoint, envs, plots, sharding, spec, writers
from rewardjax.agents.registry import AGENTS, AgentSpec


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
  """Continue a stopped run from its output folder (its checkpoints/ and saved arguments)."""
  num_devices: int = 1
  """Split the environments over this many local devices (data-parallel, jax.shard_map)."""
  tensorboard: str | None = None
  """Write TensorBoard scalars (tensorboardX) to this folder, one run per setting and seed."""
  wandb_project: str | None = None
  """Log metrics to this Weights & Biases project (needs the wandb package)."""


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


def agent_config(args) -> Any:
  """The selected agent's config with the top-level overrides applied."""
  if args.agent not in AGENTS:
    raise UsageError(f"unknown agent {args.agent!r}; available: {', '.join(AGENTS)}")
  cfg_cls = AGENTS[args.agent].config_cls
  for name, other in AGENTS.items():
    if name != args.agent and getattr(args, name) != other.config_cls():
      raise UsageError(f"--{name}.* options were given but the agent is {args.agent!r}")
  config = getattr(args, args.agent)
  default_steps = cfg_cls().total_timesteps
  if config.total_timesteps != default_steps and config.total_timesteps != args.total_timesteps:
    raise UsageError(f"use --total-timesteps rather than --{args.agent}.total-timesteps")
  if args.seeds < 1:
    raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
  return dataclasses.replace(config, total_timesteps=args.total_timesteps)


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

  def __init__(self, progress: Progress, task, num_seeds: int):
    self.progress, self.task, self.num_seeds = progress, task, num_seeds
    self.returns: dict[int, list[float]] = {}

  def __call__(self, metrics: dict) -> None:
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
  """One row per seed and update; with ``settings`` (one label per seed row), a sweep's."""
  names = list(columns)
  with open(path, "w", newline="", encoding="utf-8") as f:
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


def summary_table(seeds, final, best, episodes) -> Table:
  table = Table(title="episode return per seed")
  for col in ("seed", "final return", "best return", "episodes"):
    table.add_column(col, justify="right")
  for s, f, b, e in zip(seeds, final, best, episodes):
    table.add_row(str(s), f"{f:.2f}", f"{b:.2f}", str(e))
  if len(seeds) > 1:
    table.add_row("mean ± std", f"{np.mean(final):.2f} ± {np.std(final):.2f}",
                  f"{np.mean(best):.2f}", f"{np.mean(episodes):.0f}", style="bold")
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


def _args_json(args) -> dict:
  """The run's arguments as JSON (saved with checkpoints, for ``--resume``)."""
  d = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainArgs)}
  d[args.agent] = dataclasses.asdict(getattr(args, args.agent))
  return json.loads(json.dumps(d))


def _args_from_json(d: dict, base):
  """Rebuilds the arguments saved by ``_args_json`` (lists back to tuples)."""
  tup = lambda x: tuple(x) if isinstance(x, list) else x
  cfg_cls = AGENTS[d["agent"]].config_cls
  cfg = cfg_cls(**{k: tup(v) for k, v in d[d["agent"]].items()})
  fields = {k: tup(v) for k, v in d.items() if k != d["agent"]}
  return dataclasses.replace(base, **fields, **{d["agent"]: cfg})


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

  @property
  def sweep(self) -> bool:
    return bool(self.settings)

  @property
  def chunked(self) -> bool:
    return self.args.checkpoint_every > 0 or self.resume_dir is not None

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


def _resumed_args(args, err: Console) -> tuple[Any, Path | None]:
  """With ``--resume``, the stopped run's arguments (only output-side options may change)."""
  if not args.resume:
    return args, None
  resume_dir = Path(args.resume)
  ckpt_dir = resume_dir / "checkpoints"
  if not ckpt_dir.is_dir():
    raise UsageError(f"--resume: no checkpoints in {ckpt_dir} (run with --checkpoint-every K)")
  meta = checkpoint.Checkpointer(ckpt_dir).read_meta()
  args = dataclasses.replace(
      _args_from_json(meta["args"], args), out=str(resume_dir), resume=args.resume,
      progress=args.progress, tensorboard=args.tensorboard, wandb_project=args.wandb_project)
  err.print(Text(f"resuming {resume_dir} at update {meta['next_update']}", style="dim"))
  return args, resume_dir


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


def resolve(args, err: Console) -> Plan:
  """Arguments -> a validated ``Plan``; every bad argument is a ``UsageError`` here."""
  args, resume_dir = _resumed_args(args, err)
  try:
    config = agent_config(args)
    agent = AGENTS[args.agent]
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    env, env_params = envs.make(args.env, **env_kwargs)
    if args.delay_rewards:
      env = envs.DelayedReward(env)
    rewards = spec.build_rewards(args.rewards, env_id=args.env, env=env,
                                 env_params=env_params, gamma=config.gamma)
    if args.checkpoint_every < 0:
      raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    mesh = sharding.make_mesh(args.num_devices) if args.num_devices != 1 else None
  except (ValueError, TypeError) as e:
    raise UsageError(str(e)) from e
  if mesh is not None and not agent.supports_mesh:
    raise UsageError(f"agent {args.agent!r} does not support --num-devices")
  settings = parse_sweep(args.sweep, args.agent, config,
                         agent.sweepable_names(rewards.channels.names))
  check_gamma_sweep(settings, rewards, config)
  plan = Plan(args, agent, config, env, env_params, env_kwargs, rewards, settings,
              list(range(args.seed, args.seed + args.seeds)),
              Path(args.out) if args.out else default_out(args), mesh, resume_dir)
  if (plan.chunked or plan.sweep) and not agent.trainer:
    raise UsageError(f"agent {args.agent!r} does not support --sweep / --checkpoint-every")
  return plan


# --------------------------------------------------------------------------- train


class Trained(NamedTuple):
  """What ``train`` returns: the metrics as ``[runs, updates]`` rows, and timings."""
  metrics: dict[str, np.ndarray]
  compile_s: float
  train_s: float


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
  err.print(Text(
      f"{args.agent} on {args.env}, rewards {args.rewards!r} (channels "
      f"{', '.join(plan.rewards.channels.names)}), {len(plan.seeds)} seeds"
      f"{f' × {len(plan.settings)} settings' if plan.sweep else ''} × {config.num_updates} "
      f"updates × {config.batch_size} steps"
      f"{f' on {args.num_devices} devices' if plan.mesh else ''}; compiling...", style="dim"))


def _train_once(trainer, keys, hparams, sweep: bool, progress: Progress, task, writer):
  """The whole run in one compiled call: ``(metrics, compile_s, train_s)``."""
  t_compile = time.perf_counter()
  # Without a sweep, train(key) alone: agents need not take hparams.
  args_in = (keys, hparams) if sweep else (keys,)
  train_all = _over_grid(trainer, (0, None), (None, 0), sweep) if sweep else jax.vmap(trainer)
  compiled = jax.jit(train_all).lower(*args_in).compile()
  compile_s = time.perf_counter() - t_compile
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


def _first_runner(plan: Plan, trainer, ckpt, keys, hparams):
  """``(runner, next update, metrics so far)``: fresh, or restored from the last checkpoint."""
  init_all = jax.jit(_over_grid(trainer.init, (0, None), (None, 0), plan.sweep))
  if plan.resume_dir is None:
    return init_all(keys, hparams), 0, []
  runner, done, meta = ckpt.restore(jax.eval_shape(init_all, keys, hparams))
  return runner, int(meta["next_update"]), [done] if done else []


def _train_in_chunks(plan: Plan, trainer, keys, hparams, progress: Progress, task, writer):
  """Chunks of ``--checkpoint-every`` updates, each saved with orbax: ``(metrics,
  compile_s, train_s)``; resumes from ``plan.resume_dir``."""
  num_updates = plan.config.num_updates
  every = plan.args.checkpoint_every or num_updates
  ckpt = checkpoint.Checkpointer(plan.out_dir / "checkpoints")
  cache, chunk_fn = _chunk_functions(trainer, plan.sweep)
  t_compile = time.perf_counter()
  runner, start, parts = _first_runner(plan, trainer, ckpt, keys, hparams)
  n0 = min(every, num_updates - start)
  if n0 > 0:
    cache[n0] = chunk_fn(n0).lower(runner, jnp.int32(start), hparams).compile()
  compile_s = time.perf_counter() - t_compile
  t_train = time.perf_counter()
  with progress:
    progress.start_task(task)
    progress.update(task, completed=start)
    while start < num_updates:
      n = min(every, num_updates - start)
      runner, m = chunk_fn(n)(runner, jnp.int32(start), hparams)
      m = jax.device_get(m)
      parts.append(m)
      writer.write(_rows(m, plan.sweep))
      start += n
      ckpt.save(start, runner, checkpoint.concat_metrics(parts, axis=-1),
                meta={"args": _args_json(plan.args), "next_update": start})
  train_s = time.perf_counter() - t_train
  ckpt.close()
  return checkpoint.concat_metrics(parts, axis=-1), compile_s, train_s


def train(plan: Plan, err: Console) -> Trained:
  """Builds the agent's ``train``, compiles it and trains every seed and setting."""
  progress = _progress_bar(err, plan.args.progress)
  # Started after compiling, so elapsed time and ETA measure training alone.
  task = progress.add_task("", total=plan.config.num_updates, start=False)
  tracker = None
  if plan.args.progress and plan.agent.reports_progress:
    # The callback reports once per seed and setting.
    tracker = ProgressTracker(progress, task, len(plan.row_seeds))
  trainer = _make_trainer(plan, tracker)
  _announce(plan, err)
  labels = ([f"{st}/seed{sd}" for st, sd in zip(plan.row_settings, plan.row_seeds)]
            if plan.sweep else [f"seed{sd}" for sd in plan.seeds])
  writer = writers.make(labels, tensorboard=plan.args.tensorboard,
                        wandb_project=plan.args.wandb_project, config=_args_json(plan.args),
                        name=plan.out_dir.name)
  hparams = ({k: jnp.asarray([s[k] for s in plan.settings], jnp.float32)
              for k in plan.settings[0]} if plan.sweep else None)
  keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(plan.seeds))
  if plan.chunked:
    metrics, compile_s, train_s = _train_in_chunks(plan, trainer, keys, hparams, progress,
                                                   task, writer)
  else:
    metrics, compile_s, train_s = _train_once(trainer, keys, hparams, plan.sweep, progress,
                                              task, writer)
  writer.close()
  return Trained(_rows(metrics, plan.sweep), compile_s, train_s)


# --------------------------------------------------------------------------- report


class Returns(NamedTuple):
  """Episode returns per row (seed, or setting and seed)."""
  curves: np.ndarray         # [rows, updates] float64
  env_steps: np.ndarray      # [updates]
  final: np.ndarray          # [rows]
  best: np.ndarray           # [rows]; NaN where no episode finished
  episodes: list[int]        # episodes finished per row


def episode_returns(metrics: dict) -> Returns:
  ret = np.asarray(metrics["episode_return"], np.float64)
  best = np.array([np.nanmax(r) if np.isfinite(r).any() else np.nan for r in ret])
  # Agents report how many episodes ended in each update; count them per row.
  num_episodes = metrics.get("num_episodes", np.zeros_like(ret))
  episodes = np.asarray(num_episodes).sum(axis=1).astype(int).tolist()
  return Returns(ret, np.asarray(metrics["env_steps"])[0], ret[:, -1], best, episodes)


def _plot(plan: Plan, returns: Returns) -> None:
  args = plan.args
  title = f"{args.env} · {args.agent.upper()} · rewards: {args.rewards}"
  if plan.sweep:
    n = len(plan.seeds)
    curves = {setting_label(st): (returns.env_steps, returns.curves[i * n:(i + 1) * n])
              for i, st in enumerate(plan.settings)}
  else:
    curves = {args.rewards: (returns.env_steps, returns.curves)}
  # Per-update returns are noisy; a short moving average (1% of the run) keeps
  # the trend readable without hiding when learning happened.
  plots.plot_learning_curves(curves, plan.out_dir / "learning_curve.png", title=title,
                             smooth=max(1, returns.curves.shape[1] // 100))


def _channels_summary(plan: Plan) -> dict:
  """Each channel's coefficient, γ and episodic flag; γ ``None`` where it follows a swept γ."""
  channels = plan.rewards.channels
  if not (plan.sweep and "gamma" in plan.settings[0]):
    channels = channels.resolve(plan.config.gamma)
  return {n: {"coef": c, "gamma": g, "episodic": e} for n, c, g, e in zip(
      channels.names, channels.coefs, channels.gammas, channels.episodic)}


def _summary(plan: Plan, trained: Trained, returns: Returns, nonfinite, wall_s: float) -> dict:
  args, final = plan.args, returns.final
  total_steps = int(returns.env_steps[-1]) * len(plan.row_seeds)
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
      "compile_seconds": trained.compile_s,
      "train_seconds": trained.train_s,
      "wall_clock_seconds": wall_s,
      "env_steps_per_second": total_steps / trained.train_s,
      "nonfinite": None if nonfinite is None else
                   {"update": nonfinite[0], "env_steps": nonfinite[1],
                    "seeds": [plan.row_seeds[i] for i in nonfinite[2]]},
      "device": str(jax.devices()[0]),
      "num_devices": args.num_devices,
      "jax_version": jax.__version__,
  }
  if plan.sweep:
    summary["settings"] = plan.settings
    summary["rows"] = [{"setting": st, "seed": sd}
                       for st, sd in zip(plan.row_settings, plan.row_seeds)]
  return summary


def report(plan: Plan, trained: Trained, t_start: float, console: Console,
           err: Console) -> int:
  """Writes metrics.csv, learning_curve.png and summary.json, prints the summary;
  returns the exit status (1 if NaN/inf appeared)."""
  metrics, out_dir = trained.metrics, plan.out_dir
  out_dir.mkdir(parents=True, exist_ok=True)
  write_csv(out_dir / "metrics.csv", plan.row_seeds, scalar_metrics(metrics),
            settings=plan.row_settings)
  returns = episode_returns(metrics)
  _plot(plan, returns)
  nonfinite = first_nonfinite(metrics)
  summary = _summary(plan, trained, returns, nonfinite, time.perf_counter() - t_start)
  with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
    json.dump(_json_safe(summary), f, indent=2)
    f.write("\n")

  row_names = ([f"{a} {b}" for a, b in zip(plan.row_settings, plan.row_seeds)] if plan.sweep
               else plan.row_seeds)
  console.print(summary_table(row_names, returns.final, returns.best, returns.episodes))
  console.print(
      f"compile {trained.compile_s:.1f} s · train {trained.train_s:.1f} s · "
      f"{summary['env_steps_per_second']:,.0f} env steps/s · outputs in {out_dir}/")
  if nonfinite is None:
    return 0
  update, steps, bad = nonfinite
  err.print(
      f"[bold red]error:[/bold red] non-finite values (NaN/inf) in the agent's parameters "
      f"or rewards, first at update {update} (env step {steps}) in seed(s) "
      f"{', '.join(str(row_names[i]) for i in bad)}. Results after that point are "
      f"meaningless; lower the learning rate (--{plan.args.agent}.lr) or check the reward "
      "scales and progress functions.")
  return 1


def run(args, console: Console | None = None) -> int:
  """Resolves, trains and reports; returns the exit status."""
  console = console or Console()
  err = Console(stderr=True)
  t_start = time.perf_counter()
  plan = resolve(args, err)
  return report(plan, train(plan, err), t_start, console, err)


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``rewardjax`` console script; returns the exit status."""
  raw = list(sys.argv[1:] if argv is None else argv)
  if sum(a == "--sweep" or a.startswith("--sweep=") for a in raw) > 1:
    # tyro keeps only the last occurrence of a repeated option: refuse rather than
    # silently dropping a sweep.
    Console(stderr=True).print(
        "[bold red]error:[/bold red]",
        Text("--sweep given more than once; list every assignment after one --sweep, "
             "e.g. --sweep ppo.lr=1e-3,3e-4 novelty.coef=0.1,1"))
    return 2
  try:
    args = tyro.extras.subcommand_cli_from_dict(
        {"train": _args_class()}, prog="rewardjax", args=argv,
        description="rewardjax: reinforcement learning with intrinsic and shaped rewards.")
  except SystemExit as e:
    # tyro exits on --help and on malformed arguments (after printing why);
    # return the status instead so that main() can be called from Python.
    return e.code if isinstance(e.code, int) else int(e.code is not None)
  try:
    return run(args)
  except UsageError as e:
    # Setup errors (unknown env, bad spec or hyperparameters) are the user's to
    # fix; a traceback would only bury the message. Errors during compilation
    # or training keep their traceback.
    Console(stderr=True).print("[bold red]error:[/bold red]", Text(str(e)))
    return 2


if __name__ == "__main__":
  sys.exit(main())

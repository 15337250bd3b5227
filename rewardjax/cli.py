"""The ``rewardjax`` command: train N seeds in one compiled call, then report.

    rewardjax train                                   # CartPole-v1 demo, 4 seeds
    rewardjax train --env MountainCar-v0 --rewards extrinsic+potential:mountaincar@scale=10 \\
        --seeds 8 --total-timesteps 1000000 --out runs/mc-shaped
    rewardjax train --env DeepSea-bsuite --env-kwargs size=20 --rewards extrinsic+counts \\
        --ppo.lr 3e-4 --ppo.num-envs 16
    rewardjax train --help                            # every option, with agent hyperparameters

The run is one ``jax.jit(jax.vmap(train))`` over seeds; compile time is measured
separately (``.lower(keys).compile()``). The output folder receives
``metrics.csv`` (one row per seed and update), ``summary.json`` and
``learning_curve.png``. Exit status: 0 on success, 1 if any parameter or reward
became NaN/inf during training, 2 on bad arguments.

Agent hyperparameters are nested under the agent's name (``--ppo.lr``); a new
agent is one entry in ``AGENTS``.
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
from typing import Any, Callable, Sequence

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
from rewardjax.agents import dqn, ppo, pqn

# name -> (config dataclass, make_train(config, env, env_params, rewards, [callback])).
AGENTS: dict[str, tuple[type, Callable]] = {
    "ppo": (ppo.PPOConfig, ppo.make_train),
    "dqn": (dqn.DQNConfig, dqn.make_train),
    "ddqn": (dqn.DDQNConfig, dqn.make_train),
    "pqn": (pqn.PQNConfig, pqn.make_train),
}


@dataclasses.dataclass(frozen=True)
class TrainArgs:
  """Train an agent on several seeds at once and write metrics and a learning curve.

  Reward specs are terms joined by '+': kind[:arg][@option=value,...], e.g.
  'extrinsic+potential:mountaincar@scale=10' or 'extrinsic+rnd@coef=0.5'. Every
  term takes coef, gamma, episodic and name; other options go to its reward
  module (an unknown option lists the valid ones).
  """
  agent: str = "ppo"
  """Algorithm (one of the keys of rewardjax.cli.AGENTS)."""
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
  fields = [(name, cfg, dataclasses.field(default_factory=cfg))
            for name, (cfg, _) in AGENTS.items()]
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
    for part in spec._split_top_level(item, ","):  # pylint: disable=protected-access
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
  cfg_cls, _ = AGENTS[args.agent]
  for name, (other_cls, _) in AGENTS.items():
    if name != args.agent and getattr(args, name) != other_cls():
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


# --------------------------------------------------------------------------- run


def parse_sweep(items: Sequence[str], agent: str, config, sweepable: Sequence[str]
                ) -> list[dict[str, float]]:
  """``["lr=1e-3,3e-4", "novelty.coef=0.1,1"]`` -> the grid of settings (dicts)."""
  axes: dict[str, list[float]] = {}
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
    for v in spec._split_top_level(values, ","):  # pylint: disable=protected-access
      x = spec.parse_value(v)
      if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise UsageError(f"--sweep {name}: expected finite numbers, got {v.strip()!r}")
      if hasattr(config, name):   # the config's own validation (e.g. lr > 0, gamma in (0, 1])
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
  cfg_cls, _ = AGENTS[d["agent"]]
  cfg = cfg_cls(**{k: tup(v) for k, v in d[d["agent"]].items()})
  fields = {k: tup(v) for k, v in d.items() if k != d["agent"]}
  return dataclasses.replace(base, **fields, **{d["agent"]: cfg})


def _over_grid(fn, seed_axes, setting_axes, sweep: bool):
  """vmap over seeds (inner) and, for a sweep, over settings (outer)."""
  f = jax.vmap(fn, seed_axes)
  return jax.vmap(f, setting_axes) if sweep else f


def run(args, console: Console | None = None) -> int:
  """Trains, writes the outputs and returns the exit status."""
  console = console or Console()
  err = Console(stderr=True)
  t_start = time.perf_counter()

  resume_dir = None
  if args.resume:
    resume_dir = Path(args.resume)
    ckpt_dir = resume_dir / "checkpoints"
    if not ckpt_dir.is_dir():
      raise UsageError(f"--resume: no checkpoints in {ckpt_dir} (run with --checkpoint-every K)")
    meta = checkpoint.Checkpointer(ckpt_dir).read_meta()
    # The stopped run's arguments; only output-side options may change.
    args = dataclasses.replace(
        _args_from_json(meta["args"], args), out=str(resume_dir), resume=args.resume,
        progress=args.progress, tensorboard=args.tensorboard, wandb_project=args.wandb_project)
    err.print(Text(f"resuming {resume_dir} at update {meta['next_update']}", style="dim"))

  try:
    config = agent_config(args)
    _, make_train = AGENTS[args.agent]
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    env, env_params = envs.make(args.env, **env_kwargs)
    if args.delay_rewards:
      env = envs.DelayedReward(env)
    rewards = spec.parse_rewards(args.rewards, env_id=args.env, env=env,
                                 env_params=env_params, gamma=config.gamma)
    if args.checkpoint_every < 0:
      raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    mesh = sharding.make_mesh(args.num_devices) if args.num_devices != 1 else None
  except (ValueError, TypeError) as e:
    raise UsageError(str(e)) from e
  out_dir = Path(args.out) if args.out else default_out(args)
  seeds = list(range(args.seed, args.seed + args.seeds))
  params = inspect.signature(make_train).parameters
  kwargs = {}
  if mesh is not None:
    if "mesh" not in params:
      raise UsageError(f"agent {args.agent!r} does not support --num-devices")
    kwargs["mesh"] = mesh

  progress = Progress(
      TextColumn("[bold]training[/bold] {task.description}"), BarColumn(),
      TextColumn("{task.completed:.0f}/{task.total:.0f} updates"),
      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
      console=err, disable=not args.progress, transient=False)
  # Started after compiling, so elapsed time and ETA measure training alone.
  task = progress.add_task("", total=config.num_updates, start=False)
  # make_train runs the reward channels on a random rollout: bad potentials
  # (NaN, wrong shape) fail here, before the long compile.
  # Bad sweeps fail before make_train's reward check and any compile, where the
  # agent's module lists its sweepable hyperparameters (SWEEPABLE).
  early = getattr(sys.modules.get(make_train.__module__), "SWEEPABLE", None)
  if args.sweep and early is not None:
    parse_sweep(args.sweep, args.agent, config,
                tuple(early) + tuple(f"{n}.coef" for n in rewards.names))
  tracker = None
  if args.progress and "callback" in params:
    tracker = kwargs["callback"] = ProgressTracker(progress, task, len(seeds))
  try:
    train = make_train(config, env, env_params, rewards, **kwargs)
  except ValueError as e:
    raise UsageError(str(e)) from e
  settings = parse_sweep(args.sweep, args.agent, config, getattr(train, "sweepable", ()))
  sweep = bool(settings)
  if sweep:
    hparams = {k: jnp.asarray([s[k] for s in settings], jnp.float32) for k in settings[0]}
  else:
    hparams = None
  num_runs = len(seeds) * max(1, len(settings))
  if tracker is not None:
    tracker.num_seeds = num_runs      # the callback reports once per seed and setting
  keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
  chunked = args.checkpoint_every > 0 or resume_dir is not None
  if (chunked or sweep) and not hasattr(train, "run"):
    raise UsageError(f"agent {args.agent!r} does not support --sweep / --checkpoint-every")

  err.print(Text(
      f"{args.agent} on {args.env}, rewards {args.rewards!r} (channels "
      f"{', '.join(rewards.names)}), {len(seeds)} seeds"
      f"{f' × {len(settings)} settings' if sweep else ''} × {config.num_updates} updates × "
      f"{config.batch_size} steps{f' on {args.num_devices} devices' if mesh else ''}; "
      "compiling...", style="dim"))
  labels = ([f"{setting_label(st)}/seed{sd}" for st in settings for sd in seeds] if sweep
            else [f"seed{sd}" for sd in seeds])
  writer = writers.make(labels, tensorboard=args.tensorboard, wandb_project=args.wandb_project,
                        config=_args_json(args), name=out_dir.name)
  flatten = lambda m: {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) if sweep else
                       np.asarray(v) for k, v in m.items()}

  if not chunked:
    t_compile = time.perf_counter()
    # Without a sweep, train(key) alone: agents need not take hparams.
    args_in = (keys, hparams) if sweep else (keys,)
    train_all = (_over_grid(train, (0, None), (None, 0), sweep) if sweep else jax.vmap(train))
    compiled = jax.jit(train_all).lower(*args_in).compile()
    compile_s = time.perf_counter() - t_compile
    t_train = time.perf_counter()
    with progress:
      progress.start_task(task)
      output = jax.block_until_ready(compiled(*args_in))
    train_s = time.perf_counter() - t_train
    metrics = jax.device_get(output.metrics)
    writer.write(flatten(metrics))
  else:
    every = args.checkpoint_every or config.num_updates
    ckpt = checkpoint.Checkpointer(out_dir / "checkpoints")
    init_all = jax.jit(_over_grid(train.init, (0, None), (None, 0), sweep))
    run_all = {}

    def chunk_fn(n):
      if n not in run_all:
        fn = lambda r, s, h: train.run(r, s, n, h)
        run_all[n] = jax.jit(_over_grid(fn, (0, None, None), (0, None, 0), sweep))
      return run_all[n]

    t_compile = time.perf_counter()
    parts = []
    if resume_dir is not None:
      like = jax.eval_shape(init_all, keys, hparams)
      runner, done, meta = ckpt.restore(like)
      start = int(meta["next_update"])
      if done:
        parts.append(done)
    else:
      runner, start = init_all(keys, hparams), 0
    n0 = min(every, config.num_updates - start)
    if n0 > 0:
      run_all[n0] = chunk_fn(n0).lower(runner, jnp.int32(start), hparams).compile()
    compile_s = time.perf_counter() - t_compile
    t_train = time.perf_counter()
    with progress:
      progress.start_task(task)
      progress.update(task, completed=start)
      while start < config.num_updates:
        n = min(every, config.num_updates - start)
        runner, m = chunk_fn(n)(runner, jnp.int32(start), hparams)
        m = jax.device_get(m)
        parts.append(m)
        writer.write(flatten(m))
        start += n
        ckpt.save(start, runner, checkpoint.concat_metrics(parts, axis=-1),
                  meta={"args": _args_json(args), "next_update": start})
    train_s = time.perf_counter() - t_train
    ckpt.close()
    metrics = checkpoint.concat_metrics(parts, axis=-1)
  writer.close()

  # Outputs (a sweep's [settings, seeds, updates] metrics as rows of settings × seeds).
  metrics = flatten(metrics)
  row_seeds = seeds * max(1, len(settings))
  row_settings = [setting_label(st) for st in settings for _ in seeds] if sweep else None
  out_dir.mkdir(parents=True, exist_ok=True)
  columns = scalar_metrics(metrics)
  write_csv(out_dir / "metrics.csv", row_seeds, columns, settings=row_settings)
  ret = np.asarray(metrics["episode_return"], np.float64)
  env_steps = np.asarray(metrics["env_steps"])[0]
  final = ret[:, -1]
  best = np.array([np.nanmax(r) if np.isfinite(r).any() else np.nan for r in ret])
  # Agents report how many episodes ended in each update; count them per seed.
  num_episodes = metrics.get("num_episodes", np.zeros_like(ret))
  episodes = np.asarray(num_episodes).sum(axis=1).astype(int).tolist()
  title = f"{args.env} · {args.agent.upper()} · rewards: {args.rewards}"
  # Per-update returns are noisy; a short moving average (1% of the run) keeps
  # the trend readable without hiding when learning happened.
  if sweep:
    n = len(seeds)
    curves = {setting_label(st): (env_steps, ret[i * n:(i + 1) * n])
              for i, st in enumerate(settings)}
  else:
    curves = {args.rewards: (env_steps, ret)}
  plots.plot_learning_curves(curves, out_dir / "learning_curve.png",
                             title=title, smooth=max(1, ret.shape[1] // 100))
  total_steps = int(env_steps[-1]) * len(row_seeds)
  nonfinite = first_nonfinite(metrics)
  row_names = [f"{a} {b}" for a, b in zip(row_settings, row_seeds)] if sweep else row_seeds
  summary = {
      "agent": args.agent,
      "env": args.env,
      "env_kwargs": env_kwargs,
      "rewards": args.rewards,
      "channels": {n: {"coef": c, "gamma": g, "episodic": e} for n, c, g, e in zip(
          rewards.names, rewards.coefs, rewards.resolve(config.gamma).gammas, rewards.episodic)},
      "seeds": seeds,
      "args": {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainArgs)},
      "out": str(out_dir),
      "config": dataclasses.asdict(config),
      "num_updates": int(ret.shape[1]),
      "env_steps_per_seed": int(env_steps[-1]),
      "final_episode_return": final.tolist(),
      "final_episode_return_mean": float(np.mean(final)),
      "final_episode_return_std": float(np.std(final)),
      "best_episode_return": best.tolist(),
      "episodes": episodes,
      "compile_seconds": compile_s,
      "train_seconds": train_s,
      "wall_clock_seconds": time.perf_counter() - t_start,
      "env_steps_per_second": total_steps / train_s,
      "nonfinite": None if nonfinite is None else
                   {"update": nonfinite[0], "env_steps": nonfinite[1],
                    "seeds": [row_seeds[i] for i in nonfinite[2]]},
      "device": str(jax.devices()[0]),
      "num_devices": args.num_devices,
      "jax_version": jax.__version__,
  }
  if sweep:
    summary["settings"] = settings
    summary["rows"] = [{"setting": st, "seed": sd} for st, sd in zip(row_settings, row_seeds)]
  with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
    json.dump(_json_safe(summary), f, indent=2)
    f.write("\n")

  console.print(summary_table(row_names, final, best, episodes))
  console.print(
      f"compile {compile_s:.1f} s · train {train_s:.1f} s · "
      f"{total_steps / train_s:,.0f} env steps/s · outputs in {out_dir}/")
  if nonfinite is not None:
    update, steps, bad = nonfinite
    err.print(
        f"[bold red]error:[/bold red] non-finite values (NaN/inf) in the agent's parameters "
        f"or rewards, first at update {update} (env step {steps}) in seed(s) "
        f"{', '.join(str(row_names[i]) for i in bad)}. Results after that point are "
        f"meaningless; lower the learning rate (--{args.agent}.lr) or check the reward "
        "scales and progress functions.")
    return 1
  return 0


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

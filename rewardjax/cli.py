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

from rewardjax import envs, plots, spec
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
  return Path("runs") / f"{args.agent}-{args.env}-{rewards}"


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


def write_csv(path: Path, seeds: Sequence[int], columns: dict[str, np.ndarray]) -> None:
  names = list(columns)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["seed", *names])
    lists = {k: (v.astype(np.int64) if v.dtype == bool else v).tolist()
             for k, v in columns.items()}
    for i, seed in enumerate(seeds):
      for u in range(columns[names[0]].shape[1]):
        writer.writerow([seed, *(lists[k][i][u] for k in names)])


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


def run(args, console: Console | None = None) -> int:
  """Trains, writes the outputs and returns the exit status."""
  console = console or Console()
  err = Console(stderr=True)
  t_start = time.perf_counter()

  try:
    config = agent_config(args)
    _, make_train = AGENTS[args.agent]
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    env, env_params = envs.make(args.env, **env_kwargs)
    rewards = spec.parse_rewards(args.rewards, env_id=args.env, env=env,
                                 env_params=env_params, gamma=config.gamma)
  except (ValueError, TypeError) as e:
    raise UsageError(str(e)) from e
  out_dir = Path(args.out) if args.out else default_out(args)
  seeds = list(range(args.seed, args.seed + args.seeds))

  progress = Progress(
      TextColumn("[bold]training[/bold] {task.description}"), BarColumn(),
      TextColumn("{task.completed:.0f}/{task.total:.0f} updates"),
      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
      console=err, disable=not args.progress, transient=False)
  # Started after compiling, so elapsed time and ETA measure training alone.
  task = progress.add_task("", total=config.num_updates, start=False)
  kwargs = {}
  if args.progress and "callback" in inspect.signature(make_train).parameters:
    kwargs["callback"] = ProgressTracker(progress, task, len(seeds))
  # make_train runs the reward channels on a random rollout: bad potentials
  # (NaN, wrong shape) fail here, before the long compile.
  try:
    train = make_train(config, env, env_params, rewards, **kwargs)
  except ValueError as e:
    raise UsageError(str(e)) from e
  keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))

  err.print(Text(
      f"{args.agent} on {args.env}, rewards {args.rewards!r} (channels "
      f"{', '.join(rewards.names)}), {len(seeds)} seeds × {config.num_updates} updates × "
      f"{config.batch_size} steps; compiling...", style="dim"))
  t_compile = time.perf_counter()
  compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
  compile_s = time.perf_counter() - t_compile

  t_train = time.perf_counter()
  with progress:
    progress.start_task(task)
    output = jax.block_until_ready(compiled(keys))
  train_s = time.perf_counter() - t_train
  metrics = jax.device_get(output.metrics)

  # Outputs.
  out_dir.mkdir(parents=True, exist_ok=True)
  columns = scalar_metrics(metrics)
  write_csv(out_dir / "metrics.csv", seeds, columns)
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
  plots.plot_learning_curves({args.rewards: (env_steps, ret)}, out_dir / "learning_curve.png",
                             title=title, smooth=max(1, ret.shape[1] // 100))
  total_steps = int(env_steps[-1]) * len(seeds)
  nonfinite = first_nonfinite(metrics)
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
                    "seeds": [seeds[i] for i in nonfinite[2]]},
      "device": str(jax.devices()[0]),
      "jax_version": jax.__version__,
  }
  with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
    json.dump(_json_safe(summary), f, indent=2)
    f.write("\n")

  console.print(summary_table(seeds, final, best, episodes))
  console.print(
      f"compile {compile_s:.1f} s · train {train_s:.1f} s · "
      f"{total_steps / train_s:,.0f} env steps/s · outputs in {out_dir}/")
  if nonfinite is not None:
    update, steps, bad = nonfinite
    err.print(
        f"[bold red]error:[/bold red] non-finite values (NaN/inf) in the agent's parameters "
        f"or rewards, first at update {update} (env step {steps}) in seed(s) "
        f"{', '.join(str(seeds[i]) for i in bad)}. Results after that point are "
        f"meaningless; lower the learning rate (--{args.agent}.lr) or check the reward "
        "scales and progress functions.")
    return 1
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``rewardjax`` console script; returns the exit status."""
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

"""Throughput of this checkout against an earlier revision, side by side in one process.

A refactor must not slow training down. This script imports the package twice —
the working tree as ``rewardjax`` and a git revision as ``rewardjax_base`` (its
``rewardjax``, ``agents`` and ``envs`` folders copied to a temporary folder and
renamed) — compiles the same training runs from both, and times them in
interleaved calls::

    python benchmarks/ab_throughput.py --base 2378274 --num-envs 4 16 64 --repeats 5

Rows: ``ppo`` (extrinsic reward only), ``ppo+counts`` (a count bonus as a second
channel), ``pqn``, ``dqn``, on CartPole-v1 with each agent's defaults but
``num_envs``. Each cell is the median of ``--repeats`` calls of one compiled
program (``seeds × total_timesteps`` env steps per call); the ratio is this
checkout's steps/s over the base's; "same program" says whether both revisions
compiled the same optimised HLO (source metadata left out), in which case any
ratio away from 1 is the machine's noise.
"""

from __future__ import annotations

# rewardjax first: it sets an XLA flag that must precede JAX's backend start.
import rewardjax  # noqa: F401  pylint: disable=unused-import,g-bad-import-order

import argparse
import dataclasses
import importlib
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import jax

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROWS = ("ppo", "ppo+counts", "pqn", "dqn")


def import_revision(rev: str, folder: pathlib.Path):
  """Imports the package at git revision ``rev`` as ``rewardjax_base``."""
  package = folder / "rewardjax_base"
  archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "rewardjax", "agents", "envs"],
                           check=True, capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
  (folder / "rewardjax").rename(package)
  for sub in ("agents", "envs"):
    (folder / sub).rename(package / sub)
  for path in package.rglob("*.py"):
    path.write_text(re.sub(r"\brewardjax\b(?!_)", "rewardjax_base", path.read_text()))
  sys.path.insert(0, str(folder))
  return importlib.import_module("rewardjax_base")


def build(pkg, row: str, num_envs: int, total_timesteps: int):
  """The ``train(key)`` of ``row`` built from package ``pkg``."""
  env, env_params = pkg.envs.make("CartPole-v1")
  agents = importlib.import_module(pkg.__name__ + ".agents")
  R = pkg.rewards
  rewards = None
  if row == "ppo+counts":
    rewards = R.combine(extrinsic=R.channel(R.extrinsic()),
                        novelty=R.intrinsic_channel(R.count_bonus()))
  if row.startswith("ppo"):
    agent, config = agents.ppo, agents.ppo.PPOConfig()
  elif row == "pqn":
    agent, config = agents.pqn, agents.pqn.PQNConfig()
  else:
    agent, config = agents.dqn, agents.dqn.DQNConfig(learning_starts=1_000)
  config = dataclasses.replace(config, num_envs=num_envs, total_timesteps=total_timesteps)
  return agent.make_train(config, env, env_params, rewards)


def compile_vmapped(train, seeds: int):
  keys = jax.random.split(jax.random.PRNGKey(0), seeds)
  return jax.jit(jax.vmap(train)).lower(keys).compile(), keys


def program_text(compiled) -> str:
  """The optimised HLO without source metadata (file names, lines, stack frames),
  so two revisions that trace the same program print the same text."""
  lines, skip = [], False
  for line in re.sub(r", metadata=\{[^}]*\}", "", compiled.as_text()).splitlines():
    if line.strip() in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
      skip = True
    elif skip and not line.strip():
      skip = False
    elif not skip and not line.startswith("HloModule "):
      lines.append(line)
  return "\n".join(lines)


def time_call(compiled, keys) -> float:
  start = time.perf_counter()
  jax.block_until_ready(compiled(keys))
  return time.perf_counter() - start


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--base", required=True, help="git revision to compare with")
  p.add_argument("--num-envs", type=int, nargs="+", default=[4, 16, 64])
  p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
  p.add_argument("--total-timesteps", type=int, default=131_072)
  p.add_argument("--seeds", type=int, default=1)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    base = import_revision(args.base, pathlib.Path(tmp))
    steps = args.seeds * args.total_timesteps
    print(f"this checkout vs {args.base}: {steps:,} env steps per call, median of "
          f"{args.repeats} interleaved calls, device {jax.devices()[0]}\n")
    print("| row | num_envs | base steps/s | this steps/s | ratio | same program |")
    print("|---|---:|---:|---:|---:|---|")
    for row in args.rows:
      for n in args.num_envs:
        programs = [compile_vmapped(build(pkg, row, n, args.total_timesteps), args.seeds)
                    for pkg in (base, rewardjax)]
        for compiled, keys in programs:            # warm-up call of each
          time_call(compiled, keys)
        times = [[], []]
        for _ in range(args.repeats):
          for i, (compiled, keys) in enumerate(programs):
            times[i].append(time_call(compiled, keys))
        base_sps, this_sps = (steps / statistics.median(t) for t in times)
        same = program_text(programs[0][0]) == program_text(programs[1][0])
        print(f"| {row} | {n} | {base_sps:,.0f} | {this_sps:,.0f} | "
              f"{this_sps / base_sps:.3f} | {'yes' if same else 'no'} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())

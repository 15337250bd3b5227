"""Defaults that hold: PPO, DQN, Double DQN and PQN at their defaults on CartPole-v1.

    python benchmarks/defaults.py                                  # 4 agents × 16 seeds × 500k steps
    python benchmarks/defaults.py --agents pqn --key 1234 --set anneal_lr=True lr=2e-4

Each agent trains ``--seeds`` seeds, keys ``jax.random.split(PRNGKey(--key), --seeds)``,
in one ``jax.jit(jax.vmap(train))`` call with its config class's defaults
(``PPOConfig``, ``DQNConfig``, ``DDQNConfig``, ``PQNConfig``), changed only by
``--set NAME=VALUE`` (values as Python literals; for trying variants on a tuning
key). Reported per seed: the mean training episode return over the last 5 % of
updates (ε-greedy for the Q-learning agents, ε at its final value), and how many
seeds reach ``--threshold`` (475, CartPole-v1's "solved" return).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

import jax

from rewardjax.agents import ppo

import q_learning  # noqa: E402  pylint: disable=wrong-import-position

AGENTS = {"ppo": (ppo.PPOConfig, ppo.make_train), **q_learning.AGENTS}


def parse_overrides(pairs):
  """``["lr=2e-4", "anneal_lr=True"]`` -> ``{"lr": 2e-4, "anneal_lr": True}``."""
  out = {}
  for pair in pairs:
    name, _, value = pair.partition("=")
    try:
      out[name] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[name] = value
  return out


def summary(config, overrides):
  """A few of the config's values, then what ``--set`` changed."""
  lr = f"lr {config['lr']:g}" + (" annealed" if config["anneal_lr"] else "")
  text = f"{config['num_envs']}×{config['num_steps']}, {lr}"
  changed = ", ".join(f"{k}={v}" for k, v in overrides.items())
  return f"{text}; {changed}" if changed else f"{text}; defaults"


def row(res, key_seed, overrides, threshold):
  figures = res["last5pct_return"]
  hits = sum(x >= threshold for x in figures)
  per_seed = ", ".join(f"{x:.1f}" for x in figures)
  return (f"| {res['agent']} | {summary(res['config'], overrides)} | {key_seed} | {per_seed} "
          f"| **{hits}/{len(figures)}** | {res['wall_s']:.0f} |")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
  p.add_argument("--key", type=int, default=20261130, help="seed of the PRNGKey split into --seeds keys")
  p.add_argument("--seeds", type=int, default=16)
  p.add_argument("--steps", type=int, default=500_000)
  p.add_argument("--env", default="CartPole-v1")
  p.add_argument("--threshold", type=float, default=475.0)
  p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                 help="config fields to change from the defaults (every agent listed)")
  p.add_argument("--out", default="runs/defaults")
  args = p.parse_args(argv)
  overrides = parse_overrides(args.set)
  os.makedirs(args.out, exist_ok=True)
  print(f"device {jax.devices()[0]}; {args.env}, {args.steps:,} steps per seed, keys "
        f"split(PRNGKey({args.key}), {args.seeds}); figure: mean return over the last 5 % of updates")
  print(f"| agent | config | key | last-5 % mean per seed | ≥ {args.threshold:g} | wall s |")
  print("|---|---|---|---|---|---|")
  results = []
  for agent in args.agents:
    res = q_learning.run(agent, args.env, args.steps, args.seeds, seed=args.key, agents=AGENTS,
                         **overrides)
    res.update(key=args.key, overrides=overrides)
    results.append(res)
    print(row(res, args.key, overrides, args.threshold), flush=True)
  name = "_".join(args.agents) + f"_key{args.key}" + "".join(f"_{s}" for s in args.set)
  with open(os.path.join(args.out, f"{name}.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
  sys.exit(main())

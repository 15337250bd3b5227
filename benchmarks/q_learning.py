"""Q-learning acceptance runs: DQN / Double DQN / PQN on CartPole, PQN on MinAtar.

    python benchmarks/q_learning.py cartpole                 # 3 agents × 4 seeds × 500k steps
    python benchmarks/q_learning.py minatar --steps 2000000  # PQN on Breakout-MinAtar

Each agent trains ``--seeds`` seeds in one ``jax.jit(jax.vmap(train))`` call
with its config class's defaults (``DQNConfig``, ``DDQNConfig``, ``PQNConfig``).
Reported per seed: the *final return* (``episode_return`` of the last update,
what ``rewardjax train`` reports: training episodes, ε-greedy with ε at its
final value), and the mean over the last 5 % of updates. MinAtar also reports
a uniform-random policy's mean return (measured here, same episodes API) and
the learning curve at 10 points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

import rewardjax as rjx
from rewardjax.agents import dqn, pqn
from rewardjax.envs import rollouts

AGENTS = {
    "dqn": (dqn.DQNConfig, dqn.make_train),
    "ddqn": (dqn.DDQNConfig, dqn.make_train),
    "pqn": (pqn.PQNConfig, pqn.make_train),
}


def run(agent, env_id, steps, seeds, seed=0, agents=None, **overrides):
  """Trains ``seeds`` seeds (keys ``split(PRNGKey(seed), seeds)``) of ``agents[agent]``."""
  cfg_cls, make_train = (agents or AGENTS)[agent]
  cfg = cfg_cls(total_timesteps=steps, **overrides)
  env, params = rjx.envs.make(env_id)
  train = jax.jit(jax.vmap(make_train(cfg, env, params)))
  keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
  t0 = time.time()
  compiled = train.lower(keys).compile()
  compile_s = time.time() - t0
  t0 = time.time()
  out = jax.block_until_ready(compiled(keys))
  wall = time.time() - t0
  ret = np.asarray(out.metrics["episode_return"])
  env_steps = np.asarray(out.metrics["env_steps"])[0]
  tail = max(1, ret.shape[1] // 20)
  idx = np.linspace(0, ret.shape[1] - 1, 11).astype(int)
  return {
      "agent": agent, "env": env_id, "steps": int(env_steps[-1]), "seeds": seeds,
      "config": {k: v for k, v in cfg.__dict__.items()},
      "final_return": ret[:, -1].tolist(),
      "last5pct_return": np.nanmean(ret[:, -tail:], axis=1).tolist(),
      "curve_steps": env_steps[idx].tolist(),
      "curve_mean_return": np.nanmean(ret[:, idx], axis=0).tolist(),
      "compile_s": compile_s, "wall_s": wall,
      "nonfinite": bool(np.asarray(out.metrics["nonfinite"]).any()),
  }


def random_return(env_id, episodes_steps=20_000, num_envs=16):
  """Mean return of the episodes a uniform random policy finishes, and their number."""
  env, params = rjx.envs.make(env_id)

  def roll(key):
    tr = rollouts.random_rollout(env, params, key, episodes_steps // num_envs, num_envs)
    _, m = rjx.episodes.track(rjx.episodes.init(num_envs), tr.reward, tr.terminated | tr.truncated)
    return m["episode_return"], m["num_episodes"]

  r, n = jax.jit(roll)(jax.random.PRNGKey(123))
  return float(r), int(n)


def fmt(res):
  f = ", ".join(f"{x:.1f}" for x in res["final_return"])
  l = ", ".join(f"{x:.1f}" for x in res["last5pct_return"])
  solved = sum(x >= 475 for x in res["final_return"])
  return (f"| {res['agent']} | {res['env']} | {res['steps']:,} | {f} | {l} | {solved}/{res['seeds']} "
          f"| {res['wall_s']:.0f} |")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("what", choices=["cartpole", "minatar"])
  p.add_argument("--agents", nargs="+", default=list(AGENTS))
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--env", default=None)
  p.add_argument("--out", default="runs/q_learning")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  results = []
  print(f"device {jax.devices()[0]}")
  if args.what == "cartpole":
    steps = args.steps or 500_000
    print("| agent | env | steps | final return per seed | last-5% mean per seed | ≥475 | wall s |")
    print("|---|---|---|---|---|---|---|")
    for agent in args.agents:
      res = run(agent, args.env or "CartPole-v1", steps, args.seeds)
      results.append(res)
      print(fmt(res), flush=True)
  else:
    env_id = args.env or "Breakout-MinAtar"
    steps = args.steps or 2_000_000
    rnd, n = random_return(env_id)
    print(f"uniform random policy on {env_id}: mean return {rnd:.3f} over {n} episodes")
    res = run("pqn", env_id, steps, args.seeds, num_envs=128, num_steps=32,
              num_minibatches=32, update_epochs=2, lr=2.5e-4, anneal_lr=False,
              eps_end=0.05, hidden_sizes=(256, 256))
    res["random_return"] = rnd
    results.append(res)
    print("| agent | env | steps | final return per seed | last-5% mean per seed | wall s |")
    print("|---|---|---|---|---|---|")
    print(fmt(res).rsplit("|", 3)[0] + f"| {res['wall_s']:.0f} |")
    print("curve (env steps: mean return over seeds):")
    for s, r in zip(res["curve_steps"], res["curve_mean_return"]):
      print(f"  {s:>10,}: {r:.2f}")
  with open(os.path.join(args.out, f"{args.what}.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
  sys.exit(main())

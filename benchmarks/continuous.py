"""Continuous control: PPO with a Gaussian policy on Pendulum, brax and MountainCarContinuous.

One PPO config for every task (PureJaxRL-style continuous settings): 16 envs ×
128 steps, 10 epochs × 8 minibatches, lr 3e-4 (not annealed), no entropy bonus,
observation and reward normalisation. Each task trains several seeds in one
vmapped, jitted call; wall-clock includes compilation.

* ``pendulum``: Pendulum-v1, 200k steps. Solved: mean return of the last 5
  updates ≥ −250.
* ``brax``: brax/inverted_pendulum (generalized backend, 1000-step episodes),
  100k steps. Maximum return 1000.
* ``mcc``: MountainCarContinuous-v0 exploration. Reaching the flag pays +100 and
  ends the episode; every step costs 0.1·a² (< 100 over a whole episode), so an
  episode reached the goal ⇔ its return > 0. Arms are ``--rewards`` specs with
  library defaults; the initial log-std is −1 (std 0.37, where plain PPO learns
  to stand still) and 0 (std 1).

    python benchmarks/continuous.py --tasks pendulum brax mcc --out runs/continuous
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np

import rewardjax as rjx
from rewardjax import spec
from rewardjax.agents import ppo

CONFIG = dict(num_envs=16, num_steps=128, update_epochs=10, num_minibatches=8, lr=3e-4,
              anneal_lr=False, ent_coef=0.0, normalize_observations=True,
              normalize_rewards=True)
MCC_ARMS = {"ppo": "extrinsic", "ppo+rnd": "extrinsic+rnd",
            "ppo+progress_counts": "extrinsic+progress_counts",
            # The bonus channel weighted 10× the extrinsic one (both reward-normalised).
            "ppo+rnd@coef=10": "extrinsic+rnd@coef=10",
            "ppo+progress_counts@coef=10": "extrinsic+progress_counts@coef=10",
            # Counts over binned position alone (a progress file; run from the repo root).
            "ppo+position_counts":
                "extrinsic+progress_counts:benchmarks/progress/mountaincar_position.py"}


def train_seeds(env_id, steps, seeds, rewards_spec="extrinsic", env_kwargs=None, **overrides):
  env, params = rjx.envs.make(env_id, **(env_kwargs or {}))
  cfg = ppo.PPOConfig(total_timesteps=steps, **{**CONFIG, **overrides})
  rewards = spec.parse_rewards(rewards_spec, env_id=env_id, env=env, env_params=params,
                               gamma=cfg.gamma)
  train = jax.jit(jax.vmap(ppo.make_train(cfg, env, params, rewards)))
  t0 = time.time()
  out = jax.block_until_ready(train(jax.random.split(jax.random.PRNGKey(0), seeds)))
  m = {k: np.asarray(out.metrics[k]) for k in
       ("episode_return", "episode_return_max", "env_steps", "nonfinite")}
  return m, time.time() - t0, cfg


def run_pendulum(args):
  m, wall, _ = train_seeds("Pendulum-v1", args.pendulum_steps, args.seeds)
  final = m["episode_return"][:, -5:].mean(1)
  return {"task": "Pendulum-v1", "steps": args.pendulum_steps, "seeds": args.seeds,
          "final_return": final.tolist(), "solved": int(np.sum(final >= -250)),
          "wall_s": wall, "curve": m["episode_return"].tolist(),
          "env_steps": m["env_steps"][0].tolist(), "nonfinite": bool(m["nonfinite"].any())}


def run_brax(args):
  m, wall, _ = train_seeds("brax/inverted_pendulum", args.brax_steps, args.seeds)
  final = m["episode_return"][:, -3:].mean(1)
  return {"task": "brax/inverted_pendulum", "steps": args.brax_steps, "seeds": args.seeds,
          "final_return": final.tolist(), "solved": int(np.sum(final >= 950)),
          "wall_s": wall, "curve": m["episode_return"].tolist(),
          "env_steps": m["env_steps"][0].tolist(), "nonfinite": bool(m["nonfinite"].any())}


def run_mcc(args):
  results = []
  for log_std in args.mcc_log_stds:
    for arm in args.mcc_arms:
      m, wall, _ = train_seeds("MountainCarContinuous-v0", args.mcc_steps, args.seeds,
                               MCC_ARMS[arm], init_log_std=log_std)
      hit = m["episode_return_max"] > 0.0                    # [seeds, updates]
      final = np.nan_to_num(m["episode_return"][:, -10:].mean(1), nan=-1e9)
      res = {"task": "MountainCarContinuous-v0", "arm": arm, "init_log_std": log_std,
             "steps": args.mcc_steps, "seeds": args.seeds,
             "reached_goal": int(hit.any(1).sum()),
             "solved_at_end": int(np.sum(final > 0.0)),
             "final_return": m["episode_return"][:, -10:].mean(1).tolist(),
             "goal_rate_curve": hit.mean(0).tolist(), "env_steps": m["env_steps"][0].tolist(),
             "wall_s": wall, "nonfinite": bool(m["nonfinite"].any())}
      print(f"| MCC log-std {log_std:g} | {arm} | {args.mcc_steps:,} | "
            f"{res['reached_goal']}/{args.seeds} | {res['solved_at_end']}/{args.seeds} | "
            f"{np.mean(res['final_return']):.1f} | {wall:.0f} |", flush=True)
      results.append(res)
      _save(args, "mcc", results)
  return results


def _save(args, name, res):
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"{name}.json"), "w") as f:
    json.dump(res, f)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", nargs="*", default=["pendulum", "brax", "mcc"])
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--pendulum-steps", type=int, default=200_000)
  p.add_argument("--brax-steps", type=int, default=100_000)
  p.add_argument("--mcc-steps", type=int, default=1_000_000)
  p.add_argument("--mcc-arms", nargs="*", default=list(MCC_ARMS))
  p.add_argument("--mcc-log-stds", type=float, nargs="*", default=[-1.0, 0.0])
  p.add_argument("--out", default="runs/continuous")
  args = p.parse_args(argv)
  print(f"PPO {CONFIG}, {args.seeds} seeds per row (vmapped), device {jax.devices()[0]}")
  for task in args.tasks:
    if task == "mcc":
      print("| task | arm | steps | seeds reaching goal | seeds solving at end | final return | wall s |")
      print("|---|---|---|---|---|---|---|")
      run_mcc(args)
      continue
    res = {"pendulum": run_pendulum, "brax": run_brax}[task](args)
    _save(args, task, res)
    print(f"{res['task']}: {res['steps']:,} steps, final return per seed "
          f"{np.round(res['final_return'], 1).tolist()}, solved {res['solved']}/{args.seeds}, "
          f"wall {res['wall_s']:.0f} s" + (" NON-FINITE" if res["nonfinite"] else ""), flush=True)


if __name__ == "__main__":
  sys.exit(main())

"""Does the bonus explore? PPO with and without exploration bonuses on hard tasks.

For each environment and arm, trains several seeds in one vmapped call and
reports the fraction of seeds whose agent reached the goal at least once, and
the env steps until each first did. "Reached the goal" is read from the best
episode of every update (``episode_return_max``):

* DeepSea-bsuite (size N): the only positive return is the treasure (+1 minus
  move costs), so goal ⇔ return > 0.5. A uniform random policy finds it with
  probability 2^-N per episode.
* MountainCar-v0: an episode that reaches the flag ends before the 200-step time
  limit, so goal ⇔ return > −200.

PPO arms share one PPO config; ``pqn*`` arms use ``PQNConfig`` defaults (32
envs × 64 steps, ε 1 → 0.05 over the first 20 % of steps) with ``--num-envs``. Each arm is a ``--rewards`` spec with the
library's defaults (bonus channels: coefficient 1, γ 0.99, non-episodic, counts
normalised by the std of their discounted return; RND normalises itself) — no
per-environment bonus tuning.

    python benchmarks/exploration.py                        # the full table (long)
    python benchmarks/exploration.py --deepsea-sizes 10 --mountaincar-steps 0 \
        --deepsea-steps 100000 --seeds 2                    # a smoke run
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
from rewardjax import spec
from rewardjax.agents import ppo, pqn

# Each arm is a ``--rewards`` spec, exactly as the CLI takes it: library defaults.
ARMS = {
    "ppo": "extrinsic",
    "ppo+counts": "extrinsic+counts",
    "ppo+rnd": "extrinsic+rnd",
    "ppo+progress_counts": "extrinsic+progress_counts",
    "ppo+progress_potential": "extrinsic+potential",
    # PQN (ε-greedy Q(λ), PQNConfig defaults but num_envs) with the same specs.
    "pqn": "extrinsic",
    "pqn+counts": "extrinsic+counts",
    "pqn+rnd": "extrinsic+rnd",
}
GOAL_THRESHOLD = {"DeepSea-bsuite": 0.5, "MountainCar-v0": -199.5}


def run_arm(env_id, env_kwargs, arm, steps, seeds, config_kwargs, seed=0):
  env, params = rjx.envs.make(env_id, **env_kwargs)
  if arm.startswith("pqn"):
    agent, cfg = pqn, pqn.PQNConfig(total_timesteps=steps, num_envs=config_kwargs["num_envs"])
  else:
    agent, cfg = ppo, ppo.PPOConfig(total_timesteps=steps, **config_kwargs)
  rewards = spec.parse_rewards(ARMS[arm], env_id=env_id, env=env, env_params=params,
                              gamma=cfg.gamma)
  train = jax.jit(jax.vmap(agent.make_train(cfg, env, params, rewards)))
  keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
  t0 = time.time()
  out = jax.block_until_ready(train(keys))
  wall = time.time() - t0
  best = np.asarray(out.metrics["episode_return_max"])        # [seeds, updates]
  mean_ret = np.asarray(out.metrics["episode_return"])
  env_steps = np.asarray(out.metrics["env_steps"])[0]
  hit = best > GOAL_THRESHOLD[env_id]
  first = [int(env_steps[np.argmax(h)]) if h.any() else None for h in hit]
  return {
      "env": env_id, "env_kwargs": env_kwargs, "arm": arm, "rewards": ARMS[arm], "steps": steps, "seeds": seeds,
      "solved_frac": float(np.mean(hit.any(1))),
      "first_goal_steps": first,
      "final_mean_return": [float(x) for x in mean_ret[:, -10:].mean(1)],
      "goal_rate_curve": hit.mean(0).tolist(),
      "env_steps": env_steps.tolist(),
      "wall_s": wall,
      "nonfinite": bool(np.asarray(out.metrics["nonfinite"]).any()),
  }


def fmt_first(first):
  hits = sorted(f for f in first if f is not None)
  if not hits:
    return "—"
  return f"{int(np.median(hits)):,} (min {hits[0]:,})"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--deepsea-sizes", type=int, nargs="*", default=[10, 14, 20])
  p.add_argument("--deepsea-steps", type=int, default=1_000_000)
  p.add_argument("--mountaincar-steps", type=int, default=1_000_000)
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--arms", nargs="*", default=list(ARMS))
  p.add_argument("--num-envs", type=int, default=32)
  p.add_argument("--num-steps", type=int, default=128)
  p.add_argument("--lr", type=float, default=3e-4)
  p.add_argument("--out", default="runs/exploration")
  args = p.parse_args(argv)
  config_kwargs = dict(num_envs=args.num_envs, num_steps=args.num_steps, update_epochs=4,
                       num_minibatches=4, lr=args.lr, gamma=0.99)
  tasks = [("DeepSea-bsuite", {"size": n}, args.deepsea_steps) for n in args.deepsea_sizes]
  if args.mountaincar_steps:
    tasks.append(("MountainCar-v0", {}, args.mountaincar_steps))
  # MountainCar's velocity is ~100x smaller than its position: without observation
  # normalisation PPO ignores it and no arm learns (benchmarks/RESULTS.md).
  task_config = {"MountainCar-v0": {"normalize_observations": True}}
  os.makedirs(args.out, exist_ok=True)

  results = []
  print(f"PPO {config_kwargs} (MountainCar: + normalize_observations), {args.seeds} seeds per "
        f"arm (vmapped), device {jax.devices()[0]}")
  print()
  print("| env | arm | steps | solved seeds | env steps to first goal: median (min) | final return (mean) | wall s |")
  print("|---|---|---|---|---|---|---|")
  for env_id, kw, steps in tasks:
    for arm in args.arms:
      res = run_arm(env_id, kw, arm, steps, args.seeds,
                    {**config_kwargs, **task_config.get(env_id, {})})
      results.append(res)
      label = env_id + (f" (size {kw['size']})" if kw else "")
      solved = sum(f is not None for f in res["first_goal_steps"])
      print(f"| {label} | {arm} | {steps:,} | {solved}/{args.seeds} | {fmt_first(res['first_goal_steps'])} "
            f"| {np.mean(res['final_mean_return']):.3f} | {res['wall_s']:.0f} |"
            + (" NON-FINITE" if res["nonfinite"] else ""), flush=True)
      # Written after every arm, so a long run that is stopped keeps its results.
      with open(os.path.join(args.out, "exploration.json"), "w") as f:
        json.dump(results, f, indent=1)
      plot(results, os.path.join(args.out, "exploration.png"))
  print(f"\nwrote {args.out}/exploration.json and exploration.png")


def plot(results, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tasks = []
  for r in results:
    key = (r["env"], json.dumps(r["env_kwargs"]))
    if key not in tasks:
      tasks.append(key)
  fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
  for ax, (env_id, kw) in zip(axes[0], tasks):
    for r in results:
      if (r["env"], json.dumps(r["env_kwargs"])) != (env_id, kw):
        continue
      ax.plot(r["env_steps"], np.asarray(r["goal_rate_curve"]), label=r["arm"])
    ax.set_title(f"{env_id} {json.loads(kw) or ''}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("fraction of seeds reaching goal")
    ax.set_ylim(-0.02, 1.02)
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  sys.exit(main())

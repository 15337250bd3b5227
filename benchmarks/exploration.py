"""Does the bonus explore? PPO with and without exploration bonuses on hard tasks.

For each environment and arm, trains several seeds in one vmapped call and
reports, per seed, whether and when its agent

* reached the goal at least once while training, read from the best training
  episode of every update (``episode_return_max``);
* solved the task: the evaluation of its policy (``--eval-every`` updates,
  ``--eval-episodes`` episodes, greedy, inside the compiled loop;
  ``rewardjax.agents.evaluation``) has a mean return past ``SOLVED_RETURN``
  (DeepSea > 0.5: the greedy policy takes the treasure; MountainCar-v0 ≥ −150).
  "Solved" counts seeds whose final evaluation solved it; the env steps are
  those of the first evaluation that did.

"Reached the goal":

* DeepSea-bsuite (size N): the only positive return is the treasure (+1 minus
  move costs), so goal ⇔ return > 0.5. A uniform random policy finds it with
  probability 2^-N per episode.
* MountainCar-v0: an episode that reaches the flag ends before the 200-step time
  limit, so goal ⇔ return > −200.

PPO arms share one PPO config; ``pqn*`` arms use ``PQNConfig`` defaults (32
envs × 64 steps, ε 1 → 0.05 over the first 20 % of steps) with ``--num-envs``.
Each arm is a ``--rewards`` spec with the library's defaults (bonus channels:
coefficient 1, γ 0.99, non-episodic, counts normalised by the std of their
discounted return; RND normalises itself) — no per-environment bonus tuning.
``--arms`` takes the names of ``ARMS``, ``ppo+<spec>`` (any spec's terms added
to ``extrinsic``: ``ppo+icm``, ``ppo+ngu@k=5``) or ``NAME=<spec>``
(``parse_arms``).

    python benchmarks/exploration.py                        # the full table (long)
    python benchmarks/exploration.py --deepsea-sizes 20 --arms ppo+e3b ppo+airs  # any specs
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
from rewardjax.agents import evaluation, ppo, pqn

# Each arm is a ``--rewards`` spec, exactly as the CLI takes it: library defaults.
ARMS = {
    "ppo": "extrinsic",
    "ppo+counts": "extrinsic+counts",
    "ppo+rnd": "extrinsic+rnd",
    "ppo+progress_counts": "extrinsic+progress_counts",
    "ppo+progress_potential": "extrinsic+potential",
    # The bonus's coefficient decayed linearly to 0 over the first half of training.
    "ppo+progress_counts_decay": "extrinsic+progress_counts@decay=linear:0.5",
    # AIRS: a bandit pays one of {no bonus, counts, RND, E3B} at a time (select's defaults).
    "ppo+airs": "extrinsic+select:none|counts|rnd|e3b",
    # PQN (ε-greedy Q(λ), PQNConfig defaults but num_envs) with the same specs.
    "pqn": "extrinsic",
    "pqn+counts": "extrinsic+counts",
    "pqn+rnd": "extrinsic+rnd",
}
GOAL_THRESHOLD = evaluation.GOAL_RETURN
# An evaluation solved the task iff its mean return is past this (strictly above
# for DeepSea, at least for MountainCar).
SOLVED_RETURN = {"DeepSea-bsuite": (0.5, False), "MountainCar-v0": (-150.0, True)}


def parse_arms(items, named: dict) -> dict:
  """``--arms`` -> ``{name: rewards spec}``, in order.

  An item is a name of ``named``, ``ppo+<spec>`` (the spec's terms added to
  ``extrinsic``) or ``NAME=<spec>`` (the text before the first ``=`` holds no
  ``@``, so ``ppo+counts@coef=0.05`` is the second form). Raises ``ValueError``
  naming the item for an empty name or spec, or a name given twice.
  """
  arms = {}
  for item in items:
    head, eq, tail = item.partition("=")
    if item in named:
      name, rewards = item, named[item]
    elif eq and "@" not in head:
      name, rewards = head.strip(), tail.strip()
    elif item.startswith("ppo+"):
      name, rewards = item, "extrinsic+" + item[len("ppo+"):]
    else:
      raise ValueError(f"--arms: {item!r} is neither one of {sorted(named)}, "
                       "'ppo+<spec>' nor 'NAME=<spec>'")
    if not name or not rewards or rewards.endswith("+"):
      raise ValueError(f"--arms: {item!r} has an empty name or spec")
    if name in arms:
      raise ValueError(f"--arms: the arm name {name!r} is given twice")
    arms[name] = rewards
  return arms


def solved(env_id: str, eval_return: np.ndarray) -> np.ndarray:
  """Whether each evaluation return is past ``SOLVED_RETURN[env_id]`` (False for NaN)."""
  threshold, inclusive = SOLVED_RETURN[env_id]
  with np.errstate(invalid="ignore"):
    return eval_return >= threshold if inclusive else eval_return > threshold


def first_steps(hit: np.ndarray, env_steps: np.ndarray) -> list:
  """Per seed (rows of ``hit``), the env steps of the first update where it is true, or None."""
  return [int(env_steps[np.argmax(h)]) if h.any() else None for h in hit]


def run_arm(env_id, env_kwargs, arm, rewards_spec, steps, seeds, config_kwargs, seed=0,
            eval_kwargs=None):
  """Trains arm ``arm`` (PQN iff its name starts with ``pqn``) on ``seeds`` vmapped seeds."""
  env, params = rjx.envs.make(env_id, **env_kwargs)
  eval_kwargs = dict(eval_kwargs or {}, eval_goal_return=evaluation.goal_return(env_id))
  if arm.startswith("pqn"):
    agent, cfg = pqn, pqn.PQNConfig(total_timesteps=steps, num_envs=config_kwargs["num_envs"],
                                    **eval_kwargs)
  else:
    agent, cfg = ppo, ppo.PPOConfig(total_timesteps=steps, **config_kwargs, **eval_kwargs)
  rewards = spec.parse_rewards(rewards_spec, env_id=env_id, env=env, env_params=params,
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
  first = first_steps(hit, env_steps)
  result = {
      "env": env_id, "env_kwargs": env_kwargs, "arm": arm, "rewards": rewards_spec, "steps": steps,
      "seeds": seeds, "seed": seed, "config": str(cfg),
      "reached_frac": float(np.mean(hit.any(1))),
      "first_goal_steps": first,
      "final_mean_return": [float(x) for x in mean_ret[:, -10:].mean(1)],
      "goal_rate_curve": hit.mean(0).tolist(),
      "env_steps": env_steps.tolist(),
      "wall_s": wall,
      "nonfinite": bool(np.asarray(out.metrics["nonfinite"]).any()),
  }
  if cfg.eval_every:
    eval_return = np.asarray(out.metrics["eval/return"], np.float64)    # [seeds, updates]
    solved_at = solved(env_id, eval_return)
    result.update({
        "final_eval_return": eval_return[:, -1].tolist(),
        "final_eval_success": np.asarray(out.metrics["eval/success"])[:, -1].tolist(),
        "solved": solved_at[:, -1].tolist(),
        "first_solved_steps": first_steps(solved_at, env_steps),
        "eval_return_curve": eval_return.tolist(),
    })
  return result


def table_row(res, seeds: int) -> str:
  """One markdown row of the table ``main`` prints."""
  label = res["env"] + (f" (size {res['env_kwargs']['size']})" if res["env_kwargs"] else "")
  reached = sum(f is not None for f in res["first_goal_steps"])
  if "solved" in res:
    evals = (f"{sum(res['solved'])}/{seeds} | {fmt_first(res['first_solved_steps'])} "
             f"| {np.mean(res['final_eval_return']):.3f}")
  else:
    evals = "— | — | —"
  return (f"| {label} | {res['arm']} | {res['steps']:,} | {reached}/{seeds} "
          f"| {fmt_first(res['first_goal_steps'])} | {evals} "
          f"| {np.mean(res['final_mean_return']):.3f} | {res['wall_s']:.0f} |"
          + (" NON-FINITE" if res["nonfinite"] else ""))


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
  p.add_argument("--arms", nargs="*", default=[a for a in ARMS if a != "ppo+airs"],
                 help=f"{', '.join(ARMS)}, ppo+<spec> or NAME=<spec> (parse_arms)")
  p.add_argument("--num-envs", type=int, default=32)
  p.add_argument("--num-steps", type=int, default=128)
  p.add_argument("--lr", type=float, default=3e-4)
  p.add_argument("--seed", type=int, default=0,
                 help="the seeds' keys are split(PRNGKey(seed), seeds)")
  p.add_argument("--eval-every", type=int, default=10, help="updates between evaluations (0: none)")
  p.add_argument("--eval-episodes", type=int, default=16)
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
  try:                             # every arm's spec checked on every task before compiling
    arms = parse_arms(args.arms, ARMS)
    for env_id, kw, _ in tasks:
      env, params = rjx.envs.make(env_id, **kw)
      for rewards_spec in arms.values():
        spec.parse_rewards(rewards_spec, env_id=env_id, env=env, env_params=params,
                           gamma=config_kwargs["gamma"])
  except ValueError as e:
    p.error(str(e))
  os.makedirs(args.out, exist_ok=True)

  results = []
  print(f"PPO {config_kwargs} (MountainCar: + normalize_observations), {args.seeds} seeds per "
        f"arm (vmapped), device {jax.devices()[0]}")
  print()
  eval_kwargs = dict(eval_every=args.eval_every, eval_episodes=args.eval_episodes)
  print("| env | arm | steps | reached goal | env steps to first goal: median (min) "
        "| solved (final eval) | env steps to first solved eval: median (min) "
        "| final eval return (mean) | final train return (mean) | wall s |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for env_id, kw, steps in tasks:
    for arm, rewards_spec in arms.items():
      res = run_arm(env_id, kw, arm, rewards_spec, steps, args.seeds,
                    {**config_kwargs, **task_config.get(env_id, {})}, seed=args.seed,
                    eval_kwargs=eval_kwargs)
      results.append(res)
      print(table_row(res, args.seeds), flush=True)
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

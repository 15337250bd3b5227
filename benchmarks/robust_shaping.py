"""Shaping that cannot hurt? A heuristic reward channel fixed, learned, or absent.

For each task, one PPO configuration trains three arms on the same seeds:

* ``plain``: the extrinsic reward only;
* ``fixed``: extrinsic + the heuristic channel at coefficient 1;
* ``learned``: the same channels, the heuristic's coefficient learned after every
  update by the look-ahead meta-gradient of the extrinsic objective
  (``PPOConfig(learn_coefs=("heuristic",))``, agents/learned_coefs.py).

Tasks (a *helpful* heuristic points at the goal, a *harmful* one away from it):

* ``cartpole-tilt`` (harmful): ``2·(|θ|/θ_max − 1)`` per step pays for a tilted
  pole and costs time upright, so at coefficient 1 falling at once pays best;
* ``mountaincar-potential`` (helpful): the library's progress potential
  (``potential:mountaincar``, energy-based shaping);
* ``mountaincar-valley`` (harmful): ``1 − |x − x_valley| / 0.7`` per step pays
  for staying at the valley floor;
* ``deepsea-potential`` (helpful): the library's DeepSea progress potential.

The figure is each seed's mean training return over the last 5 % of updates
(MountainCar and DeepSea also count the seeds whose best episode reached the
goal), and for the learned arm the heuristic's final coefficient. With
``--eval N`` every arm also runs N greedy episodes of its final policy
(``eval_every`` = the number of updates): their mean extrinsic return per seed,
and the seeds whose greedy policy reaches the goal.

    python benchmarks/robust_shaping.py                       # every task, 8 seeds
    python benchmarks/robust_shaping.py --tasks cartpole-tilt --seeds 2 --scale 0.1   # smoke
    python benchmarks/robust_shaping.py --dither              # ReDit on DeepSea-10
    python benchmarks/robust_shaping.py --eval 32             # + the final greedy policy
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import rewardjax as rjx
from rewardjax import spec
from rewardjax.agents import ppo
from rewardjax.types import stateless

MOUNTAINCAR = dict(num_envs=32, num_steps=128, update_epochs=4, num_minibatches=4, lr=3e-4,
                   normalize_observations=True)
DEEPSEA = dict(num_envs=32, num_steps=128, update_epochs=4, num_minibatches=4, lr=3e-4)


def _tilt(batch):
  return 2.0 * (jnp.abs(batch.next_obs[..., 2]) / 0.2095 - 1.0)


def _valley(batch):
  return 1.0 - jnp.abs(batch.next_obs[..., 0] + 0.52) / 0.7


# task: (env id, env kwargs, steps, PPO config, heuristic: spec term or reward fn, goal threshold)
TASKS = {
    "cartpole-tilt": ("CartPole-v1", {}, 500_000, {}, _tilt, None),
    "mountaincar-potential": ("MountainCar-v0", {}, 1_000_000, MOUNTAINCAR, "potential", -199.5),
    "mountaincar-valley": ("MountainCar-v0", {}, 1_000_000, MOUNTAINCAR, _valley, -199.5),
    "deepsea-potential": ("DeepSea-bsuite", {"size": 20}, 1_000_000, DEEPSEA, "potential", 0.5),
}


def rewards_of(arm, heuristic, env_id, env, params, gamma):
  """The arm's channels: extrinsic, and the heuristic (named ``heuristic``) unless plain."""
  if arm == "plain":
    return rjx.rewards.combine(extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()))
  if isinstance(heuristic, str):
    return spec.parse_rewards(f"extrinsic+{heuristic}@name=heuristic", env_id=env_id, env=env,
                              env_params=params, gamma=gamma)
  return rjx.rewards.combine(extrinsic=rjx.rewards.channel(rjx.rewards.extrinsic()),
                             heuristic=rjx.rewards.channel(stateless(heuristic)))


def run_task(name, arm, seeds, key, scale, meta=None, eval_episodes=0):
  env_id, env_kwargs, steps, config_kwargs, heuristic, goal = TASKS[name]
  env, params = rjx.envs.make(env_id, **env_kwargs)
  config = ppo.PPOConfig(total_timesteps=int(steps * scale), **config_kwargs,
                         learn_coefs=("heuristic",) if arm == "learned" else (),
                         **(meta or {}))
  if eval_episodes:      # one evaluation, after the last update
    config = dataclasses.replace(config, eval_every=config.num_updates,
                                 eval_episodes=eval_episodes, eval_goal_return=goal)
  rewards = rewards_of(arm, heuristic, env_id, env, params, config.gamma)
  train = jax.jit(jax.vmap(ppo.make_train(config, env, params, rewards)))
  t0 = time.time()
  out = jax.block_until_ready(train(jax.random.split(key, seeds)))
  m = jax.device_get(out.metrics)
  ret = np.asarray(m["episode_return"], np.float64)
  tail = ret[:, -max(1, ret.shape[1] // 20):]
  row = {"final": np.nanmean(tail, axis=1), "wall": time.time() - t0,
         "steps": config.total_timesteps}
  if goal is not None:
    row["goal"] = (np.asarray(m["episode_return_max"]) > goal).any(axis=1)
  if arm == "learned":
    row["coef"] = np.asarray(m["coef/heuristic"])[:, -1]
  if eval_episodes:
    row["eval"] = np.asarray(m["eval/return"])[:, -1]
    row["eval_success"] = np.asarray(m["eval/success"])[:, -1]
  return row


def dither_table(seeds, key, scale, size=10, steps=300_000, scale_noise=0.05):
  """ReDit on DeepSea: the extrinsic reward with and without dithering, plain PPO."""
  env, params = rjx.envs.make("DeepSea-bsuite", size=size)
  config = ppo.PPOConfig(total_timesteps=int(steps * scale), **DEEPSEA)
  print(f"\nDeepSea-{size}, {config.total_timesteps:,} steps, PPO {DEEPSEA}")
  print("| rewards | seeds reaching the treasure | env steps to first (median) | "
        "last-5 % mean return | wall s |")
  print("|---|---|---:|---:|---:|")
  for rewards_spec in ("extrinsic", f"extrinsic@dither={scale_noise}"):
    rewards = spec.parse_rewards(rewards_spec, env_id="DeepSea-bsuite", env=env,
                                 env_params=params, gamma=config.gamma)
    train = jax.jit(jax.vmap(ppo.make_train(config, env, params, rewards)))
    t0 = time.time()
    m = jax.device_get(jax.block_until_ready(train(jax.random.split(key, seeds))).metrics)
    hit = np.asarray(m["episode_return_max"]) > 0.5
    steps_to = [int(m["env_steps"][0][np.argmax(h)]) for h in hit if h.any()]
    ret = np.asarray(m["episode_return"])
    tail = np.nanmean(ret[:, -max(1, ret.shape[1] // 20):])
    median = f"{int(np.median(steps_to)):,}" if steps_to else "—"
    print(f"| `{rewards_spec}` | {hit.any(1).sum()}/{seeds} | {median} | {tail:.3f} | "
          f"{time.time() - t0:.0f} |", flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
  p.add_argument("--arms", nargs="+", default=["plain", "fixed", "learned"])
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--key", type=int, default=20261201, help="PRNGKey split into --seeds keys")
  p.add_argument("--scale", type=float, default=1.0, help="multiplies every task's steps")
  p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                 help="PPOConfig meta_* fields for the learned arm, e.g. meta_prior_decay=0.01")
  p.add_argument("--eval", type=int, default=0, metavar="N",
                 help="also run N greedy episodes of each arm's final policy")
  p.add_argument("--dither", action="store_true",
                 help="only the ReDit table: DeepSea-10 with and without dithering")
  args = p.parse_args()
  if args.dither:
    dither_table(args.seeds, jax.random.PRNGKey(args.key), args.scale)
    return
  key = jax.random.PRNGKey(args.key)
  meta = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
  print(f"device {jax.devices()[0]}; keys split(PRNGKey({args.key}), {args.seeds}); "
        f"learned arm: {meta or 'PPOConfig defaults'}")
  evals = ("greedy return per seed | mean | greedy policy reaches the goal | " if args.eval
           else "")
  print("| task | arm | steps | last-5 % mean return per seed | mean | goal reached | "
        f"{evals}final coef per seed | wall s |")
  print("|---|---|---:|---|---:|---|" + ("---|---:|---|" if args.eval else "") + "---|---:|")
  for name in args.tasks:
    for arm in args.arms:
      row = run_task(name, arm, args.seeds, key, args.scale, meta, args.eval)
      goal = f"{int(row['goal'].sum())}/{args.seeds}" if "goal" in row else "—"
      coef = ", ".join(f"{c:.2f}" for c in row["coef"]) if "coef" in row else "—"
      greedy = ""
      if args.eval:
        solved = (f"{int((row['eval_success'] > 0.5).sum())}/{args.seeds}"
                  if "goal" in row else "—")
        greedy = (f"{', '.join(f'{x:.1f}' for x in row['eval'])} | {np.mean(row['eval']):.1f} | "
                  f"{solved} | ")
      print(f"| {name} | {arm} | {row['steps']:,} | "
            f"{', '.join(f'{x:.1f}' for x in row['final'])} | {np.mean(row['final']):.1f} | "
            f"{goal} | {greedy}{coef} | {row['wall']:.0f} |", flush=True)


if __name__ == "__main__":
  main()

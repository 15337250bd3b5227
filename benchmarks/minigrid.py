"""Exploration on MiniGrid (xminigrid): PPO (feed-forward, or GRU with ``--network gru``)
with and without bonuses.

For each task and arm, trains ``--seeds`` seeds in one vmapped call (keys
``split(PRNGKey(--seed), seeds)``; the evaluation episodes use keys folded from
each seed's own, never seen in training) and reports per seed whether its agent

* reached the goal while training: some training episode of some update had a
  positive return (xminigrid pays ``1 − 0.9·t/max_steps`` at the goal and 0
  otherwise, so return > 0 ⇔ goal);
* reached it in the final updates: some episode of the last ``FINAL_SHARE`` of
  updates had a positive return;
* solved the task: the policy's success rate (``eval/success``, the share of
  ``--eval-episodes`` evaluation episodes that reach the goal, every
  ``--eval-every`` updates; ``rewardjax.agents.evaluation``) is ≥ 90 % at the
  final evaluation; the env steps are those of the first evaluation at ≥ 90 %.
  The evaluated policy is the greedy one (the mode), or with ``--eval-sampled``
  samples of it: a partly trained greedy MiniGrid policy often loops in place.

Every arm shares one PPO config; the observations (xminigrid's ``[7, 7, 2]``
integer view) go through ``--encoder`` (``PPOConfig.encoder``; "auto" is the tile
embedding, "flat" the 98 raw ids, ~16× cheaper per step on a CPU).
Each arm is a ``--rewards`` spec (``parse_arms``): ``ppo``, ``ppo+counts`` and
``ppo+rnd`` are the library's defaults (bonus channels: coefficient 1, γ 0.99,
non-episodic, counts normalised by the std of their discounted return, RND
normalising itself); ``ppo+<spec>`` adds any spec's terms to the extrinsic reward
(``"ppo+counts@coef=0.05"``) and ``NAME=<spec>`` names a whole spec, so a bonus's
options (coefficient, episodic) may be set per arm; the table and the json give
each arm's spec. ``--env-kwargs max_steps=N`` changes every task's episode limit
(the table names the variant).

    python benchmarks/minigrid.py --tasks MiniGrid-Empty-8x8 --steps 200000 --seeds 2  # smoke
    python benchmarks/minigrid.py --tasks MiniGrid-DoorKey-8x8 --steps 2000000
    python benchmarks/minigrid.py --tasks MiniGrid-Empty-16x16 --env-kwargs max_steps=48 \\
        --encoder flat --steps 5000000 --eval-sampled \\
        --arms ppo ppo+counts "ppo+counts@coef=0.1" "ep=extrinsic+counts@coef=0.1,episodic=true"
    python benchmarks/minigrid.py --throughput        # GRU PPO steps/s, baseline architecture

``--throughput`` times recurrent PPO in the architecture of XLand-MiniGrid's
single-task baseline (its ``training/train_single_task.py``: tile and colour
embeddings of 16, 2×2 convolutions of 16, 32, 64 channels, a previous-action
embedding of 16, GRU, heads of 256; 1 epoch × 16 minibatches, lr 1e-3) at a
CPU size (``--num-envs 256 --num-steps 16``, ``--rnn-hidden 256``; the baseline
runs 8192 × 16 with GRU 1024), evaluation off, compile excluded, beside the
adapter's random-policy steps/s at the same number of environments.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import numpy as np

import rewardjax as rjx
from rewardjax import cli, encoders, spec
from rewardjax.agents import ppo, ppo_recurrent

from exploration import first_steps, fmt_first
from exploration import parse_arms as exploration_parse_arms

ARMS = {
    "ppo": "extrinsic",
    "ppo+counts": "extrinsic+counts",
    "ppo+rnd": "extrinsic+rnd",
}
FINAL_SHARE = 0.1           # "final updates": the last 10 % of updates
SOLVED_SUCCESS = 0.9        # a seed solved the task iff its final eval success ≥ 90 %


# ``--arms`` items -> ``{name: spec}`` (exploration.parse_arms) with this file's named arms.
parse_arms = functools.partial(exploration_parse_arms, named=ARMS)


def make_task(task: str, env_kwargs: dict, rewards: str, gamma: float):
  """``(env, params, channels)`` for ``xminigrid/<task>`` with ``env_kwargs`` and a spec."""
  env_id = "xminigrid/" + task
  env, params = rjx.envs.make(env_id, **env_kwargs)
  channels = spec.parse_rewards(rewards, env_id=env_id, env=env, env_params=params, gamma=gamma)
  return env, params, channels


def run_arm(task: str, arm: str, rewards_spec: str, steps: int, seeds: int, config_kwargs: dict,
            seed: int = 0, env_kwargs: dict | None = None):
  env_kwargs = dict(env_kwargs or {})
  cfg = ppo.PPOConfig(total_timesteps=steps, eval_goal_return=0.0, **config_kwargs)
  env, params, rewards = make_task(task, env_kwargs, rewards_spec, cfg.gamma)
  keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
  t0 = time.time()
  train = jax.jit(jax.vmap(ppo.make_train(cfg, env, params, rewards))).lower(keys).compile()
  compile_s = time.time() - t0
  t0 = time.time()
  out = jax.block_until_ready(train(keys))
  wall = time.time() - t0
  best = np.asarray(out.metrics["episode_return_max"])         # [seeds, updates]
  env_steps = np.asarray(out.metrics["env_steps"])[0]
  hit = best > 0.0
  final = max(1, int(round(FINAL_SHARE * hit.shape[1])))
  result = {
      "task": task, "env_kwargs": env_kwargs,
      "max_steps": int(params.max_steps_in_episode), "arm": arm, "rewards": rewards_spec,
      "steps": steps, "seeds": seeds, "seed": seed, "config": str(cfg),
      "first_goal_steps": first_steps(hit, env_steps),
      "goal_in_final_updates": hit[:, -final:].any(1).tolist(),
      "final_mean_return": np.asarray(out.metrics["episode_return"])[:, -final:].mean(1).tolist(),
      "goal_rate_curve": hit.mean(0).tolist(),
      "env_steps": env_steps.tolist(),
      "compile_s": compile_s, "wall_s": wall, "steps_per_s": seeds * steps / wall,
      "nonfinite": bool(np.asarray(out.metrics["nonfinite"]).any()),
  }
  if cfg.eval_every:
    success = np.asarray(out.metrics["eval/success"], np.float64)   # [seeds, updates]
    with np.errstate(invalid="ignore"):
      solved_at = success >= SOLVED_SUCCESS
    result.update({
        "final_eval_success": success[:, -1].tolist(),
        "solved": solved_at[:, -1].tolist(),
        "first_solved_steps": first_steps(solved_at, env_steps),
        "eval_success_curve": success.tolist(),
    })
  return result


def table_row(res) -> str:
  """One markdown row of the table ``main`` prints."""
  n = res["seeds"]
  task = res["task"] + "".join(f" ({k} {v})" for k, v in res.get("env_kwargs", {}).items())
  cells = [task, f"{res['arm']}: `{res['rewards']}`", f"{res['steps']:,}",
           f"{sum(f is not None for f in res['first_goal_steps'])}/{n}",
           f"{sum(res['goal_in_final_updates'])}/{n}"]
  cells += ([f"{sum(res['solved'])}/{n}", f"{np.mean(res['final_eval_success']):.2f}",
             fmt_first(res["first_solved_steps"])] if "solved" in res else ["—"] * 3)
  cells += [f"{np.mean(res['final_mean_return']):.3f}", f"{res['steps_per_s']:,.0f}",
            f"{res['wall_s']:.0f}"]
  return "| " + " | ".join(cells) + " |" + (" NON-FINITE" if res["nonfinite"] else "")


def baseline_architecture_train(task: str, num_envs: int, num_steps: int, rnn_hidden: int,
                                updates: int):
  """Recurrent PPO shaped like XLand-MiniGrid's single-task baseline (module docstring)."""
  env, params = rjx.envs.make(f"xminigrid/{task}")
  config = ppo.PPOConfig(network="gru", rnn_hidden=rnn_hidden, head_hidden=256,
                         prev_action_embedding=16, num_envs=num_envs, num_steps=num_steps,
                         update_epochs=1, num_minibatches=16, lr=1e-3,
                         total_timesteps=updates * num_envs * num_steps)
  num_ids = encoders.encoder_for("tiles", env.observation_space(params)).num_ids
  encoder = encoders.TileEmbedding(num_ids=num_ids, features=16, conv_features=(16, 32, 64))
  return ppo_recurrent.make_train(config, env, params, encoder=encoder), config


def random_steps_per_s(task: str, num_envs: int, num_steps: int, repeats: int) -> float:
  env, params = rjx.envs.make(f"xminigrid/{task}")
  run = jax.jit(lambda key: rjx.envs.random_rollout(env, params, key, num_steps, num_envs))
  jax.block_until_ready(run(jax.random.PRNGKey(0)))
  times = []
  for r in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.PRNGKey(r + 1)))
    times.append(time.perf_counter() - t0)
  return num_envs * num_steps / float(np.median(times))


def throughput(task: str, num_envs: int, num_steps: int, rnn_hidden: int, updates: int,
               repeats: int) -> None:
  train, config = baseline_architecture_train(task, num_envs, num_steps, rnn_hidden, updates)
  t0 = time.perf_counter()
  compiled = jax.jit(train).lower(jax.random.PRNGKey(0)).compile()
  compile_s = time.perf_counter() - t0
  times = []
  for r in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(r)))
    times.append(time.perf_counter() - t0)
  steps = config.num_updates * config.batch_size
  print(f"| {task} | recurrent PPO, baseline architecture, GRU {rnn_hidden}, {num_envs} envs × "
        f"{num_steps} steps | {steps / float(np.median(times)):,.0f} | {compile_s:.0f} |")
  print(f"| {task} | random policy, {num_envs} envs | "
        f"{random_steps_per_s(task, num_envs, 256, repeats):,.0f} | – |", flush=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", nargs="*", default=["MiniGrid-DoorKey-8x8"],
                 help="xminigrid ids (without the xminigrid/ prefix)")
  p.add_argument("--arms", nargs="*", default=list(ARMS),
                 help=f"{', '.join(ARMS)}, ppo+<spec> or NAME=<spec> (module docstring)")
  p.add_argument("--env-kwargs", nargs="*", default=[],
                 help="name=value for every task, e.g. max_steps=256 (the episode limit)")
  p.add_argument("--steps", type=int, default=2_000_000, help="env steps per seed")
  p.add_argument("--seeds", type=int, default=8)
  p.add_argument("--seed", type=int, default=0, help="the seeds' keys are split(PRNGKey(seed))")
  p.add_argument("--num-envs", type=int, default=None,
                 help="default 64; with --throughput 256 (the CPU-sized baseline)")
  p.add_argument("--num-steps", type=int, default=None,
                 help="default 64; with --throughput 16 (the baseline's)")
  p.add_argument("--lr", type=float, default=5e-4)
  p.add_argument("--ent-coef", type=float, default=0.01)
  p.add_argument("--encoder", default="auto", choices=encoders.ENCODERS,
                 help="PPOConfig.encoder (auto: the tile embedding)")
  p.add_argument("--eval-every", type=int, default=20, help="updates between evaluations (0: none)")
  p.add_argument("--eval-episodes", type=int, default=32)
  p.add_argument("--eval-sampled", action="store_true",
                 help="evaluate samples of the policy instead of its mode (greedy)")
  p.add_argument("--out", default="runs/minigrid")
  p.add_argument("--throughput", action="store_true",
                 help="time GRU PPO in the xminigrid baseline's architecture instead")
  p.add_argument("--network", default="mlp", choices=("mlp", "gru"),
                 help="PPOConfig.network: feed-forward, or recurrent PPO (GRU of --rnn-hidden)")
  p.add_argument("--rnn-hidden", type=int, default=256, help="GRU size (--network gru, --throughput)")
  p.add_argument("--updates", type=int, default=40, help="--throughput: updates per timed call")
  p.add_argument("--repeats", type=int, default=3, help="--throughput: timed calls (median)")
  args = p.parse_args(argv)
  if args.throughput:
    num_envs, num_steps = args.num_envs or 256, args.num_steps or 16
    print("| task | what | env steps/s (median) | compile s |\n|---|---|---:|---:|")
    for task in args.tasks:
      throughput(task, num_envs, num_steps, args.rnn_hidden, args.updates, args.repeats)
    return
  config_kwargs = dict(num_envs=args.num_envs or 64, num_steps=args.num_steps or 64,
                       update_epochs=4, num_minibatches=4, lr=args.lr, ent_coef=args.ent_coef,
                       gamma=0.99,
                       hidden_sizes=(64, 64), activation="tanh", encoder=args.encoder,
                       eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                       eval_sampled=args.eval_sampled, network=args.network)
  if args.network == "gru":
    config_kwargs.update(rnn_hidden=args.rnn_hidden)
  try:                             # every arm, spec and env kwarg checked before anything compiles
    arms = parse_arms(args.arms)
    env_kwargs = cli.parse_env_kwargs(args.env_kwargs)
    for task in args.tasks:
      for rewards in arms.values():
        make_task(task, env_kwargs, rewards, config_kwargs["gamma"])
  except ValueError as e:
    p.error(str(e))
  os.makedirs(args.out, exist_ok=True)
  mode = "sampled" if args.eval_sampled else "greedy"
  print(f"PPO {config_kwargs}, {args.seeds} seeds per arm (vmapped), "
        f"seed {args.seed}, env kwargs {env_kwargs}, device {jax.devices()[0]}")
  print()
  print("| task | arm | steps | reached goal (training) | goal in final 10 % of updates "
        f"| solved (final {mode} eval ≥ 90 %) | final {mode} success (mean) "
        f"| env steps to 90 % {mode} success: median (min) | final train return (mean) "
        "| env steps/s | wall s |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  results = []
  for task in args.tasks:
    for arm, rewards in arms.items():
      res = run_arm(task, arm, rewards, args.steps, args.seeds, config_kwargs, args.seed,
                    env_kwargs)
      results.append(res)
      print(table_row(res), flush=True)
      with open(os.path.join(args.out, "minigrid.json"), "w") as f:   # kept if stopped
        json.dump(results, f, indent=1)
  print(f"\nwrote {args.out}/minigrid.json")


if __name__ == "__main__":
  main()

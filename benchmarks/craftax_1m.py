"""Craftax-1M: PPO with and without exploration bonuses on Craftax-Symbolic-v1.

The Craftax paper (Matthews et al. 2024) reports, at 1M environment steps on
Craftax-Symbolic, the reward as a percentage of the maximum: PPO 2.2, PPO-RNN
2.3, RND 2.2, ICM 2.2, E3B 2.2. This script trains each arm for ``--steps`` env
steps (several seeds, vmapped in one compiled call) and prints per arm

* the score ``craftax/score`` (``rewardjax.envs.craftax_adapter.episode_metrics``:
  the achievement reward of the finished episodes as % of its maximum),
  averaged over the last ``--final-frac`` of updates and over seeds;
* the mean training episode return, env steps/s (compile excluded) and the
  compile time;
* the achievements with the highest success rates over the same window.

Arms share one PPO configuration, Craftax_Baselines' for Craftax-1M (256 envs ×
16 steps, 8 minibatches × 4 epochs, lr 2e-4, GAE λ 0.8, gradient norm 1.0,
three tanh layers of 512); bonus arms are ``--rewards`` specs with the
library's defaults (non-episodic channels at coefficient 1, γ 0.99).
``ppo-gru`` needs ``PPOConfig.network`` (recurrent PPO); without that field the
arm is skipped with a message.

    python benchmarks/craftax_1m.py                      # Craftax-Symbolic-v1, 1M steps (GPU)
    python benchmarks/craftax_1m.py --tiny               # CPU smoke run: Classic, a few updates

(Not ``craftax.py``: run as a script, a file of that name would shadow the
``craftax`` package it imports.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import jax
import numpy as np

import rewardjax as rjx
from rewardjax import spec
from rewardjax.agents import ppo

# Arm -> (``--rewards`` spec, PPOConfig overrides).
ARMS = {
    "ppo": ("extrinsic", {}),
    "ppo+rnd": ("extrinsic+rnd", {}),
    "ppo+e3b": ("extrinsic+e3b", {}),
    "ppo+icm": ("extrinsic+icm", {}),
    "ppo-gru": ("extrinsic", {"network": "gru"}),
}

# Craftax_Baselines' PPO for Craftax-1M (its rnd_1m sweep fixes envs, steps, minibatches).
BASELINE_CONFIG = dict(num_envs=256, num_steps=16, num_minibatches=8, update_epochs=4, lr=2e-4,
                       gamma=0.99, gae_lambda=0.8, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
                       max_grad_norm=1.0, hidden_sizes=(512, 512, 512), activation="tanh")
TINY_CONFIG = dict(BASELINE_CONFIG, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1,
                   hidden_sizes=(64, 64))


def arm_config(arm: str, base: dict, steps: int) -> ppo.PPOConfig | None:
  """The arm's ``PPOConfig``, or None when this PPO lacks a field the arm sets."""
  overrides = ARMS[arm][1]
  fields = {f.name for f in dataclasses.fields(ppo.PPOConfig)}
  missing = sorted(set(overrides) - fields)
  if missing:
    print(f"{arm}: skipped: PPOConfig has no field(s) {missing} in this checkout", flush=True)
    return None
  return ppo.PPOConfig(total_timesteps=steps, **base, **overrides)


def summarise(metrics: dict, names: tuple[str, ...], final_frac: float, top: int) -> dict:
  """Score, return and the ``top`` achievements over the last ``final_frac`` of updates."""
  num_updates = np.asarray(metrics["craftax/score"]).shape[-1]
  window = slice(num_updates - max(1, int(round(final_frac * num_updates))), num_updates)
  mean = lambda k: float(np.nanmean(np.asarray(metrics[k], np.float64)[..., window]))
  rates = {n: mean(f"achievements/{n}") for n in names}
  best = sorted(rates.items(), key=lambda kv: -kv[1])[:top]
  return {"score": mean("craftax/score"), "episode_return": mean("episode_return"),
          "top_achievements": [(n, r) for n, r in best if r > 0],
          "episodes": int(np.asarray(metrics["num_episodes"]).sum()),
          "nonfinite": bool(np.asarray(metrics["nonfinite"]).any())}


def timed(fn, *args):
  """``(fn(*args), seconds)``, waiting for the result's arrays."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def run_arm(arm: str, env_id: str, env_kwargs: dict, base: dict, steps: int, seeds: int,
            final_frac: float, top: int, seed: int = 0) -> dict | None:
  env, params = rjx.envs.make(env_id, **env_kwargs)
  cfg = arm_config(arm, base, steps)
  if cfg is None:
    return None
  rewards = spec.parse_rewards(ARMS[arm][0], env_id=env_id, env=env, env_params=params,
                              gamma=cfg.gamma)
  train = jax.jit(jax.vmap(ppo.make_train(cfg, env, params, rewards)))
  keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
  compiled, compile_s = timed(lambda k: train.lower(k).compile(), keys)
  out, run_s = timed(compiled, keys)
  metrics = jax.device_get(out.metrics)
  env_steps = int(np.asarray(metrics["env_steps"])[0, -1])
  return {"arm": arm, "env": env_id, "rewards": ARMS[arm][0], "steps": env_steps,
          "seeds": seeds, "config": str(cfg), "compile_s": compile_s, "run_s": run_s,
          "env_steps_per_s": seeds * env_steps / run_s,
          **summarise(metrics, env.achievement_names, final_frac, top)}


def random_throughput(env_id: str, num_envs: int, num_steps: int) -> dict:
  """Random-policy env steps/s (compile excluded) of ``env_id`` through the adapter and
  of Craftax's own auto-reset environment, ``num_envs`` × ``num_steps`` in one scan each."""
  from craftax.craftax_env import make_craftax_env_from_name  # pylint: disable=g-import-not-at-top
  env, params = rjx.envs.make(env_id)
  native = make_craftax_env_from_name(env_id.split("/", 1)[1], auto_reset=True)
  out = {}
  for name, e in (("rewardjax adapter", env), ("craftax auto-reset", native)):
    def rollout(key, e=e):
      _, state = jax.vmap(e.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)

      def step(state, k):
        k_act, k_env = jax.random.split(k)
        action = jax.random.randint(k_act, (num_envs,), 0, env.num_actions)
        res = jax.vmap(e.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, num_envs), state, action, params)
        return res[1], res[2].sum()

      return jax.lax.scan(step, state, jax.random.split(key, num_steps))[1].sum()

    compiled, compile_s = timed(lambda k: jax.jit(rollout).lower(k).compile(), jax.random.PRNGKey(0))
    _, run_s = timed(compiled, jax.random.PRNGKey(1))
    out[name] = (num_envs * num_steps / run_s, compile_s)
  return out


def table_row(res: dict) -> str:
  top = ", ".join(f"{n} {r:.0f}" for n, r in res["top_achievements"]) or "—"
  return (f"| {res['arm']} | {res['steps']:,} | {res['seeds']} | {res['score']:.2f} "
          f"| {res['episode_return']:.2f} | {res['env_steps_per_s']:,.0f} | {res['compile_s']:.0f} "
          f"| {top} |" + (" NON-FINITE" if res["nonfinite"] else ""))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--env", default=None, help="a craftax/<id> (default: Craftax-Symbolic-v1; "
                                             "--tiny: Craftax-Classic-Symbolic-v1)")
  p.add_argument("--steps", type=int, default=1_000_000, help="env steps per seed and arm")
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
  p.add_argument("--final-frac", type=float, default=0.1,
                 help="the last fraction of updates the score is averaged over")
  p.add_argument("--top", type=int, default=5, help="achievements listed per arm")
  p.add_argument("--max-timesteps", type=int, default=None,
                 help="Craftax's episode time limit (default: the game's own)")
  p.add_argument("--tiny", action="store_true",
                 help="CPU smoke run: Craftax-Classic, 4 envs × 8 steps, 2 updates, 1 seed, "
                      "16-step episodes, a small network")
  p.add_argument("--throughput", type=int, nargs=2, metavar=("NUM_ENVS", "NUM_STEPS"),
                 help="print random-policy env steps/s of the adapter beside Craftax's own "
                      "auto-reset environment, and exit")
  p.add_argument("--out", default="runs/craftax")
  args = p.parse_args(argv)
  if args.throughput:
    env_id = args.env or "craftax/Craftax-Symbolic-v1"
    print(f"{env_id}, random actions, {args.throughput[0]} envs × {args.throughput[1]} steps, "
          f"device {jax.devices()[0]}\n\n| env | env steps/s | compile s |\n|---|---:|---:|")
    for name, (sps, compile_s) in random_throughput(env_id, *args.throughput).items():
      print(f"| {name} | {sps:,.0f} | {compile_s:.0f} |", flush=True)
    return
  if args.tiny:
    env_id = args.env or "craftax/Craftax-Classic-Symbolic-v1"
    base, steps, seeds = TINY_CONFIG, 64, 1
    max_timesteps = args.max_timesteps or 16
  else:
    env_id = args.env or "craftax/Craftax-Symbolic-v1"
    base, steps, seeds, max_timesteps = BASELINE_CONFIG, args.steps, args.seeds, args.max_timesteps
  env_kwargs = {} if max_timesteps is None else {"max_timesteps": max_timesteps}
  os.makedirs(args.out, exist_ok=True)
  print(f"{env_id} {env_kwargs}, PPO {base}, {seeds} seed(s) per arm (vmapped), "
        f"device {jax.devices()[0]}\n")
  print("| arm | env steps | seeds | score (% of max) | episode return | env steps/s "
        "| compile s | top achievements (success %) |")
  print("|---|---:|---:|---:|---:|---:|---:|---|", flush=True)
  results = []
  for arm in args.arms:
    res = run_arm(arm, env_id, env_kwargs, base, steps, seeds, args.final_frac, args.top)
    if res is None:
      continue
    results.append(res)
    print(table_row(res), flush=True)
    # Written after every arm, so a long run that is stopped keeps its results.
    with open(os.path.join(args.out, "craftax.json"), "w") as f:
      json.dump(results, f, indent=1)
  print(f"\nCraftax paper, Craftax-Symbolic at 1M (% of max): PPO 2.2, PPO-RNN 2.3, RND 2.2, "
        f"ICM 2.2, E3B 2.2.\nwrote {args.out}/craftax.json")


if __name__ == "__main__":
  main()

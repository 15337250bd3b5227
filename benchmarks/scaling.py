"""How PPO's (or PQN's, ``--agent pqn``) env steps/s scale with devices (data-parallel) and with vmapped seeds.

Two tables:

* **devices** — the same PPO run (``num_envs`` environments in all) on 1, 2, 4
  devices (``make_train(..., mesh=make_mesh(D))``: environments split over
  devices, gradients and reward statistics reduced across them). Each device
  count runs in its own subprocess, because on CPU the device count is fixed
  by ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` before jax starts.
  Forced host devices share the machine's cores, so on CPU this measures the
  overhead of sharding, not a speed-up; on a multi-GPU host it measures scaling.
* **seeds** — ``jax.jit(jax.vmap(train))`` over 1, 8, 32 seeds in one call
  (one device), with the ratio of total env steps/s to one seed's.

Env steps/s = ``seeds × num_updates × num_envs × num_steps / median wall time``
of the compiled call (compile time excluded, reported separately)::

    python benchmarks/scaling.py                        # both tables, CartPole-v1
    python benchmarks/scaling.py --devices 1 2 --seeds 1 8 --total-timesteps 65536
    python benchmarks/scaling.py --rewards rnd          # with RND as a second channel
    python benchmarks/scaling.py --agent pqn            # PQN (purejaxql defaults otherwise)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _configure_devices(n: int) -> None:
  flags = os.environ.get("XLA_FLAGS", "")
  os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _build(args, num_devices: int):
  import rewardjax as rjx  # pylint: disable=g-import-not-at-top
  from rewardjax import sharding  # pylint: disable=g-import-not-at-top
  from rewardjax.agents import ppo, pqn  # pylint: disable=g-import-not-at-top
  env, params = rjx.envs.make(args.env)
  rewards = None
  if args.rewards == "rnd":
    rewards = rjx.rewards.combine(
        extrinsic=rjx.rewards.extrinsic(),
        novelty=rjx.rewards.channel(rjx.rewards.rnd(), episodic=False))
  agent = {"ppo": (ppo.PPOConfig, ppo.make_train), "pqn": (pqn.PQNConfig, pqn.make_train)}
  config_cls, make_train = agent[args.agent]
  config = config_cls(total_timesteps=args.total_timesteps, num_envs=args.num_envs,
                      num_steps=args.num_steps)
  mesh = sharding.make_mesh(num_devices) if num_devices > 1 else None
  return config, make_train(config, env, params, rewards, mesh=mesh)


def _time(args, num_devices: int, seeds: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  config, train = _build(args, num_devices)
  key = jax.random.PRNGKey(0)
  fn = train
  if seeds > 1:
    fn, key = jax.vmap(train), jax.random.split(key, seeds)
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(key).compile()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(key))
    times.append(time.perf_counter() - t0)
  steps = seeds * config.num_updates * config.batch_size
  return {"devices": num_devices, "seeds": seeds, "env_steps": steps, "compile_s": compile_s,
          "times_s": times, "steps_per_s": steps / statistics.median(times),
          "device_kind": str(jax.devices()[0].platform), "device_count": jax.device_count()}


def _child(args) -> None:
  _configure_devices(args.child_devices)
  import rewardjax  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  print("RESULT " + json.dumps(_time(args, args.child_devices, 1)), flush=True)


def _common_argv(args) -> list[str]:
  return ["--agent", args.agent, "--env", args.env, "--rewards", args.rewards, "--total-timesteps",
          str(args.total_timesteps), "--num-envs", str(args.num_envs), "--num-steps",
          str(args.num_steps), "--repeats", str(args.repeats)]


def device_table(args) -> list[dict]:
  rows = []
  for d in args.devices:
    cmd = [sys.executable, os.path.abspath(__file__), *_common_argv(args), "--child-devices", str(d)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
      print(f"  devices={d}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
      rows.append({"devices": d, "error": proc.stderr.strip().splitlines()[-1:]})
      continue
    r = json.loads(lines[-1][len("RESULT "):])
    print(f"  devices={d}: {r['steps_per_s']:,.0f} steps/s", file=sys.stderr, flush=True)
    rows.append(r)
  return rows


def seed_table(args) -> list[dict]:
  import rewardjax  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  rows = []
  for s in args.seeds:
    r = _time(args, 1, s)
    print(f"  seeds={s}: {r['steps_per_s']:,.0f} steps/s", file=sys.stderr, flush=True)
    rows.append(r)
  return rows


def _fmt(rows: list[dict], key: str) -> str:
  base = next((r for r in rows if r.get(key) == 1 and "steps_per_s" in r), None)
  lines = [f"| {key} | env steps/s (median) | min–max s per call | compile s | ratio to 1 |",
           "|---:|---:|---:|---:|---:|"]
  for r in rows:
    if "steps_per_s" not in r:
      lines.append(f"| {r[key]} | failed | | | |")
      continue
    ratio = f"{r['steps_per_s'] / base['steps_per_s']:.2f}" if base else "–"
    lines.append(f"| {r[key]} | {r['steps_per_s']:,.0f} | {min(r['times_s']):.2f}–"
                 f"{max(r['times_s']):.2f} | {r['compile_s']:.1f} | {ratio} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--agent", choices=("ppo", "pqn"), default="ppo")
  p.add_argument("--env", default="CartPole-v1")
  p.add_argument("--rewards", choices=("extrinsic", "rnd"), default="extrinsic")
  p.add_argument("--total-timesteps", type=int, default=131_072, help="per seed")
  p.add_argument("--num-envs", type=int, default=64, help="in all (split over devices)")
  p.add_argument("--num-steps", type=int, default=128)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4])
  p.add_argument("--seeds", type=int, nargs="*", default=[1, 8, 32])
  p.add_argument("--json", default=None, help="also write the results here")
  p.add_argument("--child-devices", type=int, default=0, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child_devices:
    _child(args)
    return 0
  out = {"args": vars(args)}
  if args.devices:
    out["devices"] = device_table(args)
  if args.seeds:
    out["seeds"] = seed_table(args)
  print(f"{args.agent.upper()} on {args.env}, rewards {args.rewards}, {args.num_envs} envs × {args.num_steps} "
        f"steps, {args.total_timesteps} steps per seed, median of {args.repeats}\n")
  if args.devices:
    print("data-parallel devices (one seed; num_envs split over devices)\n")
    print(_fmt(out["devices"], "devices") + "\n")
  if args.seeds:
    print("vmapped seeds (one device; steps/s summed over seeds)\n")
    print(_fmt(out["seeds"], "seeds") + "\n")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(out, f, indent=2)
  return int(any("error" in r for r in out.get("devices", [])))


if __name__ == "__main__":
  sys.exit(main())

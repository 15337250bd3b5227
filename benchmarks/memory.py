"""Memory: recurrent PPO against feed-forward PPO on bsuite's MemoryChain.

MemoryChain (gymnax ``MemoryChain-bsuite``, ``memory_length`` L) shows a
context bit in the first observations only; after L steps the agent must
repeat it (+1 right, −1 wrong) and the episode ends (L + 1 steps). A policy
without memory sees nothing of the bit at the decision: it succeeds on half the
episodes. Both arms share one PPO configuration and differ only in
``network`` ("gru" or "mlp"); every seed is trained in one vmapped call on
held-out keys, then evaluated greedily (``eval/success``: the fraction of
``--eval-episodes`` episodes with return > 0, after the last update)::

    python benchmarks/memory.py --memory-length 10 --seeds 8
    python benchmarks/memory.py --tune   # tuning keys (PRNGKey(0)), not the held-out ones

Prints one row per arm: each seed's success, the mean, and how many seeds
reach ``--target`` (0.9).
"""

from __future__ import annotations

# rewardjax first: it sets an XLA flag that must precede JAX's backend start.
import rewardjax as rjx  # pylint: disable=g-bad-import-order

import argparse
import dataclasses
import time

import jax
import numpy as np

from rewardjax.agents import ppo

HELD_OUT_KEY = 20261202
TUNING_KEY = 0


def config(args, network: str) -> ppo.PPOConfig:
  """The shared configuration; only ``network`` differs between arms."""
  return ppo.PPOConfig(
      network=network, total_timesteps=args.steps, num_envs=args.num_envs,
      num_steps=args.num_steps, num_minibatches=args.num_minibatches,
      update_epochs=args.update_epochs, lr=args.lr, ent_coef=args.ent_coef, gamma=0.99,
      hidden_sizes=(args.hidden, args.hidden), rnn_hidden=args.hidden, head_hidden=args.hidden,
      eval_every=args.steps // (args.num_envs * args.num_steps),
      eval_episodes=args.eval_episodes, eval_goal_return=0.0)


def run_arm(args, network: str, keys) -> tuple[np.ndarray, float]:
  """Final greedy success of every seed, and the wall time of the call (compile included)."""
  env, params = rjx.envs.make("MemoryChain-bsuite", memory_length=args.memory_length)
  train = ppo.make_train(config(args, network), env, params)
  start = time.perf_counter()
  out = jax.block_until_ready(jax.jit(jax.vmap(train))(keys))
  success = np.asarray(out.metrics["eval/success"])[:, -1]
  return success, time.perf_counter() - start


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--memory-length", type=int, default=10)
  parser.add_argument("--seeds", type=int, default=8)
  parser.add_argument("--steps", type=int, default=500_000)
  parser.add_argument("--num-envs", type=int, default=64)
  parser.add_argument("--num-steps", type=int, default=32)
  parser.add_argument("--num-minibatches", type=int, default=4)
  parser.add_argument("--update-epochs", type=int, default=4)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--ent-coef", type=float, default=0.01)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--eval-episodes", type=int, default=128)
  parser.add_argument("--target", type=float, default=0.9)
  parser.add_argument("--arms", nargs="+", default=["gru", "mlp"], choices=["gru", "mlp"])
  parser.add_argument("--tune", action="store_true", help="tuning keys instead of held-out ones")
  args = parser.parse_args(argv)
  keys = jax.random.split(jax.random.PRNGKey(TUNING_KEY if args.tune else HELD_OUT_KEY),
                          args.seeds)
  print(f"MemoryChain-bsuite memory_length={args.memory_length}, {args.steps} steps, "
        f"{args.seeds} seeds ({'tuning' if args.tune else 'held-out'} keys), "
        f"{dataclasses.asdict(config(args, 'gru'))}", flush=True)
  print("| arm | success per seed | mean | seeds ≥ target | wall s |")
  print("|---|---|---|---|---|")
  for arm in args.arms:
    success, wall = run_arm(args, arm, keys)
    print(f"| {arm} | {' '.join(f'{s:.2f}' for s in success)} | {success.mean():.3f} | "
          f"{int((success >= args.target).sum())}/{args.seeds} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
  main()

"""Q-learning throughput: rewardjax DQN / PQN beside rejax 0.1.3's, and PPO.

Each group of rows runs the SAME hyperparameters, taken from rejax's own
CartPole configs (``configs/gymnax/cartpole.yaml`` in the rejax repository),
and is timed the way ``throughput.py`` times PPO: the whole training run as
one compiled program, compile time reported apart, the median of
``--repeats`` interleaved calls.

* ``dqn`` / ``rejax dqn``: Double DQN, 10 envs × 1 step per iteration, 5
  gradient steps of 100 samples per iteration, 50k buffer, 5k random steps
  first, lr 1e-3, global-norm clip 10 (rejax: elementwise clip 10), Polyak
  target 0.98 after every iteration, ε 1 → 0.05 over half the run, γ 0.99,
  MSE loss, 64×64 swish MLP (rejax's plain ``QNetwork``; its yaml uses a
  dueling head, left out so both networks are the same).
* ``dqn+counts``: the same plus ``count_bonus()`` as a second channel/Q head.
* ``pqn`` / ``rejax pqn``: 16 envs × 128 steps, 5 epochs × 16 minibatches,
  lr 3e-4, clip 10, λ 0.9, ε 1 → 0.05 over half the run, 64×64 ReLU with
  LayerNorm, MSE loss. rewardjax PQN uses RAdam (as purejaxql), rejax Adam.
* ``pqn+counts``: the same plus ``count_bonus()`` as a second channel.
* ``ppo``: rewardjax PPO with ``PPOConfig`` defaults at 16 envs, for scale.

    python benchmarks/throughput_q.py                       # a few minutes on 2 cores
    python benchmarks/throughput_q.py --dqn-steps 20000 --pqn-steps 65536 --repeats 1
"""

from __future__ import annotations

# rewardjax first: it sets an XLA flag that must precede JAX's backend start.
import rewardjax  # noqa: F401  pylint: disable=unused-import,g-bad-import-order

import argparse
import os
import platform
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput as tp  # noqa: E402  pylint: disable=wrong-import-position

from rewardjax import envs  # noqa: E402
from rewardjax.agents import dqn, ppo, pqn  # noqa: E402
from rewardjax.rewards import channel, combine, count_bonus, extrinsic  # noqa: E402


def dqn_config(steps: int) -> dqn.DQNConfig:
  return dqn.DQNConfig(
      total_timesteps=steps, num_envs=10, num_steps=1, num_gradient_steps=5,
      minibatch_size=100, buffer_size=50_000, learning_starts=5_000, lr=1e-3,
      max_grad_norm=10.0, gamma=0.99, double_dqn=True, loss="mse", n_step=1,
      target_update_interval=10, tau=0.02, eps_start=1.0, eps_end=0.05,
      exploration_fraction=0.5, hidden_sizes=(64, 64), activation="silu",
      layer_norm=False, anneal_lr=False)     # rejax's DQN has neither


def pqn_config(steps: int) -> pqn.PQNConfig:
  return pqn.PQNConfig(
      total_timesteps=steps, num_envs=16, num_steps=128, update_epochs=5, num_minibatches=16,
      lr=3e-4, max_grad_norm=10.0, gamma=0.99, q_lambda=0.9, loss="mse", eps_start=1.0,
      eps_end=0.05, exploration_fraction=0.5, hidden_sizes=(64, 64), activation="relu",
      layer_norm=True)


def counts_rewards():
  return combine(extrinsic=channel(extrinsic()),
                 novelty=channel(count_bonus(), gamma=0.99, episodic=False))


def ours(name, make_train, config, env_id, rewards_fn=None, note=""):
  def build(_):
    env, env_params = envs.make(env_id)
    return make_train(config, env, env_params, None if rewards_fn is None else rewards_fn())
  return tp.Row(name, build, note)


def rejax_dqn_row(config: dqn.DQNConfig, env_id: str):
  import rejax  # pylint: disable=g-import-not-at-top
  steps = config.num_updates * config.batch_size

  def build(_):
    env, env_params = envs.make(env_id)
    algo = rejax.DQN.create(
        env=tp._legacy_env(env), env_params=env_params,  # pylint: disable=protected-access
        # rejax fixes hidden_layer_sizes=(64, 64), as in our config.
        agent="QNetwork", agent_kwargs={"activation": config.activation.replace("silu", "swish")},
        num_envs=config.num_envs, buffer_size=config.buffer_size,
        fill_buffer=config.learning_starts, batch_size=config.minibatch_size,
        max_grad_norm=config.max_grad_norm, learning_rate=config.lr,
        num_epochs=config.num_gradient_steps, total_timesteps=steps, eval_freq=steps,
        skip_initial_evaluation=True, target_update_freq=1, polyak=1.0 - config.tau,
        eps_start=config.eps_start, eps_end=config.eps_end,
        exploration_fraction=config.exploration_fraction, gamma=config.gamma,
        ddqn=config.double_dqn, normalize_observations=False)
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    return algo.train
  return tp.Row("rejax dqn", build, "rejax 0.1.3, eval off")


def rejax_pqn_row(config: pqn.PQNConfig, env_id: str):
  import rejax  # pylint: disable=g-import-not-at-top
  steps = config.num_updates * config.batch_size

  def build(_):
    env, env_params = envs.make(env_id)
    algo = rejax.PQN.create(
        env=tp._legacy_env(env), env_params=env_params,  # pylint: disable=protected-access
        num_envs=config.num_envs, num_steps=config.num_steps,
        num_minibatches=config.num_minibatches, max_grad_norm=config.max_grad_norm,
        learning_rate=config.lr, num_epochs=config.update_epochs, total_timesteps=steps,
        eval_freq=steps, skip_initial_evaluation=True, eps_start=config.eps_start,
        eps_end=config.eps_end, exploration_fraction=config.exploration_fraction,
        gamma=config.gamma, td_lambda=config.q_lambda, normalize_observations=False)
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    return algo.train
  return tp.Row("rejax pqn", build, "rejax 0.1.3, eval off")


def group_table(results, baseline: str) -> str:
  by = {r.row: r for r in results}
  lines = ["| variant | env steps/s (median) | min–max | compile s | vs " + baseline + " |",
           "|---|---:|---:|---:|---:|"]
  for r in results:
    if r.error:
      lines.append(f"| {r.row} | failed | | | {r.error} |")
      continue
    rates = [r.env_steps / t for t in r.times_s]
    lines.append(f"| {r.row} | {r.steps_per_s:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | "
                 f"{r.compile_s:.1f} | {tp._fmt_ratio(r, by.get(baseline))} |")  # pylint: disable=protected-access
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--env", default="CartPole-v1")
  p.add_argument("--dqn-steps", type=int, default=50_000)
  p.add_argument("--pqn-steps", type=int, default=262_144)
  p.add_argument("--ppo-steps", type=int, default=262_144)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seeds", type=int, default=1)
  p.add_argument("--groups", nargs="+", default=["dqn", "pqn", "ppo"])
  args = p.parse_args(argv)

  print(f"# Q-learning throughput on {args.env}")
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, seeds={args.seeds}, repeats={args.repeats}\n")
  failed = False
  if "dqn" in args.groups:
    cfg = dqn_config(args.dqn_steps)
    rows = [ours("dqn", dqn.make_train, cfg, args.env, note="double_dqn=True"),
            ours("dqn+counts", dqn.make_train, cfg, args.env, counts_rewards, "2 Q heads"),
            rejax_dqn_row(cfg, args.env)]
    res = tp.measure(rows, cfg, args.seeds, args.repeats, 0)
    print(f"## DQN, {cfg.num_updates * cfg.batch_size:,} env steps per seed\n")
    print(group_table(res, "rejax dqn") + "\n", flush=True)
    failed |= any(r.error for r in res)
  if "pqn" in args.groups:
    cfg = pqn_config(args.pqn_steps)
    rows = [ours("pqn", pqn.make_train, cfg, args.env),
            ours("pqn+counts", pqn.make_train, cfg, args.env, counts_rewards, "2 Q heads"),
            rejax_pqn_row(cfg, args.env)]
    res = tp.measure(rows, cfg, args.seeds, args.repeats, 0)
    print(f"## PQN, {cfg.num_updates * cfg.batch_size:,} env steps per seed\n")
    print(group_table(res, "rejax pqn") + "\n", flush=True)
    failed |= any(r.error for r in res)
  if "ppo" in args.groups:
    cfg = ppo.PPOConfig(total_timesteps=args.ppo_steps, num_envs=16)
    res = tp.measure([ours("ppo", ppo.make_train, cfg, args.env)], cfg, args.seeds,
                     args.repeats, 0)
    print(f"## PPO (PPOConfig defaults, 16 envs), {cfg.num_updates * cfg.batch_size:,} env steps\n")
    print(group_table(res, "ppo") + "\n", flush=True)
    failed |= any(r.error for r in res)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())

"""Env steps per second of a full PPO training run, rewardjax vs rejax.

Every row is one whole training run (rollouts, rewards, reward-module updates,
PPO epochs) compiled once as a single XLA program::

    compiled = jax.jit(train).lower(key).compile()     # "compile s"
    compiled(key) -> block_until_ready                 # timed ``--repeats`` times

and reports the median wall time of the compiled call as env steps/s
(``seeds × num_updates × num_envs × num_steps`` steps per call). Compile time
is reported separately and is not part of steps/s.

Rows (each at every ``--num-envs``):

* ``ppo``              rewardjax PPO, extrinsic reward only (one value head);
* ``ppo+shaping``      plus potential shaping of CartPole's progress function as
                       a second channel (a second value head, its own GAE);
* ``ppo+shaping(sum)`` shaping added to the extrinsic reward in one channel;
* ``ppo+rnd``          plus RND as a second, non-episodic channel;
* ``ppo+counts``       plus ``count_bonus()`` as a second channel;
* ``ppo+progress_counts`` plus ``progress_counts("cartpole")`` as a second
                       channel;
* ``ppo+icm``, ``ppo+e3b``, ``ppo+noveld``, ``ppo+ride``, ``ppo+re3``,
  ``ppo+disagreement``, ``ppo+ngu``, ``ppo+e3b*rnd``: the bonuses beyond RND and
                       counts at their defaults (``product(e3b(), rnd())`` for the
                       last) as a second channel;
* ``ppo @brax/<name>`` (and ``ppo+rnd``, ``ppo+counts``) with ``--brax-envs``:
                       Gaussian-policy PPO on a brax environment (default CPU
                       backend, ``rewardjax.envs.brax_adapter``); "vs plain ppo"
                       then compares with the discrete ``--env`` row;
* ``rejax ppo``        rejax 0.1.3's PPO with the same hyperparameters (if rejax
                       is installed: ``pip install "rewardjax[bench]"``).

Run ``python benchmarks/throughput.py --help`` for the sizes; the defaults take
a few minutes on a 2-core CPU.
"""

from __future__ import annotations

# rewardjax first: it sets an XLA flag that must precede JAX's backend start.
import rewardjax  # noqa: F401  pylint: disable=unused-import,g-bad-import-order

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import traceback
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rewardjax import envs
from rewardjax import progress
from rewardjax.agents import trainer
from rewardjax.agents.ppo import PPOConfig, make_train
from rewardjax.rewards import (add, channel, combine, count_bonus, disagreement, e3b, extrinsic,
                               icm, ngu, noveld, potential_shaping, product, progress_counts, re3,
                               ride, rnd)

PLAIN = "ppo"
REJAX = "rejax ppo"


# --------------------------------------------------------------------------- #
# Rows.
# --------------------------------------------------------------------------- #


class Row(NamedTuple):
  name: str
  build: Callable[[PPOConfig], Callable[[jax.Array], object]]   # config -> train(key)
  note: str = ""


def _rewardjax_row(name: str, rewards_fn: Callable[[PPOConfig], object] | None,
                   env_id: str, note: str = "") -> Row:
  def build(config: PPOConfig):
    env, env_params = envs.make(env_id)
    rewards = None if rewards_fn is None else rewards_fn(config)
    return make_train(config, env, env_params, rewards)
  return Row(name, build, note)


def rewardjax_rows(env_id: str, potential_name: str) -> tuple[list[Row], list[str]]:
  """The rewardjax rows and a list of notes on rows that were skipped."""
  skipped = []
  rows = [_rewardjax_row(PLAIN, None, env_id, "extrinsic only, 1 value head")]

  def shaping(config):
    return potential_shaping(progress.potential(potential_name), gamma=config.gamma)

  rows.append(_rewardjax_row(
      "ppo+shaping",
      lambda c: combine(extrinsic=channel(extrinsic()), shaping=channel(shaping(c))),
      env_id, "2 channels / 2 value heads"))
  shaping_row = rows[-1]
  rows.append(Row(
      "ppo+shaping(learned)",
      lambda c: shaping_row.build(dataclasses.replace(c, learn_coefs=("shaping",))),
      "as ppo+shaping, its coefficient learned by the meta-gradient (learn_coefs)"))
  rows.append(_rewardjax_row(
      "ppo+shaping(sum)",
      lambda c: channel(add(extrinsic(), shaping(c)), gamma=c.gamma),
      env_id, "shaping added to the extrinsic reward, 1 head"))

  # The bonus modules are part of the package: every row is built unconditionally.
  bonuses = (
      ("ppo+rnd", lambda: rnd(), "rnd() defaults, 2 channels"),
      ("ppo+counts", lambda: count_bonus(), "count_bonus() defaults, 2 channels"),
      ("ppo+progress_counts", lambda: progress_counts(potential_name),
       f"progress_counts({potential_name!r}), 2 channels"),
  ) + zoo_bonuses(env_id)
  for name, bonus, note in bonuses:
    rows.append(_rewardjax_row(
        name,
        lambda c, bonus=bonus: combine(extrinsic=channel(extrinsic()),
                                       novelty=channel(bonus(), gamma=0.99, episodic=False)),
        env_id, note))
  return rows, skipped


def zoo_bonuses(env_id: str) -> tuple:
  """``(name, module factory, note)`` of the bonuses beyond RND and counts."""
  env, env_params = envs.make(env_id)
  n = int(env.action_space(env_params).n)
  learned = dict(num_actions=n)
  return (
      ("ppo+icm", lambda: icm(**learned), "icm() defaults, 2 channels"),
      ("ppo+e3b", lambda: e3b(**learned), "e3b() defaults, 2 channels"),
      ("ppo+noveld", lambda: noveld(), "noveld() defaults, 2 channels"),
      ("ppo+ride", lambda: ride(**learned), "ride() defaults, 2 channels"),
      ("ppo+re3", lambda: re3(), "re3() defaults (random encoder), 2 channels"),
      ("ppo+disagreement", lambda: disagreement(**learned), "disagreement() defaults, 2 channels"),
      ("ppo+ngu", lambda: ngu(**learned), "ngu() defaults, 2 channels"),
      ("ppo+e3b*rnd", lambda: product(e3b(**learned), rnd()), "product(e3b(), rnd()), 2 channels"),
  )


def brax_rows(names: list[str]) -> list[Row]:
  """Continuous-action rows on brax environments: plain PPO, + RND, + SimHash counts."""
  rows = []
  for name in names:
    env_id = f"brax/{name}"
    rows.append(_rewardjax_row(f"ppo @{env_id}", None, env_id, "Gaussian policy, extrinsic only"))
    for label, bonus in (("ppo+rnd", rnd), ("ppo+counts", count_bonus)):
      rows.append(_rewardjax_row(
          f"{label} @{env_id}",
          lambda c, bonus=bonus: combine(extrinsic=channel(extrinsic()),
                                         novelty=channel(bonus(), gamma=0.99, episodic=False)),
          env_id, f"{bonus.__name__}() defaults, 2 channels"))
  return rows


# --------------------------------------------------------------------------- #
# rejax.
# --------------------------------------------------------------------------- #


def _legacy_env(env):
  """gymnax 1.0 env -> the five-value ``step`` API rejax 0.1.3 expects."""
  from gymnax.wrappers import LegacyStepAPIWrapper  # pylint: disable=g-import-not-at-top

  class _Legacy(LegacyStepAPIWrapper):
    # rejax deep-copies its config (env included); the plain wrapper's
    # __getattr__ recurses forever on a half-built copy looking up ``_env``.
    def __getattr__(self, name):
      if name == "_env" or (name.startswith("__") and name.endswith("__")):
        raise AttributeError(name)
      return getattr(self._env, name)

  return _Legacy(env)


def rejax_config(config: PPOConfig) -> dict:
  """rejax ``PPO.create`` keyword arguments equivalent to ``config``."""
  num_updates = config.num_updates
  steps = num_updates * config.batch_size
  if config.anneal_lr:
    # Our schedule: lr · (1 − ⌊count / (minibatches · epochs)⌋ / num_updates),
    # ``count`` = optimiser steps so far. rejax keeps one Adam per network,
    # each stepped once per minibatch, so the same count applies to both.
    learning_rate = trainer.linear_decay(
        config.lr, num_updates, every=config.num_minibatches * config.update_epochs)
  else:
    learning_rate = config.lr
  return dict(
      num_envs=config.num_envs,
      num_steps=config.num_steps,
      num_epochs=config.update_epochs,
      num_minibatches=config.num_minibatches,
      total_timesteps=steps,
      # One "evaluation period" spanning the whole run, so rejax runs exactly
      # num_updates iterations; evaluation itself is replaced by a no-op below.
      eval_freq=steps,
      skip_initial_evaluation=True,
      learning_rate=learning_rate,
      gamma=config.gamma,
      gae_lambda=config.gae_lambda,
      clip_eps=config.clip_eps,
      ent_coef=config.ent_coef,
      vf_coef=config.vf_coef,
      max_grad_norm=config.max_grad_norm,
      normalize_observations=False,
      normalize_rewards=False,
      agent_kwargs=dict(hidden_layer_sizes=tuple(config.hidden_sizes),
                        activation=config.activation),
  )


def rejax_row(env_id: str) -> tuple[Row | None, str]:
  """A rejax row, or ``None`` and the reason it cannot run."""
  try:
    import rejax  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return None, (f"rejax not installed ({e}); install it with "
                  "`pip install --no-deps rejax==0.1.3` (see benchmarks/README.md)")
  version = getattr(rejax, "__version__", None)
  if version is None:
    try:
      from importlib.metadata import version as _v  # pylint: disable=g-import-not-at-top
      version = _v("rejax")
    except Exception:  # pylint: disable=broad-except
      version = "?"

  def build(config: PPOConfig):
    env, env_params = envs.make(env_id)
    algo = rejax.PPO.create(env=_legacy_env(env), env_params=env_params,
                            **rejax_config(config))
    # No evaluation episodes inside the timed program (rejax's default runs 128
    # evaluation episodes every eval_freq steps).
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))

    def train(key):
      return algo.train(key)
    return train

  return Row(REJAX, build, f"rejax {version}, eval off"), ""


# --------------------------------------------------------------------------- #
# Timing.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Result:
  row: str
  num_envs: int
  env_steps: int
  compile_s: float
  times_s: list[float]
  error: str = ""

  @property
  def median_s(self) -> float:
    return statistics.median(self.times_s) if self.times_s else float("nan")

  @property
  def steps_per_s(self) -> float:
    return self.env_steps / self.median_s if self.times_s else float("nan")


def _error(e: Exception) -> str:
  if os.environ.get("BENCH_TRACEBACK"):
    traceback.print_exc()
  return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def compile_row(row: Row, config: PPOConfig, seeds: int, seed: int = 0):
  """``(compiled, key, result)``; ``compiled`` is None if building or compiling failed."""
  env_steps = seeds * config.num_updates * config.batch_size
  result = Result(row.name, config.num_envs, env_steps, float("nan"), [])
  try:
    train = row.build(config)
    key = jax.random.PRNGKey(seed)
    if seeds > 1:
      train, key = jax.vmap(train), jax.random.split(key, seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile()
    result.compile_s = time.perf_counter() - t0
    return compiled, key, result
  except Exception as e:  # pylint: disable=broad-except
    result.error = _error(e)
    return None, None, result


def time_call(compiled, key) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(key))
  return time.perf_counter() - t0


def measure(rows: list[Row], config: PPOConfig, seeds: int, repeats: int,
            warmup: int) -> list[Result]:
  """Compiles every row at ``config``, then times them round-robin.

  Interleaving the repeats (row 1, row 2, ..., row 1, row 2, ...) spreads slow
  drifts in machine load over all rows instead of penalising one.
  """
  compiled = [compile_row(row, config, seeds) for row in rows]
  for c, key, r in compiled:
    if c is not None:
      print(f"  compiled {r.row:20s} num_envs={r.num_envs:<4d} updates={config.num_updates:<5d} "
            f"in {r.compile_s:.1f}s", file=sys.stderr, flush=True)
  for i in range(warmup + repeats):
    for c, key, r in compiled:
      if c is None or r.error:
        continue
      try:
        t = time_call(c, key)
      except Exception as e:  # pylint: disable=broad-except
        r.error = _error(e)
        continue
      if i >= warmup:
        r.times_s.append(t)
  results = [r for _, _, r in compiled]
  for r in results:
    status = (f"{r.steps_per_s:,.0f} steps/s (median of {len(r.times_s)})"
              if not r.error else f"FAILED {r.error}")
    print(f"  {r.row:20s} num_envs={r.num_envs:<4d} {status}", file=sys.stderr, flush=True)
  return results


# --------------------------------------------------------------------------- #
# Output.
# --------------------------------------------------------------------------- #


def _fmt_ratio(num: Result, den: Result | None) -> str:
  if den is None or not num.times_s or not den.times_s:
    return "–"
  return f"{num.steps_per_s / den.steps_per_s:.2f}"


def table(results: list[Result], notes: dict[str, str]) -> str:
  by = {(r.row, r.num_envs): r for r in results}
  lines = [
      "| variant | num_envs | env steps/s (median) | min–max steps/s | compile s "
      "| vs plain ppo | vs rejax | note |",
      "|---|---:|---:|---:|---:|---:|---:|---|",
  ]
  for r in results:
    if r.error:
      lines.append(f"| {r.row} | {r.num_envs} | failed | | | | | {r.error} |")
      continue
    rates = [r.env_steps / t for t in r.times_s]
    lines.append(
        f"| {r.row} | {r.num_envs} | {r.steps_per_s:,.0f} | "
        f"{min(rates):,.0f}–{max(rates):,.0f} | {r.compile_s:.1f} | "
        f"{_fmt_ratio(r, by.get((PLAIN, r.num_envs)))} | "
        f"{_fmt_ratio(r, by.get((REJAX, r.num_envs)))} | {notes.get(r.row, '')} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--env", default="CartPole-v1", help="environment id (rewardjax.envs.make)")
  p.add_argument("--potential", default="cartpole",
                 help="progress function for the shaping rows (rewardjax.progress.potential)")
  p.add_argument("--total-timesteps", type=int, default=131_072,
                 help="env steps per seed and run (rounded down to whole updates)")
  p.add_argument("--num-envs", type=int, nargs="+", default=[4, 16, 64, 256])
  p.add_argument("--num-steps", type=int, default=PPOConfig.num_steps)
  p.add_argument("--repeats", type=int, default=3, help="timed calls per row; the median is reported")
  p.add_argument("--warmup", type=int, default=0, help="untimed calls after compiling")
  p.add_argument("--seeds", type=int, default=1, help="seeds vmapped in one call")
  p.add_argument("--rows", nargs="+", default=None,
                 help="run only these variants (names as in the table)")
  p.add_argument("--no-rejax", action="store_true", help="skip the rejax rows")
  p.add_argument("--brax-envs", nargs="*", default=[],
                 help="also time continuous PPO on these brax environments (e.g. inverted_pendulum)")
  p.add_argument("--json", default=None, help="also write the results to this JSON file")
  args = p.parse_args(argv)

  if args.repeats < 1 or args.seeds < 1 or args.warmup < 0:
    p.error("--repeats and --seeds must be >= 1, --warmup >= 0")

  rows, skipped = rewardjax_rows(args.env, args.potential)
  rows.extend(brax_rows(args.brax_envs))
  if args.no_rejax:
    skipped.append("rejax ppo: --no-rejax")
  else:
    rj, why = rejax_row(args.env)
    if rj is None:
      skipped.append(f"rejax ppo: {why}")
    else:
      rows.append(rj)
  if args.rows:
    unknown = set(args.rows) - {r.name for r in rows} - {s.split(":")[0] for s in skipped}
    if unknown:
      skipped.extend(f"{n}: not available" for n in sorted(unknown))
    rows = [r for r in rows if r.name in args.rows]
  notes = {r.name: r.note for r in rows}

  configs = []
  for n in args.num_envs:
    try:
      configs.append(PPOConfig(total_timesteps=args.total_timesteps, num_envs=n,
                               num_steps=args.num_steps))
    except ValueError as e:
      p.error(f"--num-envs {n}: {e}")

  dev = jax.devices()[0]
  print(f"# PPO throughput on {args.env}")
  print(f"jax {jax.__version__}, backend {jax.default_backend()} ({dev.device_kind}), "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}")
  base = configs[0]
  print(f"PPOConfig: num_steps={base.num_steps}, update_epochs={base.update_epochs}, "
        f"num_minibatches={base.num_minibatches}, lr={base.lr} (anneal={base.anneal_lr}), "
        f"hidden={base.hidden_sizes} {base.activation}, total_timesteps={args.total_timesteps}, "
        f"seeds={args.seeds}, repeats={args.repeats}")
  for s in skipped:
    print(f"skipped {s}")
  print(flush=True)

  results = []
  for config in configs:
    results.extend(measure(rows, config, args.seeds, args.repeats, args.warmup))

  print(table(results, notes))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "jax": jax.__version__, "device": str(dev),
                 "results": [dict(dataclasses.asdict(r), steps_per_s=r.steps_per_s,
                                   median_s=r.median_s) for r in results]},
                f, indent=1, default=str)
  return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
  sys.exit(main())

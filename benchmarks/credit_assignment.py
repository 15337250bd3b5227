"""Credit assignment from delayed rewards: raw delayed reward vs uniform vs attention redistribution.

PPO on delayed-reward tasks (``rewardjax.envs.DelayedReward``: each episode's
return is paid at its last step):

* **UmbrellaChain-bsuite** (gymnax, ``chain_length`` steps; bsuite's credit
  assignment task): the first action (take the umbrella or not) decides a ±1
  outcome at the end; every other step adds a random ±1 reward. Delayed, the
  agent sees one noisy number per episode (±1 plus noise of std √(L − 1)).
  Metric: the share of episodes whose first action was correct (action =
  need_umbrella), measured on the rollouts (``correct_first``), and the final
  policy's probability of the correct first action. Rollouts are
  ``3·chain_length`` steps, so episodes never cross a rollout boundary (see
  ``rewardjax.rewards.attention``). Two variants:

  - ``umbrella-hidden`` (the default): ``has_umbrella`` is masked out of the
    observations (``rjx.envs.MaskObservation(env, [1])``), so the first action
    leaves no trace: the task attention credit is for, where only a model of
    the whole episode can tell which step decided the return.
  - ``umbrella``: gymnax's observations, where ``has_umbrella`` copies the first
    action into every later observation; the critic can then carry the outcome
    back by bootstrapping, which uniform credit exploits.
* **CartPole-v1**, delayed: PureJaxRL's CartPole PPO settings; the return
  spread evenly is exactly +1 per step, so uniform redistribution is already
  right there (a best case for any redistribution).

Arms: ``raw`` (the delayed reward; on UmbrellaChain the best of a sweep over
γ ∈ {0.99, 0.999, 1.0}, λ ∈ {0.95, 1.0} plus the redistribution arms' λ, and
reward normalisation on/off, picked by final correct-choice share; the best
without the extra λ is marked "best of issue grid" too), ``uniform`` (R/T per step),
``attention`` (``attention_redistribution``, β = 1: the return R spread by the
model's attention), ``attention_pred`` (the model's prediction R̂ spread by
its attention, the residual R − R̂ spread uniformly) and ``attention_diff``
(step t paid the change R̂_t − R̂_{t−1} of the model's prediction from the
steps so far, RUDDER's decomposition, residual spread uniformly). The model arms
pay uniform credit until the model has been trained on 2,000 episodes. Seeds (and
the raw sweep's λ) are vmapped; each arm is one compiled program.

UmbrellaChain PPO: 32 envs × 3·L steps, 4 epochs × 4 minibatches, constant lr
1e-3, ent_coef 0.01, λ = 0.5 for the redistribution arms; the return model is
trained on every step's prefix (``train_every_step``) with 8 Adam steps of 128
episodes per update (benchmarks/RESULTS.md, credit assignment, for why). CartPole keeps
PureJaxRL's settings.

    python benchmarks/credit_assignment.py --tasks umbrella-hidden --seeds 8   # 432k steps
    python benchmarks/credit_assignment.py --tasks cartpole --cartpole-steps 1000000

Prints markdown tables and writes ``runs/credit_assignment/*.png`` and a JSON of
every number.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import time

import rewardjax as rjx  # first: sets XLA flags
import rewardjax.envs  # pylint: disable=unused-import

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax.agents import ppo
from rewardjax.nets import DiscreteActorCritic
from rewardjax.rewards import channel, combine, extrinsic, normalize_by_return_std
from rewardjax.rewards.attention import attention_redistribution
from rewardjax.types import RewardModule


def with_probe(module: RewardModule, probe) -> RewardModule:
  """``module`` with ``probe(batch) -> dict`` added to its update metrics (logging only)."""
  def update(state, batch, key):
    state, metrics = module.update(state, batch, key)
    return state, {**metrics, **probe(batch)}
  return RewardModule(module.init, module.reward, update)


def umbrella_probe(batch):
  """Share of episode-first steps whose action equals need_umbrella (obs[0])."""
  first = batch.obs[..., 2] == 1.0            # 1 − time / chain_length at time 0
  correct = batch.action == batch.obs[..., 0].astype(batch.action.dtype)
  n = jnp.sum(first)
  return {"correct_first": jnp.sum(first & correct) / jnp.maximum(n, 1),
          "first_steps": n}


def run_arm(env, env_params, config, module, gamma, seeds, normalize=False, lambdas=None):
  """Trains ``seeds`` seeds of PPO with one reward module; returns metrics and final params.

  With ``lambdas`` the GAE λ is swept inside the same compiled program (vmapped
  over ``len(lambdas) × seeds``; the leading axis of every output is λ-major).
  """
  transforms = (normalize_by_return_std(gamma, episodic=True),) if normalize else ()
  rewards = combine(reward=channel(module, gamma=gamma, transforms=transforms))
  train = ppo.make_train(config, env, env_params, rewards)
  lambdas = [config.gae_lambda] if lambdas is None else list(lambdas)
  keys = jnp.tile(jax.random.split(jax.random.PRNGKey(0), seeds), (len(lambdas), 1))
  hparams = {"gae_lambda": jnp.repeat(jnp.asarray(lambdas, jnp.float32), seeds)}
  t0 = time.perf_counter()
  out = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, hparams))
  wall = time.perf_counter() - t0
  metrics = {k: np.asarray(v) for k, v in out.metrics.items() if np.ndim(v) == 2}
  return metrics, out.runner_state.params, wall


def steps_to(curve, steps, level, window):
  """First env step at which the mean of ``curve`` over the last ``window`` updates
  reaches ``level`` (``None`` if it never does)."""
  with np.errstate(invalid="ignore"):       # smooth's leading NaNs never reach the level
    hit = np.flatnonzero(smooth(np.asarray(curve, np.float64), window) >= level)
  return int(steps[hit[0]]) if hit.size else None


def _median_steps(values):
  """``median (k/n)`` over the seeds that got there (the others count as never)."""
  got = sorted(v for v in values if v is not None)
  if not got:
    return f"never (0/{len(values)})"
  # Seeds that never got there rank last, so the median may be "never".
  ranked = got + [None] * (len(values) - len(got))
  mid = ranked[(len(values) - 1) // 2]
  return f"{'never' if mid is None else f'{mid:,}'} ({len(got)}/{len(values)})"


def smooth(x, k):
  if k <= 1:
    return x
  c = np.cumsum(np.insert(np.nan_to_num(x), 0, 0.0))
  out = (c[k:] - c[:-k]) / k
  return np.concatenate([np.full(k - 1, np.nan), out])


# ---------------------------------------------------------------------- UmbrellaChain


UMBRELLA_MODEL = dict(width=64, num_heads=1, buffer_size=1024, episodes_per_update=96,
                      batch_size=128, train_steps=8, learning_rate=3e-3, train_every_step=True,
                      warmup_episodes=2000)


def umbrella(args, out_dir, hidden):
  length = args.chain_length
  env, params = rjx.envs.make("UmbrellaChain-bsuite", chain_length=length)
  if hidden:
    env = rjx.envs.MaskObservation(env, [1])            # has_umbrella
  env = rjx.envs.DelayedReward(env)
  base = ppo.PPOConfig(total_timesteps=args.umbrella_steps, num_envs=args.umbrella_envs,
                       num_steps=3 * length, num_minibatches=4, update_epochs=4, lr=args.lr,
                       anneal_lr=args.anneal_lr, ent_coef=args.ent_coef)
  probe = lambda m: with_probe(m, umbrella_probe)
  attn_kw = dict(max_len=length, num_actions=2, **UMBRELLA_MODEL)

  # Each program vmaps seeds × λ. The raw sweep is the standard grid (γ × λ ∈
  # {0.95, 1.0} × reward normalisation) plus the redistribution arms' own λ, so
  # the raw baseline is never denied the setting the other arms use.
  lam_r = args.redist_lambda
  raw_lams = sorted({0.95, 1.0, lam_r})
  programs = []
  for g, norm in itertools.product((0.99, 0.999, 1.0), (False, True)):
    if args.quick and (g, norm) not in ((0.99, False), (1.0, True)):
      continue
    programs.append(("raw", lambda: probe(extrinsic()), g, raw_lams, norm))
  programs.append(("uniform", lambda: probe(attention_redistribution(uniform=True, **attn_kw)),
                   0.99, [lam_r], False))
  programs.append(("attention", lambda: probe(attention_redistribution(**attn_kw)),
                   0.99, [lam_r], False))
  programs.append(("attention_pred", lambda: probe(attention_redistribution(
      target="prediction", residual="uniform", **attn_kw)), 0.99, [lam_r], False))
  programs.append(("attention_diff", lambda: probe(attention_redistribution(
      target="differences", residual="uniform", **attn_kw)), 0.99, [lam_r], False))
  programs = [p for p in programs if p[0] in args.groups]

  # The four start observations (need × has; has is 0 at the start, masked or not).
  obs0 = jnp.array([[n, h, 1.0] for n in (0.0, 1.0) for h in (0.0, 1.0)])
  need = obs0[:, 0].astype(jnp.int32)
  net = DiscreteActorCritic(num_actions=2, num_channels=1, hidden_sizes=base.hidden_sizes,
                            activation=base.activation)
  results = {}
  for group, make_module, g, lams, norm in programs:
    config = dataclasses.replace(base, gamma=g, gae_lambda=lams[0])
    metrics, params_, wall = run_arm(env, params, config, make_module(), g, args.seeds, norm,
                                     lambdas=lams)
    logits = jax.vmap(lambda p: net.apply(p, obs0, method=DiscreteActorCritic.policy))(params_)
    p_all = np.asarray(jax.nn.softmax(logits)[:, jnp.arange(4), need].mean(-1))  # [λ·S]
    for i, lam in enumerate(lams):
      sl = slice(i * args.seeds, (i + 1) * args.seeds)
      curve = metrics["rewards/reward/correct_first"][sl]                       # [S, U]
      tail = max(1, curve.shape[1] // 10)
      final = curve[:, -tail:].mean(1)
      name = (f"raw γ={g} λ={lam} norm={'on' if norm else 'off'}" if group == "raw"
              else group)
      steps = np.asarray(metrics["env_steps"][0])
      results[name] = dict(group=group, gamma=g, lam=lam, norm=norm, wall_s=wall,
                           in_issue_grid=group != "raw" or lam in (0.95, 1.0),
                           final_correct=final.tolist(), policy_p_correct=p_all[sl].tolist(),
                           steps_to_90=[steps_to(c, steps, 0.9, tail) for c in curve],
                           steps=steps.tolist(), curve=curve.mean(0).tolist(),
                           curves=curve.tolist(),
                           episode_return_final=float(
                               np.nanmean(metrics["episode_return"][sl, -tail:])))
      print(f"  umbrella {name}: final correct {final.mean():.3f} "
            f"(seeds {np.round(final, 3).tolist()}), policy p {p_all[sl].mean():.3f}, "
            f"{wall:.0f} s for {len(lams)}×{args.seeds} runs", flush=True)

  raw = {k: v for k, v in results.items() if v["group"] == "raw"}
  best_raw = max(raw, key=lambda k: np.mean(raw[k]["final_correct"])) if raw else None
  grid = {k: v for k, v in raw.items() if v["in_issue_grid"]}
  best_grid = max(grid, key=lambda k: np.mean(grid[k]["final_correct"])) if grid else None
  title = f"UmbrellaChain-{length}{' with has_umbrella hidden' if hidden else ''}"
  print(f"\n### Delayed {title}, PPO, {args.seeds} seeds, "
        f"{args.umbrella_steps:,} env steps per seed\n")
  print("| arm | γ | λ | reward norm | correct first choice, last 10% of updates "
        "(mean; per seed) | seeds ≥ 90% | env steps to 90% (median; seeds there) "
        "| final policy P(correct) | wall s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, r in results.items():
    fc = np.asarray(r["final_correct"])
    mark = (" (best raw)" if name == best_raw else "") + (
        " (best of issue grid)" if name == best_grid and best_grid != best_raw else "")
    print(f"| {name}{mark} | {r['gamma']} | {r['lam']} | {'on' if r['norm'] else 'off'} | "
          f"{fc.mean():.3f}; {', '.join(f'{x:.2f}' for x in fc)} | {int((fc >= 0.9).sum())}/"
          f"{len(fc)} | {_median_steps(r['steps_to_90'])} | "
          f"{np.mean(r['policy_p_correct']):.3f} | {r['wall_s']:.0f} |")

  plot = {k: v for k, v in results.items() if v["group"] != "raw" or k in (best_raw, best_grid)}
  _plot(plot, out_dir / f"umbrella_chain_{length}{'_hidden' if hidden else ''}.png",
        "correct first choice (share)", f"Delayed {title}: PPO, mean over {args.seeds} seeds")
  return results, best_raw


# ---------------------------------------------------------------------- CartPole


def cartpole(args, out_dir):
  env, params = rjx.envs.make("CartPole-v1")
  env = rjx.envs.DelayedReward(env)
  base = ppo.PPOConfig(total_timesteps=args.cartpole_steps)       # PureJaxRL CartPole settings
  attn_kw = dict(max_len=args.cartpole_max_len, num_actions=2, width=32, num_heads=1,
                 buffer_size=128, episodes_per_update=16, batch_size=16, train_steps=1)
  arms = {
      "raw (γ=0.99, λ=0.95)": (extrinsic(), 0.99, 0.95, False),
      "raw tuned (γ=1, λ=1, reward norm)": (extrinsic(), 1.0, 1.0, True),
      "uniform": (attention_redistribution(uniform=True, **attn_kw), 0.99, 0.95, False),
      "attention": (attention_redistribution(**attn_kw), 0.99, 0.95, False),
  }
  results = {}
  checkpoints = [c for c in (500_000, 1_000_000) if c <= args.cartpole_steps] or [
      args.cartpole_steps]
  for name, (module, g, lam, norm) in arms.items():
    config = dataclasses.replace(base, gamma=g, gae_lambda=lam)
    metrics, _, wall = run_arm(env, params, config, module, g, args.seeds, norm)
    steps = np.asarray(metrics["env_steps"][0])
    ret = metrics["episode_return"]
    at = {}
    for c in checkpoints:
      i = int(np.searchsorted(steps, c, side="right"))
      window = ret[:, max(0, i - 20):i]                  # the 20 updates up to c
      at[c] = np.nanmean(window, axis=1).tolist()
    results[name] = dict(gamma=g, lam=lam, norm=norm, wall_s=wall, at=at,
                         steps=steps.tolist(), curve=np.nanmean(ret, 0).tolist())
    print(f"  cartpole {name}: " + ", ".join(
        f"{c:,}: {np.mean(v):.0f}" for c, v in at.items()) + f" ({wall:.0f} s)", flush=True)

  print(f"\n### Delayed CartPole-v1, PPO (PureJaxRL CartPole settings unless noted), "
        f"{args.seeds} seeds, one run of {args.cartpole_steps:,} steps per seed\n")
  print("| arm | " + " | ".join(f"return at {c:,} (mean ± std)" for c in checkpoints) +
        " | wall s |")
  print("|---|" + "---|" * len(checkpoints) + "---|")
  for name, r in results.items():
    cells = [f"{np.mean(v):.0f} ± {np.std(v):.0f}" for v in r["at"].values()]
    print(f"| {name} | " + " | ".join(cells) + f" | {r['wall_s']:.0f} |")
  _plot(results, out_dir / "cartpole_delayed.png", "episode return",
        f"Delayed CartPole-v1: PPO, mean over {args.seeds} seeds")
  return results


def _plot(results, path, ylabel, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for name, r in results.items():
    y = np.asarray(r["curve"], np.float64)
    ax.plot(r["steps"], smooth(y, max(1, len(y) // 50)), label=name)
  ax.set_xlabel("env steps")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--chain-length", type=int, default=30)
  p.add_argument("--umbrella-steps", type=int, default=432_000)
  p.add_argument("--umbrella-envs", type=int, default=32)
  p.add_argument("--ent-coef", type=float, default=0.01, help="UmbrellaChain PPO entropy bonus")
  p.add_argument("--lr", type=float, default=1e-3, help="UmbrellaChain PPO learning rate")
  p.add_argument("--anneal-lr", action="store_true",
                 help="UmbrellaChain: anneal the learning rate (off: constant)")
  p.add_argument("--redist-lambda", type=float, default=0.5,
                 help="UmbrellaChain: GAE λ of the redistribution arms (also added to "
                      "the raw sweep)")
  p.add_argument("--cartpole-steps", type=int, default=1_000_000)
  p.add_argument("--cartpole-max-len", type=int, default=500)
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--tasks", nargs="+", default=["umbrella-hidden", "umbrella", "cartpole"],
                 choices=["umbrella-hidden", "umbrella", "cartpole"])
  p.add_argument("--groups", nargs="+",
                 default=["raw", "uniform", "attention", "attention_pred", "attention_diff"],
                 help="UmbrellaChain arms to run (raw = the whole sweep)")
  p.add_argument("--quick", action="store_true",
                 help="raw sweep reduced to two settings (for smoke tests)")
  p.add_argument("--out", default="runs/credit_assignment")
  args = p.parse_args()
  out_dir = pathlib.Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  print(f"device {jax.devices()[0]}, jax {jax.__version__}", flush=True)
  summary = {"args": vars(args)}
  for task in ("umbrella-hidden", "umbrella"):
    if task in args.tasks:
      summary[task], summary[f"{task}_best_raw"] = umbrella(args, out_dir, task == "umbrella-hidden")
  if "cartpole" in args.tasks:
    summary["cartpole"] = cartpole(args, out_dir)
  with open(out_dir / "results.json", "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, default=str)
  print(f"\nwrote {out_dir}/", flush=True)


if __name__ == "__main__":
  main()

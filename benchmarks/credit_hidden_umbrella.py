"""Delayed UmbrellaChain-30 with ``has_umbrella`` hidden: the first action leaves no trace.

An ad-hoc experiment script: gymnax copies the first action into every later
observation (``has_umbrella``), so a return model need not attend to step 0;
this zeroes that entry and trains PPO on one arm with the module's own model
settings. ``credit_assignment.py --tasks umbrella-hidden`` is the benchmark.

    python benchmarks/credit_hidden_umbrella.py ARM STEPS LRS LAMBDAS ENVS ANNEAL
    python benchmarks/credit_hidden_umbrella.py attention 144000 1e-3 0.5 8 0

ARM ∈ {raw, uniform, attention, pred}; LRS and LAMBDAS comma-separated (vmapped with
4 seeds); ANNEAL 0/1; optional γ and n_distractor after them.
"""
import itertools
import pathlib
import sys
import time
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import rewardjax as rjx
import rewardjax.envs
import jax, jax.numpy as jnp, numpy as np
from rewardjax.agents import ppo
from rewardjax.rewards import channel, combine, extrinsic
from rewardjax.rewards.attention import attention_redistribution
from credit_assignment import with_probe, umbrella_probe

which = sys.argv[1]; steps = int(sys.argv[2]); lrs = [float(x) for x in sys.argv[3].split(",")]
lams = [float(x) for x in sys.argv[4].split(",")]; envs = int(sys.argv[5]); anneal = sys.argv[6] == "1"
gamma = float(sys.argv[7]) if len(sys.argv) > 7 else 0.99
nd = int(sys.argv[8]) if len(sys.argv) > 8 else 0
L = 30
env, params = rjx.envs.make("UmbrellaChain-bsuite", chain_length=L, **({"n_distractor": nd} if nd else {}))
env = rjx.envs.DelayedReward(rjx.envs.MaskObservation(env, [1]))   # hide has_umbrella
kw = dict(max_len=L, num_actions=2, width=32, num_heads=1, buffer_size=256,
          episodes_per_update=32, batch_size=32, train_steps=2, learning_rate=1e-3)
mod = {"raw": lambda: extrinsic(), "uniform": lambda: attention_redistribution(uniform=True, **kw),
       "attention": lambda: attention_redistribution(**kw),
       "pred": lambda: attention_redistribution(target="prediction", residual="last", **kw)}[which]()
rewards = combine(reward=channel(with_probe(mod, umbrella_probe), gamma=gamma))
cfg = ppo.PPOConfig(total_timesteps=steps, num_envs=envs, num_steps=3 * L, num_minibatches=4,
                    update_epochs=4, lr=lrs[0], anneal_lr=anneal, gamma=gamma)
train = ppo.make_train(cfg, env, params, rewards)
grid = list(itertools.product(lrs, lams)); S = 4
keys = jnp.tile(jax.random.split(jax.random.PRNGKey(0), S), (len(grid), 1))
hp = {"lr": jnp.repeat(jnp.array([g[0] for g in grid]), S), "gae_lambda": jnp.repeat(jnp.array([g[1] for g in grid]), S)}
t0 = time.time()
out = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, hp))
c = np.asarray(out.metrics["rewards/reward/correct_first"]).reshape(len(grid), S, -1)
tail = max(1, c.shape[-1] // 10)
for i, g in enumerate(grid):
  f = c[i, :, -tail:].mean(-1)
  dec = [round(float(x), 2) for x in c[i].mean(0).reshape(10, -1).mean(-1)] if c.shape[-1] % 10 == 0 else []
  print(f"HIDDEN {which} steps={steps} envs={envs} anneal={anneal} gamma={gamma} nd={nd} lr={g[0]} lam={g[1]}: final {f.mean():.3f} seeds {np.round(f,2).tolist()} deciles {dec}", flush=True)
print(f"wall {time.time()-t0:.0f}s", flush=True)

"""Where does the return model attend on delayed UmbrellaChain-30?

Trains the ``attention`` arm of ``credit_assignment.py`` (its default UmbrellaChain
settings, 4 seeds) and, on each seed's final buffer of finished episodes, prints the
return model's prediction quality and the last step's attention by episode step.

    python benchmarks/credit_attention_map.py 1.0     # β
"""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import rewardjax as rjx
import rewardjax.envs
import jax, jax.numpy as jnp, numpy as np
from rewardjax.agents import ppo
from rewardjax.rewards import channel, combine
from rewardjax.rewards.attention import attention_redistribution, predict_returns
from credit_assignment import with_probe, umbrella_probe
beta = float(sys.argv[1]); L = 30
env, params = rjx.envs.make("UmbrellaChain-bsuite", chain_length=L)
env = rjx.envs.DelayedReward(env)
kw = dict(max_len=L, num_actions=2, width=32, num_heads=1, buffer_size=256,
          episodes_per_update=32, batch_size=32, train_steps=2, learning_rate=1e-3)
rewards = combine(reward=channel(with_probe(attention_redistribution(beta=beta, **kw), umbrella_probe), gamma=0.99))
cfg = ppo.PPOConfig(total_timesteps=144000, num_envs=8, num_steps=90, lr=1e-3, anneal_lr=False, gae_lambda=0.5)
train = ppo.make_train(cfg, env, params, rewards)
out = jax.block_until_ready(jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 4)))
c = np.asarray(out.metrics["rewards/reward/correct_first"]); f = c[:, -20:].mean(1)
print(f"beta={beta}: final correct {f.mean():.3f} seeds {np.round(f, 2).tolist()}")
rs = out.runner_state.reward_state["reward"]
for s in range(4):
  st = jax.tree.map(lambda x: x[s], rs)
  n = int(st.buffer_count); ep = jax.tree.map(lambda x: x[:n], st.buffer)
  pred, attn = predict_returns(st, ep, max_len=L, num_actions=2, width=32)
  attn = np.asarray(attn)[:, -1, :] if np.ndim(attn) == 3 else np.asarray(attn)
  true = np.asarray(st.buffer_return[:n]); pred = np.asarray(pred)
  ok = np.asarray(ep.obs[:, 0, 0] == ep.obs[:, 1, 1])   # need == has after step 0
  print(f" seed {s}: corr(pred,R)={np.corrcoef(pred, true)[0,1]:.2f}; mean pred correct {pred[ok].mean():.2f} wrong {pred[~ok].mean() if (~ok).any() else float('nan'):.2f};"
        f" attn step0 {attn[:,0].mean():.3f} step1 {attn[:,1].mean():.3f} last {attn[:,-1].mean():.3f} max-step mean {attn.max(1).mean():.3f} sum-sq {np.mean((attn**2).sum(1)):.3f} (uniform {1/L:.3f})", flush=True)

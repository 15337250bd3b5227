"""PPO's wiring of reward channels, checked through what a short run learns.

One task (``_toy_envs.OneState``): every step starts from the same observation,
the environment pays nothing, and the true final observation reveals the action.
Two channels ride on it, both non-episodic, so each bootstraps from the value of
the one start state whatever the action:

* ``shaping``: ``Φ(s) = s[1]``, so ``F = γ·Φ(s') − Φ(s) = γ·[a = 1]``;
* ``novelty``: RND on ``s'``; action 1 leads to fresh Gaussian features every
  time, action 0 always to the same point, so RND's error is larger after action 1.

One compiled program trains every coefficient setting (``vmap`` over
``<channel>.coef``) from the same key.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.agents import ppo

from _toy_envs import OneState

GAMMA = 0.99
# (shaping.coef, novelty.coef)
SETTINGS = {"none": (0.0, 0.0), "shaping": (1.0, 0.0), "anti-shaping": (-1.0, 0.0),
            "novelty": (0.0, 10.0), "mix": (2.0, 0.5)}
# One minibatch per update (the first update's loss is then taken at ratio 1) and
# raw advantages (standardisation would hide the coefficients' scale).
CONFIG = ppo.PPOConfig(total_timesteps=8 * 16 * 24, num_envs=8, num_steps=16, update_epochs=1,
                       num_minibatches=1, hidden_sizes=(16,), lr=3e-2, anneal_lr=False,
                       ent_coef=0.0, normalize_advantages=False, gamma=GAMMA)


@pytest.fixture(scope="module")
def runs():
  env = OneState()
  rewards = rjx.rewards.combine(
      shaping=rjx.rewards.channel(rjx.rewards.potential_shaping(lambda s: s[1], GAMMA),
                                  episodic=False),
      novelty=rjx.rewards.channel(rjx.rewards.rnd(), gamma=GAMMA, episodic=False))
  train = ppo.make_train(CONFIG, env, None, rewards)
  coefs = np.array(list(SETTINGS.values()), np.float32)
  out = jax.jit(jax.vmap(train, (None, 0)))(
      jax.random.PRNGKey(0), {"shaping.coef": coefs[:, 0], "novelty.coef": coefs[:, 1]})
  network = ppo.make_policy(CONFIG, env.action_space(), 2, 1).network
  logits = jax.vmap(lambda p: network.apply(p, jnp.zeros((1, 4)))[0][0])(out.runner_state.params)
  p_right = np.asarray(jax.nn.softmax(logits)[:, 1])
  metrics = {k: np.asarray(v) for k, v in out.metrics.items()}
  return {name: ({k: v[i] for k, v in metrics.items()}, p_right[i])
          for i, name in enumerate(SETTINGS)}


def test_coefficients_weight_channel_advantages_in_the_policy_loss(runs):
  """At the first update (one minibatch at ratio 1) the policy loss is
  ``−mean_t Σ_c coef_c · A_t^c``: linear in the coefficients."""
  loss = {name: float(m["policy_loss"][0]) for name, (m, _) in runs.items()}
  shaping, novelty = loss["shaping"], loss["novelty"]
  assert loss["none"] == 0.0
  assert abs(shaping) > 1e-2 and abs(novelty) > 1e-2 and abs(shaping - novelty) > 1e-2
  np.testing.assert_allclose(loss["anti-shaping"], -shaping, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss["mix"], 2.0 * shaping + 0.05 * novelty, rtol=1e-5, atol=1e-6)
  # Coefficients weight the policy's advantages only: the value loss, and the
  # channels' rewards, are the same in every setting.
  first = {k: [m[k][0] for m, _ in runs.values()] for k in
           ("value_loss", "reward/shaping", "reward/novelty")}
  for k, values in first.items():
    np.testing.assert_allclose(values, values[0], rtol=1e-6, err_msg=k)


def test_shaping_and_novelty_move_the_policy_the_way_their_rewards_point(runs):
  p = {name: float(p_right) for name, (_, p_right) in runs.items()}
  # Nothing to learn without a weighted channel: the policy stays where it started.
  assert abs(p["none"] - 0.5) < 0.01, p
  # F = γ·[a = 1]: shaping makes action 1 likely, the negated potential unlikely.
  assert p["shaping"] > 0.9 and p["anti-shaping"] < 0.1, p
  # RND pays more after action 1 (always novel) than after action 0 (always the same).
  assert p["novelty"] > 0.65, p
  m, _ = runs["novelty"]
  assert m["rewards/novelty/intrinsic_raw_mean"][-1] > 0.0

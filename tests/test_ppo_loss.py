"""PPO's loss and advantages, as the agent calls them, against references written here.

``ppo.ppo_loss`` (discrete and continuous policies, value clipping and advantage
standardisation on and off) is compared with a NumPy computation from the
network's outputs, and its gradient with ``jax.grad`` of an independent ``jnp``
re-implementation; ``ppo.ppo_advantages`` (several channels with unequal
coefficients, γ and episodic flags) with a NumPy GAE loop.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from rewardjax.agents import ppo

B, OBS, C = 32, 4, 3
HP = {"clip_eps": 0.2, "vf_coef": 0.7, "ent_coef": 0.05}


def _policy(continuous):
  cfg = ppo.PPOConfig(hidden_sizes=(8,), init_log_std=-0.3)
  space = spaces.Box(-1.0, 1.0, (2,)) if continuous else spaces.Discrete(3)
  return ppo.make_policy(cfg, space, C, 1)


def _data(policy, seed=0):
  """Params and a minibatch whose old log-probs and values are shifted from the
  current ones, so that ratios and value changes fall inside and outside the clip
  range on both sides."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 8)
  obs = jax.random.normal(ks[0], (B, OBS))
  params = policy.network.init(ks[1], obs)
  out, value = policy.network.apply(params, obs)
  action = policy.sample(ks[2], out)[0]
  log_prob = policy.log_prob(out, action) + 0.4 * jax.random.normal(ks[3], (B,))
  old_value = value + 0.4 * jax.random.normal(ks[4], (B, C))
  batch = ppo.MinibatchData(obs, action, log_prob, old_value)
  advantages = 1.0 + 2.0 * jax.random.normal(ks[5], (B,))      # mean ≠ 0, std ≠ 1
  targets = value + jax.random.normal(ks[6], (B, C))
  return params, batch, advantages, targets


def _np_log_prob_entropy(out, action, continuous):
  if continuous:
    mean, log_std = (np.asarray(x, np.float64) for x in out)
    u = np.asarray(action, np.float64)
    k = mean.shape[-1]
    log_prob = (-0.5 * (((u - mean) / np.exp(log_std))**2).sum(-1) - log_std.sum(-1)
                - 0.5 * k * np.log(2 * np.pi))
    entropy = log_std.sum(-1) + 0.5 * k * (1.0 + np.log(2 * np.pi))
    return log_prob, entropy
  logits = np.asarray(out, np.float64)
  log_p = logits - logits.max(-1, keepdims=True)
  log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
  log_prob = log_p[np.arange(len(log_p)), np.asarray(action)]
  return log_prob, -(np.exp(log_p) * log_p).sum(-1)


def _np_loss(policy, params, batch, advantages, targets, clip_value, normalize, continuous):
  """PPO's loss from the network's outputs, in float64 NumPy (Schulman et al. 2017)."""
  out, value = policy.network.apply(params, batch.obs)
  value = np.asarray(value, np.float64)
  old_v, g = np.asarray(batch.value, np.float64), np.asarray(targets, np.float64)
  eps = HP["clip_eps"]
  log_prob, entropy = _np_log_prob_entropy(out, batch.action, continuous)
  ratio = np.exp(log_prob - np.asarray(batch.log_prob, np.float64))
  adv = np.asarray(advantages, np.float64)
  if normalize:
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
  surrogate = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
  pg = -surrogate.mean()
  err = (value - g)**2
  if clip_value:
    err = np.maximum(err, (old_v + np.clip(value - old_v, -eps, eps) - g)**2)
  v_loss = sum((0.5 * err[:, c]).mean() for c in range(C))   # one loss per head, summed
  total = pg + HP["vf_coef"] * v_loss - HP["ent_coef"] * entropy.mean()
  return total, pg, v_loss, entropy.mean(), ratio


def _jnp_loss(policy, params, batch, advantages, targets, clip_value, normalize, continuous):
  """The same loss in jnp, written from the formula, for reference gradients."""
  out, value = policy.network.apply(params, batch.obs)
  eps = HP["clip_eps"]
  if continuous:
    mean, log_std = out
    z = (batch.action - mean) / jnp.exp(log_std)
    log_prob = (-0.5 * (z**2).sum(-1) - log_std.sum(-1)
                - 0.5 * mean.shape[-1] * jnp.log(2 * jnp.pi))
    entropy = log_std.sum(-1) + 0.5 * mean.shape[-1] * (1.0 + jnp.log(2 * jnp.pi))
  else:
    log_p = jax.nn.log_softmax(out)
    log_prob = log_p[jnp.arange(B), batch.action]
    entropy = -(jnp.exp(log_p) * log_p).sum(-1)
  adv = advantages
  if normalize:
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
  ratio = jnp.exp(log_prob - batch.log_prob)
  pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - eps, 1 + eps) * adv).mean()
  err = (value - targets)**2
  if clip_value:
    err = jnp.maximum(err, (batch.value + jnp.clip(value - batch.value, -eps, eps) - targets)**2)
  v_loss = sum((0.5 * err[:, c]).mean() for c in range(C))
  return pg + HP["vf_coef"] * v_loss - HP["ent_coef"] * entropy.mean()


CASES = list(itertools.product((False, True), (False, True), (False, True)))


@pytest.mark.parametrize("continuous, clip_value, normalize", CASES,
                         ids=[f"{'cont' if c else 'disc'}-vclip{int(v)}-norm{int(n)}"
                              for c, v, n in CASES])
def test_ppo_loss_and_gradient_match_references(continuous, clip_value, normalize):
  policy = _policy(continuous)
  params, batch, adv, targets = _data(policy, seed=int(continuous))
  flags = dict(clip_value_loss=clip_value, normalize_advantages=normalize)

  (total, parts), g_agent = jax.jit(jax.value_and_grad(
      lambda p: ppo.ppo_loss(policy, p, batch, adv, targets, HP, **flags), has_aux=True))(params)
  want, pg, v_loss, entropy, ratio = _np_loss(policy, params, batch, adv, targets, clip_value,
                                              normalize, continuous)
  # The data exercise both clip bounds and, with value clipping, the clipped branch.
  assert (ratio < 0.8).any() and (ratio > 1.2).any() and ((ratio > 0.8) & (ratio < 1.2)).any()
  np.testing.assert_allclose(parts["policy_loss"], pg, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(parts["value_loss"], v_loss, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(parts["entropy"], entropy, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-6)

  g_ref = jax.jit(jax.grad(lambda p: _jnp_loss(policy, p, batch, adv, targets, clip_value,
                                                 normalize, continuous)))(params)
  for a, b in zip(jax.tree.leaves(g_agent), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_agent)) > 1e-3


def test_value_clipping_changes_the_value_loss_of_these_data():
  """The on/off cases above differ: the clipped branch is taken for some samples."""
  policy = _policy(False)
  params, batch, adv, targets = _data(policy)
  v = [ppo.ppo_loss(policy, params, batch, adv, targets, HP, clip_value_loss=c,
                    normalize_advantages=True)[1]["value_loss"] for c in (False, True)]
  assert float(v[1]) > float(v[0]) * 1.01


# ------------------------------------------------------------------ advantages


def _np_gae(r, v, v_true, v_seq, term, trunc, gamma, lam, episodic):
  """One channel's GAE over [T, N] by a plain backward loop."""
  t_len, n = r.shape
  adv = np.zeros((t_len, n))
  for i in range(n):
    a_next = 0.0
    for t in reversed(range(t_len)):
      done = term[t, i] or trunc[t, i]
      if episodic:
        boot = 0.0 if term[t, i] else v_true[t, i]
        carry = 0.0 if done else a_next
      else:
        boot, carry = v_seq[t, i], a_next
      a_next = r[t, i] + gamma * boot - v[t, i] + gamma * lam * carry
      adv[t, i] = a_next
  return adv


def test_ppo_advantages_weight_each_channel_by_its_coefficient():
  t_len, n = 12, 3
  rng = np.random.default_rng(0)
  r = rng.normal(size=(t_len, n, C)).astype(np.float32)
  v = rng.normal(size=(t_len, n, C)).astype(np.float32)
  term = rng.random((t_len, n)) < 0.15
  trunc = ~term & (rng.random((t_len, n)) < 0.15)
  done = term | trunc
  v_seq = np.concatenate([v[1:], rng.normal(size=(1, n, C))]).astype(np.float32)
  # V(true next obs) equals V(next obs in the rollout) except where an episode ended.
  v_true = np.where(done[..., None], rng.normal(size=(t_len, n, C)), v_seq).astype(np.float32)
  gammas, episodic, coefs, lam = (0.9, 0.99, 0.5), (True, False, True), (2.0, 0.5, -1.5), 0.8

  adv, targets = jax.jit(ppo.ppo_advantages, static_argnums=(6, 7))(
      r, v, v_true, v_seq, term, trunc, gammas, episodic, lam, jnp.asarray(coefs))
  per_channel = np.stack([
      _np_gae(r[..., c], v[..., c], v_true[..., c], v_seq[..., c], term, trunc, gammas[c], lam,
              episodic[c]) for c in range(C)], -1)
  assert adv.shape == (t_len, n) and targets.shape == (t_len, n, C)
  np.testing.assert_allclose(adv, (per_channel * np.asarray(coefs)).sum(-1), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(targets, per_channel + v, rtol=1e-5, atol=1e-5)

"""Never Give Up's intrinsic reward (Badia et al. 2020, Algorithm 1 of the appendix).

Episodic novelty, per environment, from a memory of the current episode's
embeddings ``φ(s')`` (the current one included, as a count includes the current
visit; at most ``memory_size`` of them, oldest overwritten first)::

    d_i² = the k smallest ‖φ(s'_t) − m‖² over the memory m
    d_m² ← running mean of every d_i² so far (per environment, across episodes)
    K_i  = ε / (max(d_i² / d_m² − ξ, 0) + ε)
    s    = √(Σ_i K_i) + c
    r^ep = 1/s  if s ≤ s_max  else 0

times a lifelong factor from RND's error ``err(s')`` (``rnd``, unnormalised)::

    α = 1 + (err − μ_err) / σ_err          (running moments, this batch included)
    r = r^ep · min(max(α, 1), L)

The memory restarts after ``terminated | truncated`` (the episode's final
observation still counts in the ending episode). Memories and ``d_m²`` are per
environment, so a sharded run reduces only RND's statistics and gradients
(``rnd`` does) and the encoder's gradients. Observations with a NaN or ±inf
entry earn 0 and are not stored.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from rewardjax import sharding, stats
from rewardjax.rewards import embeddings as E
from rewardjax.rewards.rnd import RNDState, rnd
from rewardjax.types import Array, PRNGKey, PyTree, RewardModule, Transition


class EpisodicMemory(NamedTuple):
  """Per environment: stored embeddings ``[E, S, K]``, how many are valid
  ``[E]``, the next slot ``[E]``, and the running mean (and count) of squared
  kNN distances ``[E]``."""
  embeddings: Array
  size: Array
  slot: Array
  dist_mean: Array
  dist_count: Array


class NGUState(NamedTuple):
  """State of ``ngu``: encoder parameters and optimiser state, the episodic
  memories, RND's state (``None`` without the lifelong factor) and the running
  moments of RND's error."""
  embed_params: PyTree
  opt_state: optax.OptState
  memory: EpisodicMemory
  rnd: RNDState | None
  error_moments: stats.RunningMoments


class KernelConfig(NamedTuple):
  """NGU's kernel constants (paper's values as ``ngu``'s defaults)."""
  k: int
  kernel_epsilon: float
  cluster_distance: float
  pseudo_count_constant: float
  max_similarity: float


def memory_init(num_envs: int, memory_size: int, dim: int) -> EpisodicMemory:
  zeros = jnp.zeros((num_envs,), jnp.int32)
  return EpisodicMemory(jnp.zeros((num_envs, memory_size, dim), jnp.float32), zeros, zeros,
                        jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), jnp.float32))


def episodic_novelty(memory: EpisodicMemory, phi: Array, done: Array, ok: Array,
                     cfg: KernelConfig) -> tuple[Array, EpisodicMemory]:
  """``r^ep [T, E]`` and the final memory for embeddings ``φ [T, E, K]``."""

  def step(mem: EpisodicMemory, xs):
    phi_t, done_t, ok_t = xs
    env = jnp.arange(phi_t.shape[0])
    # One row written per environment (the old row again where not ok): an
    # in-place update of the memory, not a select over all of it.
    row = jnp.where(ok_t[:, None], phi_t, mem.embeddings[env, mem.slot])
    embeddings = mem.embeddings.at[env, mem.slot].set(row)
    size = jnp.where(ok_t, jnp.minimum(mem.size + 1, mem.embeddings.shape[1]), mem.size)
    slot = jnp.where(ok_t, (mem.slot + 1) % mem.embeddings.shape[1], mem.slot)
    sq = jnp.sum(jnp.square(embeddings - phi_t[:, None, :]), axis=-1)          # [E, S]
    sq = jnp.where(jnp.arange(sq.shape[1])[None, :] < size[:, None], sq, jnp.inf)
    d2 = -jax.lax.top_k(-sq, min(cfg.k, sq.shape[1]))[0]                          # [E, k]
    near = jnp.isfinite(d2) & ok_t[:, None]
    d2 = jnp.where(near, d2, 0.0)
    n_new = jnp.sum(near, axis=-1).astype(jnp.float32)
    count = mem.dist_count + n_new
    mean = mem.dist_mean + (jnp.sum(d2, -1) - n_new * mem.dist_mean) / jnp.maximum(count, 1.0)
    scaled = jnp.where(mean[:, None] > 0, d2 / jnp.where(mean > 0, mean, 1.0)[:, None], 0.0)
    scaled = jnp.maximum(scaled - cfg.cluster_distance, 0.0)
    kernel = jnp.where(near, cfg.kernel_epsilon / (scaled + cfg.kernel_epsilon), 0.0)
    s = jnp.sqrt(jnp.sum(kernel, axis=-1)) + cfg.pseudo_count_constant
    r_t = jnp.where(ok_t & (s <= cfg.max_similarity), 1.0 / s, 0.0)
    size, slot = jnp.where(done_t, 0, size), jnp.where(done_t, 0, slot)
    return EpisodicMemory(embeddings, size, slot, mean, count), r_t

  memory, r = jax.lax.scan(step, memory, (phi, done, ok))
  return r, memory


def lifelong_factor(moments: stats.RunningMoments, err: Array,
                    max_scale: float) -> Array:
  """``min(max(1 + (err − μ)/σ, 1), L)`` with the running moments of ``err``."""
  alpha = 1.0 + (err - moments.mean) / stats.moments_std(moments)
  return jnp.clip(alpha, 1.0, max_scale)


def ngu(embed: str | Callable[[Array], Array] = "inverse_dynamics",
        num_actions: int | None = None,
        k: int = 10,
        memory_size: int = 256,
        kernel_epsilon: float = 1e-3,
        cluster_distance: float = 8e-3,
        pseudo_count_constant: float = 1e-3,
        max_similarity: float = 8.0,
        lifelong: bool = True,
        max_scale: float = 5.0,
        hidden: Sequence[int] = (64, 64),
        feature_dim: int = 32,
        learning_rate: float = 1e-3,
        num_grad_steps: int = 8,
        update_proportion: float = 0.25) -> RewardModule:
  """NGU's episodic kNN novelty times RND's lifelong factor (Badia et al. 2020).

  Args:
    embed: ``"inverse_dynamics"`` (learned, the paper's), ``"random"``,
      ``"identity"`` or a function of one observation (see ``embeddings``).
    num_actions: size of a discrete action space (the inverse head's outputs).
    k: neighbours of the kernel sum (paper: 10).
    memory_size: embeddings kept per environment and episode.
    kernel_epsilon, cluster_distance, pseudo_count_constant, max_similarity:
      ε, ξ, c and s_max of the kernel (paper: 1e-3, 8e-3, 1e-3, 8).
    lifelong: multiply by RND's factor ``min(max(α, 1), L)``; otherwise the
      reward is the episodic novelty alone.
    max_scale: L (paper: 5).
    hidden, feature_dim, learning_rate, num_grad_steps, update_proportion:
      the encoder's sizes and its inverse-dynamics training per update.

  Returns:
    A ``RewardModule`` with state ``NGUState``; ``update`` reports
    ``ngu_bonus_mean``, ``ngu_episodic_mean``, ``ngu_lifelong_mean``,
    ``ngu_inverse_loss``, ``nonfinite_inputs`` and (lifelong) RND's metrics.
  """
  if int(k) != k or k < 1 or int(memory_size) != memory_size or memory_size < 1:
    raise ValueError(f"ngu: k and memory_size must be positive integers, got {k}, {memory_size}")
  if not max_scale >= 1.0:
    raise ValueError(f"ngu: max_scale must be >= 1, got {max_scale}")
  E.check_training("ngu", learning_rate, num_grad_steps, update_proportion)
  emb = E.resolve_embed(embed, "ngu", num_actions, hidden, feature_dim)
  cfg = KernelConfig(int(k), float(kernel_epsilon), float(cluster_distance),
                     float(pseudo_count_constant), float(max_similarity))
  novelty = rnd(normalize_reward=False) if lifelong else None
  opt = optax.adam(learning_rate)

  def init_fn(key: PRNGKey, example: Transition) -> NGUState:
    k_embed, k_rnd = jax.random.split(key)
    data = E.flatten(example)
    params = emb.init(k_embed, data)
    dim = emb.apply(params, data.next_obs[:1]).shape[-1]
    rnd_state = None if novelty is None else novelty.init(k_rnd, example)
    return NGUState(params, opt.init(params), memory_init(E.num_envs(example), int(memory_size),
                                                          dim),
                    rnd_state, stats.moments_init())

  def bonus(state: NGUState, batch: Transition, data: E.Flat):
    E.check_envs("ngu", state.memory.size.shape[0], batch)
    phi, ok = E.finite_features(emb.apply(state.embed_params, data.next_obs), data.valid)
    r_ep, memory = episodic_novelty(state.memory, E.time_major(phi, batch),
                                    E.episode_ends(batch), E.time_major(ok, batch), cfg)
    r_ep = E.as_reward(r_ep, batch)
    if novelty is None:
      return r_ep, r_ep, jnp.ones_like(r_ep), memory, state.error_moments, ok
    err = novelty.reward(state.rnd, batch)
    moments = stats.moments_update(state.error_moments, jnp.reshape(err, (-1,)))
    factor = lifelong_factor(moments, err, float(max_scale))
    return r_ep * factor, r_ep, factor, memory, moments, ok

  def reward_fn(state: NGUState, batch: Transition) -> Array:
    return bonus(state, batch, E.flatten(batch))[0]

  def reward_and_update_fn(state: NGUState, batch: Transition, key: PRNGKey):
    data = E.flatten(batch)
    r, r_ep, factor, memory, moments, ok = bonus(state, batch, data)
    k_embed, k_rnd = jax.random.split(key)
    params, opt_state, loss = E.train_embedding(emb, opt, state.embed_params, state.opt_state,
                                                data, k_embed, num_grad_steps, update_proportion)
    rnd_state, metrics = state.rnd, {}
    if novelty is not None:
      rnd_state, metrics = novelty.update(state.rnd, batch, k_rnd)
    metrics = dict(
        metrics,
        ngu_bonus_mean=jnp.mean(r).astype(jnp.float32),
        ngu_episodic_mean=jnp.mean(r_ep).astype(jnp.float32),
        ngu_lifelong_mean=jnp.mean(factor).astype(jnp.float32),
        ngu_inverse_loss=loss,
        nonfinite_inputs=sharding.psum(jnp.sum(~ok)).astype(jnp.float32))
    return r, NGUState(params, opt_state, memory, rnd_state, moments), metrics

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return RewardModule(init_fn, reward_fn, update_fn, reward_and_update_fn)


__all__ = ["NGUState", "EpisodicMemory", "KernelConfig", "ngu", "episodic_novelty",
           "lifelong_factor", "memory_init"]

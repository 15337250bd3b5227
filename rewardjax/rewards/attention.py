"""Attention-based return redistribution as a reward module (Chan et al. 2024; ARES).

A small causal-attention return model (``rewardjax.return_model.ReturnModel``)
is trained online to predict each finished episode's return ``R`` from its
``(obs_t, a_t)`` sequence. The last step's attention row ``ᾱ`` (mean over
heads) then spreads ``R`` over the episode's steps with ``redistribute``:

    r_t = β · R · w_t + (1 − β) · R · 1[t = last],   w = ᾱ renormalised over the episode,

so ``Σ_t r_t = R`` exactly (up to float rounding) for every finished episode:
the extrinsic return is preserved, only its timing changes.

With ``target="prediction"`` the model's prediction ``R̂`` is redistributed
instead and the residual ``R − R̂`` is paid separately (RUDDER's correction,
Arjona-Medina et al. 2019): at the last step (``residual="last"``) or spread
evenly, ``(R − R̂)/T`` per step (``residual="uniform"``, the default). With
``target="differences"`` step ``t`` is paid ``R̂_t − R̂_{t−1}``, the change in
the model's prediction from the episode's steps up to ``t`` (every position is
a causal query; RUDDER's return decomposition), and the residual
``R − R̂_{T−1}`` likewise. The sum is still exactly ``R``, and return noise the
model cannot predict (e.g. random rewards) does not land on the credited steps.

Why the choices exist (their measurements are in benchmarks/RESULTS.md):

* ``target="return"`` moves the noisy ``R`` onto the credited step, so that
  step's signal-to-noise ratio is that of ``R`` itself; crediting predictions
  keeps the unpredictable part of ``R`` off it.
* ``residual="uniform"`` leaves each step ``1/T`` of that unpredictable part,
  as uniform redistribution does, and adds the model's credit on top.
* ``warmup_episodes``: an untrained model's credit is a random function of the
  actions, consistent across an update, and a policy-gradient agent follows
  it; uniform credit is paid until the model has seen enough episodes.
* ``train_every_step``: with the last position's loss alone, the gradient
  reaches each step only through its ``1/T`` attention share. Training every
  earlier position to predict the return from the steps so far lets the first
  position learn the decisive step's effect undiluted. ``"differences"`` needs
  it: without it only the last position is trained.

How episodes are gathered inside a jitted training loop
--------------------------------------------------------
Batches are time-major ``[T, N]`` rollouts of ``N`` environments (consecutive
steps; ``terminated | truncated`` ends an episode), as PPO collects them. The
state keeps, per environment, the in-progress episode's last ``max_len`` steps
(right-aligned, padded, with a mask), its reward sum and its length. For a
batch, ``reward`` packs each environment's ``[max_len]`` prefix and its ``T``
new steps into one sequence of ``S = max_len + T`` positions, runs the return
model on all of it under a block-causal mask (a position attends only to
earlier steps of its own episode), and for each episode that FINISHES in the
batch redistributes its return (prefix rewards included) over its steps.

* Steps of an episode still running at the end of the batch get 0 now.
* If a finishing episode began in an earlier batch, the credit of its steps
  from earlier batches (already consumed by the agent with reward 0) is paid at
  the episode's first step in this batch ("delayed pay"). The episode's sum is
  still exactly ``R``, but that part of the credit lands on the wrong step.

So the credit reaches the steps it was meant for exactly when episodes do not
cross rollout boundaries. Environments with a fixed episode length ``H`` (e.g.
UmbrellaChain) get this by choosing the rollout length ``T`` a multiple of
``H``: all environments start together at training start and stay aligned.
With variable-length episodes (CartPole), roughly ``E[len]/T`` of episodes
cross a boundary and get part of their credit late; raise ``T`` to reduce it.

``update`` moves the batch into the per-environment prefixes, copies up to
``episodes_per_update`` finished episodes (their last ``max_len`` steps,
right-aligned) into a ring buffer of ``buffer_size`` episodes, and takes
``train_steps`` Adam steps on the squared error of the standardised return
prediction over random minibatches of the buffer.

Limits: episodes longer than ``max_len`` are seen through their last
``max_len`` steps before the current batch (earlier steps get no credit; the
return is still preserved). The reward cost is ``O(N·S²·width)`` per batch.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rewardjax.return_model import ReturnModel
from rewardjax.rewards.redistribution import redistribute
from rewardjax.types import Array, Metrics, RewardModule, Transition


class Episodes(NamedTuple):
  """``[..., L]`` right-aligned episode windows (padding on the left)."""
  obs: Array
  action: Array
  step: Array      # int32 episode-step index of each position
  valid: Array     # bool


class AttentionRedistributionState(NamedTuple):
  """``attention_redistribution``'s state: the return model, in-progress episodes, a ring of finished ones."""
  params: Any
  opt_state: Any
  prefix: Episodes           # [N, L]: each environment's in-progress episode
  prefix_return: Array       # [N] its reward sum so far
  prefix_length: Array       # [N] its number of steps so far
  buffer: Episodes           # [K, L]: finished episodes, last step at L − 1
  buffer_return: Array       # [K]
  buffer_next: Array         # ring write position
  buffer_count: Array        # filled entries (≤ K)
  episodes_seen: Array       # finished episodes added to the buffer so far (not capped)


class _Config(NamedTuple):
  """The arguments of ``attention_redistribution``, with its model and optimiser."""
  max_len: int
  beta: float
  target: str
  residual: str
  num_actions: int | None
  width: int
  num_heads: int
  buffer_size: int
  episodes_per_update: int
  batch_size: int
  train_steps: int
  learning_rate: float
  train_every_step: bool
  warmup_episodes: int
  uniform: bool
  model: ReturnModel | None = None
  tx: optax.GradientTransformation | None = None


class _Packed(NamedTuple):
  """One environment's prefix and batch packed into ``S = L + T`` positions."""
  episodes: Episodes         # [S]
  ids: Array                 # [S] episode id: 0 = the prefix's episode
  done: Array                # [S] last step of an episode
  ret: Array                 # [S] return of the position's episode (so far)
  mask: Array                # [S, S] block-causal attention mask


def attention_redistribution(
    max_len: int = 200,
    beta: float = 1.0,
    target: str = "return",
    residual: str = "uniform",
    num_actions: int | None = None,
    width: int = 32,
    num_heads: int = 1,
    buffer_size: int = 256,
    episodes_per_update: int = 32,
    batch_size: int = 32,
    train_steps: int = 2,
    learning_rate: float = 1e-3,
    train_every_step: bool = False,
    warmup_episodes: int = 0,
    uniform: bool = False,
) -> RewardModule:
  """Redistributes each finished episode's return over its steps by learned attention.

  See the module docstring for the maths and for how episodes are gathered
  from ``[T, N]`` rollouts (and the limits of that). Use it in place of the
  extrinsic reward, on an environment whose reward may be delayed
  (``rewardjax.envs.DelayedReward``)::

      env, params = rjx.envs.make("UmbrellaChain-bsuite", chain_length=40)
      env = rjx.envs.DelayedReward(env)
      module = rjx.rewards.attention_redistribution(max_len=40, num_actions=2)
      train = ppo.make_train(PPOConfig(num_steps=120), env, params, module)

  Where returns are noisy (many random rewards besides the decisive one),
  credit the model's predictions, train it harder and warm it up. These are
  the settings of ``benchmarks/credit_assignment.py`` on UmbrellaChain-30::

      module = rjx.rewards.attention_redistribution(
          max_len=30, num_actions=2, target="differences", residual="uniform",
          train_every_step=True, warmup_episodes=2000, width=64, buffer_size=1024,
          episodes_per_update=96, batch_size=128, train_steps=8, learning_rate=3e-3)

  Args:
    max_len: longest episode (window) the model sees; set it to the
      environment's episode limit where that is affordable.
    beta: weight of the attention credit; ``1 − β`` of the return stays at the
      last step. In ``[0, 1]``. Not used by ``target="differences"``.
    target: ``"return"`` redistributes the episode's return ``R`` (Chan et al.);
      ``"prediction"`` redistributes the model's ``R̂`` and pays the residual
      ``R − R̂`` separately (RUDDER-style correction); ``"differences"`` pays
      step ``t`` the change ``R̂_t − R̂_{t−1}`` of the model's prediction from
      the episode's steps up to ``t`` (RUDDER's return decomposition; the
      attention only shapes the predictions), plus the residual
      ``R − R̂_{T−1}``.
    residual: with ``target="prediction"``, where the residual goes: spread
      evenly over the episode (``"uniform"``) or paid at its last step
      (``"last"``, RUDDER's choice). Ignored otherwise.
    num_actions: number of discrete actions (required for integer actions).
    width, num_heads: return-model size.
    buffer_size: finished episodes kept for training (a ring).
    episodes_per_update: at most this many finished episodes of a batch enter
      the buffer (a random subset if more finished).
    batch_size, train_steps, learning_rate: Adam steps per ``update``.
    train_every_step: also train every earlier position of each buffered
      episode, as a causal query over the steps so far, to predict the
      episode's return (as RUDDER trains its LSTM at every step). Costs
      ``O(B·L²·width)`` per Adam step instead of ``O(B·L·width)``.
    warmup_episodes: until the model has been trained on this many finished
      episodes, pay uniform credit (``R/T`` per step) instead of the model's
      (ABC likewise trains its reward model before the policy).
    uniform: ignore the model and spread each return uniformly, ``R/T`` per
      step (``β = 1``), with the same episode bookkeeping: the uniform baseline.
      No model is trained.
  """
  config = _with_model(_Config(
      max_len, beta, target, residual, num_actions, width, num_heads, buffer_size,
      episodes_per_update, batch_size, train_steps, learning_rate, train_every_step,
      warmup_episodes, uniform))
  return RewardModule(functools.partial(_init, config), functools.partial(_reward, config),
                      functools.partial(_update, config))


def _with_model(config: _Config) -> _Config:
  """The checked ``config`` with its return model and Adam optimiser."""
  _check_config(config)
  model = ReturnModel(max_len=config.max_len, num_actions=config.num_actions,
                      width=config.width, num_heads=config.num_heads)
  return config._replace(model=model, tx=optax.adam(config.learning_rate))


def _check_config(c: _Config) -> None:
  for name, value in (("max_len", c.max_len), ("width", c.width), ("num_heads", c.num_heads),
                      ("buffer_size", c.buffer_size),
                      ("episodes_per_update", c.episodes_per_update),
                      ("batch_size", c.batch_size), ("train_steps", c.train_steps)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"attention_redistribution: {name} must be a positive integer, "
                       f"got {value!r}")
  if isinstance(c.beta, bool) or not isinstance(c.beta, (int, float)) or not 0.0 <= c.beta <= 1.0:
    raise ValueError(f"attention_redistribution: beta must be in [0, 1], got {c.beta!r}")
  if c.target not in ("return", "prediction", "differences"):
    raise ValueError(f"attention_redistribution: target must be 'return', 'prediction' or "
                     f"'differences', got {c.target!r}")
  w = c.warmup_episodes
  if isinstance(w, bool) or not isinstance(w, int) or w < 0:
    raise ValueError(f"attention_redistribution: warmup_episodes must be a non-negative "
                     f"integer, got {w!r}")
  for name, value in (("train_every_step", c.train_every_step), ("uniform", c.uniform)):
    if not isinstance(value, bool):
      raise ValueError(f"attention_redistribution: {name} must be True or False, got {value!r}")
  if c.residual not in ("last", "uniform"):
    raise ValueError(f"attention_redistribution: residual must be 'last' or 'uniform', "
                     f"got {c.residual!r}")
  if c.width % c.num_heads:
    raise ValueError(f"attention_redistribution: width ({c.width}) must be divisible by "
                     f"num_heads ({c.num_heads})")
  if c.episodes_per_update > c.buffer_size:
    raise ValueError(f"attention_redistribution: episodes_per_update "
                     f"({c.episodes_per_update}) must not exceed buffer_size ({c.buffer_size})")
  if not c.learning_rate > 0:
    raise ValueError(f"attention_redistribution: learning_rate must be > 0, "
                     f"got {c.learning_rate}")


def _check_batch(config: _Config, batch: Transition) -> None:
  if jnp.ndim(batch.reward) != 2:
    raise ValueError(
        "attention_redistribution needs time-major [T, N] rollouts of consecutive "
        f"steps; got a batch with reward shape {jnp.shape(batch.reward)}")
  integer = jnp.issubdtype(jnp.asarray(batch.action).dtype, jnp.integer)
  if integer and config.num_actions is None and not config.uniform:
    raise ValueError("attention_redistribution: integer actions need num_actions= "
                     "(the size of the discrete action space)")


# ----------------------------------------------------------------------------
# The three functions of the module.


def _init(config: _Config, key, example: Transition) -> AttentionRedistributionState:
  _check_batch(config, example)
  n, max_len, size = example.reward.shape[1], config.max_len, config.buffer_size
  obs = jnp.zeros((n, max_len) + example.obs.shape[2:], jnp.float32)
  action = jnp.zeros((n, max_len) + example.action.shape[2:], example.action.dtype)
  prefix = Episodes(obs, action, jnp.zeros((n, max_len), jnp.int32),
                    jnp.zeros((n, max_len), bool))
  # The uniform baseline has no model (and needs no num_actions).
  params = {} if config.uniform else config.model.init(
      key, obs[:1], action[:1], prefix.step[:1], prefix.valid[:1])
  buffer = jax.tree.map(lambda x: jnp.zeros((size,) + x.shape[1:], x.dtype), prefix)
  return AttentionRedistributionState(
      params=params, opt_state=config.tx.init(params), prefix=prefix,
      prefix_return=jnp.zeros((n,), jnp.float32),
      prefix_length=jnp.zeros((n,), jnp.int32), buffer=buffer,
      buffer_return=jnp.zeros((size,), jnp.float32),
      buffer_next=jnp.zeros((), jnp.int32), buffer_count=jnp.zeros((), jnp.int32),
      episodes_seen=jnp.zeros((), jnp.int32))


def _reward(config: _Config, state: AttentionRedistributionState, batch: Transition) -> Array:
  _check_batch(config, batch)
  packed = _pack_batch(state, batch)                             # leaves [N, S, ...]
  if config.uniform:
    r = _spread(packed, _episode_returns(packed))
  else:
    r = _model_credit(config, state, packed)
  # Credit for steps of earlier batches is paid at the batch's first step.
  max_len = config.max_len
  r_batch = r[:, max_len:].at[:, 0].add(r[:, :max_len].sum(axis=-1))
  return jnp.swapaxes(r_batch, 0, 1).astype(jnp.float32)


def _update(config: _Config, state: AttentionRedistributionState, batch: Transition,
            key) -> tuple[AttentionRedistributionState, Metrics]:
  _check_batch(config, batch)
  k_pick, k_train = jax.random.split(key)
  packed = _pack_batch(state, batch)
  prefix = _open_episodes(packed, config.max_len)
  finished, returns, done = _finished_episodes(config, packed, k_pick)
  state = _store_episodes(config, state._replace(**prefix), finished, returns, done)
  if config.uniform:
    return state, {"episodes_finished": jnp.sum(done)}
  state, losses = _train_return_model(config, state, k_train)
  return state, {"model_loss": losses.mean(), "episodes_finished": jnp.sum(done),
                 "buffer_count": state.buffer_count,
                 "model_credit": (state.episodes_seen >= config.warmup_episodes
                                  ).astype(jnp.float32)}


# ----------------------------------------------------------------------------
# Episode bookkeeping: prefixes, packing, the ring buffer.


def _pack(prefix: Episodes, prefix_return, prefix_length, obs, action, reward, done) -> _Packed:
  """Packs one environment's ``[L]`` prefix and ``[T]`` batch steps (unbatched)."""
  length, t = prefix.valid.shape[0], done.shape[0]
  j = jnp.arange(t)
  done_prev = jnp.concatenate([jnp.zeros((1,), bool), done[:-1]])
  seg = jnp.cumsum(done_prev)                                 # 0 continues the prefix
  start = jax.lax.cummax(jnp.where(done_prev, j, 0))
  step = jnp.where(seg == 0, prefix_length + j, j - start).astype(jnp.int32)
  ret_by_seg = jax.ops.segment_sum(reward.astype(jnp.float32), seg, num_segments=t)
  ret_by_seg = ret_by_seg.at[0].add(prefix_return)
  episodes = Episodes(
      obs=jnp.concatenate([prefix.obs, obs.astype(prefix.obs.dtype)]),
      action=jnp.concatenate([prefix.action, action.astype(prefix.action.dtype)]),
      step=jnp.concatenate([prefix.step, step]),
      valid=jnp.concatenate([prefix.valid, jnp.ones((t,), bool)]))
  ids = jnp.concatenate([jnp.zeros((length,), seg.dtype), seg])
  s = length + t
  pos = jnp.arange(s)
  mask = ((ids[:, None] == ids[None, :]) & (pos[None, :] <= pos[:, None])
          & episodes.valid[None, :] & episodes.valid[:, None])
  return _Packed(episodes, ids, jnp.concatenate([jnp.zeros((length,), bool), done]),
                 ret_by_seg[ids], mask)


def _pack_batch(state: AttentionRedistributionState, batch: Transition) -> _Packed:
  """``_pack`` for every environment of a ``[T, N]`` batch: leaves ``[N, S, ...]``."""
  done = jnp.logical_or(batch.terminated, batch.truncated)
  swap = lambda x: jnp.swapaxes(x, 0, 1)          # [T, N, ...] -> [N, T, ...]
  return jax.vmap(_pack)(state.prefix, state.prefix_return, state.prefix_length,
                         swap(batch.obs), swap(batch.action), swap(batch.reward), swap(done))


def _open_episodes(packed: _Packed, max_len: int) -> dict[str, Array]:
  """The prefix fields of the state after the batch: each episode still open."""
  ep = packed.episodes
  last_done = packed.done[:, -1]
  open_id = packed.ids[:, -1] + last_done
  tail = lambda x: x[:, -max_len:]
  prefix = Episodes(tail(ep.obs), tail(ep.action), tail(ep.step),
                    tail(ep.valid & (packed.ids == open_id[:, None])))
  return {"prefix": prefix,
          "prefix_return": jnp.where(last_done, 0.0, packed.ret[:, -1]),
          "prefix_length": jnp.where(last_done, 0, ep.step[:, -1] + 1)}


def _finished_episodes(config: _Config, packed: _Packed, key):
  """Up to ``episodes_per_update`` episodes that end in the batch, picked at random.

  Returns ``[E, L]`` windows (each ending at its episode's last step), their
  returns, and the ``[N·T]`` done flags of the batch. Entries past the number
  of finished episodes are not episodes (``_store_episodes`` drops them).
  """
  ep, max_len = packed.episodes, config.max_len
  n, s = packed.done.shape
  t = s - max_len
  done_flat = packed.done[:, max_len:].reshape(-1)                     # [N·T]
  score = done_flat + 0.5 * jax.random.uniform(key, done_flat.shape)
  e = min(config.episodes_per_update, n * t)
  _, pick = jax.lax.top_k(score, e)                                    # done ones first
  env_i, t_i = pick // t, pick % t
  window = t_i[:, None] + 1 + jnp.arange(max_len)[None, :]             # ends at L + t_i
  take = lambda x: x[env_i[:, None], window]
  end_id = packed.ids[env_i, max_len + t_i]
  new = Episodes(take(ep.obs), take(ep.action), take(ep.step),
                 take(ep.valid) & (take(packed.ids) == end_id[:, None]))
  return new, packed.ret[env_i, max_len + t_i], done_flat


def _store_episodes(config: _Config, state: AttentionRedistributionState, new: Episodes,
                    new_return: Array, done_flat: Array) -> AttentionRedistributionState:
  """Writes the finished episodes among ``new`` into the ring buffer."""
  size = config.buffer_size
  e = new_return.shape[0]
  num_new = jnp.minimum(jnp.sum(done_flat), e).astype(jnp.int32)
  i = jnp.arange(e)
  slot = jnp.where(i < num_new, (state.buffer_next + i) % size, size)
  buffer = jax.tree.map(lambda b, x: b.at[slot].set(x, mode="drop"), state.buffer, new)
  buffer_return = state.buffer_return.at[slot].set(new_return, mode="drop")
  return state._replace(
      buffer=buffer, buffer_return=buffer_return,
      buffer_next=(state.buffer_next + num_new) % size,
      buffer_count=jnp.minimum(state.buffer_count + num_new, size),
      episodes_seen=state.episodes_seen + num_new)


# ----------------------------------------------------------------------------
# Training the return model.


def _return_stats(state) -> tuple[Array, Array]:
  """Mean and std of the returns in the buffer: the model predicts standardised returns."""
  filled = jnp.arange(state.buffer_return.shape[0]) < state.buffer_count
  n = jnp.maximum(state.buffer_count, 1).astype(jnp.float32)
  mean = jnp.sum(jnp.where(filled, state.buffer_return, 0.0)) / n
  var = jnp.sum(jnp.where(filled, (state.buffer_return - mean)**2, 0.0)) / n
  return mean, jnp.maximum(jnp.sqrt(var), 1e-3)


def _train_return_model(config: _Config, state: AttentionRedistributionState, key):
  """``train_steps`` Adam steps on random minibatches of the buffer: ``(state, losses)``."""
  model, max_len = config.model, config.max_len
  mean, std = _return_stats(state)
  has_data = (state.buffer_count > 0).astype(jnp.float32)
  causal = jnp.tril(jnp.ones((max_len, max_len), bool))

  def loss_fn(params, idx):
    # Squared error of the standardised return: at the last position, or at
    # every valid position as a causal query over the steps so far.
    b = jax.tree.map(lambda x: x[idx], state.buffer)
    y = (state.buffer_return[idx] - mean) / std
    if not config.train_every_step:
      pred, _ = model.apply(params, b.obs, b.action, b.step, b.valid)
      return has_data * jnp.mean((pred - y)**2)
    mask = causal & b.valid[:, :, None] & b.valid[:, None, :]
    pred, _ = model.apply(params, b.obs, b.action, b.step, mask,
                          method=ReturnModel.all_queries)          # [B, L]
    err2 = jnp.where(b.valid, (pred - y[:, None])**2, 0.0)
    return has_data * jnp.sum(err2) / jnp.maximum(jnp.sum(b.valid), 1)

  def train_step(carry, key):
    params, opt_state = carry
    idx = jax.random.randint(key, (config.batch_size,), 0,
                             jnp.maximum(state.buffer_count, 1))
    loss, grads = jax.value_and_grad(loss_fn)(params, idx)
    updates, opt_state = config.tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(
      train_step, (state.params, state.opt_state),
      jax.random.split(key, config.train_steps))
  return state._replace(params=params, opt_state=opt_state), losses


# ----------------------------------------------------------------------------
# Credit: each finished episode's return spread over its steps.


def _episode_returns(packed: _Packed) -> Array:
  """``R`` at the last step of each episode that ends in the batch, else 0."""
  return jnp.where(packed.done, packed.ret, 0.0)


def _spread(packed: _Packed, x: Array) -> Array:
  """``x`` at an episode's last step spread evenly over its steps, ``x/T`` each."""
  return redistribute(packed.mask.astype(jnp.float32), x, packed.mask, 1.0).sum(axis=-2)


def _model_credit(config: _Config, state: AttentionRedistributionState,
                  packed: _Packed) -> Array:
  """Credit of the ``target`` mode, or uniform credit while the model warms up."""
  ep = packed.episodes
  pred, attn = config.model.apply(state.params, ep.obs, ep.action, ep.step, packed.mask,
                                  method=ReturnModel.all_queries)  # [N, S], [N, S, S]
  ret = _episode_returns(packed)
  if config.target == "return":
    r = redistribute(attn, ret, packed.mask, config.beta).sum(axis=-2)
  else:
    r = _prediction_credit(config, state, packed, pred, attn, ret)
  if config.warmup_episodes:
    r = jnp.where(state.episodes_seen >= config.warmup_episodes, r, _spread(packed, ret))
  return r


def _prediction_credit(config: _Config, state: AttentionRedistributionState,
                       packed: _Packed, pred: Array, attn: Array, ret: Array) -> Array:
  """``target="prediction"`` or ``"differences"``: credit of ``R̂``, plus the residual."""
  mean, std = _return_stats(state)
  r_hat = jnp.where(packed.done, pred * std + mean, 0.0)
  if config.target == "differences":
    r = jax.vmap(_prediction_differences)(pred * std + mean, packed.ids,
                                          packed.episodes.valid, packed.done)
  else:
    r = redistribute(attn, r_hat, packed.mask, config.beta).sum(axis=-2)
  residual = ret - r_hat
  return r + (residual if config.residual == "last" else _spread(packed, residual))


def _prediction_differences(r_hat_t, ids, valid, done):
  """``R̂_t − R̂_{t−1}`` within each episode that ends in the sequence, else 0.

  ``r_hat_t [S]`` is the prediction after step ``t`` of its episode (a causal
  query); the first valid step of an episode is paid ``R̂_t`` itself, so an
  episode's payments telescope to its last prediction.
  """
  same_prev = jnp.concatenate([jnp.zeros((1,), bool), (ids[1:] == ids[:-1]) & valid[:-1]])
  r_hat_tm1 = jnp.where(same_prev, jnp.concatenate([jnp.zeros((1,)), r_hat_t[:-1]]), 0.0)
  # Episodes still running are paid nothing yet (as in every other mode).
  ends = jax.ops.segment_max(done.astype(jnp.int32), ids, num_segments=ids.shape[0])[ids] > 0
  return jnp.where(ends & valid, r_hat_t - r_hat_tm1, 0.0)


def predict_returns(module_state: AttentionRedistributionState, episodes: Episodes,
                    max_len: int, num_actions: int | None, width: int = 32,
                    num_heads: int = 1) -> tuple[Array, Array]:
  """Return predictions (in return units) and attention rows of right-aligned windows.

  A helper for inspecting a trained module: ``episodes`` are ``[B, L]`` windows
  as in the module's buffer; the model settings must match the module's.
  """
  model = ReturnModel(max_len=max_len, num_actions=num_actions, width=width,
                      num_heads=num_heads)
  mean, std = _return_stats(module_state)
  pred, attn = model.apply(module_state.params, episodes.obs, episodes.action,
                           episodes.step, episodes.valid)
  return pred * std + mean, attn


__all__ = ["attention_redistribution", "AttentionRedistributionState", "Episodes",
           "predict_returns"]

"""DQN and Double DQN with n-step returns and multi-channel rewards.

Mnih et al. 2015 ("Human-level control through deep reinforcement learning"),
van Hasselt, Guez & Silver 2016 (Double DQN), n-step targets as in Hessel et
al. 2018. One readable file in the PureJaxRL mould: ``make_train(config, env,
env_params, rewards)`` returns a pure ``train(key)``; the replay buffer is a
flashbax trajectory buffer living in the runner state, so the whole run —
acting, reward modules, replay, gradient steps — is one ``jax.lax.scan`` that
can be jitted and vmapped over seeds::

    train = make_train(DQNConfig(double_dqn=True), *rjx.envs.make("CartPole-v1"))
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 4))

Per update: every one of ``num_envs`` environments takes ``num_steps``
ε-greedy steps; the reward channels score that ``[T, N]`` rollout; the reward
modules are updated on it; the rollout (with one reward per channel) is added
to the buffer; then ``num_gradient_steps`` minibatches of ``n_step``-long
sequences are sampled and the Q-network takes one Adam step on each. The
target network follows the online one (hard copy, or Polyak with ``tau < 1``)
every ``target_update_interval`` env steps.

Where intrinsic rewards are computed. At COLLECTION time, with the reward
modules' state of that moment, and stored in the buffer, one reward per
channel — as count-based DQN agents do (Bellemare et al. 2016; Tang et al.
2017). Reasons: (1) the reward-module contract reads time-major ``[T, N]``
batches (episodic counts reset along time, return-std normalisation runs a
discounted sum along time), and replay samples have no such order; (2) each
transition is scored once, not once per replay, which keeps RND-like modules'
cost independent of the replay ratio; (3) the module learns from each
transition exactly once, when it is new. The price: stored bonuses are those
of the moment of the visit (a count bonus is not re-decayed while in replay).

Reward channels: the Q-network has one head per channel, each with its own γ,
episodic flag and value mapping (``rewardjax.value_mapping``); actions are
greedy on ``Σ_c coef_c · f_c⁻¹(q̃_c)`` (``rewardjax.q_targets``). With the
default single extrinsic channel and identity mapping this is plain DQN.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from rewardjax import encoders, episodes, q_targets, sharding
from rewardjax import value_mapping as vm
from rewardjax.agents import trainer
from rewardjax.agents import evaluation
from rewardjax.agents.q_learning import (QEvalConfig, epsilon_greedy_rollout, greedy_act,
                                               linear_epsilon, q_agent_setup)
from rewardjax.nets import ACTIVATIONS, QNetwork
from rewardjax.rewards.channels import as_channels
from rewardjax.types import Transition, reward_and_update

LOSSES = ("huber", "mse")


@dataclasses.dataclass(frozen=True)
class DQNConfig(trainer.RolloutSizes, QEvalConfig):
  """DQN hyperparameters (CartPole-scale defaults); evaluation fields from ``QEvalConfig``."""
  total_timesteps: int = 500_000
  num_envs: int = 8               # environments stepped together
  num_steps: int = 4              # steps per environment between learning phases
  num_gradient_steps: int = 4     # minibatch updates per learning phase
  minibatch_size: int = 128
  buffer_size: int = 100_000      # transitions kept (rounded to whole env columns)
  learning_starts: int = 10_000   # env steps of ε-greedy (ε from the schedule) before learning
  lr: float = 5e-4
  #: Linear lr decay over num_updates · num_gradient_steps optimiser steps; since
  #: no step is taken before learning_starts, lr ends at ≈ learning_starts /
  #: total_timesteps of its initial value rather than at 0.
  anneal_lr: bool = True
  max_grad_norm: float = 10.0
  gamma: float = 0.99             # default γ for channels that do not set one
  #: 3-step targets with an MSE loss: with 1-step targets or a Huber loss (its
  #: gradient clipped while Q is still being fitted) plain DQN leaves more
  #: CartPole seeds below 475; see benchmarks/RESULTS.md (Q-learning).
  n_step: int = 3
  double_dqn: bool = False
  loss: str = "mse"               # "huber" or "mse"
  target_update_interval: int = 1_000   # env steps between target updates
  tau: float = 1.0                # 1: hard copy; < 1: Polyak averaging
  eps_start: float = 1.0
  eps_end: float = 0.01           # training returns are ε-greedy: ε's floor shows in them
  exploration_fraction: float = 0.2     # ε decays linearly over this share of training
  hidden_sizes: tuple[int, ...] = (128, 128)
  activation: str = "relu"
  # LayerNorm after each hidden layer (with lr annealing) keeps CartPole runs
  # stable; see benchmarks/RESULTS.md (Q-learning).
  layer_norm: bool = True
  # One mapping for every channel, or one per channel ("identity", "log").
  value_mapping: tuple[str, ...] = ("identity",)
  #: Observation encoder before the Q-network's MLP (``rewardjax.encoders``):
  #: "auto", "flat", "tiles" or "cnn", as PPOConfig's.
  encoder: str = "auto"

  def __post_init__(self):
    self.check_eval()
    encoders.check_name(self.encoder)
    for name in ("total_timesteps", "num_envs", "num_steps", "num_gradient_steps",
                 "minibatch_size", "buffer_size", "n_step", "target_update_interval"):
      trainer.check_positive(name, getattr(self, name), integer=True)
    trainer.check_positive("learning_starts", self.learning_starts, integer=True, allow_zero=True)
    trainer.check_unit_interval("gamma", self.gamma)
    trainer.check_unit_interval("tau", self.tau)
    trainer.check_positive("lr", self.lr)
    trainer.check_positive("max_grad_norm", self.max_grad_norm)
    for name in ("eps_start", "eps_end"):
      trainer.check_unit_interval(name, getattr(self, name), closed_low=True)
    trainer.check_unit_interval("exploration_fraction", self.exploration_fraction, closed_low=True)
    if self.loss not in LOSSES:
      raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    for name in ([self.value_mapping] if isinstance(self.value_mapping, str) else self.value_mapping):
      vm.get(name)
    if self.total_timesteps < self.batch_size:
      raise ValueError(
          f"total_timesteps ({self.total_timesteps}) is smaller than one collection "
          f"(num_envs * num_steps = {self.batch_size})")
    if self.buffer_size < self.num_envs * max(self.n_step, self.num_steps) * 2:
      raise ValueError(
          f"buffer_size ({self.buffer_size}) must hold at least two collections of "
          f"num_envs * max(n_step, num_steps) = {self.num_envs * max(self.n_step, self.num_steps)} "
          "transitions")
    if self.learning_starts >= self.total_timesteps:
      raise ValueError(f"learning_starts ({self.learning_starts}) must be smaller than "
                       f"total_timesteps ({self.total_timesteps})")


@dataclasses.dataclass(frozen=True)
class DDQNConfig(DQNConfig):
  """``DQNConfig`` with Double DQN on (the CLI's ``--agent ddqn``)."""
  double_dqn: bool = True


class RunnerState(NamedTuple):
  """Everything a DQN run carries from one update to the next (what checkpoints save)."""
  theta: jax.Array          # online Q-network parameters, one flat vector
  target_theta: jax.Array   # target network parameters, flat
  opt_state: Any
  buffer_state: Any         # flashbax trajectory buffer
  reward_state: Any
  env_state: Any
  obs: jax.Array
  episodes: episodes.EpisodeState
  env_steps: jax.Array      # int32 scalar
  key: jax.Array
  evaluation: Any = None    # the last evaluation's metrics (``evaluation``); None when off


TrainOutput = trainer.TrainOutput


# Hyperparameters ``train(key, hparams)`` accepts as (traceable) overrides, besides
# ``<channel>.coef``; ``gamma`` is the discount of channels that do not set their own.
SWEEPABLE = ("lr", "max_grad_norm", "gamma", "tau", "eps_start", "eps_end")


class Stored(NamedTuple):
  """What the buffer keeps per transition (one reward per channel)."""
  obs: jax.Array
  action: jax.Array
  reward: jax.Array          # [C]
  next_obs: jax.Array        # true next observation
  terminated: jax.Array
  truncated: jax.Array


def q_loss(apply_fn, params, target_params, batch: Stored, *, coefs, gammas, episodic,
           mappings, double_dqn: bool, loss: str = "huber"):
  """The (n-step, multi-channel, value-mapped) DQN loss on a batch of ``[B, n]`` sequences.

  For every channel ``c`` with mapping ``f_c``: the target of the first step is
  the n-step return (``q_targets.n_step_target``) bootstrapped from
  ``f_c⁻¹(q̃_target(s_{k+1}, a*))``, where ``a*`` is greedy on the
  coefficient-weighted regular-space Q of the target network (DQN) or of the
  online network (Double DQN); the loss is ``td_loss(q̃_c(s_0, a_0), f_c(G_c))``
  averaged over the batch and summed over channels.

  Returns ``(loss, metrics)``.
  """
  obs_0, action_0 = batch.obs[:, 0], batch.action[:, 0]
  obs_shape = batch.obs.shape[2:]
  next_obs = batch.next_obs.reshape((-1,) + obs_shape)                    # [B·n, ...]
  q_tgt_next = vm.apply(mappings, apply_fn(target_params, next_obs), inverse=True)
  if double_dqn:
    # One online pass over obs_0 and the next observations together.
    q_on_all = apply_fn(params, jnp.concatenate([obs_0, next_obs]))
    q_on_mapped_0 = q_on_all[:obs_0.shape[0]]
    q_sel = vm.apply(mappings, q_on_all[obs_0.shape[0]:], inverse=True)
    v_next = q_targets.double_q_bootstrap(q_tgt_next, q_sel, coefs)
  else:
    q_on_mapped_0 = apply_fn(params, obs_0)
    v_next = q_targets.q_learning_bootstrap(q_tgt_next, coefs)
  v_next = jax.lax.stop_gradient(v_next).reshape(batch.reward.shape)    # [B, n, C]
  discount, cont = q_targets.episode_discounts(batch.terminated, batch.truncated, gammas,
                                               episodic)
  tm = lambda x: jnp.swapaxes(x, 0, 1)                                   # time-major
  target = q_targets.n_step_target(tm(batch.reward), tm(discount), tm(v_next), tm(cont))
  q_taken = q_targets.select(q_on_mapped_0, action_0)                   # [B, C], mapped
  per = q_targets.td_loss(q_taken, vm.apply(mappings, target), loss)
  value = per.mean(0).sum()
  return value, {"loss": value, "q_mean": q_taken.mean()}


def make_train(config: DQNConfig, env, env_params, rewards=None,
               callback: Callable[[dict], None] | None = None,
               check_rewards: bool = True, mesh=None) -> trainer.Trainer:
  """Builds ``train(key, hparams=None) -> TrainOutput`` for a discrete-action environment.

  Args:
    config: a ``DQNConfig``.
    env, env_params: a gymnax-1.0-style environment (``rewardjax.envs.make``).
    rewards: ``None`` (extrinsic reward only), a reward module, a channel, or
      ``rewardjax.rewards.combine(...)``; one Q head per channel.
    callback: optional host function called after every update with
      ``update``, ``env_steps`` and ``episode_return`` (once per vmapped seed).
    check_rewards: run the reward channels once on a small random rollout before
      compiling, so bad potentials or modules fail fast with a named error.
    mesh: optional ``jax.sharding.Mesh`` with one axis (``rewardjax.sharding.make_mesh``):
      environments are split over its devices and so is replay — each device
      keeps its own buffer of its own environments' transitions and samples
      ``minibatch_size / devices`` sequences from it — while gradients and
      reward statistics are reduced across devices (``num_envs`` and
      ``minibatch_size`` must be divisible by its size).

  ``train`` is a ``trainer.Trainer`` (as PPO's): ``train(key, hparams)`` takes
  optional overrides of ``SWEEPABLE`` and ``<channel>.coef`` (scalars,
  traceable: vmap over them for sweeps); ``train.init`` / ``train.run`` run it
  in chunks.
  """
  if not isinstance(config, DQNConfig):
    raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}")
  setup = q_agent_setup("DQN", config, env, env_params, rewards, check_rewards)
  obs_shape = env.observation_space(env_params).shape
  channels, unresolved_gammas, mappings = setup.channels, setup.unresolved_gammas, setup.mappings
  network, q_values, num_actions = setup.network, setup.q_values, setup.num_actions
  num_channels = channels.num_channels
  num_updates = config.num_updates
  n = config.n_step
  # Per device (all of them without a mesh): environments and replay minibatch.
  num_devices = sharding.mesh_size(mesh)
  num_envs = config.num_envs // num_devices
  minibatch_size = config.minibatch_size // num_devices
  if num_envs * num_devices != config.num_envs or \
      minibatch_size * num_devices != config.minibatch_size:
    raise ValueError(
        f"num_envs ({config.num_envs}) and minibatch_size ({config.minibatch_size}) must split "
        f"evenly over {num_devices} devices")
  defaults = trainer.sweep_defaults(config, SWEEPABLE, channels)
  coef_schedules = trainer.coef_schedules(channels)
  evaluate = evaluation.make_evaluate(config, env, env_params, mesh)
  episode_metric_names = trainer.episode_metric_names(env, env_params)

  # Time is the buffer's second axis: one column of transitions per environment
  # (per device: its own environments' columns, the same length of time).
  buffer = fbx.make_trajectory_buffer(
      add_batch_size=num_envs,
      sample_batch_size=minibatch_size,
      sample_sequence_length=n,
      period=1,
      min_length_time_axis=max(n, config.num_steps),
      max_length_time_axis=max(config.buffer_size // config.num_envs, 2 * max(n, config.num_steps)),
  )

  def make_tx(hp):
    lr = hp["lr"]
    if config.anneal_lr:       # decayed at every gradient step
      lr = trainer.linear_decay(lr, num_updates * config.num_gradient_steps)
    return optax.chain(optax.clip_by_global_norm(hp["max_grad_norm"]), optax.adam(lr))

  # Target updates happen on update boundaries: every k updates.
  target_every = max(1, config.target_update_interval // config.batch_size)

  def loss_fn(theta, target_theta, unravel, batch: Stored, coefs, gammas):
    return q_loss(network.apply, unravel(theta), unravel(target_theta), batch, coefs=coefs,
                  gammas=gammas, episodic=channels.episodic, mappings=mappings,
                  double_dqn=config.double_dqn, loss=config.loss)

  def rollout(runner: RunnerState, params, epsilon, coefs):
    (env_state, obs, key), traj, _, episode_info = epsilon_greedy_rollout(
        env, env_params, q_values, num_actions, config.num_steps, runner.env_state,
        runner.obs, runner.key, params, epsilon, coefs)
    return runner._replace(env_state=env_state, obs=obs, key=key), traj, episode_info

  def make_update(unravel):
    def learn(theta, opt_state, target_theta, buffer_state, key, hp, coefs, gammas):
      tx = make_tx(hp)

      def grad_step(carry, k):
        # Sharded: each device samples its own buffer (k differs per device).
        batch = buffer.sample(buffer_state, k).experience
        loss = lambda th, b: loss_fn(th, target_theta, unravel, b, coefs, gammas)
        return trainer.sgd_step(loss, tx, *carry, batch)

      (theta, opt_state), m = jax.lax.scan(
          grad_step, (theta, opt_state), jax.random.split(key, config.num_gradient_steps))
      return theta, opt_state, {k: v.mean() for k, v in m.items()}

    def skip(theta, opt_state, target_theta, buffer_state, key, hp, coefs, gammas):
      del target_theta, buffer_state, key, hp, coefs, gammas
      return theta, opt_state, {"loss": jnp.float32(jnp.nan), "q_mean": jnp.float32(jnp.nan)}

    def update(runner: RunnerState, i, hp):
      coefs = trainer.channel_coefs(hp, channels)
      gammas = trainer.channel_gammas(hp, unresolved_gammas)
      epsilon = linear_epsilon(config, runner.env_steps, hp["eps_start"], hp["eps_end"])
      runner, tr, episode_info = rollout(runner, unravel(runner.theta), epsilon, coefs)
      key, k_reward, k_learn = jax.random.split(runner.key, 3)

      # Rewards of every channel from the modules' current state, then their update.
      r, reward_state, reward_metrics = reward_and_update(   # r: [T, N, C]
          channels, runner.reward_state, tr, k_reward)
      stored = Stored(tr.obs, tr.action, r, tr.next_obs, tr.terminated, tr.truncated)
      buffer_state = buffer.add(runner.buffer_state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), stored))
      env_steps = runner.env_steps + config.batch_size

      # Learning waits for learning_starts steps and for n steps per environment
      # (an n-step sequence must exist in every sampled column).
      # (hyperparameters are closed over, not operands: the default path keeps
      # them as compile-time constants)
      extra = dict(hp=hp, coefs=coefs, gammas=gammas)
      theta, opt_state, losses = jax.lax.cond(
          env_steps >= max(config.learning_starts, config.num_envs * n),
          functools.partial(learn, **extra), functools.partial(skip, **extra),
          runner.theta, runner.opt_state, runner.target_theta, buffer_state,
          sharding.device_key(k_learn))
      do_target = (i + 1) % target_every == 0
      target_theta = jnp.where(
          do_target, hp["tau"] * theta + (1.0 - hp["tau"]) * runner.target_theta,
          runner.target_theta)

      metrics = dict(losses)
      metrics["epsilon"] = epsilon
      episode_state, metrics = trainer.rollout_metrics(
          metrics, runner.episodes, tr, r, channels.names, reward_metrics, theta, episode_info)
      runner = runner._replace(theta=theta, target_theta=target_theta, opt_state=opt_state,
                               buffer_state=buffer_state, reward_state=reward_state,
                               episodes=episode_state, env_steps=env_steps, key=key)
      return runner, metrics

    return update

  def init(key: jax.Array, hparams=None) -> RunnerState:
    hp = trainer.resolve_hparams(defaults, hparams)
    st = trainer.start(key, env, env_params, network, channels, config.num_steps, num_envs)
    theta, _ = ravel_pytree(st.params)
    example = st.example
    item = Stored(example.obs[0, 0], example.action[0, 0],
                  jnp.zeros((num_channels,), jnp.float32), example.next_obs[0, 0],
                  example.terminated[0, 0], example.truncated[0, 0])
    buffer_state = buffer.init(item)
    # One flat parameter vector (trainer.flat_unravel): a Polyak target update is
    # then one fused multiply-add.
    return RunnerState(theta, theta, make_tx(hp).init(theta), buffer_state, st.reward_state,
                       st.env_state, st.obs, episodes.init(num_envs, episode_metric_names),
                       jnp.int32(0), st.key,
                       None if evaluate is None else evaluation.init_metrics())

  unravel = trainer.flat_unravel(network, obs_shape)
  update = make_update(unravel)

  def body(runner, i, hparams=None):
    hp, scheduled = trainer.scheduled(trainer.resolve_hparams(defaults, hparams),
                                      coef_schedules, i, num_updates)
    runner, metrics = update(runner, i, hp)
    metrics.update(scheduled)
    runner, metrics = evaluation.after_update(
        evaluate, config, num_updates, runner, i, metrics,
        lambda r: greedy_act(q_values, unravel(r.theta), trainer.channel_coefs(hp, channels),
                             num_actions, config.eval_epsilon))
    return runner, trainer.report(callback, metrics, i, config.batch_size)

  return trainer.Trainer(init, body, num_updates, TrainOutput, mesh=mesh,
                        sweepable=tuple(defaults))

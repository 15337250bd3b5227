"""PQN: Parallelised Q-Network with Q(λ) returns and multi-channel rewards.

Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning": no
replay buffer and no target network; many vmapped environments decorrelate the
data, LayerNorm in the Q-network keeps TD learning stable, and Q(λ) returns
computed over each rollout replace n-step replay targets. One readable file in
the PureJaxRL mould::

    train = make_train(PQNConfig(), *rjx.envs.make("CartPole-v1"))
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 4))

Per update: ``num_envs`` environments take ``num_steps`` ε-greedy steps; the
reward channels score the ``[T, N]`` rollout and are updated on it; each
channel's Q(λ) returns are computed with the network of collection time
(``q_targets.lambda_returns``); then ``update_epochs`` epochs of
``num_minibatches`` minibatch regressions of Q(s, a) onto those returns.

Episode ends (``rewardjax.returns.channel_bootstrap``): in an episodic channel
a terminated step bootstraps from 0 and a truncated step from Q of the TRUE
final observation, and the λ-return never runs past either; a non-episodic
channel bootstraps from the next observation of the rollout and runs on.

Reward channels: one Q head per channel (own γ, episodic flag and value
mapping); actions are greedy on ``Σ_c coef_c · f_c⁻¹(q̃_c)`` and every head
bootstraps at that shared greedy action (``rewardjax.q_targets``). Intrinsic
rewards are computed on the collected rollout, as for PPO.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from rewardjax import encoders, episodes, q_targets
from rewardjax import value_mapping as vm
from rewardjax.agents import trainer
from rewardjax.agents import evaluation
from rewardjax.agents.q_learning import (QEvalConfig, epsilon_greedy_rollout, greedy_act,
                                               linear_epsilon, q_agent_setup)
from rewardjax.nets import ACTIVATIONS
from rewardjax.returns import channel_bootstrap
from rewardjax.types import reward_and_update

LOSSES = ("huber", "mse")


@dataclasses.dataclass(frozen=True)
class PQNConfig(trainer.RolloutSizes, QEvalConfig):
  """PQN hyperparameters (CartPole-scale defaults); evaluation fields from ``QEvalConfig``.

  The rollout, epochs, γ, λ, gradient clipping and LayerNorm follow purejaxql's
  CartPole config; the learning rate and ε floor are this library's.
  """
  total_timesteps: int = 500_000
  num_envs: int = 32
  num_steps: int = 64
  update_epochs: int = 4
  num_minibatches: int = 16
  # A high rate decayed linearly to 0: fast early learning, a near-frozen Q at
  # the end. A constant 1e-4 leaves some CartPole seeds short of 475 at 500k
  # steps, a constant 3e-4 makes others collapse, and 1e-4 decayed learns too
  # slowly; see benchmarks/RESULTS.md (Q-learning: defaults on held-out seeds).
  lr: float = 5e-4
  anneal_lr: bool = True
  max_grad_norm: float = 10.0
  gamma: float = 0.99            # default γ for channels that do not set one
  q_lambda: float = 0.95
  loss: str = "mse"              # "mse" (½ error², as in the paper) or "huber"
  eps_start: float = 1.0
  # Training returns are ε-greedy, so ε's floor shows in them: at 0.05 a good
  # greedy policy still ends CartPole episodes early now and then; 0.01 as DQN.
  eps_end: float = 0.01
  exploration_fraction: float = 0.2   # ε decays linearly over this share of training
  hidden_sizes: tuple[int, ...] = (128, 128)
  activation: str = "relu"
  layer_norm: bool = True
  # One mapping for every channel, or one per channel ("identity", "log").
  value_mapping: tuple[str, ...] = ("identity",)
  #: Observation encoder before the Q-network's MLP (``rewardjax.encoders``):
  #: "auto", "flat", "tiles" or "cnn", as PPOConfig's.
  encoder: str = "auto"

  def __post_init__(self):
    self.check_eval()
    encoders.check_name(self.encoder)
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
      trainer.check_positive(name, getattr(self, name), integer=True)
    trainer.check_unit_interval("gamma", self.gamma)
    trainer.check_unit_interval("q_lambda", self.q_lambda, closed_low=True)
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
    trainer.check_rollout(self.num_envs, self.num_steps, self.num_minibatches,
                         self.total_timesteps)


class RunnerState(NamedTuple):
  """Everything a PQN run carries from one update to the next (what checkpoints save)."""
  theta: jax.Array          # Q-network parameters, one flat vector
  opt_state: Any
  reward_state: Any
  env_state: Any
  obs: jax.Array
  episodes: episodes.EpisodeState
  env_steps: jax.Array
  key: jax.Array
  evaluation: Any = None    # the last evaluation's metrics (``evaluation``); None when off


TrainOutput = trainer.TrainOutput


# Hyperparameters ``train(key, hparams)`` accepts as (traceable) overrides, besides
# ``<channel>.coef``; ``gamma`` is the discount of channels that do not set their own.
SWEEPABLE = ("lr", "max_grad_norm", "gamma", "q_lambda", "eps_start", "eps_end")


def pqn_targets(r, v_next_true, v_next_seq, terminated, truncated, gammas, q_lambda,
                episodic, mappings):
  """Each channel's Q(λ) return over a ``[T, N, C]`` rollout, in its mapped space.

  ``G_t = r_t + γ_c·[(1 − λ_t)·v_t + λ_t·G_{t+1}]`` (``q_targets.lambda_returns``)
  with the bootstrap ``v_t`` and the continuation ``λ_t = q_lambda · continue_t`` of
  ``returns.channel_bootstrap``: an episodic channel bootstraps from 0 at a
  terminated step and from ``v_next_true`` at a truncated one and never runs past
  either; a non-episodic channel bootstraps from ``v_next_seq`` and runs on.
  Returns ``f_c(G)`` ``[T, N, C]`` with each channel's value mapping ``f_c``.
  """
  done = jnp.logical_or(terminated, truncated)
  v_t, cont = channel_bootstrap(v_next_true, v_next_seq, terminated, done, episodic)
  returns = q_targets.lambda_returns(r, jnp.broadcast_to(gammas, r.shape), v_t, q_lambda * cont)
  return vm.apply(mappings, returns)


def pqn_loss(apply_fn, params, obs, action, target_mapped, kind: str):
  """The TD loss of one minibatch: ``Σ_c mean_b td_loss(q̃_c(s_b, a_b), y_{b,c})``.

  ``apply_fn(params, obs)`` gives the mapped heads ``q̃ [B, A, C]``; targets are
  constants (``q_targets.td_loss``). Returns ``(loss, {"loss", "q_mean"})``.
  """
  q_mapped = apply_fn(params, obs)
  q_taken = q_targets.select(q_mapped, action)                         # [B, C]
  loss = q_targets.td_loss(q_taken, target_mapped, kind).mean(0).sum()
  return loss, {"loss": loss, "q_mean": q_taken.mean()}


def make_train(config: PQNConfig, env, env_params, rewards=None,
               callback: Callable[[dict], None] | None = None,
               check_rewards: bool = True, mesh=None) -> trainer.Trainer:
  """Builds ``train(key, hparams=None) -> TrainOutput`` for a discrete-action environment.

  Args:
    config: a ``PQNConfig``.
    env, env_params: a gymnax-1.0-style environment (``rewardjax.envs.make``).
    rewards: ``None`` (extrinsic reward only), a reward module, a channel, or
      ``rewardjax.rewards.combine(...)``; one Q head per channel.
    callback: optional host function called after every update with
      ``update``, ``env_steps`` and ``episode_return`` (once per vmapped seed).
    check_rewards: run the reward channels once on a small random rollout before
      compiling, so bad potentials or modules fail fast with a named error.
    mesh: optional ``jax.sharding.Mesh`` with one axis (``rewardjax.sharding.make_mesh``):
      environments are split over its devices, gradients and reward statistics
      reduced across them (``num_envs`` must be divisible by its size).

  ``train`` is a ``trainer.Trainer`` (as PPO's): ``train(key, hparams)`` takes
  optional overrides of ``SWEEPABLE`` and ``<channel>.coef`` (scalars,
  traceable: vmap over them for sweeps); ``train.init`` / ``train.run`` run it
  in chunks.
  """
  if not isinstance(config, PQNConfig):
    raise TypeError(f"config must be a PQNConfig, got {type(config).__name__}")
  setup = q_agent_setup("PQN", config, env, env_params, rewards, check_rewards)
  obs_shape = env.observation_space(env_params).shape
  channels, unresolved_gammas, mappings = setup.channels, setup.unresolved_gammas, setup.mappings
  network, q_values, num_actions = setup.network, setup.q_values, setup.num_actions
  num_updates = config.num_updates
  num_envs, batch_size, _ = trainer.per_device_batch(config, mesh)
  defaults = trainer.sweep_defaults(config, SWEEPABLE, channels)
  coef_schedules = trainer.coef_schedules(channels)
  evaluate = evaluation.make_evaluate(config, env, env_params, mesh)
  episode_metric_names = trainer.episode_metric_names(env, env_params)

  def make_tx(hp):
    lr = hp["lr"]
    if config.anneal_lr:
      lr = trainer.linear_decay(lr, num_updates, every=config.num_minibatches * config.update_epochs)
    return optax.chain(optax.clip_by_global_norm(hp["max_grad_norm"]), optax.radam(lr))

  def loss_fn(theta, unravel, obs, action, target_mapped):
    return pqn_loss(network.apply, unravel(theta), obs, action, target_mapped, config.loss)

  def rollout(runner: RunnerState, params, epsilon, coefs):
    (env_state, obs, key), traj, v_obs, episode_info = epsilon_greedy_rollout(
        env, env_params, q_values, num_actions, config.num_steps, runner.env_state,
        runner.obs, runner.key, params, epsilon, coefs)
    return runner._replace(env_state=env_state, obs=obs, key=key), traj, v_obs, episode_info

  def make_update(unravel):
    def update(runner: RunnerState, hp):
      coefs = trainer.channel_coefs(hp, channels)
      gammas = jnp.asarray(trainer.channel_gammas(hp, unresolved_gammas), jnp.float32)
      tx = make_tx(hp)

      def greedy_values(q):
        """Per-channel values ``[..., C]`` at the greedy action of the combined Q."""
        return q_targets.select(q, q_targets.greedy_action(q, coefs))

      params = unravel(runner.theta)
      epsilon = linear_epsilon(config, runner.env_steps, hp["eps_start"], hp["eps_end"])
      runner, tr, v_obs, episode_info = rollout(runner, params, epsilon, coefs)
      key, k_reward, k_perm = jax.random.split(runner.key, 3)

      r, reward_state, reward_metrics = reward_and_update(   # r: [T, N, C]
          channels, runner.reward_state, tr, k_reward)

      # Bootstrap values with the collection-time network: Q of every true
      # next observation (one batched pass) and, for non-episodic channels, of
      # the next observation in the rollout (already computed while acting).
      v_next_true = greedy_values(q_values(params, tr.next_obs))       # [T, N, C]
      v_last = greedy_values(q_values(params, runner.obs))
      v_next_seq = jnp.concatenate([v_obs[1:], v_last[None]], axis=0)
      targets = pqn_targets(r, v_next_true, v_next_seq, tr.terminated, tr.truncated, gammas,
                            hp["q_lambda"], channels.episodic, mappings)

      flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                          (tr.obs, tr.action, targets))

      (theta, opt_state), losses = trainer.minibatch_epochs(
          lambda th, *b: loss_fn(th, unravel, *b), tx, runner.theta, runner.opt_state, flat,
          k_perm, config.update_epochs, config.num_minibatches)

      metrics = {k: v.mean() for k, v in losses.items()}
      metrics["epsilon"] = epsilon
      episode_state, metrics = trainer.rollout_metrics(
          metrics, runner.episodes, tr, r, channels.names, reward_metrics, theta, episode_info)
      runner = runner._replace(theta=theta, opt_state=opt_state, reward_state=reward_state,
                               episodes=episode_state,
                               env_steps=runner.env_steps + config.batch_size, key=key)
      return runner, metrics

    return update

  def init(key: jax.Array, hparams=None) -> RunnerState:
    hp = trainer.resolve_hparams(defaults, hparams)
    st = trainer.start(key, env, env_params, network, channels, config.num_steps, num_envs)
    theta, _ = ravel_pytree(st.params)      # one flat vector (trainer.flat_unravel)
    return RunnerState(theta, make_tx(hp).init(theta), st.reward_state, st.env_state, st.obs,
                       episodes.init(num_envs, episode_metric_names), jnp.int32(0), st.key,
                       None if evaluate is None else evaluation.init_metrics())

  unravel = trainer.flat_unravel(network, obs_shape)
  update = make_update(unravel)

  def body(runner, i, hparams=None):
    hp, scheduled = trainer.scheduled(trainer.resolve_hparams(defaults, hparams),
                                      coef_schedules, i, num_updates)
    runner, metrics = update(runner, hp)
    metrics.update(scheduled)
    runner, metrics = evaluation.after_update(
        evaluate, config, num_updates, runner, i, metrics,
        lambda r: greedy_act(q_values, unravel(r.theta), trainer.channel_coefs(hp, channels),
                             num_actions, config.eval_epsilon))
    return runner, trainer.report(callback, metrics, i, config.batch_size)

  return trainer.Trainer(init, body, num_updates, TrainOutput, mesh=mesh,
                        sweepable=tuple(defaults))

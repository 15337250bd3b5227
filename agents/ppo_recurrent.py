"""Recurrent PPO: a GRU actor-critic with multi-channel rewards (PureJaxRL's ppo_rnn mould).

``ppo.make_train`` builds this agent when ``PPOConfig.network == "gru"``::

    config = PPOConfig(network="gru", rnn_hidden=128, num_envs=64, num_minibatches=4)
    train = ppo.make_train(config, *rjx.envs.make("MemoryChain-bsuite", memory_length=10))

The network (``RecurrentActorCritic``) is ``encoder → GRU → heads``: an
``encoder`` flax module maps observations ``[..., *obs_shape]`` to features
``[..., F]`` (default: flatten), optionally joined by an embedding of the
previous action; one GRU cell (Cho et al. 2014) carries a state ``h`` from
step to step; the actor head and one critic head per reward channel read the
GRU's output, so every channel's value shares the same memory.

Memory across episodes: ``h`` and the previous action are reset inside the
rollout scan at every episode end (terminated or truncated), so an episode
starts from ``h = 0`` and the start token ``num_actions``. A truncated step
bootstraps from V(true final observation) computed with the hidden state
before that reset. The state at the rollout's start is stored; the loss re-runs
the GRU over whole sequences from it, with the same resets, so the gradient
flows through time within the rollout (truncated BPTT over ``num_steps``).
Minibatches split environments, not time: each keeps whole sequences.

Everything else is feed-forward PPO's: the clipped loss
(``ppo.ppo_loss_from_outputs``), the action distributions (``ppo.make_policy``),
per-channel GAE (``returns.multichannel_gae``), the reward channels, sweeps,
sharding, chunked runs and evaluation (``agents/evaluation.py``, with a hidden
state per evaluation environment).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from jax.flatten_util import ravel_pytree

from rewardjax import stats
from rewardjax.agents import evaluation, trainer
from rewardjax.agents.ppo import (MinibatchData, PPOConfig, RunnerState, TrainOutput,
                                  make_body, make_optimizer, make_policy, observe_with,
                                  channel_advantages, ppo_loss_from_outputs, setup,
                                  start_runner)
from rewardjax.nets import MLP
from rewardjax.types import Transition


# --------------------------------------------------------------------- network


class RecurrentActorCritic(nn.Module):
  """``(obs, h, prev_action) -> (h', logits [..., A], values [..., C])``, one step.

  ``h_t = GRU(h_{t−1}, [encoder(o_t), embed(a_{t−1})])``; the actor and each
  channel's critic are one-hidden-layer heads on ``h_t``. Without ``h`` the
  step starts an episode (``h = 0``, previous action = the start token
  ``num_actions``). Any leading axes are batch axes.
  """
  num_actions: int
  num_channels: int = 1
  rnn_hidden: int = 256
  head_hidden: int = 64
  activation: str = "tanh"
  prev_action_embedding: int = 0
  obs_ndim: int = 1
  encoder: Any = None      # flax module: [..., *obs_shape] -> [..., F]; None: flatten

  @nn.compact
  def __call__(self, obs, h=None, prev_action=None):
    lead = obs.shape[:obs.ndim - self.obs_ndim]
    if h is None:
      h = jnp.zeros(lead + (self.rnn_hidden,), jnp.float32)
      prev_action = jnp.full(lead, self.num_actions, jnp.int32)
    if self.encoder is None:
      x = jnp.reshape(obs, lead + (-1,)).astype(jnp.float32)
    else:
      x = self.encoder(obs).astype(jnp.float32)
    if self.prev_action_embedding:
      x = jnp.concatenate(
          [x, nn.Embed(self.num_actions + 1, self.prev_action_embedding)(prev_action)], -1)
    h, y = nn.GRUCell(self.rnn_hidden)(h, x)
    logits = MLP((self.head_hidden,), self.num_actions, self.activation, 0.01)(y)
    values = MLP((self.head_hidden,), self.num_channels, self.activation, 1.0,
                 split_outputs=True)(y)      # one value head per channel
    return h, logits, values


class Memory(NamedTuple):
  """What the core carries between steps, per environment."""
  h: jax.Array             # [N, H] GRU state; 0 at an episode's first step
  prev_action: jax.Array   # [N] the previous action; ``num_actions`` at an episode's first step


class Rollout(NamedTuple):
  """One rollout ``[T, N]`` and what the loss needs to re-run the core over it."""
  transition: Transition
  log_prob: jax.Array      # [T, N]    log π_old(a_t | history)
  value: jax.Array         # [T, N, C] V(history up to o_t)
  hidden: jax.Array        # [T, N, H] h_t before any episode-end reset
  start: Memory            # [N, ...]  the memory the rollout started from
  episode_info: Any = None # the env's info["episode_metrics"], name -> [T, N] (None: none)


class Sequences(NamedTuple):
  """Environment-major ``[N, T, ...]`` training data: minibatches take whole rows."""
  data: MinibatchData      # observations as the policy saw them, actions, old log-probs, values
  done: jax.Array          # [N, T] the episode ended at step t (reset after it)
  start: Memory            # [N, ...]


def initial_memory(num_envs: int, rnn_hidden: int, num_actions: int) -> Memory:
  """The memory of ``num_envs`` environments at an episode's first step."""
  return Memory(jnp.zeros((num_envs, rnn_hidden), jnp.float32),
                jnp.full((num_envs,), num_actions, jnp.int32))


def advance(h_t: jax.Array, a_t: jax.Array, done_t: jax.Array, num_actions: int) -> Memory:
  """The memory for step t+1: ``h_t`` and ``a_t``, reset where the episode ended at t."""
  return Memory(jnp.where(done_t[:, None], 0.0, h_t),
                jnp.where(done_t, num_actions, a_t).astype(jnp.int32))


def unroll(network, params, start: Memory, x: jax.Array, action: jax.Array, done: jax.Array):
  """The core over time-major sequences ``[T, N, ...]`` from ``start``, resetting
  after every ``done``: ``(policy outputs [T, N, ...], values [T, N, C])``."""
  def step(memory, inputs):
    x_t, a_t, done_t = inputs
    h, out, value = network.apply(params, x_t, memory.h, memory.prev_action)
    return advance(h, a_t, done_t, network.num_actions), (out, value)

  _, (out, value) = jax.lax.scan(step, start, (x, action, done))
  return out, value


def env_major(x: jax.Array) -> jax.Array:
  """``[T, N, ...] <-> [N, T, ...]``."""
  return jnp.swapaxes(x, 0, 1)


def sequence_loss(policy, params, seq: Sequences, advantages, targets, hp, *,
                  clip_value_loss: bool, normalize_advantages: bool):
  """PPO's clipped loss (``ppo.ppo_loss_from_outputs``) on whole sequences ``[M, T]``.

  The core re-runs over each sequence from its stored start memory, resetting
  after every episode end; the loss then averages over all ``M · T`` steps.
  ``advantages`` are ``[M, T]``, ``targets`` ``[M, T, C]``.
  """
  x, action, done = (env_major(a) for a in (seq.data.obs, seq.data.action, seq.done))
  out, value = unroll(policy.network, params, seq.start, x, action, done)
  flat = lambda a: a.reshape((-1,) + a.shape[2:])
  return ppo_loss_from_outputs(
      policy, flat(env_major(out)), flat(env_major(value)), jax.tree.map(flat, seq.data),
      flat(advantages), flat(targets), hp, clip_value_loss=clip_value_loss,
      normalize_advantages=normalize_advantages)


def recurrent_policy(config: PPOConfig, env, env_params, num_channels: int, encoder):
  """``ppo.make_policy``'s categorical distribution with a ``RecurrentActorCritic``."""
  space = env.action_space(env_params)
  if not isinstance(space, spaces.Discrete):
    raise ValueError(f"network='gru' needs a discrete action space; {type(space).__name__} given")
  obs_ndim = len(env.observation_space(env_params).shape)
  policy = make_policy(config, space, num_channels, obs_ndim)
  return policy._replace(network=RecurrentActorCritic(
      num_actions=int(space.n), num_channels=num_channels, rnn_hidden=config.rnn_hidden,
      head_hidden=config.head_hidden, activation=config.activation,
      prev_action_embedding=config.prev_action_embedding, obs_ndim=obs_ndim, encoder=encoder))


# ------------------------------------------------------------------ make_train


def make_train(config: PPOConfig, env, env_params, rewards=None, callback=None,
               check_rewards: bool = True, mesh=None, encoder=None) -> trainer.Trainer:
  """``ppo.make_train`` for ``network="gru"``; ``encoder`` is the core's first layer.

  Same arguments and the same ``trainer.Trainer`` as ``ppo.make_train``
  (sweeps over ``SWEEPABLE`` and channel coefficients, ``mesh``, ``init`` /
  ``run``); ``RunnerState.memory`` holds the core's state per environment.
  """
  if config.network != "gru":
    raise ValueError(f"ppo_recurrent.make_train needs network='gru', got {config.network!r}")
  st = setup(config, env, env_params, rewards, check_rewards, mesh,
             lambda num_channels: recurrent_policy(config, env, env_params, num_channels, encoder))
  channels, policy, num_envs = st.channels, st.policy, st.num_envs
  network = policy.network
  num_actions = network.num_actions
  if num_envs % config.num_minibatches:
    raise ValueError(f"network='gru' minibatches split environments: each device's num_envs "
                     f"({num_envs}) must be divisible by num_minibatches "
                     f"({config.num_minibatches})")
  observe = lambda obs, moments: observe_with(config, obs, moments)

  # ------------------------------------------------------------------ collect
  def collect(runner: RunnerState):
    def step(carry, _):
      env_state, obs, memory, key = carry
      key, k_act, k_env = jax.random.split(key, 3)
      h, out, value = network.apply(runner.params, observe(obs, runner.obs_moments),
                                    memory.h, memory.prev_action)
      action, log_prob, env_action = policy.sample(k_act, out)
      obs2, env_state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
          jax.random.split(k_env, num_envs), env_state, env_action, env_params)
      tr = Transition(obs, action, reward.astype(jnp.float32), info["final_observation"],
                      term, trunc)
      # The hidden state is reset at every episode end, terminated or truncated.
      memory = advance(h, action, term | trunc, num_actions)
      return (env_state, obs2, memory, key), (tr, log_prob, value, h,
                                              info.get("episode_metrics"))

    (env_state, obs, memory, key), (tr, log_prob, value, h, episode_info) = jax.lax.scan(
        step, (runner.env_state, runner.obs, runner.memory, runner.key), None, config.num_steps)
    traj = Rollout(tr, log_prob, value, h, runner.memory, episode_info)
    return runner._replace(env_state=env_state, obs=obs, memory=memory, key=key), traj

  # --------------------------------------------------------- bootstrap values
  def bootstrap_values(runner: RunnerState, traj: Rollout):
    """``V(s_{t+1})`` along the rollout, and V(true next obs) of every step.

    The true next observation's value continues the episode's history: one core
    step from ``h_t`` before its reset, with ``a_t`` as the previous action,
    batched over all ``[T, N]`` after the rollout.
    """
    memory = runner.memory
    v_last = network.apply(runner.params, observe(runner.obs, runner.obs_moments),
                           memory.h, memory.prev_action)[2]
    v_next_seq = jnp.concatenate([traj.value[1:], v_last[None]], axis=0)
    tr = traj.transition
    v_next_true = network.apply(runner.params, observe(tr.next_obs, runner.obs_moments),
                                traj.hidden, tr.action)[2]
    return v_next_seq, v_next_true

  # ------------------------------------------------------------------- update
  def update(runner: RunnerState, hp):
    runner, traj = collect(runner)
    v_next_seq, v_next_true = bootstrap_values(runner, traj)
    tr = traj.transition
    key, k_reward, k_perm = jax.random.split(runner.key, 3)

    # ---------------------------------- rewards, per-channel GAE, advantages
    r, reward_state, reward_metrics, adv_c, targets = channel_advantages(
        st, runner.reward_state, traj, v_next_seq, v_next_true, hp, k_reward)
    advantages = jnp.sum(adv_c * trainer.channel_coefs(hp, channels), axis=-1)

    # ------------------------- epochs × minibatches of whole env sequences
    data = MinibatchData(observe(tr.obs, runner.obs_moments), tr.action, traj.log_prob,
                         traj.value)
    seq = Sequences(jax.tree.map(env_major, data), env_major(tr.terminated | tr.truncated),
                    traj.start)
    theta, unravel = ravel_pytree(runner.params)
    (theta, opt_state), losses = trainer.minibatch_epochs(
        lambda th, *b: sequence_loss(policy, unravel(th), *b, hp,
                                     clip_value_loss=config.clip_value_loss,
                                     normalize_advantages=config.normalize_advantages),
        make_optimizer(config, hp), theta,
        runner.opt_state, (seq, env_major(advantages), env_major(targets)), k_perm,
        config.update_epochs, config.num_minibatches)

    # ------------------------------------------------------------- metrics
    metrics = {k: v.mean() for k, v in losses.items()}
    episode_state, metrics = trainer.rollout_metrics(
        metrics, runner.episodes, tr, r, channels.names, reward_metrics, theta,
        traj.episode_info)
    obs_moments = runner.obs_moments
    if config.normalize_observations:
      obs_moments = stats.moments_update(obs_moments, tr.obs, axes=(0, 1))
    runner = runner._replace(params=unravel(theta), opt_state=opt_state,
                             reward_state=reward_state, obs_moments=obs_moments,
                             episodes=episode_state, key=key)
    return runner, metrics

  # --------------------------------------------------------- init, evaluation
  def init(key: jax.Array, hparams=None) -> RunnerState:
    hp = trainer.resolve_hparams(st.defaults, hparams)
    return start_runner(config, st, env, env_params, key, hp)._replace(
        memory=initial_memory(num_envs, config.rnn_hidden, num_actions))

  def policy_act(runner: RunnerState) -> evaluation.RecurrentAct:
    """The evaluated policy (mode, or a sample with ``eval_sampled``), one memory per env."""
    def step(key, obs, memory):
      h, out, _ = network.apply(runner.params, observe(obs, runner.obs_moments),
                                memory.h, memory.prev_action)
      action = policy.sample(key, out)[2] if config.eval_sampled else policy.mode(out)
      return action, Memory(h, action.astype(jnp.int32))
    return evaluation.RecurrentAct(
        lambda n: initial_memory(n, config.rnn_hidden, num_actions), step)

  return trainer.Trainer(init, make_body(config, st, update, policy_act, callback),
                         config.num_updates, TrainOutput, mesh=mesh, sweepable=tuple(st.defaults))

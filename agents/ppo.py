"""Proximal Policy Optimisation with multi-channel rewards (Schulman et al. 2017).

One readable file in the PureJaxRL mould: ``make_train(config, env, env_params,
rewards)`` returns a pure ``train(key)``; the whole run is one ``jax.lax.scan``
over updates and can be jitted and vmapped over seeds::

    train = make_train(PPOConfig(total_timesteps=500_000), *rjx.envs.make("CartPole-v1"))
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 4))

Reward channels (``rewardjax.rewards.combine``) each get a critic head, their own
γ and episodic flag and their own GAE; advantages are combined by channel
coefficients before the policy loss (Burda et al. 2018). Episodic channels
bootstrap from V(true next observation) on truncation and from 0 on
termination; bootstrapping never uses ``done``.

Per update: collect ``num_steps`` × ``num_envs`` transitions, compute each
channel's reward with the reward modules' current state, update the reward
modules on the same batch, then run ``update_epochs`` epochs of
``num_minibatches`` clipped-PPO minibatch steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from rewardjax import episodes, sharding, stats
from rewardjax.agents import common
from rewardjax.nets import ACTIVATIONS, ContinuousActorCritic, DiscreteActorCritic
from rewardjax.returns import multichannel_gae
from rewardjax.rewards.channels import as_channels
from rewardjax.types import Transition, reward_and_update


@dataclasses.dataclass(frozen=True)
class PPOConfig(common.RolloutSizes):
  """PPO hyperparameters; defaults follow PureJaxRL's CartPole settings."""
  total_timesteps: int = 500_000
  num_envs: int = 4
  num_steps: int = 128
  update_epochs: int = 4
  num_minibatches: int = 4
  gamma: float = 0.99            # default γ for channels that do not set one
  gae_lambda: float = 0.95
  clip_eps: float = 0.2
  ent_coef: float = 0.01
  vf_coef: float = 0.5
  max_grad_norm: float = 0.5
  lr: float = 2.5e-4
  anneal_lr: bool = True
  hidden_sizes: tuple[int, ...] = (64, 64)
  activation: str = "tanh"
  normalize_advantages: bool = True
  clip_value_loss: bool = True
  # Standardise observations by their running mean/std (initialised from a
  # random-action rollout, updated after every rollout, clipped to ±10). Needed
  # where features differ in scale by orders of magnitude (MountainCar's velocity).
  normalize_observations: bool = False
  # Divide each channel's reward by the running std of its discounted return
  # (baselines' VecNormalize, PureJaxRL's NormalizeVecReward;
  # common.normalize_rewards), as continuous-control PPO implementations do.
  normalize_rewards: bool = False
  # Continuous (Box) action spaces: a diagonal Gaussian with a state-independent
  # log-std starting at ``init_log_std``; actions reach the env clipped to the
  # box, or with ``squash_actions`` through tanh rescaled to the box.
  init_log_std: float = 0.0
  squash_actions: bool = False

  def __post_init__(self):
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
      common.check_positive(name, getattr(self, name), integer=True)
    common.check_unit_interval("gamma", self.gamma)
    common.check_unit_interval("gae_lambda", self.gae_lambda, closed_low=True)
    common.check_positive("lr", self.lr)
    common.check_positive("clip_eps", self.clip_eps)
    common.check_positive("max_grad_norm", self.max_grad_norm)
    common.check_positive("ent_coef", self.ent_coef, allow_zero=True)
    common.check_positive("vf_coef", self.vf_coef, allow_zero=True)
    if isinstance(self.init_log_std, bool) or not isinstance(self.init_log_std, (int, float)) \
        or not -20.0 <= self.init_log_std <= 5.0:
      raise ValueError(f"init_log_std must be a number in [-20, 5], got {self.init_log_std!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    common.check_rollout(self.num_envs, self.num_steps, self.num_minibatches,
                         self.total_timesteps)


class RunnerState(NamedTuple):
  params: Any
  opt_state: Any           # optax state over the flattened parameter vector
  reward_state: Any
  obs_moments: Any         # running observation statistics (normalize_observations)
  env_state: Any
  obs: jax.Array
  episodes: episodes.EpisodeState
  key: jax.Array


class TrainOutput(NamedTuple):
  """``runner_state``: the final state; ``metrics``: arrays with a leading ``[num_updates]`` axis."""
  runner_state: RunnerState
  metrics: dict


class MinibatchData(NamedTuple):
  obs: jax.Array
  action: jax.Array
  log_prob: jax.Array      # behaviour policy's log-probabilities
  value: jax.Array         # values at collection time, for value clipping


class Rollout(NamedTuple):
  transition: Transition
  log_prob: jax.Array          # [T, N]
  value: jax.Array             # [T, N, C]  V(obs_t)


# Hyperparameters ``train(key, hparams)`` accepts as (traceable) overrides, besides
# ``<channel>.coef``; ``gamma`` is the discount of channels that do not set their own.
SWEEPABLE = ("lr", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm", "gae_lambda", "gamma")


def make_train(config: PPOConfig, env, env_params, rewards=None,
               callback: Callable[[dict], None] | None = None,
               check_rewards: bool = True, mesh=None) -> common.Trainer:
  """Builds ``train(key, hparams=None) -> TrainOutput``; the action space picks the policy.

  A discrete space gets a categorical policy; a 1-D ``Box`` a diagonal Gaussian
  (``common.gaussian_policy``): the stored action is the unclipped sample, whose
  log-probability the PPO ratio uses, and the env receives it clipped (or
  tanh-squashed) into the box.

  Args:
    config: a ``PPOConfig``.
    env, env_params: a gymnax-1.0-style environment (``rewardjax.envs.make``).
    rewards: ``None`` (extrinsic reward only), a reward module, a channel, or
      ``rewardjax.rewards.combine(...)``.
    callback: optional host function called after every update with a dict of
      scalar metrics (``update``, ``env_steps``, ``episode_return``); under
      ``vmap`` it is called once per seed. This is the only host round trip.
    check_rewards: run the reward channels once on a small random rollout before
      compiling, so bad potentials or modules fail fast with a named error.
    mesh: optional ``jax.sharding.Mesh`` with one axis (``rewardjax.sharding.make_mesh``):
      environments are split over its devices, gradients and reward statistics
      reduced across them (``num_envs`` must be divisible by its size).

  ``train`` is a ``common.Trainer``: ``train(key, hparams)`` takes optional
  overrides of ``SWEEPABLE`` and ``<channel>.coef`` (scalars, traceable: vmap
  over them for sweeps); ``train.init`` / ``train.run`` run it in chunks.
  """
  if not isinstance(config, PPOConfig):
    raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
  space = env.action_space(env_params)
  discrete = hasattr(space, "n")
  if not discrete and not (hasattr(space, "low") and hasattr(space, "high")):
    raise ValueError(f"PPO needs a discrete or Box action space; {type(space).__name__} given")
  if not discrete:
    low, high = common.box_bounds(space)     # checked before any compile
  unresolved_gammas = as_channels(rewards).gammas
  channels = as_channels(rewards).resolve(config.gamma)
  if config.normalize_rewards:
    channels = common.normalize_rewards(channels)
  if check_rewards:
    common.check_rewards(channels, env, env_params)

  obs_shape = env.observation_space(env_params).shape
  if discrete:
    network = DiscreteActorCritic(
        num_actions=int(space.n), num_channels=channels.num_channels,
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
        obs_ndim=len(obs_shape))

    def sample_action(key, logits):     # -> (stored action, its log-prob, env action)
      action = jax.random.categorical(key, logits)
      return action, common.categorical_log_prob(logits, action), action

    log_prob_fn, entropy_fn = common.categorical_log_prob, common.categorical_entropy
  else:
    network = ContinuousActorCritic(
        action_dim=low.shape[0], num_channels=channels.num_channels,
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
        obs_ndim=len(obs_shape), init_log_std=float(config.init_log_std))
    gaussian = common.gaussian_policy(low, high, squash=config.squash_actions)

    def sample_action(key, out):
      u, log_prob = gaussian.sample(key, out)
      return u, log_prob, gaussian.to_env(u)

    log_prob_fn, entropy_fn = gaussian.log_prob, gaussian.entropy
  net_cls = type(network)
  num_updates = config.num_updates
  num_envs, batch_size, _ = common.per_device_batch(config, mesh)
  defaults = common.sweep_defaults(config, SWEEPABLE, channels)

  def make_tx(hp):
    lr = (common.update_decay(hp["lr"], config.num_minibatches * config.update_epochs,
                              num_updates) if config.anneal_lr else hp["lr"])
    return optax.chain(optax.clip_by_global_norm(hp["max_grad_norm"]), optax.adam(lr, eps=1e-5))

  def prep(obs, moments):
    if not config.normalize_observations:
      return obs
    return stats.normalize(moments, obs.astype(jnp.float32), clip=10.0)

  def loss_fn(params, batch: MinibatchData, advantages, targets, hp):
    logits, value = network.apply(params, batch.obs)
    log_prob = log_prob_fn(logits, batch.action)

    # Value loss: one clipped loss per channel head, summed over channels.
    if config.clip_value_loss:
      v_clipped = batch.value + jnp.clip(value - batch.value, -hp["clip_eps"], hp["clip_eps"])
      v_loss = 0.5 * jnp.maximum((value - targets)**2, (v_clipped - targets)**2)
    else:
      v_loss = 0.5 * (value - targets)**2
    v_loss = v_loss.mean(0).sum()

    # Policy loss on the coefficient-weighted sum of channel advantages.
    adv = advantages
    if config.normalize_advantages:
      adv = common.standardize(adv)       # over all devices' minibatches when sharded
    ratio = jnp.exp(log_prob - batch.log_prob)
    pg = -jnp.minimum(ratio * adv,
                      jnp.clip(ratio, 1 - hp["clip_eps"], 1 + hp["clip_eps"]) * adv).mean()
    entropy = entropy_fn(logits).mean()
    total = pg + hp["vf_coef"] * v_loss - hp["ent_coef"] * entropy
    # (approx. KL and clip fraction are left out: per minibatch they cost ~5 % of
    # CartPole throughput on CPU.)
    return total, {"policy_loss": pg, "value_loss": v_loss, "entropy": entropy}

  def collect(runner: RunnerState) -> tuple[RunnerState, Rollout]:
    # Bootstrapping a truncated step needs V(true final observation), which the
    # policy never sees: evaluated for all steps in one pass after the rollout
    # (cheaper on CPU than a second critic input inside every step).
    def step(carry, _):
      env_state, obs, key = carry
      key, k_act, k_env = jax.random.split(key, 3)
      x = prep(obs, runner.obs_moments)
      logits = network.apply(runner.params, x, method=net_cls.policy)
      value = network.apply(runner.params, x, method=net_cls.value)
      action, log_prob, env_action = sample_action(k_act, logits)
      obs2, env_state, reward, term, trunc, info = common.step_batch(
          env, env_params, k_env, env_state, env_action)
      final_obs = info["final_observation"]
      tr = Transition(obs, action, reward.astype(jnp.float32), final_obs, term, trunc)
      return (env_state, obs2, key), Rollout(tr, log_prob, value)

    (env_state, obs, key), traj = jax.lax.scan(
        step, (runner.env_state, runner.obs, runner.key), None, config.num_steps)
    # V(obs after the rollout), and V(true next obs) of every step in one batched
    # pass (it differs from the sequence's next value only where an episode ended).
    v_last = network.apply(runner.params, prep(obs, runner.obs_moments), method=net_cls.value)
    v_next_seq = jnp.concatenate([traj.value[1:], v_last[None]], axis=0)
    next_obs = traj.transition.next_obs
    flat_next = next_obs.reshape((-1,) + next_obs.shape[2:])
    v_next_true = network.apply(runner.params, prep(flat_next, runner.obs_moments),
                                method=net_cls.value).reshape(traj.value.shape)
    return runner._replace(env_state=env_state, obs=obs, key=key), traj, v_next_seq, v_next_true

  def update(runner: RunnerState, hp):
    runner, traj, v_next_seq, v_next_true = collect(runner)
    tr = traj.transition
    key, k_reward, k_perm = jax.random.split(runner.key, 3)

    # Rewards of every channel from the modules' current state, then their update.
    r, reward_state, reward_metrics = reward_and_update(   # r: [T, N, C]
        channels, runner.reward_state, tr, k_reward)

    gammas = tuple(hp["gamma"] if g is None else g for g in unresolved_gammas)
    adv_c, targets = multichannel_gae(
        r, traj.value, v_next_true, v_next_seq, tr.terminated, tr.truncated,
        gammas, channels.episodic, hp["gae_lambda"])
    coefs = jnp.asarray([hp[f"{n}.coef"] for n in channels.names], jnp.float32)
    advantages = jnp.sum(adv_c * coefs, axis=-1)                       # [T, N]

    # Only what the loss reads is shuffled into minibatches.
    # Observations as the policy saw them (normalised with this rollout's moments).
    train_data = (MinibatchData(prep(tr.obs, runner.obs_moments), tr.action, traj.log_prob,
                                traj.value), advantages, targets)
    flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), train_data)

    theta, unravel = ravel_pytree(runner.params)
    (theta, opt_state), losses = common.minibatch_epochs(
        lambda th, *b: loss_fn(unravel(th), *b, hp), make_tx(hp), theta, runner.opt_state,
        flat, k_perm, config.update_epochs, config.num_minibatches)

    params = unravel(theta)
    metrics = {k: v.mean() for k, v in losses.items()}
    episode_state, metrics = common.rollout_metrics(
        metrics, runner.episodes, tr, r, channels.names, reward_metrics, theta)
    obs_moments = runner.obs_moments
    if config.normalize_observations:
      obs_moments = stats.moments_update(obs_moments, tr.obs, axes=(0, 1))
    runner = runner._replace(params=params, opt_state=opt_state, reward_state=reward_state,
                             obs_moments=obs_moments, episodes=episode_state, key=key)
    return runner, metrics

  def init(key: jax.Array, hparams=None) -> RunnerState:
    hp = common.resolve_hparams(defaults, hparams)
    st = common.start(key, env, env_params, network, channels, config.num_steps, num_envs)
    with sharding.data_axis(None):   # replicated, as the reward state
      obs_moments = stats.moments_update(stats.moments_init(obs_shape),
                                         st.example.obs.astype(jnp.float32), axes=(0, 1))
    # The optimiser works on one flat parameter vector: on CPU each pytree leaf
    # costs Adam and global-norm clipping several small ops per minibatch.
    opt_state = make_tx(hp).init(ravel_pytree(st.params)[0])
    return RunnerState(st.params, opt_state, st.reward_state, obs_moments, st.env_state,
                       st.obs, episodes.init(num_envs), st.key)

  def body(runner, i, hparams=None):
    runner, metrics = update(runner, common.resolve_hparams(defaults, hparams))
    return runner, common.report(callback, metrics, i, config.batch_size)

  return common.Trainer(init, body, num_updates, TrainOutput, mesh=mesh,
                        sweepable=tuple(defaults))

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

from rewardjax import distributions, encoders, episodes, schedules, sharding, stats
from rewardjax.agents import evaluation, learned_coefs, trainer
from rewardjax.nets import ACTIVATIONS, ContinuousActorCritic, DiscreteActorCritic
from rewardjax.returns import multichannel_gae
from rewardjax.rewards.channels import as_channels, normalize_rewards
from rewardjax.types import Transition, reward_and_update


@dataclasses.dataclass(frozen=True)
class PPOConfig(trainer.RolloutSizes, evaluation.EvalConfig):
  """PPO hyperparameters; defaults follow PureJaxRL's CartPole settings.

  Evaluation fields (``eval_every`` …) are ``evaluation.EvalConfig``'s.
  """
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
  # rewards.channels.normalize_rewards), as continuous-control PPO implementations do.
  normalize_rewards: bool = False
  #: Continuous (Box) action spaces: a diagonal Gaussian with a state-independent
  #: log-std starting at ``init_log_std``; actions reach the env clipped to the
  #: box, or with ``squash_actions`` through tanh rescaled to the box.
  init_log_std: float = 0.0
  squash_actions: bool = False
  #: Channels whose coefficients are learned after every update by a one-step
  #: look-ahead meta-gradient of the primary channel's objective
  #: (agents/learned_coefs.py; Gupta et al. 2023): a helpful heuristic keeps its
  #: weight, a harmful one loses it. (): none learned.
  learn_coefs: tuple[str, ...] = ()
  primary_channel: str = "extrinsic"   # the objective learned coefficients serve
  meta_lr: float = 0.02                # Adam step size on the learned coefficients
  meta_inner_lr: float = 0.1           # α of the look-ahead step θ' = θ − α∇L
  meta_coef_bounds: tuple[float, float] = (-1.0, 2.0)
  meta_prior_decay: float = 0.0        # pull of learned coefficients back to their start
  # Evaluate the policy's mode (False) or samples from it (True).
  eval_sampled: bool = False
  # Anneal ent_coef over training (``rewardjax.schedules``: "exp:κ",
  # "linear:φ[:floor]", "step:φ[:floor]"); "": constant. Its κ or φ is the
  # sweepable ``ent_decay``.
  ent_schedule: str = ""
  #: Observation encoder before the actor and critic towers (``rewardjax.encoders``):
  #: "auto" (tile embeddings for integer [H, W, C] grids, a CNN for other
  #: [H, W, C] images, else none), "flat", "tiles" or "cnn".
  encoder: str = "auto"
  #: The actor-critic: "mlp" (feed-forward, ``hidden_sizes``) or "gru" (a GRU core
  #: shared by the actor and every channel's critic head; agents/ppo_recurrent.py).
  network: str = "mlp"
  rnn_hidden: int = 256                # GRU state size ("gru")
  head_hidden: int = 64                # hidden layer of the actor and critic heads ("gru")
  #: Size of an embedding of the previous action fed to the GRU with the
  #: observation's features; 0: none ("gru", discrete actions).
  prev_action_embedding: int = 0

  def __post_init__(self):
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
      trainer.check_positive(name, getattr(self, name), integer=True)
    trainer.check_unit_interval("gamma", self.gamma)
    trainer.check_unit_interval("gae_lambda", self.gae_lambda, closed_low=True)
    trainer.check_positive("lr", self.lr)
    trainer.check_positive("clip_eps", self.clip_eps)
    trainer.check_positive("max_grad_norm", self.max_grad_norm)
    trainer.check_positive("ent_coef", self.ent_coef, allow_zero=True)
    trainer.check_positive("vf_coef", self.vf_coef, allow_zero=True)
    if isinstance(self.init_log_std, bool) or not isinstance(self.init_log_std, (int, float)) \
        or not -20.0 <= self.init_log_std <= 5.0:
      raise ValueError(f"init_log_std must be a number in [-20, 5], got {self.init_log_std!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    trainer.check_rollout(self.num_envs, self.num_steps, self.num_minibatches,
                         self.total_timesteps)
    self.check_eval()
    if self.ent_schedule:
      schedules.parse(self.ent_schedule)
    encoders.check_name(self.encoder)
    self.check_network()

  def check_network(self) -> None:
    """Named errors for the ``network`` fields (recurrent minibatches split environments)."""
    if self.network not in ("mlp", "gru"):
      raise ValueError(f"network must be 'mlp' or 'gru', got {self.network!r}")
    trainer.check_positive("rnn_hidden", self.rnn_hidden, integer=True)
    trainer.check_positive("head_hidden", self.head_hidden, integer=True)
    trainer.check_positive("prev_action_embedding", self.prev_action_embedding, integer=True,
                           allow_zero=True)
    if self.network != "gru":
      return
    if self.num_envs % self.num_minibatches:
      raise ValueError(
          f"network='gru' minibatches split environments, not time: num_envs ({self.num_envs}) "
          f"must be divisible by num_minibatches ({self.num_minibatches})")
    if self.learn_coefs:
      raise ValueError("learn_coefs is not supported with network='gru'; use network='mlp'")


class RunnerState(NamedTuple):
  """Everything a PPO run carries from one update to the next (what checkpoints save)."""
  params: Any
  opt_state: Any           # optax state over the flattened parameter vector
  reward_state: Any
  obs_moments: Any         # running observation statistics (normalize_observations)
  env_state: Any
  obs: jax.Array
  episodes: episodes.EpisodeState
  key: jax.Array
  meta: Any = None         # learned coefficients (learned_coefs.MetaState); None when off
  evaluation: Any = None   # the last evaluation's metrics (``evaluation``); None when off
  memory: Any = None       # the recurrent core's state (``ppo_recurrent.Memory``); None for "mlp"


TrainOutput = trainer.TrainOutput


class Rollout(NamedTuple):
  """One rollout: transitions ``[T, N]`` with the behaviour policy's log-probabilities and values."""
  transition: Transition
  log_prob: jax.Array          # [T, N]   log π_old(a_t | s_t)
  value: jax.Array             # [T, N, C] V(s_t) per channel
  episode_info: Any = None     # the env's info["episode_metrics"], name -> [T, N] (None: none)


class MinibatchData(NamedTuple):
  """The per-sample inputs of PPO's loss that do not change across epochs."""
  obs: jax.Array           # observations as the policy saw them
  action: jax.Array
  log_prob: jax.Array      # behaviour policy's log-probabilities
  value: jax.Array         # values at collection time, for value clipping


class Policy(NamedTuple):
  """The actor-critic network and its action distribution, as pure functions."""
  network: Any
  sample: Callable         # (key, policy_out) -> (stored action, log-prob, env action)
  log_prob: Callable       # (policy_out, stored action) -> log-prob
  entropy: Callable        # policy_out -> entropy
  mode: Callable           # policy_out -> env action of highest density (greedy)


# Hyperparameters ``train(key, hparams)`` accepts as (traceable) overrides, besides
# ``<channel>.coef``, a scheduled channel's ``<channel>.decay`` and, with an
# ``ent_schedule``, ``ent_decay``; ``gamma`` is the discount of channels that do
# not set their own.
SWEEPABLE = ("lr", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm", "gae_lambda", "gamma")


def make_policy(config: PPOConfig, space, num_channels: int, obs_ndim: int,
                encoder=None) -> Policy:
  """A categorical policy for a discrete space; a diagonal Gaussian for a 1-D ``Box``.

  ``encoder``: an optional flax module mapping observations to features before
  the actor and critic towers (``encoders.network_encoder``).

  For a Gaussian the stored action is the unclipped sample ``u``, whose
  log-probability the PPO ratio uses; the env receives it clipped (or
  tanh-squashed) into the box (``distributions.gaussian_policy``).
  """
  sizes = dict(num_channels=num_channels, hidden_sizes=tuple(config.hidden_sizes),
                activation=config.activation, obs_ndim=obs_ndim, encoder=encoder)
  if hasattr(space, "n"):
    network = DiscreteActorCritic(num_actions=int(space.n), **sizes)

    def sample(key, logits):
      action = jax.random.categorical(key, logits)
      return action, distributions.categorical_log_prob(logits, action), action

    return Policy(network, sample, distributions.categorical_log_prob,
                  distributions.categorical_entropy, lambda logits: jnp.argmax(logits, -1))
  if not (hasattr(space, "low") and hasattr(space, "high")):
    raise ValueError(f"PPO needs a discrete or Box action space; {type(space).__name__} given")
  low, high = distributions.box_bounds(space)     # checked before any compile
  network = ContinuousActorCritic(action_dim=low.shape[0], init_log_std=float(config.init_log_std),
                                  **sizes)
  gaussian = distributions.gaussian_policy(low, high, squash=config.squash_actions)

  def sample(key, out):
    u, log_prob = gaussian.sample(key, out)
    return u, log_prob, gaussian.to_env(u)

  return Policy(network, sample, gaussian.log_prob, gaussian.entropy,
                lambda out: gaussian.to_env(out[0]))


def ppo_advantages(r, value, v_next_true, v_next_seq, terminated, truncated, gammas,
                   episodic, gae_lambda, coefs):
  """Each channel's GAE, combined by coefficient: ``A_t = Σ_c coef_c · A_t^c``.

  Channel ``c``'s advantages ``A^c`` and value targets ``A^c + V_c`` come from
  ``returns.multichannel_gae`` with its own γ and episodic flag (Burda et al.
  2018). Returns ``(advantages [T, N], value targets [T, N, C])``.
  """
  adv_c, targets = multichannel_gae(r, value, v_next_true, v_next_seq, terminated, truncated,
                                    gammas, episodic, gae_lambda)
  return jnp.sum(adv_c * coefs, axis=-1), targets


def ppo_loss(policy: Policy, params, batch: MinibatchData, advantages, targets, hp, *,
             clip_value_loss: bool, normalize_advantages: bool):
  """The clipped-PPO loss of one minibatch (Schulman et al. 2017), with its parts.

  ``L = L_pg + vf_coef · L_v − ent_coef · H`` where, with ``ρ = π(a|s) / π_old(a|s)``
  and ``Â`` the combined advantages (standardised over the minibatch if
  ``normalize_advantages``),

  * ``L_pg = −mean min(ρ·Â, clip(ρ, 1 − ε, 1 + ε)·Â)``;
  * ``L_v = Σ_c mean ½·max((V_c − G_c)², (V_c^clip − G_c)²)`` with
    ``V_c^clip = V_c^old + clip(V_c − V_c^old, −ε, ε)`` if ``clip_value_loss``,
    else ``Σ_c mean ½·(V_c − G_c)²``: one loss per channel head;
  * ``H`` the mean entropy of the policy.

  ``hp`` supplies ``clip_eps`` (ε), ``vf_coef`` and ``ent_coef``. Returns
  ``(L, {"policy_loss", "value_loss", "entropy"})``.
  """
  out, value = policy.network.apply(params, batch.obs)
  return ppo_loss_from_outputs(policy, out, value, batch, advantages, targets, hp,
                               clip_value_loss=clip_value_loss,
                               normalize_advantages=normalize_advantages)


def ppo_loss_from_outputs(policy: Policy, out, value, batch: MinibatchData, advantages, targets,
                          hp, *, clip_value_loss: bool, normalize_advantages: bool):
  """``ppo_loss`` given the network's outputs ``(out, value [B, C])`` on ``batch.obs``
  (a recurrent network computes them over whole sequences, agents/ppo_recurrent.py)."""
  log_prob = policy.log_prob(out, batch.action)

  # Value loss: one (clipped) loss per channel head, summed over channels.
  if clip_value_loss:
    v_clipped = batch.value + jnp.clip(value - batch.value, -hp["clip_eps"], hp["clip_eps"])
    v_loss = 0.5 * jnp.maximum((value - targets)**2, (v_clipped - targets)**2)
  else:
    v_loss = 0.5 * (value - targets)**2
  v_loss = v_loss.mean(0).sum()

  # Clipped surrogate on the coefficient-weighted sum of channel advantages.
  adv = advantages
  if normalize_advantages:
    adv = trainer.standardize(adv)       # over all devices' minibatches when sharded
  ratio = jnp.exp(log_prob - batch.log_prob)
  pg = -jnp.minimum(ratio * adv,
                    jnp.clip(ratio, 1 - hp["clip_eps"], 1 + hp["clip_eps"]) * adv).mean()
  entropy = policy.entropy(out).mean()
  total = pg + hp["vf_coef"] * v_loss - hp["ent_coef"] * entropy
  # (approx. KL and clip fraction are left out: per minibatch they cost ~5 % of
  # CartPole throughput on CPU.)
  return total, {"policy_loss": pg, "value_loss": v_loss, "entropy": entropy}


def make_optimizer(config: PPOConfig, hp):
  """Adam after global-norm clipping, its step size annealed once per update if ``anneal_lr``."""
  lr = hp["lr"]
  if config.anneal_lr:
    lr = trainer.linear_decay(lr, config.num_updates,
                              every=config.num_minibatches * config.update_epochs)
  return optax.chain(optax.clip_by_global_norm(hp["max_grad_norm"]), optax.adam(lr, eps=1e-5))


def observe_with(config: PPOConfig, obs, moments):
  """What the networks see: raw, or standardised by running moments, clipped to ±10."""
  if not config.normalize_observations:
    return obs
  return stats.normalize(moments, obs.astype(jnp.float32), clip=10.0)


class Setup(NamedTuple):
  """What ``make_train`` (feed-forward or recurrent) derives before tracing anything."""
  channels: Any            # resolved reward channels (normalised with ``normalize_rewards``)
  unresolved_gammas: tuple # each channel's own γ, or None where the agent's applies
  policy: Policy
  num_envs: int            # per device
  batch_size: int          # per device
  defaults: dict           # sweepable hyperparameters and their values
  coef_schedules: dict     # ``trainer.coef_schedules`` and the ``ent_schedule``
  evaluate: Callable | None
  episode_metric_names: tuple   # the env's ``info["episode_metrics"]`` names (may be empty)


def setup(config: PPOConfig, env, env_params, rewards, check_rewards: bool, mesh,
          policy_for: Callable[[int], Policy]) -> Setup:
  """Channels, the policy (``policy_for(num_channels)``), batch sizes, sweepable
  defaults, schedules and evaluation, with every named error before compiling."""
  unresolved_gammas = as_channels(rewards).gammas
  channels = as_channels(rewards).resolve(config.gamma)
  if config.normalize_rewards:
    channels = normalize_rewards(channels)
  policy = policy_for(channels.num_channels)
  if check_rewards:
    trainer.check_rewards(channels, env, env_params)
  num_envs, batch_size, _ = trainer.per_device_batch(config, mesh)
  defaults = trainer.sweep_defaults(config, SWEEPABLE, channels)
  coef_schedules = trainer.coef_schedules(channels)
  if config.ent_schedule:
    coef_schedules["ent_coef"] = (schedules.parse(config.ent_schedule), "ent_decay")
    defaults["ent_decay"] = coef_schedules["ent_coef"][0].param
  evaluate = evaluation.make_evaluate(config, env, env_params, mesh)
  return Setup(channels, unresolved_gammas, policy, num_envs, batch_size, defaults,
               coef_schedules, evaluate, trainer.episode_metric_names(env, env_params))


def channel_advantages(st: Setup, reward_state, traj, v_next_seq, v_next_true, hp, key):
  """Every channel's reward from the modules' current state, then their update, and
  each channel's GAE (``returns.multichannel_gae``) with its own γ and episodic flag.

  Returns ``(r [T, N, C], reward_state, reward_metrics, advantages [T, N, C],
  value targets [T, N, C])``.
  """
  tr = traj.transition
  r, reward_state, reward_metrics = reward_and_update(st.channels, reward_state, tr, key)
  adv_c, targets = multichannel_gae(
      r, traj.value, v_next_true, v_next_seq, tr.terminated, tr.truncated,
      trainer.channel_gammas(hp, st.unresolved_gammas), st.channels.episodic, hp["gae_lambda"])
  return r, reward_state, reward_metrics, adv_c, targets


def start_runner(config: PPOConfig, st: Setup, env, env_params, key, hp) -> RunnerState:
  """A run's first ``RunnerState`` (no learned coefficients, no recurrent memory)."""
  start = trainer.start(key, env, env_params, st.policy.network, st.channels, config.num_steps,
                        st.num_envs)
  obs_shape = env.observation_space(env_params).shape
  with sharding.data_axis(None):   # replicated, as the reward state
    obs_moments = stats.moments_update(stats.moments_init(obs_shape),
                                       start.example.obs.astype(jnp.float32), axes=(0, 1))
  opt_state = make_optimizer(config, hp).init(ravel_pytree(start.params)[0])
  return RunnerState(start.params, opt_state, start.reward_state, obs_moments, start.env_state,
                     start.obs, episodes.init(st.num_envs, st.episode_metric_names), start.key,
                     None,
                     None if st.evaluate is None else evaluation.init_metrics())


def make_body(config: PPOConfig, st: Setup, update: Callable, policy_act: Callable,
              callback) -> Callable:
  """``body(runner, i, hparams)``: update ``i`` with its scheduled hyperparameters,
  evaluation when due (``policy_act(runner)``) and the progress report."""
  def body(runner, i, hparams=None):
    hp, scheduled = trainer.scheduled(trainer.resolve_hparams(st.defaults, hparams),
                                      st.coef_schedules, i, config.num_updates)
    runner, metrics = update(runner, hp)
    metrics.update(scheduled)
    runner, metrics = evaluation.after_update(st.evaluate, config, config.num_updates, runner,
                                              i, metrics, policy_act)
    return runner, trainer.report(callback, metrics, i, config.batch_size)
  return body


def make_train(config: PPOConfig, env, env_params, rewards=None,
               callback: Callable[[dict], None] | None = None,
               check_rewards: bool = True, mesh=None) -> trainer.Trainer:
  """Builds ``train(key, hparams=None) -> TrainOutput``; the action space picks the policy.

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

  ``train`` is a ``trainer.Trainer``: ``train(key, hparams)`` takes optional
  overrides of ``SWEEPABLE`` and ``<channel>.coef`` (scalars, traceable: vmap
  over them for sweeps); ``train.init`` / ``train.run`` run it in chunks.
  ``config.network == "gru"`` builds recurrent PPO (``ppo_recurrent.make_train``).
  """
  if not isinstance(config, PPOConfig):
    raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
  obs_space = env.observation_space(env_params)
  encoder = encoders.network_encoder(config.encoder, obs_space, config.normalize_observations)
  if config.network == "gru":
    from rewardjax.agents import ppo_recurrent  # pylint: disable=g-import-not-at-top  (it imports this module)
    return ppo_recurrent.make_train(config, env, env_params, rewards, callback, check_rewards,
                                    mesh, encoder=encoder)
  st = setup(config, env, env_params, rewards, check_rewards, mesh, lambda num_channels: make_policy(
      config, env.action_space(env_params), num_channels, len(obs_space.shape), encoder))
  channels, policy = st.channels, st.policy
  num_envs, batch_size, defaults = st.num_envs, st.batch_size, st.defaults
  network, net_cls = policy.network, type(policy.network)
  coef_learner = learned_coefs.coef_learner(
      channels.names, tuple(config.learn_coefs), config.primary_channel, config.meta_lr,
      config.meta_inner_lr, tuple(config.meta_coef_bounds), config.meta_prior_decay)
  make_tx = lambda hp: make_optimizer(config, hp)
  observe = lambda obs, moments: observe_with(config, obs, moments)

  # ------------------------------------------------------------------ collect
  def collect(runner: RunnerState):
    def step(carry, _):
      env_state, obs, key = carry
      key, k_act, k_env = jax.random.split(key, 3)
      x = observe(obs, runner.obs_moments)
      out = network.apply(runner.params, x, method=net_cls.policy)
      value = network.apply(runner.params, x, method=net_cls.value)
      action, log_prob, env_action = policy.sample(k_act, out)
      obs2, env_state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
          jax.random.split(k_env, num_envs), env_state, env_action, env_params)
      # next_obs is the TRUE next observation, not the auto-reset one.
      tr = Transition(obs, action, reward.astype(jnp.float32), info["final_observation"],
                      term, trunc)
      return (env_state, obs2, key), Rollout(tr, log_prob, value, info.get("episode_metrics"))

    (env_state, obs, key), traj = jax.lax.scan(
        step, (runner.env_state, runner.obs, runner.key), None, config.num_steps)
    return runner._replace(env_state=env_state, obs=obs, key=key), traj

  # --------------------------------------------------------- bootstrap values
  def bootstrap_values(runner: RunnerState, traj: Rollout):
    """``V(s_{t+1})`` along the rollout, and V(true next obs) of every step.

    They differ only where an episode ended; a truncated step bootstraps from
    the true final observation, which the policy never sees, so its value is
    computed for all steps in one batched pass after the rollout (cheaper on
    CPU than a second critic call inside every step).
    """
    v_last = network.apply(runner.params, observe(runner.obs, runner.obs_moments),
                           method=net_cls.value)
    v_next_seq = jnp.concatenate([traj.value[1:], v_last[None]], axis=0)
    next_obs = traj.transition.next_obs
    flat_next = next_obs.reshape((-1,) + next_obs.shape[2:])
    v_next_true = network.apply(runner.params, observe(flat_next, runner.obs_moments),
                                method=net_cls.value).reshape(traj.value.shape)
    return v_next_seq, v_next_true

  # --------------------------------------------------------------------- loss
  def loss_fn(params, batch: MinibatchData, advantages, targets, hp):
    return ppo_loss(policy, params, batch, advantages, targets, hp,
                    clip_value_loss=config.clip_value_loss,
                    normalize_advantages=config.normalize_advantages)

  # ------------------------------------------------------------------- update
  def update(runner: RunnerState, hp):
    runner, traj = collect(runner)
    v_next_seq, v_next_true = bootstrap_values(runner, traj)
    tr = traj.transition
    key, k_reward, k_perm = jax.random.split(runner.key, 3)

    # ---------------------------------- rewards, per-channel GAE, advantages
    r, reward_state, reward_metrics, adv_c, targets = channel_advantages(
        st, runner.reward_state, traj, v_next_seq, v_next_true, hp, k_reward)
    # Combined by the channels' coefficients, or by the learned ones.
    coefs = trainer.channel_coefs(hp, channels) if runner.meta is None else runner.meta.coefs
    advantages = jnp.sum(adv_c * coefs, axis=-1)

    # ------------------------------------------------ epochs × minibatches
    # Only what the loss reads is shuffled into minibatches, observations as the
    # policy saw them (normalised with this rollout's moments).
    train_data = (MinibatchData(observe(tr.obs, runner.obs_moments), tr.action,
                                traj.log_prob, traj.value), advantages, targets)
    flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), train_data)
    # The optimiser works on one flat parameter vector: on CPU each pytree leaf
    # costs Adam and global-norm clipping several small ops per minibatch.
    theta, unravel = ravel_pytree(runner.params)
    (theta, opt_state), losses = trainer.minibatch_epochs(
        lambda th, *b: loss_fn(unravel(th), *b, hp), make_tx(hp), theta, runner.opt_state,
        flat, k_perm, config.update_epochs, config.num_minibatches)

    # ------------------------------------- learned coefficients (optional)
    metrics = {k: v.mean() for k, v in losses.items()}
    meta = runner.meta
    if meta is not None:
      log_prob_fn = lambda p: policy.log_prob(
          network.apply(p, flat[0].obs, method=net_cls.policy), flat[0].action)
      meta, meta_metrics = coef_learner.step(
          meta, unravel(theta), log_prob_fn, flat[0].log_prob,
          adv_c.reshape((batch_size, -1)))
      metrics.update(meta_metrics)

    # ------------------------------------------------------------- metrics
    episode_state, metrics = trainer.rollout_metrics(
        metrics, runner.episodes, tr, r, channels.names, reward_metrics, theta,
        traj.episode_info)
    obs_moments = runner.obs_moments
    if config.normalize_observations:
      obs_moments = stats.moments_update(obs_moments, tr.obs, axes=(0, 1))
    runner = runner._replace(params=unravel(theta), opt_state=opt_state,
                             reward_state=reward_state, obs_moments=obs_moments,
                             episodes=episode_state, key=key, meta=meta)
    return runner, metrics

  def init(key: jax.Array, hparams=None) -> RunnerState:
    hp = trainer.resolve_hparams(defaults, hparams)
    meta = (None if coef_learner is None
            else coef_learner.init(trainer.channel_coefs(hp, channels)))
    return start_runner(config, st, env, env_params, key, hp)._replace(meta=meta)

  def policy_act(runner: RunnerState):
    """The policy evaluation runs: the mode of π(·|s), or a sample with ``eval_sampled``."""
    def act(key, obs):
      out = network.apply(runner.params, observe(obs, runner.obs_moments), method=net_cls.policy)
      return policy.sample(key, out)[2] if config.eval_sampled else policy.mode(out)
    return act

  return trainer.Trainer(init, make_body(config, st, update, policy_act, callback),
                         config.num_updates, TrainOutput, mesh=mesh, sweepable=tuple(defaults))

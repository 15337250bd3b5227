"""Pieces every agent shares: env batching, example rollouts, reward checks, metrics."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from rewardjax import episodes, sharding
from rewardjax.rewards.channels import Channels
from rewardjax.shuffle import shuffle_order
from rewardjax.types import Transition, reward_and_update


def reset_batch(env, env_params, key, num_envs: int):
  keys = jax.random.split(key, num_envs)
  return jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)


def step_batch(env, env_params, key, env_state, action):
  keys = jax.random.split(key, action.shape[0])
  return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, env_state, action, env_params)


def sample_actions(env, env_params, key, num_envs: int):
  space = env.action_space(env_params)
  keys = jax.random.split(key, num_envs)
  return jax.vmap(space.sample)(keys)


def random_rollout(env, env_params, key, num_steps: int, num_envs: int) -> Transition:
  """A ``[num_steps, num_envs]`` rollout of uniformly random actions.

  Agents pass such a rollout to ``rewards.init`` as its example batch, so
  reward modules can initialise statistics (e.g. RND's observation moments)
  from real observations, explicitly and purely.
  """
  k_reset, k_roll = jax.random.split(key)
  obs, state = reset_batch(env, env_params, k_reset, num_envs)

  def step(carry, key):
    obs, state = carry
    k_a, k_s = jax.random.split(key)
    action = sample_actions(env, env_params, k_a, num_envs)
    obs2, state, reward, term, trunc, info = step_batch(env, env_params, k_s, state, action)
    tr = Transition(obs, action, reward.astype(jnp.float32), info["final_observation"],
                    term, trunc)
    return (obs2, state), tr

  _, traj = jax.lax.scan(step, (obs, state), jax.random.split(k_roll, num_steps))
  return traj


class Start(NamedTuple):
  """What every agent's ``init`` draws first (``start``)."""
  params: Any                # the network's initial parameters
  obs: jax.Array             # [num_envs, ...] first observations
  env_state: Any
  example: Transition        # [num_steps, num_envs] random-action rollout
  reward_state: Any          # the channels' initial state (from ``example``)
  key: jax.Array             # the run's key (per device when sharded)


def start(key, env, env_params, network, channels: Channels, num_steps: int,
          num_envs: int) -> Start:
  """Resets the environments, initialises the network and the reward channels.

  Sharded (under ``sharding.data_axis``), each device resets its own
  environments and gets its own run key, while the example rollout (and so the
  reward modules' initial state) is the same on every device: replicated state
  starts replicated. Agents that need more from the example (PPO's observation
  moments) compute it under ``sharding.data_axis(None)`` too.
  """
  k_net, k_env, k_example, k_reward, k_run = jax.random.split(key, 5)
  obs, env_state = reset_batch(env, env_params, sharding.device_key(k_env), num_envs)
  params = network.init(k_net, obs)
  with sharding.data_axis(None):
    example = random_rollout(env, env_params, k_example, num_steps, num_envs)
    reward_state = channels.init(k_reward, example)
  return Start(params, obs, env_state, example, reward_state, sharding.device_key(k_run))


def flat_unravel(network, obs_shape) -> Callable:
  """``unravel(theta)``: the network's parameter pytree from one flat vector.

  Agents keep parameters as one flat vector for the optimiser: on CPU each
  pytree leaf costs Adam and global-norm clipping several small ops per step.
  Only shapes are traced here; no network is run.
  """
  shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0),
                          jnp.zeros((1,) + tuple(obs_shape), jnp.float32))
  _, unravel = jax.flatten_util.ravel_pytree(
      jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes))
  return unravel


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
  """log π(a|s) of a categorical policy given its logits ``[..., A]``."""
  # A one-hot product rather than a gather: its gradient is elementwise, where a
  # gather's is a scatter (several times slower inside CPU minibatch loops).
  log_p = jax.nn.log_softmax(logits)
  return jnp.sum(jax.nn.one_hot(action, logits.shape[-1], dtype=log_p.dtype) * log_p, axis=-1)


def categorical_entropy(logits: jax.Array) -> jax.Array:
  """Entropy of a categorical policy given its logits ``[..., A]``."""
  log_p = jax.nn.log_softmax(logits)
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def check_rewards(rewards: Channels, env, env_params, key=None, num_steps: int = 8,
                  num_envs: int = 2) -> None:
  """Runs the reward channels once on a real random rollout, before any long compile.

  Raises a ``ValueError`` naming the channel whose reward has the wrong shape or
  is not finite (e.g. a potential function returning NaN).
  """
  key = jax.random.PRNGKey(0) if key is None else key
  k_roll, k_init = jax.random.split(key)
  example = jax.jit(random_rollout, static_argnums=(0, 3, 4))(
      env, env_params, k_roll, num_steps, num_envs)

  @jax.jit
  def run(k, ex):
    state = rewards.init(k, ex)
    return rewards.reward(state, ex)

  r = np.asarray(run(k_init, example))
  expected = (num_steps, num_envs, rewards.num_channels)
  if r.shape != expected:
    raise ValueError(f"rewards returned shape {r.shape}, expected {expected}")
  for c, name in enumerate(rewards.names):
    bad = ~np.isfinite(r[..., c])
    if bad.any():
      raise ValueError(
          f"reward channel {name!r} produced non-finite values ({int(bad.sum())} of "
          f"{bad.size}) on a random rollout of the environment; check its potential / "
          "progress function and hyperparameters")


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False):
  ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float))
  if isinstance(value, bool) or not ok:
    kind = "an integer" if integer else "a number"
    raise ValueError(f"{name} must be {kind}, got {value!r}")
  if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_unit_interval(name: str, value, closed_low: bool = False):
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{name} must be a number, got {value!r}")
  low_ok = value >= 0 if closed_low else value > 0
  if not (low_ok and value <= 1):
    interval = "[0, 1]" if closed_low else "(0, 1]"
    raise ValueError(f"{name} must be in {interval}, got {value!r}")


class RolloutSizes:
  """Mixin for agent configs with ``num_envs``, ``num_steps`` and ``total_timesteps``."""

  @property
  def batch_size(self) -> int:
    """Env steps per update (all environments)."""
    return self.num_envs * self.num_steps

  @property
  def num_updates(self) -> int:
    return self.total_timesteps // self.batch_size


def check_rollout(num_envs: int, num_steps: int, num_minibatches: int,
                  total_timesteps: int) -> None:
  """On-policy batch checks shared by PPO and PQN configs (clear errors before compiling)."""
  batch_size = num_envs * num_steps
  if batch_size % num_minibatches:
    raise ValueError(
        f"num_envs * num_steps ({num_envs} * {num_steps} = {batch_size}) "
        f"must be divisible by num_minibatches ({num_minibatches})")
  if total_timesteps < batch_size:
    raise ValueError(
        f"total_timesteps ({total_timesteps}) is smaller than one rollout "
        f"(num_envs * num_steps = {batch_size})")


def progress_callback(callback: Callable[[dict], None] | None, metrics: dict) -> None:
  """Calls ``callback(metrics)`` on the host (once per vmapped seed) if given."""
  if callback is None:
    return
  call = lambda: jax.debug.callback(lambda m: callback(jax.tree.map(np.asarray, m)), metrics)
  axis = sharding.current_axis()
  if axis is None:
    call()
  else:                    # sharded: metrics are replicated; report once, from device 0
    jax.lax.cond(jax.lax.axis_index(axis) == 0, call, lambda: None)


def rollout_metrics(metrics: dict, episode_state, tr: Transition, r: jax.Array,
                    channel_names, reward_metrics: dict, theta: jax.Array):
  """Completes an update's ``metrics`` (losses etc.) with what every agent reports.

  Adds the episode statistics of the rollout ``tr`` (``rewardjax.episodes``),
  ``reward/<channel>`` means of ``r`` ``[T, N, C]``, the reward modules'
  ``rewards/<metric>``, and ``nonfinite`` (parameters ``theta`` or rewards);
  reduces over devices when sharded. Returns ``(episode_state, metrics)``.
  """
  episode_state, episode_metrics = episodes.track(
      episode_state, tr.reward, jnp.logical_or(tr.terminated, tr.truncated))
  metrics = dict(metrics, **episode_metrics)
  for c, name in enumerate(channel_names):
    metrics[f"reward/{name}"] = r[..., c].mean()
  metrics.update({f"rewards/{k}": v for k, v in reward_metrics.items()})
  metrics["nonfinite"] = ~(jnp.all(jnp.isfinite(theta)) & jnp.all(jnp.isfinite(r)))
  return episode_state, reduce_metrics(metrics, skip=episodes.METRIC_KEYS)


def report(callback: Callable[[dict], None] | None, metrics: dict, i,
           batch_size: int) -> dict:
  """Adds ``update`` and ``env_steps`` after update ``i`` and calls the progress callback."""
  metrics["update"] = i + 1
  metrics["env_steps"] = (i + 1) * batch_size
  progress_callback(callback, {k: metrics[k] for k in ("update", "env_steps", "episode_return")})
  return metrics


def update_decay(lr, steps_per_update: int, num_updates: int):
  """``lr`` decayed linearly to 0 over ``num_updates``, constant within an update.

  ``count`` is the optimiser step; there are ``steps_per_update`` of them per
  update (epochs × minibatches), as in PureJaxRL's annealing.
  """
  def schedule(count):
    return lr * (1.0 - (count // steps_per_update) / num_updates)
  return schedule


def minibatch_epochs(loss_fn: Callable, tx, theta: jax.Array, opt_state, data, key: jax.Array,
                     num_epochs: int, num_minibatches: int):
  """``num_epochs`` passes of minibatch SGD over ``data`` (a pytree of ``[B, ...]``).

  Each epoch shuffles the batch (``shuffle_order``) and splits it into
  ``num_minibatches``; ``loss_fn(theta, *minibatch) -> (loss, metrics)`` is
  differentiated with respect to the flat parameter vector ``theta``, gradients
  are averaged across devices when sharded. Returns ``((theta, opt_state),
  metrics [num_epochs, num_minibatches])``.
  """
  batch_size = jax.tree.leaves(data)[0].shape[0]
  minibatch_size = batch_size // num_minibatches

  def epoch(carry, key):
    perm = shuffle_order(key, batch_size)
    shuffled = jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(
            (num_minibatches, minibatch_size) + x.shape[1:]), data)

    def minibatch(carry, mb):
      theta, opt_state = carry
      grads, m = jax.grad(loss_fn, has_aux=True)(theta, *mb)
      grads = sharding.pmean(grads)        # data-parallel: the global minibatch's gradient
      updates, opt_state = tx.update(grads, opt_state, theta)
      return (optax.apply_updates(theta, updates), opt_state), m

    return jax.lax.scan(minibatch, carry, shuffled)

  return jax.lax.scan(epoch, (theta, opt_state), jax.random.split(key, num_epochs))


# --------------------------------------------------------------------------- scale


def standardize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """``(x − mean) / (std + eps)`` over all of ``x`` — across devices when sharded."""
  if sharding.current_axis() is None:
    return (x - x.mean()) / (x.std() + eps)
  mean = sharding.pmean(x.mean())
  var = sharding.pmean(jnp.mean(jnp.square(x - mean)))
  return (x - mean) / (jnp.sqrt(var) + eps)


def reduce_metrics(metrics: dict, skip=()) -> dict:
  """Averages per-device metrics over the data axis (a no-op on one device).

  ``skip`` names metrics already reduced (``episodes.METRIC_KEYS``). ``nonfinite``
  is true if it is on any device.
  """
  if sharding.current_axis() is None:
    return metrics
  out = {}
  for k, v in metrics.items():
    if k in skip:
      out[k] = v
    elif jnp.asarray(v).dtype == jnp.bool_:
      out[k] = sharding.pmax(jnp.asarray(v, jnp.int32)) > 0
    else:
      out[k] = sharding.pmean(v)
  return out


def resolve_hparams(defaults: Mapping[str, Any], hparams: Mapping[str, Any] | None) -> dict:
  """``defaults`` with ``hparams`` overrides (which may be traced arrays).

  Raises a ``ValueError`` naming unknown hyperparameters and the sweepable ones.
  """
  hp = dict(defaults)
  if hparams:
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
      raise ValueError(
          f"unknown hyperparameter(s) {unknown} for a traced sweep; sweepable: "
          f"{', '.join(sorted(defaults))}")
    for k, v in hparams.items():
      v = jnp.asarray(v, jnp.float32)
      if v.ndim:
        raise ValueError(
            f"hyperparameter {k!r} must be a scalar inside train (vmap over settings), "
            f"got shape {v.shape}")
      hp[k] = v
  return hp


def per_device_batch(config, mesh) -> tuple[int, int, int]:
  """``(num_envs, batch_size, minibatch_size)`` per device for an on-policy config
  (all of them without a mesh); a named error if they do not split evenly."""
  num_devices = sharding.mesh_size(mesh)
  num_envs = config.num_envs // num_devices
  batch_size = num_envs * config.num_steps
  if num_envs * num_devices != config.num_envs or batch_size % config.num_minibatches:
    raise ValueError(
        f"num_envs ({config.num_envs}) must split evenly over {num_devices} devices, and each "
        f"device's batch (num_envs / devices * num_steps) be divisible by num_minibatches "
        f"({config.num_minibatches})")
  return num_envs, batch_size, batch_size // config.num_minibatches


def sweep_defaults(config, sweepable, channels) -> dict:
  """The values ``train(key, hparams)`` overrides: the config's sweepable fields and
  every channel's ``<name>.coef``."""
  defaults = {k: getattr(config, k) for k in sweepable}
  defaults.update({f"{n}.coef": c for n, c in zip(channels.names, channels.coefs)})
  return defaults


class Trainer:
  """``train(key, hparams=None) -> output``, plus the pieces to run it in chunks.

  Built by an agent's ``make_train`` from two per-device functions:
  ``init(key, hparams) -> RunnerState`` and
  ``update(runner, i, hparams) -> (runner, metrics)`` (update ``i``, 0-based).

  * ``train(key)`` is one ``lax.scan`` over all updates (PureJaxRL's loop);
  * ``train.init(key)`` and ``train.run(runner, start, num_updates)`` split it
    so a caller can checkpoint between chunks; both are pure, jit- and
    vmap-able, and ``run`` takes ``start`` as an array so every chunk of
    the same length reuses one compilation;
  * ``hparams`` (a dict of scalars, possibly traced) overrides the agent's
    sweepable hyperparameters, so ``vmap`` over settings trains a grid in one
    compiled call;
  * with a ``mesh`` the functions run under ``shard_map`` (``rewardjax.sharding``):
    runner states then carry a leading ``[num_devices]`` axis and metrics are
    reduced across devices.
  """

  def __init__(self, init: Callable, update: Callable, num_updates: int,
               make_output: Callable, mesh=None, sweepable: tuple[str, ...] = ()):
    self._init, self._update = init, update
    self.num_updates = int(num_updates)
    self.make_output = make_output
    self.mesh = mesh
    self.sweepable = tuple(sweepable)

  def _scan(self, runner, start, num, hparams):
    steps = jnp.arange(num) if isinstance(start, int) and start == 0 else start + jnp.arange(num)
    return jax.lax.scan(lambda r, i: self._update(r, i, hparams), runner, steps)

  def _train_local(self, key, hparams):
    return self._scan(self._init(key, hparams), 0, self.num_updates, hparams)

  def __call__(self, key: jax.Array, hparams: Mapping[str, Any] | None = None):
    if self.mesh is None:
      runner, metrics = self._train_local(key, hparams)
    else:
      runner, metrics = sharding.shard(self._train_local, self.mesh, (False, False))(key, hparams)
    return self.make_output(runner, metrics)

  def init(self, key: jax.Array, hparams: Mapping[str, Any] | None = None):
    if self.mesh is None:
      return self._init(key, hparams)
    fn = lambda k, h: (self._init(k, h), ())
    return sharding.shard(fn, self.mesh, (False, False))(key, hparams)[0]

  def run(self, runner, start, num_updates: int, hparams: Mapping[str, Any] | None = None):
    """Updates ``start … start + num_updates − 1``: ``(runner, metrics [num_updates])``."""
    start = jnp.asarray(start, jnp.int32)
    fn = lambda r, s, h: self._scan(r, s, int(num_updates), h)
    if self.mesh is None:
      return fn(runner, start, hparams)
    return sharding.shard(fn, self.mesh, (True, False, False))(runner, start, hparams)


# ----------------------------------------------------------------- continuous actions


class GaussianPolicy(NamedTuple):
  """A diagonal-Gaussian policy head over a bounded box, as pure functions.

  The policy's raw output is ``(mean, log_std)`` and its sample ``u`` is what
  agents store as the action: log-probabilities and the PPO ratio are always of
  ``u``. ``to_env(u)`` is what the environment receives: ``u`` clipped to the
  box (PureJaxRL / CleanRL), or with ``squash``, ``low + (tanh(u) + 1)·(high −
  low)/2`` (Haarnoja et al. 2018; brax's PPO). For squashed actions ``log_prob``
  includes the change of variables, ``−Σ log|da/du|``; it does not depend on the
  policy's parameters, so it cancels in the PPO ratio. ``entropy`` is the
  Gaussian's (the squashed density has no closed form; brax does the same up to
  a sampled correction).
  """
  sample: Callable        # (key, (mean, log_std)) -> (u, log_prob)
  log_prob: Callable      # ((mean, log_std), u) -> log_prob
  entropy: Callable       # (mean, log_std) -> entropy
  to_env: Callable        # u -> action passed to env.step


def gaussian_policy(low, high, squash: bool = False) -> GaussianPolicy:
  """A ``GaussianPolicy`` for actions in the box ``[low, high]`` (arrays ``[A]``)."""
  import distrax  # pylint: disable=g-import-not-at-top  (only continuous agents need it)
  low = jnp.asarray(low, jnp.float32)
  high = jnp.asarray(high, jnp.float32)
  if squash and not (np.all(np.isfinite(np.asarray(low))) and np.all(np.isfinite(np.asarray(high)))):
    raise ValueError("tanh squashing needs a bounded action space; this one has infinite bounds")
  half = (high - low) / 2.0
  tanh = distrax.Block(distrax.Tanh(), 1)
  log_half = jnp.sum(jnp.log(half)) if squash else 0.0

  def dist(out):
    mean, log_std = out
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))

  def correction(u):
    return tanh.forward_log_det_jacobian(u) + log_half

  def sample(key, out):
    u, log_prob = dist(out).sample_and_log_prob(seed=key)
    return u, (log_prob - correction(u) if squash else log_prob)

  def log_prob(out, u):
    lp = dist(out).log_prob(u)
    return lp - correction(u) if squash else lp

  def entropy(out):
    return dist(out).entropy()

  def to_env(u):
    if squash:
      return low + (jnp.tanh(u) + 1.0) * half
    return jnp.clip(u, low, high)

  return GaussianPolicy(sample, log_prob, entropy, to_env)


def box_bounds(space) -> tuple[np.ndarray, np.ndarray]:
  """``(low, high)`` of a 1-D ``Box`` action space as float32 arrays ``[A]``."""
  shape = tuple(space.shape)
  if len(shape) != 1:
    raise ValueError(f"continuous actions must be a 1-D Box; got shape {shape}")
  low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
  high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
  if not np.all(low < high):
    raise ValueError(f"action space bounds must satisfy low < high, got {low} and {high}")
  return low, high


class ReturnNormState(NamedTuple):
  channels: Any                   # the wrapped channels' state
  ret: jax.Array                  # [N, C] running discounted return per env and channel
  moments: Any                    # stats.RunningMoments of shape [C]


def normalize_rewards(channels: Channels) -> Channels:
  """Divides each channel's reward by the running std of its discounted return.

  The reward normalisation of PPO implementations (baselines' ``VecNormalize``,
  PureJaxRL's ``NormalizeVecReward``): per environment and channel
  ``G_t = γ_c·G_{t−1}·(1 − done_{t−1}) + r_t`` (``stats.discounted_return_filter``;
  non-episodic channels never reset), and ``r_t / std(G)`` is returned, with the
  statistics of the batches seen before (as ``normalize_by_return_std``). The
  mean is not subtracted, so signs are kept. ``channels`` must be resolved
  (every γ set).
  """
  from rewardjax import stats  # pylint: disable=g-import-not-at-top
  if any(g is None for g in channels.gammas):
    raise ValueError("normalize_rewards: resolve the channels' gammas first")
  gammas = jnp.asarray(channels.gammas, jnp.float32)
  episodic = jnp.asarray(channels.episodic)
  c = channels.num_channels

  def init_fn(key, example: Transition):
    inner = channels.init(key, example)
    ret = jnp.zeros(example.reward.shape[1:] + (c,), jnp.float32)
    return ReturnNormState(inner, ret, stats.moments_init((c,)))

  def reward_fn(state, batch):
    return channels.reward(state.channels, batch) / stats.moments_std(state.moments)

  def reward_and_update_fn(state, batch, key):
    r, inner, metrics = reward_and_update(channels, state.channels, batch, key)  # raw
    done = jnp.logical_or(batch.terminated, batch.truncated)[..., None] & episodic
    ret, rets = stats.discounted_return_filter(state.ret, r, gammas, done)
    moments = stats.moments_update(state.moments, rets, axes=tuple(range(rets.ndim - 1)))
    return (r / stats.moments_std(state.moments), ReturnNormState(inner, ret, moments),
            metrics)

  def update_fn(state, batch, key):
    return reward_and_update_fn(state, batch, key)[1:]

  return channels._replace(init=init_fn, reward=reward_fn, update=update_fn,
                           reward_and_update=reward_and_update_fn)

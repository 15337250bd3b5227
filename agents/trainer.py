"""What every agent shares and is not its algorithm.

An agent file (``ppo.py``, ``dqn.py``, ``pqn.py``) holds its own update; this
module holds the machinery around it, in this order:

* configs: checks with named errors, before any compile;
* setup: the first reset, network and reward-state init, reward checks;
* optimisation: the learning-rate schedule, one SGD step on a flat parameter
  vector, and the epochs × minibatches loop;
* metrics: episode statistics, channel means, device reduction, progress;
* hyperparameters: traced overrides for sweeps, per-device batch sizes;
* ``Trainer``: the ``lax.scan`` over updates, run whole or in chunks, on one
  device or under ``shard_map``; ``TrainOutput``, what ``train`` returns;
* divergence: host-side warnings read from the returned metrics (numpy only).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from rewardjax import episodes, schedules, sharding
from rewardjax.envs.rollouts import random_rollout, reset_batch
from rewardjax.rewards.channels import Channels
from rewardjax.shuffle import shuffle_order
from rewardjax.types import Transition


# -------------------------------------------------------------------- configs


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False):
  """Raises a ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (or ≥ 0)."""
  ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float))
  if isinstance(value, bool) or not ok:
    kind = "an integer" if integer else "a number"
    raise ValueError(f"{name} must be {kind}, got {value!r}")
  if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_unit_interval(name: str, value, closed_low: bool = False):
  """Raises a ``ValueError`` naming ``name`` unless ``value`` lies in (0, 1] (or [0, 1])."""
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


# ---------------------------------------------------------------------- setup


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


# --------------------------------------------------------------- optimisation


def linear_decay(lr, num_decays: int, every: int = 1):
  """The learning-rate schedule of every agent: ``lr`` decayed linearly to 0.

  ``schedule(count) = lr · (1 − ⌊count / every⌋ / num_decays)``, where ``count``
  is the optimiser step. PPO and PQN decay once per update (``every`` = epochs ×
  minibatches, as PureJaxRL anneals); DQN once per gradient step (``every=1``).
  """
  def schedule(count):
    return lr * (1.0 - (jnp.clip(count // every, 0, num_decays)) / num_decays)
  return schedule


def sgd_step(loss_fn: Callable, tx, theta: jax.Array, opt_state, *batch):
  """One optimiser step on ``loss_fn(theta, *batch) -> (loss, metrics)``.

  Gradients are averaged across devices when sharded (data parallelism: the
  step then follows the global minibatch's gradient). Returns
  ``((theta, opt_state), metrics)``.
  """
  grads, metrics = jax.grad(loss_fn, has_aux=True)(theta, *batch)
  grads = sharding.pmean(grads)
  updates, opt_state = tx.update(grads, opt_state, theta)
  return (optax.apply_updates(theta, updates), opt_state), metrics


def minibatch_epochs(loss_fn: Callable, tx, theta: jax.Array, opt_state, data, key: jax.Array,
                     num_epochs: int, num_minibatches: int):
  """``num_epochs`` passes of minibatch SGD over ``data`` (a pytree of ``[B, ...]``).

  Each epoch shuffles the batch (``shuffle_order``) and splits it into
  ``num_minibatches``; ``loss_fn(theta, *minibatch) -> (loss, metrics)`` is
  differentiated with respect to the flat parameter vector ``theta``, gradients
  are averaged across devices when sharded (``sgd_step``). Returns ``((theta, opt_state),
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
      return sgd_step(loss_fn, tx, *carry, *mb)

    return jax.lax.scan(minibatch, carry, shuffled)

  return jax.lax.scan(epoch, (theta, opt_state), jax.random.split(key, num_epochs))


def standardize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """``(x − mean) / (std + eps)`` over all of ``x`` — across devices when sharded."""
  if sharding.current_axis() is None:
    return (x - x.mean()) / (x.std() + eps)
  mean = sharding.pmean(x.mean())
  var = sharding.pmean(jnp.mean(jnp.square(x - mean)))
  return (x - mean) / (jnp.sqrt(var) + eps)


# -------------------------------------------------------------------- metrics


def rollout_metrics(metrics: dict, episode_state, tr: Transition, r: jax.Array,
                    channel_names, reward_metrics: dict, theta: jax.Array,
                    episode_info: dict | None = None):
  """Completes an update's ``metrics`` (losses etc.) with what every agent reports.

  Adds the episode statistics of the rollout ``tr`` (``rewardjax.episodes``),
  with the environment's episode metrics ``episode_info`` (name -> ``[T, N]``,
  the stacked ``info["episode_metrics"]``; ``None`` when the environment has
  none), ``reward/<channel>`` means of ``r`` ``[T, N, C]``, the reward modules'
  ``rewards/<metric>``, and ``nonfinite`` (parameters ``theta`` or rewards);
  reduces over devices when sharded. Returns ``(episode_state, metrics)``.
  """
  episode_state, episode_metrics = episodes.track(
      episode_state, tr.reward, jnp.logical_or(tr.terminated, tr.truncated), episode_info)
  metrics = dict(metrics, **episode_metrics)
  for c, name in enumerate(channel_names):
    metrics[f"reward/{name}"] = r[..., c].mean()
  metrics.update({f"rewards/{k}": v for k, v in reward_metrics.items()})
  metrics["nonfinite"] = ~(jnp.all(jnp.isfinite(theta)) & jnp.all(jnp.isfinite(r)))
  return episode_state, reduce_metrics(metrics, skip=tuple(episode_metrics))


def episode_metric_names(env, env_params) -> tuple[str, ...]:
  """The names of the environment's ``info["episode_metrics"]`` (``()`` if it has none).

  Read from the shapes of one traced ``reset`` and ``step`` (nothing runs).
  """
  def one_step(key):
    _, state = env.reset(key, env_params)
    action = env.action_space(env_params).sample(key)
    return env.step(key, state, action, env_params)[5]

  info = jax.eval_shape(one_step, jax.random.PRNGKey(0))
  return tuple(sorted(info.get("episode_metrics", {}))) if isinstance(info, dict) else ()


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


def report(callback: Callable[[dict], None] | None, metrics: dict, i,
           batch_size: int) -> dict:
  """Adds ``update`` and ``env_steps`` after update ``i`` and calls the progress callback."""
  metrics["update"] = i + 1
  metrics["env_steps"] = (i + 1) * batch_size
  progress_callback(callback, {k: metrics[k] for k in ("update", "env_steps", "episode_return")})
  return metrics


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


# ------------------------------------------------------------ hyperparameters


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


# Bounds of every sweepable hyperparameter, the same the configs check before
# compiling: name -> (low, low included, high); high is included. Any other traced
# override (``<channel>.coef``) must be finite.
HPARAM_BOUNDS = {
    "lr": (0.0, False, math.inf),
    "clip_eps": (0.0, False, math.inf),
    "max_grad_norm": (0.0, False, math.inf),
    "ent_coef": (0.0, True, math.inf),
    "vf_coef": (0.0, True, math.inf),
    "gamma": (0.0, False, 1.0),
    "tau": (0.0, False, 1.0),
    "gae_lambda": (0.0, True, 1.0),
    "q_lambda": (0.0, True, 1.0),
    "eps_start": (0.0, True, 1.0),
    "eps_end": (0.0, True, 1.0),
}


def invalid_hparams(hparams: Mapping[str, Any] | None) -> jax.Array:
  """Whether any (possibly traced) override in ``hparams`` is outside ``HPARAM_BOUNDS``.

  Traced values cannot raise inside ``jit``; ``Trainer`` reports this flag as the
  ``invalid_hparams`` metric and in ``nonfinite`` (a run trained with ``lr < 0``
  or ``gamma > 1`` is as meaningless as one that produced NaN).
  """
  bad = jnp.zeros((), jnp.bool_)
  for name, value in (hparams or {}).items():
    v = jnp.asarray(value, jnp.float32)
    low, low_included, high = HPARAM_BOUNDS.get(name, (-math.inf, True, math.inf))
    above_low = v >= low if low_included else v > low
    bad = bad | ~(jnp.isfinite(v) & above_low & (v <= high))
  return bad


def flag_invalid_hparams(metrics: dict, hparams: Mapping[str, Any] | None) -> dict:
  """Adds ``invalid_hparams`` to an update's ``metrics`` and folds it into ``nonfinite``."""
  bad = invalid_hparams(hparams)
  return dict(metrics, invalid_hparams=bad, nonfinite=metrics["nonfinite"] | bad)


def sweep_defaults(config, sweepable, channels) -> dict:
  """The values ``train(key, hparams)`` overrides: the config's sweepable fields,
  every channel's ``<name>.coef`` and every scheduled channel's ``<name>.decay``
  (its schedule's rate or fraction, ``rewardjax.schedules``)."""
  defaults = {k: getattr(config, k) for k in sweepable}
  defaults.update({f"{n}.coef": c for n, c in zip(channels.names, channels.coefs)})
  defaults.update({param: s.param for _, (s, param) in coef_schedules(channels).items()})
  return defaults


def coef_schedules(channels: Channels) -> dict:
  """``{"<name>.coef": (schedule, "<name>.decay")}`` for every scheduled channel."""
  return {f"{n}.coef": (s, f"{n}.decay")
          for n, s in zip(channels.names, channels.schedules or ()) if s is not None}


def scheduled(hp: Mapping[str, Any], coef_schedules: Mapping[str, tuple], t,
              num_updates: int) -> tuple[dict, dict]:
  """Resolved hyperparameters at update ``t`` (0-based), and their metrics.

  ``coef_schedules`` maps a coefficient's name to ``(schedule, name of its
  param)``; each such coefficient becomes ``hp[name] · f(t)`` with ``f`` the
  schedule's factor (``schedules.factor``) at the (possibly traced) param
  ``hp[param]``. The metrics report each scheduled value as
  ``schedule/<name>``. Without schedules, ``(hp, {})``.
  """
  if not coef_schedules:
    return hp, {}
  hp = dict(hp)
  for name, (schedule, param) in coef_schedules.items():
    hp[name] = hp[name] * schedules.factor(schedule, hp[param], t, num_updates)
  return hp, {f"schedule/{name}": jnp.asarray(hp[name], jnp.float32) for name in coef_schedules}


def channel_coefs(hp: Mapping[str, Any], channels: Channels) -> jax.Array:
  """``[C]`` channel coefficients from resolved hyperparameters (``<name>.coef``)."""
  return jnp.asarray([hp[f"{n}.coef"] for n in channels.names], jnp.float32)


def channel_gammas(hp: Mapping[str, Any], gammas) -> tuple:
  """Each channel's discount: its own γ, or the agent's (possibly swept) ``gamma``.

  ``gammas`` are the channels' discounts before resolution (``None`` where a
  channel takes the agent's); this is the one place where they are resolved
  inside ``train``, so sweeping ``gamma`` changes every channel that did not
  fix its own.
  """
  return tuple(hp["gamma"] if g is None else g for g in gammas)


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


# -------------------------------------------------------------------- Trainer


class TrainOutput(NamedTuple):
  """What ``train(key)`` returns: the final runner state and the metrics.

  ``metrics`` holds arrays with a leading ``[num_updates]`` axis.
  """
  runner_state: Any
  metrics: dict


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
    compiled call; an override outside the configs' bounds (``HPARAM_BOUNDS``)
    sets the ``invalid_hparams`` metric and ``nonfinite``;
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

  def _checked_update(self, runner, i, hparams):
    runner, metrics = self._update(runner, i, hparams)
    return runner, flag_invalid_hparams(metrics, hparams)

  def _scan(self, runner, start, num, hparams):
    steps = jnp.arange(num) if isinstance(start, int) and start == 0 else start + jnp.arange(num)
    return jax.lax.scan(lambda r, i: self._checked_update(r, i, hparams), runner, steps)

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


# ----------------------------------------------------------------- divergence

# Per-update losses whose blow-up means the learner diverged (PPO's critic, the
# Q-learners' TD loss).
LOSS_METRICS = ("value_loss", "loss")


def _updates_by_run(metrics: Mapping[str, Any], name: str) -> np.ndarray | None:
  """``metrics[name]`` as float ``[runs, num_updates]`` (leading axes flattened), or None."""
  if name not in metrics:
    return None
  x = np.asarray(metrics[name], np.float64)
  return x.reshape(-1, x.shape[-1]) if x.ndim else None


def _update_numbers(metrics: Mapping[str, Any], num_updates: int) -> np.ndarray:
  numbers = _updates_by_run(metrics, "update")
  return numbers[0].astype(int) if numbers is not None else np.arange(1, num_updates + 1)


def loss_blowups(loss: np.ndarray, returns: np.ndarray | None, factor: float) -> np.ndarray:
  """``[runs, num_updates]``: the loss exceeds ``factor`` times its running range.

  The running range is the largest loss of the updates before (the first finite
  update only sets it), and at least ``(1 + max |episode return| so far)²``, the
  squared scale of the values being fitted, so a critic whose loss grows with
  the returns is not flagged. Non-finite entries are left to ``nonfinite``.
  """
  finite = np.isfinite(loss)
  size = np.where(finite, np.abs(loss), 0.0)
  earlier = np.zeros_like(size)
  earlier[:, 1:] = np.maximum.accumulate(size, axis=1)[:, :-1]
  seen = np.zeros_like(finite)
  seen[:, 1:] = np.cumsum(finite, axis=1)[:, :-1] > 0
  if returns is not None:
    r = np.maximum.accumulate(np.where(np.isfinite(returns), np.abs(returns), 0.0), axis=1)
    earlier = np.maximum(earlier, np.square(1.0 + r))
  return finite & seen & (size > factor * earlier)


def entropy_collapses(entropy: np.ndarray, window: int, fraction: float) -> np.ndarray:
  """``[runs, num_updates]``: entropy within ``fraction`` of 0, at this update and
  the next, from a positive level it held in the ``window`` updates before — a
  policy turned deterministic in a few updates. A gradual decay as training
  converges is not flagged, nor a Gaussian policy's entropy passing through 0."""
  level = np.where(np.isfinite(entropy), entropy, -np.inf)
  size = np.where(np.isfinite(entropy), np.abs(entropy), np.inf)
  flags = np.zeros(entropy.shape, bool)
  for t in range(1, entropy.shape[1] - 1):
    before = np.max(level[:, max(0, t - window):t], axis=1)
    flags[:, t] = (before > 0) & (np.maximum(size[:, t], size[:, t + 1]) <= fraction * before)
  return flags


def _first_warning(metrics, values: np.ndarray, flags: np.ndarray,
                   describe: Callable[[float, int, str], str],
                   run_names: Sequence[Any] | None) -> str | None:
  """``describe(size, update, runs)`` at the first update ``flags`` marks, or None."""
  if not flags.any():
    return None
  t = int(np.argmax(flags.any(axis=0)))
  runs = np.flatnonzero(flags[:, t])
  update = _update_numbers(metrics, values.shape[1])[t]
  names = runs if run_names is None else [run_names[i] for i in runs]
  return describe(float(np.max(np.abs(values[runs, t]))), update, ", ".join(map(str, names)))


def divergence_warnings(metrics: Mapping[str, Any], factor: float = 100.0, window: int = 5,
                        fraction: float = 0.01,
                        run_names: Sequence[Any] | None = None) -> list[str]:
  """Host-side warnings (numpy, no JAX) for runs that diverged without producing NaN.

  ``metrics`` is ``TrainOutput.metrics`` (arrays ``[..., num_updates]``; leading
  axes such as seeds and settings are flattened into "runs", numbered from 0).
  Two signs of a learning rate far too high (Schulman et al. 2017 monitor the
  same quantities):

  * a loss (``LOSS_METRICS``) jumps above ``factor`` × its running range
    (``loss_blowups``);
  * the policy's ``entropy`` collapses to within ``fraction`` of 0 within
    ``window`` updates (``entropy_collapses``).

  Returns one message per kind of sign, naming the first update and the runs
  (by ``run_names``, one per flattened run, if given).
  """
  returns = _updates_by_run(metrics, "episode_return")
  messages = []
  for name in LOSS_METRICS:
    loss = _updates_by_run(metrics, name)
    if loss is not None:
      messages.append(_first_warning(
          metrics, loss, loss_blowups(loss, returns, factor),
          lambda size, update, runs, name=name: (
              f"{name} jumped to {size:.3g} at update {update}, over {factor:g}x its "
              f"running range, in run(s) {runs}: training probably diverged; lower the "
              "learning rate"), run_names))
  entropy = _updates_by_run(metrics, "entropy")
  if entropy is not None:
    messages.append(_first_warning(
        metrics, entropy, entropy_collapses(entropy, window, fraction),
        lambda size, update, runs: (
            f"entropy collapsed to {size:.3g} at update {update} (within {window} updates) "
            f"in run(s) {runs}: the policy turned deterministic at once, which a learning "
            "rate far too high does; lower it"), run_names))
  return [m for m in messages if m]

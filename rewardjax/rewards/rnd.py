"""Random network distillation (Burda, Edwards, Storkey & Klimov 2018).

A fixed, randomly initialised *target* network ``f`` embeds observations; a
*predictor* ``f̂`` is trained to match it on the observations the agent visits.
The prediction error is small on familiar observations and large on novel ones,
so it serves as an exploration bonus::

    x_t = clip((s_{t+1} − μ_obs) / σ_obs, −5, 5)        (running obs moments)
    e_t = (1/K) · ‖f̂(x_t) − f(x_t)‖²                   (K = output dimension)
    G_t = γ·G_{t−1} + e_t                              (per env, never reset)
    i_t = e_t / σ(G)                                   (running std of all G_t)

The paper's setup — two value heads, the extrinsic stream episodic with
γ = 0.999 and weight 2, the intrinsic stream non-episodic with γ = 0.99 and
weight 1 — is one call::

    from rewardjax.rewards.channels import channel, combine
    from rewardjax.rewards.extrinsic import extrinsic
    from rewardjax.rewards.rnd import rnd

    rewards = combine(
        extrinsic=channel(extrinsic(), coef=2.0, gamma=0.999),
        novelty=channel(rnd(), coef=1.0, gamma=0.99, episodic=False),
    )

What follows the reference code (openai/random-network-distillation):

* the bonus is computed on the true next observation ``batch.next_obs``;
* observations are normalised per feature with running moments (initialised
  from a random-action rollout: pass one as ``init``'s ``example``) and clipped
  to ±5; the statistics are updated after the rollout, in ``update``, so a
  batch's bonus uses the statistics from before it (the reference's
  ``update_ob_stats_every_step=False`` path);
* the bonus is divided by the running std of the discounted intrinsic return
  (``RewardForwardFilter`` + ``RunningMeanStd``; here ``stats.ReturnStd``, the
  library's one return-std normaliser). As in the reference, a batch's returns
  enter the statistics *before* that batch is normalised: ``reward`` computes
  the merged statistics on the fly (a pure read of the state) and ``update``
  stores the very same statistics;
* the predictor is trained on a proportion ``update_proportion`` of each batch:
  the reference keeps each sample with that probability; here each gradient
  step takes a random subset of exactly that size, consecutive slices of random
  permutations of the batch (same expected gradient; the forward/backward passes
  run on the subset only);
* orthogonal initialisation with scale √2, leaky-ReLU features, a predictor
  deeper than the target, Adam.

Defaults that differ from the paper, chosen for vector observations and small
CPU budgets (all configurable):

* MLPs instead of the Atari CNNs: target hidden ``(64, 64)``, predictor hidden
  ``(64, 64, 64)`` (one layer deeper, as the paper's predictor has extra fully
  connected layers), output dimension 64 instead of 512. These are sized like
  the PPO networks: on a CPU with few environments the bonus then costs about
  as much as the agent's own update, where 256-wide networks cost several times
  more. Pass larger sizes (or your own ``target_network``) for rich observations;
* leaky ReLU in every hidden layer (the reference's predictor switches to ReLU
  in its extra fully connected layers; it makes no difference to what the bonus
  measures);
* learning rate ``3e-3`` with 8 Adam steps per ``update``, each on a fresh
  random 25 % of the batch. The paper uses ``1e-4`` but trains the predictor
  jointly with PPO for 4 epochs × 4 minibatches per rollout (512-wide networks,
  128 environments). How far the predictor moves per rollout decides whether
  the bonus tracks novelty; benchmarks/RESULTS.md (exploration, "why the RND
  defaults") compares step sizes and step counts on DeepSea-20.

Batches are time-major: ``[T, N]`` rollouts (the filter runs over ``T``,
separately for each of the ``N`` environments, and its state carries over
between batches) or ``[B]``, read as one stream of ``B`` consecutive steps —
the convention of ``transforms.normalize_by_return_std``. Observations may have
any trailing shape; the default networks flatten them.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewardjax import sharding, stats
from rewardjax.shuffle import shuffle_order
from rewardjax.types import Array, Metrics, PRNGKey, PyTree, RewardModule, Transition


class RNDState(NamedTuple):
  """State of the ``rnd`` reward module.

  Attributes:
    target_params: parameters of the fixed random target network.
    predictor_params: parameters of the trained predictor.
    opt_state: the predictor optimiser's state.
    obs_moments: running per-feature moments of the next observations.
    returns: the return-std normaliser (``stats.ReturnStd``): the forward
      filter's running return ``G`` per environment (shape ``batch_shape[1:]``)
      and the running moments of every ``G_t``.
  """
  target_params: PyTree
  predictor_params: PyTree
  opt_state: optax.OptState
  obs_moments: stats.RunningMoments
  returns: stats.ReturnStd


class _MLP(nn.Module):
  """Flattens each observation and applies a leaky-ReLU MLP with a linear head."""
  hidden: Sequence[int]
  out: int

  @nn.compact
  def __call__(self, x):
    x = jnp.reshape(x, (x.shape[0], -1))
    # The reference code initialises every layer orthogonally with scale √2.
    init = nn.initializers.orthogonal(np.sqrt(2.0))
    for h in self.hidden:
      # Leaky ReLU: a ReLU unit that is dead at initialisation stays dead in the
      # fixed target and silently shrinks the feature space.
      x = nn.leaky_relu(nn.Dense(h, kernel_init=init)(x))
    return nn.Dense(self.out, kernel_init=init)(x)


def _as_float(x: Array) -> Array:
  # Discrete environments emit integer or boolean observations.
  return jnp.asarray(x, jnp.float32)


def finite_observations(obs: Array, batch_ndim: int) -> Array:
  """``[*batch]``: whether each observation of ``obs [*batch, *obs_shape]`` is all finite."""
  valid = stats.finite_samples(_as_float(obs), tuple(range(batch_ndim)))
  return jnp.reshape(valid, obs.shape[:batch_ndim])


def rnd_init_obs_stats(obs: Array, batch_ndim: int) -> stats.RunningMoments:
  """Per-feature running moments of ``obs`` (RND's observation-normaliser warm-up).

  The reference code steps a random agent before training and feeds its
  observations to the normaliser; pass such a rollout here.

  Args:
    obs: ``[*batch, *obs_shape]`` observations, e.g. ``[T, N, ...]``.
    batch_ndim: how many leading axes of ``obs`` are sample axes.

  Returns:
    ``RunningMoments`` of shape ``obs_shape``: the batch mean and variance,
    merged into ``stats.moments_init``'s tiny prior (as baselines does).
  """
  obs = _as_float(obs)
  if not 0 <= batch_ndim <= obs.ndim:
    raise ValueError(
        f"rnd_init_obs_stats: batch_ndim={batch_ndim} for observations of shape {obs.shape}")
  m = stats.moments_init(obs.shape[batch_ndim:])
  return stats.moments_update(m, obs, axes=tuple(range(batch_ndim)))


def _check_arguments(update_proportion, num_grad_steps, gamma, obs_clip, learning_rate):
  """``rnd``'s argument checks (``learning_rate`` is None with a custom optimiser)."""
  if not 0.0 <= update_proportion <= 1.0:
    raise ValueError(f"rnd: update_proportion must be in [0, 1], got {update_proportion}")
  if int(num_grad_steps) != num_grad_steps or num_grad_steps < 1:
    raise ValueError(f"rnd: num_grad_steps must be a positive integer, got {num_grad_steps}")
  if not 0.0 < gamma <= 1.0:
    raise ValueError(f"rnd: gamma must be in (0, 1], got {gamma}")
  if not obs_clip > 0.0:
    raise ValueError(f"rnd: obs_clip must be positive, got {obs_clip}")
  if learning_rate is not None and not learning_rate > 0.0:
    raise ValueError(f"rnd: learning_rate must be positive, got {learning_rate}")


def rnd(target_hidden: Sequence[int] = (64, 64),
        predictor_hidden: Sequence[int] = (64, 64, 64),
        output_dim: int = 64,
        learning_rate: float = 3e-3,
        update_proportion: float = 0.25,
        num_grad_steps: int = 8,
        normalize_reward: bool = True,
        gamma: float = 0.99,
        obs_clip: float = 5.0,
        target_network: nn.Module | None = None,
        predictor_network: nn.Module | None = None,
        optimizer: optax.GradientTransformation | None = None,
        eps: float = 1e-8) -> RewardModule:
  """Random network distillation bonus (Burda et al. 2018).

  ``reward`` is ``e_t = mean_k (f̂(x_t) − f(x_t))_k²`` on the normalised, clipped
  next observation ``x_t``, divided (if ``normalize_reward``) by the running std
  of ``G_t = γ·G_{t−1} + e_t``. ``update`` updates the observation moments with
  ``batch.next_obs``, stores the filter state and return moments, and takes
  ``num_grad_steps`` Adam steps on the mean bonus of a random subset of
  ``round(update_proportion · batch size)`` samples (at least one unless 0).

  An observation with a NaN or ±inf entry is paid a bonus of 0 and left out of
  the observation and return statistics and of the predictor's loss, so it
  cannot poison the state; ``update`` counts such observations in the
  ``nonfinite_inputs`` metric. Finite batches take exactly the plain path
  (``stats.repair_if``).

  Args:
    target_hidden: hidden sizes of the default target MLP.
    predictor_hidden: hidden sizes of the default predictor MLP.
    output_dim: embedding size of both default networks (paper: 512).
    learning_rate: Adam step size of the predictor (paper: 1e-4 with 16
      minibatch steps per rollout and larger networks; see the module docstring).
    update_proportion: fraction of each batch the predictor trains on
      (reference: 32 / num_envs = 0.25 for 128 envs). 0 freezes the predictor.
    num_grad_steps: gradient steps per ``update``, each on a fresh random
      subset of ``update_proportion`` of the batch.
    normalize_reward: divide the bonus by the running std of its discounted
      return. The statistics are kept (and reported) either way.
    gamma: discount of the forward filter (the intrinsic channel's γ).
    obs_clip: normalised observations are clipped to ``[-obs_clip, obs_clip]``.
    target_network: optional flax module ``[M, *obs_shape] -> [M, K]`` replacing
      the default target MLP (e.g. a CNN for pixels).
    predictor_network: optional flax module with the same signature.
    optimizer: optional optax optimiser replacing ``adam(learning_rate)``.
    eps: added to variances before taking square roots.

  Returns:
    A ``RewardModule`` whose state is an ``RNDState``.
  """
  _check_arguments(update_proportion, num_grad_steps, gamma, obs_clip,
                   learning_rate if optimizer is None else None)
  num_grad_steps = int(num_grad_steps)
  update_proportion = float(update_proportion)
  gamma = float(gamma)

  target = (_MLP(tuple(target_hidden), int(output_dim)) if target_network is None
            else target_network)
  predictor = (_MLP(tuple(predictor_hidden), int(output_dim)) if predictor_network is None
               else predictor_network)
  opt = optax.adam(learning_rate) if optimizer is None else optimizer

  def normalized_obs(obs_moments, next_obs, batch_ndim, valid=None):
    """``[M, *obs_shape]`` normalised, clipped next observations (M = batch size);
    zeros where ``valid [M]`` (if given) is false."""
    x = stats.normalize(obs_moments, _as_float(next_obs), clip=obs_clip, eps=eps)
    x = jnp.reshape(x, (-1,) + x.shape[batch_ndim:])
    if valid is None:
      return x
    return jnp.where(jnp.reshape(valid, (-1,) + (1,) * (x.ndim - 1)), x, 0.0)

  def prediction_error(predictor_params, x, targets):
    """Per-sample ``mean_k (f̂(x) − f(x))_k²``, shape ``[M]``."""
    pred = predictor.apply(predictor_params, x)
    return jnp.mean(jnp.square(pred - targets), axis=-1)

  def raw_bonus(state, batch, valid=None):
    """``e_t`` with the state's networks and observation statistics, batch-shaped;
    0 where ``valid`` (batch-shaped, if given) is false."""
    batch_ndim = jnp.ndim(batch.reward)
    x = normalized_obs(state.obs_moments, batch.next_obs, batch_ndim,
                       None if valid is None else jnp.reshape(valid, (-1,)))
    targets = target.apply(state.target_params, x)
    e = jnp.reshape(prediction_error(state.predictor_params, x, targets), jnp.shape(batch.reward))
    return e if valid is None else jnp.where(valid, e, 0.0)

  def finite_bonus(state, batch):
    """``raw_bonus``, with 0 for observations that have a NaN or ±inf entry."""
    valid = finite_observations(batch.next_obs, jnp.ndim(batch.reward))
    return stats.repair_if(~jnp.all(valid), raw_bonus(state, batch),
                           lambda: raw_bonus(state, batch, valid))

  def normalized(e, returns):
    if not normalize_reward:
      return e
    # Divide only: subtracting a mean would turn familiar states into penalties.
    return stats.scale_by_return_std(returns, e, eps)

  def init_fn(key: PRNGKey, example: Transition) -> RNDState:
    batch_shape = jnp.shape(example.reward)
    batch_ndim = len(batch_shape)
    if batch_ndim < 1:
      raise ValueError("rnd: batches need a leading time (or sample) axis, e.g. [T, N] or [B]")
    obs_moments = rnd_init_obs_stats(example.next_obs, batch_ndim)
    x = normalized_obs(obs_moments, example.next_obs, batch_ndim)[:1]
    target_key, predictor_key = jax.random.split(key)
    target_params = target.init(target_key, x)
    predictor_params = predictor.init(predictor_key, x)
    return RNDState(
        target_params=target_params,
        predictor_params=predictor_params,
        opt_state=opt.init(predictor_params),
        obs_moments=obs_moments,
        returns=stats.return_std_init(batch_shape[1:]))

  def reward_fn(state: RNDState, batch: Transition) -> Array:
    e = finite_bonus(state, batch)
    if not normalize_reward:
      return e
    # The batch's own returns count in the std it is divided by
    # (stats.ReturnStd); ``update`` stores exactly these statistics.
    return normalized(e, stats.return_std_update(state.returns, e, gamma))

  def learn(state: RNDState, batch: Transition, key: PRNGKey,
            valid: Array | None = None) -> tuple[RNDState, Metrics]:
    """The update; observations where ``valid`` (if given) is false are masked out."""
    batch_ndim = jnp.ndim(batch.reward)
    flat_valid = None if valid is None else jnp.reshape(valid, (-1,))
    # The filter sees the bonus that ``reward`` returned for this batch, i.e.
    # the one computed before the predictor and obs statistics change.
    e = raw_bonus(state, batch, valid)
    returns = stats.return_std_update(state.returns, e, gamma)
    intrinsic = normalized(e, returns)

    obs_moments = stats.moments_update(
        state.obs_moments, _as_float(batch.next_obs), axes=tuple(range(batch_ndim)))
    x_all = normalized_obs(obs_moments, batch.next_obs, batch_ndim, flat_valid)
    num_samples = x_all.shape[0]
    # The reference masks each sample with probability `update_proportion`; a
    # random subset of that fixed size gives the same expected gradient at a
    # fraction of the cost (forward and backward passes run on the subset only).
    subset = int(round(update_proportion * num_samples))
    if update_proportion > 0.0:
      subset = max(subset, 1)

    def loss_fn(params, x, targets):
      return jnp.mean(prediction_error(params, x, targets))

    def valid_loss_fn(params, x, targets, valid_sub):
      error = jnp.where(valid_sub, prediction_error(params, x, targets), 0.0)
      return jnp.sum(error) / jnp.maximum(jnp.sum(valid_sub), 1)

    def step(carry, idx):
      params, opt_state = carry
      x, targets = x_all[idx], targets_all[idx]
      if flat_valid is None:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, targets)
      else:   # the mean error of the subset's finite observations
        loss, grads = jax.value_and_grad(valid_loss_fn)(params, x, targets, flat_valid[idx])
      grads = sharding.pmean(grads)      # sharded: every device's subset counts
      updates, opt_state = opt.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      return (params, opt_state), loss

    if subset:
      # Targets once for the whole batch (the target net is fixed), and the
      # steps' subsets as consecutive slices of a few permutations: the same
      # sampling without replacement within each pass over the batch, at the
      # cost of one sort per pass instead of one per step.
      targets_all = target.apply(state.target_params, x_all)
      passes = -(-num_grad_steps * subset // num_samples)
      order = shuffle_order(key, num_samples, passes).reshape(-1)
      idx = order[:num_grad_steps * subset].reshape(num_grad_steps, subset)
      (params, opt_state), losses = jax.lax.scan(
          step, (state.predictor_params, state.opt_state), idx)
    else:
      params, opt_state, losses = state.predictor_params, state.opt_state, jnp.zeros(())
    fractions = jnp.asarray(subset / num_samples, jnp.float32)

    new_state = RNDState(
        target_params=state.target_params,
        predictor_params=params,
        opt_state=opt_state,
        obs_moments=obs_moments,
        returns=returns)
    metrics = {
        "rnd_loss": jnp.mean(losses),
        "rnd_update_fraction": jnp.mean(fractions),
        "intrinsic_mean": jnp.mean(intrinsic),
        "intrinsic_raw_mean": jnp.mean(e),
        "intrinsic_return_std": stats.moments_std(returns.moments, eps),
    }
    return new_state, metrics

  def update_fn(state: RNDState, batch: Transition,
                key: PRNGKey) -> tuple[RNDState, Metrics]:
    valid = finite_observations(batch.next_obs, jnp.ndim(batch.reward))
    num_bad = sharding.psum(jnp.sum(~valid))      # every device's, so all take one path
    plain_state, plain_metrics = learn(state, batch, key)
    new_state, metrics = stats.repair_if(num_bad > 0, (plain_state, plain_metrics),
                                         lambda: learn(state, batch, key, valid))
    # The statistics' counts do not depend on the data: the plain ones (which
    # stay unbatched under vmap, and so leave the next update's program as it was).
    new_state = new_state._replace(
        obs_moments=new_state.obs_moments._replace(count=plain_state.obs_moments.count),
        returns=new_state.returns._replace(moments=new_state.returns.moments._replace(
            count=plain_state.returns.moments.count)))
    # Observations with a NaN/inf entry: left out of every statistic and of the
    # predictor's loss, paid a bonus of 0.
    return new_state, dict(metrics, nonfinite_inputs=num_bad.astype(jnp.float32))

  return RewardModule(init_fn, reward_fn, update_fn)


__all__ = ["RNDState", "rnd", "rnd_init_obs_stats"]

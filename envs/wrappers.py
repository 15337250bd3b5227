"""gymnax-style wrappers that delegate to the wrapped environment.

Every wrapper keeps the gymnax 1.0 API:
``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``
with ``info["final_observation"]`` holding the true next observation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


class Wrapper:
  """Base wrapper: attribute access falls through to the wrapped environment.

  ``__getattr__`` refuses private and dunder names, so ``copy.deepcopy`` and
  pickling do not recurse forever through a half-built wrapper.
  """

  def __init__(self, env):
    self._env = env

  def __getattr__(self, name: str) -> Any:
    if name.startswith("_"):
      raise AttributeError(name)
    return getattr(self._env, name)

  @property
  def unwrapped(self):
    env = self._env
    while isinstance(env, Wrapper):
      env = env._env  # pylint: disable=protected-access
    return env

  def reset(self, key, params=None):
    return self._env.reset(key, params)

  def step(self, key, state, action, params=None):
    return self._env.step(key, state, action, params)

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self._env!r})"


@struct.dataclass
class EpisodeStatisticsState:
  env_state: Any
  episode_return: jax.Array
  episode_length: jax.Array
  returned_episode_return: jax.Array
  returned_episode_length: jax.Array
  episode_count: jax.Array


class EpisodeStatistics(Wrapper):
  """Tracks each episode's undiscounted return and length.

  ``info`` gains ``episode_done`` (an episode ended at this step),
  ``episode_return`` and ``episode_length`` (of the episode that ended at this
  step; otherwise of the last one that ended; 0 before any ended) and
  ``episode_count`` (episodes ended so far in this environment).
  """

  def reset(self, key, params=None):
    obs, env_state = self._env.reset(key, params)
    zero_f = jnp.zeros((), jnp.float32)
    zero_i = jnp.zeros((), jnp.int32)
    return obs, EpisodeStatisticsState(env_state, zero_f, zero_i, zero_f, zero_i, zero_i)

  def step(self, key, state, action, params=None):
    obs, env_state, reward, terminated, truncated, info = self._env.step(
        key, state.env_state, action, params)
    done = jnp.logical_or(terminated, truncated)
    ep_ret = state.episode_return + reward.astype(jnp.float32)
    ep_len = state.episode_length + 1
    new_state = EpisodeStatisticsState(
        env_state=env_state,
        episode_return=jnp.where(done, 0.0, ep_ret),
        episode_length=jnp.where(done, 0, ep_len),
        returned_episode_return=jnp.where(done, ep_ret, state.returned_episode_return),
        returned_episode_length=jnp.where(done, ep_len, state.returned_episode_length),
        episode_count=state.episode_count + done.astype(jnp.int32),
    )
    info = {
        **info,
        "episode_done": done,
        "episode_return": new_state.returned_episode_return,
        "episode_length": new_state.returned_episode_length,
        "episode_count": new_state.episode_count,
    }
    return obs, new_state, reward, terminated, truncated, info


class FlattenObservation(Wrapper):
  """Flattens observations (and ``info["final_observation"]``) to 1-D float32."""

  def observation_space(self, params=None):
    # gymnax builds jnp arrays when imported, which starts the XLA backend: it is
    # imported on first use so that `import rewardjax` leaves the backend unstarted.
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    space = self._env.observation_space(params)
    size = 1
    for d in space.shape:
      size *= d
    return spaces.Box(jnp.min(jnp.asarray(space.low)), jnp.max(jnp.asarray(space.high)),
                      (size,), jnp.float32)

  def reset(self, key, params=None):
    obs, state = self._env.reset(key, params)
    return jnp.ravel(obs).astype(jnp.float32), state

  def step(self, key, state, action, params=None):
    obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
    info = dict(info)
    if "final_observation" in info:
      info["final_observation"] = jnp.ravel(info["final_observation"]).astype(jnp.float32)
    return jnp.ravel(obs).astype(jnp.float32), state, reward, terminated, truncated, info


class MaskObservation(Wrapper):
  """Sets the given entries of flat observations to 0: a partially observed variant.

  ``indices`` index the observation's last axis; ``info["final_observation"]`` is
  masked the same way. E.g. ``MaskObservation(env, [1])`` on gymnax's
  ``UmbrellaChain-bsuite`` hides ``has_umbrella``, so the first action leaves no
  trace in later observations: only a model of the whole episode can tell which
  step decided its return (the credit-assignment task of
  ``benchmarks/credit_assignment.py``).
  """

  def __init__(self, env, indices):
    super().__init__(env)
    self._indices = tuple(int(i) for i in indices)
    if not self._indices:
      raise ValueError("MaskObservation: indices must name at least one entry")

  def _mask(self, obs):
    size = obs.shape[-1] if obs.ndim else 0
    bad = [i for i in self._indices if not -size <= i < size]
    if bad:
      raise ValueError(f"MaskObservation: indices {bad} out of range for observations "
                       f"of shape {obs.shape}")
    return obs.at[..., jnp.asarray(self._indices)].set(0)

  def reset(self, key, params=None):
    obs, state = self._env.reset(key, params)
    return self._mask(obs), state

  def step(self, key, state, action, params=None):
    obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
    if "final_observation" in info:
      info = {**info, "final_observation": self._mask(info["final_observation"])}
    return self._mask(obs), state, reward, terminated, truncated, info

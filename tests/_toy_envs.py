"""Tiny deterministic environments (gymnax 1.0 API) for tests that need exact outcomes.

``Chain``: every episode starts at position 0; the dynamics, the reset and the
rewards use no randomness, so two runs that pick the same actions see the same
data whatever their keys. ``OneState``: every step starts from the same
observation and is cut by a time limit; the true final observation reveals the
action taken, so a potential or a novelty bonus on it pays for the action.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments import spaces


class Chain:
  """Positions ``0 … length − 1``, observed one-hot; start at 0.

  Action 1 moves right, any other action left (floored at 0); with
  ``num_actions=1`` every step moves right. Reaching the last position pays +1
  and terminates; an episode is truncated after ``max_steps`` steps.
  """

  def __init__(self, length: int = 4, num_actions: int = 2, max_steps: int = 8):
    self.length, self.num_actions, self.max_steps = length, num_actions, max_steps

  def _obs(self, pos):
    return jax.nn.one_hot(pos, self.length, dtype=jnp.float32)

  def reset(self, key, params=None):
    del key, params
    state = (jnp.int32(0), jnp.int32(0))          # (position, time)
    return self._obs(0), state

  def step(self, key, state, action, params=None):
    del key, params
    pos, time = state
    right = (action == 1) | (self.num_actions == 1)
    pos = jnp.clip(pos + jnp.where(right, 1, -1), 0, self.length - 1)
    time = time + 1
    terminated = pos == self.length - 1
    truncated = ~terminated & (time >= self.max_steps)
    done = terminated | truncated
    final = self._obs(pos)
    state = (jnp.where(done, 0, pos), jnp.where(done, 0, time))
    return (self._obs(state[0]), state, terminated.astype(jnp.float32), terminated, truncated,
            {"final_observation": final})

  def action_space(self, params=None):
    return spaces.Discrete(self.num_actions)

  def observation_space(self, params=None):
    return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)


class OneState:
  """Every step starts from the zero observation, pays 0 and is truncated.

  The true final observation of action ``a`` is ``[a == 0, a == 1, z1, z2]`` with
  ``z ~ N(0, 1)`` drawn afresh after action 1 and ``z = 0`` after action 0: a
  potential ``Φ(s) = s[1]`` pays ``γ`` for action 1, and action 1 always leads
  somewhere new (what a novelty bonus rewards).
  """

  def reset(self, key, params=None):
    del key, params
    return jnp.zeros(4, jnp.float32), jnp.int32(0)

  def step(self, key, state, action, params=None):
    del params
    noise = jax.random.normal(key, (2,)) * (action == 1)
    final = jnp.concatenate([jax.nn.one_hot(action, 2), noise]).astype(jnp.float32)
    return (jnp.zeros(4, jnp.float32), state, jnp.float32(0.0), jnp.bool_(False),
            jnp.bool_(True), {"final_observation": final})

  def action_space(self, params=None):
    return spaces.Discrete(2)

  def observation_space(self, params=None):
    return spaces.Box(-10.0, 10.0, (4,), jnp.float32)

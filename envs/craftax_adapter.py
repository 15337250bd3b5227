"""Craftax environments behind the gymnax 1.0 API: ``make("craftax/<id>")``.

    env, params = rewardjax.envs.make("craftax/Craftax-Classic-Symbolic-v1")
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Craftax (Matthews et al. 2024, "Craftax: A Lightning-Fast Benchmark for
Open-Ended Reinforcement Learning") is a JAX rewrite of Crafter (Hafner 2021,
``Craftax-Classic-*``) and its extension with dungeon floors (``Craftax-*``),
each with a symbolic (flat vector) or a pixel (``[H, W, 3]``) observation. Its
own ``step`` returns five values, with one ``done`` that mixes death and the
time limit, no final observation, and (with auto-reset on) a reset that cannot
be told from the episode's last step. The adapter wraps ONE (unbatched) Craftax
environment built with auto-reset off and derives the rest:

- ``terminated``: the player died (health ≤ 0), stood in lava (Classic) or beat
  the final boss (Craftax); ``truncated``: the time limit, the state's
  ``timestep`` reaching ``params.max_timesteps`` (Craftax's own field: 10 000
  steps for Classic, 100 000 for Craftax; ``make(..., max_timesteps=…)``
  changes it), never set on a terminal step;
- when either is set, ``step`` resets inside the step with its own key, so each
  episode starts in a freshly generated world, and ``info["final_observation"]``
  keeps the episode's true last observation;
- ``info["episode_metrics"]`` holds, on the step that ends an episode, the
  episode's achievements and score (``episode_metrics``); agents average them
  over the episodes that end in each update (``rewardjax.episodes``).

As with Craftax's own auto-reset environment, the reset world is generated on
every step (under ``vmap`` both branches of a select run), which costs most of
a Craftax step on CPU.

Keyword arguments of ``make`` that name a field of Craftax's ``EnvParams``
(``max_timesteps``, ``day_length``, ``god_mode`` …) set it in the returned
parameters; any other is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from rewardjax import extras
from rewardjax.envs import registry

if TYPE_CHECKING:
  from gymnax.environments import spaces

CRAFTAX_IDS = ("Craftax-Classic-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Pixels-v1",
               "Craftax-Symbolic-v1")


def _constants(name: str):
  """Craftax's constants module of ``name``'s game (Classic or the full one)."""
  game = "craftax_classic" if name.startswith("Craftax-Classic") else "craftax"
  return extras.require(f"craftax.{game}.constants", f"craftax/{name}")


def achievement_weights(name: str) -> tuple[tuple[str, ...], np.ndarray]:
  """``(names, weights)`` of ``name``'s achievements, in Craftax's order.

  The weight is the reward the game gives when the achievement is first
  unlocked in an episode: 1 for every Classic achievement (22 of them); 1, 3, 5
  or 8 by difficulty in Craftax (``ACHIEVEMENT_REWARD_MAP``, 67 of them).
  """
  constants = _constants(name)
  # By value: the index into the state's ``achievements`` (Craftax's enum does
  # not list its members in that order).
  names = tuple(a.name.lower() for a in sorted(constants.Achievement, key=lambda a: a.value))
  if name.startswith("Craftax-Classic"):
    weights = np.ones(len(names), np.float32)
  else:
    weights = np.asarray(constants.ACHIEVEMENT_REWARD_MAP, np.float32)
  return names, weights


def episode_metrics(achievements: jax.Array, names: tuple[str, ...],
                    weights: np.ndarray) -> dict[str, jax.Array]:
  """One episode's metrics from its final ``achievements`` (bool ``[A]``).

  * ``achievements/<name>``: 100 if the achievement was unlocked in the
    episode, else 0; averaged over episodes, the success rate in % as Craftax
    logs it (``Achievements/<name>`` in its ``info``);
  * ``craftax/score``: ``100 · Σ_i w_i·a_i / Σ_i w_i``, the episode's
    achievement reward as a percentage of the largest possible (``w`` from
    ``achievement_weights``). Averaged over episodes this is the Craftax
    paper's "% of max" reward (Matthews et al. 2024; at 1M steps on
    Craftax-Symbolic its PPO reaches 2.2 %). The paper divides the episode
    return, which also holds Craftax's health reward ``0.1 · Δhealth`` (within
    ±0.9 per episode, under 0.4 % of Craftax's maximum of 226); the score
    leaves it out, so it depends on the achievements only.
  """
  if achievements.shape != (len(names),):
    raise ValueError(f"achievements must be [{len(names)}], got {achievements.shape}")
  a = achievements.astype(jnp.float32)
  out = {f"achievements/{n}": 100.0 * a[i] for i, n in enumerate(names)}
  out["craftax/score"] = 100.0 * jnp.dot(a, jnp.asarray(weights)) / float(np.sum(weights))
  return out


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class CraftaxEnv:
  """One Craftax environment with gymnax-1.0 ``reset`` / ``step`` and gymnax spaces."""

  def __init__(self, name: str):
    if name not in CRAFTAX_IDS:
      raise ValueError(_unknown_message(name))
    craftax_env = extras.require("craftax.craftax_env", f"craftax/{name}")
    self.craftax_env = craftax_env.make_craftax_env_from_name(name, auto_reset=False)
    self.name = name
    self.achievement_names, self.achievement_weights = achievement_weights(name)

  @property
  def default_params(self):
    return self.craftax_env.default_params

  @property
  def num_actions(self) -> int:
    return int(self.craftax_env.num_actions)

  def action_space(self, params=None) -> spaces.Discrete:
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    return spaces.Discrete(self.num_actions)

  def observation_space(self, params=None) -> spaces.Box:
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    box = self.craftax_env.observation_space(self.default_params if params is None else params)
    return spaces.Box(box.low, box.high, tuple(box.shape), jnp.float32)

  def reset(self, key, params=None):
    params = self.default_params if params is None else params
    return self.craftax_env.reset_env(key, params)

  def is_terminal(self, state, params) -> jax.Array:
    """Death, lava or the boss: Craftax's game-over test with its time limit lifted."""
    return self.craftax_env.is_terminal(state, params.replace(max_timesteps=jnp.iinfo(jnp.int32).max))

  def step(self, key, state, action, params=None):
    params = self.default_params if params is None else params
    k_step, k_reset = jax.random.split(key)
    obs, nxt, reward, _, _ = self.craftax_env.step_env(k_step, state, action, params)
    terminated = jnp.asarray(self.is_terminal(nxt, params))
    truncated = jnp.logical_and(nxt.timestep >= params.max_timesteps, ~terminated)
    done = jnp.logical_or(terminated, truncated)
    reset_obs, reset_state = self.reset(k_reset, params)
    info = {"final_observation": obs, "discount": 1.0 - terminated.astype(jnp.float32),
            "episode_metrics": episode_metrics(nxt.achievements, self.achievement_names,
                                               self.achievement_weights)}
    return (jnp.where(done, reset_obs, obs), _select(done, reset_state, nxt),
            jnp.asarray(reward, jnp.float32), terminated, truncated, info)

  def __repr__(self) -> str:
    return f"CraftaxEnv({self.name!r})"


def _unknown_message(name: str) -> str:
  close = difflib.get_close_matches(name, CRAFTAX_IDS, n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join('craftax/' + c for c in close)}?" if close else ""
  return (f"unknown Craftax environment {name!r}.{hint} "
          f"Known: {', '.join('craftax/' + k for k in CRAFTAX_IDS)}")


def make_craftax(name: str, **kwargs) -> tuple[CraftaxEnv, Any]:
  """``(env, params)`` for ``craftax/<name>``; ``kwargs`` set fields of Craftax's ``EnvParams``."""
  env = CraftaxEnv(name)
  params = env.default_params
  fields = {f.name for f in dataclasses.fields(params)}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"craftax/{name}: unknown keyword arguments {unknown}; "
                     f"Craftax's EnvParams fields: {sorted(fields)}")
  steps = kwargs.get("max_timesteps", params.max_timesteps)
  if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
    raise ValueError(f"craftax/{name}: max_timesteps must be a positive integer, got {steps!r}")
  return env, params.replace(**kwargs)


registry.register_prefix("craftax/", make_craftax, CRAFTAX_IDS)

"""brax environments behind the gymnax 1.0 API: ``make("brax/<name>")``.

    env, params = rewardjax.envs.make("brax/inverted_pendulum")
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

The adapter wraps ONE (unbatched) brax environment, so agents vmap it like any
gymnax environment. brax's own ``envs.create`` stack (EpisodeWrapper →
VmapWrapper → AutoResetWrapper) is not used, because its auto-reset restores the
cached first state (every episode starts from the same state), keeps no final
observation and takes no key. Here, instead:

- ``terminated`` is brax's ``done`` (the task ended: a pendulum fell, an ant
  flipped); ``truncated`` is the time limit ``params.max_steps_in_episode`` (and
  never set on a terminal step);
- when either is set, ``step`` resets inside the step with its own key, so every
  episode starts from a freshly randomised state, and
  ``info["final_observation"]`` keeps the true last observation.

Physics backends (brax 0.14): ``generalized`` (joint coordinates, the most
accurate and the slowest), ``positional`` and ``spring`` (faster, cruder
contacts), ``mjx`` (MuJoCo XLA, for accelerators). ``DEFAULT_BACKENDS`` picks per
environment what is fast on CPU without hurting learning: the pendulums,
reacher and pusher keep ``generalized`` (inverted_pendulum learns better with it
than with ``spring`` at small budgets, although ``spring`` steps faster), the
legged robots use ``positional`` (≈1.8× faster than ``generalized`` on ant on
this CPU). Pass ``backend=`` to choose another. Note that brax announces its
environments are no longer actively maintained in favour of MJX / MuJoCo
Playground; for new accelerator work prefer ``backend="mjx"`` or those projects.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import struct

from rewardjax import extras
from rewardjax.envs import registry

if TYPE_CHECKING:
  # gymnax builds jnp arrays when imported, which starts the XLA backend; the
  # methods below import it on first use so that `import rewardjax` does not.
  from gymnax.environments import spaces

# brax.envs' registry in brax 0.14 (``fast`` is brax's test environment).
BRAX_ENVS = ("ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
             "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher",
             "swimmer", "walker2d")

DEFAULT_BACKENDS = {
    "inverted_pendulum": "generalized",
    "inverted_double_pendulum": "generalized",
    "reacher": "generalized",
    "pusher": "generalized",
    "ant": "positional",
    "halfcheetah": "positional",
    "hopper": "positional",
    "walker2d": "positional",
    "humanoid": "positional",
    "humanoidstandup": "positional",
    "swimmer": "positional",
}

BACKENDS = ("generalized", "positional", "spring", "mjx")


@struct.dataclass
class BraxEnvParams:
  max_steps_in_episode: int = 1000


@struct.dataclass
class BraxEnvState:
  brax_state: Any     # brax.envs.State of the current episode
  time: jax.Array     # steps taken in the current episode


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class BraxEnv:
  """One brax environment with gymnax-1.0 ``reset`` / ``step`` and spaces."""

  def __init__(self, name: str, backend: str | None = None, **kwargs):
    brax_envs = extras.require("brax.envs", f"brax/{name}")   # an extra; a slow import
    if name not in brax_envs._envs:  # pylint: disable=protected-access
      raise ValueError(_unknown_message(name, sorted(brax_envs._envs)))  # pylint: disable=protected-access
    backend = DEFAULT_BACKENDS.get(name, "generalized") if backend is None else backend
    if backend not in BACKENDS:
      raise ValueError(f"brax/{name}: unknown backend {backend!r}; choose one of {BACKENDS}")
    try:
      self.brax_env = brax_envs.get_environment(name, backend=backend, **kwargs)
    except TypeError as e:
      raise ValueError(f"brax/{name}: bad keyword arguments {sorted(kwargs)}: {e}") from e
    self.name = name
    self.backend = backend
    self._obs_shape = None

  @property
  def default_params(self) -> BraxEnvParams:
    return BraxEnvParams()

  @property
  def num_actions(self) -> int:
    return int(self.brax_env.action_size)

  def action_space(self, params=None) -> spaces.Box:
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    # brax actions live in [-1, 1]; each environment rescales them to its actuators.
    return spaces.Box(-1.0, 1.0, (self.num_actions,), jnp.float32)

  def observation_space(self, params=None) -> spaces.Box:
    # brax's ``observation_size`` runs an eager reset (seconds with the generalized
    # pipeline); tracing one for its shape is enough.
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    if self._obs_shape is None:
      self._obs_shape = jax.eval_shape(self.brax_env.reset, jax.random.PRNGKey(0)).obs.shape
    return spaces.Box(-jnp.inf, jnp.inf, self._obs_shape, jnp.float32)

  def reset(self, key, params=None):
    brax_state = self.brax_env.reset(key)
    return brax_state.obs, BraxEnvState(brax_state, jnp.zeros((), jnp.int32))

  def step(self, key, state: BraxEnvState, action, params=None):
    params = self.default_params if params is None else params
    nxt = self.brax_env.step(state.brax_state, jnp.asarray(action, jnp.float32))
    time = state.time + 1
    terminated = jnp.asarray(nxt.done) > 0.5
    truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
    done = jnp.logical_or(terminated, truncated)
    # Reset inside the step with this step's key (a fresh random start). Under
    # vmap both branches run anyway, so a select costs no more than a cond.
    reset_obs, reset_state = self.reset(key, params)
    fresh = reset_state.brax_state
    if jax.tree.structure(fresh) != jax.tree.structure(nxt):
      # info / metrics keys differ between reset and step: carry only the physics.
      fresh = nxt.replace(pipeline_state=fresh.pipeline_state, obs=fresh.obs)
    new_state = BraxEnvState(_select(done, fresh, nxt), jnp.where(done, 0, time))
    info = {"final_observation": nxt.obs, "discount": 1.0 - terminated.astype(jnp.float32)}
    return (jnp.where(done, reset_obs, nxt.obs), new_state, jnp.asarray(nxt.reward, jnp.float32),
            terminated, truncated, info)

  def __repr__(self) -> str:
    return f"BraxEnv({self.name!r}, backend={self.backend!r})"


def _unknown_message(name: str, known) -> str:
  close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join('brax/' + c for c in close)}?" if close else ""
  return (f"unknown brax environment {name!r}.{hint} "
          f"Known: {', '.join('brax/' + k for k in known)}")


def make_brax(name: str, max_steps_in_episode: int = 1000, backend: str | None = None,
              **kwargs) -> tuple[BraxEnv, BraxEnvParams]:
  """``(env, params)`` for ``brax/<name>``; ``kwargs`` go to the brax constructor."""
  if isinstance(max_steps_in_episode, bool) or not isinstance(max_steps_in_episode, int) \
      or max_steps_in_episode <= 0:
    raise ValueError(
        f"brax/{name}: max_steps_in_episode must be a positive integer, got {max_steps_in_episode!r}")
  return BraxEnv(name, backend, **kwargs), BraxEnvParams(max_steps_in_episode=max_steps_in_episode)


registry.register_prefix("brax/", make_brax, BRAX_ENVS)

"""XLand-MiniGrid environments behind the gymnax 1.0 API: ``make("xminigrid/<id>")``.

    env, params = rewardjax.envs.make("xminigrid/MiniGrid-DoorKey-8x8")
    obs, state = env.reset(key, params)               # obs: uint8 [7, 7, 2] (tile, colour)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Every id of ``xminigrid.registered_environments()`` is available (Nikulin et al.
2023, "XLand-MiniGrid: Scalable Meta-Reinforcement Learning Environments in JAX").
The adapter wraps ONE xminigrid environment, so agents vmap it like any gymnax one:

- observations are xminigrid's egocentric view, an integer grid ``[V, V, 2]`` of
  (tile id, colour id) per cell (``V = 7``; 3 for MemoryS*, 5 for XLand-*), with
  ``observation_space`` a ``Box`` of dtype ``uint8`` whose ``high`` is the
  largest tile id in channel 0 and the largest colour id in channel 1;
- ``terminated`` is xminigrid's goal check (the task is done: goal reached, or
  for MemoryS* either end of the corridor); ``truncated`` is the step limit
  ``params.max_steps_in_episode`` (xminigrid's per-task default, or ``max_steps=``),
  never set on a terminal step;
- the reward is xminigrid's: ``1 − 0.9 · t / max_steps`` on success, 0 otherwise;
- when either flag is set, ``step`` resets inside the step with its own key, so
  every episode gets a freshly generated layout, and ``info["final_observation"]``
  keeps the true last observation.

XLand-MiniGrid-* ids are meta-RL worlds whose task is a ruleset; xminigrid's own
default is an empty ruleset (no goal, the episode only truncates). Here they get
``default_ruleset()`` instead: one yellow ball is placed in the world and the goal
is to pick it up (``AgentHoldGoal``), with no rules. Pass ``ruleset=`` (an
``xminigrid.types.RuleSet``, e.g. from ``xminigrid.load_benchmark``) for another;
``params.ruleset`` is a pytree, so rulesets can be vmapped.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rewardjax import extras
from rewardjax.envs import registry

if TYPE_CHECKING:
  from gymnax.environments import spaces

PREFIX = "xminigrid/"
# xminigrid.registered_environments() of xminigrid 0.9.3 (listed without importing it).
XMINIGRID_ENVS = (
    *(f"XLand-MiniGrid-R{r}-{s}x{s}" for r, sizes in
      ((1, (9, 11, 13, 15, 17)), (2, (9, 11, 13, 15, 17)), (4, (9, 11, 13, 15, 17)),
       (6, (13, 17, 19)), (9, (16, 19, 25))) for s in sizes),
    "MiniGrid-BlockedUnlockPickUp",
    *(f"MiniGrid-DoorKey-{s}x{s}" for s in (5, 6, 8, 16)),
    *(f"MiniGrid-Empty-{s}x{s}" for s in (5, 6, 8, 16)),
    *(f"MiniGrid-EmptyRandom-{s}x{s}" for s in (5, 6, 8, 16)),
    "MiniGrid-FourRooms", "MiniGrid-LockedRoom",
    *(f"MiniGrid-MemoryS{s}" for s in (8, 16, 32, 64, 128)),
    "MiniGrid-Playground", "MiniGrid-Unlock", "MiniGrid-UnlockPickUp",
)


def default_ruleset():
  """XLand's fixed default task: pick up the one yellow ball; no rules."""
  xm = extras.require("xminigrid", PREFIX + "XLand-MiniGrid-*")
  from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles  # pylint: disable=g-import-not-at-top
  from xminigrid.core.goals import AgentHoldGoal  # pylint: disable=g-import-not-at-top
  from xminigrid.core.rules import EmptyRule  # pylint: disable=g-import-not-at-top
  ball = TILES_REGISTRY[Tiles.BALL, Colors.YELLOW]
  return xm.types.RuleSet(goal=AgentHoldGoal(tile=ball).encode(),
                          rules=EmptyRule().encode()[None, :],
                          init_tiles=ball[None, :])


@struct.dataclass
class XMiniGridParams:
  """The step limit (static: xminigrid scales its reward by it) and XLand's ruleset."""
  max_steps_in_episode: int = struct.field(pytree_node=False, default=100)
  ruleset: Any = None      # xminigrid.types.RuleSet for XLand-* ids; None otherwise


class XMiniGridEnv:
  """One xminigrid environment with gymnax-1.0 ``reset`` / ``step`` and spaces."""

  def __init__(self, name: str, **kwargs):
    xm = extras.require("xminigrid", PREFIX + name)
    known = xm.registered_environments()
    if name not in known:
      raise ValueError(_unknown_message(name, known))
    try:
      self.xm_env, self.xm_params = xm.make(name, **kwargs)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{PREFIX}{name}: bad keyword arguments {sorted(kwargs)}: {e}") from e
    self.name = name
    self.is_xland = name.startswith("XLand-")

  @property
  def default_params(self) -> XMiniGridParams:
    return XMiniGridParams(int(self.xm_params.max_steps),
                           default_ruleset() if self.is_xland else None)

  @property
  def num_actions(self) -> int:
    return int(self.xm_env.num_actions(self.xm_params))

  def action_space(self, params=None) -> spaces.Discrete:
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    return spaces.Discrete(self.num_actions)

  def observation_space(self, params=None) -> spaces.Box:
    from gymnax.environments import spaces  # pylint: disable=g-import-not-at-top
    from xminigrid.core.constants import NUM_COLORS, NUM_TILES  # pylint: disable=g-import-not-at-top
    shape = tuple(int(s) for s in self.xm_env.observation_shape(self.xm_params))
    high = np.broadcast_to(np.array([NUM_TILES - 1, NUM_COLORS - 1], np.uint8), shape)
    return spaces.Box(np.zeros(shape, np.uint8), high, shape, jnp.uint8)

  def _inner_params(self, params: XMiniGridParams):
    inner = self.xm_params.replace(max_steps=params.max_steps_in_episode)
    return inner.replace(ruleset=params.ruleset) if self.is_xland else inner

  def reset(self, key, params=None):
    params = self.default_params if params is None else params
    timestep = self.xm_env.reset(self._inner_params(params), key)
    return timestep.observation, timestep

  def step(self, key, state, action, params=None):
    params = self.default_params if params is None else params
    inner = self._inner_params(params)
    nxt = self.xm_env.step(inner, state, jnp.asarray(action, jnp.int32))
    terminated = nxt.discount == 0.0                        # xminigrid: 0 only on the goal check
    truncated = jnp.logical_and(nxt.state.step_num >= params.max_steps_in_episode, ~terminated)
    done = jnp.logical_or(terminated, truncated)
    # Reset inside the step with this step's key (a fresh layout). Under vmap both
    # branches run anyway, so a select costs no more than a cond.
    fresh = self.xm_env.reset(inner, key)
    new_state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, nxt)
    info = {"final_observation": nxt.observation, "discount": nxt.discount.astype(jnp.float32)}
    return (new_state.observation, new_state, jnp.asarray(nxt.reward, jnp.float32),
            terminated, truncated, info)

  def __repr__(self) -> str:
    return f"XMiniGridEnv({self.name!r})"


def _unknown_message(name: str, known) -> str:
  close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join(PREFIX + c for c in close)}?" if close else ""
  return f"unknown xminigrid environment {name!r}.{hint} Known: {', '.join(PREFIX + k for k in known)}"


def make_xminigrid(name: str, max_steps: int | None = None, ruleset=None,
                   **kwargs) -> tuple[XMiniGridEnv, XMiniGridParams]:
  """``(env, params)`` for ``xminigrid/<name>``.

  ``max_steps`` (alias ``max_steps_in_episode``) overrides the step limit;
  ``ruleset`` sets an XLand-* task; other ``kwargs`` go to ``xminigrid.make``
  (``view_size=``).
  """
  if "max_steps_in_episode" in kwargs:
    if max_steps is not None:
      raise ValueError(f"{PREFIX}{name}: give max_steps or max_steps_in_episode, not both")
    max_steps = kwargs.pop("max_steps_in_episode")
  if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                or max_steps <= 0):
    raise ValueError(f"{PREFIX}{name}: max_steps must be a positive integer, got {max_steps!r}")
  env = XMiniGridEnv(name, **kwargs)
  params = env.default_params
  if max_steps is not None:
    params = params.replace(max_steps_in_episode=max_steps)
  if ruleset is not None:
    if not env.is_xland:
      raise ValueError(f"{PREFIX}{name}: ruleset= applies to XLand-MiniGrid-* ids only")
    params = params.replace(ruleset=ruleset)
  return env, params


registry.register_prefix(PREFIX, make_xminigrid, XMINIGRID_ENVS)

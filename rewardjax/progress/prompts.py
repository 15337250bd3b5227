"""``prompt``: the text to send to a language model to get a progress function.

The prompt states the task, the observation layout, the output contract
(``CONTRACT``) and an example for a different task (``EXAMPLE``). Send it to
your own model and pass the reply to ``load``; nothing here calls a network.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple, Sequence


class EnvDescription(NamedTuple):
  """What a language model needs to know about an environment.

  Attributes:
    task: the goal, the actions and the reward, in plain words.
    layout: one ``(index, meaning, range)`` per observation entry.
    obs_shape: the shape of one observation.
    notes: anything else that helps (dynamics, special observations).
  """
  task: str
  layout: tuple[tuple[str, str, str | None], ...]
  obs_shape: tuple[int, ...]
  notes: str = ""


_MOUNTAINCAR_LAYOUT = (
    ("obs[0]", "car position x along the track; the valley floor is at about "
               "-0.52 (x = -pi/6), the left wall at -1.2", "[-1.2, 0.6]"),
    ("obs[1]", "car velocity (positive = moving right)", "[-0.07, 0.07]"),
)

KNOWN_ENVS: dict[str, EnvDescription] = {
    "MountainCar-v0": EnvDescription(
        task=(
            "An underpowered car starts at rest in a valley (position in "
            "[-0.6, -0.4]) and must reach the flag on top of the right hill "
            "(position >= 0.5). Its engine is too weak to drive straight up: "
            "it must first swing up the left hill to build momentum. Actions: "
            "0 = push left, 1 = no push, 2 = push right. Reward -1 per step "
            "until the goal; episodes last at most 200 steps."),
        layout=_MOUNTAINCAR_LAYOUT,
        obs_shape=(2,),
        notes=(
            "Dynamics per step: velocity += 0.001 * (action - 1) - 0.0025 * "
            "cos(3 * position), clipped to [-0.07, 0.07]; position += velocity, "
            "clipped to [-1.2, 0.6]; at the left wall the velocity becomes 0. "
            "The track height is sin(3 * position).")),
    "MountainCarContinuous-v0": EnvDescription(
        task=(
            "An underpowered car starts at rest in a valley (position in "
            "[-0.6, -0.4]) and must reach the flag on top of the right hill "
            "(position >= 0.45). Its engine is too weak to drive straight up: "
            "it must first swing up the left hill to build momentum. The "
            "action is a force in [-1, 1]. Reward +100 on reaching the flag, "
            "minus 0.1 * action^2 every step; episodes last at most 999 steps."),
        layout=_MOUNTAINCAR_LAYOUT,
        obs_shape=(2,),
        notes=(
            "Dynamics per step: velocity += 0.0015 * action - 0.0025 * "
            "cos(3 * position), clipped to [-0.07, 0.07]; position += velocity, "
            "clipped to [-1.2, 0.6]. The track height is sin(3 * position).")),
    "DeepSea-bsuite": EnvDescription(
        task=(
            "The agent starts in the top-left cell of an N x N grid (N = 8 by "
            "default) and descends one row per step, moving one column left or "
            "right each time (it cannot leave the grid). Only the bottom-right "
            "cell gives a reward (+1); every move right costs 0.01 / N, so "
            "reaching the treasure requires moving right at every single step "
            "despite the small costs. The episode ends after N steps."),
        layout=(
            ("obs[r, c]", "1.0 at the agent's cell (row r, column c), 0.0 "
                          "elsewhere; row 0 is the top, column 0 the left",
             "{0.0, 1.0}"),
            ("all entries 0.0", "the episode has ended (the agent moved past "
                                "the last row)", None),
        ),
        obs_shape=(8, 8),
        notes=(
            "The observation may also arrive flattened row-major to N * N "
            "values; recover N as round(obs.size ** 0.5) (obs.size is a static "
            "Python int) and use jnp.reshape(obs, (N, N)).")),
    "CartPole-v1": EnvDescription(
        task=(
            "A pole is hinged to a cart that moves along a track. Keep the pole "
            "upright and the cart on the track for as long as possible. "
            "Actions: 0 = push the cart left, 1 = push it right. Reward +1 per "
            "step; the episode ends when the pole tilts more than 12 degrees "
            "(0.2095 rad) or the cart leaves [-2.4, 2.4], and after 500 steps "
            "at most."),
        layout=(
            ("obs[0]", "cart position (0 = centre)", "[-2.4, 2.4]"),
            ("obs[1]", "cart velocity", "unbounded, typically [-3, 3]"),
            ("obs[2]", "pole angle in radians (0 = upright)",
             "[-0.2095, 0.2095]"),
            ("obs[3]", "pole angular velocity", "unbounded, typically [-3.5, 3.5]"),
        ),
        obs_shape=(4,),
    ),
}

CONTRACT = """\
Write ONE Python function `def progress(obs):` (small top-level helper functions
and constants are allowed) that follows these rules:

- `obs` is ONE observation (no batch dimension), a jax array; the function is
  applied to many observations with jax.vmap.
- Return a 1-D jax.numpy float array of {outputs}.
  Each value lies in [0, 1] (use jnp.clip) and is higher when the agent is
  closer to the goal; each should measure a distinct, meaningful aspect of
  progress that changes smoothly.
- Use only `jnp` (jax.numpy) and `math`. The only imports allowed are
  `import jax.numpy as jnp` and `import math`: no numpy, no other modules.
- It must work under jax.jit: no Python `if`, `and`, `or`, `not`, `min()`,
  `max()`, `float()` or `int()` on values computed from `obs`; use jnp.where,
  jnp.logical_and, jnp.minimum, jnp.maximum and jnp.clip instead. Python `if` on
  shapes and constants is fine.
- Pure and safe: no I/O, no print, no state, no classes, no lambda, no while
  loops, no try/except, no global statements, no names or attributes that
  start with an underscore.
- Finite for every valid observation: guard divisions, logs and square roots.
"""

EXAMPLE = '''\
# Task: a point mass at obs[0:2] in the square [-1, 1] x [-1, 1] must reach
# the goal at (0.8, 0.8).
import jax.numpy as jnp

GOAL = jnp.array([0.8, 0.8])
MAX_DIST = 2.55  # the farthest point of the square, (-1, -1), is 2.546 away


def progress(obs):
  pos = obs[0:2]
  dist = jnp.sqrt(jnp.sum((pos - GOAL) ** 2))
  closeness = 1.0 - dist / MAX_DIST
  # A per-axis measure too: it separates states that are equally far away.
  x_progress = (pos[0] + 1.0) / 1.8
  return jnp.clip(jnp.stack([closeness, x_progress]), 0.0, 1.0)
'''


def _format_range(r) -> str:
  """``[low, high]`` for a pair, else the text as given."""
  if isinstance(r, (tuple, list)) and len(r) == 2:
    return f"[{r[0]}, {r[1]}]"
  return str(r)


def _format_layout(layout) -> str:
  """One Markdown bullet per ``(index, meaning[, range])`` entry, or free text as given."""
  if isinstance(layout, str):
    return layout.strip()
  rows = []
  for entry in layout:
    entry = tuple(entry)
    if len(entry) == 2:
      index, meaning = entry
      rows.append(f"- `{index}`: {meaning}")
    elif len(entry) == 3:
      index, meaning, rng = entry
      rows.append(f"- `{index}`: {meaning}" + (
          f"; range {_format_range(rng)}" if rng not in (None, "", "-") else ""))
    else:
      raise ValueError(
          f"prompt: each observation_layout entry must be (index, meaning) or "
          f"(index, meaning, range), got {entry!r}")
  return "\n".join(rows)


_INTRO = (
    "You are writing a progress function for a reinforcement-learning task. "
    "It maps one observation to a few numbers that measure how close the "
    "agent is to achieving the goal. It will be used as a potential for "
    "reward shaping and, binned, as a key for count-based exploration, so it "
    "should reward the intermediate steps the agent has to take, not just "
    "the final success.")

_REPLY_FORMAT = "Reply with the code only, in one ```python code block."


def _known_env(env_id: str | None, task_description, observation_layout
              ) -> EnvDescription | None:
  """``KNOWN_ENVS[env_id]``; an unknown id is an error unless the caller describes the task."""
  if env_id is None:
    return None
  known = KNOWN_ENVS.get(env_id)
  if known is None and (task_description is None or observation_layout is None):
    close = difflib.get_close_matches(env_id, KNOWN_ENVS, n=2, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"prompt: no description of {env_id!r}.{hint} Known: "
        f"{', '.join(sorted(KNOWN_ENVS))}; otherwise pass task_description and "
        f"observation_layout")
  return known


def _describe_env(env_id, task_description, observation_layout, obs_shape,
                  notes) -> EnvDescription:
  """The description to render: the arguments given, else what ``KNOWN_ENVS`` has.

  ``layout`` is kept as given (free text or entries); ``obs_shape`` may be None.
  """
  known = _known_env(env_id, task_description, observation_layout)
  task = task_description or (known.task if known else None)
  layout = observation_layout if observation_layout is not None else (
      known.layout if known else None)
  if task is None or layout is None:
    raise ValueError(
        "prompt: describe the task: pass env_id (one of "
        f"{', '.join(sorted(KNOWN_ENVS))}) or both task_description and "
        "observation_layout")
  shape = tuple(obs_shape) if obs_shape is not None else (
      known.obs_shape if known else None)
  notes = notes if notes is not None else (known.notes if known else "")
  return EnvDescription(task, layout, shape, notes)


def _outputs(num_outputs: int | None) -> str:
  """How many values to ask for: exactly ``num_outputs``, or 1 to 4."""
  if num_outputs is not None and (not isinstance(num_outputs, int)
                                  or num_outputs < 1):
    raise ValueError(f"prompt: num_outputs must be a positive int, got "
                     f"{num_outputs!r}")
  return (f"exactly {num_outputs} value{'s' if num_outputs > 1 else ''}"
          if num_outputs else "a fixed number k of values, 1 <= k <= 4")


def _task_section(env_id: str | None, task: str) -> str:
  return ("## Task\n" + (f"Environment: {env_id}\n" if env_id else "")
          + task.strip())


def _observation_section(env: EnvDescription) -> str:
  return ("## Observation\n"
          + (f"`obs` has shape {env.obs_shape}.\n" if env.obs_shape is not None
             else "")
          + _format_layout(env.layout)
          + (f"\n\n{env.notes.strip()}" if env.notes else ""))


def _example_sections(example: str | bool | None) -> list[str]:
  """``EXAMPLE`` (``None``/``True``), the caller's code (a str), or nothing (``False``)."""
  if example is None or example is True:
    return ["## Example (for a different task)\n```python\n"
            + EXAMPLE.rstrip() + "\n```"]
  if isinstance(example, str):
    return ["## Example\n```python\n" + example.strip() + "\n```"]
  if example is not False:
    raise ValueError(f"prompt: example must be a str, a bool or None, got "
                     f"{type(example).__name__}")
  return []


def prompt(task_description: str | None = None,
           observation_layout: str | Sequence[Sequence[Any]] | None = None,
           num_outputs: int | None = None,
           env_id: str | None = None,
           example: str | bool | None = None,
           *,
           obs_shape: Sequence[int] | None = None,
           notes: str | None = None) -> str:
  """The text to send to a language model to get a progress function.

  Send it to your own model, then pass the reply to ``load(reply, example_obs)``
  (which extracts the code from a Markdown fence). ``prompt(env_id=...)`` alone
  works for the environments in ``KNOWN_ENVS``; arguments given explicitly
  override what is known about them.

  Args:
    task_description: the goal, actions and reward, in plain words.
    observation_layout: ``(index, meaning, range)`` (or ``(index, meaning)``)
      per observation entry, or free text. ``range`` may be ``(low, high)``.
    num_outputs: the exact number k of progress values to ask for; ``None``
      lets the model choose between 1 and 4.
    env_id: an id from ``KNOWN_ENVS`` to fill in what is not given.
    example: ``None`` or ``True`` includes ``EXAMPLE`` (for a different task, so
      it shows the form without giving away an answer); ``False`` includes
      none; a string is included verbatim as the example code.
    obs_shape: the shape of one observation, if not known from ``env_id``.
    notes: extra information (dynamics, special observations).

  Returns:
    The prompt text.
  """
  env = _describe_env(env_id, task_description, observation_layout, obs_shape,
                      notes)
  outputs = _outputs(num_outputs)
  parts = [
      _INTRO,
      _task_section(env_id, env.task),
      _observation_section(env),
      "## Output contract\n" + CONTRACT.format(outputs=outputs).rstrip(),
  ]
  parts += _example_sections(example)
  parts.append(_REPLY_FORMAT)
  return "\n\n".join(parts) + "\n"

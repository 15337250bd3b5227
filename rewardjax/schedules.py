"""Coefficient schedules: a factor of the update index that scales a coefficient.

An intrinsic reward that keeps its full weight after the goal is found keeps
pulling the agent away from exploiting it; RLeXplore decays every intrinsic
coefficient as ``β_t = β·(1 − κ)^t`` (Yuan et al. 2024). A schedule here is
one of

* ``exp:κ``: ``f(t) = (1 − κ)^t``;
* ``linear:φ[:floor]``: ``f(t) = 1 + (floor − 1)·min(1, t / (φ·U))``, from 1 to
  ``floor`` (default 0) over the first share ``φ`` of the ``U`` updates, then
  ``floor``;
* ``step:φ[:floor]``: ``f(t) = 1`` for ``t < φ·U``, then ``floor`` (default 0);

with ``t`` the 0-based update index: update ``t`` trains with ``coef·f(t)``.
The rate ``κ`` or share ``φ`` (the schedule's ``param``) may be traced, so a
sweep over it compiles once; the kind and the floor are fixed.

Written as text (``"exp:0.001"``) in reward specs (``counts@decay=exp:0.001``)
and in PPO's ``ent_schedule``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

KINDS = ("exp", "linear", "step")


class Schedule(NamedTuple):
  """A coefficient schedule (see the module doc); ``param`` is κ or φ."""
  kind: str
  param: float
  floor: float = 0.0


def parse(text: str) -> Schedule:
  """``"exp:0.001"``, ``"linear:0.5"``, ``"linear:0.5:0.1"``, ``"step:0.25:0"`` -> ``Schedule``.

  Raises a ``ValueError`` naming the problem for any other text.
  """
  if not isinstance(text, str):
    raise ValueError(f"a schedule is text such as 'exp:0.001', got {text!r}")
  kind, *args = text.strip().split(":")
  usage = "exp:<rate>, linear:<fraction>[:<floor>] or step:<fraction>[:<floor>]"
  if kind not in KINDS or not 1 <= len(args) <= (1 if kind == "exp" else 2):
    raise ValueError(f"bad schedule {text!r}: expected {usage}")
  try:
    values = [float(a) for a in args]
  except ValueError:
    raise ValueError(f"bad schedule {text!r}: expected {usage}") from None
  schedule = Schedule(kind, *values)
  check(schedule, text)
  return schedule


def check(schedule: Schedule, where: str = "schedule") -> None:
  """Named errors for a rate outside [0, 1), a share outside (0, 1] or a non-finite floor."""
  if schedule.kind not in KINDS:
    raise ValueError(f"{where}: kind must be one of {KINDS}, got {schedule.kind!r}")
  p = schedule.param
  if schedule.kind == "exp" and not 0.0 <= p < 1.0:
    raise ValueError(f"{where}: the decay rate must be in [0, 1), got {p}")
  if schedule.kind != "exp" and not 0.0 < p <= 1.0:
    raise ValueError(f"{where}: the fraction of training must be in (0, 1], got {p}")
  if not math.isfinite(schedule.floor):
    raise ValueError(f"{where}: the floor must be finite, got {schedule.floor}")


def factor(schedule: Schedule, param, t, num_updates: int) -> jax.Array:
  """``f(t)`` of the module doc at update ``t`` (0-based) of ``num_updates``.

  ``param`` is the schedule's κ or φ, possibly traced (a sweep); ``t`` may be traced.
  """
  t = jnp.asarray(t, jnp.float32)
  param = jnp.asarray(param, jnp.float32)
  if schedule.kind == "exp":
    return jnp.power(1.0 - param, t)
  end = param * num_updates
  if schedule.kind == "linear":
    return 1.0 + (schedule.floor - 1.0) * jnp.minimum(1.0, t / end)
  return jnp.where(t < end, 1.0, jnp.float32(schedule.floor))

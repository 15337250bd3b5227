"""Value mappings for Q-learning: learn ``f(Q)`` instead of ``Q``.

A value mapping is a pair of pure, elementwise, mutually inverse functions. A
Q-learner with mapping ``f`` keeps its network outputs in the mapped space,
``q̃ = f(Q)``, builds its bootstrap targets in the regular space,

    y = r + γ · f⁻¹(q̃_target(s', a*)),

and regresses ``q̃(s, a)`` onto ``f(y)`` (van Seijen, Fatemi & Tavakoli 2019,
"Using a Logarithmic Mapping to Enable Lower Discount Factors in Reinforcement
Learning"; Fatemi & Tavakoli 2022, "Orchestrated Value Mapping"). With several
reward channels each channel (Q head) has its own mapping, and actions are
chosen on ``Σ_c coef_c · f_c⁻¹(q̃_c)``, i.e. in the regular space.

    m = logarithmic()
    m.inverse(m.forward(x)) ≈ x

Add a mapping by registering a factory in ``MAPPINGS``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax.numpy as jnp

from rewardjax.types import Array


class ValueMapping(NamedTuple):
  """``forward: Q -> q̃`` and its inverse ``inverse: q̃ -> Q`` (elementwise)."""
  forward: Callable[[Array], Array]
  inverse: Callable[[Array], Array]
  name: str = "custom"


def identity() -> ValueMapping:
  """``f(x) = x``: plain Q-learning."""
  return ValueMapping(lambda x: x, lambda x: x, "identity")


def logarithmic(c: float = 0.5, delta: float = 0.02) -> ValueMapping:
  """The logarithmic mapping of Log Q-learning, extended to signed values.

  van Seijen et al. (2019) map a non-negative value ``x`` to
  ``f(x) = c · ln(x + δ) + d`` with ``d = −c·ln δ`` (so ``f(0) = 0``), and learn
  positive and negative reward parts in two separate heads. Here the same map is
  extended oddly to the whole line, ``f(x) = sign(x) · c · ln(1 + |x|/δ)``,
  which equals theirs for ``x >= 0``; to reproduce their two-head scheme, give
  the positive and negative parts of a reward two channels (e.g. with
  ``rewards.clip`` transforms), each with this mapping.

  The inverse is ``f⁻¹(y) = sign(y) · δ · (exp(|y|/c) − 1)``. Values near 0 are
  resolved finely (slope ``c/δ``) and large values compressed, so action gaps
  of very different sizes are learnt at comparable scale, which is what lets
  small discounts work.
  """
  if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
    raise ValueError(f"logarithmic: c must be > 0, got {c!r}")
  if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
    raise ValueError(f"logarithmic: delta must be > 0, got {delta!r}")

  def forward(x):
    return jnp.sign(x) * c * jnp.log1p(jnp.abs(x) / delta)

  def inverse(y):
    # Clamped so that an untrained head cannot overflow exp() to inf.
    return jnp.sign(y) * delta * jnp.expm1(jnp.minimum(jnp.abs(y) / c, 80.0))

  return ValueMapping(forward, inverse, "log")


MAPPINGS: dict[str, Callable[[], ValueMapping]] = {
    "identity": identity,
    "log": logarithmic,
}


def get(name: str | ValueMapping) -> ValueMapping:
  """A mapping by name (``"identity"``, ``"log"``) or as given."""
  if isinstance(name, ValueMapping):
    return name
  try:
    return MAPPINGS[name]()
  except (KeyError, TypeError):
    raise ValueError(f"unknown value mapping {name!r}; choose one of {sorted(MAPPINGS)}") from None


def per_channel(names, num_channels: int) -> tuple[ValueMapping, ...]:
  """One mapping per channel from one name (used for all) or one name per channel."""
  if isinstance(names, (str, ValueMapping)):
    names = (names,)
  names = tuple(names)
  if len(names) == 1:
    names = names * num_channels
  if len(names) != num_channels:
    raise ValueError(
        f"value_mapping: give one mapping or one per reward channel ({num_channels}), "
        f"got {len(names)}: {names}")
  return tuple(get(n) for n in names)


def apply(mappings: tuple[ValueMapping, ...], x: Array, inverse: bool = False) -> Array:
  """Applies channel ``c``'s mapping (or inverse) to ``x[..., c]``."""
  if all(m.name == "identity" for m in mappings):
    return x
  fns = [m.inverse if inverse else m.forward for m in mappings]
  return jnp.stack([f(x[..., c]) for c, f in enumerate(fns)], axis=-1)

"""The registry of hand-written progress functions, looked up by name."""

from __future__ import annotations

import difflib
from typing import Callable, NamedTuple

from rewardjax.progress.hand_written import cartpole_progress
from rewardjax.progress.hand_written import deepsea_progress
from rewardjax.progress.hand_written import deepsea_right_progress
from rewardjax.progress.hand_written import mountaincar_progress
from rewardjax.types import Array


class ProgressSpec(NamedTuple):
  """A registered progress function and what binning and shaping need to know.

  Attributes:
    fn: ``obs -> Array[k]`` for one observation.
    env_id: the environment it is written for (``rewardjax.envs.make`` id).
    description: what its components measure, in plain words.
    low: range of each component, for binning (``progress_counts``).
    high: see ``low``.
    potential_weights: weights of the components in the shaping potential
      (``None``: their mean). A component can be good for counting but a
      misleading potential.
  """
  fn: Callable[[Array], Array]
  env_id: str
  description: str
  low: tuple[float, ...]
  high: tuple[float, ...]
  potential_weights: tuple[float, ...] | None = None


# As a potential, position alone rewards pushing right from the start, which is
# exactly wrong (the car must swing back first); energy rewards the swing.
_MC_POTENTIAL_WEIGHTS = (0.0, 1.0)

REGISTRY: dict[str, ProgressSpec] = {
    "mountaincar": ProgressSpec(
        mountaincar_progress, "MountainCar-v0",
        "position and mechanical energy relative to what reaching the flag needs",
        (0.0, 0.0), (1.0, 1.0), potential_weights=_MC_POTENTIAL_WEIGHTS),
    "mountaincar_continuous": ProgressSpec(
        mountaincar_progress, "MountainCarContinuous-v0",
        "position and mechanical energy relative to what reaching the flag needs",
        (0.0, 0.0), (1.0, 1.0), potential_weights=_MC_POTENTIAL_WEIGHTS),
    "deepsea": ProgressSpec(
        deepsea_progress, "DeepSea-bsuite", "depth and column in the grid",
        (0.0, 0.0), (1.0, 1.0)),
    "deepsea_right": ProgressSpec(
        deepsea_right_progress, "DeepSea-bsuite", "column in the grid",
        (0.0,), (1.0,)),
    "cartpole": ProgressSpec(
        cartpole_progress, "CartPole-v1", "pole uprightness and cart centredness",
        (0.0, 0.0), (1.0, 1.0)),
}


def get(name: str) -> ProgressSpec:
  """The registered progress function ``name``; a ``ValueError`` lists close names."""
  try:
    return REGISTRY[name]
  except KeyError:
    close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown progress function {name!r}.{hint} Known: {', '.join(sorted(REGISTRY))}"
    ) from None

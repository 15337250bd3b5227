"""Progress functions for known environments, as ``rewardjax.envs.progress_functions``.

The functions and their registry live in ``rewardjax.progress`` (``hand_written``,
``registry``, ``potentials``); this module re-exports them under the envs
namespace.
"""

from rewardjax.progress.hand_written import cartpole_progress
from rewardjax.progress.hand_written import deepsea_progress
from rewardjax.progress.hand_written import deepsea_right_progress
from rewardjax.progress.hand_written import mountaincar_progress
from rewardjax.progress.potentials import potential
from rewardjax.progress.registry import REGISTRY
from rewardjax.progress.registry import ProgressSpec
from rewardjax.progress.registry import get

__all__ = [
    "ProgressSpec", "REGISTRY", "get", "potential", "mountaincar_progress",
    "deepsea_progress", "deepsea_right_progress", "cartpole_progress",
]

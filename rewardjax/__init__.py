"""rewardjax: reinforcement learning with intrinsic and shaped rewards, in JAX.

Importing rewardjax sets ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false``
unless you set that flag yourself (see ``rewardjax._xla_flags``): jaxlib 0.10.x can
deadlock on CPU when a training function is vmapped over seeds.

Importing rewardjax starts no XLA backend (nothing in the package computes at
import time), so ``jax.distributed.initialize()`` may follow ``import rewardjax``.
"""

from rewardjax import _xla_flags

_xla_flags.apply()

# pylint: disable=g-import-not-at-top,wrong-import-position
from rewardjax import envs
from rewardjax import episodes
from rewardjax import progress
from rewardjax import rewards
from rewardjax import stats
from rewardjax import agents
from rewardjax.types import RewardModule
from rewardjax.types import Transition

__version__ = "0.1.0"

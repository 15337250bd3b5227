"""Optional dependencies: the extras of ``pip install "rewardjax[...]"``.

The core install (reward modules, PPO / DQN / PQN on gymnax environments, the
``rewardjax`` command) imports none of these packages, and ``import rewardjax``
imports none of them. Code that needs one calls ``require`` at the point of use,
which imports it or raises an ``ImportError`` naming the command that installs it.
"""

from __future__ import annotations

import importlib
import types

# Top-level module -> the extra that installs it.
EXTRAS = {
    "brax": "brax",                  # brax/<name> environments (brings MuJoCo and MJX)
    "craftax": "craftax",            # craftax/<id> environments
    "tensorboardX": "tensorboard",   # rewardjax train --tensorboard
    "xminigrid": "minigrid",         # xminigrid/<id> environments
}


def install_command(extra: str) -> str:
  """The shell command that installs ``extra``: ``pip install "rewardjax[extra]"``."""
  if extra not in EXTRAS.values():
    raise ValueError(f"unknown extra {extra!r}; rewardjax's extras: {sorted(set(EXTRAS.values()))}")
  return f'pip install "rewardjax[{extra}]"'


def require(module: str, needed_by: str) -> types.ModuleType:
  """Imports ``module`` (``"brax.envs"``) or raises an ``ImportError`` naming its extra.

  ``needed_by`` names what asked for it (``"brax/ant"``, ``"--tensorboard"``) and
  starts the message.
  """
  top = module.split(".")[0]
  if top not in EXTRAS:
    raise ValueError(f"{top!r} is not an optional dependency of rewardjax; known: {sorted(EXTRAS)}")
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f"{needed_by} needs the optional package {top} ({e}); install it with: "
                      f"{install_command(EXTRAS[top])}") from e

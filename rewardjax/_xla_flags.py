"""Protect users from a jaxlib 0.10.x CPU deadlock before the XLA backend starts.

jaxlib 0.10.2's CPU backend can deadlock forever in ``block_until_ready`` on some
vmapped training programs (for example a PPO loop vmapped over two seeds with
several epochs of minibatch updates). Turning off XLA's concurrency-optimised CPU
scheduler avoids the hang at no measurable cost for these programs.

XLA reads ``XLA_FLAGS`` once, when the first backend is created. Importing
rewardjax therefore appends the flag unless

* the user already set ``--xla_cpu_enable_concurrency_optimized_scheduler`` to any
  value (their choice wins), or
* ``REWARDJAX_KEEP_XLA_FLAGS=1`` is set (opt out entirely).

The flag only affects the CPU backend; GPU/TPU backends ignore it. If a backend was
already initialised before rewardjax was imported, the flag can no longer take
effect and a warning says so.
"""

from __future__ import annotations

import os
import warnings

FLAG_NAME = "--xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"{FLAG_NAME}=false"


def _backend_started() -> bool:
  # Importing jax does not start a backend; XLA_FLAGS still counts until one starts.
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def apply() -> bool:
  """Adds the scheduler flag to ``XLA_FLAGS`` if appropriate; returns whether it did."""
  if os.environ.get("REWARDJAX_KEEP_XLA_FLAGS", "") not in ("", "0"):
    return False
  current = os.environ.get("XLA_FLAGS", "")
  if FLAG_NAME in current:
    return False
  if _backend_started():
    warnings.warn(
        "rewardjax was imported after JAX initialised its backend, so it could not "
        f"set XLA_FLAGS={FLAG}. jaxlib 0.10.x can deadlock on CPU when a training "
        "function is vmapped over seeds; import rewardjax before running any JAX "
        "computation, or set the flag yourself.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False
  os.environ["XLA_FLAGS"] = (current + " " + FLAG).strip()
  return True

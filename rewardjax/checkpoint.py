"""Orbax checkpoints of a whole training run, for stopping and resuming.

A checkpoint at update ``u`` holds everything ``train.run`` needs to continue
bit for bit: the full runner state (agent parameters, optimiser state, reward
modules' states, environment states, PRNG keys; any leading seed / setting /
device axes included), the metrics of updates ``1 … u`` and a JSON record of
how the run was started (``meta``; the CLI stores its arguments there)::

    ckpt = Checkpointer("runs/x/checkpoints")
    ckpt.save(u, runner, metrics, meta={"args": ...})
    runner, metrics, meta = ckpt.restore(like=runner_shape)   # latest step
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def concat_metrics(parts: list[dict], axis: int) -> dict:
  """Joins per-chunk metric dicts along the update axis."""
  if not parts:
    return {}
  return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=axis) for k in parts[0]}


class Checkpointer:
  """Saves / restores ``(runner state, metrics so far, meta)`` by update number.

  Args:
    directory: folder of the checkpoints (created; made absolute for orbax).
    max_to_keep: how many of the latest checkpoints to keep.
  """

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        # Synchronous: a chunk's checkpoint is on disk before the next chunk runs.
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "history": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def save(self, step: int, state: Any, metrics: dict | None = None,
           meta: dict | None = None) -> None:
    """Writes checkpoint ``step`` (the number of updates done) and waits for it."""
    # ("metrics" is a name orbax reserves for its own best-checkpoint metrics.)
    metrics = {k: np.asarray(v) for k, v in (metrics or {}).items()}
    self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        history=ocp.args.StandardSave(metrics),
        meta=ocp.args.JsonSave(meta or {})))
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict, dict]:
    """``(state, metrics, meta)`` of checkpoint ``step`` (default: the latest).

    ``like``: a pytree with the state's structure, shapes and dtypes (e.g.
    ``jax.eval_shape`` of the agent's init); the state comes back with that
    structure (NamedTuples included).
    """
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        history=ocp.args.StandardRestore(),
        meta=ocp.args.JsonRestore()))
    metrics = {k: np.asarray(v) for k, v in (out.history or {}).items()}
    return out.state, metrics, dict(out.meta or {})

  def read_meta(self, step: int | None = None) -> dict:
    """Only the JSON record (to rebuild the run before restoring its state)."""
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out.meta or {})

  def close(self) -> None:
    self._manager.close()


__all__ = ["Checkpointer", "concat_metrics"]

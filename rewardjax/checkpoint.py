"""Orbax checkpoints of a whole training run, for stopping and resuming.

A checkpoint at update ``u`` holds everything ``train.run`` needs to continue
bit for bit: the full runner state (agent parameters, optimiser state, reward
modules' states, environment states, PRNG keys; any leading seed / setting /
device axes included), the metrics of updates ``1 … u`` and a JSON record of
how the run was started (``meta``; the CLI stores its arguments there)::

    ckpt = Checkpointer("runs/x/checkpoints")
    ckpt.save(u, runner, metrics, meta={"args": ...})
    runner, metrics, meta = ckpt.restore(like=runner_shape)   # latest step
    restored = ckpt.restore_newest_intact(like=runner_shape)  # skips damaged ones

Saves are synchronous and atomic (orbax writes ``<step>.orbax-checkpoint-tmp-*``
and renames it when complete), so a process killed while saving leaves the
previous checkpoints intact. Each complete checkpoint also gets a list of its
files with their sizes and SHA-256 digests (``FILES``). Before orbax reads a
checkpoint, its files are checked against that list and its arrays' shapes and
dtypes (orbax's metadata) against the state to restore, so a damaged
checkpoint (a truncated or altered file) or one from other arguments fails
with a one-line reason, never restores wrong values, and does not reach
orbax's reader (whose I/O threads print stray tracebacks on such failures).
``restore_newest_intact`` then falls back to the newest intact one, and
``set_aside`` renames a damaged one to ``<step>.broken`` so that the step can
be saved again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from rewardjax import run_folder

# In each checkpoint's folder: {relative path: [size, sha256]} of its other files.
FILES = "rewardjax_files.json"


class CheckpointError(RuntimeError):
  """No usable checkpoint, or one that could not be saved (the CLI's exit status 4)."""


def concat_metrics(parts: list[dict], axis: int) -> dict:
  """Joins per-chunk metric dicts along the update axis."""
  if not parts:
    return {}
  return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=axis) for k in parts[0]}


def first_line(error: BaseException, limit: int = 200) -> str:
  """A one-line account of ``error`` (orbax / tensorstore messages run to many lines)."""
  text = " ".join(str(error).split()) or type(error).__name__
  return text if len(text) <= limit else text[:limit - 1] + "…"


def check_history(metrics: dict, step: int) -> None:
  """``ValueError`` unless every metric holds exactly the ``step`` updates ``1 … step``."""
  for name, value in metrics.items():
    if np.ndim(value) == 0 or np.shape(value)[-1] != step:
      raise ValueError(f"metric {name!r} holds {np.shape(value)} values, not {step} updates")


def file_digests(folder: Path) -> dict[str, list]:
  """``{relative path: [size, sha256]}`` of every file below ``folder`` (``FILES`` aside)."""
  out = {}
  for path in sorted(folder.rglob("*")):
    if path.is_file() and path.name != FILES:
      with open(path, "rb") as f:
        out[str(path.relative_to(folder))] = [path.stat().st_size,
                                              hashlib.file_digest(f, "sha256").hexdigest()]
  return out


def check_files(folder: Path) -> None:
  """``ValueError`` naming the first file of ``folder`` that differs from its ``FILES``
  list (nothing to check without one: checkpoints saved before lists were kept)."""
  listed = folder / FILES
  if not listed.exists():
    return
  expected = json.loads(listed.read_text())
  found = file_digests(folder)
  for name, (size, digest) in expected.items():
    if name not in found:
      raise ValueError(f"file {name} is missing")
    if found[name][0] != size:
      raise ValueError(f"file {name} holds {found[name][0]} bytes, not {size}")
    if found[name][1] != digest:
      raise ValueError(f"file {name} differs from what was saved (SHA-256)")


def _key(entry) -> str:
  for attr in ("name", "key", "idx"):     # GetAttrKey, DictKey, SequenceKey
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def leaf_specs(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{dotted path: (shape, dtype)}`` of a state, an abstract state or orbax's metadata."""
  return {".".join(_key(k) for k in path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_fits(saved: dict, wanted: dict) -> None:
  """``ValueError`` unless two ``leaf_specs`` agree (the first difference named)."""
  for path in sorted(wanted.keys() | saved.keys()):
    if path not in saved or path not in wanted:
      where = "this run's" if path in wanted else "the saved"
      raise ValueError(f"state part {path} is only in {where} state")
    if saved[path] != wanted[path]:
      (s_shape, s_dtype), (w_shape, w_dtype) = saved[path], wanted[path]
      raise ValueError(f"state part {path} was saved as {s_dtype}{list(s_shape)}, this run "
                       f"has {w_dtype}{list(w_shape)}")


class Restored(NamedTuple):
  """What ``restore_newest_intact`` found."""
  state: Any
  metrics: dict
  meta: dict
  step: int
  broken: tuple[tuple[int, str], ...]   # newer checkpoints that failed, with why


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
    """Writes checkpoint ``step`` (the number of updates done) and waits for it.

    Raises:
      CheckpointError: orbax declined the save (it never saves a step at or
        below the newest one in the folder, e.g. another run's checkpoints).
    """
    # ("metrics" is a name orbax reserves for its own best-checkpoint metrics.)
    metrics = {k: np.asarray(v) for k, v in (metrics or {}).items()}
    saved = self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        history=ocp.args.StandardSave(metrics),
        meta=ocp.args.JsonSave(meta or {})))
    self._manager.wait_until_finished()
    if not saved:
      raise CheckpointError(
          f"checkpoint {step} was not saved: {self.directory} already holds checkpoint "
          f"{self.latest_step()}")
    if jax.process_index() == 0:
      folder = self.directory / str(int(step))
      digests = file_digests(folder)
      with run_folder.atomic_open(folder / FILES, "w", encoding="utf-8") as f:
        json.dump(digests, f)

  def steps(self) -> list[int]:
    """The complete checkpoints' steps, oldest first."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def interrupted_saves(self) -> list[str]:
    """Folders left by saves that never completed (the process was killed while saving)."""
    if not self.directory.is_dir():
      return []
    return sorted(p.name for p in self.directory.iterdir() if ".orbax-checkpoint-tmp" in p.name)

  def _step(self, step: int | None) -> int:
    """``step`` (default: the latest), its files checked against their ``FILES`` list."""
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    check_files(self.directory / str(step))
    return step

  def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict, dict]:
    """``(state, metrics, meta)`` of checkpoint ``step`` (default: the latest).

    ``like``: a pytree with the state's structure, shapes and dtypes (e.g.
    ``jax.eval_shape`` of the agent's init); the state comes back with that
    structure (NamedTuples included). ``ValueError`` if a file differs from its
    ``FILES`` entry or an array's shape or dtype from ``like``'s.
    """
    step = self._step(step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    check_fits(leaf_specs(self._manager.item_metadata(step)["state"].tree),
               leaf_specs(abstract))
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        history=ocp.args.StandardRestore(),
        meta=ocp.args.JsonRestore()))
    metrics = {k: np.asarray(v) for k, v in (out.history or {}).items()}
    return out.state, metrics, dict(out.meta or {})

  def read_meta(self, step: int | None = None) -> dict:
    """Only the JSON record (to rebuild the run before restoring its state)."""
    step = self._step(step)
    out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out.meta or {})

  def newest_meta(self, check: Callable[[dict, int], None] | None = None
                  ) -> tuple[dict, int, list[tuple[int, str]]]:
    """``(meta, step, broken)``: the newest JSON record that reads and passes ``check``.

    Raises:
      CheckpointError: no checkpoint's record reads (the message lists why).
    """
    broken = []
    for step in reversed(self.steps()):
      try:
        meta = self.read_meta(step)
        if check is not None:
          check(meta, step)
      except Exception as e:  # pylint: disable=broad-except  (orbax raises many kinds)
        broken.append((step, first_line(e)))
        continue
      return meta, step, broken
    raise CheckpointError(self._nothing_usable(broken))

  def restore_newest_intact(self, like: Any, check: Callable[[dict, int], None] | None = None,
                            at_most: int | None = None) -> Restored:
    """The newest checkpoint (at or below ``at_most``) that restores and passes checks.

    A checkpoint counts as intact when orbax restores it into ``like``'s
    structure and shapes, every metric holds ``step`` updates
    (``check_history``) and ``check(meta, step)`` raises nothing. Damaged ones
    are skipped and listed in ``Restored.broken``.

    Raises:
      CheckpointError: none is intact (the message lists why each failed).
    """
    broken = []
    for step in reversed(self.steps()):
      if at_most is not None and step > at_most:
        continue
      try:
        state, metrics, meta = self.restore(like, step)
        check_history(metrics, step)
        if check is not None:
          check(meta, step)
      except Exception as e:  # pylint: disable=broad-except  (orbax raises many kinds)
        broken.append((step, first_line(e)))
        continue
      return Restored(state, metrics, meta, step, tuple(broken))
    raise CheckpointError(self._nothing_usable(broken))

  def set_aside(self, step: int) -> Path:
    """Renames damaged checkpoint ``step`` to ``<step>.broken`` (kept for inspection)."""
    source = self.directory / str(step)
    target = source.with_name(f"{step}.broken")
    n = 1
    while target.exists():
      n += 1
      target = source.with_name(f"{step}.broken{n}")
    source.rename(target)
    self._manager.reload()
    return target

  def _nothing_usable(self, broken: list[tuple[int, str]]) -> str:
    if broken:
      reasons = "; ".join(f"checkpoint {s}: {why}" for s, why in broken)
      return f"no intact checkpoint in {self.directory} ({reasons})"
    interrupted = self.interrupted_saves()
    if interrupted:
      return (f"no complete checkpoint in {self.directory}: the first save was interrupted "
              f"(left {', '.join(interrupted)})")
    return f"no checkpoint in {self.directory}"

  def close(self) -> None:
    self._manager.close()


__all__ = ["CheckpointError", "Checkpointer", "FILES", "Restored", "check_files", "check_fits",
           "check_history", "concat_metrics", "file_digests", "first_line", "leaf_specs"]

"""A run's output folder: checked before training, written atomically after it.

    out = prepare("runs/x", overwrite=False)     # created, writable, not another run's
    with atomic_open(out / "metrics.csv", "w", newline="") as f:
      ...                                          # readers see the old file or the new one

``prepare`` runs before anything compiles, so a bad ``--out`` (an existing
file, a path below a file, a folder without write permission, a folder holding
another run's results) costs no training. Results are written to a temporary
file in the same folder and renamed over the target (``os.replace``, atomic on
POSIX and Windows), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

# What a run leaves in its folder; a folder holding any of them holds a run.
RESULT_FILES = ("metrics.csv", "summary.json", "learning_curve.png")
CHECKPOINTS = "checkpoints"


class FolderError(ValueError):
  """An output folder that cannot take this run's results."""


def held_results(folder: Path) -> list[str]:
  """The names of another run's results in ``folder`` (``checkpoints/`` included)."""
  if not folder.is_dir():
    return []
  return [name for name in (*RESULT_FILES, CHECKPOINTS) if (folder / name).exists()]


def check_writable(folder: Path, what: str = "--out") -> None:
  """Creates ``folder`` (and its parents) and proves it writable by writing a file there."""
  if folder.exists() and not folder.is_dir():
    raise FolderError(f"{what} {folder} is an existing file, not a folder")
  try:
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as e:
    raise FolderError(f"{what} {folder} is not writable: {e.strerror or e}") from e


def prepare(folder: str | os.PathLike, *, overwrite: bool, resuming: bool = False) -> Path:
  """The output folder, created and checked writable; another run's results refused.

  A folder holding results or checkpoints of another run is refused unless
  ``overwrite`` (then those files are deleted) or ``resuming`` (continuing
  that run).

  Raises:
    FolderError: the folder is a file, cannot be created or written, or holds
      another run and neither ``overwrite`` nor ``resuming`` is set.
  """
  folder = Path(folder)
  check_writable(folder)
  held = held_results(folder)
  if held and not (overwrite or resuming):
    hint = f", --resume {folder} to continue it" if CHECKPOINTS in held else ""
    raise FolderError(
        f"--out {folder} holds another run's results ({', '.join(held)}); pass --overwrite "
        f"to replace them{hint}, or choose another --out")
  if overwrite and not resuming:
    for name in held:
      path = folder / name
      if path.is_dir():
        shutil.rmtree(path)
      else:
        path.unlink()
  return folder


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs):
  """``open`` for writing that replaces ``path`` only once the file is complete."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    with open(tmp, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


__all__ = ["CHECKPOINTS", "FolderError", "RESULT_FILES", "atomic_open", "check_writable",
           "held_results", "prepare"]

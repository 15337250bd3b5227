"""Optional metric writers: TensorBoard (tensorboardX) and Weights & Biases.

Writers are fed from the metrics a run returns — after the whole run, or after
each chunk of a chunked run — never from inside the jitted loop (the progress
bar's callback stays the only host round trip). Off by default::

    writer = writers.make(tensorboard="runs/x/tb", wandb_project=None, labels=labels, config={})
    writer.write(metrics)   # {name: [runs, updates]} arrays, rows labelled by ``labels``
    writer.close()

One TensorBoard run per row (``<dir>/<label>``); one W&B run whose scalars
are ``<label>/<name>``, plus the mean over rows under ``<name>``. The x axis
is ``env_steps``.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from rewardjax import extras


def _rows(metrics: dict) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in metrics.items() if np.ndim(v) == 2}


def _safe(label: str) -> str:
  return re.sub(r"[^A-Za-z0-9._=-]+", "_", label)


class TensorBoardWriter:
  def __init__(self, logdir: str, labels: Sequence[str]):
    summary_writer = extras.require("tensorboardX", "--tensorboard").SummaryWriter
    self.labels = list(labels)
    self._writers = [summary_writer(f"{logdir}/{_safe(l)}") for l in self.labels]

  def write(self, metrics: dict) -> None:
    rows = _rows(metrics)
    steps = rows["env_steps"]
    for i, w in enumerate(self._writers):
      for u in range(steps.shape[1]):
        for k, v in rows.items():
          if k in ("env_steps",):
            continue
          x = float(v[i, u])
          if np.isfinite(x):
            w.add_scalar(k, x, global_step=int(steps[i, u]))
      w.flush()

  def close(self) -> None:
    for w in self._writers:
      w.close()


class WandbWriter:
  def __init__(self, project: str, labels: Sequence[str], config: dict | None = None,
               name: str | None = None):
    try:
      import wandb  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "--wandb-project needs Weights & Biases: pip install wandb (then `wandb login`, "
          "or WANDB_MODE=offline)") from e
    self.labels = list(labels)
    self._run = wandb.init(project=project, config=config or {}, name=name, reinit=True)

  def write(self, metrics: dict) -> None:
    rows = _rows(metrics)
    steps = rows["env_steps"]
    for u in range(steps.shape[1]):
      entry = {}
      for k, v in rows.items():
        if k == "env_steps":
          continue
        col = v[:, u].astype(np.float64)
        finite = col[np.isfinite(col)]
        if finite.size:
          entry[k] = float(finite.mean())
        for label, x in zip(self.labels, col):
          if np.isfinite(x):
            entry[f"{label}/{k}"] = float(x)
      self._run.log(entry, step=int(steps[0, u]))

  def close(self) -> None:
    self._run.finish()


class Writers:
  """Fans metrics out to several writers (none: does nothing)."""

  def __init__(self, writers=()):
    self.writers = list(writers)

  def write(self, metrics: dict) -> None:
    for w in self.writers:
      w.write(metrics)

  def close(self) -> None:
    for w in self.writers:
      w.close()


def make(labels: Sequence[str], tensorboard: str | None = None,
         wandb_project: str | None = None, config: dict | None = None,
         name: str | None = None) -> Writers:
  """The writers asked for; W&B and tensorboardX are imported only when asked for."""
  ws = []
  if tensorboard:
    ws.append(TensorBoardWriter(tensorboard, labels))
  if wandb_project:
    ws.append(WandbWriter(wandb_project, labels, config, name))
  return Writers(ws)


__all__ = ["TensorBoardWriter", "WandbWriter", "Writers", "make"]

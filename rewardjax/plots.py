"""Learning-curve plots shared by the CLI, notebooks and benchmarks.

    curves = {"extrinsic": (env_steps, returns),            # x [U], y [seeds, U]
              "extrinsic+rnd": (env_steps, returns_rnd)}
    plot_learning_curves(curves, "curve.png", title="MountainCar-v0")

Figures are built with matplotlib's object API on an Agg canvas rather than
through ``pyplot``: nothing here switches the global backend or keeps figures
alive in pyplot's registry, so a notebook's inline backend is left alone and
long benchmark loops do not leak memory. The returned ``Figure`` still shows in
Jupyter.
"""

from __future__ import annotations

import os
import warnings
from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

BANDS = ("std", "minmax", "none")


def _as_curve(label: str, x, y) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if y.ndim == 1:
    y = y[None]
  if x.ndim == 2:
    x = x[0]       # per-seed x (e.g. metrics["env_steps"]) is the same for every seed
  if y.ndim != 2 or x.ndim != 1 or x.shape[0] != y.shape[1]:
    raise ValueError(
        f"curve {label!r}: expected x [updates] and y [seeds, updates], got x "
        f"{x.shape} and y {y.shape}")
  return x, y


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
  """Trailing mean over the last ``window`` entries of the last axis.

  The first entries average over what is available, so the curve starts at
  the first value instead of being dragged towards 0.
  """
  if window <= 1:
    return y
  c = np.cumsum(np.nan_to_num(y), axis=-1)
  n = np.cumsum(np.isfinite(y), axis=-1).astype(np.float64)
  c[..., window:] = c[..., window:] - c[..., :-window].copy()
  n[..., window:] = n[..., window:] - n[..., :-window].copy()
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(n > 0, c / n, np.nan)


def plot_learning_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         path: str | os.PathLike | None = None,
                         title: str = "",
                         xlabel: str = "env steps",
                         ylabel: str = "episode return",
                         band: str = "std",
                         smooth: int = 1) -> Figure:
  """Mean over seeds per curve, with a shaded band; one line per label.

  Args:
    curves: ``{label: (x, y)}`` with ``x`` of shape ``[updates]`` (or
      ``[seeds, updates]``, first row used) and ``y`` of shape
      ``[seeds, updates]`` (or ``[updates]`` for a single seed). NaNs are
      ignored when averaging.
    path: where to save a PNG; ``None`` only returns the figure.
    title: figure title.
    xlabel, ylabel: axis labels.
    band: ``"std"`` (mean ± standard deviation over seeds), ``"minmax"``
      (range over seeds) or ``"none"``.
    smooth: trailing moving-average window over updates, applied to each seed
      before averaging (1: raw values). Noted in the legend.

  Returns:
    The matplotlib ``Figure``.
  """
  if band not in BANDS:
    raise ValueError(f"band must be one of {BANDS}, got {band!r}")
  if not curves:
    raise ValueError("plot_learning_curves: no curves given")
  fig = Figure(figsize=(7, 4.2), dpi=120)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for label, (x, y) in curves.items():
    x, y = _as_curve(label, x, y)
    y = moving_average(y, int(smooth))
    num_seeds = y.shape[0]
    with warnings.catch_warnings():
      # Columns that are NaN in every seed would warn "mean of empty slice".
      warnings.simplefilter("ignore", RuntimeWarning)
      mean = np.nanmean(y, axis=0)
      if band == "std":
        spread = np.nanstd(y, axis=0)
        low, high = mean - spread, mean + spread
      elif band == "minmax":
        low, high = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
    (line,) = ax.plot(x, mean, lw=1.6, label=f"{label} ({num_seeds} seed{'s' * (num_seeds > 1)})")
    if band != "none" and num_seeds > 1:
      ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
  ax.xaxis.set_major_formatter(EngFormatter(sep=""))   # 500000 -> 500k
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  band_note = {"std": "mean ± std over seeds", "minmax": "mean, min–max over seeds",
               "none": "mean over seeds"}[band]
  if smooth > 1:
    band_note += f", moving average of {int(smooth)} updates"
  ax.legend(loc="best", fontsize=8, title=band_note, title_fontsize=8)
  fig.tight_layout()
  if path is not None:
    fig.savefig(os.fspath(path))
  return fig

"""Data-parallel training over a device mesh, with JAX's own machinery.

An agent built with ``mesh=`` runs its ``train`` under ``jax.shard_map``: each
device steps ``num_envs / num_devices`` environments, parameters and reward-
module states are replicated, and everything learned from the batch is
reduced across the data axis so a run means the same as on one device:

* agent gradients are averaged (``pmean``) before the optimiser step;
* running moments (``stats.moments_update``) merge the global batch's moments;
* count tables add every device's visits (``psum``);
* RND's predictor averages its gradients.

Reward modules keep their ``update(state, batch, key)`` signature. The hook is
the *current data axis*: while an agent traces its per-device function it
enters ``data_axis(name)``, and the few reductions above call ``psum`` /
``pmean`` here, which reduce over that axis, or do nothing when none is set
(so the single-device program contains no collective). A module of your own that
learns from batch statistics reduces them with these functions.

Several processes (hosts): ``import rewardjax`` starts no XLA backend, so
``jax.distributed.initialize()`` may follow it; ``make_mesh()`` then spans every
process's devices (README, "Several hosts"; ``tests/test_distributed.py``).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

DATA_AXIS = "data"
_current: list[str] = []


@contextlib.contextmanager
def data_axis(name: str | None):
  """Within this block, ``psum`` / ``pmean`` reduce over the mesh axis ``name``."""
  _current.append(name)
  try:
    yield
  finally:
    _current.pop()


def current_axis() -> str | None:
  """The data axis being traced, or ``None`` outside sharded training."""
  return _current[-1] if _current else None


def psum(x):
  """Sum over the data axis (identity without one)."""
  axis = current_axis()
  return x if axis is None else jax.lax.psum(x, axis)


def pmean(x):
  """Mean over the data axis (identity without one)."""
  axis = current_axis()
  return x if axis is None else jax.lax.pmean(x, axis)


def pmax(x):
  axis = current_axis()
  return x if axis is None else jax.lax.pmax(x, axis)


def all_gather(x):
  """Every device's ``x`` concatenated along axis 0, in device order (``x``
  itself without a data axis)."""
  axis = current_axis()
  return x if axis is None else jax.lax.all_gather(x, axis, tiled=True)


def axis_index():
  """This device's index on the data axis (0 without one)."""
  axis = current_axis()
  return 0 if axis is None else jax.lax.axis_index(axis)


def num_shards() -> int:
  """How many devices share the data axis (1 without one)."""
  axis = current_axis()
  return 1 if axis is None else jax.lax.psum(1, axis)


def device_key(key: jax.Array) -> jax.Array:
  """A key that differs per device on the data axis (``key`` itself without one)."""
  axis = current_axis()
  return key if axis is None else jax.random.fold_in(key, jax.lax.axis_index(axis))


def make_mesh(num_devices: int | None = None, devices=None, axis_name: str = DATA_AXIS) -> Mesh:
  """A one-axis mesh over the first ``num_devices`` of ``devices`` (default: all).

  After ``jax.distributed.initialize()``, ``jax.devices()`` lists every
  host's devices, so the same call builds a multi-host mesh.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices) if num_devices is None else int(num_devices)
  if not 1 <= n <= len(devices):
    raise ValueError(
        f"num_devices must be between 1 and the {len(devices)} available devices, got {n} "
        "(on CPU, force more with XLA_FLAGS=--xla_force_host_platform_device_count=N "
        "set before jax starts)")
  return Mesh(np.asarray(devices[:n]), (axis_name,))


def mesh_size(mesh: Mesh | None) -> int:
  return 1 if mesh is None else int(np.prod(list(mesh.shape.values())))


def shard(fn: Callable, mesh: Mesh, sharded_args: tuple[bool, ...],
          axis_name: str = DATA_AXIS) -> Callable:
  """Runs a per-device ``fn(*args) -> (state, out)`` on every device of ``mesh``.

  ``fn`` is traced inside ``data_axis(axis_name)``. Arguments flagged in
  ``sharded_args`` carry a leading ``[num_devices]`` axis (one slice per
  device, e.g. a runner state returned by an earlier call); the others are
  replicated. The returned ``state`` gets that leading device axis (its
  leaves may differ per device: environment states, keys, per-environment
  filters); ``out`` must already be reduced across devices (e.g. metrics)
  and is returned as device 0's copy.
  """
  def local(*args):
    args = tuple(jax.tree.map(lambda x: x[0], a) if s else a
                 for a, s in zip(args, sharded_args))
    with data_axis(axis_name):
      state, out = fn(*args)
    return jax.tree.map(lambda x: jnp.asarray(x)[None], state), out

  in_specs = tuple(P(axis_name) if s else P() for s in sharded_args)
  # check_vma=False: outputs declared replicated are made so by explicit
  # psum/pmean in the agent; jax need not prove it.
  return jax.shard_map(local, mesh=mesh, in_specs=in_specs,
                       out_specs=(P(axis_name), P()), check_vma=False)


__all__ = ["DATA_AXIS", "data_axis", "current_axis", "psum", "pmean", "pmax", "all_gather", "axis_index", "num_shards",
           "device_key", "make_mesh", "mesh_size", "shard"]

"""Several processes, as on several hosts: ``import rewardjax`` then ``jax.distributed``.

Every check runs in fresh Python processes with a timeout: the XLA backend and
``jax.distributed`` can be set up only once per process.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_distributed_worker.py")
TIMEOUT_S = 240        # each process; the whole test takes well under a minute on 2 idle cores

NO_BACKEND_AFTER_IMPORT = """
import jax
from jax._src import xla_bridge
import rewardjax, rewardjax.cli
assert not xla_bridge.backends_are_initialized(), "importing rewardjax started the XLA backend"
jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes=1,
                           process_id=0, initialization_timeout=30)
print("devices:", jax.device_count())
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return dict(env, JAX_PLATFORMS="cpu", **extra)


def _finish(procs) -> None:
  """Waits for every process (killing all on the first timeout) and checks exit codes."""
  try:
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, f"{p.args}: rc {p.returncode}\n{out}\n{err[-4000:]}"


def test_import_starts_no_backend_so_distributed_initialize_can_follow():
  code = NO_BACKEND_AFTER_IMPORT.format(port=_free_port())
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=_env(), timeout=TIMEOUT_S, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "devices: 1" in proc.stdout


@pytest.mark.slow
def test_two_processes_train_as_one_process_with_two_devices(tmp_path):
  coordinator = f"127.0.0.1:{_free_port()}"
  multi, single = tmp_path / "two_processes.npz", tmp_path / "one_process.npz"
  run = lambda *args, **env: subprocess.Popen(
      [sys.executable, str(WORKER), *map(str, args)], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, env=_env(**env))
  _finish([run(multi, 0, 2, coordinator), run(multi, 1, 2, coordinator),
           run(single, XLA_FLAGS="--xla_force_host_platform_device_count=2")])
  got, want = np.load(multi), np.load(single)
  assert sorted(got.files) == sorted(want.files)
  for k in want.files:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert np.isfinite(want["value_loss"]).all() and not want["nonfinite"].any()

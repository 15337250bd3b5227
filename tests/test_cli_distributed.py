"""``rewardjax train --distributed``: two processes on loopback (CPU, gloo collectives).

Each process runs ``tests/_cli_distributed_process.py``, which initialises
``jax.distributed`` itself and then calls ``rewardjax.cli.main`` with
``--distributed`` (the order the README's multi-host recipe uses). Every process
trains and saves checkpoints; only process 0 writes metrics, plot and summary.
"""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_cli_distributed_process.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_only_process_0_writes(tmp_path):
  out, port = tmp_path / "run", free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", COLUMNS="200")
  procs = [subprocess.Popen([sys.executable, str(SCRIPT), str(i), str(port), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
           for i in (0, 1)]
  logs = [p.communicate(timeout=900)[0] for p in procs]
  for i, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0, f"process {i}:\n{log[-4000:]}"
  assert "on 2 devices" in logs[0]
  assert "episode return per seed" in logs[0] and "episode return per seed" not in logs[1]
  assert sorted(p.name for p in out.iterdir()) == [
      "checkpoints", "learning_curve.png", "metrics.csv", "summary.json"]
  assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["4", "6"]
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * 6 and all(r["nonfinite"] == "0" for r in rows)

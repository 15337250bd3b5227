"""Sharded (data-parallel) training on 4 forced host devices.

The checks run in a fresh Python process (tests/_sharded_check.py) because
``--xla_force_host_platform_device_count`` applies only before jax starts.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_sharded_check.py")


def _run(*checks):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, str(SCRIPT), *checks], capture_output=True, text=True,
                        env=env, timeout=1800, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
  return proc.stdout


@pytest.mark.slow
def test_count_table_and_running_moments_match_single_device():
  # (the tiny sharded-DQN check shares this process: one fewer jax start-up)
  out = _run("check_reward_statistics", "check_sharded_dqn")
  assert "sharded == single device" in out
  assert "sharded DQN: ok" in out, out


@pytest.mark.slow
def test_sharded_runs_compute_the_single_device_numbers():
  """PPO, PQN and DQN metrics and parameters, sharded vs one device, where no key matters."""
  out = _run("check_sharded_equals_single_device")
  for agent in ("PPO", "PQN", "DQN"):
    assert f"sharded {agent} == single device" in out, out


def test_intrinsic_bonuses_sharded_match_single_device():
  """E3B (and the training every learned bonus shares) and RE3 (kNN over every device's batch)."""
  assert "intrinsic zoo: sharded == single device" in _run("check_intrinsic_zoo")


@pytest.mark.slow
def test_sharded_ppo_and_pqn_report_every_metric_and_learn():
  """The single-device run's metric names and shapes, and learning; values: see above."""
  out = _run("check_sharded_ppo", "check_sharded_pqn")
  assert "sharded PPO: ok" in out, out
  assert "sharded PQN: ok" in out, out

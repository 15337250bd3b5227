"""The command's sweep, checkpoint / resume and logging options (one tiny run)."""

import csv
import json
import shutil
import sys

import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import cli

TINY = ["--env", "CartPole-v1", "--rewards", "extrinsic+counts", "--seeds", "2",
        "--total-timesteps", "384", "--ppo.num-envs", "4", "--ppo.num-steps", "16",
        "--ppo.update-epochs", "1", "--ppo.num-minibatches", "1", "--ppo.hidden-sizes", "16", "16",
        "--no-progress"]


def read_rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_sweep_checkpoints_resume_and_tensorboard(tmp_path):
  out, tb = tmp_path / "run", tmp_path / "tb"
  rc = cli.main(["train", *TINY, "--sweep", "counts.coef=0.1,3", "--checkpoint-every", "2",
                 "--out", str(out), "--tensorboard", str(tb)])
  assert rc == 0
  rows = read_rows(out / "metrics.csv")
  assert list(rows[0])[:4] == ["setting", "seed", "update", "env_steps"]
  assert len(rows) == 2 * 2 * 6
  assert [r["setting"] for r in rows[::6]] == ["counts.coef=0.1"] * 2 + ["counts.coef=3"] * 2
  loss = np.array([float(r["policy_loss"]) for r in rows]).reshape(2, 2, 6)
  assert not np.allclose(loss[0], loss[1])            # the coefficient mattered
  summary = json.loads((out / "summary.json").read_text())
  assert summary["settings"] == [{"counts.coef": 0.1}, {"counts.coef": 3.0}]
  assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["4", "6"]
  assert sorted(p.name for p in tb.iterdir()) == [
      "counts.coef=0.1_seed0", "counts.coef=0.1_seed1", "counts.coef=3_seed0",
      "counts.coef=3_seed1"]
  assert all(any(f.stat().st_size > 0 for f in d.iterdir()) for d in tb.iterdir())

  # "Kill" the run after update 4: drop the last checkpoint and the outputs, resume.
  first = (out / "metrics.csv").read_text()
  shutil.rmtree(out / "checkpoints" / "6")
  (out / "metrics.csv").unlink()
  rc = cli.main(["train", "--resume", str(out), "--no-progress"])
  assert rc == 0
  assert (out / "metrics.csv").read_text() == first    # bitwise: every value as printed


def test_bad_sweeps_are_named(tmp_path, capsys):
  for sweep, msg in (("novelty.coef=1,2", "'novelty.coef' cannot be swept"),
                     ("ppo.lr=-1", "lr must be > 0"),
                     ("lr", "expected name=v1,v2")):
    rc = cli.main(["train", *TINY, "--sweep", sweep, "--out", str(tmp_path / "x")])
    assert rc == 2
    assert msg in " ".join(capsys.readouterr().err.split())
  # A repeated --sweep would silently keep only the last one in tyro: refused.
  rc = cli.main(["train", *TINY, "--sweep", "ppo.lr=1e-3,3e-4", "--sweep", "counts.coef=0.1,1",
                 "--out", str(tmp_path / "y")])
  assert rc == 2
  assert "--sweep given more than once" in " ".join(capsys.readouterr().err.split())


def test_pqn_and_dqn_sweeps_are_checked_before_compiling(tmp_path, capsys):
  for agent, sweep, msg in (("pqn", "pqn.clip_eps=0.1,0.2", "sweepable: lr, max_grad_norm"),
                            ("dqn", "dqn.tau=0.5,2", "tau must be in (0, 1]")):
    rc = cli.main(["train", "--agent", agent, "--env", "CartPole-v1", "--sweep", sweep,
                   "--out", str(tmp_path / agent)])
    assert rc == 2
    assert msg in " ".join(capsys.readouterr().err.split())


def test_resume_without_checkpoints_is_refused(tmp_path, capsys):
  rc = cli.main(["train", "--resume", str(tmp_path / "nothing")])
  assert rc == 2
  assert "no checkpoints" in capsys.readouterr().err


def test_missing_wandb_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)      # import wandb -> ImportError
  with pytest.raises(ImportError, match="pip install wandb"):
    cli.main(["train", *TINY, "--wandb-project", "p", "--out", str(tmp_path / "x")])

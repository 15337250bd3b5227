"""Tests for the ``rewardjax`` command (rewardjax.cli) and its plots.

One real PPO run (a few updates, two seeds) is shared by the output tests; it
is the only long compile here. Error paths either fail before compiling or use
a tiny fake agent registered in ``cli.AGENTS`` (the agent registry).
"""

import csv
import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.progress import Progress

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import cli
from rewardjax import plots
from rewardjax.agents import trainer
from rewardjax.agents.registry import AgentSpec
from rewardjax.agents.ppo import TrainOutput

SEEDS, UPDATES = 2, 4
TINY_PPO = ["--ppo.num-envs", "4", "--ppo.num-steps", "16", "--ppo.update-epochs", "1",
            "--ppo.num-minibatches", "1", "--ppo.hidden-sizes", "16", "16"]


def normalized(text):
  return " ".join(text.split())


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
  # rich wraps at the terminal width; keep messages on one line for matching.
  monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("run") / "demo"
  rc = cli.main(["train", "--env", "CartPole-v1", "--rewards", "extrinsic", "--seeds",
                 str(SEEDS), "--seed", "3", "--total-timesteps", str(UPDATES * 64),
                 "--out", str(out), "--no-progress", *TINY_PPO])
  return rc, out


def test_run_succeeds_and_writes_outputs(ppo_run):
  rc, out = ppo_run
  assert rc == 0
  assert sorted(p.name for p in out.iterdir()) == [
      "learning_curve.png", "metrics.csv", "summary.json"]
  png = (out / "learning_curve.png").read_bytes()
  assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_metrics_csv_has_one_row_per_seed_and_update(ppo_run):
  _, out = ppo_run
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == SEEDS * UPDATES
  assert list(rows[0])[:3] == ["seed", "update", "env_steps"]
  assert {"episode_return", "episode_length", "reward/extrinsic", "policy_loss",
          "nonfinite"} <= set(rows[0])
  assert [(int(r["seed"]), int(r["update"])) for r in rows] == [
      (s, u) for s in (3, 4) for u in range(1, UPDATES + 1)]
  assert [int(r["env_steps"]) for r in rows[:UPDATES]] == [64, 128, 192, 256]
  assert all(r["nonfinite"] == "0" for r in rows)
  assert all(np.isfinite(float(r["episode_return"])) for r in rows)


def test_summary_json(ppo_run):
  _, out = ppo_run
  summary = json.loads((out / "summary.json").read_text())
  assert summary["env"] == "CartPole-v1" and summary["rewards"] == "extrinsic"
  assert summary["seeds"] == [3, 4]
  assert summary["args"]["seeds"] == SEEDS and summary["args"]["total_timesteps"] == 256
  assert summary["config"]["num_steps"] == 16 and summary["config"]["hidden_sizes"] == [16, 16]
  assert summary["config"]["total_timesteps"] == 256
  assert summary["channels"] == {"extrinsic": {"coef": 1.0, "gamma": 0.99, "episodic": True}}
  assert summary["num_updates"] == UPDATES and summary["env_steps_per_seed"] == 256
  final = summary["final_episode_return"]
  assert len(final) == SEEDS
  assert summary["final_episode_return_mean"] == pytest.approx(np.mean(final))
  assert summary["final_episode_return_std"] == pytest.approx(np.std(final))
  for key in ("compile_seconds", "train_seconds", "wall_clock_seconds", "env_steps_per_second"):
    assert summary[key] > 0
  assert summary["wall_clock_seconds"] >= summary["compile_seconds"] + summary["train_seconds"]
  assert summary["nonfinite"] is None
  assert summary["final_eval_return"] is None and summary["config"]["eval_every"] == 0


def test_evaluation_in_the_metrics_summary_and_table(tmp_path, capsys):
  # DeepSea has a goal (the treasure): eval/success is defined.
  out = tmp_path / "eval"
  rc = cli.main(["train", "--env", "DeepSea-bsuite", "--env-kwargs", "size=4", "--seeds", "2",
                 "--total-timesteps", str(UPDATES * 64), "--eval-every", "2",
                 "--eval-episodes", "3", "--out", str(out), "--no-progress", *TINY_PPO])
  assert rc == 0
  stdout = normalized(capsys.readouterr().out)
  assert "eval return" in stdout and "eval success" in stdout
  summary = json.loads((out / "summary.json").read_text())
  assert summary["config"]["eval_every"] == 2 and summary["config"]["eval_episodes"] == 3
  assert summary["config"]["eval_goal_return"] == 0.5
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  by_seed = [[r for r in rows if int(r["seed"]) == s] for s in (0, 1)]
  for seed, seed_rows in enumerate(by_seed):
    ret = [float(r["eval/return"]) for r in seed_rows]
    assert np.isnan(ret[0]) and ret[2] == ret[1]        # NaN, then held between evaluations
    assert summary["final_eval_return"][seed] == pytest.approx(ret[-1])
    success = float(seed_rows[-1]["eval/success"])
    assert summary["final_eval_success"][seed] == pytest.approx(success)
    # Each evaluation episode succeeds or not: a success rate is a multiple of 1/3.
    assert round(success * 3, 5) == int(round(success * 3))
    assert all(float(r["eval/length"]) == 4.0 for r in seed_rows[1:])   # DeepSea-4: 4 steps


def test_eval_options_are_checked(fake_agent, tmp_path, capsys):
  del fake_agent
  for given, message in [
      (["--ppo.eval-every", "3"], "use --eval-every rather than --ppo.eval-every"),
      (["--eval-every", "-1"], "eval_every must be an integer >= 0"),
      (["--agent", "fake", "--eval-every", "2"], "agent 'fake' does not evaluate")]:
    assert cli.main(["train", *given, "--out", str(tmp_path / "x")]) == 2, given
    assert message in normalized(capsys.readouterr().err)


# --------------------------------------------------------------------------- errors


def test_bad_env_id_is_a_clear_error(tmp_path, capsys):
  rc = cli.main(["train", "--env", "CartPol-v1", "--out", str(tmp_path / "x")])
  err = normalized(capsys.readouterr().err)
  assert rc == 2
  assert "error: unknown environment id 'CartPol-v1'" in err and "CartPole-v1" in err
  assert "Traceback" not in err
  assert not (tmp_path / "x").exists()


def test_bad_rewards_spec_is_a_clear_error(tmp_path, capsys):
  rc = cli.main(["train", "--rewards", "extrinsic+rndd", "--out", str(tmp_path / "x")])
  assert rc == 2
  assert "unknown rewards kind 'rndd'" in normalized(capsys.readouterr().err)


def test_bad_hyperparameters_are_a_clear_error(tmp_path, capsys):
  rc = cli.main(["train", "--total-timesteps", "100", "--out", str(tmp_path / "x")])
  assert rc == 2
  assert "smaller than one rollout" in normalized(capsys.readouterr().err)
  rc = cli.main(["train", "--ppo.total-timesteps", "1000", "--out", str(tmp_path / "x")])
  assert rc == 2
  assert "use --total-timesteps" in normalized(capsys.readouterr().err)


def test_nan_potential_file_is_reported_before_compiling(tmp_path, capsys):
  pytest.importorskip("rewardjax.progress")
  path = tmp_path / "nan_progress.py"
  path.write_text("def progress(obs):\n  return jnp.stack([obs[0] * jnp.nan])\n")
  rc = cli.main(["train", "--rewards", f"extrinsic+potential:{path}",
                 "--out", str(tmp_path / "x")])
  err = normalized(capsys.readouterr().err)
  assert rc == 2
  assert "potential" in err and "nan_progress.py" in err
  assert "compiling" not in err
  assert not (tmp_path / "x").exists()


def test_malformed_arguments_and_help_return_a_status(capsys):
  assert cli.main(["train", "--ppo.lr", "abc"]) == 2
  assert "--ppo.lr" in capsys.readouterr().err
  assert cli.main(["train", "--help"]) == 0
  assert "--total-timesteps" in capsys.readouterr().out


def test_unknown_agent(tmp_path, capsys):
  rc = cli.main(["train", "--agent", "sac", "--out", str(tmp_path / "x")])
  assert rc == 2
  assert "unknown agent 'sac'; available: ppo" in normalized(capsys.readouterr().err)


# --------------------------------------------------------------------------- fake agent


@dataclasses.dataclass(frozen=True)
class FakeConfig:
  """A stand-in agent: cheap to compile, NaN from ``nan_from`` on; its value loss
  jumps a billionfold from ``blowup_from`` on in odd seeds."""
  total_timesteps: int = 1024
  gamma: float = 0.99
  nan_from: int = 3
  blowup_from: int = 1_000

  batch_size = 128
  num_updates = property(lambda self: self.total_timesteps // self.batch_size)


def fake_make_train(config, env, env_params, rewards=None, callback=None):
  del env, env_params, rewards

  def train(key):
    updates = jnp.arange(1, config.num_updates + 1)
    metrics = {
        "update": updates,
        "env_steps": updates * config.batch_size,
        "episode_return": updates.astype(jnp.float32) + key[-1].astype(jnp.float32) % 2,
        "num_episodes": jnp.ones_like(updates),
        "nonfinite": updates >= config.nan_from,
        "value_loss": jnp.where((updates >= config.blowup_from) & (key[-1] % 2 == 1),
                                1e9, 1.0),
        "histogram": jnp.zeros((config.num_updates, 3)),   # not a scalar: not in the CSV
    }
    for i in range(config.num_updates):
      trainer.progress_callback(callback, {k: metrics[k][i] for k in (
          "update", "env_steps", "episode_return")})
    return TrainOutput(None, metrics)

  return train


@pytest.fixture
def fake_agent(monkeypatch):
  monkeypatch.setitem(cli.AGENTS, "fake",
                      AgentSpec("fake", FakeConfig, fake_make_train, reports_progress=True))


def test_nonfinite_metrics_are_reported_with_the_first_update(fake_agent, tmp_path, capsys):
  del fake_agent
  out = tmp_path / "fake"
  rc = cli.main(["train", "--agent", "fake", "--fake.nan-from", "3", "--seeds", "3",
                 "--total-timesteps", "1024", "--out", str(out)])
  err = normalized(capsys.readouterr().err)
  assert rc == cli.Exit.NONFINITE == 3      # not 1, the status of a crash
  assert "non-finite values (NaN/inf)" in err
  assert "first at update 3 (env step 384) in seed(s) 0, 1, 2" in err
  summary = json.loads((out / "summary.json").read_text())
  assert summary["nonfinite"] == {"update": 3, "env_steps": 384, "seeds": [0, 1, 2]}
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 * 8 and "histogram" not in rows[0]


def test_divergence_is_warned_of_by_seed_and_kept_in_the_summary(fake_agent, tmp_path, capsys):
  del fake_agent
  out = tmp_path / "fake"
  rc = cli.main(["train", "--agent", "fake", "--fake.nan-from", "100", "--fake.blowup-from",
                 "5", "--seeds", "4", "--total-timesteps", "1024", "--out", str(out)])
  err = normalized(capsys.readouterr().err)
  assert rc == cli.Exit.OK                  # a warning, not an error: the results stand
  odd = [s for s in range(4) if np.asarray(jax.random.PRNGKey(s))[-1] % 2 == 1]
  assert odd and len(odd) < 4
  expected = ("value_loss jumped to 1e+09 at update 5, over 100x its running range, in run(s) "
              + ", ".join(f"seed {s}" for s in odd))
  assert "warning: " + expected in err
  summary = json.loads((out / "summary.json").read_text())
  assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith(expected)


def test_options_of_another_agent_are_refused(fake_agent, tmp_path, capsys):
  del fake_agent
  rc = cli.main(["train", "--agent", "fake", "--ppo.lr", "1e-3", "--out", str(tmp_path / "x")])
  assert rc == 2
  assert "--ppo.* options were given but the agent is 'fake'" in normalized(
      capsys.readouterr().err)


def test_progress_tracker_counts_per_seed_and_batched_calls():
  with Progress(disable=True) as progress:
    task = progress.add_task("", total=5)
    tracker = cli.ProgressTracker(progress, task, num_seeds=2)
    tracker({"update": np.int32(1), "episode_return": np.float32(1.0)})
    assert progress.tasks[0].completed == 0.5
    tracker({"update": np.int32(1), "episode_return": np.float32(3.0)})
    assert progress.tasks[0].completed == 1.0
    assert "2.00" in progress.tasks[0].description       # mean over both seeds
    tracker({"update": np.array([2, 2]), "episode_return": np.array([5.0, 7.0])})
    assert progress.tasks[0].completed == 2.0
    assert "6.00" in progress.tasks[0].description


def test_env_kwargs_parsing():
  assert cli.parse_env_kwargs(["size=20", "max_steps_in_episode=100,flag=true"]) == {
      "size": 20, "max_steps_in_episode": 100, "flag": True}
  with pytest.raises(cli.UsageError, match="name=value"):
    cli.parse_env_kwargs(["size"])


def test_first_nonfinite():
  metrics = {"nonfinite": np.array([[0, 0, 1, 1], [0, 1, 1, 1]], bool),
             "update": np.tile(np.arange(1, 5), (2, 1)),
             "env_steps": np.tile(np.arange(1, 5) * 10, (2, 1))}
  assert cli.first_nonfinite(metrics) == (2, 20, [1])
  metrics["nonfinite"][:] = False
  assert cli.first_nonfinite(metrics) is None


def test_plot_learning_curves(tmp_path):
  x = np.arange(1, 11) * 100
  rng = np.random.default_rng(0)
  curves = {"extrinsic": (x, rng.normal(size=(3, 10))),
            "extrinsic+rnd": (np.tile(x, (2, 1)), rng.normal(size=(2, 10))),
            "one seed": (x, rng.normal(size=10))}
  for band in plots.BANDS:
    path = tmp_path / f"{band}.png"
    fig = plots.plot_learning_curves(curves, path, title="t", band=band)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert len(fig.axes[0].lines) == 3
  fig = plots.plot_learning_curves(curves, tmp_path / "smooth.png", smooth=3)
  assert "moving average of 3" in fig.axes[0].get_legend().get_title().get_text()
  with pytest.raises(ValueError, match="expected x"):
    plots.plot_learning_curves({"bad": (x[:5], np.zeros((2, 10)))})


def test_moving_average():
  y = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, np.nan, 3.0, 5.0]])
  np.testing.assert_allclose(plots.moving_average(y, 2), [[1, 1.5, 2.5, 3.5], [1, 1, 3, 4]])
  np.testing.assert_array_equal(plots.moving_average(y, 1), y)


def test_module_entry_point_help():
  result = subprocess.run([sys.executable, "-m", "rewardjax.cli", "train", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "--ppo.lr" in result.stdout and "--rewards" in result.stdout
  assert "progress_counts" in result.stdout

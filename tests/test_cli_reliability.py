"""The command never loses results, never reports wrong ones silently, and fails early.

Each test covers one defect of the "Reliability" issue: a reused or unusable
``--out``, damaged or missing checkpoints, resume arguments, interrupts, a
stalled run, exit statuses, ``--env-kwargs`` and seed checks, help texts.
One tiny chunked PPO run (2 seeds, 6 updates, a checkpoint every 2) is shared;
the other runs restore it or use a fake agent that compiles in a moment.
"""

import csv
import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import checkpoint, cli, resume, run_folder, watchdog
from rewardjax.agents.ppo import TrainOutput
from rewardjax.agents.registry import AgentSpec

TINY = ["--env", "CartPole-v1", "--seeds", "2", "--total-timesteps", "384",
        "--ppo.num-envs", "4", "--ppo.num-steps", "16", "--ppo.update-epochs", "1",
        "--ppo.num-minibatches", "1", "--ppo.hidden-sizes", "16", "16", "--no-progress"]


def one_line(text):
  """Whitespace normalised: rich wraps long lines at the terminal width."""
  return " ".join(text.split())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted chunked run: checkpoints 4 and 6 and its metrics.csv."""
  out = tmp_path_factory.mktemp("ref") / "run"
  assert cli.main(["train", *TINY, "--checkpoint-every", "2", "--out", str(out)]) == 0
  return out


def copy_run(reference, tmp_path):
  out = tmp_path / "run"
  shutil.copytree(reference, out)
  return out


def join_training_thread():
  for thread in threading.enumerate():
    if thread.name == watchdog.THREAD_NAME:
      thread.join(120)


# --------------------------------------------------------------------------- fake agent


@dataclasses.dataclass(frozen=True)
class FakeConfig:
  """A stand-in agent: compiles in a moment; ``block`` makes train wait in a host call."""
  total_timesteps: int = 1024
  gamma: float = 0.99
  block: bool = False

  batch_size = 128
  num_updates = property(lambda self: self.total_timesteps // self.batch_size)


RELEASE = threading.Event()     # lets a blocked fake run finish
ON_BLOCK = []                   # called when a fake run blocks (e.g. to send SIGINT)


def _wait_for_release(x):
  for action in ON_BLOCK:
    action()
  RELEASE.wait(120)
  return x


def fake_make_train(config, env, env_params, rewards=None, callback=None):
  del env, env_params, rewards, callback

  def train(key):
    updates = jnp.arange(1, config.num_updates + 1)
    if config.block:    # a host call that never returns: what a deadlocked run looks like
      updates = jax.pure_callback(_wait_for_release, jax.ShapeDtypeStruct(updates.shape,
                                  updates.dtype), updates, vmap_method="sequential")
    metrics = {"update": updates, "env_steps": updates * config.batch_size,
               "episode_return": updates.astype(jnp.float32) + key[-1] * 0,
               "num_episodes": jnp.ones_like(updates), "nonfinite": updates < 0}
    return TrainOutput(None, metrics)

  return train


@pytest.fixture
def fake_agent(monkeypatch):
  monkeypatch.setitem(cli.AGENTS, "fake", AgentSpec("fake", FakeConfig, fake_make_train))
  RELEASE.clear()
  ON_BLOCK.clear()
  yield
  RELEASE.set()
  join_training_thread()


@pytest.fixture
def ctrl_c_interrupts():
  """Ctrl-C raises KeyboardInterrupt in this process, as in a terminal's foreground job.
  A process started in the background by a non-interactive shell (``cmd &``, nohup in a
  script) inherits SIGINT ignored, and Python then leaves it ignored."""
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, previous)


def fake(*args, out):
  return cli.main(["train", "--agent", "fake", "--seeds", "2", "--no-progress",
                   "--out", str(out), *args])


# --------------------------------------------------------------------------- --out


def test_reused_out_is_refused_unless_overwrite(fake_agent, tmp_path, capsys):
  out = tmp_path / "run"
  assert fake(out=out) == 0
  first = (out / "metrics.csv").read_text()
  capsys.readouterr()
  assert fake("--total-timesteps", "512", out=out) == 2
  err = one_line(capsys.readouterr().err)
  assert f"--out {out} holds another run's results (metrics.csv, summary.json" in err
  assert "--overwrite" in err and "compiling" not in err
  assert (out / "metrics.csv").read_text() == first           # untouched
  assert fake("--total-timesteps", "512", "--overwrite", out=out) == 0
  assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2 * 4


def test_out_holding_checkpoints_points_to_resume(reference, tmp_path, capsys):
  out = copy_run(reference, tmp_path)
  (out / "metrics.csv").unlink()
  assert cli.main(["train", *TINY, "--out", str(out)]) == 2
  err = one_line(capsys.readouterr().err)
  assert "holds another run's results (summary.json, learning_curve.png, checkpoints)" in err
  assert f"--resume {out} to continue it" in err


def test_orbax_declining_a_save_is_an_error(tmp_path):
  # Another run's newer checkpoint made orbax skip every save of a new run silently.
  ckpt = checkpoint.Checkpointer(tmp_path / "ck")
  history = {"update": np.arange(1, 5)}
  ckpt.save(4, {"a": np.zeros(2)}, history)
  with pytest.raises(checkpoint.CheckpointError, match="already holds checkpoint 4"):
    ckpt.save(2, {"a": np.zeros(2)}, history)
  ckpt.close()


def test_unusable_out_fails_before_compiling(tmp_path, capsys):
  afile = tmp_path / "afile"
  afile.write_text("x")
  for out, message in ((afile, "is an existing file, not a folder"),
                       (afile / "sub", "is not writable")):
    rc = cli.main(["train", *TINY, "--out", str(out)])
    err = one_line(capsys.readouterr().err)
    assert rc == 2 and message in err
    assert "compiling" not in err and "Traceback" not in err
  if os.geteuid() != 0:      # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert cli.main(["train", *TINY, "--out", str(locked / "x")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_results_are_written_atomically(tmp_path):
  path = tmp_path / "metrics.csv"
  path.write_text("old\n")
  with pytest.raises(RuntimeError):
    with run_folder.atomic_open(path, "w") as f:
      f.write("half a fi")
      raise RuntimeError("crash while writing")
  assert path.read_text() == "old\n"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


# --------------------------------------------------------------------------- checkpoints


def truncate_state(step_dir: Path):
  for f in (step_dir / "state" / "d").iterdir():
    with open(f, "r+b") as handle:
      handle.truncate(10)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path,
                                                                    capsys):
  out = copy_run(reference, tmp_path)
  truncate_state(out / "checkpoints" / "6")
  (out / "metrics.csv").unlink()
  capsys.readouterr()
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 0
  warnings = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
  assert len(warnings) == 1
  assert "checkpoint 6 is damaged" in warnings[0] and "from checkpoint 4" in warnings[0]
  assert "Traceback" not in warnings[0]
  assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["4", "6", "6.broken"]
  # Updates 5-6 retrained from checkpoint 4: the same bits as the uninterrupted run.
  assert (out / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def test_no_intact_checkpoint_is_exit_status_4(reference, tmp_path, capsys):
  out = copy_run(reference, tmp_path)
  for step in ("4", "6"):
    truncate_state(out / "checkpoints" / step)
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 4
  err = one_line(capsys.readouterr().err)
  assert "no intact checkpoint" in err and "checkpoint 6:" in err and "checkpoint 4:" in err
  assert "Traceback" not in err


def edit_record(step_dir: Path, edit):
  """Edits a checkpoint's JSON record as if it had been saved so (file list updated)."""
  path = step_dir / "meta" / "metadata"
  record = json.loads(path.read_text())
  edit(record)
  path.write_text(json.dumps(record))
  (step_dir / checkpoint.FILES).write_text(json.dumps(checkpoint.file_digests(step_dir)))


def test_a_record_that_contradicts_its_step_is_skipped(reference, tmp_path):
  out = copy_run(reference, tmp_path)
  edit_record(out / "checkpoints" / "6", lambda r: r.update(next_update=5))
  ckpt = checkpoint.Checkpointer(out / "checkpoints")
  meta, step, broken = ckpt.newest_meta(resume.check_record)
  ckpt.close()
  assert step == 4 and meta["next_update"] == 4
  assert broken == [(6, "its record says update 5, not 6")]


def test_checkpoints_that_do_not_fit_the_saved_arguments_are_exit_status_4(reference, tmp_path,
                                                                           capsys):
  out = copy_run(reference, tmp_path)
  for step in ("4", "6"):    # arguments that give other shapes than the saved state's
    edit_record(out / "checkpoints" / step, lambda r: r["args"]["ppo"].update(num_envs=8))
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 4
  err = one_line(capsys.readouterr().err)
  assert "no intact checkpoint" in err
  assert "was saved as float32[2, 4], this run has float32[2, 8]" in err
  assert "Traceback" not in err


def test_a_silently_altered_file_is_found_before_orbax_reads_it(reference, tmp_path):
  out = copy_run(reference, tmp_path)
  data = next((out / "checkpoints" / "6" / "state" / "d").iterdir())
  raw = bytearray(data.read_bytes())
  raw[-1] ^= 0xFF                                    # same size, one byte flipped
  data.write_bytes(bytes(raw))
  checkpoint.check_files(out / "checkpoints" / "4")
  with pytest.raises(ValueError, match="differs from what was saved"):
    checkpoint.check_files(out / "checkpoints" / "6")


@pytest.mark.parametrize("leftover, message", [
    ("", "no checkpoint in"),
    ("2.orbax-checkpoint-tmp-1700000000", "the first save was interrupted"),
])
def test_empty_checkpoints_or_a_killed_first_save_is_exit_status_4(tmp_path, capsys,
                                                                   leftover, message):
  (tmp_path / "run" / "checkpoints" / leftover).mkdir(parents=True)
  assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 4
  err = one_line(capsys.readouterr().err)
  assert message in err and "Traceback" not in err and "FileNotFoundError" not in err


def test_resume_refuses_conflicting_arguments(reference, tmp_path, capsys):
  out = copy_run(reference, tmp_path)
  for extra, message in (
      (["--ppo.lr", "1e-3"], "--ppo.lr 0.001 (saved run: 0.00025)"),
      (["--seeds", "4"], "--seeds 4 (saved run: 2)"),
      (["--seeds", "4", "--ppo.num-envs", "4"], "--seeds 4 (saved run: 2)"),
      (["--total-timesteps", "256"], "shorter than the saved run's 384"),
      (["--overwrite"], "--overwrite would delete it"),
      (["--out", str(tmp_path / "elsewhere")], "leave out --out")):
    assert cli.main(["train", "--resume", str(out), *extra]) == 2, extra
    assert message in one_line(capsys.readouterr().err), extra
  # A repeated default is no conflict when it equals the saved value.
  assert "ppo.num_envs" in resume.given_options(["--ppo.num-envs", "4"], cli._args_class()())
  assert resume.given_options(["--no-progress", "--ppo.no-anneal-lr"], cli._args_class()()) == {
      "progress", "ppo.anneal_lr"}


def test_resuming_a_finished_run_says_so(reference, tmp_path, capsys):
  out = copy_run(reference, tmp_path)
  before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 0
  printed = one_line(capsys.readouterr().out)
  assert "is finished: all 6 updates were trained; nothing to do" in printed
  assert "env steps/s" not in printed
  assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_resume_with_a_longer_run_continues_it(reference, tmp_path, capsys):
  out = copy_run(reference, tmp_path)
  assert cli.main(["train", "--resume", str(out), "--total-timesteps", "512",
                   "--no-progress"]) == 0
  assert "resumed at update 6" in capsys.readouterr().out
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  with open(reference / "metrics.csv", newline="") as f:
    before = list(csv.DictReader(f))
  assert [int(r["update"]) for r in rows[:8]] == list(range(1, 9))
  assert [r for r in rows if int(r["update"]) <= 6] == before    # restored history
  summary = json.loads((out / "summary.json").read_text())
  assert summary["args"]["total_timesteps"] == 512 and summary["resumed_at_update"] == 6
  # Throughput counts the 2 updates trained now (2 seeds × 2 × 64 steps), not all 8.
  assert summary["env_steps_per_second"] == pytest.approx(256 / summary["train_seconds"])


# --------------------------------------------------------------------------- interrupts


@pytest.mark.slow
def test_sigint_then_resume_gives_the_uninterrupted_metrics(reference, tmp_path, capsys,
                                                           monkeypatch, ctrl_c_interrupts):
  out = tmp_path / "run"
  save = checkpoint.Checkpointer.save

  def save_then_interrupt(self, step, *args, **kwargs):
    save(self, step, *args, **kwargs)
    if step == 2:
      signal.raise_signal(signal.SIGINT)    # Ctrl-C, handled by the main thread
      time.sleep(3)                         # ... while training waits here

  monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_interrupt)
  rc = cli.main(["train", *TINY, "--checkpoint-every", "2", "--out", str(out)])
  join_training_thread()
  monkeypatch.undo()
  err = capsys.readouterr().err
  assert rc == 130
  lines = [l for l in err.splitlines() if "interrupt" in l]
  assert lines == [f"interrupted; continue from update 2 of 6 with: rewardjax train "
                   f"--resume {out}"]
  assert "Traceback" not in err and "KeyboardInterrupt" not in err
  assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["2"]
  assert cli.main(["train", "--resume", str(out), "--no-progress"]) == 0
  assert (out / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()


def test_interrupt_without_checkpoints_says_nothing_was_saved(fake_agent, tmp_path, capsys,
                                                             ctrl_c_interrupts):
  ON_BLOCK.append(lambda: signal.raise_signal(signal.SIGINT))
  assert fake("--fake.block", out=tmp_path / "run") == 130
  err = one_line(capsys.readouterr().err)
  assert "interrupted; no checkpoint was saved" in err and "Traceback" not in err


# --------------------------------------------------------------------------- watchdog


def test_stalled_run_is_stopped_with_its_own_status(fake_agent, tmp_path, capsys):
  t0 = time.monotonic()
  assert fake("--fake.block", "--stall-timeout", "1", out=tmp_path / "run") == 5
  assert time.monotonic() - t0 < 60
  err = one_line(capsys.readouterr().err)
  assert "no progress and no CPU use for 1 s" in err
  assert "jaxlib 0.10.2 CPU deadlock" in err and "--seeds 1 --seed i" in err
  assert "newer jaxlib" in err


def test_watchdog_tells_work_from_a_stall():
  beat = watchdog.Heartbeat()

  def busy():                       # CPU use, no heartbeat: working
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
      pass
    return "done"

  def beating():                    # heartbeats, no CPU: working (e.g. waiting on a device)
    for _ in range(6):
      time.sleep(0.25)
      beat.beat()
    return "done"

  assert watchdog.supervise(busy, heartbeat=beat, stall_timeout=0.5, poll=0.1) == "done"
  assert watchdog.supervise(beating, heartbeat=beat, stall_timeout=0.6, poll=0.1) == "done"
  stop = threading.Event()
  with pytest.raises(watchdog.Stalled):
    watchdog.supervise(lambda: stop.wait(30), heartbeat=beat, stall_timeout=0.5, poll=0.1,
                       stop=stop)
  assert stop.is_set()
  assert watchdog.supervise(lambda: time.sleep(0.3) or 1, heartbeat=beat, stall_timeout=0) == 1
  with pytest.raises(ZeroDivisionError):
    watchdog.supervise(lambda: 1 / 0, heartbeat=beat, stall_timeout=5)


# --------------------------------------------------------------------------- statuses


def test_exit_statuses_are_distinct_and_documented():
  codes = {e.name: int(e) for e in cli.Exit}
  assert codes == {"OK": 0, "BUG": 1, "USAGE": 2, "NONFINITE": 3, "CHECKPOINT": 4,
                   "STALLED": 5, "INTERRUPTED": 130}
  readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
  for code in codes.values():
    assert f"\n  {code} " in cli.__doc__
    assert f"| {code} |" in readme


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
  def broken_make_train(*args, **kwargs):
    raise RuntimeError("a bug in an agent")

  monkeypatch.setitem(cli.AGENTS, "fake", AgentSpec("fake", FakeConfig, broken_make_train))
  with pytest.raises(RuntimeError, match="a bug in an agent"):   # Python exits with 1
    fake(out=tmp_path / "run")


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("env, kwargs, message", [
    ("CartPole-v1", "max_steps_in_episode=0", "max_steps_in_episode must be >= 1"),
    ("CartPole-v1", "max_steps_in_episode=abc",
     "--env-kwargs max_steps_in_episode=abc: max_steps_in_episode takes an integer"),
    ("CartPole-v1", "max_steps_in_episode=2.5", "takes an integer"),
    ("CartPole-v1", "gravity=abc", "--env-kwargs gravity=abc: gravity takes a number"),
    ("DeepSea-bsuite", "size=0", "max_steps_in_episode must be >= 1"),
])
def test_env_kwargs_are_type_checked_before_compiling(env, kwargs, message, tmp_path, capsys):
  rc = cli.main(["train", "--env", env, "--env-kwargs", kwargs, "--out", str(tmp_path / "x")])
  err = one_line(capsys.readouterr().err)
  assert rc == 2 and message in err
  assert "compiling" not in err and not (tmp_path / "x").exists()


def test_env_kwargs_are_converted_to_the_parameter_type():
  _, params = rewardjax.envs.make("CartPole-v1")
  params, kwargs = cli.check_env_params(params, {"gravity": 10, "max_steps_in_episode": 50})
  assert isinstance(params.gravity, float) and params.max_steps_in_episode == 50
  assert kwargs == {"gravity": 10.0, "max_steps_in_episode": 50}


def test_seeds_beyond_int32_are_a_clear_error(tmp_path, capsys):
  rc = cli.main(["train", "--seed", "2147483647", "--seeds", "2", "--out", str(tmp_path / "x")])
  err = one_line(capsys.readouterr().err)
  assert rc == 2 and "outside the int32 range" in err and "--seed <= 2147483646" in err
  assert "OverflowError" not in err


def test_total_timesteps_rounding_is_stated(fake_agent, tmp_path, capsys):
  from rewardjax.agents.ppo import PPOConfig
  note = cli.rounding_note(2048, PPOConfig(num_envs=3, total_timesteps=2048))
  assert "training 5 updates = 1,920 env steps per seed" in note
  assert "1,920 or 2,304" in note
  assert cli.rounding_note(2048, PPOConfig(num_envs=4, total_timesteps=2048)) is None
  assert fake("--total-timesteps", "1000", out=tmp_path / "run") == 0
  err = one_line(capsys.readouterr().err)
  assert "note: --total-timesteps 1,000 is not a multiple of one rollout (128 env steps): " \
         "training 7 updates = 896 env steps per seed" in err


# --------------------------------------------------------------------------- help


def test_help_names_no_tyro_internals(capsys):
  assert cli.main(["train", "--ppo.lr", "-1"]) == 2
  err = capsys.readouterr().err
  assert "lr must be > 0" in err and "dummy" not in err


def test_help_texts_belong_to_their_options(capsys):
  assert cli.main(["train", "--help"]) == 0
  text = capsys.readouterr().out
  # Each text once per agent that has the field (DQN and DDQN share DQN's config),
  # not also on the option below it (--dqn.max-grad-norm, --dqn.double-dqn,
  # --ppo.squash-actions).
  for phrase, agents in (("Linear lr decay over", 2), ("3-step targets with an MSE", 2),
                         ("Continuous (Box) action spaces", 1)):
    assert text.count(phrase) == agents, phrase

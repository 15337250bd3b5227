"""γ is resolved in one place: channels the spec leaves unset follow the agent's (swept) γ.

Spec level: which channels keep ``gamma=None`` and which are built with the
agent's γ. CLI level: ``--sweep gamma=...`` trains different runs, and a γ sweep
that channels built with the agent's γ could not follow is refused before
compiling.
"""

import csv
import inspect
import json
import re

import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import cli, envs, spec
from rewardjax.agents.ppo import PPOConfig
from rewardjax.agents.registry import AGENTS, AgentSpec, register
from rewardjax.rewards.extrinsic import extrinsic

AGENT_GAMMA = 0.97
TINY = ["--env", "CartPole-v1", "--seeds", "1", "--total-timesteps", "192",
        "--ppo.num-envs", "4", "--ppo.num-steps", "16", "--ppo.update-epochs", "1",
        "--ppo.num-minibatches", "1", "--ppo.hidden-sizes", "16", "16", "--no-progress"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
  monkeypatch.setenv("COLUMNS", "400")


def build(text, env_id="MountainCar-v0"):
  env, params = envs.make(env_id)
  return spec.build_rewards(text, env_id=env_id, env=env, env_params=params, gamma=AGENT_GAMMA)


# --------------------------------------------------------------------------- spec


def test_unset_gammas_are_left_to_the_agent():
  rewards = build("extrinsic+extrinsic@gamma=0.9,name=fixed")
  assert rewards.channels.gammas == (None, 0.9)
  assert rewards.fixed_agent_gamma == ()


def test_kind_defaults_fix_gamma():
  pytest.importorskip("rewardjax.rewards.counts")
  rewards = build("extrinsic+counts")
  assert rewards.channels.gammas == (None, 0.99)
  assert rewards.fixed_agent_gamma == ()


def test_modules_that_need_gamma_when_built_get_the_agents():
  rewards = build("extrinsic+potential:mountaincar+extrinsic@normalize=true,name=norm")
  assert rewards.channels.gammas == (None, AGENT_GAMMA, AGENT_GAMMA)
  assert rewards.fixed_agent_gamma == ("potential", "norm")
  rewards = build("extrinsic+potential:mountaincar@gamma=0.9")
  assert rewards.channels.gammas == (None, 0.9) and rewards.fixed_agent_gamma == ()


def test_parse_rewards_sets_every_gamma():
  env, params = envs.make("MountainCar-v0")
  channels = spec.parse_rewards("extrinsic+potential:mountaincar", env_id="MountainCar-v0",
                                env=env, env_params=params, gamma=AGENT_GAMMA)
  assert channels.gammas == (AGENT_GAMMA, AGENT_GAMMA)


def test_build_gets_gamma_only_when_fixed_or_declared(monkeypatch):
  seen = []

  def builder(ctx, arg, options, gamma):
    del ctx, arg, options
    seen.append(gamma)
    return extrinsic()

  monkeypatch.setitem(spec.KINDS, "free", spec.Kind(builder, dict))
  monkeypatch.setitem(spec.KINDS, "needs", spec.Kind(builder, dict, takes_gamma=True))
  rewards = build("free+free@gamma=0.8+needs")
  assert seen == [None, 0.8, AGENT_GAMMA]
  assert rewards.fixed_agent_gamma == ("needs",)


# --------------------------------------------------------------------------- registry


def test_registry_records():
  for name, agent in AGENTS.items():
    assert agent.name == name
    fields = set(agent.config_cls.__dataclass_fields__)
    assert set(agent.sweepable) <= fields, name
    assert agent.sweepable_names(("extrinsic", "rnd"))[-2:] == ("extrinsic.coef", "rnd.coef")
  minimal = AgentSpec("x", PPOConfig, lambda *a, **k: None)
  assert minimal.sweepable_names(("extrinsic",)) == ()
  with pytest.raises(ValueError, match="identifiers"):
    register(AgentSpec("bad-name", PPOConfig, lambda *a, **k: None))


def test_cli_asks_the_registry_rather_than_inspecting_agents():
  source = inspect.getsource(cli)
  for probe in ("inspect.signature", "sys.modules", "SWEEPABLE", "hasattr(train"):
    assert probe not in source, probe
  assert not re.search(r"spec\._|import _", source)


def test_gamma_sweep_check():
  config = PPOConfig()
  rewards = build("extrinsic+potential:mountaincar@gamma=0.99")
  cli.check_gamma_sweep([{"gamma": 0.5}, {"gamma": 0.99}], rewards, config)
  rewards = build("extrinsic+potential:mountaincar")
  cli.check_gamma_sweep([{"lr": 1e-3}], rewards, config)
  with pytest.raises(cli.UsageError, match=r"channel\(s\) potential"):
    cli.check_gamma_sweep([{"gamma": 0.5}, {"gamma": 0.99}], rewards, config)


# --------------------------------------------------------------------------- CLI


def test_gamma_sweep_trains_different_runs(tmp_path):
  out = tmp_path / "gamma"
  rc = cli.main(["train", *TINY, "--rewards", "extrinsic", "--sweep", "gamma=0.5,0.99",
                 "--out", str(out)])
  assert rc == 0
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["setting"] for r in rows] == ["gamma=0.5"] * 3 + ["gamma=0.99"] * 3
  loss = np.array([float(r["value_loss"]) for r in rows]).reshape(2, 3)
  assert not np.allclose(loss[0], loss[1])
  summary = json.loads((out / "summary.json").read_text())
  assert summary["settings"] == [{"gamma": 0.5}, {"gamma": 0.99}]
  assert summary["channels"]["extrinsic"]["gamma"] is None     # follows the swept γ


@pytest.mark.parametrize("rewards, channel", [
    ("extrinsic+potential:cartpole", "potential"),
    ("extrinsic@normalize=true", "extrinsic"),
])
def test_gamma_sweep_over_channels_built_with_the_agents_gamma_is_refused(
    rewards, channel, tmp_path, capsys):
  rc = cli.main(["train", *TINY, "--rewards", rewards, "--sweep", "ppo.gamma=0.5,0.99",
                 "--out", str(tmp_path / "x")])
  err = " ".join(capsys.readouterr().err.split())
  assert rc == 2
  assert f"--sweep gamma: channel(s) {channel} were built with the agent's gamma" in err
  assert "compiling" not in err and not (tmp_path / "x").exists()

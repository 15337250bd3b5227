"""The core install imports no extra; a missing extra is an error naming its pip command."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import rewardjax as rjx
from rewardjax import extras
from rewardjax import writers

EXTRA_MODULES = ("brax", "craftax", "mujoco", "mujoco_mjx", "tensorboardX", "wandb", "mkdocs",
                 "xminigrid")


def test_importing_rewardjax_imports_no_extra():
  # A fresh interpreter: this test process may have imported brax for other tests.
  code = textwrap.dedent(f"""
      import sys
      import rewardjax, rewardjax.rewards, rewardjax.envs, rewardjax.cli
      import rewardjax.agents.ppo, rewardjax.agents.dqn, rewardjax.agents.pqn
      top = {{m.split(".")[0] for m in sys.modules}}
      print(sorted(top & set({EXTRA_MODULES!r})))
  """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True)
  assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_missing_brax_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "brax", None)      # import brax -> ImportError
  monkeypatch.setitem(sys.modules, "brax.envs", None)
  with pytest.raises(ImportError, match=r'brax/ant needs .*pip install "rewardjax\[brax\]"'):
    rjx.envs.make("brax/ant")


def test_missing_tensorboardx_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)
  with pytest.raises(ImportError,
                     match=r'--tensorboard needs .*pip install "rewardjax\[tensorboard\]"'):
    writers.make(["seed0"], tensorboard=str(tmp_path / "tb"))


def test_require_returns_the_module_when_installed():
  tbx = pytest.importorskip("tensorboardX")
  assert extras.require("tensorboardX", "--tensorboard") is tbx


def test_require_refuses_a_module_that_is_no_extra():
  with pytest.raises(ValueError, match="not an optional dependency"):
    extras.require("numpy", "x")
  with pytest.raises(ValueError, match="unknown extra"):
    extras.install_command("nope")


def test_every_extra_is_declared_in_pyproject():
  project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
  declared = project["project"]["optional-dependencies"]
  core = " ".join(project["project"]["dependencies"]).lower()
  for module, extra in extras.EXTRAS.items():
    assert extra in declared, extra
    assert module.lower() not in core, f"{module} is in the core dependencies"
  pulled = {e for req in declared["test"] if req.startswith("rewardjax[")
            for e in req[len("rewardjax["):-1].split(",")}
  for extra in set(extras.EXTRAS.values()) | {"docs"}:
    assert extra in pulled, f"the test extra does not pull [{extra}], so CI would not test it"

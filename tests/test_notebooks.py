"""Executes every ``notebooks/*.ipynb`` with a small budget and checks that no cell fails.

Notebooks read their budget from ``RJX_NB_TIMESTEPS`` (env steps per seed) and
``RJX_NB_SEEDS``; this test shrinks both so each notebook runs in well under a
minute and a half on a CPU (and ``RJX_NB_ARMS`` keeps three of the bonus zoo's
eleven arms: tests/test_intrinsic_zoo.py trains every module in PPO). New
notebooks are picked up automatically.

The kernel must run the interpreter that runs pytest (the one with rewardjax
installed). A ``python3`` kernel spec found on the Jupyter path may name a bare
``python`` resolved through ``PATH``, or another interpreter altogether; when it
does not resolve to ``sys.executable`` a kernel spec pointing at
``sys.executable`` is written to a temporary Jupyter data directory first.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

BUDGET_ENV = {
    "RJX_NB_TIMESTEPS": "20000",
    "RJX_NB_SEEDS": "2",
    "RJX_NB_ARMS": "extrinsic,e3b,select",     # 05: three of its arms (each compiles apart)
    "JAX_PLATFORMS": "cpu",
    "MPLBACKEND": "Agg",
}
CELL_TIMEOUT_S = 600
KERNEL_NAME = "python3"


def _same_interpreter(exe: str | None) -> bool:
  if not exe:
    return False
  path = exe if os.path.isabs(exe) else shutil.which(exe)
  if path is None:
    return False
  # Compare without resolving symlinks: a venv's python is a link to the base
  # interpreter, but only the venv path sees the venv's packages.
  return os.path.normcase(os.path.abspath(path)) == os.path.normcase(
      os.path.abspath(sys.executable))


def _kernel_name(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
  """A kernel name whose spec runs ``sys.executable``; installs one if needed."""
  try:
    spec = kernelspec.KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    if _same_interpreter(spec.argv[0]):
      return KERNEL_NAME
  except kernelspec.NoSuchKernel:
    pass
  data_dir = tmp_path / "jupyter_data"
  spec_dir = data_dir / "kernels" / KERNEL_NAME
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": f"Python 3 ({sys.executable})",
      "language": "python",
  }))
  # JUPYTER_PATH directories come first in the kernel-spec search path.
  old = os.environ.get("JUPYTER_PATH")
  monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(data_dir), old])))
  spec = kernelspec.KernelSpecManager().get_kernel_spec(KERNEL_NAME)
  assert spec.argv[0] == sys.executable, spec.argv
  return KERNEL_NAME


def test_notebooks_exist():
  assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: pathlib.Path, tmp_path, monkeypatch):
  nb = nbformat.read(path, as_version=4)
  assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
      f"{path.name} is saved with outputs; clear them to keep the repository small")
  for k, v in BUDGET_ENV.items():
    monkeypatch.setenv(k, v)
  client = nbclient.NotebookClient(
      nb, kernel_name=_kernel_name(tmp_path, monkeypatch), timeout=CELL_TIMEOUT_S,
      resources={"metadata": {"path": str(tmp_path)}})
  try:
    client.execute()   # raises CellExecutionError naming the failing cell
  except nbclient.exceptions.CellExecutionError as e:
    pytest.fail(f"{path.name} failed:\n{e}")
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors, f"{path.name}: cells produced errors: {errors}"

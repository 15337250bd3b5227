"""The documentation site: ``mkdocs build --strict``, the reference, the pages' examples.

The build runs in a subprocess into a temporary folder. mkdocs and its plugins
come with the ``docs`` extra, which the ``test`` extra pulls; without them the
build test is skipped (and says so). Every public name of ``rewardjax.rewards``,
the agent modules and ``rewardjax.envs`` must have a docstring (checked without
mkdocs) and appear in the built API reference.
"""

from __future__ import annotations

import html
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _public_api():
  spec = importlib.util.spec_from_file_location("public_api", DOCS / "public_api.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_public_name_has_a_docstring():
  api = _public_api()
  modules = api.documented_modules()
  assert {"rewardjax.rewards", "rewardjax.envs", "rewardjax.agents.ppo",
          "rewardjax.agents.dqn", "rewardjax.agents.pqn"} <= set(modules)
  names = {m: api.public_names(m) for m in modules}
  assert "rnd" in dict(names["rewardjax.rewards"]) and "make" in dict(names["rewardjax.envs"])
  assert "make_train" in dict(names["rewardjax.agents.ppo"])
  assert "jnp" not in dict(names["rewardjax.agents.ppo"])        # imports are not its API
  missing = [n for m in modules for n in api.missing_docstrings(m)]
  assert not missing, f"public names without a docstring: {missing}"


def test_a_class_with_only_the_generated_docstring_counts_as_missing():
  from typing import NamedTuple
  api = _public_api()

  class Bare(NamedTuple):
    x: int

  class Documented(NamedTuple):
    """A documented tuple."""
    x: int

  assert not api._has_own_doc(Bare)            # pylint: disable=protected-access
  assert api._has_own_doc(Documented)          # pylint: disable=protected-access


@pytest.fixture(scope="module")
def site(tmp_path_factory):
  pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")
  for plugin in ("material", "mkdocstrings_handlers.python", "mkdocs_jupyter"):
    pytest.importorskip(plugin, reason=f"{plugin} is not installed: pip install -e '.[docs]'")
  out = tmp_path_factory.mktemp("site")
  proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
  assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
  return out


def test_every_public_name_appears_in_the_built_reference(site):
  api = _public_api()
  html = "".join((site / "reference" / page / "index.html").read_text()
                 for page in ("rewards", "agents", "envs"))
  absent = [f"{m}.{n}" for m in api.documented_modules() for n, obj in api.public_names(m)
            if f'id="{obj.__module__}.{obj.__qualname__}"' not in html]
  assert not absent, f"public names missing from the API reference: {absent}"


def _text(page: pathlib.Path) -> str:
  """A built page's text: tags removed (highlighting splits code into spans), entities decoded."""
  return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_pages_show_the_included_text(site):
  home = _text(site / "index.html")
  assert "pip install -e . && rewardjax train --env DeepSea-bsuite" in home
  assert 'pip install -q -e ".[test]"' in home
  first_row = next(l for l in (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()
                   if l.startswith("| DeepSea-bsuite"))
  cells = [c.strip() for c in first_row.strip("|").split("|")]
  bench = _text(site / "benchmarks" / "index.html")
  assert all(c in bench for c in cells[:3]), cells
  for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    assert (site / "notebooks" / nb.stem / "index.html").is_file(), f"{nb.name} is not a page"


def _python_blocks(page: pathlib.Path) -> str:
  """The page's Python blocks in order, each at its own line number (for tracebacks)."""
  text = page.read_text()
  lines = [""] * text.count("\n")
  for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
    first = text.count("\n", 0, m.start(1))
    for i, line in enumerate(m.group(1).splitlines()):
      lines[first + i] = line
  return "\n".join(lines)


EXAMPLE_PAGES = sorted((DOCS / "rewards").glob("*.md")) + [DOCS / "byo_agent.md"]


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.stem)
def test_page_examples_run(page):
  code = _python_blocks(page)
  assert "import rewardjax" in code, f"{page.name} has no runnable example"
  exec(compile(code, str(page), "exec"), {"__name__": "__docs__"})   # pylint: disable=exec-used

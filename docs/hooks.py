"""mkdocs hooks: the API reference's content, and the source tree mkdocstrings reads.

* ``public_api.public_names(module)`` lists a module's public functions and classes.
  A reference page holds ``<!-- public-api: MODULE -->`` (or ``PACKAGE.*``: each of its
  documented modules); the hook replaces it with one mkdocstrings block per public name, so a new reward module or agent appears
  in the reference without editing the docs, and one without a docstring is a
  warning (a failed ``mkdocs build --strict``). ``tests/test_docs.py`` checks the
  same list.
* griffe (mkdocstrings' reader) finds packages by directory; ``rewardjax.agents``
  and ``rewardjax.envs`` live in ``agents/`` and ``envs/`` (pyproject's
  ``package-dir``), so the hook lays out a temporary ``rewardjax/`` tree of symbolic
  links in which they sit where their names say, and points mkdocstrings at it.
* ``<!-- signature: path.to.function -->`` becomes a code block of the function's
  signature, so the defaults a page shows are the code's.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import pathlib
import re
import sys
import tempfile
import tomllib

import mkdocs.plugins

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from public_api import documented_modules, missing_docstrings, public_names  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- public-api: ([\w.]+(?:\.\*)?) -->")
SIGNATURE = re.compile(r"<!-- signature: ([\w.]+) -->")
log = logging.getLogger("mkdocs.plugins.rewardjax")


def _reference_blocks(module_name: str) -> str:
  for name in missing_docstrings(module_name):
    log.warning("public name without a docstring: %s", name)
  blocks = [f"::: {obj.__module__}.{obj.__qualname__}\n"
            f"    options:\n      heading_level: 3\n      show_root_full_path: false\n"
            for _, obj in public_names(module_name)]
  return "\n".join(blocks)


def _reference(pattern: str) -> str:
  """The blocks of one module, or of every documented module under ``pkg.*``, each headed."""
  if not pattern.endswith(".*"):
    return _reference_blocks(pattern)
  parts = []
  for module_name in documented_modules():
    if module_name.startswith(pattern[:-1]):
      parts.append(f"::: {module_name}\n    options:\n      members: false\n"
                   f"      heading_level: 2\n\n{_reference_blocks(module_name)}")
  return "\n".join(parts)


def _parameter(p: inspect.Parameter) -> str:
  """``name: annotation = default``, with string annotations (postponed evaluation) unquoted."""
  text = p.name if p.kind is not p.VAR_KEYWORD else f"**{p.name}"
  if p.kind is p.VAR_POSITIONAL:
    text = f"*{p.name}"
  if p.annotation is not p.empty:
    text += f": {p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)}"
  if p.default is not p.empty:
    text += f" = {p.default!r}"
  return text


def _signature(path: str) -> str:
  """A code block with the call signature (and so the defaults) of the function at ``path``."""
  module_name, name = path.rsplit(".", 1)
  fn = getattr(importlib.import_module(module_name), name)
  params = ",\n".join(f"    {_parameter(p)}" for p in inspect.signature(fn).parameters.values())
  return f"```python\n{name}(\n{params},\n)\n```"


def _source_tree() -> str:
  """A temporary directory holding ``rewardjax/`` with each ``package-dir`` linked in place."""
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())
  package_dir = project["tool"]["setuptools"]["package-dir"]
  tree = pathlib.Path(tempfile.mkdtemp(prefix="rewardjax-docs-src-"))
  (tree / "rewardjax").mkdir()
  for entry in (ROOT / "rewardjax").iterdir():
    os.symlink(entry, tree / "rewardjax" / entry.name)
  for package, folder in package_dir.items():
    os.symlink(ROOT / folder, tree.joinpath(*package.split(".")))
  return str(tree)


@mkdocs.plugins.event_priority(100)   # before mkdocstrings reads its options
def on_config(config):
  handler = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
  handler["paths"] = [_source_tree()]
  return config


def on_page_markdown(markdown, page, config, files):
  del page, config, files
  markdown = SIGNATURE.sub(lambda m: _signature(m.group(1)), markdown)
  return MARKER.sub(lambda m: _reference(m.group(1)), markdown)

"""The shape of the library's code: no function body longer than 80 lines of its own.

A function's own lines are its body's lines minus those of the functions and
classes nested in it (a ``make_train`` closure of short named steps is fine, as
in optax and PureJaxRL). Docstrings count: a long docstring is a long body.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("rewardjax", "agents", "envs")
MAX_OWN_LINES = 80


DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _span(node) -> int:
  return node.end_lineno - node.lineno + 1


def _nested_defs(node):
  """Functions and classes inside ``node`` with no other def between them and it."""
  for child in ast.iter_child_nodes(node):
    if isinstance(child, DEFS):
      yield child
    else:
      yield from _nested_defs(child)


def own_lengths(path: pathlib.Path):
  """``(qualified name, own lines)`` of every function in the file at ``path``."""

  def visit(node, prefix):
    for child in _nested_defs(node):
      name = f"{prefix}{child.name}"
      if not isinstance(child, ast.ClassDef):
        yield name, _span(child) - sum(_span(d) for d in _nested_defs(child))
      yield from visit(child, name + ".")

  yield from visit(ast.parse(path.read_text(), filename=str(path)), "")


def python_files():
  for package in PACKAGES:
    yield from sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", list(python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_body_over_80_lines_of_its_own(path):
  long = [(name, n) for name, n in own_lengths(path) if n > MAX_OWN_LINES]
  assert not long, f"{path.relative_to(ROOT)}: split these functions: {long}"


def test_own_lengths_count_nested_functions_apart(tmp_path):
  source = tmp_path / "m.py"
  source.write_text("def outer():\n  x = 1\n  def inner():\n    return 2\n  return inner\n")
  assert dict(own_lengths(source)) == {"outer": 3, "outer.inner": 2}

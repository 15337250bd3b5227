"""The public API the reference documents: which modules, which names in them.

Used by ``docs/hooks.py`` (to write the reference pages) and by
``tests/test_docs.py`` (every public name has a docstring and appears in the
built reference). Needs rewardjax, not mkdocs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil


def documented_modules() -> list[str]:
  """The modules the API reference covers: ``rewardjax.rewards``, every agent module, ``rewardjax.envs``."""
  import rewardjax.agents  # pylint: disable=g-import-not-at-top
  agents = sorted(f"rewardjax.agents.{m.name}" for m in pkgutil.iter_modules(rewardjax.agents.__path__))
  return ["rewardjax.rewards", *agents, "rewardjax.envs"]


def _has_own_doc(obj) -> bool:
  doc = (obj.__doc__ or "").strip()
  # NamedTuple and dataclass classes get a generated "Name(field, ...)" docstring.
  return bool(doc) and not (inspect.isclass(obj) and doc.startswith(obj.__name__ + "("))


def public_names(module_name: str) -> list[tuple[str, object]]:
  """``[(name, object)]``: the public functions and classes of ``module_name``, sorted.

  For a package (``rewardjax.rewards``, ``rewardjax.envs``): every function and
  class it exposes that rewardjax defines (its re-exports); for a module
  (``rewardjax.agents.ppo``): those the module itself defines. Names starting
  with ``_`` are private.
  """
  module = importlib.import_module(module_name)
  is_package = hasattr(module, "__path__")
  names = []
  for name in sorted(vars(module)):
    obj = getattr(module, name)
    if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
      continue
    home = obj.__module__ or ""
    if home == module_name or (is_package and home.startswith("rewardjax")):
      names.append((name, obj))
  return names


def missing_docstrings(module_name: str) -> list[str]:
  """Public names of ``module_name`` whose object has no docstring of its own."""
  return [f"{module_name}.{n}" for n, obj in public_names(module_name) if not _has_own_doc(obj)]

"""``load``: source text (say, a language model's reply) to a checked, jit-able progress function.

The steps: take the code out of a Markdown fence, parse it with ``ast``,
validate it against the allow-listed subset of Python (``allowlist``), pick the
entry point, execute the definitions in a namespace whose ``__builtins__`` are
``allowlist.SAFE_BUILTINS`` only, and, given an example observation, ``check``
the function by tracing and running it.

Loading bounds its own cost: a source over ``MAX_SOURCE_BYTES`` is refused
before it is parsed, and everything after (validation, the top-level
definitions, the trace and the check) runs under a time limit (``timeout``).
The limit is checked at every line of the loaded source (``_Deadline``), which
stops its Python-level loops such as ``for i in range(10**9)``; a single long
call into C (``9**9**9``) cannot be interrupted from within the process.

This guards against accidents and obvious misuse in generated code; it is not an
operating-system sandbox. Run code from an untrusted party in a separate,
resource-limited process.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import linecache
import os
import re
import sys
import textwrap
import time
import types
from typing import Any, Callable

from rewardjax.progress.allowlist import Rejected
from rewardjax.progress.allowlist import RemoveImports
from rewardjax.progress.allowlist import SAFE_BUILTINS
from rewardjax.progress.allowlist import Validator
from rewardjax.progress.allowlist import strip_annotations
from rewardjax.progress.checks import LoadTimeout
from rewardjax.progress.checks import check_for_caller
from rewardjax.progress.checks import first_line
from rewardjax.types import Array

# Numbers the pseudo-filenames, so that each loaded source has its own
# linecache entry.
_counter = itertools.count()

# A progress function is a few dozen lines; a source this large is refused unparsed.
MAX_SOURCE_BYTES = 64 * 1024
# Seconds for validation, the top-level definitions, the trace and the check.
DEFAULT_TIMEOUT_S = 30.0

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.S)


class _Deadline:
  """Raises ``LoadTimeout`` in the loading thread once ``seconds`` have passed.

  A ``sys.settrace`` hook checks the clock at every line of the loaded source
  (pseudo-files ``<progress …>``) and nowhere else: an exception raised inside
  library code (JAX's tracer, a finaliser run by the garbage collector) would
  leave that code half done or be reported as unraisable and lost, while one
  raised on a line of the loaded source propagates like any error of the
  function. Every slow loop of the source runs its own lines, so it is stopped.
  The hook works in any thread and leaves signal handlers alone; Python unsets a
  trace function that raises, so the error is raised once; the caller's hook is
  restored on exit.
  """

  def __init__(self, seconds: float, shown: str):
    self.seconds, self.shown = float(seconds), shown

  def __enter__(self):
    self.end = time.monotonic() + self.seconds
    self.previous = sys.gettrace()
    sys.settrace(self._on_call)
    return self

  def __exit__(self, *exc):
    sys.settrace(self.previous)

  def _on_line(self, frame, event, arg):
    if time.monotonic() > self.end:
      raise LoadTimeout(
          f"progress source {self.shown}: loading took longer than the time limit of "
          f"{self.seconds:g} s (validation, definitions and the trace on the example "
          "observation); a loop over a huge range? Pass timeout= to allow more")
    return self._on_line

  def _on_call(self, frame, event, arg):
    return self._on_line if frame.f_code.co_filename.startswith("<progress ") else None


def _check_size(source: str, shown: str) -> None:
  size = len(source.encode("utf-8", "surrogatepass"))
  if size > MAX_SOURCE_BYTES:
    raise ValueError(
        f"progress source {shown} is {size:,} bytes, over the limit of "
        f"{MAX_SOURCE_BYTES:,} bytes (MAX_SOURCE_BYTES); a progress function is a few "
        "dozen lines: send only the function")


def _extract_code(source: str) -> str:
  """The Python code in ``source``, taken out of a Markdown fence if there is one.

  Language models usually wrap code in ```python fences and add prose around
  it; the first fenced block that defines a function is the code.
  """
  blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(source)]
  if blocks:
    python = [b for lang, b in blocks if lang in ("", "python", "py", "python3")]
    defining = [b for b in python if re.search(r"^\s*def\s", b, re.M)]
    source = (defining or python or [blocks[0][1]])[0]
  return textwrap.dedent(source).strip("\n") + "\n"


def _parse(code: str, label: str, shown: str) -> ast.Module:
  """``ast.parse``; a ``ValueError`` naming the line if the code does not parse."""
  try:
    return ast.parse(code, filename=label)
  except SyntaxError as e:
    raise ValueError(
        f"progress source {shown} does not parse: line {e.lineno}: {e.msg}\n"
        f"    {(e.text or '').strip()}") from None
  except (RecursionError, MemoryError, ValueError) as e:
    raise ValueError(f"progress source {shown} does not parse: {e!r}") from None


def _rejection(filename: str, lines: list[str], err: Rejected) -> ValueError:
  """The ``ValueError`` for ``err``, quoting its line of the source."""
  lineno = getattr(err.node, "lineno", None)
  if lineno is None:
    return ValueError(f"progress source {filename}: {err.message}")
  code = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
  return ValueError(
      f"progress source {filename} line {lineno}: {err.message}\n"
      f"    {code}")


def _validate(tree: ast.Module, code: str,
              shown: str) -> tuple[ast.Module, Validator]:
  """The tree without annotations, and the validator that accepted it."""
  validator = Validator()
  try:
    tree = strip_annotations(tree)
    validator.run(tree)
  except Rejected as err:
    raise _rejection(shown, code.splitlines(), err) from None
  except RecursionError:
    raise ValueError(f"progress source {shown} is nested too deeply") from None
  return tree, validator


def _entry_point(tree: ast.Module, name: str | None, shown: str) -> str:
  """``name`` if the source defines it; by default ``progress``, else its only function."""
  functions = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
  if not functions:
    raise ValueError(
        f"progress source {shown} defines no function; expected "
        f"`def progress(obs):` returning a 1-D jnp array")
  if name is None:
    if "progress" in functions or len(functions) == 1:
      return "progress" if "progress" in functions else functions[0]
    raise ValueError(
        f"progress source {shown} defines several functions "
        f"({', '.join(functions)}); call the entry point `progress` or pass "
        f"name=...")
  if name not in functions:
    raise ValueError(
        f"progress source {shown} defines no function {name!r} (it defines "
        f"{', '.join(functions)})")
  return name


def _execute(tree: ast.Module, code: str, label: str, shown: str,
             validator: Validator, name: str) -> types.FunctionType:
  """Runs the validated definitions in a restricted namespace; returns ``name``."""
  tree = ast.fix_missing_locations(RemoveImports().visit(tree))
  # Registering the text lets tracebacks and inspect.getsource show it.
  linecache.cache[label] = (len(code), None, code.splitlines(True), label)
  namespace = {"__builtins__": dict(SAFE_BUILTINS),
               "__name__": "rewardjax.progress.loaded"}
  namespace.update(validator.modules)
  namespace.update(validator.imported)
  try:
    exec(compile(tree, label, "exec"), namespace)  # pylint: disable=exec-used
  except LoadTimeout:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"progress source {shown}: evaluating its top-level definitions raised "
        f"{first_line(e)}") from e
  fn = namespace[name]
  if not isinstance(fn, types.FunctionType):  # Rebound by a later assignment.
    raise ValueError(
        f"progress source {shown}: {name!r} is a {type(fn).__name__} after the "
        f"source runs, not the function it defines")
  return fn


def _check_signature(fn: types.FunctionType, name: str) -> None:
  """Refuses a function that does not take exactly one positional observation."""
  params = inspect.signature(fn).parameters.values()
  required = [p for p in params if p.default is inspect.Parameter.empty]
  if len(required) != 1 or required[0].kind == inspect.Parameter.KEYWORD_ONLY:
    raise ValueError(
        f"progress function {name!r} must take exactly one required positional "
        f"argument (the observation), got {inspect.signature(fn)}")


def load(source: str, example_obs: Any = None, name: str | None = None, *,
         filename: str | None = None,
         timeout: float = DEFAULT_TIMEOUT_S) -> Callable[[Array], Array]:
  """Turns Python source text into a checked, jit-able progress function.

  The source may be a language model's whole reply: the first Markdown code
  block that defines a function is used. It must define a function of one
  observation (other top-level functions may serve as helpers), using only
  ``jnp``, ``math`` and a few builtins; see ``rewardjax.progress.allowlist``
  for the accepted subset. Type annotations are allowed and ignored.

  Args:
    source: Python source text.
    example_obs: one observation; when given, the function is traced and run
      on it (see ``check``) and a ``ValueError`` names any problem.
    name: the function to return; by default ``progress`` if the source
      defines it, else its only function.
    filename: shown in error messages and tracebacks.
    timeout: seconds allowed for validation, the top-level definitions and the
      check on ``example_obs`` together.

  Returns:
    The function, defined in a namespace whose only globals are ``jnp``,
    ``math``, the source's own constants/functions and a few builtins.
    ``inspect.getsource`` works on it.

  Raises:
    ValueError: the source does not parse, uses a construct outside the
      allowed subset (the message names it and its line), does not define the
      function, or (with ``example_obs``) fails ``check``; the source is
      over ``MAX_SOURCE_BYTES``, or loading takes longer than ``timeout``
      (``LoadTimeout``, a ``ValueError``).
  """
  if not isinstance(source, str):
    raise TypeError(f"load: source must be a str, got {type(source).__name__}")
  shown = filename or "<string>"
  _check_size(source, shown)
  if not timeout > 0:
    raise ValueError(f"load: timeout must be a positive number of seconds, got {timeout!r}")
  code = _extract_code(source)
  label = f"<progress {filename or name or 'source'} #{next(_counter)}>"
  with _Deadline(timeout, shown):
    tree, validator = _validate(_parse(code, label, shown), code, shown)
    name = _entry_point(tree, name, shown)
    fn = _execute(tree, code, label, shown, validator, name)
    _check_signature(fn, name)
    if example_obs is not None:
      check_for_caller(fn, example_obs, name, stacklevel=3)
  return fn


def load_file(path: str | os.PathLike, example_obs: Any = None,
              name: str | None = None) -> Callable[[Array], Array]:
  """``load`` on the text of the file at ``path``."""
  with open(path, encoding="utf-8") as f:
    source = f.read(MAX_SOURCE_BYTES + 1)    # enough to refuse an oversized file
  return load(source, example_obs, name, filename=os.fspath(path))

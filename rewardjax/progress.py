"""Progress functions: hand-written, or loaded from source text a language model wrote.

A progress function is a pure ``obs -> Array[k]`` for ONE observation (no batch
dimension): a fixed-length, 1-D float array whose values lie roughly in [0, 1],
higher meaning closer to the goal. The same function serves as a potential for
shaping (``potential`` / ``as_potential``: Φ = scale · mean of the components)
and, binned, as a count key (``rewards.progress_counts``).

Three ways to get one:

* ``get(name)``: a hand-written function for a known environment (``REGISTRY``).
* write your own and ``check(fn, example_obs)`` it.
* ``prompt(env_id=...)`` renders the text to send to *your* language model, and
  ``load(reply, example_obs)`` turns its reply into a checked, jit-able function.

``load`` parses the source with ``ast`` and accepts only an allow-listed subset
of Python: top-level function definitions and constants, arithmetic, comparisons,
conditionals, bounded ``for`` loops, and calls to ``jnp.*``, ``math.*`` and a few
harmless builtins. It rejects imports other than ``jax.numpy``/``math``, every
name or attribute that starts with an underscore (``__class__``, ``__import__``,
…), attribute access other than ``jnp.*``/``math.*`` and a short list of array
attributes (``.shape``, ``.astype``, ``.at``, …), ``eval``/``exec``/``open`` and
friends, classes, lambdas, ``while``, ``try``, ``with``, ``global`` and
generators, each with a ``ValueError`` that names the construct and its line.
The validated code then runs with a restricted ``__builtins__``.

This guards against accidents and obvious misuse in generated code; it is not an
operating-system sandbox (it does not bound CPU time or memory, e.g. ``9**9**9``).
Run code from an untrusted party in a separate, resource-limited process.

Nothing in this module calls a network.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import inspect
import itertools
import linecache
import math
import os
import re
import textwrap
import traceback
import types
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Re-exported: the registry of hand-written progress functions is the single
# source of truth; this module only adds loading, checking and prompting.
from rewardjax.envs.progress_functions import ProgressSpec
from rewardjax.envs.progress_functions import REGISTRY
from rewardjax.envs.progress_functions import get
from rewardjax.envs.progress_functions import potential

Array = jax.Array

__all__ = [
    "ProgressSpec", "REGISTRY", "get", "potential", "as_potential", "check",
    "load", "load_file", "prompt", "EnvDescription", "KNOWN_ENVS", "CONTRACT",
    "EXAMPLE",
]


def as_potential(progress: str | Callable[[Array], Array],
                 weights: Sequence[float] | None = None,
                 scale: float = 1.0) -> Callable[[Array], Array]:
  """A potential Φ(s) = scale · (weighted) mean of ``progress(s)``.

  Args:
    progress: a registered name (see ``REGISTRY``) or a progress function.
    weights: optional non-negative weight per component; ``None``: the
      registered ``potential_weights`` of a named function, else equal weights.
    scale: multiplies Φ.

  Returns:
    ``obs -> scalar`` for one observation.
  """
  return potential(progress, scale, weights)


# ----------------------------------------------------------------------------
# check
# ----------------------------------------------------------------------------

# Hints for the errors JAX raises when a function is not traceable. The order
# matters: TracerBoolConversionError and TracerIntegerConversionError are
# subclasses of ConcretizationTypeError.
_TRACE_HINTS = (
    (jax.errors.TracerBoolConversionError,
     "it uses Python control flow on a traced array value (`if`, `and`/`or`/"
     "`not`, `bool()`, builtin `min`/`max` of arrays, or a chained comparison); "
     "jax.jit cannot branch on array values. Use jnp.where(cond, a, b), "
     "jnp.logical_and/jnp.logical_or, jnp.minimum/jnp.maximum or jnp.clip"),
    (jax.errors.TracerIntegerConversionError,
     "it converts a traced array value to a Python int (`int(x)`, `range(x)`, "
     "or indexing a Python list/tuple with an array). Keep the value in jnp, "
     "e.g. index a jnp.array instead of a list"),
    (jax.errors.ConcretizationTypeError,
     "it needs the concrete value of a traced array (`float(x)`, `math.*` on an "
     "array, or a shape computed from values). Use jnp.* functions, which trace"),
    (jax.errors.TracerArrayConversionError,
     "it converts a traced array to a NumPy array (numpy functions or "
     "np.asarray). Use jax.numpy (jnp) instead"),
    (jax.errors.NonConcreteBooleanIndexError,
     "boolean-mask indexing gives a shape that depends on values. Use "
     "jnp.where(mask, x, 0.0) instead"),
)


def _describe(obs) -> str:
  """``shape (2,) float32`` for an array, or the pytree structure otherwise."""
  if isinstance(obs, (jax.Array, np.ndarray)):
    return f"shape {tuple(obs.shape)} {obs.dtype}"
  return f"pytree {jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), obs)}"


def _user_location(fn, exc: BaseException) -> str:
  """`` (line N: `code`)`` of the deepest traceback frame inside ``fn``'s file."""
  code = getattr(inspect.unwrap(fn), "__code__", None)
  if code is None:
    return ""
  frames = [f for f in traceback.extract_tb(exc.__traceback__)
            if f.filename == code.co_filename]
  if not frames:
    return ""
  line = (frames[-1].line or "").strip()
  return f" (line {frames[-1].lineno}: `{line}`)" if line else (
      f" (line {frames[-1].lineno})")


def _first_line(exc: BaseException) -> str:
  text = str(exc).strip().splitlines()
  return f"{type(exc).__name__}: {text[0] if text else ''}"


def check(fn: Callable[[Array], Array], example_obs: Any, *,
          name: str | None = None) -> int:
  """Checks that ``fn`` is a valid progress function and returns its length k.

  ``fn`` is traced once with ``jax.eval_shape`` on ``example_obs`` (as
  ``jax.jit`` would trace it), then compiled and run once on it. It must

  * trace: no Python control flow or conversions on traced values;
  * return ONE 1-D floating-point array of fixed length k ≥ 1 (a scalar is
    refused too: count keys and potentials need a consistent [k] layout);
  * return finite values on the example.

  Values outside [0, 1] only warn: the contract says "roughly".

  Args:
    fn: ``obs -> Array[k]`` for one observation.
    example_obs: one observation (no batch dimension), e.g. from ``env.reset``;
      a list or tuple of numbers is converted to an array.
    name: what to call ``fn`` in error messages (default: its ``__name__``).

  Returns:
    k, the number of progress components.

  Raises:
    ValueError: naming the problem (and the offending line when it is known).
  """
  return _check(fn, example_obs, name, stacklevel=3)


def _check(fn, example_obs, name, stacklevel: int) -> int:
  """``check``; ``stacklevel`` points its warning at the public caller."""
  label = name or getattr(fn, "__name__", None) or repr(fn)
  if isinstance(example_obs, (list, tuple)) and not hasattr(example_obs,
                                                            "_fields"):
    obs = jnp.asarray(example_obs)  # [0.1, 0.2] is one array, not a pytree.
  else:
    obs = jax.tree.map(jnp.asarray, example_obs)
  where = f"on an example observation of {_describe(obs)}"
  try:
    out = jax.eval_shape(fn, obs)
  except Exception as e:  # pylint: disable=broad-except
    hint = next((h for cls, h in _TRACE_HINTS if isinstance(e, cls)), None)
    problem = hint or f"it raised {_first_line(e)}"
    raise ValueError(
        f"progress function {label!r} cannot be traced by jax.jit {where}"
        f"{_user_location(fn, e)}: {problem}."
        + (f"\n  original error: {_first_line(e)}" if hint else "")) from e

  if not isinstance(out, jax.ShapeDtypeStruct):
    raise ValueError(
        f"progress function {label!r} returns a {type(out).__name__}, not one "
        f"array; return a single 1-D array, e.g. jnp.stack([a, b])")
  if out.ndim == 0:
    raise ValueError(
        f"progress function {label!r} returns a scalar (shape ()); it must return "
        f"a 1-D array of k values, e.g. jnp.stack([x]) or jnp.atleast_1d(x)")
  if out.ndim != 1:
    raise ValueError(
        f"progress function {label!r} returns shape {tuple(out.shape)}; it must "
        f"be 1-D of shape (k,): build it with jnp.stack of scalars or flatten it "
        f"with jnp.ravel")
  if out.shape[0] == 0:
    raise ValueError(
        f"progress function {label!r} returns an empty array (shape (0,)); it "
        f"must return at least one value")
  if not jnp.issubdtype(out.dtype, jnp.floating):
    raise ValueError(
        f"progress function {label!r} returns dtype {out.dtype}; progress must be "
        f"floating point (comparisons give bool and integer arithmetic gives "
        f"int): convert with .astype(jnp.float32)")

  try:
    value = np.asarray(jax.jit(fn)(obs))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"progress function {label!r} traces but fails to run {where}"
        f"{_user_location(fn, e)}: {_first_line(e)}") from e
  if not np.all(np.isfinite(value)):
    raise ValueError(
        f"progress function {label!r} returns non-finite values "
        f"{value.tolist()} {where}; guard divisions, logs and square roots, "
        f"e.g. jnp.maximum(denominator, 1e-8) or jnp.where")
  if np.any(value < -0.01) or np.any(value > 1.01):
    warnings.warn(
        f"progress function {label!r} returns {value.tolist()} {where}: values "
        f"should lie roughly in [0, 1] (jnp.clip(x, 0.0, 1.0))",
        stacklevel=stacklevel)
  return int(out.shape[0])


# ----------------------------------------------------------------------------
# load: an allow-listed subset of Python
# ----------------------------------------------------------------------------

# Builtins the loaded code may call. None of them reaches objects beyond their
# arguments, does I/O, or evaluates code.
_SAFE_BUILTINS = {
    n: getattr(builtins, n) for n in (
        "abs", "all", "any", "bool", "enumerate", "float", "int", "len", "list",
        "max", "min", "pow", "range", "reversed", "round", "sum", "tuple", "zip")
}

# Named explicitly so the error says why, rather than just "unknown name".
_FORBIDDEN_BUILTINS = {
    "__import__": "imports code", "eval": "evaluates code",
    "exec": "executes code", "compile": "compiles code",
    "open": "file I/O", "input": "I/O", "print": "I/O",
    "breakpoint": "debugger", "help": "I/O", "exit": "exits", "quit": "exits",
    "getattr": "reaches arbitrary attributes",
    "setattr": "changes attributes", "delattr": "changes attributes",
    "hasattr": "reaches arbitrary attributes",
    "globals": "reaches the module namespace",
    "locals": "reaches the frame", "vars": "reaches namespaces",
    "dir": "reaches namespaces", "type": "reaches classes",
    "object": "reaches classes", "super": "reaches classes",
    "memoryview": "raw memory", "classmethod": "reaches classes",
    "staticmethod": "reaches classes", "property": "reaches classes",
    "isinstance": "not needed", "issubclass": "reaches classes",
    "id": "not needed", "callable": "not needed",
}

# jnp.* names that do I/O or change global state. Everything else public in
# jax.numpy is pure array code.
_FORBIDDEN_JNP = frozenset({
    "load", "save", "savez", "fromfile", "frombuffer", "fromiter", "fromstring",
    "from_dlpack", "frompyfunc", "get_printoptions", "set_printoptions",
    "printoptions",
})
_JNP_SUBMODULES = frozenset({"linalg", "fft"})  # jnp.linalg.norm, jnp.fft.*

# Attributes allowed on values other than the jnp/math modules (arrays, the
# `.at[...]` helper, dtypes). None of these leads to code, frames or classes.
_ARRAY_ATTRS = frozenset({
    "T", "shape", "ndim", "size", "dtype", "real", "imag",
    "astype", "reshape", "ravel", "flatten", "squeeze", "transpose",
    "sum", "mean", "min", "max", "prod", "std", "var", "any", "all",
    "argmax", "argmin", "cumsum", "clip", "dot", "round",
    "at", "set", "add", "multiply", "divide", "get",
})

# Constructs refused with a specific reason.
_FORBIDDEN_NODES = {
    ast.While: ("while loop", "loops must be bounded: use `for i in range(n)` "
                              "or vectorised jnp operations"),
    ast.ClassDef: "class definition",
    ast.Lambda: ("lambda", "define a top-level helper function instead"),
    ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement",
    ast.Try: ("try/except", "jit-traced code cannot catch errors per value"),
    ast.With: "with statement",
    ast.AsyncFunctionDef: "async function",
    ast.AsyncFor: "async for loop",
    ast.AsyncWith: "async with statement",
    ast.Await: "await expression",
    ast.Yield: "yield (generator functions)",
    ast.YieldFrom: "yield from (generator functions)",
    ast.Raise: "raise statement",
    ast.Delete: "del statement",
    ast.Assert: "assert statement",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression (:=)",
    ast.Dict: "dict literal",
    ast.DictComp: "dict comprehension",
    ast.Set: "set literal",
    ast.SetComp: "set comprehension",
    ast.Match: "match statement",
}
if hasattr(ast, "TryStar"):
  _FORBIDDEN_NODES[ast.TryStar] = "try/except* statement"

_ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return,
    ast.Assign, ast.AugAssign, ast.Expr, ast.If, ast.For, ast.Break,
    ast.Continue, ast.Pass, ast.Import, ast.ImportFrom, ast.BoolOp, ast.BinOp,
    ast.UnaryOp, ast.Compare, ast.Call, ast.keyword, ast.IfExp, ast.Constant,
    ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred, ast.Tuple,
    ast.List, ast.ListComp, ast.GeneratorExp, ast.comprehension,
    ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop,
)

_TOP_LEVEL = (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Assign, ast.Pass)

_STATEMENT_NAMES = {ast.Expr: "expression statement", ast.If: "if statement",
                    ast.For: "for loop", ast.Return: "return statement",
                    ast.AugAssign: "augmented assignment"}

_IMPORT_HINTS = {
    "numpy": "NumPy functions cannot be traced by jax.jit; use "
             "`import jax.numpy as jnp`",
    "jax": "only jax.numpy is available: `import jax.numpy as jnp`",
}

_counter = itertools.count()


def _is_dunder(name: str) -> bool:
  return name.startswith("__") or name.endswith("__")


class _Rejected(Exception):
  """Internal: a construct outside the allowed subset, at ``node``."""

  def __init__(self, node: ast.AST | None, what: str, why: str | None = None,
               *, message: str | None = None):
    self.node = node
    self.message = message or (f"{what} is not allowed"
                               + (f" ({why})" if why else ""))
    super().__init__(self.message)


def _strip_annotations(tree: ast.Module) -> ast.Module:
  """Drops type annotations so they are never evaluated (nor need validating).

  Annotations such as ``obs: jax.Array`` are common in generated code, harmless
  once removed, and would otherwise be evaluated when the function is defined.
  """

  class Strip(ast.NodeTransformer):

    def visit_FunctionDef(self, node):
      node.returns = None
      for a in (node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                + [node.args.vararg, node.args.kwarg]):
        if a is not None:
          a.annotation = None
      return self.generic_visit(node)

    def visit_AnnAssign(self, node):
      if node.value is None:  # A bare declaration `x: float` does nothing.
        return ast.copy_location(ast.Pass(), node)
      return ast.copy_location(
          ast.Assign(targets=[node.target], value=node.value), node)

  return ast.fix_missing_locations(Strip().visit(tree))


class _Validator(ast.NodeVisitor):
  """Walks a module and raises ``_Rejected`` at the first disallowed construct.

  Attributes:
    modules: names bound to an allowed module (``jnp``, ``math``, aliases).
    imported: names bound by ``from jax.numpy import where`` and the like.
  """

  def __init__(self):
    self.modules: dict[str, types.ModuleType] = {"jnp": jnp, "math": math}
    self.imported: dict[str, Any] = {}
    self.bound: set[str] = set()
    self.depth = 0  # 0 at module level, 1 inside a function.

  # -- entry ------------------------------------------------------------------

  def run(self, tree: ast.Module) -> None:
    # Imports first (anywhere in the file), so that every alias is known when
    # names and attributes are checked, whatever the statement order.
    for node in ast.walk(tree):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        self._check_import(node)
    for node in ast.walk(tree):
      if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        self.bound.add(node.id)
      elif isinstance(node, ast.arg):
        self.bound.add(node.arg)
      elif isinstance(node, ast.FunctionDef):
        self.bound.add(node.name)
    for stmt in tree.body:
      if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        continue  # A docstring or a stray constant.
      # Visit first, so that a forbidden construct inside a misplaced statement
      # (say, `print(...)` at top level) is what the error names.
      self.visit(stmt)
      if not isinstance(stmt, _TOP_LEVEL):
        raise _Rejected(
            stmt,
            f"top-level {_STATEMENT_NAMES.get(type(stmt), type(stmt).__name__)}",
            "only imports, constant assignments and function definitions may "
            "appear at top level; put code inside the function")

  # -- generic ----------------------------------------------------------------

  def generic_visit(self, node):
    kind = _FORBIDDEN_NODES.get(type(node))
    if kind is not None:
      raise _Rejected(node, *((kind,) if isinstance(kind, str) else kind))
    if not isinstance(node, _ALLOWED_NODES):
      raise _Rejected(node, f"{type(node).__name__} construct")
    super().generic_visit(node)

  # -- definitions ------------------------------------------------------------

  def visit_FunctionDef(self, node: ast.FunctionDef):
    if self.depth > 0:
      raise _Rejected(node, f"nested function definition `{node.name}`",
                      "define helper functions at top level")
    if node.decorator_list:
      raise _Rejected(node.decorator_list[0], "decorator")
    if getattr(node, "type_params", None):  # Python 3.12's `def f[T](x)`.
      raise _Rejected(node, "type parameters")
    if node.args.vararg or node.args.kwarg:
      raise _Rejected(node, "a `*args` or `**kwargs` parameter")
    self._check_binding(node, node.name)
    for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
      self._check_binding(a, a.arg)
    for default in node.args.defaults + node.args.kw_defaults:
      if default is not None:
        self.visit(default)
    self.depth += 1
    for stmt in node.body:
      self.visit(stmt)
    self.depth -= 1

  def visit_Import(self, node):
    pass  # Checked in run(); bound through the globals, then removed.

  visit_ImportFrom = visit_Import

  def visit_comprehension(self, node: ast.comprehension):
    if node.is_async:
      raise _Rejected(node.target, "async comprehension")
    self.generic_visit(node)

  # -- names and attributes ---------------------------------------------------

  def _check_binding(self, node: ast.AST, name: str) -> None:
    if _is_dunder(name):
      raise _Rejected(node, f"dunder name `{name}`")
    if name in self.modules:
      # The attribute rules trust that `jnp`/`math` are the modules.
      raise _Rejected(node, f"rebinding the module name `{name}`")

  def visit_Name(self, node: ast.Name):
    name = node.id
    if isinstance(node.ctx, ast.Store):
      self._check_binding(node, name)
      return
    if _is_dunder(name):
      raise _Rejected(node, f"dunder name `{name}`")
    if name in _FORBIDDEN_BUILTINS:
      raise _Rejected(node, f"builtin `{name}`", _FORBIDDEN_BUILTINS[name])
    if (name in self.bound or name in self.modules or name in self.imported
        or name in _SAFE_BUILTINS):
      return
    hint = _IMPORT_HINTS.get("numpy" if name in ("np", "numpy") else name)
    raise _Rejected(node, "", message=(
            f"unknown name `{name}`: "
            + (hint or f"only jnp, math, the builtins "
               f"{', '.join(sorted(_SAFE_BUILTINS))} and names defined in the "
               f"source are available")))

  def _module_of(self, node: ast.expr) -> types.ModuleType | None:
    """The allowed module ``node`` refers to (``jnp``, ``jnp.linalg``), if any."""
    if isinstance(node, ast.Name):
      return self.modules.get(node.id)
    if isinstance(node, ast.Attribute):
      parent = self._module_of(node.value)
      if parent is jnp and node.attr in _JNP_SUBMODULES:
        return getattr(jnp, node.attr)
    return None

  def visit_Attribute(self, node: ast.Attribute):
    attr = node.attr
    if _is_dunder(attr):
      raise _Rejected(node, f"dunder attribute `.{attr}`")
    if attr.startswith("_"):
      raise _Rejected(node, f"private attribute `.{attr}`")
    if not isinstance(node.ctx, ast.Load):
      # `jnp.sin = ...` would change jax.numpy for the whole process.
      raise _Rejected(node, f"assignment to the attribute `.{attr}`",
                      "assign to a local name instead")
    module = self._module_of(node.value)
    if module is not None:
      _check_module_attr(node, module, attr)
      return
    # The value first: for `np.sin` the problem is `np`, not `.sin`.
    self.visit(node.value)
    if attr not in _ARRAY_ATTRS:
      raise _Rejected(
          node, f"attribute `.{attr}`",
          f"only jnp.*, math.* and the array attributes "
          f"{', '.join(sorted(_ARRAY_ATTRS))} are allowed")

  def visit_keyword(self, node: ast.keyword):
    if node.arg is None:
      raise _Rejected(node.value, "**kwargs in a call")
    if _is_dunder(node.arg):
      raise _Rejected(node.value, f"dunder keyword `{node.arg}`")
    self.visit(node.value)

  def visit_Constant(self, node: ast.Constant):
    if isinstance(node.value, bytes):
      raise _Rejected(node, "bytes literal")

  # -- imports ----------------------------------------------------------------

  def _check_import(self, node: ast.Import | ast.ImportFrom) -> None:
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name == "jax.numpy" and alias.asname:
          self._bind_module(node, alias.asname, jnp)
        elif alias.name == "math":
          self._bind_module(node, alias.asname or "math", math)
        elif alias.name == "jax" and alias.asname is None:
          # Generated code often carries an unused `import jax`. It binds
          # nothing here, so any use of `jax.` is refused as an unknown name.
          pass
        elif alias.name == "jax.numpy":
          raise _Rejected(node, "`import jax.numpy` without an alias",
                          "write `import jax.numpy as jnp`")
        else:
          top = alias.name.split(".")[0]
          hint = _IMPORT_HINTS.get(top, "only `import jax.numpy as jnp` and "
                                        "`import math` are allowed")
          raise _Rejected(node, f"import of `{alias.name}`", hint)
      return
    module = node.module or ""
    if node.level:
      raise _Rejected(node, f"relative import `from {'.' * node.level}{module}`")
    if module == "__future__":
      return  # Compiler directives only (e.g. annotations, which we strip).
    if module == "jax" and all(a.name == "numpy" for a in node.names):
      for alias in node.names:
        self._bind_module(node, alias.asname or "numpy", jnp)
      return
    if module not in ("jax.numpy", "math"):
      top = module.split(".")[0]
      hint = _IMPORT_HINTS.get(top, "only jax.numpy and math are allowed")
      raise _Rejected(node, f"import from `{module}`", hint)
    source = jnp if module == "jax.numpy" else math
    for alias in node.names:
      if alias.name == "*":
        raise _Rejected(node, f"`from {module} import *`",
                        "import names explicitly")
      _check_module_attr(node, source, alias.name)
      value = getattr(source, alias.name)
      target = alias.asname or alias.name
      if isinstance(value, types.ModuleType):
        self._bind_module(node, target, value)
      else:
        if _is_dunder(target):
          raise _Rejected(node, f"dunder name `{target}`")
        self.imported[target] = value

  def _bind_module(self, node, name: str, module: types.ModuleType) -> None:
    if _is_dunder(name):
      raise _Rejected(node, f"dunder name `{name}`")
    self.modules[name] = module


def _check_module_attr(node: ast.AST, module: types.ModuleType,
                       attr: str) -> None:
  """Refuses private, missing, I/O and submodule attributes of jnp/math."""
  prefix = "math" if module is math else (
      "jnp" if module is jnp else f"jnp.{module.__name__.rsplit('.', 1)[-1]}")
  if attr.startswith("_"):
    raise _Rejected(node, f"private attribute `{prefix}.{attr}`")
  if attr in _FORBIDDEN_JNP and module is jnp:
    raise _Rejected(node, f"`{prefix}.{attr}`", "file I/O or global state")
  if not hasattr(module, attr):
    close = difflib.get_close_matches(attr, dir(module), n=1)
    raise _Rejected(node, "", message=f"`{prefix}.{attr}` does not exist" + (
        f" (did you mean `{prefix}.{close[0]}`?)" if close else ""))
  value = getattr(module, attr)
  if isinstance(value, types.ModuleType) and not (
      module is jnp and attr in _JNP_SUBMODULES):
    raise _Rejected(node, f"submodule `{prefix}.{attr}`")


class _RemoveImports(ast.NodeTransformer):
  """Replaces import statements by ``pass``: their names are bound as globals.

  Executing an ``import`` would need ``__import__`` in the builtins, which the
  loaded code must not have.
  """

  def visit_Import(self, node):
    return ast.copy_location(ast.Pass(), node)

  visit_ImportFrom = visit_Import


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.S)


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


def _rejection(filename: str, lines: list[str], err: _Rejected) -> ValueError:
  lineno = getattr(err.node, "lineno", None)
  if lineno is None:
    return ValueError(f"progress source {filename}: {err.message}")
  code = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
  return ValueError(
      f"progress source {filename} line {lineno}: {err.message}\n"
      f"    {code}")


def load(source: str, example_obs: Any = None, name: str | None = None, *,
         filename: str | None = None) -> Callable[[Array], Array]:
  """Turns Python source text into a checked, jit-able progress function.

  The source may be a language model's whole reply: the first Markdown code
  block that defines a function is used. It must define a function of one
  observation (other top-level functions may serve as helpers), using only
  ``jnp``, ``math`` and a few builtins; see the module docstring for the
  accepted subset. Type annotations are allowed and ignored.

  Args:
    source: Python source text.
    example_obs: one observation; when given, the function is traced and run
      on it (see ``check``) and a ``ValueError`` names any problem.
    name: the function to return; by default ``progress`` if the source
      defines it, else its only function.
    filename: shown in error messages and tracebacks.

  Returns:
    The function, defined in a namespace whose only globals are ``jnp``,
    ``math``, the source's own constants/functions and a few builtins.
    ``inspect.getsource`` works on it.

  Raises:
    ValueError: the source does not parse, uses a construct outside the
      allowed subset (the message names it and its line), does not define the
      function, or (with ``example_obs``) fails ``check``.
  """
  if not isinstance(source, str):
    raise TypeError(f"load: source must be a str, got {type(source).__name__}")
  code = _extract_code(source)
  lines = code.splitlines()
  label = f"<progress {filename or name or 'source'} #{next(_counter)}>"
  shown = filename or "<string>"
  try:
    tree = ast.parse(code, filename=label)
  except SyntaxError as e:
    raise ValueError(
        f"progress source {shown} does not parse: line {e.lineno}: {e.msg}\n"
        f"    {(e.text or '').strip()}") from None
  except (RecursionError, MemoryError, ValueError) as e:
    raise ValueError(f"progress source {shown} does not parse: {e!r}") from None

  validator = _Validator()
  try:
    tree = _strip_annotations(tree)
    validator.run(tree)
  except _Rejected as err:
    raise _rejection(shown, lines, err) from None
  except RecursionError:
    raise ValueError(f"progress source {shown} is nested too deeply") from None

  functions = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
  if not functions:
    raise ValueError(
        f"progress source {shown} defines no function; expected "
        f"`def progress(obs):` returning a 1-D jnp array")
  if name is None:
    if "progress" in functions or len(functions) == 1:
      name = "progress" if "progress" in functions else functions[0]
    else:
      raise ValueError(
          f"progress source {shown} defines several functions "
          f"({', '.join(functions)}); call the entry point `progress` or pass "
          f"name=...")
  elif name not in functions:
    raise ValueError(
        f"progress source {shown} defines no function {name!r} (it defines "
        f"{', '.join(functions)})")

  tree = ast.fix_missing_locations(_RemoveImports().visit(tree))
  # Registering the text lets tracebacks and inspect.getsource show it.
  linecache.cache[label] = (len(code), None, code.splitlines(True), label)
  namespace = {"__builtins__": dict(_SAFE_BUILTINS),
               "__name__": "rewardjax.progress.loaded"}
  namespace.update(validator.modules)
  namespace.update(validator.imported)
  try:
    exec(compile(tree, label, "exec"), namespace)  # pylint: disable=exec-used
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"progress source {shown}: evaluating its top-level definitions raised "
        f"{_first_line(e)}") from e
  fn = namespace[name]
  if not isinstance(fn, types.FunctionType):  # Rebound by a later assignment.
    raise ValueError(
        f"progress source {shown}: {name!r} is a {type(fn).__name__} after the "
        f"source runs, not the function it defines")

  params = inspect.signature(fn).parameters.values()
  required = [p for p in params if p.default is inspect.Parameter.empty]
  if len(required) != 1 or required[0].kind == inspect.Parameter.KEYWORD_ONLY:
    raise ValueError(
        f"progress function {name!r} must take exactly one required positional "
        f"argument (the observation), got {inspect.signature(fn)}")
  if example_obs is not None:
    _check(fn, example_obs, name, stacklevel=3)
  return fn


def load_file(path: str | os.PathLike, example_obs: Any = None,
              name: str | None = None) -> Callable[[Array], Array]:
  """``load`` on the text of the file at ``path``."""
  with open(path, encoding="utf-8") as f:
    source = f.read()
  return load(source, example_obs, name, filename=os.fspath(path))


# ----------------------------------------------------------------------------
# prompt
# ----------------------------------------------------------------------------


class EnvDescription(NamedTuple):
  """What a language model needs to know about an environment.

  Attributes:
    task: the goal, the actions and the reward, in plain words.
    layout: one ``(index, meaning, range)`` per observation entry.
    obs_shape: the shape of one observation.
    notes: anything else that helps (dynamics, special observations).
  """
  task: str
  layout: tuple[tuple[str, str, str | None], ...]
  obs_shape: tuple[int, ...]
  notes: str = ""


_MOUNTAINCAR_LAYOUT = (
    ("obs[0]", "car position x along the track; the valley floor is at about "
               "-0.52 (x = -pi/6), the left wall at -1.2", "[-1.2, 0.6]"),
    ("obs[1]", "car velocity (positive = moving right)", "[-0.07, 0.07]"),
)

KNOWN_ENVS: dict[str, EnvDescription] = {
    "MountainCar-v0": EnvDescription(
        task=(
            "An underpowered car starts at rest in a valley (position in "
            "[-0.6, -0.4]) and must reach the flag on top of the right hill "
            "(position >= 0.5). Its engine is too weak to drive straight up: "
            "it must first swing up the left hill to build momentum. Actions: "
            "0 = push left, 1 = no push, 2 = push right. Reward -1 per step "
            "until the goal; episodes last at most 200 steps."),
        layout=_MOUNTAINCAR_LAYOUT,
        obs_shape=(2,),
        notes=(
            "Dynamics per step: velocity += 0.001 * (action - 1) - 0.0025 * "
            "cos(3 * position), clipped to [-0.07, 0.07]; position += velocity, "
            "clipped to [-1.2, 0.6]; at the left wall the velocity becomes 0. "
            "The track height is sin(3 * position).")),
    "MountainCarContinuous-v0": EnvDescription(
        task=(
            "An underpowered car starts at rest in a valley (position in "
            "[-0.6, -0.4]) and must reach the flag on top of the right hill "
            "(position >= 0.45). Its engine is too weak to drive straight up: "
            "it must first swing up the left hill to build momentum. The "
            "action is a force in [-1, 1]. Reward +100 on reaching the flag, "
            "minus 0.1 * action^2 every step; episodes last at most 999 steps."),
        layout=_MOUNTAINCAR_LAYOUT,
        obs_shape=(2,),
        notes=(
            "Dynamics per step: velocity += 0.0015 * action - 0.0025 * "
            "cos(3 * position), clipped to [-0.07, 0.07]; position += velocity, "
            "clipped to [-1.2, 0.6]. The track height is sin(3 * position).")),
    "DeepSea-bsuite": EnvDescription(
        task=(
            "The agent starts in the top-left cell of an N x N grid (N = 8 by "
            "default) and descends one row per step, moving one column left or "
            "right each time (it cannot leave the grid). Only the bottom-right "
            "cell gives a reward (+1); every move right costs 0.01 / N, so "
            "reaching the treasure requires moving right at every single step "
            "despite the small costs. The episode ends after N steps."),
        layout=(
            ("obs[r, c]", "1.0 at the agent's cell (row r, column c), 0.0 "
                          "elsewhere; row 0 is the top, column 0 the left",
             "{0.0, 1.0}"),
            ("all entries 0.0", "the episode has ended (the agent moved past "
                                "the last row)", None),
        ),
        obs_shape=(8, 8),
        notes=(
            "The observation may also arrive flattened row-major to N * N "
            "values; recover N as round(obs.size ** 0.5) (obs.size is a static "
            "Python int) and use jnp.reshape(obs, (N, N)).")),
    "CartPole-v1": EnvDescription(
        task=(
            "A pole is hinged to a cart that moves along a track. Keep the pole "
            "upright and the cart on the track for as long as possible. "
            "Actions: 0 = push the cart left, 1 = push it right. Reward +1 per "
            "step; the episode ends when the pole tilts more than 12 degrees "
            "(0.2095 rad) or the cart leaves [-2.4, 2.4], and after 500 steps "
            "at most."),
        layout=(
            ("obs[0]", "cart position (0 = centre)", "[-2.4, 2.4]"),
            ("obs[1]", "cart velocity", "unbounded, typically [-3, 3]"),
            ("obs[2]", "pole angle in radians (0 = upright)",
             "[-0.2095, 0.2095]"),
            ("obs[3]", "pole angular velocity", "unbounded, typically [-3.5, 3.5]"),
        ),
        obs_shape=(4,),
    ),
}

CONTRACT = """\
Write ONE Python function `def progress(obs):` (small top-level helper functions
and constants are allowed) that follows these rules:

- `obs` is ONE observation (no batch dimension), a jax array; the function is
  applied to many observations with jax.vmap.
- Return a 1-D jax.numpy float array of {outputs}.
  Each value lies in [0, 1] (use jnp.clip) and is higher when the agent is
  closer to the goal; each should measure a distinct, meaningful aspect of
  progress that changes smoothly.
- Use only `jnp` (jax.numpy) and `math`. The only imports allowed are
  `import jax.numpy as jnp` and `import math`: no numpy, no other modules.
- It must work under jax.jit: no Python `if`, `and`, `or`, `not`, `min()`,
  `max()`, `float()` or `int()` on values computed from `obs`; use jnp.where,
  jnp.logical_and, jnp.minimum, jnp.maximum and jnp.clip instead. Python `if` on
  shapes and constants is fine.
- Pure and safe: no I/O, no print, no state, no classes, no lambda, no while
  loops, no try/except, no global statements, no names or attributes that
  start with an underscore.
- Finite for every valid observation: guard divisions, logs and square roots.
"""

EXAMPLE = '''\
# Task: a point mass at obs[0:2] in the square [-1, 1] x [-1, 1] must reach
# the goal at (0.8, 0.8).
import jax.numpy as jnp

GOAL = jnp.array([0.8, 0.8])
MAX_DIST = 2.55  # the farthest point of the square, (-1, -1), is 2.546 away


def progress(obs):
  pos = obs[0:2]
  dist = jnp.sqrt(jnp.sum((pos - GOAL) ** 2))
  closeness = 1.0 - dist / MAX_DIST
  # A per-axis measure too: it separates states that are equally far away.
  x_progress = (pos[0] + 1.0) / 1.8
  return jnp.clip(jnp.stack([closeness, x_progress]), 0.0, 1.0)
'''


def _format_range(r) -> str:
  if isinstance(r, (tuple, list)) and len(r) == 2:
    return f"[{r[0]}, {r[1]}]"
  return str(r)


def _format_layout(layout) -> str:
  if isinstance(layout, str):
    return layout.strip()
  rows = []
  for entry in layout:
    entry = tuple(entry)
    if len(entry) == 2:
      index, meaning = entry
      rows.append(f"- `{index}`: {meaning}")
    elif len(entry) == 3:
      index, meaning, rng = entry
      rows.append(f"- `{index}`: {meaning}" + (
          f"; range {_format_range(rng)}" if rng not in (None, "", "-") else ""))
    else:
      raise ValueError(
          f"prompt: each observation_layout entry must be (index, meaning) or "
          f"(index, meaning, range), got {entry!r}")
  return "\n".join(rows)


def prompt(task_description: str | None = None,
           observation_layout: str | Sequence[Sequence[Any]] | None = None,
           num_outputs: int | None = None,
           env_id: str | None = None,
           example: str | bool | None = None,
           *,
           obs_shape: Sequence[int] | None = None,
           notes: str | None = None) -> str:
  """The text to send to a language model to get a progress function.

  Send it to your own model, then pass the reply to ``load(reply, example_obs)``
  (which extracts the code from a Markdown fence). ``prompt(env_id=...)`` alone
  works for the environments in ``KNOWN_ENVS``; arguments given explicitly
  override what is known about them.

  Args:
    task_description: the goal, actions and reward, in plain words.
    observation_layout: ``(index, meaning, range)`` (or ``(index, meaning)``)
      per observation entry, or free text. ``range`` may be ``(low, high)``.
    num_outputs: the exact number k of progress values to ask for; ``None``
      lets the model choose between 1 and 4.
    env_id: an id from ``KNOWN_ENVS`` to fill in what is not given.
    example: ``None`` or ``True`` includes ``EXAMPLE`` (for a different task, so
      it shows the form without giving away an answer); ``False`` includes
      none; a string is included verbatim as the example code.
    obs_shape: the shape of one observation, if not known from ``env_id``.
    notes: extra information (dynamics, special observations).

  Returns:
    The prompt text.
  """
  known = None
  if env_id is not None:
    known = KNOWN_ENVS.get(env_id)
    if known is None and (task_description is None or observation_layout is None):
      close = difflib.get_close_matches(env_id, KNOWN_ENVS, n=2, cutoff=0.4)
      hint = f" Did you mean: {', '.join(close)}?" if close else ""
      raise ValueError(
          f"prompt: no description of {env_id!r}.{hint} Known: "
          f"{', '.join(sorted(KNOWN_ENVS))}; otherwise pass task_description and "
          f"observation_layout")
  task = task_description or (known.task if known else None)
  layout = observation_layout if observation_layout is not None else (
      known.layout if known else None)
  if task is None or layout is None:
    raise ValueError(
        "prompt: describe the task: pass env_id (one of "
        f"{', '.join(sorted(KNOWN_ENVS))}) or both task_description and "
        "observation_layout")
  shape = tuple(obs_shape) if obs_shape is not None else (
      known.obs_shape if known else None)
  notes = notes if notes is not None else (known.notes if known else "")
  if num_outputs is not None and (not isinstance(num_outputs, int)
                                  or num_outputs < 1):
    raise ValueError(f"prompt: num_outputs must be a positive int, got "
                     f"{num_outputs!r}")
  outputs = (f"exactly {num_outputs} value{'s' if num_outputs > 1 else ''}"
             if num_outputs else "a fixed number k of values, 1 <= k <= 4")

  parts = [
      "You are writing a progress function for a reinforcement-learning task. "
      "It maps one observation to a few numbers that measure how close the "
      "agent is to achieving the goal. It will be used as a potential for "
      "reward shaping and, binned, as a key for count-based exploration, so it "
      "should reward the intermediate steps the agent has to take, not just "
      "the final success.",
      "## Task\n" + (f"Environment: {env_id}\n" if env_id else "") + task.strip(),
      "## Observation\n"
      + (f"`obs` has shape {shape}.\n" if shape is not None else "")
      + _format_layout(layout)
      + (f"\n\n{notes.strip()}" if notes else ""),
      "## Output contract\n" + CONTRACT.format(outputs=outputs).rstrip(),
  ]
  if example is None or example is True:
    parts.append("## Example (for a different task)\n```python\n"
                 + EXAMPLE.rstrip() + "\n```")
  elif isinstance(example, str):
    parts.append("## Example\n```python\n" + example.strip() + "\n```")
  elif example is not False:
    raise ValueError(f"prompt: example must be a str, a bool or None, got "
                     f"{type(example).__name__}")
  parts.append("Reply with the code only, in one ```python code block.")
  return "\n\n".join(parts) + "\n"


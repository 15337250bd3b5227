"""The allow-listed subset of Python that ``load`` accepts, and its validator.

Accepted: top-level function definitions and constants, arithmetic,
comparisons, conditionals, bounded ``for`` loops, and calls to ``jnp.*``,
``math.*`` and a few harmless builtins (``SAFE_BUILTINS``). Refused, each with
a reason naming the construct: imports other than ``jax.numpy``/``math``, every
name or attribute that starts with an underscore (``__class__``,
``__import__``, …), attribute access other than ``jnp.*``/``math.*`` and a
short list of array attributes (``.shape``, ``.astype``, ``.at``, …),
``eval``/``exec``/``open`` and friends, classes, lambdas, ``while``, ``try``,
``with``, ``global`` and generators.

This guards against accidents and obvious misuse in generated code; it is not an
operating-system sandbox (it does not bound CPU time or memory, e.g. ``9**9**9``).
"""

from __future__ import annotations

import ast
import builtins
import difflib
import math
import types
from typing import Any

import jax.numpy as jnp

# Builtins the loaded code may call. None of them reaches objects beyond their
# arguments, does I/O, or evaluates code.
SAFE_BUILTINS = {
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


def _is_dunder(name: str) -> bool:
  return name.startswith("__") or name.endswith("__")


class Rejected(Exception):
  """A construct outside the allowed subset, at ``node`` (``load`` names its line)."""

  def __init__(self, node: ast.AST | None, what: str, why: str | None = None,
               *, message: str | None = None):
    self.node = node
    self.message = message or (f"{what} is not allowed"
                               + (f" ({why})" if why else ""))
    super().__init__(self.message)


def strip_annotations(tree: ast.Module) -> ast.Module:
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


class Validator(ast.NodeVisitor):
  """Walks a module and raises ``Rejected`` at the first disallowed construct.

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
        raise Rejected(
            stmt,
            f"top-level {_STATEMENT_NAMES.get(type(stmt), type(stmt).__name__)}",
            "only imports, constant assignments and function definitions may "
            "appear at top level; put code inside the function")

  # -- generic ----------------------------------------------------------------

  def generic_visit(self, node):
    kind = _FORBIDDEN_NODES.get(type(node))
    if kind is not None:
      raise Rejected(node, *((kind,) if isinstance(kind, str) else kind))
    if not isinstance(node, _ALLOWED_NODES):
      raise Rejected(node, f"{type(node).__name__} construct")
    super().generic_visit(node)

  # -- definitions ------------------------------------------------------------

  def visit_FunctionDef(self, node: ast.FunctionDef):
    if self.depth > 0:
      raise Rejected(node, f"nested function definition `{node.name}`",
                      "define helper functions at top level")
    if node.decorator_list:
      raise Rejected(node.decorator_list[0], "decorator")
    if getattr(node, "type_params", None):  # Python 3.12's `def f[T](x)`.
      raise Rejected(node, "type parameters")
    if node.args.vararg or node.args.kwarg:
      raise Rejected(node, "a `*args` or `**kwargs` parameter")
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
      raise Rejected(node.target, "async comprehension")
    self.generic_visit(node)

  # -- names and attributes ---------------------------------------------------

  def _check_binding(self, node: ast.AST, name: str) -> None:
    if _is_dunder(name):
      raise Rejected(node, f"dunder name `{name}`")
    if name in self.modules:
      # The attribute rules trust that `jnp`/`math` are the modules.
      raise Rejected(node, f"rebinding the module name `{name}`")

  def visit_Name(self, node: ast.Name):
    name = node.id
    if isinstance(node.ctx, ast.Store):
      self._check_binding(node, name)
      return
    if _is_dunder(name):
      raise Rejected(node, f"dunder name `{name}`")
    if name in _FORBIDDEN_BUILTINS:
      raise Rejected(node, f"builtin `{name}`", _FORBIDDEN_BUILTINS[name])
    if (name in self.bound or name in self.modules or name in self.imported
        or name in SAFE_BUILTINS):
      return
    hint = _IMPORT_HINTS.get("numpy" if name in ("np", "numpy") else name)
    raise Rejected(node, "", message=(
            f"unknown name `{name}`: "
            + (hint or f"only jnp, math, the builtins "
               f"{', '.join(sorted(SAFE_BUILTINS))} and names defined in the "
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
      raise Rejected(node, f"dunder attribute `.{attr}`")
    if attr.startswith("_"):
      raise Rejected(node, f"private attribute `.{attr}`")
    if not isinstance(node.ctx, ast.Load):
      # `jnp.sin = ...` would change jax.numpy for the whole process.
      raise Rejected(node, f"assignment to the attribute `.{attr}`",
                      "assign to a local name instead")
    module = self._module_of(node.value)
    if module is not None:
      _check_module_attr(node, module, attr)
      return
    # The value first: for `np.sin` the problem is `np`, not `.sin`.
    self.visit(node.value)
    if attr not in _ARRAY_ATTRS:
      raise Rejected(
          node, f"attribute `.{attr}`",
          f"only jnp.*, math.* and the array attributes "
          f"{', '.join(sorted(_ARRAY_ATTRS))} are allowed")

  def visit_keyword(self, node: ast.keyword):
    if node.arg is None:
      raise Rejected(node.value, "**kwargs in a call")
    if _is_dunder(node.arg):
      raise Rejected(node.value, f"dunder keyword `{node.arg}`")
    self.visit(node.value)

  def visit_Constant(self, node: ast.Constant):
    if isinstance(node.value, bytes):
      raise Rejected(node, "bytes literal")

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
          raise Rejected(node, "`import jax.numpy` without an alias",
                          "write `import jax.numpy as jnp`")
        else:
          top = alias.name.split(".")[0]
          hint = _IMPORT_HINTS.get(top, "only `import jax.numpy as jnp` and "
                                        "`import math` are allowed")
          raise Rejected(node, f"import of `{alias.name}`", hint)
      return
    module = node.module or ""
    if node.level:
      raise Rejected(node, f"relative import `from {'.' * node.level}{module}`")
    if module == "__future__":
      return  # Compiler directives only (e.g. annotations, which we strip).
    if module == "jax" and all(a.name == "numpy" for a in node.names):
      for alias in node.names:
        self._bind_module(node, alias.asname or "numpy", jnp)
      return
    if module not in ("jax.numpy", "math"):
      top = module.split(".")[0]
      hint = _IMPORT_HINTS.get(top, "only jax.numpy and math are allowed")
      raise Rejected(node, f"import from `{module}`", hint)
    source = jnp if module == "jax.numpy" else math
    for alias in node.names:
      if alias.name == "*":
        raise Rejected(node, f"`from {module} import *`",
                        "import names explicitly")
      _check_module_attr(node, source, alias.name)
      value = getattr(source, alias.name)
      target = alias.asname or alias.name
      if isinstance(value, types.ModuleType):
        self._bind_module(node, target, value)
      else:
        if _is_dunder(target):
          raise Rejected(node, f"dunder name `{target}`")
        self.imported[target] = value

  def _bind_module(self, node, name: str, module: types.ModuleType) -> None:
    if _is_dunder(name):
      raise Rejected(node, f"dunder name `{name}`")
    self.modules[name] = module


def _check_module_attr(node: ast.AST, module: types.ModuleType,
                       attr: str) -> None:
  """Refuses private, missing, I/O and submodule attributes of jnp/math."""
  prefix = "math" if module is math else (
      "jnp" if module is jnp else f"jnp.{module.__name__.rsplit('.', 1)[-1]}")
  if attr.startswith("_"):
    raise Rejected(node, f"private attribute `{prefix}.{attr}`")
  if attr in _FORBIDDEN_JNP and module is jnp:
    raise Rejected(node, f"`{prefix}.{attr}`", "file I/O or global state")
  if not hasattr(module, attr):
    close = difflib.get_close_matches(attr, dir(module), n=1)
    raise Rejected(node, "", message=f"`{prefix}.{attr}` does not exist" + (
        f" (did you mean `{prefix}.{close[0]}`?)" if close else ""))
  value = getattr(module, attr)
  if isinstance(value, types.ModuleType) and not (
      module is jnp and attr in _JNP_SUBMODULES):
    raise Rejected(node, f"submodule `{prefix}.{attr}`")


class RemoveImports(ast.NodeTransformer):
  """Replaces import statements by ``pass``: their names are bound as globals.

  Executing an ``import`` would need ``__import__`` in the builtins, which the
  loaded code must not have.
  """

  def visit_Import(self, node):
    return ast.copy_location(ast.Pass(), node)

  visit_ImportFrom = visit_Import

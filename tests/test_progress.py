"""Tests for rewardjax.progress: loading, checking and prompting progress functions."""

import inspect
import re
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax import progress
from rewardjax.progress import hand_written
from rewardjax.progress import loader
from rewardjax.progress.loader import LoadTimeout

# Observations spanning MountainCar's state space: left wall, valley, goal, fast.
MC_OBS = jnp.array([
    [-1.2, 0.0], [-0.5236, 0.0], [-0.5, 0.07], [-0.9, -0.05], [0.0, 0.03],
    [0.5, 0.0], [0.6, 0.07], [-0.3, -0.07],
], jnp.float32)

# What a language model might reply: prose, a fence, annotations, a helper,
# an unused `import jax`, module constants and `math`.
MC_REPLY = '''\
Sure! Here is a progress function for MountainCar:

```python
import jax
import jax.numpy as jnp
import math

X_MIN, X_GOAL = -1.2, 0.5
U = 0.0025 / 3.0  # potential energy per unit mass is U * sin(3x)


def energy(x, v):
  return U * jnp.sin(3.0 * x) + 0.5 * v ** 2


def progress(obs: jax.Array) -> jax.Array:
  """Position progress and mechanical-energy progress."""
  x, v = obs[0], obs[1]
  pos = (x - X_MIN) / (X_GOAL - X_MIN)
  e_min: float = -U
  e_goal = U * math.sin(3.0 * X_GOAL)
  e = (energy(x, v) - e_min) / (e_goal - e_min)
  return jnp.clip(jnp.stack([pos, e]), 0.0, 1.0)
```

It uses the car's mechanical energy.
'''


def _fn(body: str, header: str = "import jax.numpy as jnp\n") -> str:
  """Source of `progress(obs)` with ``body`` (a few lines) as its body."""
  return header + "\n\ndef progress(obs):\n" + textwrap.indent(
      textwrap.dedent(body), "  ")


# ----------------------------------------------------------------------------
# load: valid sources
# ----------------------------------------------------------------------------


def test_load_matches_hand_written_mountaincar():
  fn = progress.load(MC_REPLY, example_obs=MC_OBS[1])
  want = jax.vmap(hand_written.mountaincar_progress)(MC_OBS)
  np.testing.assert_allclose(fn(MC_OBS[3]), want[3], rtol=1e-5, atol=1e-6)
  # Under jit and vmap, the way reward modules call it.
  np.testing.assert_allclose(jax.jit(jax.vmap(fn))(MC_OBS), want,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.vmap(jax.jit(fn))(MC_OBS), want,
                             rtol=1e-5, atol=1e-6)


def test_loaded_function_has_source_and_restricted_globals():
  fn = progress.load(MC_REPLY)
  assert fn.__name__ == "progress"
  # The source as written (annotations are stripped only before compiling).
  assert "def progress(obs: jax.Array)" in inspect.getsource(fn)
  assert "open" not in fn.__globals__["__builtins__"]
  assert "__import__" not in fn.__globals__["__builtins__"]
  assert "jax" not in fn.__globals__  # `import jax` binds nothing.


def test_load_registered_deepsea_source():
  # The registry's own DeepSea function is written in the accepted subset.
  source = inspect.getsource(hand_written.deepsea_progress)
  fn = progress.load(source, example_obs=jnp.zeros((5, 5)))
  obs = jnp.zeros((5, 5)).at[2, 3].set(1.0)
  np.testing.assert_allclose(fn(obs), hand_written.deepsea_progress(obs))


def test_load_accepts_allowed_imports_and_constructs():
  source = """
from jax import numpy as np2
from jax.numpy import where, linalg as la
from math import pi

def helper(x):
  return x / pi

def progress(obs):
  total = 0.0
  for i in range(obs.shape[0]):
    total += obs[i]
  parts = [abs(obs[i]) for i in range(2)]
  mask = where(obs > 0, 1.0, 0.0)
  y = obs.at[0].set(0.5).astype(np2.float32)
  z = helper(la.norm(obs)) if obs.ndim == 1 else 0.0
  return np2.clip(np2.stack([total / 4, parts[1], mask[0], y[0], z]), 0.0, 1.0)
"""
  fn = progress.load(source, example_obs=jnp.array([0.3, 0.4]))
  np.testing.assert_allclose(
      fn(jnp.array([0.3, 0.4])),
      [0.7 / 4, 0.4, 1.0, 0.5, 0.5 / np.pi], rtol=1e-6)


def test_load_picks_entry_point():
  two = "def a(obs):\n  return obs * 0.5\n\ndef b(obs):\n  return obs * 0.25\n"
  with pytest.raises(ValueError, match="several functions"):
    progress.load(two)
  np.testing.assert_allclose(progress.load(two, name="b")(jnp.ones(2)), 0.25)
  with pytest.raises(ValueError, match="no function 'c'"):
    progress.load(two, name="c")
  with pytest.raises(ValueError, match="defines no function"):
    progress.load("X = 1.0\n")
  with pytest.raises(ValueError, match="not the function"):
    progress.load("def progress(obs):\n  return obs\n\nprogress = 1.0\n")
  with pytest.raises(ValueError, match="one required positional"):
    progress.load("def progress(obs, other):\n  return obs\n")


def test_load_file(tmp_path):
  path = tmp_path / "mc.py"
  path.write_text(MC_REPLY)
  fn = progress.load_file(path, example_obs=MC_OBS[0])
  np.testing.assert_allclose(fn(MC_OBS[3]),
                             hand_written.mountaincar_progress(MC_OBS[3]),
                             rtol=1e-5)
  path.write_text("import os\n")
  with pytest.raises(ValueError, match=re.escape(str(path))):
    progress.load_file(path)


# ----------------------------------------------------------------------------
# load: rejected sources
# ----------------------------------------------------------------------------

# (source, text the message must contain); each is otherwise a valid function.
FORBIDDEN = {
    "import os": (_fn("return obs", header="import os"), "import of `os`"),
    "import subprocess": (_fn("return obs", header="import subprocess as sp"),
                          "import of `subprocess`"),
    "from os import": (_fn("return obs", header="from os import system"),
                       "import from `os`"),
    "import numpy": (_fn("return obs", header="import numpy as np"),
                     "import of `numpy`"),
    "import in body": (_fn("import sys\nreturn obs"), "import of `sys`"),
    "__import__": (_fn("m = __import__('os')\nreturn obs"), "`__import__`"),
    "__class__": (_fn("c = ().__class__\nreturn obs"), "`.__class__`"),
    "__subclasses__": (_fn("return obs.__class__.__subclasses__()"),
                       "`.__subclasses__`"),
    "__dict__": (_fn("d = obs.__dict__\nreturn obs"), "`.__dict__`"),
    "__builtins__": (_fn("b = __builtins__\nreturn obs"), "`__builtins__`"),
    "private attr": (_fn("return jnp._src"), "private attribute `._src`"),
    "non-jnp attribute": (_fn("return obs.tobytes()"), "`.tobytes`"),
    "generator frame": (_fn("g = (x for x in obs)\nreturn g.gi_frame"),
                        "`.gi_frame`"),
    "open": (_fn("f = open('x')\nreturn obs"), "`open`"),
    "eval": (_fn("eval('1')\nreturn obs"), "`eval`"),
    "exec": (_fn("exec('1')\nreturn obs"), "`exec`"),
    "compile": (_fn("compile('1', 'f', 'eval')\nreturn obs"), "`compile`"),
    "getattr": (_fn("f = getattr(jnp, 'x')\nreturn obs"), "`getattr`"),
    "setattr": (_fn("setattr(jnp, 'x', 1)\nreturn obs"), "`setattr`"),
    "globals": (_fn("g = globals()\nreturn obs"), "`globals`"),
    "vars": (_fn("v = vars()\nreturn obs"), "`vars`"),
    "print": (_fn("print(obs)\nreturn obs"), "`print`"),
    "jnp.load": (_fn("return jnp.load('x.npy')"), "`jnp.load`"),
    "while loop": (_fn("while True:\n  pass\nreturn obs"), "while loop"),
    "class def": ("class A:\n  pass\n\n" + _fn("return obs", header=""),
                  "class definition"),
    "global statement": (_fn("global X\nreturn obs"), "global statement"),
    "nonlocal": (_fn("nonlocal X\nreturn obs"), "nonlocal"),
    "lambda": (_fn("f = lambda x: x\nreturn f(obs)"), "lambda"),
    "nested def": (_fn("def h(x):\n  return x\nreturn h(obs)"),
                   "nested function definition"),
    "decorator": ("import jax.numpy as jnp\n\n@jnp.vectorize\n"
                  "def progress(obs):\n  return obs\n", "decorator"),
    "try": (_fn("try:\n  x = 1\nexcept Exception:\n  x = 2\nreturn obs"),
            "try/except"),
    "with": (_fn("with obs:\n  pass\nreturn obs"), "with statement"),
    "yield": (_fn("yield obs"), "yield"),
    "f-string": (_fn("s = f'{obs}'\nreturn obs"), "f-string"),
    "**kwargs call": (_fn("return jnp.clip(obs, **{'min': 0.0})"), "**kwargs"),
    "top-level call": ("import jax.numpy as jnp\njnp.zeros(3)\n"
                       + _fn("return obs", header=""), "top-level expression"),
    "set module attribute": (_fn("jnp.sin = jnp.cos\nreturn obs"),
                             "assignment to the attribute `.sin`"),
    "augment module attribute": (_fn("math.pi += 1\nreturn obs",
                                     header="import math"),
                                 "assignment to the attribute `.pi`"),
    "rebind jnp": (_fn("jnp = 1\nreturn obs"), "rebinding the module name `jnp`"),
    "unknown name": (_fn("return np.sin(obs)"), "unknown name `np`"),
    "jax.*": (_fn("return jax.nn.sigmoid(obs)", header="import jax"),
              "unknown name `jax`"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_load_rejects_forbidden_construct(case):
  source, named = FORBIDDEN[case]
  with pytest.raises(ValueError) as info:
    progress.load(source)
  message = str(info.value)
  assert named in message, message
  assert re.search(r"line \d+", message), message


def test_rejection_names_the_right_line():
  source = _fn("x = obs * 2.0\ny = x.__class__\nreturn x")
  with pytest.raises(ValueError, match=r"line 6: dunder attribute `.__class__`"):
    progress.load(source)


def test_load_reports_syntax_errors():
  with pytest.raises(ValueError, match=r"does not parse: line 1"):
    progress.load("def progress(obs)\n  return obs\n")


def test_rejected_code_never_runs(tmp_path):
  # Validation happens before anything executes: even top-level code with a
  # side effect is refused without running.
  marker = tmp_path / "ran"
  source = (f"open({str(marker)!r}, 'w').write('x')\n"
            + _fn("return obs", header=""))
  with pytest.raises(ValueError, match="`open`"):
    progress.load(source)
  assert not marker.exists()


# ----------------------------------------------------------------------------
# check
# ----------------------------------------------------------------------------

OBS = jnp.array([0.25, 0.5])


def test_check_returns_k():
  assert progress.check(hand_written.mountaincar_progress, OBS) == 2
  assert progress.check(hand_written.mountaincar_progress, [0.2, 0.0]) == 2
  assert progress.check(lambda o: jnp.clip(o[:1], 0, 1), OBS) == 1


def test_check_rejects_python_if_on_traced_value():
  source = _fn("if obs[0] > 0:\n  return obs\nreturn 1.0 - obs")
  fn = progress.load(source)  # Syntactically fine...
  with pytest.raises(ValueError) as info:  # ...but not jit-able.
    progress.check(fn, OBS)
  message = str(info.value)
  assert "Python control flow" in message and "jnp.where" in message
  assert "line 5" in message and "if obs[0] > 0:" in message
  # load() with an example observation checks straight away.
  with pytest.raises(ValueError, match="Python control flow"):
    progress.load(source, example_obs=OBS)


def test_check_rejects_builtin_max_and_math_on_arrays():
  with pytest.raises(ValueError, match="Python control flow"):
    progress.load(_fn("return max(obs[0], obs[1]) * obs"), example_obs=OBS)
  with pytest.raises(ValueError, match="concrete value"):
    progress.load(_fn("return math.cos(obs[0]) * obs",
                      header="import jax.numpy as jnp\nimport math"),
                  example_obs=OBS)


@pytest.mark.parametrize("body,named", [
    ("return jnp.ones((2, 2))", "shape (2, 2)"),
    ("return jnp.outer(obs, obs)", "must be 1-D"),
    ("return obs[0]", "scalar"),
    ("return jnp.zeros((0,))", "empty"),
    ("return [obs[0], obs[1]]", "returns a list"),
    ("return jnp.array([1, 2])", "dtype int32"),
    ("return obs > 0", "dtype bool"),
    ("return jnp.log(obs - obs[0])", "non-finite"),
    ("return obs / 0.0", "non-finite"),
    ("return jnp.stack([jnp.nan, 0.5])", "non-finite"),
])
def test_check_rejects_bad_outputs(body, named):
  fn = progress.load(_fn(body))
  with pytest.raises(ValueError, match=re.escape(named)):
    progress.check(fn, OBS)


def test_check_warns_outside_unit_interval():
  with pytest.warns(UserWarning, match="roughly in"):
    progress.check(lambda o: o * 4.0, OBS)


def test_check_other_errors_are_value_errors():
  with pytest.raises(ValueError, match="IndexError|index"):
    progress.check(lambda o: o[7, 3][None], OBS)


# ----------------------------------------------------------------------------
# prompt
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", sorted(progress.KNOWN_ENVS))
def test_prompt_known_envs(env_id):
  text = progress.prompt(env_id=env_id)
  known = progress.KNOWN_ENVS[env_id]
  assert env_id in text
  for index, meaning, _ in known.layout:
    assert f"`{index}`: {meaning}" in text
  for contract in ("def progress(obs):", "1-D", "[0, 1]", "closer to the goal",
                   "import jax.numpy as jnp", "jnp.where", "jax.jit",
                   "no I/O"):
    assert contract in text, contract


def test_prompt_custom_layout_and_num_outputs():
  text = progress.prompt(
      "Balance the ball on the plate.",
      [("obs[0]", "ball x", (-1.0, 1.0)), ("obs[1]", "ball y", "[-1, 1]"),
       ("obs[2]", "plate tilt")],
      num_outputs=3, example=False)
  assert "Balance the ball on the plate." in text
  assert "- `obs[0]`: ball x; range [-1.0, 1.0]" in text
  assert "- `obs[1]`: ball y; range [-1, 1]" in text
  assert "- `obs[2]`: plate tilt" in text
  assert "exactly 3 values" in text
  assert "Example" not in text
  text = progress.prompt(env_id="CartPole-v1", example="def progress(obs):\n"
                         "  return obs[:1]\n")
  assert "return obs[:1]" in text


def test_prompt_needs_a_description():
  with pytest.raises(ValueError, match="Known"):
    progress.prompt(env_id="MountainCar-v9")
  with pytest.raises(ValueError, match="env_id"):
    progress.prompt()


def test_prompt_example_is_itself_valid():
  # The example we show a model must pass our own checks.
  fn = progress.load(progress.EXAMPLE, example_obs=jnp.array([0.0, 0.0]))
  assert progress.check(fn, jnp.array([-1.0, -1.0])) == 2


# ----------------------------------------------------------------------------
# re-exports and potentials
# ----------------------------------------------------------------------------


def test_reexports_registry():
  from rewardjax.envs import progress_functions  # pylint: disable=g-import-not-at-top
  assert progress.get is progress_functions.get
  assert progress.potential is progress_functions.potential
  assert progress.REGISTRY is progress_functions.REGISTRY
  assert progress.ProgressSpec is progress_functions.ProgressSpec
  assert progress.get("mountaincar").fn is hand_written.mountaincar_progress
  assert progress_functions.mountaincar_progress is hand_written.mountaincar_progress


def test_rewards_reach_the_registry_without_envs():
  # rewards/ depends on the progress package, not on the environments.
  from rewardjax.rewards import progress_counts  # pylint: disable=g-import-not-at-top
  module = inspect.getmodule(progress_counts)
  assert module.__name__ == "rewardjax.rewards.progress_counts"
  assert "rewardjax.envs" not in inspect.getsource(module)


def test_as_potential():
  obs = MC_OBS[2]
  p = hand_written.mountaincar_progress(obs)
  # MountainCar's registered potential is its energy component alone.
  np.testing.assert_allclose(progress.as_potential("mountaincar", scale=2.0)(obs),
                             2.0 * p[1], rtol=1e-6)
  np.testing.assert_allclose(progress.as_potential(hand_written.mountaincar_progress,
                                                   scale=2.0)(obs),
                             2.0 * jnp.mean(p), rtol=1e-6)
  weighted = progress.as_potential(hand_written.mountaincar_progress,
                                   weights=[3.0, 1.0])
  np.testing.assert_allclose(weighted(obs), (3 * p[0] + p[1]) / 4, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(jax.vmap(weighted))(MC_OBS[:2]).shape, (2,))
  with pytest.raises(ValueError, match="weights"):
    progress.as_potential("mountaincar", weights=[-1.0, 1.0])


# ----------------------------------------------------------------------------
# load: bounded size and time
# ----------------------------------------------------------------------------


def test_load_refuses_an_oversized_source_before_parsing_it(tmp_path):
  huge = _fn("return jnp.stack([obs[0]])") + "# padding\n" * 400_000     # 4 MB
  with pytest.raises(ValueError, match=r"over the limit of 65,536 bytes"):
    progress.load(huge)
  path = tmp_path / "huge.py"
  path.write_text(huge)
  with pytest.raises(ValueError, match=r"MAX_SOURCE_BYTES"):
    progress.load_file(path)
  # Just under the limit still loads.
  fits = _fn("return jnp.stack([obs[0]])")
  fits += "#" * (loader.MAX_SOURCE_BYTES - len(fits) - 1) + "\n"
  assert progress.load(fits)(jnp.ones(2)).shape == (1,)


@pytest.mark.parametrize("body", [
    # a Python loop at trace time that would run for hours
    "total = 0\nfor i in range(10**9):\n  total = total + i\nreturn jnp.stack([obs[0] + total])",
    # a loop that keeps tracing jnp operations
    "x = obs[0]\nfor i in range(10**8):\n  x = jnp.sin(x)\nreturn jnp.stack([x])",
])
def test_load_stops_at_its_time_limit(body):
  start = time.monotonic()
  with pytest.raises(LoadTimeout, match=r"time limit of 1 s"):
    progress.load(_fn(body), example_obs=jnp.zeros(2), timeout=1.0)
  assert time.monotonic() - start < 10
  assert sys.gettrace() is None or "coverage" in type(sys.gettrace()).__module__


def test_load_time_limit_works_off_the_main_thread():
  slow = _fn("for i in range(10**9):\n  obs = obs + 0.0\nreturn obs[:1]")
  errors = []
  thread = threading.Thread(target=lambda: errors.append(_raised(slow)))
  thread.start()
  thread.join(timeout=60)
  assert not thread.is_alive() and isinstance(errors[0], LoadTimeout)


def test_time_limit_fires_only_on_lines_of_the_loaded_source():
  # Raised inside library code (JAX's tracer, a finaliser), the error would leave
  # that code half done or be lost as unraisable; on the source's own lines it
  # propagates like any error of the function.
  def library_code():
    return sum(i for i in range(1000))

  source_code = compile("x = library()\ny = x + 1\n", "<progress test>", "exec")
  with loader._Deadline(0.0, "<test>"):
    time.sleep(0.01)
    assert library_code() == 499500          # past the deadline: library code runs on
    with pytest.raises(LoadTimeout, match=r"time limit of 0 s"):
      exec(source_code, {"library": library_code})


def _raised(source):
  try:
    progress.load(source, example_obs=jnp.zeros(2), timeout=0.5)
  except ValueError as e:    # LoadTimeout is a ValueError, like every refusal
    return e
  return None

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
of Python (``allowlist``): top-level functions and constants, arithmetic,
conditionals, bounded ``for`` loops and calls to ``jnp.*``, ``math.*`` and a few
harmless builtins; anything else (other imports, names or attributes starting
with an underscore, ``eval``/``exec``/``open``, classes, lambdas, ``while``, …)
is refused with a ``ValueError`` that names the construct and its line. The
validated code then runs with a restricted ``__builtins__``.

This guards against accidents and obvious misuse in generated code; it is not an
operating-system sandbox (it does not bound CPU time or memory, e.g. ``9**9**9``).
Run code from an untrusted party in a separate, resource-limited process.

Nothing in this package calls a network.

Modules: ``hand_written`` (the functions), ``registry`` (``ProgressSpec``,
``REGISTRY``, ``get``), ``potentials``, ``checks`` (``check``), ``allowlist``
(the accepted subset and its validator), ``loader`` (``load``, ``load_file``)
and ``prompts`` (``prompt``, ``EnvDescription``, ``KNOWN_ENVS``).
"""

from rewardjax.progress.checks import check
from rewardjax.progress.loader import load
from rewardjax.progress.loader import load_file
from rewardjax.progress.potentials import as_potential
from rewardjax.progress.potentials import potential
from rewardjax.progress.prompts import CONTRACT
from rewardjax.progress.prompts import EXAMPLE
from rewardjax.progress.prompts import KNOWN_ENVS
from rewardjax.progress.prompts import EnvDescription
from rewardjax.progress.prompts import prompt
from rewardjax.progress.registry import REGISTRY
from rewardjax.progress.registry import ProgressSpec
from rewardjax.progress.registry import get

__all__ = [
    "ProgressSpec", "REGISTRY", "get", "potential", "as_potential", "check",
    "load", "load_file", "prompt", "EnvDescription", "KNOWN_ENVS", "CONTRACT",
    "EXAMPLE",
]

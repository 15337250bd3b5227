import os

# Tests run on the CPU; keep XLA from grabbing every thread of a shared machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Tests compile with XLA's backend (LLVM) optimisation off: the suite is dominated by
# compiling small training programs that then run for a few updates, and the flag
# halves a PPO program's compile time (14.3 s -> 7.6 s for PPO + RND on CartPole,
# measured on a 2-core CPU). The computation is the same; float results may differ in
# the last bits, so tests/test_golden_metrics.py compares with the stored runs in
# subprocesses compiled as users compile (this flag removed). Subprocesses that tests
# start (CLI runs, notebook kernels) inherit the flag. A user's own
# ``--xla_backend_optimization_level`` in XLA_FLAGS wins, and
# ``RJX_TESTS_XLA_DEFAULTS=1`` keeps XLA's defaults (benchmarks/mutation.sh: its runs
# trace every test in one process, golden metrics included).
# pytest-xdist's workers inherit the controller's XLA_FLAGS, flag included:
# ``RJX_TESTS_XLA_FLAG_ADDED`` tells them the level there is this file's, not the user's.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
ADDED_MARK = "RJX_TESTS_XLA_FLAG_ADDED"
_INHERITED = os.environ.get(ADDED_MARK) == "1"
TEST_XLA_FLAG_APPLIED = _INHERITED or (
    os.environ.get("RJX_TESTS_XLA_DEFAULTS", "") in ("", "0")
    and "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""))
if TEST_XLA_FLAG_APPLIED and not _INHERITED:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAG).strip()
  os.environ[ADDED_MARK] = "1"

import rewardjax  # noqa: E402,F401  (sets the XLA scheduler flag before JAX starts)


def pytest_collection_modifyitems(config, items):
  """Tests marked ``slow`` (the ones over ~15 s on 2 cores) run first, in their
  collected order, the rest after them: under ``-n 2`` the long tests then end
  early and the short ones fill the gaps, so both workers finish together
  instead of one waiting out a long test started last."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)

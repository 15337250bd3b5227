#!/usr/bin/env bash
# Mutation testing of the pure core modules with mutmut 3 (not part of CI).
#
#   bash benchmarks/mutation.sh            # needs `pip install mutmut` (3.x)
#
# mutmut changes one operator, constant or call at a time in the modules below;
# a mutant that none of the fast tests covering the changed function notices
# "survives". Everything happens in a scratch copy of this checkout (mutmut
# writes a mutants/ tree and reads its settings from setup.cfg there). Prints the
# score and every survivor; `mutmut show <name>` in the printed directory shows one.
#
# mutmut generates the mutants and maps functions to the tests that run them; the
# mutants are then tested in ONE process (JAX's caches cleared between mutants, so
# nothing traced under one mutant serves another). mutmut's own runner forks a
# process per mutant, which here costs a fresh JAX backend and fresh compiles each
# time (about 10 s a mutant instead of 1 s): a process whose JAX backend has
# started cannot be forked safely, and importing gymnax (so rewardjax) starts it.
#
# Environment: PYTHON (default: .venv/bin/python of this checkout, else python3),
# MUTANT_TIMEOUT_S (per mutant, default 120).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rewardjax-mutation.XXXXXX")

MODULES=(
  rewardjax/returns.py
  rewardjax/q_targets.py
  rewardjax/value_mapping.py
  rewardjax/rewards/shaping.py
)
# The fast tests of those modules (seconds each; no agent training).
TESTS=(
  tests/test_returns.py
  tests/test_q_targets.py
  tests/test_shaping.py
  tests/test_ppo_loss.py::test_ppo_advantages_weight_each_channel_by_its_coefficient
)

"$PYTHON" -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed for $PYTHON" >&2; exit 2; }

# A scratch copy of the working tree (tracked and untracked files, not ignored ones).
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK")
cd "$WORK"
{
  echo "[mutmut]"
  echo "source_paths = rewardjax"
  printf "only_mutate =\n"; printf "  %s\n" "${MODULES[@]}"
  printf "pytest_add_cli_args_test_selection =\n"; printf "  %s\n" "${TESTS[@]}"
  echo "pytest_add_cli_args = -p no:cacheprovider"
  # What mutmut itself runs (the stats and one mutant) is forked from a server that
  # has imported JAX but started no backend.
  echo "process_isolation = forkserver"
  echo "forkserver_warmup = import"
  echo "preload_modules_file = preload_modules.txt"
  echo "timeout_constant = 60"
  echo "use_git_change_detection = false"
} > setup.cfg
printf "%s\n" numpy jax jax.numpy flax.linen optax pytest > preload_modules.txt

echo "mutating ${MODULES[*]} in $WORK" >&2
# Generate every mutant, map functions to tests, and test one mutant.
JAX_PLATFORMS=cpu "$PYTHON" -m mutmut run --max-children 1 \
  rewardjax.returns.x_channel_bootstrap__mutmut_1 > mutmut-run.log 2>&1 \
  || { tail -20 mutmut-run.log >&2; exit 1; }

# Test every mutant in this one process; the verdicts go where `mutmut results` reads them.
JAX_PLATFORMS=cpu "$PYTHON" - <<'PY'
import contextlib, io, json, os, pathlib, signal, sys, time
os.chdir("mutants")
sys.path.insert(0, os.getcwd())            # the mutated rewardjax comes first
import jax
import pytest

TIMEOUT_S = int(os.environ.get("MUTANT_TIMEOUT_S", "120"))
stats = json.loads(pathlib.Path("mutmut-stats.json").read_text())
tests_by_fn, callers = stats["tests_by_mangled_function_name"], stats["function_dependencies"]


def tests_for(fn, seen):
  """The tests that run ``fn`` or any function calling it (mutmut's dependency map)."""
  if fn in seen:
    return set()
  seen.add(fn)
  tests = set(tests_by_fn.get(fn, ()))
  for caller in callers.get(fn, ()):
    tests |= tests_for(caller, seen)
  return tests


def on_alarm(*_):
  raise TimeoutError


signal.signal(signal.SIGALRM, on_alarm)
start, done = time.time(), 0
for meta in sorted(pathlib.Path("rewardjax").rglob("*.meta")):
  data = json.loads(meta.read_text())
  for name in data["exit_code_by_key"]:
    tests = sorted(tests_for(name.rsplit("__mutmut_", 1)[0], set()))
    if not tests:
      code = 33                                # mutmut's "no tests"
    else:
      os.environ["MUTANT_UNDER_TEST"] = name   # read by mutmut's trampolines at every call
      jax.clear_caches()
      signal.alarm(TIMEOUT_S)
      try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
          rc = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--rootdir=.", *tests]))
        code = 1 if rc in (1, 3) else rc       # mutmut's codes: 0 survived, 1 killed
      except TimeoutError:
        code = 36
      finally:
        signal.alarm(0)
    data["exit_code_by_key"][name] = code
    done += 1
    if done % 50 == 0:
      print(f"{done} mutants tested in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
  meta.write_text(json.dumps(data))
PY

"$PYTHON" -m mutmut results --all true > results.txt
"$PYTHON" - <<'PY'
import collections
lines = [l.strip() for l in open("results.txt") if ":" in l]
status = collections.Counter(l.rsplit(":", 1)[1].strip() for l in lines)
total, killed = sum(status.values()), status.get("killed", 0)
print(f"mutants: {total}; by status: {dict(status)}")
if total:
  print(f"score (killed / all): {killed}/{total} = {100 * killed / total:.1f} %")
print("not killed:")
for l in lines:
  if not l.endswith(": killed"):
    print("  " + l)
PY
echo "results and mutants: $WORK (mutmut show <name> there)" >&2

#!/usr/bin/env bash
# Mutation testing of the pure core modules with mutmut 3 (not part of CI).
#
#   bash benchmarks/mutation.sh [GROUP [MODULE ...]]   # needs `pip install mutmut` (3.x)
#
# GROUP (one per run; each takes minutes to about an hour on 2 CPU cores):
#   core     returns, q_targets, value_mapping, rewards/shaping (the default)
#   counts   rewards/counts and its count_keys / count_tables / count_lifelong /
#            count_episodic pieces
#   rewards  rewards/redistribution, rewards/channels, rewards/transforms
#   agents   the loss and target functions of agents/ppo.py (ppo_advantages,
#            ppo_loss, ppo_loss_from_outputs), agents/pqn.py (pqn_targets, pqn_loss) and agents/dqn.py
#            (q_loss); the rest of those files (make_train) is mutated but its
#            mutants are skipped: only training runs would test them
# MODULEs (paths as listed below) restrict a run to part of its group.
#
# mutmut changes one operator, constant or call at a time in the group's modules;
# a mutant that none of the fast tests covering the changed function notices
# "survives". Everything happens in a scratch copy of this checkout (mutmut
# writes a mutants/ tree and reads its settings from setup.cfg there). Prints the
# score per file and every survivor; `mutmut show <name>` in the printed
# directory shows one.
#
# mutmut generates the mutants and maps functions to the tests that run them; the
# mutants are then tested in ONE process (JAX's caches cleared between mutants, so
# nothing traced under one mutant serves another). mutmut's own runner forks a
# process per mutant, which here costs a fresh JAX backend and fresh compiles each
# time (about 10 s a mutant instead of 1 s): a process whose JAX backend has
# started cannot be forked safely, and importing gymnax (so rewardjax) starts it.
# Compiled programs persist on disk within a run (the scratch copy's jax-cache/): the
# programs a mutant leaves unchanged are read back, not compiled again.
#
# Environment: PYTHON (default: .venv/bin/python of this checkout, else python3),
# MUTANT_TIMEOUT_S (per mutant, default 120), KILLED_BEFORE (the results.txt of
# an earlier run of the same group on the same source: the mutants it killed are
# counted as killed without a rerun, which holds while tests are only added),
# BASELINE_REF (a git ref, e.g. main: each mutant is first tested with the tests
# that exist at that ref and only if it survives them with the others, and the
# table gets a column of what the ref's tests kill, a before/after in one run).
set -euo pipefail
# The tests compile with XLA's defaults here, as when the scores in RESULTS were
# measured (tests/conftest.py otherwise turns LLVM optimisation off).
export RJX_TESTS_XLA_DEFAULTS=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rewardjax-mutation.XXXXXX")

GROUP=${1:-core}
FUNCTIONS=()   # if set: only these functions' mutants are tested and counted
case "$GROUP" in
  core)
    MODULES=(rewardjax/returns.py rewardjax/q_targets.py rewardjax/value_mapping.py
             rewardjax/rewards/shaping.py)
    TESTS=(tests/test_returns.py tests/test_q_targets.py tests/test_shaping.py
           tests/test_ppo_loss.py::test_ppo_advantages_weight_each_channel_by_its_coefficient)
    ;;
  counts)
    MODULES=(rewardjax/rewards/counts.py rewardjax/rewards/count_keys.py
             rewardjax/rewards/count_tables.py rewardjax/rewards/count_lifelong.py
             rewardjax/rewards/count_episodic.py)
    TESTS=(tests/test_counts.py)
    ;;
  rewards)
    MODULES=(rewardjax/rewards/redistribution.py rewardjax/rewards/channels.py
             rewardjax/rewards/transforms.py)
    TESTS=(tests/test_redistribution.py tests/test_channels.py)
    ;;
  agents)
    # agents/ is installed as rewardjax.agents; in the scratch copy it is moved
    # there so that mutmut (source_paths = rewardjax) mutates it.
    MODULES=(rewardjax/agents/ppo.py rewardjax/agents/pqn.py rewardjax/agents/dqn.py)
    FUNCTIONS=(rewardjax.agents.ppo.x_ppo_advantages rewardjax.agents.ppo.x_ppo_loss
               rewardjax.agents.ppo.x_ppo_loss_from_outputs
               rewardjax.agents.pqn.x_pqn_targets rewardjax.agents.pqn.x_pqn_loss
               rewardjax.agents.dqn.x_q_loss)
    TESTS=(tests/test_ppo_loss.py tests/test_q_targets.py
           tests/test_pqn.py::test_pqn_loss_is_sum_over_channels_of_mean_td_loss
           tests/test_dqn.py::test_one_channel_identity_equals_plain_dqn_loss
           tests/test_dqn.py::test_log_mapping_loss_regresses_mapped_heads_onto_mapped_targets
           tests/test_dqn.py::test_two_channels_sum_of_per_channel_losses
           tests/test_dqn.py::test_q_loss_hand_computed_n_step_targets_with_coefficients) ;;
  *) echo "unknown group $GROUP (core, counts, rewards, agents)" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then MODULES=("${@:2}"); fi
# `mutmut run` tests one named mutant (the first of the first module's first
# function) after generating them all; the rest are tested below.
first=${MODULES[0]%.py}
src=${MODULES[0]/#rewardjax\/agents\//agents/}
PROBE="${first//\//.}.x_$(sed -n 's/^def \([A-Za-z0-9_]*\).*/\1/p' "$ROOT/$src" | head -1)__mutmut_1"

"$PYTHON" -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed for $PYTHON" >&2; exit 2; }

# A scratch copy of the working tree (tracked and untracked files, not ignored ones).
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && xargs -0 cp -P --parents -t "$WORK")
cd "$WORK"
if [ "$GROUP" = agents ]; then rm -rf rewardjax/agents && mv agents rewardjax/agents; fi
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
  "$PROBE" > mutmut-run.log 2>&1 \
  || { tail -20 mutmut-run.log >&2; exit 1; }

# Test every mutant in this one process; the verdicts go where `mutmut results` reads them.
printf "%s\n" "${FUNCTIONS[@]}" > functions.txt
: > baseline_tests.txt
if [ -n "${BASELINE_REF:-}" ]; then
  for f in "${TESTS[@]}"; do
    f=${f%%::*}
    git -C "$ROOT" show "$BASELINE_REF:$f" 2>/dev/null | sed -n "s|^def \(test_[A-Za-z0-9_]*\).*|$f::\1|p" \
      >> baseline_tests.txt || true
  done
fi
JAX_PLATFORMS=cpu "$PYTHON" - <<'PY'
import contextlib, io, json, os, pathlib, signal, sys, time
only = {l.strip() for l in open("functions.txt") if l.strip()}   # empty: every function
baseline = {l.strip() for l in open("baseline_tests.txt") if l.strip()}
baseline_killed = {}
killed_before = set()
if os.environ.get("KILLED_BEFORE"):
  killed_before = {l.strip().rsplit(":", 1)[0] for l in open(os.environ["KILLED_BEFORE"])
                   if l.strip().endswith(": killed")}
os.chdir("mutants")
sys.path.insert(0, os.getcwd())            # the mutated rewardjax comes first
import jax
import pytest
from hypothesis import Phase, settings

# Compiled programs are kept on disk, keyed by their HLO: the functions a mutant
# leaves unchanged compile to the programs of the previous mutant and are read back
# instead of recompiled; a changed function is a different program, so a new key.
jax.config.update("jax_compilation_cache_dir", os.path.abspath("../jax-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

# A property test that fails stops at its first failing example: shrinking it
# (many more calls, each recompiled) would only turn kills into timeouts.
settings.register_profile("mutants", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("mutants")

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


def run_tests(tests):
  """mutmut's code for ``tests`` under the current mutant: 1 killed, 0 survived, 36 timeout."""
  jax.clear_caches()
  signal.alarm(TIMEOUT_S)
  try:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
      rc = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--rootdir=.", *tests]))
    return 1 if rc in (1, 3) else rc           # pytest's 1 (failed) and 3 (error): killed
  except TimeoutError:
    return 36
  finally:
    signal.alarm(0)


signal.signal(signal.SIGALRM, on_alarm)
start, done = time.time(), 0
for meta in sorted(pathlib.Path("rewardjax").rglob("*.meta")):
  data = json.loads(meta.read_text())
  for name in data["exit_code_by_key"]:
    function = name.rsplit("__mutmut_", 1)[0]
    tests = sorted(tests_for(function, set()))
    if only and function not in only:
      code = 34                                # mutmut's "skipped": not a function under test
    elif name in killed_before:
      code = 1
      baseline_killed[name] = True             # (KILLED_BEFORE: a run of the baseline's tests)
    elif not tests:
      code = 33                                # mutmut's "no tests"
    else:
      os.environ["MUTANT_UNDER_TEST"] = name   # read by mutmut's trampolines at every call
      old = [t for t in tests if t.split("[")[0] in baseline]
      for part in ([old, [t for t in tests if t not in old]] if baseline else [tests]):
        code = run_tests(part) if part else 0
        if baseline and part is old:
          baseline_killed[name] = code == 1
        if code != 0:
          break
    data["exit_code_by_key"][name] = code
    done += 1
    if done % 50 == 0:
      print(f"{done} mutants tested in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
  meta.write_text(json.dumps(data))
pathlib.Path("../baseline_killed.json").write_text(json.dumps(baseline_killed))
PY

"$PYTHON" -m mutmut results --all true > results.txt
"$PYTHON" - <<'PY'
import collections, json, re
rows = [l.strip().rsplit(":", 1) for l in open("results.txt") if ":" in l]
rows = [(name, status.strip()) for name, status in rows if status.strip() != "skipped"]
base = json.load(open("baseline_killed.json"))     # empty without BASELINE_REF
by_file = collections.defaultdict(collections.Counter)
for name, status in rows:
  c = by_file[re.match(r"(.*?)\.x[_ǁ]", name).group(1)]
  c[status] += 1
  c["baseline"] += base.get(name, False)
print("| module | mutants | killed by BASELINE_REF's tests | killed | survived | other | killed % |")
print("|---|---:|---:|---:|---:|---:|---:|")
for module, c in sorted(by_file.items()) + [("all", sum(by_file.values(), collections.Counter()))]:
  total = sum(v for k, v in c.items() if k != "baseline")
  killed, other = c["killed"], total - c["killed"] - c["survived"]
  print(f"| {module} | {total} | {c['baseline'] if base else '-'} | {killed} | {c['survived']} "
        f"| {other} | {100 * killed / total:.1f} |")
print("not killed:")
for name, status in rows:
  if status != "killed":
    print(f"  {name}: {status}")
PY
echo "results and mutants: $WORK (mutmut show <name> there)" >&2

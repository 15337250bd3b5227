#!/usr/bin/env bash
# GPU throughput: PPO (and PQN, if rewardjax.agents.pqn exists) with and without
# RND, env steps/s at num_envs 256 ... 16384 on CartPole-v1 (under 8 minutes on one
# H100-class GPU); then, if the craftax extra is installed, Craftax-1M
# (benchmarks/craftax_1m.py: Craftax-Symbolic-v1, 1M steps, 2 seeds, PPO / +RND / +E3B /
# +ICM / GRU; estimated at about 5 minutes of an H200, mostly compilation: not yet
# measured on one).
#
#   benchmarks/gpu.sh            # on a GPU machine: installs CUDA jax, then benchmarks
#   benchmarks/gpu.sh --tiny     # smoke check anywhere (CPU): no install, tiny sizes
#
# PYTHON=... picks the interpreter (default: python). The table goes to stdout;
# record it in benchmarks/RESULTS.md with the device it names.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

if [[ "${1:-}" == "--tiny" ]]; then
  NUM_ENVS=(4 8); TOTAL=4096; NUM_STEPS=16; REPEATS=1; CRAFTAX=(--tiny)
else
  JAX_VERSION="$("$PYTHON" -c 'import jax; print(jax.__version__)')"
  # The CUDA build of the SAME jax version, so nothing else moves.
  "$PYTHON" -m pip install -q -U "jax[cuda12]==${JAX_VERSION}"
  NUM_ENVS=(256 1024 4096 16384); TOTAL=16777216; NUM_STEPS=128; REPEATS=2
  CRAFTAX=(--steps 1000000 --seeds 2)
fi
"$PYTHON" -c 'import jax; print("device:", jax.devices()[0].device_kind, "| jax", jax.__version__, "| backend", jax.default_backend())'

# PPO ± RND: one compiled training run per row; compile time is reported separately.
"$PYTHON" benchmarks/throughput.py --no-rejax --rows ppo ppo+rnd --num-envs "${NUM_ENVS[@]}" \
  --num-steps "$NUM_STEPS" --total-timesteps "$TOTAL" --repeats "$REPEATS"

# PQN ± RND, if this checkout has it (its config needs num_envs and total_timesteps).
"$PYTHON" - "$TOTAL" "$REPEATS" "${NUM_ENVS[@]}" <<'PY'
import importlib, sys, time, dataclasses, statistics
import rewardjax as rjx
import jax
try:
  pqn = importlib.import_module("rewardjax.agents.pqn")
except ImportError as e:
  print(f"\nPQN: skipped ({e})"); sys.exit(0)
total, repeats, sizes = int(sys.argv[1]), int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
cfg_cls = next(getattr(pqn, n) for n in dir(pqn) if n.endswith("Config"))
env, params = rjx.envs.make("CartPole-v1")
print("\n| variant | num_envs | env steps/s (median) | compile s |\n|---|---:|---:|---:|")
for n in sizes:
  for name, rewards in (("pqn", None), ("pqn+rnd", rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.rnd(), episodic=False)))):
    try:
      cfg = dataclasses.replace(cfg_cls(), num_envs=n, total_timesteps=total)
      train = pqn.make_train(cfg, env, params, rewards)
      key = jax.random.PRNGKey(0)
      t0 = time.perf_counter(); c = jax.jit(train).lower(key).compile(); comp = time.perf_counter() - t0
      ts = []
      for _ in range(repeats):
        t0 = time.perf_counter(); res = jax.block_until_ready(c(key)); ts.append(time.perf_counter() - t0)
      out = jax.device_get(res.metrics["env_steps"])
      print(f"| {name} | {n} | {float(out[-1]) / statistics.median(ts):,.0f} | {comp:.1f} |", flush=True)
    except Exception as e:  # pylint: disable=broad-except
      print(f"| {name} | {n} | failed: {type(e).__name__}: {str(e)[:120]} | |", flush=True)
PY

# Craftax-1M: score (% of max) and top achievements per arm, if craftax is installed.
if "$PYTHON" -c 'import craftax' 2>/dev/null; then
  echo
  "$PYTHON" benchmarks/craftax_1m.py "${CRAFTAX[@]}"
else
  echo -e '\nCraftax: skipped (pip install "rewardjax[craftax]")'
fi

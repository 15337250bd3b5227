"""Fixed-seed runs of every agent, with and without reward channels, against stored metrics.

A refactor of an agent, a reward module or a combinator must leave training
numerically unchanged: these runs' metrics are compared with
``tests/data/golden_metrics.npz``. On the machine and jax version that wrote the
file the comparison is exact (bit for bit); elsewhere XLA may order float
operations differently, so a tight tolerance applies.

The runs compile as users' programs compile: each case trains in a subprocess
whose ``XLA_FLAGS`` lack the test suite's ``--xla_backend_optimization_level=0``
(tests/conftest.py), which may change float results in the last bits.

Regenerate the file only for a change that is meant to change training, and say
why in the commit: ``python tests/test_golden_metrics.py --regenerate``.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys

import jax
import numpy as np
import pytest

import rewardjax as rjx
from rewardjax.agents import dqn, ppo, pqn

R = rjx.rewards
DATA = pathlib.Path(__file__).parent / "data" / "golden_metrics.npz"


def _channels(env_name: str):
  phi = rjx.progress.potential("mountaincar") if env_name == "MountainCar-v0" else (
      lambda obs: -abs(obs[..., 2]))
  return R.combine(
      extrinsic=R.channel(R.extrinsic(), coef=2.0, gamma=0.999),
      counts=R.intrinsic_channel(R.count_bonus(key_fn="simhash")),
      novelty=R.channel(R.rnd(), coef=0.5, gamma=0.99, episodic=False),
      shaping=R.channel(R.add(R.extrinsic(), R.potential_shaping(phi, gamma=0.99)), coef=0.3),
  )


def _cases():
  small_ppo = dict(total_timesteps=4 * 16 * 3, num_envs=4, num_steps=16, num_minibatches=2,
                   update_epochs=2)
  small_pqn = dict(total_timesteps=4 * 16 * 3, num_envs=4, num_steps=16, num_minibatches=2,
                   update_epochs=2, hidden_sizes=(32, 32))
  small_dqn = dict(total_timesteps=4 * 8 * 6, num_envs=4, num_steps=8, num_gradient_steps=2,
                   minibatch_size=16, buffer_size=256, learning_starts=64,
                   target_update_interval=64, hidden_sizes=(32, 32))
  cart = "CartPole-v1"
  return {
      "ppo": (ppo, ppo.PPOConfig(**small_ppo), cart, None),
      "ppo_channels": (ppo, ppo.PPOConfig(**small_ppo, normalize_observations=True), cart,
                       "channels"),
      "ppo_normalized_rewards": (ppo, ppo.PPOConfig(**small_ppo, normalize_rewards=True),
                                 cart, "channels"),
      "ppo_continuous": (ppo, ppo.PPOConfig(**small_ppo), "Pendulum-v1", None),
      "dqn": (dqn, dqn.DQNConfig(**small_dqn), cart, None),
      "ddqn_channels": (dqn, dqn.DDQNConfig(**small_dqn, value_mapping=("log",)), cart,
                        "channels"),
      "pqn": (pqn, pqn.PQNConfig(**small_pqn), cart, None),
      "pqn_channels": (pqn, pqn.PQNConfig(**small_pqn), cart, "channels"),
  }


def _run(name: str) -> dict[str, np.ndarray]:
  agent, config, env_name, rewards = _cases()[name]
  env, env_params = rjx.envs.make(env_name)
  rewards = _channels(env_name) if rewards == "channels" else None
  train = agent.make_train(config, env, env_params, rewards)
  out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(7), 2))
  return {k: np.asarray(v) for k, v in out.metrics.items()}


def _fingerprint() -> str:
  cpu = ""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return json.dumps({"jax": jax.__version__, "jaxlib": jax.lib.__version__,
                     "machine": platform.machine(), "cpu": cpu}, sort_keys=True)


def _run_as_users_compile(name: str, tmp_path: pathlib.Path) -> dict[str, np.ndarray]:
  """``_run(name)`` compiled with XLA's defaults: in this process unless the test
  suite turned LLVM optimisation off (tests/conftest.py), else in a subprocess
  without that flag that imports the same code (this process's ``sys.path``)."""
  import conftest  # pylint: disable=g-import-not-at-top
  if not conftest.TEST_XLA_FLAG_APPLIED:
    return _run(name)
  flags = os.environ.get("XLA_FLAGS", "").replace(conftest.TEST_XLA_FLAG, "").strip()
  out = tmp_path / f"{name}.npz"
  env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=os.pathsep.join(sys.path))
  env.pop(conftest.ADDED_MARK, None)
  subprocess.run([sys.executable, __file__, "--run", name, str(out)], check=True, timeout=600,
                 env=env)
  with np.load(out) as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_cases()))
def test_metrics_equal_the_stored_run(name, tmp_path):
  stored = np.load(DATA)
  exact = str(stored["__fingerprint__"]) == _fingerprint()
  prefix = f"{name}/"
  expected = {k[len(prefix):]: stored[k] for k in stored.files if k.startswith(prefix)}
  assert expected, f"no stored metrics for {name}; regenerate {DATA.name}"
  got = _run_as_users_compile(name, tmp_path)
  assert sorted(got) == sorted(expected), "the set of metric names changed"
  for k, want in expected.items():
    if exact:
      np.testing.assert_array_equal(got[k], want, err_msg=f"{name}: {k}")
    else:
      np.testing.assert_allclose(got[k], want, rtol=1e-4, atol=1e-5, err_msg=f"{name}: {k}")


def _regenerate() -> None:
  arrays = {"__fingerprint__": np.asarray(_fingerprint())}
  for name in sorted(_cases()):
    for k, v in _run(name).items():
      arrays[f"{name}/{k}"] = v
  DATA.parent.mkdir(exist_ok=True)
  np.savez(DATA, **arrays)
  print(f"wrote {len(arrays) - 1} arrays to {DATA}")


if __name__ == "__main__":
  if sys.argv[1:] == ["--regenerate"]:
    _regenerate()
  elif len(sys.argv) == 4 and sys.argv[1] == "--run":
    np.savez(sys.argv[3], **_run(sys.argv[2]))
  else:
    sys.exit("usage: python tests/test_golden_metrics.py --regenerate | --run NAME OUT.npz")

"""Run by tests/test_distributed.py: one tiny PPO over a two-device mesh.

``python _distributed_worker.py OUT PROCESS_ID NUM_PROCESSES COORDINATOR`` joins a
multi-process run (one CPU device per process, gloo collectives, jax 0.10's
default) in the order the README gives: import rewardjax, then
``jax.distributed.initialize``, then build the mesh. ``python
_distributed_worker.py OUT`` runs the same training in one process, over the
devices it has (the test forces two). Process 0 (or the single process) writes
the metrics to ``OUT`` (``.npz``).
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import rewardjax as rjx  # noqa: E402
from rewardjax.agents import ppo  # noqa: E402


def main(out: str, *process) -> None:
  if process:
    process_id, num_processes, coordinator = int(process[0]), int(process[1]), process[2]
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=30)
  assert jax.device_count() == 2, jax.devices()
  env, env_params = rjx.envs.make("CartPole-v1")
  config = ppo.PPOConfig(total_timesteps=4 * 8 * 3, num_envs=4, num_steps=8, num_minibatches=2,
                         update_epochs=1, hidden_sizes=(16,))
  rewards = rjx.rewards.combine(
      extrinsic=rjx.rewards.extrinsic(),
      novelty=rjx.rewards.channel(rjx.rewards.rnd(target_hidden=(8,), predictor_hidden=(8,),
                                                  output_dim=8), episodic=False))
  mesh = rjx.sharding.make_mesh()                  # every process's devices
  train = jax.jit(ppo.make_train(config, env, env_params, rewards, mesh=mesh))
  result = train(jax.random.PRNGKey(0))            # the same key in every process
  # Metrics are replicated: each process reads its own copy.
  metrics = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), result.metrics)
  if jax.process_index() == 0:
    np.savez(out, **metrics)


if __name__ == "__main__":
  main(*sys.argv[1:])

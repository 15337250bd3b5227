"""One process of tests/test_cli_distributed.py: ``python this.py PROCESS_ID PORT OUT``."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=process_id)

from rewardjax import cli  # noqa: E402  (after initialize: importing may start a backend)

sys.exit(cli.main([
    "train", "--distributed", "--env", "CartPole-v1", "--seeds", "2",
    "--total-timesteps", "384", "--checkpoint-every", "2", "--ppo.num-envs", "4",
    "--ppo.num-steps", "16", "--ppo.update-epochs", "1", "--ppo.num-minibatches", "1",
    "--ppo.hidden-sizes", "16", "16", "--no-progress", "--out", out]))

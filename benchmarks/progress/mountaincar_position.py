def progress(obs):
  """MountainCar(-Continuous): position alone, 0 at the left wall, 1 at the flag (x = 0.5)."""
  return jnp.stack([jnp.clip((obs[0] + 1.2) / 1.7, 0.0, 1.0)])

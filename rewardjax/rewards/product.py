"""An episodic bonus times a global one (Henaff, Jiang, Rocktäschel & Raileanu 2023).

    r_t = r^episodic_t · r^global_t

Henaff et al. ("A study of global and episodic bonuses for exploration in
contextual MDPs") find the product of an episodic bonus (E3B, episodic counts)
and a global one (RND, lifelong counts) the best of the combinations they try.
``product`` multiplies the rewards of any two reward modules; each keeps its
own state and update, and their metrics are reported under ``episodic/`` and
``global/``.
"""

from __future__ import annotations

import jax.numpy as jnp

from rewardjax.rewards.channels import stack_modules
from rewardjax.types import RewardModule


def product(episodic: RewardModule, global_: RewardModule) -> RewardModule:
  """The reward module ``r = episodic · global_`` (e.g. ``product(e3b(), rnd())``).

  Its state is ``{"episodic": ..., "global": ...}``. Potential shaping
  (``RewardModule.gamma`` set) is refused: a product of a shaping term no longer
  preserves optimal policies.
  """
  for name, m in (("episodic", episodic), ("global_", global_)):
    if not isinstance(m, RewardModule):
      raise TypeError(f"product: {name} must be a RewardModule, got {type(m).__name__}")
    if m.gamma is not None:
      raise ValueError(f"product: {name} is potential shaping, which a product would "
                       "not keep policy-invariant; add it as its own channel instead")
  stacked = stack_modules({"episodic": episodic, "global": global_})

  def reward_fn(state, batch):
    return jnp.prod(stacked.reward(state, batch), axis=-1)

  def reward_and_update_fn(state, batch, key):
    r, state, metrics = stacked.reward_and_update(state, batch, key)
    return jnp.prod(r, axis=-1), state, metrics

  return RewardModule(stacked.init, reward_fn, stacked.update, reward_and_update_fn)


__all__ = ["product"]

"""Reward modules, channels and transforms (a flat list of re-exports)."""

from rewardjax.rewards.channels import Channel
from rewardjax.rewards.channels import Channels
from rewardjax.rewards.channels import as_channels
from rewardjax.rewards.channels import channel
from rewardjax.rewards.channels import combine
from rewardjax.rewards.channels import combined_reward
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.rewards.shaping import ShapingModule
from rewardjax.rewards.shaping import potential_shaping
from rewardjax.rewards.shaping import shaping_reward
from rewardjax.rewards.transforms import RewardTransform
from rewardjax.rewards.transforms import clip
from rewardjax.rewards.transforms import normalize_by_return_std
from rewardjax.rewards.transforms import scale
from rewardjax.rewards.transforms import signed_hyperbolic
from rewardjax.rewards.transforms import standardize
from rewardjax.rewards.transforms import symlog
from rewardjax.rewards.transforms import transform
from rewardjax.types import RewardModule
from rewardjax.types import Transition
from rewardjax.rewards.redistribution import last_valid_step
from rewardjax.rewards.redistribution import redistribute
from rewardjax.rewards.redistribution import uniform_redistribution

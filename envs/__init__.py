"""Environments: ``make()``, wrappers and progress functions for known environments."""

from rewardjax.envs import progress_functions
from rewardjax.envs import brax_adapter  # registers the brax/<name> ids
from rewardjax.envs import craftax_adapter  # registers the craftax/<id> ids
from rewardjax.envs import xminigrid_adapter  # registers the xminigrid/<id> ids
from rewardjax.envs.registry import make
from rewardjax.envs.registry import register
from rewardjax.envs.registry import register_prefix
from rewardjax.envs.registry import registered_ids
from rewardjax.envs.wrappers import EpisodeStatistics
from rewardjax.envs.wrappers import FlattenObservation
from rewardjax.envs.wrappers import MaskObservation
from rewardjax.envs.wrappers import Wrapper
from rewardjax.envs.delayed_reward import DelayedReward
from rewardjax.envs.delayed_reward import DelayedRewardState
from rewardjax.envs.rollouts import random_rollout
from rewardjax.envs.rollouts import reset_batch
from rewardjax.envs.rollouts import step_batch

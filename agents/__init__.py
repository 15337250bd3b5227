"""Agents: one module per algorithm, each with a frozen config and ``make_train``."""

from rewardjax.agents import ppo
from rewardjax.agents import dqn
from rewardjax.agents import pqn

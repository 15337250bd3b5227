"""The agents the ``rewardjax`` command offers, each described by one declared record.

    spec = AGENTS["ppo"]
    train = spec.make_train(spec.config_cls(), env, env_params, rewards)

A record states what the command may ask of an agent — its config class, its
``make_train``, the hyperparameters ``train(key, hparams)`` traces, whether it
runs in chunks, takes a device mesh, reports progress or evaluates — so the command never
inspects the agent's functions or modules. A new agent is one ``AgentSpec``
passed to ``register``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from rewardjax.agents import dqn, ppo, pqn


class AgentSpec(NamedTuple):
  """What the command needs to know about one agent.

  Attributes:
    name: the ``--agent`` value and the prefix of its options (``--ppo.lr``).
    config_cls: the agent's frozen config dataclass (every field has a default).
    make_train: ``make_train(config, env, env_params, rewards, **kwargs) -> train``.
    sweepable: config fields ``train(key, hparams)`` accepts as traced overrides
      (``--sweep``); every channel's ``<name>.coef`` is sweepable too when
      ``trainer`` is set.
    trainer: ``make_train`` returns a ``trainer.Trainer``: ``train(key, hparams)``,
      ``train.init`` and ``train.run`` (sweeps, ``--checkpoint-every``, ``--resume``).
    supports_mesh: ``make_train`` takes ``mesh=`` (``--num-devices``).
    reports_progress: ``make_train`` takes ``callback=``, called after every update.
    evaluates: the config has ``evaluation.EvalConfig``'s fields (``--eval-every``).
  """
  name: str
  config_cls: type
  make_train: Callable
  sweepable: tuple[str, ...] = ()
  trainer: bool = False
  supports_mesh: bool = False
  reports_progress: bool = False
  evaluates: bool = False

  def sweepable_names(self, channel_names, scheduled=()) -> tuple[str, ...]:
    """Every name ``--sweep`` accepts with these reward channels, of which those
    named in ``scheduled`` have a coefficient schedule (``<name>.decay``)."""
    if not self.trainer:
      return ()
    return (tuple(self.sweepable) + tuple(f"{n}.coef" for n in channel_names)
            + tuple(f"{n}.decay" for n in scheduled))


AGENTS: dict[str, AgentSpec] = {}


def register(spec: AgentSpec) -> None:
  """Adds ``spec`` to ``AGENTS`` under its name (an identifier: it prefixes options)."""
  if not spec.name.isidentifier():
    raise ValueError(f"agent names must be identifiers, got {spec.name!r}")
  AGENTS[spec.name] = spec


def _trainer_agent(name: str, config_cls: type, module) -> AgentSpec:
  """The record of an agent whose ``make_train`` builds a ``trainer.Trainer``."""
  return AgentSpec(name, config_cls, module.make_train, sweepable=tuple(module.SWEEPABLE),
                   trainer=True, supports_mesh=True, reports_progress=True, evaluates=True)


register(_trainer_agent("ppo", ppo.PPOConfig, ppo))
register(_trainer_agent("dqn", dqn.DQNConfig, dqn))
register(_trainer_agent("ddqn", dqn.DDQNConfig, dqn))
register(_trainer_agent("pqn", pqn.PQNConfig, pqn))

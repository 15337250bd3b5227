"""What ``rewardjax train --resume`` keeps of a saved run, and what it may change.

Every checkpoint of a command-line run records the run's arguments
(``args_json``: the top-level options and the chosen agent's config). Resuming
rebuilds them (``args_from_json``) and merges the new command line into them
(``merge``):

* ``OUTPUT_OPTIONS`` (progress bar, loggers, the watchdog, the distributed
  setup, ``--out`` / ``--resume`` themselves) change no result and come from the
  new command line;
* ``CHANGES`` may differ: a longer ``--total-timesteps`` continues the run to
  the new length (schedules such as lr annealing and ε follow the new length
  from the resume point on), and ``--checkpoint-every`` only cuts the run into
  other chunks, which changes no value;
* any other option given again must equal the saved value, else ``merge``
  raises a ``ValueError`` that lists each difference.

An option counts as given when it is on the command line (``given_options``)
or differs from its default.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

from rewardjax.agents.registry import AGENTS

OUTPUT_OPTIONS = ("resume", "out", "overwrite", "progress", "tensorboard", "wandb_project",
                  "stall_timeout", "distributed", "coordinator_address", "num_processes",
                  "process_id")
CHANGES = ("total_timesteps", "checkpoint_every")


def _top_level(args) -> list[str]:
  """The run's own options: every field but the per-agent configs."""
  return [f.name for f in dataclasses.fields(args) if f.name not in AGENTS]


def args_json(args) -> dict:
  """The run's arguments as JSON (the top-level options and the chosen agent's config)."""
  d = {name: getattr(args, name) for name in _top_level(args)}
  d[args.agent] = dataclasses.asdict(getattr(args, args.agent))
  return json.loads(json.dumps(d))


def args_from_json(d: dict, base):
  """Rebuilds the arguments saved by ``args_json`` on top of ``base`` (lists back to tuples).

  Raises ``KeyError`` / ``TypeError`` / ``ValueError`` for a record this version
  cannot read (an unknown agent or option).
  """
  tup = lambda x: tuple(x) if isinstance(x, list) else x
  cfg = AGENTS[d["agent"]].config_cls(**{k: tup(v) for k, v in d[d["agent"]].items()})
  fields = {k: tup(v) for k, v in d.items() if k != d["agent"]}
  return dataclasses.replace(base, **fields, **{d["agent"]: cfg})


def given_options(argv: Sequence[str], args) -> frozenset[str]:
  """The options named in ``argv`` as field paths (``--ppo.no-anneal-lr`` -> ``ppo.anneal_lr``)."""
  known = set(_top_level(args))
  known |= {f"{a}.{f.name}" for a in AGENTS for f in dataclasses.fields(getattr(args, a))}
  names = set()
  for token in argv:
    if not token.startswith("--"):
      continue
    name = token[2:].split("=", 1)[0].replace("-", "_")
    head, dot, last = name.rpartition(".")
    if name not in known and last.startswith("no_"):
      name = f"{head}{dot}{last[3:]}"
    if name in known:
      names.add(name)
  return frozenset(names)


def option(path: str) -> str:
  """``ppo.num_envs`` -> ``--ppo.num-envs``."""
  return "--" + path.replace("_", "-")


def _compared(args, saved) -> list[tuple[str, Any, Any, Any]]:
  """``(path, given value, saved value, default)`` of every option that must match."""
  defaults, agent = type(args)(), saved.agent
  rows = [(n, getattr(args, n), getattr(saved, n), getattr(defaults, n))
          for n in _top_level(args) if n not in OUTPUT_OPTIONS + CHANGES]
  config, saved_config, default_config = (getattr(x, agent) for x in (args, saved, defaults))
  rows += [(f"{agent}.{f.name}", getattr(config, f.name), getattr(saved_config, f.name),
            getattr(default_config, f.name))
           for f in dataclasses.fields(config) if f.name != "total_timesteps"]
  return rows


def conflicts(args, saved, given: frozenset[str] | None) -> list[str]:
  """``--name value (saved run: value)`` for each option given that differs from the saved run."""
  return [f"{option(path)} {value!r} (saved run: {old!r})"
          for path, value, old, default in _compared(args, saved)
          if value != old and ((given is not None and path in given) or value != default)]


def merge(args, saved, given: frozenset[str] | None = None):
  """The saved run's arguments with the new command line's ``OUTPUT_OPTIONS`` and
  ``CHANGES``; ``ValueError`` for any other difference or a shorter run."""
  found = conflicts(args, saved, given)
  if found:
    raise ValueError(
        f"--resume: the saved run was started with other options: {'; '.join(found)}. "
        "Only --total-timesteps (longer), --checkpoint-every and output options may change; "
        "start a new run with another --out to change the others")
  defaults = type(args)()
  changes = {name: getattr(args, name) for name in CHANGES
             if (given is not None and name in given) or
             getattr(args, name) != getattr(defaults, name)}
  total = changes.get("total_timesteps", saved.total_timesteps)
  if total < saved.total_timesteps:
    raise ValueError(f"--resume: --total-timesteps {total} is shorter than the saved run's "
                     f"{saved.total_timesteps}; a resumed run can only be made longer")
  merged = dataclasses.replace(saved, **changes, **{n: getattr(args, n) for n in OUTPUT_OPTIONS})
  config = dataclasses.replace(getattr(saved, saved.agent), total_timesteps=total)
  return dataclasses.replace(merged, out=args.resume, **{saved.agent: config})


def check_record(meta: dict, step: int) -> None:
  """``ValueError`` unless a checkpoint's JSON record holds arguments and names its own step."""
  if not isinstance(meta.get("args"), dict) or "agent" not in meta["args"]:
    raise ValueError("its record holds no saved arguments")
  if meta.get("next_update") != step:
    raise ValueError(f"its record says update {meta.get('next_update')!r}, not {step}")


__all__ = ["CHANGES", "OUTPUT_OPTIONS", "args_from_json", "args_json", "check_record",
           "conflicts", "given_options", "merge", "option"]

"""``make(env_id, **kwargs)``: one entry point for every environment rewardjax knows."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable

# The project's own environments and adapters register factories here:
# ``factory(**kwargs) -> (env, env_params)``.
_CUSTOM: dict[str, Callable[..., tuple[Any, Any]]] = {}
# Families of ids under a prefix (``brax/<name>``): prefix -> (factory(name, **kwargs), names).
_PREFIXES: dict[str, tuple[Callable[..., tuple[Any, Any]], tuple[str, ...]]] = {}


def register(env_id: str, factory: Callable[..., tuple[Any, Any]]) -> None:
  """Registers ``factory(**kwargs) -> (env, env_params)`` under ``env_id``."""
  _CUSTOM[env_id] = factory


def register_prefix(prefix: str, factory: Callable[..., tuple[Any, Any]],
                    names: tuple[str, ...] = ()) -> None:
  """Routes every id ``prefix + name`` to ``factory(name, **kwargs)``.

  ``names`` are listed by ``registered_ids``; the factory itself decides which
  names exist and raises a ``ValueError`` listing them for any other.
  """
  _PREFIXES[prefix] = (factory, tuple(names))


def registered_ids() -> list[str]:
  """Every id ``make`` accepts: gymnax's, the registered ones and the listed prefixed names."""
  import gymnax  # pylint: disable=g-import-not-at-top  (see make)
  prefixed = {p + n for p, (_, names) in _PREFIXES.items() for n in names}
  return sorted(set(gymnax.registered_envs) | set(_CUSTOM) | prefixed)


def _split_kwargs(env_id: str, kwargs: dict) -> tuple[dict, dict]:
  """Splits kwargs into constructor arguments and ``EnvParams`` fields."""
  import gymnax  # pylint: disable=g-import-not-at-top  (see make)
  env, params = gymnax.make(env_id)
  fields = {f.name for f in dataclasses.fields(params)} if dataclasses.is_dataclass(params) else set()
  ctor = {k: v for k, v in kwargs.items() if k not in fields}
  par = {k: v for k, v in kwargs.items() if k in fields}
  del env
  return ctor, par


def make(env_id: str, **kwargs) -> tuple[Any, Any]:
  """Builds an environment and its default parameters.

  Accepts every gymnax id (gymnax 1.0 API: ``step`` returns six values and
  ``info["final_observation"]``) and the ids registered by rewardjax. Keyword
  arguments go to the environment's constructor (``size=`` for DeepSea) or,
  when they name a field of its ``EnvParams`` (``max_steps_in_episode=``), to the
  returned parameters.
  """
  # gymnax builds jnp arrays when imported, which starts the XLA backend: it is
  # imported on first use so that `import rewardjax` leaves the backend unstarted
  # (``jax.distributed.initialize`` must run before the backend starts).
  import gymnax  # pylint: disable=g-import-not-at-top
  if not isinstance(env_id, str):
    raise TypeError(f"env_id must be a string, got {type(env_id).__name__}")
  if env_id in _CUSTOM:
    return _CUSTOM[env_id](**kwargs)
  for prefix, (factory, _) in _PREFIXES.items():
    if env_id.startswith(prefix):
      return factory(env_id[len(prefix):], **kwargs)
  if env_id not in gymnax.registered_envs:
    close = difflib.get_close_matches(env_id, registered_ids(), n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown environment id {env_id!r}.{hint} "
                     f"Known ids: {', '.join(registered_ids())}")
  ctor, par = _split_kwargs(env_id, kwargs)
  try:
    env, params = gymnax.make(env_id, **ctor)
  except TypeError as e:
    raise ValueError(f"{env_id}: bad keyword arguments {sorted(ctor)}: {e}") from e
  if par:
    params = params.replace(**par)
  return env, params

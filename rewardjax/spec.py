"""Reward specs: one string on the command line -> ``combine(...)`` of channels.

    parse_rewards("extrinsic+rnd@coef=0.5", env_id="MountainCar-v0", env=env,
                  env_params=params, gamma=0.99)    # every γ set
    build_rewards(...).channels                     # unset γs left to the agent

Grammar::

    spec    := term ("+" term)*
    term    := kind [":" arg] ["@" option ("," option)*]
    option  := name "=" value

Examples::

    extrinsic
    extrinsic+potential:mountaincar@scale=10
    extrinsic+rnd@coef=0.5,gamma=0.99,learning_rate=3e-4
    extrinsic+counts
    extrinsic+counts@decay=exp:0.001
    extrinsic+progress_counts:mountaincar
    extrinsic+progress_counts:path/to/progress.py
    extrinsic+potential:path/to/progress.py

Each term becomes one channel named after its kind (``potential``,
``potential_2``, ... when a kind repeats; ``name=`` overrides). The channel
options ``coef``, ``gamma``, ``episodic``, ``normalize``, ``name`` and ``decay``
(the coefficient's schedule, ``rewardjax.schedules``: ``exp:κ``,
``linear:φ[:floor]``, ``step:φ[:floor]``) are taken by ``channel(...)``; every
other option goes to the kind's factory. Values are
numbers, ``true``/``false``, bracketed tuples such as ``(64,64)``, or bare
strings, and are checked against the type of the factory's default.

A channel's γ is its term's ``gamma``, else its kind's default (0.99 for the
exploration bonuses), else the agent's: ``build_rewards`` leaves that last
case unset for the agent to resolve from its (possibly swept) ``gamma``, except
where the module needs γ when built (``Kind.takes_gamma``: potential shaping)
or the channel is normalised by its return std; those get the agent's
configured γ and are listed in ``Rewards.fixed_agent_gamma``.

An ``arg`` ending in ``.py`` is a progress-function file, loaded with
``rewardjax.progress.load_file`` and checked on a real observation of the
environment; any other ``arg`` names a function registered in
``rewardjax.progress.REGISTRY``. Without an ``arg``, ``potential`` and
``progress_counts`` use the function registered for the environment, if any.

New kinds are one entry in ``KINDS`` (see ``register_kind``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import os
import re
from typing import Any, Callable, NamedTuple

import jax

from rewardjax import schedules
from rewardjax.rewards.channels import Channel, Channels, channel, combine
from rewardjax.rewards.ensemble import ensemble
from rewardjax.rewards.transforms import dither, normalize_by_return_std, par
from rewardjax.types import RewardModule

# Options every term accepts; they configure the channel, not the reward module.
CHANNEL_OPTIONS = ("coef", "gamma", "episodic", "normalize", "name", "decay")


@dataclasses.dataclass
class Context:
  """What a builder may need to know about the run; the example observation is lazy."""
  env_id: str
  env: Any
  env_params: Any
  gamma: float                     # the agent's discount
  _example_obs: Any = None

  def example_obs(self):
    """One observation from ``env.reset``; progress files are traced on it."""
    if self._example_obs is None:
      self._example_obs, _ = self.env.reset(jax.random.PRNGKey(0), self.env_params)
    return self._example_obs


@dataclasses.dataclass(frozen=True)
class Kind:
  """How to build one kind of term.

  Attributes:
    build: ``(ctx, arg, options, gamma) -> RewardModule``; ``options`` are the
      validated factory options, ``gamma`` the channel's discount when it is
      fixed (by the term, the kind's default, or the agent's configured γ for a
      module that needs one when built), ``None`` when the channel follows the
      agent's γ.
    options: ``() -> {name: Option}``: the factory options a user may set.
      Called lazily so that optional modules are imported only when used.
    arg: ``"none"``, ``"optional"`` or ``"required"``.
    coef, gamma, episodic: channel defaults; ``gamma=None`` is the agent's γ.
    normalize: divide the channel's reward by the running std of its discounted
      return (``intrinsic_channel``'s default for bonuses: makes β irrelevant).
    help: one line for ``--help`` and error messages.
    takes_gamma: the module needs the channel's γ when it is built (potential
      shaping's F = γΦ(s') − Φ(s), RND's return filter), so ``build`` always
      gets a number.
  """
  build: Callable[[Context, str | None, dict, float | None], RewardModule]
  options: Callable[[], dict[str, "Option"]]
  arg: str = "none"
  coef: float = 1.0
  gamma: float | None = None
  episodic: bool = True
  normalize: bool = False
  help: str = ""
  takes_gamma: bool = False


# --------------------------------------------------------------------------- values


def parse_value(text: str) -> Any:
  """``"3"`` -> 3, ``"1e-3"`` -> 0.001, ``"true"`` -> True, ``"(64,64)"`` -> (64, 64); else the string."""
  text = text.strip()
  low = text.lower()
  if low in ("true", "false"):
    return low == "true"
  for conv in (int, float):
    try:
      return conv(text)
    except ValueError:
      pass
  if text[:1] in "([" and text[-1:] in ")]":
    inner = text[1:-1].strip()
    if not inner:
      return ()
    return tuple(parse_value(t) for t in split_top_level(inner, ","))
  return text


def split_top_level(text: str, sep: str) -> list[str]:
  """Splits on ``sep`` outside brackets, so ``hidden=(64,64),coef=1`` has two parts."""
  parts, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in "([":
      depth += 1
    elif ch in ")]":
      depth -= 1
    elif ch == sep and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  parts.append(text[start:])
  return parts


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Option:
  """A factory option a spec may set: its default, and whether a tuple is allowed."""
  default: Any
  sequence: bool = False     # e.g. ``num_bins: int | Sequence[int]``


# Options every term accepts that wrap its module: an ensemble of n copies
# (``ensemble=n``, with ``ensemble_reduce`` and ``ensemble_kappa``), then the
# transforms ``dither=<scale>`` (Gaussian) and ``par=true|<reference>``, applied
# before the return-std normalisation.
WRAPPER_OPTIONS = {"ensemble": Option(0), "ensemble_reduce": Option("mean"),
                   "ensemble_kappa": Option(1.0), "dither": Option(0.0), "par": Option(None)}


def coerce(name: str, value: Any, option: Option) -> Any:
  """Checks ``value`` against the type of the option's default; ``ValueError`` names ``name``."""
  default = option.default

  def fail(expected):
    raise ValueError(f"option {name}: expected {expected}, got {value!r}")

  if isinstance(value, tuple) and (option.sequence or isinstance(default, tuple)):
    example = default[0] if isinstance(default, tuple) and default else default
    return tuple(coerce(name, v, Option(example)) for v in value)
  if isinstance(default, tuple):
    return (coerce(name, value, Option(default[0])),) if default else (value,)
  if isinstance(default, bool):
    if not isinstance(value, bool):
      fail("true or false")
    return value
  if isinstance(default, int):
    if _is_number(value) and float(value).is_integer():
      return int(value)
    fail("an integer")
  if isinstance(default, float):
    if not _is_number(value) or not math.isfinite(value):
      fail("a finite number")
    return float(value)
  if isinstance(default, str):
    return str(value)
  return value   # default None: the factory checks it


# --------------------------------------------------------------------------- kinds

# Annotation words of options a string can set; others (networks, optimisers,
# callables) are left to Python users.
_SIMPLE_TYPES = {"int", "float", "bool", "str", "None", "tuple", "list", "Sequence",
                 "Optional", "typing", "Union"}

# Prefix for factory parameters whose names collide with channel options, e.g.
# ``count_bonus(episodic=...)`` (per-episode counts) is ``counts@module_episodic=true``.
MODULE_PREFIX = "module_"


def _factory_options(factory: Callable, skip: tuple[str, ...] = ()) -> dict[str, Option]:
  """Keyword parameters of ``factory`` that a string can set, by spec name."""
  out = {}
  for p in inspect.signature(factory).parameters.values():
    if p.name in skip or p.default is inspect.Parameter.empty:
      continue
    if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
      continue
    annotation = "" if p.annotation is inspect.Parameter.empty else str(p.annotation)
    words = set(re.findall(r"[A-Za-z_]\w*", annotation))
    if p.default is None and not words <= _SIMPLE_TYPES:
      continue
    if p.default is not None and not isinstance(p.default, (bool, int, float, str, tuple)):
      continue
    name = MODULE_PREFIX + p.name if p.name in CHANNEL_OPTIONS else p.name
    out[name] = Option(p.default, sequence="Sequence" in words or "tuple" in words)
  return out


def _import(kind: str, module: str, attr: str):
  """Imports an optional reward module lazily, with an error that names the kind."""
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"rewards kind {kind!r} needs {module}.{attr}, which is not "
                     f"available in this installation ({e})") from e


def progress_function(ctx: Context, arg: str | None, kind: str):
  """A progress function and its registered spec (``None`` for files) from a term's arg."""
  from rewardjax import progress  # pylint: disable=g-import-not-at-top
  if arg is None:
    # No arg: the function registered for this environment, if there is one.
    for spec in progress.REGISTRY.values():
      if spec.env_id == ctx.env_id:
        return spec.fn, spec
    raise ValueError(
        f"{kind}: no progress function is registered for {ctx.env_id!r}; give one as "
        f"{kind}:<name> (one of {', '.join(sorted(progress.REGISTRY))}) or "
        f"{kind}:<file.py>")
  if arg.endswith(".py"):
    if not os.path.isfile(arg):
      raise ValueError(f"{kind}: progress-function file {arg!r} does not exist")
    return progress.load_file(arg, example_obs=ctx.example_obs()), None
  spec = progress.get(arg)
  return spec.fn, spec


def _build_extrinsic(ctx, arg, options, gamma):
  del ctx, arg, options, gamma
  from rewardjax.rewards.extrinsic import extrinsic  # pylint: disable=g-import-not-at-top
  return extrinsic()


def _build_potential(ctx, arg, options, gamma):
  from rewardjax import progress  # pylint: disable=g-import-not-at-top
  from rewardjax.rewards.shaping import potential_shaping  # pylint: disable=g-import-not-at-top
  fn, spec = progress_function(ctx, arg, "potential")
  # A registered function brings its potential weights (MountainCar: energy only).
  weights = None if spec is None else spec.potential_weights
  # Shaping preserves optimal policies only with the learner's γ for this channel.
  return potential_shaping(progress.potential(fn, weights=weights, **options),
                           gamma=gamma)


def _unprefixed(options: dict) -> dict:
  return {k[len(MODULE_PREFIX):] if k.startswith(MODULE_PREFIX) else k: v
          for k, v in options.items()}


def _module_kind(module: str, attr: str, kind: str, takes_gamma: bool, **fields) -> Kind:
  """A kind whose module is ``factory(**options)`` (plus ``gamma=`` if ``takes_gamma``)."""
  skip = ("gamma",) if takes_gamma else ()

  def options():
    return _factory_options(_import(kind, module, attr), skip=skip)

  def build(ctx, arg, opts, gamma):
    del ctx, arg
    opts = _unprefixed(opts)
    if takes_gamma:
      opts["gamma"] = gamma   # e.g. RND's return filter runs at the channel's γ
    return _import(kind, module, attr)(**opts)

  return Kind(build, options, takes_gamma=takes_gamma, **fields)


def _progress_counts_options():
  factory = _import("progress_counts", "rewardjax.rewards.progress_counts", "progress_counts")
  return _factory_options(factory, skip=("progress_fn",))


def _build_progress_counts(ctx, arg, options, gamma):
  del gamma
  factory = _import("progress_counts", "rewardjax.rewards.progress_counts", "progress_counts")
  fn, spec = progress_function(ctx, arg, "progress_counts")
  options = _unprefixed(options)
  # A registered function knows its components' ranges; use them for binning.
  if spec is not None:
    options.setdefault("low", spec.low)
    options.setdefault("high", spec.high)
  return factory(fn, **options)


def _attention_options():
  factory = _import("attention", "rewardjax.rewards.attention", "attention_redistribution")
  return _factory_options(factory, skip=("num_actions",))


def _build_attention(ctx, arg, options, gamma):
  del arg, gamma
  factory = _import("attention", "rewardjax.rewards.attention", "attention_redistribution")
  options = dict(options)
  space = ctx.env.action_space(ctx.env_params)
  if hasattr(space, "n"):
    options["num_actions"] = int(space.n)
  # Default window: the environment's episode limit, so whole episodes are seen.
  limit = getattr(ctx.env_params, "max_steps_in_episode", None)
  if "max_len" not in options and isinstance(limit, int):
    options["max_len"] = limit
  return factory(**options)


# Kinds that are not exploration bonuses, so not candidates of ``select``.
_NOT_BONUSES = ("select", "product", "extrinsic", "potential", "attention")


def _bonus(ctx, name: str, gamma: float, what: str, also=()) -> RewardModule:
  """The bonus kind ``name`` built with its default options (``what`` and the
  valid names, bonus kinds and ``also``, name the problem in the error)."""
  if name in _NOT_BONUSES or name not in KINDS:
    raise _unknown(what, name, [k for k in KINDS if k not in _NOT_BONUSES] + list(also))
  kind = KINDS[name]
  return kind.build(ctx, None, {}, kind.gamma or gamma)


def _build_select(ctx, arg, options, gamma):
  """``select:a|b|none``: each candidate as its kind builds it with default options,
  normalised by its return std where its kind is (so the bandit compares like with like)."""
  from rewardjax.rewards.select import select  # pylint: disable=g-import-not-at-top
  from rewardjax.rewards.transforms import transform  # pylint: disable=g-import-not-at-top
  candidates = {}
  for name in (n.strip() for n in arg.split("|")):
    if name == "none":
      candidates[name] = None
      continue
    module = _bonus(ctx, name, gamma, "select candidate", also=["none"])
    kind = KINDS[name]
    if kind.normalize:
      module = transform(module, normalize_by_return_std(kind.gamma or gamma,
                                                         episodic=kind.episodic))
    candidates[name] = module
  return select(candidates, **options)


def _build_product(ctx, arg, options, gamma):
  """``product:episodic|global``: the two bonus kinds with default options,
  multiplied (``rewardjax.rewards.product``); the channel normalises the product."""
  from rewardjax.rewards.product import product  # pylint: disable=g-import-not-at-top
  del options
  names = [n.strip() for n in arg.split("|")]
  if len(names) != 2:
    raise ValueError(f"product:{arg}: give two bonus kinds, episodic|global "
                     "(e.g. product:e3b|rnd)")
  return product(*(_bonus(ctx, n, gamma, "product factor") for n in names))


def _action_module_kind(module: str, attr: str, kind: str, **fields) -> Kind:
  """A kind whose factory's ``num_actions`` (if it has one) is the size of a
  discrete action space."""

  def options():
    return _factory_options(_import(kind, module, attr), skip=("num_actions",))

  def build(ctx, arg, opts, gamma):
    del arg, gamma
    opts = _unprefixed(opts)
    factory = _import(kind, module, attr)
    space = ctx.env.action_space(ctx.env_params)
    if hasattr(space, "n") and "num_actions" in inspect.signature(factory).parameters:
      opts["num_actions"] = int(space.n)
    return factory(**opts)

  return Kind(build, options, gamma=0.99, episodic=False, normalize=True, **fields)


# The bonuses beyond RND and counts (rewardjax/rewards/{kind}.py): non-episodic
# channels at γ 0.99, normalised by their return std, as ``counts``.
_ZOO = {
    "icm": "curiosity: forward-model error in an inverse-dynamics feature space",
    "e3b": "elliptical episodic bonus φᵀC⁻¹φ over the episode's features",
    "noveld": "max(n(s') − α·n(s), 0) on first episodic visits, n = RND error",
    "ride": "impact ‖φ(s') − φ(s)‖ over √(episodic count of s')",
    "re3": "log(1 + distance to the k-th nearest neighbour among the same environment's "
           "steps in the batch; neighbours=batch: the whole batch), random encoder",
    "disagreement": "variance across an ensemble of forward models",
    "ngu": "episodic kNN novelty times RND's lifelong factor",
}


KINDS: dict[str, Kind] = {
    "extrinsic": Kind(_build_extrinsic, dict, help="the environment's reward"),
    "potential": Kind(
        _build_potential, lambda: {"scale": Option(1.0)}, arg="optional", takes_gamma=True,
        help="potential-based shaping with Φ = scale·mean(progress); "
             "potential[:<name>|<file.py>]"),
    "rnd": _module_kind(
        "rewardjax.rewards.rnd", "rnd", "rnd", takes_gamma=True, gamma=0.99, episodic=False,
        help="random network distillation bonus (non-episodic)"),
    "counts": _module_kind(
        "rewardjax.rewards.counts", "count_bonus", "counts", takes_gamma=False, gamma=0.99,
        episodic=False, normalize=True,
        help="count bonus β/√N(s) (non-episodic, normalised by its return std)"),
    "progress_counts": Kind(
        _build_progress_counts, _progress_counts_options, arg="optional", gamma=0.99,
        episodic=False, normalize=True,
        help="counts over binned progress (non-episodic, normalised by its return std); "
             "progress_counts[:<name>|<file.py>]"),
    "select": Kind(
        _build_select, lambda: {"every": Option(10), "c": Option(1.0)}, arg="required",
        gamma=0.99, episodic=False, takes_gamma=True,
        help="AIRS: a bandit pays one bonus at a time, chosen by the change of the "
             "extrinsic episode return; select:counts|rnd|none[@every=10,c=1.0]"),
    "product": Kind(
        _build_product, dict, arg="required", gamma=0.99, episodic=False, normalize=True,
        help="an episodic bonus times a global one (Henaff et al. 2023), each with its "
             "defaults; product:e3b|rnd"),
    "attention": Kind(
        _build_attention, _attention_options,
        help="the return redistributed over each finished episode's steps by a learned "
             "attention model (use instead of extrinsic, e.g. with --delay-rewards)"),
    **{name: _action_module_kind(f"rewardjax.rewards.{name}", name, name, help=text)
       for name, text in _ZOO.items()},
}


def register_kind(name: str, kind: Kind) -> None:
  """Adds a term kind (e.g. ``attention``) to the spec grammar."""
  if not name.isidentifier():
    raise ValueError(f"kind names must be identifiers, got {name!r}")
  KINDS[name] = kind


def describe_kinds() -> str:
  """One line per kind, for ``--help``."""
  return "\n".join(f"  {name}: {k.help}" for name, k in KINDS.items())


# --------------------------------------------------------------------------- parsing


@dataclasses.dataclass(frozen=True)
class Term:
  kind: str
  arg: str | None
  options: dict[str, Any]
  text: str


def _unknown(what: str, name: str, valid) -> ValueError:
  valid = sorted(valid)
  close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  return ValueError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(valid) or '(none)'}")


def parse_terms(spec: str) -> list[Term]:
  """Splits a spec into terms (syntax only; kinds and options are checked later)."""
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError("rewards spec is empty; e.g. 'extrinsic' or 'extrinsic+rnd'")
  terms = []
  for text in spec.split("+"):
    text = text.strip()
    if not text:
      raise ValueError(f"rewards spec {spec!r} has an empty term (check the '+' signs)")
    head, at, opts_text = text.partition("@")
    kind, colon, arg = head.partition(":")
    kind, arg = kind.strip(), arg.strip()
    if colon and not arg:
      raise ValueError(f"rewards term {text!r}: nothing after ':'")
    options = {}
    if at:
      for item in split_top_level(opts_text, ","):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name or not value.strip():
          raise ValueError(f"rewards term {text!r}: options are name=value, got {item!r}")
        if name in options:
          raise ValueError(f"rewards term {text!r}: option {name!r} given twice")
        options[name] = parse_value(value)
    terms.append(Term(kind, arg if colon else None, options, text))
  return terms


def _channel_settings(term: Term, kind: Kind, agent_gamma: float) -> tuple[dict, bool]:
  """The term's ``channel(...)`` settings, and whether its γ is the agent's, fixed when built.

  A ``gamma`` option, else the kind's default, fixes the channel's γ. Without
  either the channel follows the agent's γ (``None``: the agent resolves it from
  its ``gamma`` hyperparameter, swept or not), unless the module
  (``Kind.takes_gamma``) or return-std normalisation needs γ when built: then the
  agent's configured γ is fixed into the channel.
  """
  opts = term.options
  coef = coerce("coef", opts.get("coef", kind.coef), Option(1.0))
  gamma = opts.get("gamma", kind.gamma)
  if gamma is not None:
    gamma = coerce("gamma", gamma, Option(1.0))
    if not 0.0 < gamma <= 1.0:
      raise ValueError(f"option gamma: must be in (0, 1], got {gamma}")
  episodic = coerce("episodic", opts.get("episodic", kind.episodic), Option(True))
  normalize = coerce("normalize", opts.get("normalize", kind.normalize), Option(True))
  schedule = opts.get("decay")
  if schedule is not None:
    schedule = schedules.parse(str(schedule))
  fixed_from_agent = gamma is None and (kind.takes_gamma or normalize)
  if fixed_from_agent:
    gamma = agent_gamma
  return ({"coef": coef, "gamma": gamma, "episodic": episodic, "normalize": normalize,
           "schedule": schedule}, fixed_from_agent)


def _factory_settings(term: Term, kind: Kind) -> dict:
  """The term's options that go to the kind's factory, checked and coerced."""
  if kind.arg == "none" and term.arg is not None:
    raise ValueError(f"{term.kind} takes no ':' argument")
  if kind.arg == "required" and term.arg is None:
    raise ValueError(f"{term.kind} needs an argument: {term.kind}:<...>")
  factory_defaults = kind.options()
  factory_opts = {}
  for name, value in term.options.items():
    if name in CHANNEL_OPTIONS or name in WRAPPER_OPTIONS:
      continue
    if name not in factory_defaults:
      raise _unknown("option", name, (*CHANNEL_OPTIONS, *WRAPPER_OPTIONS, *factory_defaults))
    factory_opts[name] = coerce(name, value, factory_defaults[name])
  return factory_opts


def _build_channel(term: Term, ctx: Context) -> tuple[Channel, bool]:
  """One term's channel, and whether it fixed the agent's configured γ (``_channel_settings``)."""
  kind = KINDS[term.kind]
  factory_opts = _factory_settings(term, kind)
  settings, fixed_from_agent = _channel_settings(term, kind, ctx.gamma)
  module, transforms = _wrapped(term, kind.build(ctx, term.arg, factory_opts, settings["gamma"]))
  if settings.pop("normalize"):
    transforms += (normalize_by_return_std(settings["gamma"], episodic=settings["episodic"]),)
  return channel(module, transforms=transforms, **settings), fixed_from_agent


def _wrapped(term: Term, module: RewardModule) -> tuple[RewardModule, tuple]:
  """``module`` as an ensemble if the term asks, and the term's dither/PAR transforms."""
  opts = {name: coerce(name, term.options[name], option)
          for name, option in WRAPPER_OPTIONS.items() if name in term.options}
  if opts.get("ensemble", 0):
    module = ensemble(module, opts["ensemble"], reduce=opts.get("ensemble_reduce", "mean"),
                      kappa=opts.get("ensemble_kappa", 1.0))
  elif "ensemble_reduce" in opts or "ensemble_kappa" in opts:
    raise ValueError(f"rewards term {term.text!r}: ensemble_reduce and ensemble_kappa "
                     "need ensemble=<n>")
  transforms = ()
  if opts.get("dither", 0.0):
    transforms += (dither(opts["dither"]),)
  par_option = opts.get("par", False)
  if par_option is not False:
    if par_option is not True and not _is_number(par_option):
      raise ValueError(f"option par: expected true, false or a reference number, got "
                       f"{par_option!r}")
    transforms += (par(None if par_option is True else float(par_option)),)
  return module, transforms


def _channel_name(term: Term, taken, counts: dict[str, int]) -> str:
  """``name=`` if given, else the kind with ``_2``, ``_3``, ... for repeats (skipping names taken)."""
  name = term.options.get("name")
  if name is not None:
    if not isinstance(name, str) or not name.isidentifier():
      raise ValueError(f"rewards term {term.text!r}: name must be an identifier, got {name!r}")
    if name in taken:
      raise ValueError(f"rewards term {term.text!r}: channel name {name!r} is already used")
    return name
  counts[term.kind] = counts.get(term.kind, 0) + 1
  name = term.kind if counts[term.kind] == 1 else f"{term.kind}_{counts[term.kind]}"
  while name in taken:
    counts[term.kind] += 1
    name = f"{term.kind}_{counts[term.kind]}"
  return name


class Rewards(NamedTuple):
  """What ``build_rewards`` makes of a spec."""
  channels: Channels               # γ ``None`` where a channel follows the agent's γ
  fixed_agent_gamma: tuple[str, ...]   # channels built with the agent's configured γ


def build_rewards(spec: str, *, env_id: str, env, env_params, gamma: float) -> Rewards:
  """Builds the channels that ``spec`` describes, leaving the agent's γ to the agent.

  A channel whose γ is set neither by its term nor by its kind keeps ``gamma=None``,
  so the agent discounts it with its ``gamma`` hyperparameter — a traced sweep
  over ``gamma`` reaches it. A module that needs γ when built (potential shaping,
  return-std normalisation) is built with ``gamma`` instead; such channels are
  named in ``fixed_agent_gamma``, since a γ sweep cannot reach them.

  Args:
    spec: e.g. ``"extrinsic+potential:mountaincar@scale=10"`` (see the module doc).
    env_id, env, env_params: the environment; used to pick its registered
      progress function and to check progress files on a real observation.
    gamma: the agent's configured discount.

  Raises:
    ValueError: on an unknown kind or option, a bad value, or a factory that
      refuses its options; the message names the offending term.
  """
  ctx = Context(env_id, env, env_params, float(gamma))
  channels, fixed, counts = {}, [], {}
  for term in parse_terms(spec):
    if term.kind not in KINDS:
      raise _unknown("rewards kind", term.kind, KINDS)
    try:
      ch, fixed_from_agent = _build_channel(term, ctx)
    except (ValueError, TypeError) as e:
      raise ValueError(f"rewards term {term.text!r}: {e}") from e
    name = _channel_name(term, channels, counts)
    channels[name] = ch
    if fixed_from_agent:
      fixed.append(name)
  return Rewards(combine(**channels), tuple(fixed))


def parse_rewards(spec: str, *, env_id: str, env, env_params, gamma: float) -> Channels:
  """The ``Channels`` that ``spec`` describes, every γ set (``gamma`` where unset).

  For a run at the fixed discount ``gamma``; ``build_rewards`` leaves unset
  discounts to the agent (for γ sweeps). Arguments and errors as ``build_rewards``.
  """
  return build_rewards(spec, env_id=env_id, env=env, env_params=env_params,
                       gamma=gamma).channels.resolve(float(gamma))

"""Tests for reward specs (rewardjax.spec): grammar, defaults, option routing, errors."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rewardjax  # pylint: disable=unused-import  (sets XLA flags before JAX starts)
from rewardjax import envs
from rewardjax import progress
from rewardjax import spec
from rewardjax.rewards.extrinsic import extrinsic
from rewardjax.types import Transition

AGENT_GAMMA = 0.97
PROGRESS_SOURCE = "def progress(obs):\n  return jnp.stack([obs[0], obs[1]])\n"


def parse(text, env_id="MountainCar-v0", gamma=AGENT_GAMMA):
  env, params = envs.make(env_id)
  return spec.parse_rewards(text, env_id=env_id, env=env, env_params=params, gamma=gamma)


def settings(channels):
  return {n: (c, g, e) for n, c, g, e in zip(
      channels.names, channels.coefs, channels.gammas, channels.episodic)}


def mountaincar_batch():
  """A [2] batch of MountainCar transitions, the second one terminal."""
  obs = jnp.array([[-0.5, 0.0], [0.3, 0.02]], jnp.float32)
  next_obs = jnp.array([[-0.4, 0.01], [0.5, 0.03]], jnp.float32)
  return Transition(obs, jnp.zeros(2, jnp.int32), jnp.array([-1.0, -1.0]), next_obs,
                    jnp.array([False, True]), jnp.array([False, False]))


def shaping(phi, batch, gamma):
  phi_s = jax.vmap(phi)(batch.obs)
  phi_next = jax.vmap(phi)(batch.next_obs)
  return gamma * phi_next * (1.0 - batch.terminated) - phi_s


def reward_of(channels, batch, c):
  state = channels.init(jax.random.PRNGKey(0), batch)
  return np.asarray(channels.reward(state, batch))[..., c]


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2", -2), ("1e-3", 1e-3), ("0.5", 0.5), ("true", True), ("False", False),
    ("(64,64)", (64, 64)), ("[1, 2.5]", (1, 2.5)), ("()", ()), ("simhash", "simhash"),
])
def test_parse_value(text, value):
  assert spec.parse_value(text) == value
  assert type(spec.parse_value(text)) is type(value)


def test_parse_terms_splits_kind_arg_and_options():
  terms = spec.parse_terms("extrinsic + potential:mountaincar@scale=10,coef=2 + rnd@hidden=(8,8),gamma=0.9")
  assert [t.kind for t in terms] == ["extrinsic", "potential", "rnd"]
  assert [t.arg for t in terms] == [None, "mountaincar", None]
  assert terms[1].options == {"scale": 10, "coef": 2}
  assert terms[2].options == {"hidden": (8, 8), "gamma": 0.9}
  assert spec.parse_terms("potential:path/to/file.py@scale=2")[0].arg == "path/to/file.py"


# --------------------------------------------------------------------------- defaults


def test_extrinsic_uses_agent_gamma():
  channels = parse("extrinsic")
  assert settings(channels) == {"extrinsic": (1.0, AGENT_GAMMA, True)}


def test_extrinsic_channel_options():
  channels = parse("extrinsic@coef=2,gamma=0.999,episodic=false")
  assert settings(channels) == {"extrinsic": (2.0, 0.999, False)}


def test_potential_registered_name_with_scale():
  channels = parse("extrinsic+potential:mountaincar@scale=10")
  assert channels.names == ("extrinsic", "potential")
  assert settings(channels)["potential"] == (1.0, AGENT_GAMMA, True)
  batch = mountaincar_batch()
  phi = progress.potential("mountaincar", 10.0)
  np.testing.assert_allclose(reward_of(channels, batch, 1), shaping(phi, batch, AGENT_GAMMA),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(reward_of(channels, batch, 0), batch.reward)


def test_potential_gamma_option_sets_shaping_gamma():
  channels = parse("potential:mountaincar@gamma=0.9")
  assert settings(channels) == {"potential": (1.0, 0.9, True)}
  batch = mountaincar_batch()
  phi = progress.potential("mountaincar", 1.0)
  np.testing.assert_allclose(reward_of(channels, batch, 0), shaping(phi, batch, 0.9),
                             rtol=1e-5, atol=1e-6)


def test_potential_without_arg_uses_the_env_registered_function():
  batch = mountaincar_batch()
  np.testing.assert_allclose(reward_of(parse("potential"), batch, 0),
                             reward_of(parse("potential:mountaincar"), batch, 0))


def test_repeated_kinds_get_suffixes_and_name_overrides():
  channels = parse("potential:mountaincar+potential:cartpole+potential@name=energy")
  assert channels.names == ("potential", "potential_2", "energy")
  channels = parse("extrinsic@name=potential_2+potential+potential")
  assert channels.names == ("potential_2", "potential", "potential_3")


# --------------------------------------------------------------------------- routing


def _spy_kind(calls):
  def factory(beta: float = 0.01, hidden: tuple = (32, 32), num_bins: int = 10,
              mode: str = "a", table_size: int | None = None, gamma: float = 0.99,
              episodic: bool = False, network: object = None):
    calls.append(dict(beta=beta, hidden=hidden, num_bins=num_bins, mode=mode,
                      table_size=table_size, gamma=gamma, episodic=episodic,
                      network=network))
    return extrinsic()

  def build(ctx, arg, options, gamma):
    del ctx, arg
    options = spec._unprefixed(options)  # pylint: disable=protected-access
    return factory(gamma=gamma, **options)

  return spec.Kind(build, lambda: spec._factory_options(factory, skip=("gamma",)),  # pylint: disable=protected-access
                   gamma=0.99, episodic=False, help="test kind")


@pytest.fixture
def spy(monkeypatch):
  calls = []
  monkeypatch.setitem(spec.KINDS, "spy", _spy_kind(calls))
  return calls


def test_options_are_routed_to_channel_and_factory(spy):
  channels = parse("extrinsic+spy@coef=0.5,gamma=0.95,beta=0.2,hidden=(8,16),num_bins=4,"
                   "mode=b,table_size=100,module_episodic=true")
  assert settings(channels)["spy"] == (0.5, 0.95, False)
  assert spy == [dict(beta=0.2, hidden=(8, 16), num_bins=4, mode="b", table_size=100,
                      gamma=0.95, episodic=True, network=None)]


def test_factory_options_are_coerced_to_the_default_type(spy):
  parse("spy@beta=1,hidden=64,num_bins=1e2")
  assert spy[-1]["beta"] == 1.0 and isinstance(spy[-1]["beta"], float)
  assert spy[-1]["hidden"] == (64,)
  assert spy[-1]["num_bins"] == 100 and isinstance(spy[-1]["num_bins"], int)


def test_unsettable_and_colliding_options_are_not_offered(spy):
  del spy
  options = spec.KINDS["spy"].options()
  assert "network" not in options            # a module cannot be written in a spec
  assert "episodic" not in options and "module_episodic" in options
  assert "gamma" not in options              # routed from the channel's γ


def test_register_kind():
  kind = spec.Kind(lambda ctx, arg, options, gamma: extrinsic(), dict, help="x")
  try:
    spec.register_kind("attention_test", kind)
    assert parse("attention_test").names == ("attention_test",)
  finally:
    spec.KINDS.pop("attention_test", None)
  with pytest.raises(ValueError, match="identifier"):
    spec.register_kind("bad-name", kind)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, match", [
    ("extrinsic+rndd", r"unknown rewards kind 'rndd'.*Did you mean: rnd.*Valid: .*extrinsic"),
    ("extrinsic@scale=2", r"unknown option 'scale'.*Valid: coef, decay, dither, ensemble, ensemble_kappa, ensemble_reduce, episodic, gamma, name, normalize, par"),
    ("potential:mountaincar@scael=2", r"Did you mean: scale"),
    ("extrinsic@coef=abc", r"coef: expected a finite number, got 'abc'"),
    ("potential:mountaincar@scale=nan", r"scale: expected a finite number"),
    ("extrinsic@gamma=1.5", r"gamma: must be in \(0, 1\]"),
    ("extrinsic@episodic=1", r"episodic: expected true or false"),
    ("extrinsic@coef=1,coef=2", r"given twice"),
    ("extrinsic@coef", r"options are name=value"),
    ("extrinsic+", r"empty term"),
    ("", r"empty"),
    ("extrinsic:foo", r"takes no ':' argument"),
    ("potential:", r"nothing after ':'"),
    ("potential:nosuchfn", r"unknown progress function 'nosuchfn'"),
    ("potential:missing_file.py", r"does not exist"),
    ("extrinsic+extrinsic@name=extrinsic", r"already used"),
])
def test_errors(text, match):
  with pytest.raises(ValueError, match=match):
    parse(text)


def test_error_names_the_term():
  with pytest.raises(ValueError, match=r"rewards term 'potential:mountaincar@scale=x'"):
    parse("extrinsic+potential:mountaincar@scale=x")


def test_potential_without_registered_function_for_env():
  with pytest.raises(ValueError, match="no progress function is registered for 'Acrobot-v1'"):
    parse("potential", env_id="Acrobot-v1")


# --------------------------------------------------------------------------- other modules


def test_rnd_defaults_and_options():
  pytest.importorskip("rewardjax.rewards.rnd")
  channels = parse("extrinsic+rnd")
  assert settings(channels)["rnd"] == (1.0, 0.99, False)
  channels = parse("extrinsic+rnd@coef=0.5,gamma=0.95,learning_rate=3e-4,output_dim=16")
  assert settings(channels)["rnd"] == (0.5, 0.95, False)
  options = spec.KINDS["rnd"].options()
  assert {"learning_rate", "update_proportion"} <= set(options)
  assert "target_network" not in options and "gamma" not in options
  with pytest.raises(ValueError, match=r"unknown option 'lr'.*learning_rate"):
    parse("rnd@lr=1")


def test_counts_defaults():
  pytest.importorskip("rewardjax.rewards.counts")
  channels = parse("extrinsic+counts@beta=0.1,coef=2")
  assert settings(channels)["counts"] == (2.0, 0.99, False)


def test_product_multiplies_two_bonus_kinds_built_with_their_defaults():
  from rewardjax.rewards.counts import count_bonus  # pylint: disable=g-import-not-at-top
  from rewardjax.rewards.product import product  # pylint: disable=g-import-not-at-top
  channels = parse("extrinsic+product:counts|counts@normalize=false")
  assert settings(channels)["product"] == (1.0, 0.99, False)
  assert spec.KINDS["product"].normalize          # by default the channel normalises
  batch = mountaincar_batch()
  ref = product(count_bonus(), count_bonus())
  key = jax.random.PRNGKey(0)
  state, ref_state = channels.init(key, batch), ref.init(key, batch)
  for _ in range(2):                               # each cell counted once, then twice
    r, state, _ = channels.reward_and_update(state, batch, key)
    r_ref, ref_state, _ = ref.reward_and_update(ref_state, batch, key)
    np.testing.assert_allclose(np.asarray(r)[..., 1], r_ref, rtol=1e-6)
  beta = inspect.signature(count_bonus).parameters["beta"].default
  np.testing.assert_allclose(r_ref, (beta / math.sqrt(2)) ** 2, rtol=1e-6)
  with pytest.raises(ValueError, match="two bonus kinds"):
    parse("product:counts")
  with pytest.raises(ValueError, match="unknown product factor 'select'"):
    parse("product:counts|select")


def test_progress_counts_defaults_and_registered_ranges():
  pytest.importorskip("rewardjax.rewards.progress_counts")
  channels = parse("extrinsic+progress_counts:mountaincar@num_bins=(4,8)")
  assert settings(channels)["progress_counts"] == (1.0, 0.99, False)
  assert parse("progress_counts").names == ("progress_counts",)


def _write_progress(tmp_path, source=PROGRESS_SOURCE):
  path = tmp_path / "progress_fn.py"
  path.write_text(source)
  return str(path)


# The brief's example progress is raw position/velocity, outside [0, 1]: progress.load warns.
@pytest.mark.filterwarnings("ignore:progress function")
def test_potential_from_file(tmp_path):
  pytest.importorskip("rewardjax.progress")
  path = _write_progress(tmp_path)
  channels = parse(f"extrinsic+potential:{path}@scale=2")
  assert channels.names == ("extrinsic", "potential")
  batch = mountaincar_batch()
  phi = lambda obs: 2.0 * jnp.mean(jnp.stack([obs[0], obs[1]]))
  np.testing.assert_allclose(reward_of(channels, batch, 1), shaping(phi, batch, AGENT_GAMMA),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:progress function")
def test_progress_counts_from_file(tmp_path):
  pytest.importorskip("rewardjax.progress")
  pytest.importorskip("rewardjax.rewards.progress_counts")
  path = _write_progress(tmp_path)
  channels = parse(f"extrinsic+progress_counts:{path}@low=(-1.2,-0.07),high=(0.6,0.07)")
  assert settings(channels)["progress_counts"] == (1.0, 0.99, False)


def test_bad_progress_file_is_rejected(tmp_path):
  pytest.importorskip("rewardjax.progress")
  path = _write_progress(tmp_path, "import os\ndef progress(obs):\n  return obs\n")
  with pytest.raises(ValueError, match=r"rewards term 'potential:.*progress_fn\.py'"):
    parse(f"potential:{path}")


def test_nan_progress_file_is_rejected_on_a_real_observation(tmp_path):
  pytest.importorskip("rewardjax.progress")
  path = _write_progress(tmp_path, "def progress(obs):\n  return jnp.stack([obs[0] * jnp.nan])\n")
  with pytest.raises(ValueError):
    parse(f"potential:{path}")


def test_builders_import_optional_modules_lazily():
  # spec.py must import without rnd/counts/progress present; only builders import them.
  source = inspect.getsource(spec)
  header = source[:source.index("CHANNEL_OPTIONS")]
  for module in ("rnd", "counts", "progress_counts", "rewardjax.progress"):
    assert f"import {module}" not in header and f"{module} import" not in header

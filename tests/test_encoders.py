"""Observation encoders: shapes, the automatic choice, the tile embedding's lookup, PPO on grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import rewardjax as rjx
from rewardjax import encoders
from rewardjax.agents import dqn, ppo, pqn
from rewardjax.nets import DiscreteActorCritic

pytest.importorskip("xminigrid")


def _space(env_id, **kwargs):
  env, params = rjx.envs.make(env_id, **kwargs)
  return env.observation_space(params)


@pytest.mark.parametrize("env_id, name, kind", [
    ("xminigrid/MiniGrid-DoorKey-8x8", "tiles", encoders.TileEmbedding),
    ("xminigrid/MiniGrid-MemoryS8", "tiles", encoders.TileEmbedding),
    ("Breakout-MinAtar", "cnn", encoders.ConvEncoder),
    ("SpaceInvaders-MinAtar", "cnn", encoders.ConvEncoder),
    ("CartPole-v1", "flat", encoders.Flatten),
    ("DeepSea-bsuite", "flat", encoders.Flatten),
])
def test_auto_picks_from_shape_and_dtype(env_id, name, kind):
  space = _space(env_id)
  assert encoders.auto_name(space) == name
  assert isinstance(encoders.encoder_for("auto", space), kind)


@pytest.mark.parametrize("name, shape, dtype, width", [
    ("flat", (4,), jnp.float32, 4),
    ("flat", (3, 5), jnp.float32, 15),
    ("cnn", (10, 10, 4), jnp.bool_, 8 * 8 * 16),                # 3×3 VALID, 16 channels
    ("tiles", (7, 7, 2), jnp.uint8, 7 * 7 * 2 * 16),           # 16 per channel, flattened
])
def test_output_shapes(name, shape, dtype, width):
  space = spaces.Box(0, 1 if dtype != jnp.uint8 else 9, shape, dtype)
  enc = encoders.encoder_for(name, space)
  x = jnp.zeros((3, 2) + shape, dtype)                          # two leading axes
  params = enc.init(jax.random.PRNGKey(0), x)
  out = enc.apply(params, x)
  assert out.shape == (3, 2, width) and out.dtype == jnp.float32


def test_tile_embedding_conv_variant_shape():
  enc = encoders.TileEmbedding(num_ids=(13, 12), features=16, conv_features=(16, 32, 64))
  x = jnp.zeros((5, 7, 7, 2), jnp.uint8)
  out = enc.apply(enc.init(jax.random.PRNGKey(0), x), x)
  assert out.shape == (5, 4 * 4 * 64)                          # three 2×2 VALID convs: 7→4


def test_tile_embedding_is_the_lookup_of_its_tables():
  space = _space("xminigrid/MiniGrid-DoorKey-8x8")
  enc = encoders.encoder_for("tiles", space)
  assert tuple(enc.num_ids) == (13, 12)                          # xminigrid's tiles and colours
  rng = np.random.default_rng(0)
  grid = np.stack([rng.integers(0, 13, (4, 7, 7)), rng.integers(0, 12, (4, 7, 7))],
                  -1).astype(np.uint8)
  params = enc.init(jax.random.PRNGKey(1), jnp.asarray(grid))
  out = np.asarray(enc.apply(params, jnp.asarray(grid)))
  e0 = np.asarray(params["params"]["embed_0"]["embedding"])      # [13, 16]
  e1 = np.asarray(params["params"]["embed_1"]["embedding"])      # [12, 16]
  by_hand = np.concatenate([e0[grid[..., 0]], e1[grid[..., 1]]], -1).reshape(4, -1)
  np.testing.assert_array_equal(out, by_hand)


def test_cnn_is_equivariant_to_translation_away_from_the_border():
  enc = encoders.ConvEncoder()
  x = np.zeros((1, 10, 10, 4), np.float32)
  x[0, 3, 4, 1] = 1.0
  shifted = np.roll(x, 1, axis=2)
  params = enc.init(jax.random.PRNGKey(0), jnp.asarray(x))
  f = lambda v: np.asarray(enc.apply(params, jnp.asarray(v))).reshape(8, 8, 16)
  np.testing.assert_allclose(np.roll(f(x), 1, axis=1), f(shifted), atol=1e-6)


def test_bad_names_and_misfits_are_named_early():
  float_grid = spaces.Box(0.0, 1.0, (7, 7, 2), jnp.float32)
  with pytest.raises(ValueError, match="unknown encoder 'conv'"):
    encoders.encoder_for("conv", float_grid)
  with pytest.raises(ValueError, match="'tiles' needs integer observations"):
    encoders.encoder_for("tiles", float_grid)
  with pytest.raises(ValueError, match=r"'cnn' needs \[H, W, C\] observations"):
    encoders.encoder_for("cnn", spaces.Box(0.0, 1.0, (4,), jnp.float32))
  with pytest.raises(ValueError, match="encoder must be one of"):
    ppo.PPOConfig(encoder="resnet")
  with pytest.raises(ValueError, match="encoder must be one of"):
    pqn.PQNConfig(encoder="resnet")
  with pytest.raises(ValueError, match="encoder must be one of"):
    dqn.DQNConfig(encoder="resnet")
  env, params = rjx.envs.make("xminigrid/MiniGrid-Empty-5x5")
  with pytest.raises(ValueError, match="'tiles' reads integer tile ids, but normalize_obs"):
    ppo.make_train(ppo.PPOConfig(encoder="tiles", normalize_observations=True), env, params)
  with pytest.raises(ValueError, match="'tiles' needs integer observations"):
    ppo.make_train(ppo.PPOConfig(encoder="tiles"), *rjx.envs.make("Breakout-MinAtar"))


def test_flat_and_1d_auto_leave_the_network_without_an_encoder():
  assert encoders.network_encoder("auto", _space("CartPole-v1")) is None
  assert encoders.network_encoder("flat", _space("xminigrid/MiniGrid-Empty-5x5")) is None
  # normalised observations are floats: auto falls back to the CNN for grids
  assert isinstance(encoders.network_encoder("auto", _space("xminigrid/MiniGrid-Empty-5x5"), True),
                    encoders.ConvEncoder)


def test_actor_and_critic_share_the_encoder():
  net = DiscreteActorCritic(num_actions=6, num_channels=2, hidden_sizes=(8,),
                            encoder=encoders.TileEmbedding(num_ids=(13, 12), features=4))
  x = jnp.ones((3, 7, 7, 2), jnp.uint8)
  params = net.init(jax.random.PRNGKey(0), x)
  assert set(params["params"]) == {"encoder", "actor", "critic"}
  logits, values = net.apply(params, x)
  assert logits.shape == (3, 6) and values.shape == (3, 2)
  np.testing.assert_array_equal(net.apply(params, x, method=DiscreteActorCritic.policy), logits)


@pytest.mark.parametrize("env_id", ["xminigrid/MiniGrid-Empty-5x5", "Breakout-MinAtar"])
def test_ppo_trains_on_grids_and_images_without_nan(env_id):
  env, params = rjx.envs.make(env_id)
  cfg = ppo.PPOConfig(total_timesteps=8 * 32 * 3, num_envs=8, num_steps=32, hidden_sizes=(32,))
  out = jax.jit(ppo.make_train(cfg, env, params))(jax.random.PRNGKey(0))
  for name in ("value_loss", "policy_loss", "entropy"):
    assert np.isfinite(np.asarray(out.metrics[name])).all(), name

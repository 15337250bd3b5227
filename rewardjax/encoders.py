"""Observation encoders: flax modules mapping ``[..., *obs_shape]`` to features ``[..., F]``.

* ``Flatten``: the observation's values as one float vector (what the MLPs do
  on their own).
* ``TileEmbedding``: for integer grids ``[H, W, C]`` whose channels hold ids
  (xminigrid's ``[7, 7, 2]`` view of (tile, colour)): one learned embedding
  table per channel, the cell's embeddings concatenated, then flattened, or
  passed through small 2×2 convolutions first, as XLand-MiniGrid's baselines
  do (Nikulin et al. 2023).
* ``ConvEncoder``: a small CNN for float / boolean images ``[H, W, C]`` (the
  MinAtar network of Young & Tian 2019: one 3×3 convolution with 16 channels).

``encoder_for(name, obs_space)`` builds one by name and checks it fits the
observation space; ``"auto"`` picks from the space's shape and dtype.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ENCODERS = ("auto", "flat", "tiles", "cnn")
MAX_TILE_IDS = 4096          # larger integer ranges are not ids: use "flat" or "cnn"


class Flatten(nn.Module):
  """``[..., *obs_shape] -> [..., prod(obs_shape)]`` as float32."""
  obs_ndim: int = 1

  @nn.compact
  def __call__(self, x):
    lead = x.shape[:x.ndim - self.obs_ndim]
    return jnp.reshape(x, lead + (-1,)).astype(jnp.float32)


def _conv_stack(x, features: Sequence[int], kernel: int):
  """ReLU convolutions (VALID padding) over ``[..., H, W, C]``, then flattened."""
  lead = x.shape[:-3]
  x = x.reshape((-1,) + x.shape[-3:])
  for f in features:
    x = nn.relu(nn.Conv(f, (kernel, kernel), padding="VALID",
                        kernel_init=nn.initializers.orthogonal(np.sqrt(2)),
                        bias_init=nn.initializers.zeros)(x))
  return x.reshape(lead + (-1,))


class TileEmbedding(nn.Module):
  """Per-channel learned embeddings of an integer grid ``[..., H, W, C]``.

  Channel ``c`` of a cell holds an id in ``[0, num_ids[c])``; its embedding
  ``E_c[id] ∈ R^features`` comes from table ``E_c`` (``embed_c``). The cell's
  feature is ``concat_c E_c[x_c]`` (``C · features`` wide). With
  ``conv_features`` empty the grid of cell features is flattened
  (``H · W · C · features``); otherwise ReLU 2×2 convolutions with those widths
  run first (XLand-MiniGrid's baseline uses 16, 32, 64).
  """
  num_ids: Sequence[int]
  features: int = 16
  conv_features: Sequence[int] = ()

  @nn.compact
  def __call__(self, x):
    if x.shape[-1] != len(self.num_ids):
      raise ValueError(f"TileEmbedding: observations have {x.shape[-1]} channels, "
                       f"num_ids names {len(self.num_ids)}")
    ids = x.astype(jnp.int32)
    cells = jnp.concatenate(
        [nn.Embed(int(n), self.features, name=f"embed_{c}")(ids[..., c])
         for c, n in enumerate(self.num_ids)], axis=-1)          # [..., H, W, C·features]
    if self.conv_features:
      return _conv_stack(cells, self.conv_features, 2)
    return cells.reshape(x.shape[:-3] + (-1,))


class ConvEncoder(nn.Module):
  """ReLU convolutions over a float / boolean image ``[..., H, W, C]``, flattened.

  The default, one 3×3 convolution with 16 channels (VALID padding), is the
  MinAtar network's torso (Young & Tian 2019).
  """
  features: Sequence[int] = (16,)
  kernel: int = 3

  @nn.compact
  def __call__(self, x):
    return _conv_stack(x.astype(jnp.float32), self.features, self.kernel)


def _is_integer(dtype) -> bool:
  return jnp.issubdtype(jnp.dtype(dtype), jnp.integer)


def _tile_ids(obs_space) -> tuple[int, ...]:
  """Ids per channel of an integer ``Box``: ``max(high[..., c]) + 1``."""
  if np.any(np.asarray(obs_space.low) < 0):
    raise ValueError("encoder 'tiles' needs non-negative integer ids; this observation space "
                     f"has low {np.min(obs_space.low)}")
  high = np.broadcast_to(np.asarray(obs_space.high), obs_space.shape)
  num_ids = tuple(int(np.max(high[..., c])) + 1 for c in range(obs_space.shape[-1]))
  if max(num_ids) > MAX_TILE_IDS:
    raise ValueError(f"encoder 'tiles': a channel has {max(num_ids)} ids (> {MAX_TILE_IDS}); "
                     "these are not tile ids: use encoder 'flat' or 'cnn'")
  return num_ids


def auto_name(obs_space) -> str:
  """``"tiles"`` for rank-3 integer spaces, ``"cnn"`` for other rank-3 ones, else ``"flat"``."""
  if len(tuple(obs_space.shape)) != 3:
    return "flat"
  return "tiles" if _is_integer(obs_space.dtype) else "cnn"


def encoder_for(name: str, obs_space, tile_features: int = 16) -> nn.Module:
  """The encoder ``name`` (one of ``ENCODERS``) for observations of ``obs_space``.

  Raises a ``ValueError`` naming the problem when the encoder does not fit:
  ``"tiles"`` needs a rank-3 ``Box`` of non-negative integers, ``"cnn"`` a
  rank-3 one.
  """
  if name not in ENCODERS:
    raise ValueError(f"unknown encoder {name!r}; choose one of {ENCODERS}")
  shape = tuple(obs_space.shape)
  if name == "auto":
    name = auto_name(obs_space)
  if name == "flat":
    return Flatten(obs_ndim=len(shape))
  if len(shape) != 3:
    raise ValueError(f"encoder {name!r} needs [H, W, C] observations; this space has shape {shape}")
  if name == "tiles":
    if not _is_integer(obs_space.dtype):
      raise ValueError(f"encoder 'tiles' needs integer observations (tile ids); this space has "
                       f"dtype {jnp.dtype(obs_space.dtype).name}: use 'cnn' or 'flat'")
    return TileEmbedding(num_ids=_tile_ids(obs_space), features=tile_features)
  return ConvEncoder()



def check_name(name: str) -> None:
  """A named error unless ``name`` is one of ``ENCODERS`` (for config validation)."""
  if name not in ENCODERS:
    raise ValueError(f"encoder must be one of {ENCODERS}, got {name!r}")


def network_encoder(name: str, obs_space, normalized: bool = False) -> nn.Module | None:
  """The encoder an agent's network takes: ``None`` where it resolves to ``"flat"``.

  The networks of ``rewardjax.nets`` flatten observations themselves, so
  ``"flat"`` (and ``"auto"`` on anything but ``[H, W, C]``) leaves them, and
  the compiled program, exactly as without an encoder. ``normalized``: the agent
  standardises observations into floats first, so ``"auto"`` picks ``"cnn"``
  for integer grids and ``"tiles"`` is an error.
  """
  check_name(name)
  resolved = auto_name(obs_space) if name == "auto" else name
  if resolved == "tiles" and normalized:
    if name == "auto":
      resolved = "cnn"
    else:
      raise ValueError("encoder 'tiles' reads integer tile ids, but normalize_observations turns "
                       "observations into standardised floats: turn one of them off")
  return None if resolved == "flat" else encoder_for(resolved, obs_space)

"""What a task's model reads per video, and where the task's data come from.

A model's entity encoder reads one kind of input (`aloe.models.entities`):

- latents (`LATENTS`): float32 `[frames, K, d]` per video in the store at
  `data.root`, held in memory; K = `data.num_slots`, d = `model.latent_dim`;
- frames (`FRAMES`): uint8 `[frames, S, S, 3]` per video in a frame store
  (`aloe.data.frame_store`) at `data.frames_root`, S = `data.frame_size`, read
  batch by batch (a split's frames are too large to hold). The encoder's
  entities per frame take the place of the slots, so `data.num_slots` must
  equal them, and the slot axis of a batch is an image axis: slot permutation
  (`train.permute_slots`, `eval.shuffle_objects`) must be off.

`video_inputs` checks a config against its model and returns a `VideoInputs`
that the tasks read instead of asking which kind it is.
"""

import dataclasses
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from aloe.models import entities


@dataclasses.dataclass(frozen=True)
class VideoInputs:
    """The per-video input of a model and its store.

    Attributes:
      kind: `entities.LATENTS` or `entities.FRAMES`.
      root_field: the `config.data` field of the store's root.
      root: that root.
      dtype: of the stored arrays (float32 latents, uint8 frames).
      frame_shape: one frame's array: `(K, d)` or `(S, S, 3)`.
      num_slots: entities per frame (K, or the encoder's for frames).
      preload: hold a split's arrays in memory (latents) or read each batch's.
    """
    kind: str
    root_field: str
    root: str
    dtype: np.dtype
    frame_shape: tuple[int, ...]
    num_slots: int
    preload: bool

    def example(self, num_frames: int) -> jnp.ndarray:
        """Zeros `[1, num_frames, *frame_shape]` of the stored dtype (for parameter init)."""
        return jnp.zeros((1, num_frames, *self.frame_shape), self.dtype)

    def entity_grid(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """`(B, T, K)` of the entities of a batch of inputs of `shape`."""
        return shape[0], shape[1], self.num_slots

    def shape_checks(self) -> dict[str, int]:
        """The shape arguments of `aloe.data.cater_latents.CaterLatentData` for this store."""
        if self.kind == entities.FRAMES:
            return {"frame_size": self.frame_shape[0]}
        return {"num_slots": self.frame_shape[0], "latent_dim": self.frame_shape[1]}

    def check_array(self, path: str, shape: tuple[int, ...]) -> None:
        """Raises a ValueError naming `path` when a video's array is not `[frames, *frame_shape]`."""
        if tuple(shape[1:]) == self.frame_shape and len(shape) == 1 + len(self.frame_shape):
            return
        if self.kind == entities.FRAMES:
            size = self.frame_shape[0]
            raise ValueError(f"{path}: frames must be [frames, {size}, {size}, 3] "
                             f"(config.data.frame_size = {size}), got shape {shape}.")
        if len(shape) != 3:
            raise ValueError(f"{path}: latents must be [frames, slots, d], got shape {shape}.")
        raise ValueError(f"{path}: latents have {shape[1]} slots of size {shape[2]}, but "
                         f"config.data.num_slots = {self.frame_shape[0]} and "
                         f"config.model.latent_dim = {self.frame_shape[1]}.")


def _check_frames_config(config: ml_collections.ConfigDict, model) -> int:
    """Entities per frame of a frame-reading model; errors name the fix."""
    d = config.data
    if config.train.permute_slots:
        raise ValueError("The model reads frames, whose slot axis is an image axis: set "
                         "--config.train.permute_slots=False.")
    if config.get("eval", {}).get("shuffle_objects", False):
        raise ValueError("config.eval.shuffle_objects permutes object slots; the model reads "
                         "frames, whose slot axis is an image axis: turn it off.")
    if not d.get("frame_size"):
        raise ValueError("The model reads frames: set config.data.frame_size (frames are "
                         "frame_size x frame_size).")
    slots = model.entities_per_frame((d.frame_size, d.frame_size, 3))
    if d.num_slots != slots:
        raise ValueError(f"config.data.num_slots = {d.num_slots}, but the ResNet gives {slots} "
                         f"entities per {d.frame_size}x{d.frame_size} frame: set "
                         f"--config.data.num_slots={slots}.")
    return slots


def video_inputs(config: ml_collections.ConfigDict, model, *,
                 store: str = "latent") -> VideoInputs:
    """The inputs `model` reads, checked against `config`.

    Args:
      config: the experiment config (`data.*`, `model.latent_dim`,
        `train.permute_slots`, `eval.shuffle_objects`).
      model: an ALOE model (`input_kind()`, `entities_per_frame(frame_shape)`,
        both usable unbound).
      store: what a latent store is called in the error messages ("latent",
        "CATER latent").

    Raises:
      ValueError: the store's root field is empty, or the config cannot feed
        frames to the model (the message names the fix).
      FileNotFoundError: the root is not a directory.
    """
    d = config.data
    kind = model.input_kind()
    if kind == entities.FRAMES:
        slots = _check_frames_config(config, model)
        field, shape, dtype = "frames_root", (d.frame_size, d.frame_size, 3), np.dtype(np.uint8)
        hint = "a frame store ({frames_root}/{split}/...; python -m aloe.data.frame_store writes one)"
    else:
        slots = d.num_slots
        field, shape, dtype = "root", (d.num_slots, config.model.latent_dim), np.dtype(np.float32)
        hint = f"the {store} store's root"
    root = d.get(field)
    if not root:
        raise ValueError(f"config.data.{field} is empty: set it to {hint} "
                         f"(--config.data.{field}=DIR).")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"config.data.{field} = {root!r} is not a directory.")
    return VideoInputs(kind, field, root, dtype, shape, slots, preload=kind == entities.LATENTS)

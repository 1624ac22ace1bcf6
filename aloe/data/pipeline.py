"""tf.data pipelines over the video datasets (`clevrer`, `cater`): frames as NumPy batches.

Every pipeline reads a prepared TFDS builder (`aloe.data.clevrer.Clevrer`,
`aloe.data.cater.Cater`), keeps the video frames PNG-encoded
(`tfds.decode.SkipDecoding`) and decodes only the frames it uses, and yields
NumPy through `tfds.as_numpy`. Frames are float32 in [0, 1]. The pipelines
know nothing of any model.

  * `extraction_videos`: every frame of every video of a split, in the stored
    order, one video at a time: `video` `[T, H, W, 3]` plus the video's ids.
  * `video_batches`: `num_frames` frames per video (25 for CLEVRER, 80 for
    CATER): `frames` `[B, num_frames, H, W, 3]`, `frame_indices`
    `[B, num_frames]` plus the ids. Training draws sorted distinct frames per
    example (`frame_indices`), repeated and shuffled; evaluation takes evenly
    spaced frames `arange(n) * (T // n)` (stride 5 from frame 0 for 25 of 128,
    as the released model) in one ordered pass.

Processes: each process reads its own part of the split,
`tfds.split_for_jax_process` (parts differ in size by at most one example,
are disjoint and cover the split), and batches `global_batch_size //
process_count` examples. Determinism: for a fixed seed every pipeline yields
the same stream on every run (`tf.data.Options.deterministic`, seeded file
and example shuffles, frame draws seeded by (seed, process, position in the
stream)). In training, example `position` of a process's stream is row
`position % B` of step `position // B`, so frames differ across steps and
epochs, and a given step always gets the same frames.
"""

from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aloe.data import cater_latents
from aloe.data.sampling import evenly_spaced_frames, sample_frames

# Per-video features passed through with the frames when the dataset has them.
ID_KEYS = ("scene_index", "video_filename", "video_name", "label")


def open_builder(dataset: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder of `dataset` (e.g. 'clevrer', 'cater/all_actions') in `data_dir`."""
    builder = tfds.builder(dataset, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"The tfds dataset {dataset!r} is not built in {data_dir!r}; build it with "
            f"`python -m aloe.data.{dataset.split('/')[0]} --manual_dir=... "
            f"--data_dir={data_dir}`.")
    return builder


def split_pairs(text: str) -> list[tuple[str, str]]:
    """'train:train,validation:valid' -> [('train', 'train'), ('validation', 'valid')].

    Raises:
      ValueError: `text` is not a comma-separated list of `a:b` pairs.
    """
    pairs = [item.split(":") for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not all(p) for p in pairs):
        raise ValueError(f"{text!r}: expected 'tfds_split:store_split,...', e.g. "
                         f"'train:train,validation:valid'.")
    return [(a.strip(), b.strip()) for a, b in pairs]


def cater_labels(builder: tfds.core.DatasetBuilder, dataset: str,
                 split: str) -> dict[str, dict[str, Any]]:
    """Every video's grid label and camera, for `{split}_labels.json` (no frames decoded)."""
    camera = "moving" if "cameramotion" in dataset else "static"
    examples = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(
        {"video_name": builder.info.features["video_name"],
         "label": builder.info.features["label"]}))
    return {cater_latents.video_key(dataset, ex["video_name"]):
            {"label": int(ex["label"]), "camera": camera} for ex in tfds.as_numpy(examples)}


def frame_indices(total_frames: int, num_frames: int, *, training: bool, seed: int = 0,
                  process_index: int = 0, position: int = 0) -> np.ndarray:
    """The frames one example uses.

    Args:
      total_frames: T, the frames in the video.
      num_frames: n, the frames to use.
      training: draw n distinct frames uniformly and sort them; otherwise the
        evenly spaced `arange(n) * (T // n)`.
      seed, process_index, position: what the training draw depends on
        (nothing else); `position` is the example's place in the process's
        stream.

    Returns:
      int32 `[n]`, strictly increasing, in `[0, T)`.
    """
    if not 0 < num_frames <= total_frames:
        raise ValueError(f"cannot take {num_frames} frames of a {total_frames}-frame video.")
    if training:
        rng = np.random.default_rng([seed, process_index, position])
        indices = sample_frames(rng, 1, total_frames, num_frames)[0]
    else:
        indices = evenly_spaced_frames(total_frames, num_frames)
    return indices.astype(np.int32)


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """(index, count), from JAX when not given."""
    if process_index is None or process_count is None:
        import jax  # pylint: disable=g-import-not-at-top
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is outside 0..{process_count - 1}.")
    return process_index, process_count


def _per_process_batch(global_batch_size: int, process_count: int) -> int:
    """This process's batch size; the global one must split evenly."""
    if global_batch_size < 1 or global_batch_size % process_count:
        raise ValueError(f"global_batch_size {global_batch_size} must be a positive multiple of "
                         f"the process count {process_count}.")
    return global_batch_size // process_count


def _options() -> tf.data.Options:
    """Dataset options: deterministic element order."""
    options = tf.data.Options()
    options.deterministic = True
    return options


def encoded_videos(builder: tfds.core.DatasetBuilder, split: str, *, process_index: int,
                   process_count: int, shuffle_files: bool, seed: int,
                   keys: Sequence[str]) -> tf.data.Dataset:
    """This process's examples with the video still encoded: `video` string `[T]` + `keys`."""
    features = builder.info.features
    if "video" not in features:
        raise ValueError(f"{builder.name}: the dataset has no 'video' feature.")
    missing = [k for k in keys if k not in features]
    if missing:
        raise ValueError(f"{builder.name}: no feature(s) {missing}; it has {sorted(features)}.")
    wanted = {key: features[key] for key in ("video", *keys)}
    decoders = tfds.decode.PartialDecoding(wanted, decoders={"video": tfds.decode.SkipDecoding()})
    part = tfds.split_for_jax_process(split, process_index=process_index,
                                      process_count=process_count)
    read_config = tfds.ReadConfig(shuffle_seed=seed, options=_options(), try_autocache=False)
    return builder.as_dataset(split=part, shuffle_files=shuffle_files, decoders=decoders,
                              read_config=read_config)


def _default_keys(builder: tfds.core.DatasetBuilder, keys: Sequence[str] | None) -> tuple:
    """`keys`, or the `ID_KEYS` the dataset has."""
    if keys is not None:
        return tuple(keys)
    return tuple(k for k in ID_KEYS if k in builder.info.features)


def _frame_size(builder: tfds.core.DatasetBuilder) -> tuple[int, int]:
    """(height, width) of the stored frames."""
    shape = builder.info.features["video"].shape
    return int(shape[1]), int(shape[2])


def _decode_frames(encoded: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """PNG strings `[n]` -> float32 `[n, height, width, 3]` in [0, 1]."""
    frames = tf.map_fn(lambda png: tf.io.decode_png(png, channels=3), encoded,
                       fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    frames = tf.ensure_shape(frames, [None, height, width, 3])
    return tf.cast(frames, tf.float32) / 255.0


def _draw_indices(num_frames: int, training: bool, seed: int, process_index: int):
    """A tf function (position, total frames) -> int32 `[n]` calling `frame_indices`."""

    def draw(position: np.int64, total: np.int32) -> np.ndarray:
        """NumPy side: the indices of one example."""
        return frame_indices(int(total), num_frames, training=training, seed=seed,
                             process_index=process_index, position=int(position))

    def indices(position: tf.Tensor, total: tf.Tensor) -> tf.Tensor:
        """Graph side: int32 `[n]`."""
        out = tf.numpy_function(draw, [position, total], tf.int32, stateful=False)
        return tf.ensure_shape(out, [num_frames])

    return indices


def extraction_videos(builder: tfds.core.DatasetBuilder, split: str, *,
                      keys: Sequence[str] | None = None, process_index: int | None = None,
                      process_count: int | None = None) -> Iterable[dict[str, np.ndarray]]:
    """Every frame of every video of this process's part of `split`, in stored order.

    Args:
      builder: a prepared video dataset builder.
      split: e.g. "validation".
      keys: features passed through (default: those of `ID_KEYS` it has).
      process_index, process_count: this process (default: JAX's).

    Returns:
      One dict per video: `video` float32 `[T, H, W, 3]` and the `keys`
      (e.g. `scene_index` int64 and `video_filename` bytes for CLEVRER).
    """
    index, count = _process(process_index, process_count)
    height, width = _frame_size(builder)
    ds = encoded_videos(builder, split, process_index=index, process_count=count,
                        shuffle_files=False, seed=0, keys=_default_keys(builder, keys))
    ds = ds.map(lambda ex: {**ex, "video": _decode_frames(ex["video"], height, width)},
                num_parallel_calls=tf.data.AUTOTUNE)
    return tfds.as_numpy(ds.prefetch(2))


def video_batches(builder: tfds.core.DatasetBuilder, split: str, *, num_frames: int,
                  global_batch_size: int, training: bool, seed: int = 0,
                  shuffle_buffer: int = 128, keys: Sequence[str] | None = None,
                  process_index: int | None = None,
                  process_count: int | None = None) -> Iterable[dict[str, np.ndarray]]:
    """Batches of `num_frames` frames per video, for models that read pixels.

    Args:
      builder: a prepared video dataset builder.
      split: e.g. "train".
      num_frames: frames per example (25 CLEVRER, 80 CATER).
      global_batch_size: examples per step over all processes.
      training: sampled frames, shuffled and repeated forever (the last
        partial batch dropped); otherwise evenly spaced frames, one pass in
        stored order, the last batch possibly smaller.
      seed: the stream's seed (training).
      shuffle_buffer: videos in the example shuffle buffer (training).
      keys: features passed through (default: those of `ID_KEYS` it has).
      process_index, process_count: this process (default: JAX's).

    Returns:
      An iterable of `{"frames": float32 [B, num_frames, H, W, 3],
      "frame_indices": int32 [B, num_frames], **keys}`, B the per-process batch.
    """
    index, count = _process(process_index, process_count)
    batch = _per_process_batch(global_batch_size, count)
    height, width = _frame_size(builder)
    ds = encoded_videos(builder, split, process_index=index, process_count=count,
                        shuffle_files=training, seed=seed, keys=_default_keys(builder, keys))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    draw = _draw_indices(num_frames, training, seed, index)

    def take_frames(position: tf.Tensor, example: dict[str, Any]) -> dict[str, tf.Tensor]:
        """Selects, decodes and scales one example's frames."""
        encoded = example.pop("video")
        indices = draw(position, tf.size(encoded))
        return {**example, "frame_indices": indices,
                "frames": _decode_frames(tf.gather(encoded, indices), height, width)}

    ds = ds.enumerate().map(take_frames, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch, drop_remainder=training)
    return tfds.as_numpy(ds.prefetch(tf.data.AUTOTUNE))


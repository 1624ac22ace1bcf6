r"""Frame stores: the uint8 frames of a built tfds video dataset, for models that read pixels.

A model with the ResNet encoder (`config.model.entities`, the ResNet row of the
paper's Table 1) reads pixels instead of MONet latents. This module writes them from the
tfds datasets built by `aloe.data.clevrer` / `aloe.data.cater` (all frames of
every video, 64x64), in the layout each task reads:

- CLEVRER ('clevrer'): the latent store layout (`aloe.data.latents`),
  `{out}/{split}/{scene_index}.npz`, one plain `np.save` array uint8
  `[frames, S, S, 3]` per video (`LatentStore(out, split, dtype=np.uint8)`
  reads it; the questions stay in the latent store at `config.data.root`);
- CATER ('cater/all_actions', 'cater/all_actions_cameramotion'): the layout of
  `aloe.data.cater_latents`, `{out}/{split}/{variant}/{name}.npy` uint8
  `[frames, S, S, 3]` plus `{out}/{split}_labels.json`, the videos named and
  labelled exactly as extraction names and labels their latents
  (`cater_latents.video_key`, `pipeline.cater_labels`). Entries
  already in a labels file are kept (this run's entries replace equal names),
  so the variants may be written by separate runs.

S is the stored frame size unless `frame_size` differs: then the stored frames
are area-resized (the policy of `aloe.data.video_frames`). A frame store is big:
64x64 frames take 1.5 MB per CLEVRER video (128 frames) and 3.7 MB per CATER
video (301 frames).

As in `aloe.extract`, each process writes its own share of the videos
(`tfds.split_for_jax_process`); process 0 writes the CATER labels of all of
them. A video whose file exists is skipped without decoding its frames
(after checking that the file's header holds uint8 `[frames, S, S, 3]`), and
files are written atomically (`latents.write_atomically`), so an interrupted
run resumes where it stopped. A progress bar counts videos.

  python -m aloe.data.frame_store --data_dir=$TFDS_DATA --dataset=clevrer \
      --out=$CLEVRER_FRAMES --splits=train:train,validation:valid
  python -m aloe.data.frame_store --data_dir=$TFDS_DATA \
      --dataset=cater/all_actions,cater/all_actions_cameramotion --out=$CATER_FRAMES
"""

import os
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tqdm

from aloe.data import cater_latents
from aloe.data import latents as latents_lib
from aloe.data import pipeline
from aloe.data import video_frames

DEFAULT_SPLITS = "train:train,validation:valid"


def parse_splits(text: str) -> list[tuple[str, str]]:
    """'train:train,validation:valid' -> [('train', 'train'), ('validation', 'valid')]."""
    try:
        return pipeline.split_pairs(text)
    except ValueError:
        raise ValueError(f"splits = {text!r}: expected 'tfds_split:store_split,...', e.g. "
                         f"{DEFAULT_SPLITS!r}.") from None


def _dataset_names(datasets: str | Sequence[str]) -> list[str]:
    """A comma-separated string or a sequence -> the dataset names."""
    if isinstance(datasets, str):
        datasets = datasets.split(",")
    names = [name.strip() for name in datasets if name.strip()]
    if not names:
        raise ValueError("No dataset given: name one, e.g. 'clevrer' or 'cater/all_actions'.")
    return names


def decode_frames(encoded: Sequence[bytes], frame_size: int) -> np.ndarray:
    """uint8 `[T, frame_size, frame_size, 3]` of a video's PNG-encoded frames `[T]`.

    The stored levels are kept exactly; frames of another size are
    area-resized (`video_frames.resize_frames`).
    """
    frames = np.stack([tf.io.decode_png(png, channels=3).numpy() for png in encoded])
    if frames.shape[1:3] != (frame_size, frame_size):
        frames = video_frames.resize_frames(frames, frame_size, frame_size)
    return frames


def _check_existing(path: str, frame_size: int) -> None:
    """An existing file (to be skipped) must hold uint8 `[frames, S, S, 3]` (header only)."""
    shape, dtype = latents_lib.read_npy_header(path, "existing frame file")
    if dtype != np.uint8 or len(shape) != 4 or shape[1:] != (frame_size, frame_size, 3):
        raise ValueError(f"{path}: existing frame file holds {dtype} {shape}, but this run "
                         f"writes uint8 [frames, {frame_size}, {frame_size}, 3] (frame_size = "
                         f"{frame_size}); write to another folder or delete the old files.")


def _write_split(builder: tfds.core.DatasetBuilder, is_cater: bool, name: str, tfds_split: str,
                 out: str, store_split: str, frame_size: int, process_index: int,
                 process_count: int, progress: bool) -> int:
    """Writes this process's videos of one split of one dataset; returns how many."""
    store_class = cater_latents.CaterLatentStore if is_cater else latents_lib.LatentStore
    store = store_class(out, store_split, dtype=np.uint8)
    # Frames stay PNG strings until a video is known to be missing, so a resumed
    # run does not decode the videos it skips.
    videos = pipeline.encoded_videos(builder, tfds_split, process_index=process_index,
                                     process_count=process_count, shuffle_files=False, seed=0,
                                     keys=("video_name",) if is_cater else ("scene_index",))
    total = -(-builder.info.splits[tfds_split].num_examples // process_count)
    count = 0
    for video in tqdm.tqdm(tfds.as_numpy(videos), desc=f"{name} {tfds_split}", total=total,
                           unit="video", disable=not progress or process_index != 0):
        key = (cater_latents.video_key(name, video["video_name"]) if is_cater
               else int(video["scene_index"]))
        if store.has(key):
            _check_existing(store.path(key), frame_size)
            continue
        store.write(key, decode_frames(video["video"], frame_size))
        count += 1
    return count


def _open(data_dir: str, name: str) -> tuple[tfds.core.DatasetBuilder, bool]:
    """The prepared builder of dataset `name` and whether it is a CATER dataset."""
    if not data_dir:
        raise ValueError("data_dir is empty: set it to the tfds data directory the video "
                         "datasets were built in.")
    builder = pipeline.open_builder(name, data_dir)
    if "video" not in builder.info.features:
        raise ValueError(f"tfds dataset {name!r} in {data_dir}: no 'video' feature; expected "
                         f"one built by aloe.data.clevrer or aloe.data.cater.")
    return builder, "video_name" in builder.info.features


def write_frame_store(data_dir: str, datasets: str | Sequence[str], out: str,
                      splits: str = DEFAULT_SPLITS, *, frame_size: int = 64,
                      process_index: int | None = None, process_count: int | None = None,
                      progress: bool = True) -> dict[str, int]:
    """Writes the frame store `out` from built tfds datasets (see the module docstring).

    Args:
      data_dir: the tfds data directory the datasets were built in.
      datasets: 'clevrer', or CATER variants such as 'cater/all_actions' (a list,
        or names separated by commas); all of one kind.
      out: the frame store's root folder.
      splits: 'tfds_split:store_split' pairs separated by commas.
      frame_size: S, the side of the stored square frames.
      process_index, process_count: this process's share of the videos
        (default: JAX's process index and count).
      progress: show a progress bar (process 0 only).

    Returns:
      Videos written per store split (existing files are not counted).

    Raises:
      ValueError / FileNotFoundError: an empty `out` or `data_dir`, a dataset that
        is not built or not a video dataset, CLEVRER and CATER mixed, a split the
        dataset lacks, or an existing file of another dtype or frame size.
    """
    if not out:
        raise ValueError("out is empty: set it to the frame store's root folder.")
    if frame_size < 1:
        raise ValueError(f"frame_size must be positive, got {frame_size}.")
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is outside 0..{process_count - 1}.")
    pairs = parse_splits(splits)
    names = _dataset_names(datasets)
    opened = {name: _open(data_dir, name) for name in names}
    if len({is_cater for _, is_cater in opened.values()}) > 1:
        raise ValueError(f"datasets {names}: CLEVRER and CATER frames cannot share one store; "
                         f"write them to separate folders.")
    written: dict[str, int] = {}
    for tfds_split, store_split in pairs:
        labels: dict[str, dict[str, Any]] = {}
        for name, (builder, is_cater) in opened.items():
            if tfds_split not in builder.info.splits:
                raise ValueError(f"tfds dataset {name!r} in {data_dir} has no split "
                                 f"{tfds_split!r}; it has {sorted(builder.info.splits)}.")
            written[store_split] = written.get(store_split, 0) + _write_split(
                builder, is_cater, name, tfds_split, out, store_split, frame_size,
                process_index, process_count, progress)
            if is_cater and process_index == 0:
                labels.update(pipeline.cater_labels(builder, name, tfds_split))
        if labels:
            _merge_labels(out, store_split, labels)
    return written


def _merge_labels(out: str, split: str, labels: dict[str, dict[str, Any]]) -> None:
    """Writes `{out}/{split}_labels.json`: the existing entries updated with `labels`."""
    path = cater_latents.labels_path(out, split)
    merged: dict[str, dict[str, Any]] = {}
    if os.path.exists(path):
        existing = cater_latents.read_labels(path)
        merged = {name: {"label": int(label), "camera": cater_latents.CAMERAS[int(moving)]}
                  for name, label, moving in zip(existing.names, existing.label,
                                                 existing.moving)}
    merged.update(labels)
    cater_latents.write_labels(out, split, merged)


def main(argv: Sequence[str]) -> None:
    """The command line (absl flags; see the module docstring)."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    tf.config.set_visible_devices([], "GPU")  # tf.data only; leave accelerators alone.
    values = flags.FLAGS
    written = write_frame_store(values.data_dir, values.dataset, values.out, values.splits,
                                frame_size=values.frame_size,
                                process_index=values.process_index,
                                process_count=values.process_count)
    print(f"Frame store {values.out}: new videos per split {written}.")


def _define_flags() -> None:
    """The command line's flags (defined only when the module runs as a program)."""
    flags.DEFINE_string("data_dir", None, "The tfds data directory the datasets were built in.")
    flags.DEFINE_string("dataset", None, "'clevrer', or CATER variants separated by commas, "
                        "e.g. 'cater/all_actions,cater/all_actions_cameramotion'.")
    flags.DEFINE_string("out", None, "The frame store's root folder.")
    flags.DEFINE_string("splits", DEFAULT_SPLITS, "tfds_split:store_split pairs, by commas.")
    flags.DEFINE_integer("frame_size", 64, "Side of the stored frames (area-resized if the "
                         "dataset's differs).")
    flags.DEFINE_integer("process_index", None, "This process's share (default: JAX's).")
    flags.DEFINE_integer("process_count", None, "How many processes share the videos "
                         "(default: JAX's).")
    flags.mark_flags_as_required(["data_dir", "dataset", "out"])


if __name__ == "__main__":
    _define_flags()
    app.run(main)

"""MONet pretraining on single video frames (the first of ALOE's two stages).

Training frames come from a frame store of the dataset (`aloe.data.frame_store`,
uint8 `[frames, 64, 64, 3]` per video): `data.frames_root`, or, when that is
empty, `{data.data_dir}/frame_store/{dataset}` (`/` in the dataset's name becomes
`-`), which the first run writes from the prepared tfds dataset (`aloe.data.clevrer`
or `aloe.data.cater`; each process its share of the training videos, then all wait
for each other). Each step's batch is a pure function of (seed, step, process):
`train.batch_size` (video, frame) pairs drawn uniformly, as the latent pipelines
draw theirs, and only its own frames are read (memory-mapped), so a resumed run
reads nothing of the steps it skips, however far into training it stops.

Splits are named as in the latent stores ALOE reads: `train`, `valid`, `test`;
`valid` reads the tfds split `validation` (which is also accepted), so MONet's
evaluation files are `eval_valid_{step}.json` like ALOE's.

Evaluation runs on `eval.num_videos` videos of a split, `eval.frames_per_video`
evenly spaced frames each: the loss terms, the reconstruction error, and, when
`data.masks_dir` holds the generator's instance masks
(`masks/{tfds split}/mask_{chunk}/mask_{scene:05d}.npz`, chunk e.g. `00000-01000`),
the foreground adjusted Rand index of MONet's segmentation (each pixel to its
most probable slot) next to that of the trivial segmentation that puts every
pixel in one slot, and their per-frame difference (`fg_ari_gain`, the mean over
videos of each video's mean) with its standard error over videos
(`fg_ari_gain_stderr`: frames of one video are not independent samples).
"""

import itertools
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from jax.experimental import multihost_utils

from aloe import segmentation
from aloe.data import cater as cater_data  # pylint: disable=unused-import (registers 'cater')
from aloe.data import clevrer as clevrer_data  # pylint: disable=unused-import (registers)
from aloe.data import cater_latents
from aloe.data import frame_store as frame_store_lib
from aloe.data import latents as latents_lib
from aloe.data import pipeline
from aloe.data import sampling
from aloe.data.sampling import evenly_spaced_frames
from aloe.models import monet as monet_lib

PyTree = Any

# Latent-store split name -> tfds split name, where they differ.
TFDS_SPLITS = {"valid": "validation"}


def tfds_split(split: str) -> str:
    """The tfds split of a split name: 'valid' -> 'validation'; others unchanged."""
    return TFDS_SPLITS.get(split, split)


def open_builder(data: ml_collections.ConfigDict,
                 dataset: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder `dataset` (default `data.dataset`) in `data.data_dir`."""
    if not data.data_dir:
        raise ValueError("config.data.data_dir is empty: set it to the tfds data directory "
                         "the video dataset was built in (--config.data.data_dir=DIR).")
    return pipeline.open_builder(dataset or data.dataset, data.data_dir)


def mask_labels(masks_dir: str, split: str, scene_index: int, frames: np.ndarray,
                size: int) -> np.ndarray:
    """int `[F, size, size]` instance labels of some frames, 0 = background.

    Reads the generator's `{masks_dir}/{split}/mask_{chunk}/mask_{scene:05d}.npz` (key
    `masks`, uint8 `[T, H, W]`) and samples each output pixel's label at its
    centre (labels cannot be averaged).
    """
    chunk = scene_index // 1000 * 1000
    path = os.path.join(masks_dir, split, f"mask_{chunk:05d}-{chunk + 1000:05d}",
                        f"mask_{scene_index:05d}.npz")
    with np.load(path, allow_pickle=False) as archive:
        if "masks" not in archive:
            raise ValueError(f"{path}: no array 'masks'.")
        masks = archive["masks"]
    if masks.ndim != 3 or masks.shape[0] <= frames.max():
        raise ValueError(f"{path}: 'masks' must be [frames > {frames.max()}, H, W], got "
                         f"{masks.shape}.")
    height, width = masks.shape[1:]
    rows = ((np.arange(size) + 0.5) * height / size).astype(int)
    cols = ((np.arange(size) + 0.5) * width / size).astype(int)
    return masks[frames][:, rows][:, :, cols].astype(np.int32)


class MonetTask:
    """MONet on video frames; see `aloe.tasks` for the protocol."""

    def __init__(self, config: ml_collections.ConfigDict, *, process_index: int = 0,
                 process_count: int = 1):
        self.config = config
        self.process_index, self.process_count = process_index, process_count
        self.model = monet_lib.MONet(**config.model)
        # Compiled once, for the summary images of every checkpoint.
        self._segment = jax.jit(
            lambda params, images: self.model.apply({"params": params}, images,
                                                    deterministic=True))
        self._builder: tfds.core.DatasetBuilder | None = None
        self._frame_store: tuple[latents_lib.LatentStore, list] | None = None

    @property
    def builder(self) -> tfds.core.DatasetBuilder:
        """The frames' dataset, opened on first use (restoring a model needs no data)."""
        if self._builder is None:
            self._builder = open_builder(self.config.data)
        return self._builder

    def init_params(self, rng: jax.Array) -> PyTree:
        """Fresh MONet parameters (no data needed)."""
        size = self.config.model.image_size
        return self.model.init({"params": rng}, jnp.zeros((1, size, size, 3)),
                               deterministic=True)["params"]

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's frames `{'image': float32 [B, S, S, 3]}` of step `step`.

        The global batch is `train.batch_size` (video, frame) pairs of the frame
        store's training split drawn uniformly with `default_rng([seed, step])`, as
        the latent pipelines draw theirs; only this process's rows are read.
        """
        store, videos = self.frame_store()
        size = self.config.train.batch_size
        rng = np.random.default_rng([self.config.seed, step])
        rows = rng.integers(0, len(videos), size)
        frames = rng.integers(0, store.expected_shape[0], size)
        local = sampling.ProcessShard(self.process_index, self.process_count).local(
            size, "train.batch_size")
        picked = store.gather_frames([videos[r] for r in rows[local]], frames[local, None])
        return {"image": picked[:, 0].astype(np.float32) / 255.0}

    def frames_root(self) -> str:
        """The frame store training reads: `data.frames_root`, or the default one."""
        d = self.config.data
        return d.frames_root or os.path.join(d.data_dir, "frame_store",
                                             d.dataset.replace("/", "-"))

    def _store_kind(self) -> type[latents_lib.LatentStore]:
        return (cater_latents.CaterLatentStore if self.config.data.dataset.startswith("cater")
                else latents_lib.LatentStore)

    def _write_default_frame_store(self, root: str) -> None:
        """Writes the training split's frames to `root` unless all are there."""
        d = self.config.data
        split = tfds_split(d.train_split)
        if split not in self.builder.info.splits:
            raise ValueError(f"config.data.train_split: tfds dataset {d.dataset!r} in "
                             f"{d.data_dir} has no split {split!r}; it has "
                             f"{sorted(self.builder.info.splits)}.")
        expected = self.builder.info.splits[split].num_examples
        if len(self._store_kind()(root, d.train_split, dtype=np.uint8).scenes()) < expected:
            logging.info("Writing the frames of %d %s videos to the frame store %s (once).",
                         expected, split, root)
            try:
                frame_store_lib.write_frame_store(
                    d.data_dir, d.dataset, root, f"{split}:{d.train_split}",
                    frame_size=self.config.model.image_size, process_index=self.process_index,
                    process_count=self.process_count, progress=self.process_index == 0)
            except OSError as err:
                raise OSError(f"Cannot write the default frame store {root} ({err}); set "
                              f"config.data.frames_root to a writable folder.") from err
        if self.process_count > 1:   # Every process reads every process's videos.
            multihost_utils.sync_global_devices("monet frame store written")

    def frame_store(self) -> tuple[latents_lib.LatentStore, list]:
        """The training split of the frame store, and its videos.

        Opened (and, for the default store, written) on first use; every video's
        header is checked: uint8 `[frames, S, S, 3]`, S the model's image size, the
        same for all.
        """
        if self._frame_store is None:
            d = self.config.data
            root, kind = self.frames_root(), self._store_kind()
            field = "config.data.frames_root" if d.frames_root else (
                f"the default frame store {root} (config.data.frames_root empty)")
            if not d.frames_root:
                self._write_default_frame_store(root)
            store = kind(root, d.train_split, dtype=np.uint8)
            videos = store.scenes()
            if not videos:
                raise FileNotFoundError(f"{field}: {store.directory} holds no videos; write "
                                        f"it with `python -m aloe.data.frame_store`.")
            shape = store.check_headers(videos)
            size = self.config.model.image_size
            if len(shape) != 4 or shape[1:] != (size, size, 3):
                raise ValueError(f"{field}: the frames in {store.directory} are {shape}, not "
                                 f"[frames, {size}, {size}, 3] (model.image_size).")
            self._frame_store = (kind(root, d.train_split, shape, dtype=np.uint8), videos)
        return self._frame_store

    def loss(self, params: PyTree, batch: dict[str, Any],
             rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The MONet loss (mean over this device's frames) and its terms."""
        outputs = self.model.apply({"params": params}, batch["image"], deterministic=False,
                                   rngs={"sample": rng})
        return monet_lib.monet_loss(outputs, batch["image"], **self.model.loss_hyperparameters)

    def summary_images(self, params: PyTree, batch: dict[str, Any],
                       count: int = 4) -> dict[str, np.ndarray]:
        """TensorBoard images of `count` frames: input | reconstruction | slot masks.

        Returns `{'monet/reconstruction': uint8 [count, H, 2W, 3], 'monet/masks':
        uint8 [count, H, K*W, 3]}` (masks in grey, slot 0 first).
        """
        images = np.asarray(batch["image"][:count])
        outputs = self._segment(params, images)
        recon = np.concatenate([images, np.asarray(outputs.recon)], axis=2)
        masks = np.asarray(outputs.masks)  # [N, K, H, W, 1]
        masks = np.concatenate(list(masks.transpose(1, 0, 2, 3, 4)), axis=2)
        to_uint8 = lambda x: (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)
        return {"monet/reconstruction": to_uint8(recon),
                "monet/masks": to_uint8(np.repeat(masks, 3, axis=-1))}

    # Evaluation.

    def eval_batches(self, split: str) -> Iterator[dict[str, Any]]:
        """Evenly spaced frames of the first `eval.num_videos` videos, padded batches.

        Yields `image [B, H, W, 3]`, `valid [B]` and under 'meta' `video [B]`
        (the video's number in this evaluation, -1 in padding rows) and
        `true_labels [B, H, W]` (-1 = unknown, e.g. no masks).
        """
        e, d = self.config.eval, self.config.data
        split = tfds_split(split)
        per_process = e.batch_size // self.process_count
        videos_per_process = e.num_videos // self.process_count
        images, labels, numbers = [], [], []
        videos = pipeline.extraction_videos(self.builder, split, process_index=self.process_index,
                                            process_count=self.process_count)
        for number, video in enumerate(itertools.islice(videos, videos_per_process)):
            frames = evenly_spaced_frames(len(video["video"]), e.frames_per_video)
            images.extend(video["video"][frames])
            numbers.extend([self.process_index * videos_per_process + number] * len(frames))
            size = video["video"].shape[1]
            if d.masks_dir and "scene_index" in video:
                labels.extend(mask_labels(d.masks_dir, split, int(video["scene_index"]), frames,
                                          size))
            else:
                labels.extend(np.full((len(frames), size, size), -1, np.int32))
        for start in range(0, len(images), per_process):
            chunk = np.stack(images[start:start + per_process])
            valid = np.arange(per_process) < len(chunk)
            pad = ((0, per_process - len(chunk)),) + ((0, 0),) * 3
            yield {"image": np.pad(chunk, pad), "valid": valid,
                   "meta": {"video": np.pad(np.asarray(numbers[start:start + per_process]),
                                            pad[:1], constant_values=-1),
                            "true_labels": np.pad(np.stack(labels[start:start + per_process]),
                                                  pad[:3], constant_values=-1)}}

    def num_eval_batches(self, split: str) -> None:
        """None: unknown up front (the split may hold fewer than `eval.num_videos` videos)."""
        del split
        return None

    def predict(self, params: PyTree, batch: dict[str, Any]) -> dict[str, jax.Array]:
        """Per-frame loss terms and the segmentation (most probable slot per pixel)."""
        outputs = self.model.apply({"params": params}, batch["image"], deterministic=True)
        per_frame = jax.vmap(lambda o, x: monet_lib.monet_loss(
            o, x[None], **self.model.loss_hyperparameters)[1])(
                jax.tree.map(lambda a: a[:, None], outputs), batch["image"])
        per_frame["reconstruction_mse"] = jnp.mean(
            jnp.square(outputs.recon - batch["image"]), axis=(1, 2, 3))
        per_frame["segmentation"] = jnp.argmax(outputs.masks[..., 0], axis=1).astype(jnp.int32)
        return per_frame

    def eval_record(self, batch: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict:
        """The valid frames' outputs, true labels and video numbers."""
        valid = np.asarray(batch["valid"], bool)
        record = {k: np.asarray(v)[valid] for k, v in outputs.items()}
        record["true_labels"] = batch["meta"]["true_labels"][valid]
        record["video"] = batch["meta"]["video"][valid]
        return record

    def summarize(self, records: dict[str, np.ndarray], out_dir: str, tag: str) -> dict:
        """Means of the loss terms; foreground ARI against the true masks when known."""
        del out_dir, tag
        results = {k: float(np.mean(v)) for k, v in records.items()
                   if k not in ("segmentation", "true_labels", "video")}
        results["num_frames"] = int(len(records["segmentation"]))
        known = (records["true_labels"] >= 0).all(axis=(1, 2))
        if known.any():
            true = records["true_labels"][known].reshape(int(known.sum()), -1)
            pred = records["segmentation"][known].reshape(true.shape)
            ari = segmentation.adjusted_rand_index(true, pred, foreground=True)
            one_slot = segmentation.adjusted_rand_index(true, np.zeros_like(pred),
                                                        foreground=True)
            results["fg_ari"] = float(np.nanmean(ari))
            results["fg_ari_one_slot"] = float(np.nanmean(one_slot))
            results["fg_ari_gain"], results["fg_ari_gain_stderr"] = _mean_over_groups(
                ari - one_slot, records["video"][known])
            # One slot for everything scores 1 on frames with one visible object and 0
            # on the others; on frames with several objects only splitting them scores.
            multi = np.array([np.count_nonzero(np.unique(t)) >= 2 for t in true])
            results["multi_object_frames"] = int(multi.sum())
            if multi.any():
                results["fg_ari_multi_object"] = float(np.nanmean(ari[multi]))
        return results


def _mean_over_groups(values: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Mean of the per-group means of `values [N]` (NaNs ignored) and its standard error.

    The standard error is the sample standard deviation of the group means over
    the square root of their number (NaN with fewer than two groups).
    """
    members = (values[groups == group] for group in np.unique(groups))
    means = np.array([np.nanmean(m) for m in members if np.isfinite(m).any()])
    if len(means) < 2:
        return (float(means.mean()) if len(means) else float("nan")), float("nan")
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(len(means)))

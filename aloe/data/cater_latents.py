"""The CATER latent store and batch pipeline: cached MONet latents + final cells -> batches.

Layout of one split (written by a latent extraction stage, or by
`aloe.synthetic.toy_cater_latents`):

    {root}/{split}_labels.json   {"<name>": {"label": 0..35, "camera": "static"|"moving"}, ...}
    {root}/{split}/{name}.npy    float32 [frames, slots, d] (CATER: [301, 8, 36]), np.save

A frame store (`aloe.data.frame_store`, for the "resnet" variant) has the same
layout with uint8 frames `[frames, S, S, 3]`; open it with `dtype=np.uint8`.

A video's name is a relative path of `/`-separated parts made of letters,
digits, `_`, `-` and `.` (no part starts with `.`), e.g.
`all_actions_cameramotion/CATER_new_000123`: a folder per CATER variant keeps
the static and moving-camera videos of the same number apart. `label` is the
snitch's final grid cell (`aloe.cater.grid`); other keys of an entry are
allowed and ignored. Every video of a split must have the same shape.

Latents are read from disk when a batch needs them (a batch reads only its
frames of each video's file, through a memory map); opening the data checks
every file's header (existence, shape, dtype), so a bad file is named at once,
not hours into training.

Training batches (`train_batch`) are a pure function of (seed, step,
process_index): a NumPy generator seeded with (seed, step) draws the GLOBAL
batch of `static_size` static-camera and `moving_size` moving-camera videos
(uniformly with replacement within each camera, independently at every step),
and each process keeps its contiguous slice of each camera's rows. Every video
gets its own `num_frames` frames drawn uniformly without replacement and
sorted (`sampling.sample_frames`).

Evaluation batches (`eval_batches`) visit every video of the split once in
name order, with `num_frames` frames spread evenly over the whole video, first
and last frame included (`sampling.spanning_frames`): the answer is where the snitch
is at the end, so the last frames must be seen. Each process takes a contiguous
share of the videos, and every process yields the same number of batches, the
last ones padded with rows whose `valid` is False.

Batch layout (B = this process's rows, T = num_frames, K slots, d latent size):

    latents f32[B,T,K,d] (frames u8[B,T,S,S,3]), label i32[B] (-1 in padding), moving bool[B]

Evaluation batches add `valid` bool[B] and host-only `meta`: `{'name': uint8
[B, MAX_NAME_BYTES]}`, the zero-padded UTF-8 names (`decode_names`), numbers so
that every process's rows can be gathered like any other array.
"""

import dataclasses
import json
import os
import re
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from aloe import json_io
from aloe.cater import grid
from aloe.data import latents as latents_lib
from aloe.data import sampling

CAMERAS = ("static", "moving")
LATENT_SUFFIX = ".npy"
LABELS_SUFFIX = "_labels.json"
MAX_NAME_BYTES = 128
_NAME_PART = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def video_key(dataset: str, video_name: bytes) -> str:
    """A video's store key: 'cater/all_actions', b'CATER_new_000001.avi' ->
    'all_actions/CATER_new_000001'."""
    return f"{dataset.split('/')[-1]}/{os.path.splitext(video_name.decode())[0]}"


def labels_path(root: str | os.PathLike, split: str) -> str:
    """The labels file of a split, `{root}/{split}_labels.json`."""
    return os.path.join(os.fspath(root), f"{split}{LABELS_SUFFIX}")


def check_name(name: Any, source: str) -> str:
    """Returns `name` if it is a valid video name, else raises a ValueError naming `source`."""
    if not isinstance(name, str) or not all(_NAME_PART.fullmatch(p) for p in name.split("/")):
        raise ValueError(f"{source}: video name {name!r} is not a relative path of parts made "
                         f"of letters, digits, '_', '-' and '.' (not starting with '.').")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"{source}: video name {name!r} is longer than {MAX_NAME_BYTES} bytes.")
    return name


def encode_names(names: Sequence[str]) -> np.ndarray:
    """uint8 `[N, MAX_NAME_BYTES]`: UTF-8 names (valid ones, see `check_name`), zero-padded."""
    codes = np.zeros((len(names), MAX_NAME_BYTES), np.uint8)
    for row, name in enumerate(names):
        raw = name.encode("utf-8")
        codes[row, :len(raw)] = np.frombuffer(raw, np.uint8)
    return codes


def decode_names(codes: np.ndarray) -> list[str]:
    """The names of `encode_names` codes `[N, MAX_NAME_BYTES]`."""
    return [bytes(row).rstrip(b"\0").decode("utf-8") for row in np.asarray(codes, np.uint8)]


@dataclasses.dataclass(frozen=True)
class CaterLabels:
    """The labels of one split, rows sorted by name.

    Attributes:
      names: the video names, sorted.
      label: int32 `[N]` final grid cells.
      moving: bool `[N]` moving camera (else static).
    """
    names: list[str]
    label: np.ndarray
    moving: np.ndarray


def parse_labels(entries: Any, source: str) -> CaterLabels:
    """Validates a labels mapping (the JSON content); errors name `source` and the video."""
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError(f"{source}: expected a non-empty JSON object mapping video names to "
                         f"{{'label': int, 'camera': 'static'|'moving'}}.")
    names = sorted(entries)
    label = np.empty(len(names), np.int32)
    moving = np.empty(len(names), bool)
    for row, name in enumerate(names):
        check_name(name, source)
        entry = entries[name]
        if not isinstance(entry, Mapping):
            raise ValueError(f"{source}: video {name!r}: expected an object with fields 'label' "
                             f"and 'camera', got {entry!r}.")
        value = entry.get("label")
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                or not 0 <= value < grid.NUM_CELLS):
            raise ValueError(f"{source}: video {name!r}: field 'label' must be an integer in "
                             f"0..{grid.NUM_CELLS - 1}, got {value!r}.")
        camera = entry.get("camera")
        if camera not in CAMERAS:
            raise ValueError(f"{source}: video {name!r}: field 'camera' must be one of "
                             f"{CAMERAS}, got {camera!r}.")
        label[row], moving[row] = int(value), camera == "moving"
    return CaterLabels(names, label, moving)


def read_labels(path: str | os.PathLike) -> CaterLabels:
    """Reads and validates a `{split}_labels.json` file (errors name the file)."""
    path = os.fspath(path)
    return parse_labels(json_io.read_json(path), path)


def write_labels(root: str | os.PathLike, split: str,
                 entries: Mapping[str, Mapping[str, Any]]) -> str:
    """Validates and writes `{root}/{split}_labels.json` atomically; returns its path."""
    path = labels_path(root, split)
    parse_labels(entries, path)
    content = {name: dict(entries[name]) for name in sorted(entries)}
    latents_lib.write_atomically(path, json.dumps(content, indent=1).encode("utf-8"))
    return path


class CaterLatentStore(latents_lib.LatentStore):
    """Per-video latent arrays of one split, `{root}/{split}/{name}.npy`.

    Reading and validation are `LatentStore`'s; videos are named by strings
    (`check_name`) instead of scene indices.
    """

    def path(self, name: str) -> str:
        """The file of one video, `{root}/{split}/{name}.npy`."""
        check_name(name, self.directory)
        return os.path.join(self.directory, *name.split("/")) + LATENT_SUFFIX

    def _existing_path(self, name: str) -> str:
        path = self.path(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: latent file of video {name!r} (split "
                                    f"{self.split!r}) does not exist.")
        return path

    def scenes(self) -> list[str]:
        """The sorted names of the videos that have a file (temporary files are skipped)."""
        found = []
        for folder, _, files in os.walk(self.directory):
            for file in files:
                if file.endswith(LATENT_SUFFIX) and not file.startswith("."):
                    relative = os.path.relpath(os.path.join(folder, file), self.directory)
                    found.append(relative[:-len(LATENT_SUFFIX)].replace(os.sep, "/"))
        return sorted(found)

    def load_all(self, names: Sequence[str] | None = None) -> np.ndarray:
        """Reads many videos into one array, float32 `[videos, frames, slots, d]`.

        Args:
          names: which videos, in the order of the result's rows; default `scenes()`.

        Raises:
          FileNotFoundError / ValueError: as `read`, or a file whose shape differs
            from the first one's (the message names it).
        """
        names = self.scenes() if names is None else list(names)
        if not names:
            raise ValueError(f"{self.directory}: no videos to load.")
        arrays = [self.read(name) for name in names]
        for name, array in zip(names, arrays):
            if array.shape != arrays[0].shape:
                raise ValueError(f"{self.path(name)}: latent array has shape {array.shape}, "
                                 f"but {self.path(names[0])} has {arrays[0].shape}.")
        return np.stack(arrays)

    def read(self, name: str) -> np.ndarray:
        """Reads one video's array, float32 `[frames, slots, d]`.

        Raises:
          FileNotFoundError: the video has no file (the message names it).
          ValueError: naming the file, when it is unreadable or its array has the
            wrong shape, dtype or non-finite values.
        """
        self._existing_path(name)
        return super().read(name)


class CaterLatentData:
    """Batches of one split of a CATER latent store (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, split: str, *, num_frames: int = 80,
                 num_slots: int | None = None, latent_dim: int | None = None, seed: int = 0,
                 labeled_fraction: float = 1.0, labeled_seed: int = 0,
                 process_index: int = 0, process_count: int = 1,
                 dtype: np.dtype = np.float32, frame_size: int | None = None):
        """Reads the split's labels and checks the header of every latent file.

        Args:
          root: the store's root folder.
          split: e.g. "train" or "valid".
          num_frames: frames per example T.
          num_slots, latent_dim: the required K and d of latents (None: any,
            equal in all files).
          seed: seeds the training batches.
          labeled_fraction: the share of videos whose labels train (in (0, 1]);
            the others serve only the unsupervised sub-batch.
          labeled_seed: selects the labelled videos (`latents.labeled_subset`).
          process_index, process_count: this process and how many there are.
          dtype: float32 for latents `[frames, slots, d]`; uint8 for the frames
            `[frames, S, S, 3]` of a frame store.
          frame_size: the required S of frames (None: any, equal in all files).

        Raises:
          FileNotFoundError / ValueError: a missing or malformed labels file or
            latent file (named), files of different shapes, fewer frames than
            `num_frames`, or inconsistent arguments.
        """
        self.shard = sampling.ProcessShard(process_index, process_count)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.root, self.split, self.num_frames = os.fspath(root), split, num_frames
        self.seed = seed
        self.labels_file = labels_path(root, split)
        self.labels = read_labels(self.labels_file)
        self.store = CaterLatentStore(root, split, dtype=dtype)
        first = self.labels.names[0]
        shape = self.store.check_headers([first])
        kind, fields = "latent", (("slots", num_slots), ("d", latent_dim))  # [frames, K, d]
        if self.store.dtype == np.uint8:  # Frames [frames, S, S, 3].
            kind, fields = "frame", (("rows", frame_size), ("columns", frame_size), ("channels", 3))
        if len(shape) != 1 + len(fields):
            raise ValueError(f"{self.store.path(first)}: {kind} arrays must be [frames, "
                             f"{', '.join(f for f, _ in fields)}], got shape {shape}.")
        for size, (field, wanted) in zip(shape[1:], fields):
            if wanted is not None and size != wanted:
                raise ValueError(f"{self.store.path(first)}: {kind} array has {size} {field} "
                                 f"(shape {shape}), expected {wanted}.")
        if shape[0] < num_frames:
            raise ValueError(f"{self.store.path(first)}: {shape[0]} frames, fewer than "
                             f"num_frames = {num_frames}.")
        self.store.expected_shape = shape
        self.store.check_headers(self.labels.names)
        self.labeled = latents_lib.labeled_subset(self.labels.names, labeled_fraction,
                                                  labeled_seed)
        self._static = np.flatnonzero(~self.labels.moving & self.labeled)
        self._moving = np.flatnonzero(self.labels.moving & self.labeled)

    @property
    def total_frames(self) -> int:
        """Frames per video in the store (301 for CATER)."""
        return self.store.expected_shape[0]

    def __len__(self) -> int:
        return len(self.labels.names)

    def _examples(self, rows: np.ndarray, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of video rows `[B]` with frames `[B, T]` (or `[T]` for all)."""
        frames = np.broadcast_to(frames, (len(rows), self.num_frames))
        latents = self.store.gather_frames([self.labels.names[row] for row in rows], frames)
        return {"latents": latents, "label": self.labels.label[rows],
                "moving": self.labels.moving[rows]}

    def train_batch(self, step: int, static_size: int, moving_size: int,
                    auxiliary_size: int = 0) -> dict[str, Any]:
        """This process's rows of the global training batch of `step`.

        Args:
          step: the training step (>= 0); with the seed it fixes the batch.
          static_size: global static-camera rows, a multiple of process_count.
          moving_size: global moving-camera rows, a multiple of process_count.
          auxiliary_size: global rows of the unsupervised sub-batch (0 = none),
            drawn from all videos of both cameras, labelled or not.

        Returns:
          The batch layout of the module docstring: this process's static rows,
          then its moving rows; plus `'auxiliary': {'latents': [A, T, K, d]}`
          when `auxiliary_size` > 0.

        Raises:
          ValueError: sizes not divisible by process_count, or a requested camera
            the split has no videos of.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}.")
        static_local = self.shard.local(static_size, "static_size")
        moving_local = self.shard.local(moving_size, "moving_size")
        for size, pool, camera in ((static_size, self._static, "static"),
                                   (moving_size, self._moving, "moving")):
            if size and not len(pool):
                raise ValueError(f"{self.labels_file}: no {camera}-camera videos to train on.")
        rng = np.random.default_rng([self.seed, step])
        static_rows = self._static[rng.integers(0, max(1, len(self._static)), static_size)]
        moving_rows = self._moving[rng.integers(0, max(1, len(self._moving)), moving_size)]
        frames = sampling.sample_frames(rng, static_size + moving_size, self.total_frames,
                                        self.num_frames)
        static_frames, moving_frames = frames[:static_size], frames[static_size:]
        rows = np.concatenate([static_rows[static_local], moving_rows[moving_local]])
        frames = np.concatenate([static_frames[static_local], moving_frames[moving_local]])
        batch = self._examples(rows, frames)
        if auxiliary_size:
            aux_local = self.shard.local(auxiliary_size, "auxiliary_size")
            aux_rows = rng.integers(0, len(self.labels.names), auxiliary_size)
            aux_frames = sampling.sample_frames(rng, auxiliary_size, self.total_frames,
                                                self.num_frames)
            batch["auxiliary"] = {
                "latents": self._examples(aux_rows[aux_local], aux_frames[aux_local])["latents"]}
        return batch

    def num_eval_batches(self, batch_size: int) -> int:
        """How many batches `eval_batches(batch_size)` yields on every process."""
        return self.shard.num_eval_batches(batch_size, len(self))

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, Any]]:
        """Every video of the split once, in batches padded to a fixed size.

        Args:
          batch_size: global rows per batch, a multiple of process_count.

        Yields:
          The batch layout plus `valid` bool `[B]` (False for padding rows: zero
          latents, label -1) and `meta` `{'name': uint8 [B, MAX_NAME_BYTES]}`.
        """
        local = self.shard.local_size(batch_size, "batch_size")
        frames = sampling.spanning_frames(self.total_frames, self.num_frames)
        for (rows,) in self.shard.eval_rows(batch_size, len(self)):
            examples = self._examples(rows, frames)
            padded = sampling.pad_rows(examples, local, {"label": -1})
            padded["valid"] = np.arange(local) < len(rows)
            names = encode_names([self.labels.names[row] for row in rows])
            padded["meta"] = sampling.pad_rows({"name": names}, local)
            yield padded

"""What the CLEVRER and CATER dataset builders share: decoding, resizing, bad videos.

Resize policy (both datasets): the FULL frame is resized to a square
`size x size` (64 x 64) by exact area averaging, with no crop and no padding.
Each output pixel is the mean of the input rectangle it covers, fractional
pixels weighted by their covered share; this is what TensorFlow's
`tf.image.resize(..., method="area")` and OpenCV's `INTER_AREA` compute, and
it is alias-free for any downscaling factor (CLEVRER's 480 -> 64 is 7.5, not
an integer). The aspect ratio is not kept: CLEVRER's 480 x 320 (3:2) and
CATER's 320 x 240 (4:3) are squeezed horizontally. We keep the whole field of
view because both tasks need its borders: CLEVRER objects enter and exit at
the left and right edges (the "enter" / "exit" events of its questions), and
CATER's 6 x 6 localization grid spans the whole image. A centre crop would
cut those away; a squeeze only changes the pixel aspect, which MONet and a
ResNet learn like any other image statistic.

Bad videos: a file that cannot be opened or decoded, or that holds fewer than
the required number of frames, raises `VideoError` (a ValueError) naming the
file. A builder configured to skip bad videos records each one in a
`BadVideoReport` instead, which the builder writes as JSON into the dataset
directory and prints at the end of every split.

`VideoDatasetBuilder` is the builders' common base (the report, and a
`code_path` that works on this TFDS version); `tfds_build_main` runs TFDS's own
`tfds build` command for one builder, as the builders' `python -m` entry point.
"""

import collections
from concurrent import futures
import inspect
import json
import os
import sys
from typing import Any, Iterable, Iterator, Sequence

import av
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from aloe import json_io

# Frames converted to float and resized together (bounds memory: CLEVRER's
# 480x320 frames take 1.8 MB each as float32).
_RESIZE_CHUNK = 16


class VideoError(ValueError):
    """A video file that cannot be used; the message names the file."""


def area_resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """The area-averaging matrix of one axis.

    Args:
      in_size: input pixels along the axis.
      out_size: output pixels along the axis.

    Returns:
      float64 `[out_size, in_size]`: row o holds the share of each input pixel
      inside output pixel o's footprint `[o, o + 1) * in_size / out_size`,
      normalised so that each row sums to 1.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}.")
    scale = in_size / out_size
    starts = np.arange(out_size) * scale
    stops = starts + scale
    pixels = np.arange(in_size)
    overlap = (np.minimum(stops[:, None], pixels[None, :] + 1)
               - np.maximum(starts[:, None], pixels[None, :]))
    weights = np.clip(overlap, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def _band(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero band of an area matrix: int `[out, K]` indices, float32 `[out, K]` weights.

    Each output pixel covers at most K consecutive input pixels; padding
    positions past the last input pixel get weight 0.
    """
    in_size = weights.shape[1]
    nonzero = weights > 0
    first = nonzero.argmax(axis=1)
    positions = first[:, None] + np.arange(int(nonzero.sum(axis=1).max()))
    indices = np.minimum(positions, in_size - 1)
    band = np.where(positions < in_size, np.take_along_axis(weights, indices, axis=1), 0.0)
    return indices, band.astype(np.float32)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resizes whole frames (the module's resize policy).

    Equivalent to multiplying by `area_resize_weights` along rows and columns,
    computed over each matrix's narrow non-zero band (about 4x faster than
    dense products at CLEVRER's size).

    Args:
      frames: uint8 `[T, H, W, C]`.
      height, width: the output size.

    Returns:
      uint8 `[T, height, width, C]`, rounded to the nearest level.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, C], got {frames.dtype} {frames.shape}.")
    row_index, row_weight = _band(area_resize_weights(frames.shape[1], height))
    col_index, col_weight = _band(area_resize_weights(frames.shape[2], width))
    out = np.empty((frames.shape[0], height, width, frames.shape[3]), np.uint8)
    for start in range(0, frames.shape[0], _RESIZE_CHUNK):
        chunk = frames[start:start + _RESIZE_CHUNK]
        tall = np.zeros((chunk.shape[0], height, chunk.shape[2], chunk.shape[3]), np.float32)
        for k in range(row_index.shape[1]):  # [t, H, W, c] -> [t, height, W, c]
            tall += row_weight[:, k, None, None] * chunk[:, row_index[:, k]]
        small = np.zeros((chunk.shape[0], height, width, chunk.shape[3]), np.float32)
        for k in range(col_index.shape[1]):  # -> [t, height, width, c]
            small += col_weight[:, k, None] * tall[:, :, col_index[:, k]]
        out[start:start + _RESIZE_CHUNK] = np.clip(np.rint(small), 0, 255)
    return out


def decode_video(path: str | os.PathLike, size: int,
                 min_frames: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decodes every frame of a video with PyAV and area-resizes it to `size x size`.

    Args:
      path: an mp4 / avi (any container FFmpeg reads).
      size: the side of the square output frames.
      min_frames: fewer decoded frames than this is an error.

    Returns:
      uint8 `[T, size, size, 3]` RGB frames (T >= min_frames, every frame the
      file holds) and the source `(height, width)`.

    Raises:
      VideoError: naming the file, when it is missing, cannot be opened or
        decoded (e.g. truncated), has no video stream, or holds fewer than
        `min_frames` frames.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: video file not found.")
    chunks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    source_size = (0, 0)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file holds no video stream.")
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                if pending and rgb.shape != pending[0].shape:
                    raise VideoError(f"{path}: frame size changes from {pending[0].shape[:2]} to "
                                     f"{rgb.shape[:2]} within the video.")
                pending.append(rgb)
                if len(pending) == _RESIZE_CHUNK:
                    chunks.append(resize_frames(np.stack(pending), size, size))
                    source_size = pending[0].shape[:2]
                    pending = []
    except (av.error.FFmpegError, OSError, EOFError) as err:
        raise VideoError(f"{path}: cannot decode video ({type(err).__name__}: {err}).") from err
    if pending:
        chunks.append(resize_frames(np.stack(pending), size, size))
        source_size = pending[0].shape[:2]
    num_frames = sum(len(c) for c in chunks)
    if num_frames < min_frames:
        raise VideoError(f"{path}: decoded {num_frames} frames, fewer than the required "
                         f"{min_frames} (truncated or wrong video?).")
    return np.concatenate(chunks), (int(source_size[0]), int(source_size[1]))


def decode_videos(paths: Iterable[str], size: int, min_frames: int, threads: int
                  ) -> Iterator[tuple[str, np.ndarray | VideoError, tuple[int, int]]]:
    """`decode_video` over many files on `threads` threads, results in input order.

    PyAV releases the GIL while FFmpeg decodes and NumPy while it computes on
    whole arrays, so the threads overlap; at most `2 * threads` videos are in
    flight.

    Yields:
      (path, frames or the `VideoError` it raised, source (height, width) or (0, 0)).
    """

    def work(path: str) -> tuple[np.ndarray | VideoError, tuple[int, int]]:
        """One video; its VideoError is returned, not raised."""
        try:
            return decode_video(path, size, min_frames)
        except VideoError as err:
            return err, (0, 0)

    pool = futures.ThreadPoolExecutor(max(1, threads))
    try:
        pending: collections.deque = collections.deque()
        for path in paths:
            pending.append((path, pool.submit(work, path)))
            if len(pending) >= 2 * max(1, threads):
                path_done, future = pending.popleft()
                yield (path_done, *future.result())
        while pending:
            path_done, future = pending.popleft()
            yield (path_done, *future.result())
    finally:
        # Not waiting: a generator left unfinished is closed by whichever thread
        # finalises it, possibly one of this pool's, which cannot join itself.
        pool.shutdown(wait=False, cancel_futures=True)


class BadVideoReport:
    """The videos a build skipped, with the reason for each, per split."""

    def __init__(self, dataset: str):
        """Starts an empty report for `dataset` (a builder name and config)."""
        self.dataset = dataset
        self.skipped: dict[str, list[dict[str, str]]] = {}
        self.examples: dict[str, int] = {}

    def skip(self, split: str, path: str, reason: str) -> None:
        """Records one skipped video of `split`."""
        self.skipped.setdefault(split, []).append({"file": path, "reason": reason})

    def finish_split(self, split: str, examples: int) -> None:
        """Records that `split` is done with `examples` examples written."""
        self.examples[split] = examples
        self.skipped.setdefault(split, [])

    def as_dict(self) -> dict:
        """The JSON form: dataset, examples and skipped counts per split, skipped files."""
        return {"dataset": self.dataset, "examples": dict(self.examples),
                "skipped_count": {s: len(v) for s, v in self.skipped.items()},
                "skipped": {s: list(v) for s, v in self.skipped.items()}}

    def write(self, directory: str | os.PathLike, name: str) -> str:
        """Writes the JSON report into `directory`; returns its path."""
        path = os.path.join(os.fspath(directory), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.as_dict(), f, indent=1)
        return path

    def summary(self, split: str) -> str:
        """A finished split's count of examples and of skipped videos, then one line per skip."""
        skipped = self.skipped.get(split, [])
        lines = [f"{self.dataset} {split}: {self.examples[split]} examples written, "
                 f"{len(skipped)} videos skipped"]
        lines += [f"  skipped {entry['file']}: {entry['reason']}" for entry in skipped]
        return "\n".join(lines)


REPORT_FILE = "bad_videos.json"


class VideoDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the video builders: the bad-video report, the builder's source path.

    Subclasses create `self.report` (a `BadVideoReport`) in `_split_generators`
    and call `finish_split` when a split's generator is exhausted.
    """

    report: BadVideoReport

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """The file defining the builder class.

        TFDS 4.9.10 resolves this through the `importlib_resources` package,
        which it does not install on Python >= 3.9; the file path is all it needs.
        """
        return epath.Path(inspect.getfile(cls))

    def finish_split(self, split: str, examples: int) -> None:
        """Records a finished split, writes `REPORT_FILE` into the dataset directory, prints it."""
        self.report.finish_split(split, examples)
        self.report.write(self.data_dir, REPORT_FILE)
        print(self.report.summary(split))


def read_report(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
    """The bad-video report (`BadVideoReport.as_dict`) a build wrote beside its data."""
    path = os.path.join(builder.data_dir, REPORT_FILE)
    return json_io.read_json(path)


def tfds_build_main(dataset: str, module: str, argv: Sequence[str] | None = None) -> None:
    """Runs TFDS's `tfds build` command for one registered builder.

    The flags are exactly those of `tfds build` (`--manual_dir`, `--data_dir`,
    `--config`, `--overwrite`, ...). TFDS 4.9.10's `tfds` script imports its
    format-conversion command, which needs Apache Beam, at start-up; this entry
    point runs the same build command without that import.

    Args:
      dataset: the registered builder name, e.g. "clevrer".
      module: the module that registers it, e.g. "aloe.data.clevrer".
      argv: the command line (default `sys.argv`), program name first.
    """
    from absl import app  # pylint: disable=g-import-not-at-top
    from tensorflow_datasets.scripts.cli import build, cli_utils

    parse = cli_utils.make_flags_parser(build.Args, description=f"Builds the {dataset} dataset.")

    def parse_with_dataset(args: list[str]) -> build.Args:
        """The `tfds build` flags with this dataset and its module put in."""
        return parse([args[0], dataset, f"--imports={module}", *args[1:]])

    argv = list(sys.argv if argv is None else argv)
    app.run(lambda parsed: parsed.execute(), argv=argv, flags_parser=parse_with_dataset)

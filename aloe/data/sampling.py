"""Which rows and frames a process reads: the batching rules every pipeline shares.

Frames: training draws `sample_frames` (distinct, uniform, sorted per row: the
paper's) or `strided_frames` (the evaluation stride from a random start:
SlotFormer's Aloe), by name through `train_frame_sampler`; evaluation reads a
fixed set, by name through `eval_frame_choice`: `evenly_spaced_frames` (CLEVRER's stride
from frame 0) or `spanning_frames` (both ends included, CATER's).

Processes: a global batch of a training step is drawn identically on every
process, and each keeps its contiguous slice of rows (`ProcessShard.local`);
an evaluation pass gives each process a contiguous share of the rows
(`ProcessShard.rows`), and every process runs the same number of batches
(`ProcessShard.num_eval_batches`), the last ones padded (`pad_rows`) so that
collective steps stay in lockstep; `ProcessShard.eval_rows` yields each batch's
rows.
"""

import dataclasses
import math
from typing import Callable, Iterator

import numpy as np


def sample_frames(rng: np.random.Generator, batch: int, total_frames: int,
                  num_frames: int) -> np.ndarray:
    """int64 `[batch, num_frames]`: per row, distinct frames drawn uniformly, sorted."""
    order = np.argsort(rng.random((batch, total_frames)), axis=1)
    return np.sort(order[:, :num_frames], axis=1)


def strided_frames(rng: np.random.Generator, batch: int, total_frames: int,
                   num_frames: int) -> np.ndarray:
    """int64 `[batch, num_frames]`: per row `start + arange(num_frames) * stride`.

    The stride is `evenly_spaced_frames`'s, `total_frames // num_frames`, and the
    start is uniform over every position that keeps the last frame inside the
    video (CLEVRER: stride 5, start 0..7).
    """
    if not 1 <= num_frames <= total_frames:
        raise ValueError(f"num_frames must lie in 1..{total_frames}, got {num_frames}.")
    stride = total_frames // num_frames
    starts = rng.integers(0, total_frames - stride * (num_frames - 1), size=batch)
    return starts[:, None] + np.arange(num_frames, dtype=np.int64)[None] * stride


FrameSampler = Callable[[np.random.Generator, int, int, int], np.ndarray]
TRAIN_FRAME_SAMPLERS: dict[str, FrameSampler] = {"random": sample_frames,
                                                 "strided": strided_frames}


def _by_name(table: dict[str, Callable], name: str, field: str) -> Callable:
    """`table[name]`, or a ValueError naming the config `field` and the choices."""
    if name not in table:
        raise ValueError(f"{field} must be one of {tuple(table)}, got {name!r}.")
    return table[name]


def train_frame_sampler(name: str) -> FrameSampler:
    """The training frame sampler called `name` (`TRAIN_FRAME_SAMPLERS`)."""
    return _by_name(TRAIN_FRAME_SAMPLERS, name, "train_frames")


def evenly_spaced_frames(total_frames: int, num_frames: int) -> np.ndarray:
    """int64 `[num_frames]`: `arange(num_frames) * (total_frames // num_frames)`."""
    return np.arange(num_frames, dtype=np.int64) * (total_frames // num_frames)


def spanning_frames(total_frames: int, num_frames: int) -> np.ndarray:
    """int64 `[num_frames]`: evenly spread over `0..total_frames-1`, both ends included."""
    if not 1 <= num_frames <= total_frames:
        raise ValueError(f"num_frames must lie in 1..{total_frames}, got {num_frames}.")
    if num_frames == 1:
        return np.asarray([total_frames - 1], np.int64)
    return np.round(np.linspace(0, total_frames - 1, num_frames)).astype(np.int64)


# Evaluation frame choices: "strided" is the release's (25 of CLEVRER's 128 frames: 0, 5,
# .., 120), "spanning" reaches the last frame whatever the count (12 frames: 0, 12, .., 127,
# where the stride would stop at 110 and hide the video's end).
EVAL_FRAMES: dict[str, Callable[[int, int], np.ndarray]] = {
    "strided": evenly_spaced_frames, "spanning": spanning_frames}


def eval_frame_choice(name: str) -> Callable[[int, int], np.ndarray]:
    """The evaluation frames called `name` (`EVAL_FRAMES`): `(total, num) -> int64 [num]`."""
    return _by_name(EVAL_FRAMES, name, "eval_frames")


def process_rows(num_rows: int, process_index: int, process_count: int) -> np.ndarray:
    """int64 `[M]`: a process's contiguous share of `num_rows` rows.

    Shares differ in size by at most one and together cover every row once.
    """
    start = num_rows * process_index // process_count
    stop = num_rows * (process_index + 1) // process_count
    return np.arange(start, stop, dtype=np.int64)


def pad_rows(arrays: dict[str, np.ndarray], size: int,
             fill: dict[str, int] | int = 0) -> dict[str, np.ndarray]:
    """Pads every array's leading axis to `size` rows (`fill`: one value, or per key, else 0)."""
    padded = {}
    for key, array in arrays.items():
        value = fill if isinstance(fill, int) else fill.get(key, 0)
        extra = np.full((size - len(array),) + array.shape[1:], value, array.dtype)
        padded[key] = np.concatenate([array, extra])
    return padded


@dataclasses.dataclass(frozen=True)
class ProcessShard:
    """This process's part of global batches: `process_index` of `process_count`."""

    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if not 0 <= self.process_index < self.process_count:
            raise ValueError(f"process_index {self.process_index} is outside "
                             f"0..{self.process_count - 1}.")

    def local_size(self, global_size: int, name: str) -> int:
        """Rows per process of a global batch; `name` labels the error if it does not divide."""
        if global_size < 0 or global_size % self.process_count:
            raise ValueError(f"{name} = {global_size} must be a non-negative multiple of "
                             f"process_count = {self.process_count}.")
        return global_size // self.process_count

    def local(self, global_size: int, name: str) -> slice:
        """This process's contiguous slice of a global batch of `global_size` rows."""
        local = self.local_size(global_size, name)
        return slice(self.process_index * local, (self.process_index + 1) * local)

    def rows(self, num_rows: int) -> np.ndarray:
        """int64 `[M]`: this process's share of `num_rows` rows to evaluate once."""
        return process_rows(num_rows, self.process_index, self.process_count)

    def num_eval_batches(self, batch_size: int, *num_rows: int) -> int:
        """Batches of `batch_size` global rows that cover the largest share of `num_rows`."""
        local = self.local_size(batch_size, "batch_size")
        if local == 0:
            raise ValueError("batch_size must be positive.")
        largest_share = max(math.ceil(rows / self.process_count) for rows in num_rows)
        return math.ceil(largest_share / local)

    def eval_rows(self, batch_size: int, *num_rows: int) -> Iterator[tuple[np.ndarray, ...]]:
        """This process's rows of each evaluation batch, one array per row set.

        Args:
          batch_size: global rows per batch, a multiple of process_count.
          *num_rows: the sizes of the row sets evaluated side by side (e.g. the
            descriptive and the multiple-choice questions).

        Yields:
          `num_eval_batches(batch_size, *num_rows)` tuples (the same count on every
          process), each of one int64 array per row set with at most
          `batch_size / process_count` rows of this process's share, in order; the
          last batches hold fewer or none (pad them with `pad_rows`).
        """
        local = self.local_size(batch_size, "batch_size")
        shares = [self.rows(rows) for rows in num_rows]
        for batch in range(self.num_eval_batches(batch_size, *num_rows)):
            yield tuple(share[batch * local:(batch + 1) * local] for share in shares)

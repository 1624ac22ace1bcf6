"""The latent store: one array of per-frame object latents per scene, on disk.

Layout (the ALOE release's, DESIGN.md §4):

    {root}/vocab.json  {root}/train.json  {root}/valid.json   (question files)
    {root}/{split}/{scene_index}.npz                          (one array per scene)

Despite the suffix, each `.npz` file holds a plain `np.save` array (`.npy`
content), e.g. float32 `[frames=128, slots=8, d=16]` for CLEVRER or
`[301, 8, 36]` for CATER. Files are opened as file handles and read with
`np.load(f, allow_pickle=False)`, so the suffix does not matter; a real `.npz`
archive holding exactly one array is accepted as well. Split names are free
strings. Writes are atomic: a temporary file in the same folder is renamed
over the target, so readers never see half a file.
"""

import hashlib
import io
import os
import tempfile
import zipfile
from typing import Iterable, Sequence

import numpy as np

SUFFIX = ".npz"


class LatentStore:
    """Per-scene latent arrays of one split.

    Attributes:
      root: the store's root folder.
      split: the split name (a sub-folder of `root`).
      expected_shape: the shape every array must have, or None (any shape, but
        `load_all` still needs them equal).
      dtype: the dtype every array must have.
    """

    def __init__(self, root: str | os.PathLike, split: str,
                 expected_shape: Sequence[int] | None = None, dtype: np.dtype = np.float32):
        """Opens (without reading) the split folder `{root}/{split}`.

        Args:
          root: the store's root folder.
          split: the split name, e.g. "train", "valid" or "test".
          expected_shape: e.g. `(128, 8, 16)`; None accepts any shape.
          dtype: the required dtype (default float32).
        """
        if not split or os.sep in split or split in (".", ".."):
            raise ValueError(f"split must be a plain folder name, got {split!r}.")
        self.root = os.fspath(root)
        self.split = split
        self.expected_shape = (None if expected_shape is None
                               else tuple(int(n) for n in expected_shape))
        self.dtype = np.dtype(dtype)

    @property
    def directory(self) -> str:
        """The split's folder, `{root}/{split}`."""
        return os.path.join(self.root, self.split)

    def path(self, scene_index: int) -> str:
        """The file of one scene, `{root}/{split}/{scene_index}.npz`."""
        return os.path.join(self.directory, f"{int(scene_index)}{SUFFIX}")

    def has(self, scene_index: int) -> bool:
        """Whether the scene's file exists."""
        return os.path.isfile(self.path(scene_index))

    def scenes(self) -> list[int]:
        """The sorted scene indices that have a file (temporary files are skipped)."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            stem, suffix = os.path.splitext(name)
            if suffix == SUFFIX and stem.isascii() and stem.isdigit():
                found.append(int(stem))
        return sorted(found)

    def _check_header(self, shape: tuple[int, ...], dtype: np.dtype, path: str) -> None:
        if self.expected_shape is not None and shape != self.expected_shape:
            raise ValueError(f"{path}: latent array has shape {shape}, expected "
                             f"{self.expected_shape}.")
        if dtype != self.dtype:
            raise ValueError(f"{path}: latent array has dtype {dtype}, expected {self.dtype}.")

    def _check(self, array: np.ndarray, path: str) -> None:
        self._check_header(array.shape, array.dtype, path)
        if not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise ValueError(f"{path}: latent array has {bad} non-finite value(s).")

    def read(self, scene_index: int) -> np.ndarray:
        """Reads one scene's array, e.g. float32 `[frames, slots, d]`.

        Raises:
          FileNotFoundError: the scene has no file (the message names it).
          ValueError: naming the file when it is unreadable, or its array has the
            wrong shape, the wrong dtype or non-finite values.
        """
        path = self.path(scene_index)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: latent file of scene {scene_index} (split "
                                    f"{self.split!r}) does not exist.")
        try:
            with open(path, "rb") as f:
                loaded = np.load(f, allow_pickle=False)
                if isinstance(loaded, np.lib.npyio.NpzFile):
                    with loaded:
                        if len(loaded.files) != 1:
                            raise ValueError(f"{path}: npz archive holds {len(loaded.files)} "
                                             f"arrays ({loaded.files}); expected exactly one.")
                        loaded = loaded[loaded.files[0]]
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: cannot read the latent array ({err}).") from None
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(path)
                             else f"{path}: cannot read the latent array ({message}).") from None
        self._check(loaded, path)
        return loaded

    def _mapped(self, scene_index: int) -> np.ndarray | None:
        """The scene's `.npy` array memory-mapped (not read), or None if it is not one."""
        try:
            array = np.load(self.path(scene_index), mmap_mode="r", allow_pickle=False)
        except (OSError, EOFError, ValueError):
            return None
        if isinstance(array, np.ndarray):
            return array
        array.close()
        return None

    def read_frames(self, scene_index: int, frames: np.ndarray) -> np.ndarray:
        """`array[frames]` of one scene, reading only those frames from a `.npy` file.

        Args:
          scene_index: the scene.
          frames: int `[T]` frame indices.

        Raises:
          FileNotFoundError / ValueError: as `read` (only the picked frames' values
            are checked for non-finite ones).
        """
        array = self._mapped(scene_index)
        # `read` takes .npz archives (not memory-mappable) and names what is wrong.
        if (array is None or array.dtype != self.dtype
                or self.expected_shape not in (None, array.shape)):
            return self.read(scene_index)[frames]
        picked = np.array(array[frames])
        del array
        if not np.isfinite(picked).all():
            return self.read(scene_index)[frames]
        return picked

    def check_headers(self, scene_indices: Sequence[int]) -> tuple[int, ...]:
        """The common shape of the scenes' arrays, from their file headers (data not read).

        Raises:
          FileNotFoundError: a scene has no file (the message names it).
          ValueError: naming the file, when it is unreadable or an archive, or its
            dtype differs from `dtype`, or its shape from `expected_shape` or the
            first scene's.
        """
        if not len(scene_indices):
            raise ValueError(f"{self.directory}: no scenes to check.")
        first = None
        for scene_index in scene_indices:
            path = self.path(scene_index)
            array = self._mapped(scene_index)
            if array is None:  # Read whole: an archive, or `read` names what is wrong.
                array = self.read(scene_index)
            shape = tuple(array.shape)
            self._check_header(shape, array.dtype, path)
            del array
            if first is None:
                first = shape
            elif shape != first:
                raise ValueError(f"{path}: latent array has shape {shape}, but "
                                 f"{self.path(scene_indices[0])} has {first}.")
        return first

    def gather_frames(self, scene_indices: Sequence[int], frames: np.ndarray) -> np.ndarray:
        """`[B, T, ...]`: row `i` is `read_frames(scene_indices[i], frames[i])`.

        Args:
          scene_indices: `B` scenes (repeats allowed).
          frames: int `[B, T]` frame indices per row.

        Needs `expected_shape` (e.g. from `check_headers`) for the result's shape.
        """
        gathered = np.empty((len(scene_indices), frames.shape[1]) + self.expected_shape[1:],
                            self.dtype)
        for row, (scene_index, picked) in enumerate(zip(scene_indices, frames)):
            gathered[row] = self.read_frames(scene_index, picked)
        return gathered

    def write(self, scene_index: int, array: np.ndarray) -> None:
        """Writes one scene's array atomically (temporary file, then rename).

        Raises:
          ValueError: the array has the wrong shape or dtype, or non-finite values.
        """
        path = self.path(scene_index)
        array = np.asarray(array)
        self._check(array, path)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_atomically(path, buffer.getvalue())

    def load_all(self, scene_indices: Iterable[int] | None = None) -> np.ndarray:
        """Reads many scenes into one array, e.g. float32 `[num_scenes, frames, slots, d]`.

        Args:
          scene_indices: which scenes, in the order of the result's rows;
            default `self.scenes()`.

        Raises:
          FileNotFoundError / ValueError: as `read`, or a file whose shape differs
            from the first one's (the message names it).
        """
        scene_indices = self.scenes() if scene_indices is None else [int(s) for s in scene_indices]
        if not scene_indices:
            raise ValueError(f"{self.directory}: no scenes to load.")
        first = self.read(scene_indices[0])
        result = np.empty((len(scene_indices),) + first.shape, self.dtype)
        result[0] = first
        for row, scene_index in enumerate(scene_indices[1:], start=1):
            array = self.read(scene_index)
            if array.shape != first.shape:
                raise ValueError(f"{self.path(scene_index)}: latent array has shape {array.shape}, "
                                 f"but {self.path(scene_indices[0])} has {first.shape}.")
            result[row] = array
        return result


def read_npy_header(path: str, what: str = "latent array") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the array in a `.npy` file, from its header (data not read).

    Args:
      path: the `.npy` file.
      what: what the file holds, for error messages ("latent array", "frame file").

    Raises:
      ValueError: naming the file, when it cannot be read or is an archive.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the {what} ({err}).") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError(f"{path}: expected a .npy array, found an archive.")
    shape, dtype = tuple(array.shape), array.dtype
    del array
    return shape, dtype


def write_atomically(path: str, content: bytes) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it over `path`.

    Readers never see half a file; the folder is created if needed.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                         dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def labeled_subset(names: Sequence[int | str], fraction: float, seed: int = 0) -> np.ndarray:
    """bool `[len(names)]`: which videos keep their labels at a label fraction.

    Exactly `round(fraction * n)` videos are labelled: those whose hash of
    (seed, name) is smallest. The choice depends only on the seed and the
    video's own name, so it is the same across restarts, processes and
    orderings, and a smaller fraction's subset is contained in a larger one's.

    Args:
      names: the videos' names or scene indices.
      fraction: in (0, 1].
      seed: selects a different subset.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"labeled_fraction must be in (0, 1], got {fraction}.")
    keys = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(),
                                                    digest_size=8).digest(), "little")
                     for name in names], dtype=np.uint64)
    chosen = np.zeros(len(keys), bool)
    chosen[np.argsort(keys, kind="stable")[:round(fraction * len(keys))]] = True
    return chosen

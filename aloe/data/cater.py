r"""TFDS builder `cater`: CATER snitch localization videos at 64x64 with their grid cell.

One builder config per camera variant, `all_actions` (static camera) and
`all_actions_cameramotion` (moving camera). The manual directory is a CATER
root holding the variant directories (DESIGN.md §6), the real dataset or the
output of `python -m aloe.synthetic.cater`:

    {variant}/videos/CATER_new_NNNNNN.avi
    {variant}/scenes/CATER_new_NNNNNN.json          (optional)
    {variant}/lists/localize/{train,val}.txt        "<video file> <class>" per line

Build both variants with the stock command (`pip install -e .[tfds-cli]`), or
with this module, which takes the same flags and needs no apache-beam:

    tfds build aloe/data/cater.py --manual_dir=$CATER --data_dir=$TFDS_DATA
    python -m aloe.data.cater --manual_dir=$CATER --data_dir=$TFDS_DATA
    python -m aloe.data.cater --manual_dir=$CATER --data_dir=$TFDS_DATA --config=all_actions
    # skip bad videos instead of failing, and report them:
    python -m aloe.data.cater --manual_dir=$CATER --data_dir=$TFDS_DATA \
        --config='{"name": "all_actions_skip_bad", "variant": "all_actions", "skip_bad_videos": true}'

or from Python, after `import aloe.data.cater`:

    builder = tfds.builder("cater/all_actions", data_dir=TFDS_DATA)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=CATER))

Splits `train` and `validation` (`val.txt`), one example per list line,
keyed by the video file name (TFDS stores examples in its own hashed key
order): every frame (at least `min_frames`, 301 for CATER) decoded once
with PyAV and area-resized, full frame and no crop, to 64x64 (the policy of
`aloe.data.video_frames`; CATER's 320x240 is 4:3), the class 0..35 of the
list file, the video file name and the scene JSON text ("" when absent).

Errors name the file: a list line that does not parse (with its line number),
a class outside 0..35, a video listed twice, a scene file that is not JSON,
and an unreadable / truncated / too short / missing video (unless
`skip_bad_videos`: then skipped and listed in `bad_videos.json` in the dataset
directory, also printed).
"""

import dataclasses
import os
import re
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from aloe.data import video_frames
from aloe.json_io import read_json

VARIANTS = ("all_actions", "all_actions_cameramotion")
SPLIT_LISTS = {"train": "train.txt", "validation": "val.txt"}  # TFDS split -> list file
NUM_CLASSES = 36
_LIST_LINE = re.compile(r"^(\S+\.avi)\s+(\d+)$")


@dataclasses.dataclass
class CaterConfig(tfds.core.BuilderConfig):
    """How one CATER variant is turned into examples.

    Attributes:
      variant: the variant directory; default: the config's name.
      resolution: side of the square output frames (64 in the paper).
      min_frames: a video with fewer frames is bad (CATER has 301).
      skip_bad_videos: skip and report bad videos instead of raising.
      decode_threads: videos decoded and resized at once.
    """
    variant: str = ""
    resolution: int = 64
    min_frames: int = 301
    skip_bad_videos: bool = False
    decode_threads: int = 4

    @property
    def variant_dir(self) -> str:
        """The variant directory name under the CATER root."""
        return self.variant or self.name


def read_list_file(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Parses a localize list file.

    Args:
      path: e.g. `all_actions/lists/localize/train.txt`, one
        `"<video file> <class>"` line per video (blank lines are ignored).

    Returns:
      (video file name, class) per line, in file order.

    Raises:
      ValueError: naming the file and line number of a line that does not
        parse, a class outside 0..35, or a video listed twice.
    """
    path = os.fspath(path)
    rows: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            match = _LIST_LINE.match(line.strip())
            if not match:
                raise ValueError(f"{path}, line {number}: expected '<video>.avi <class>', got "
                                 f"{line.rstrip(chr(10))!r}.")
            name, label = match.group(1), int(match.group(2))
            if label >= NUM_CLASSES:
                raise ValueError(f"{path}, line {number}: class {label} is outside "
                                 f"0..{NUM_CLASSES - 1}.")
            if name in seen:
                raise ValueError(f"{path}, line {number}: {name} is already listed on line "
                                 f"{seen[name]}.")
            seen[name] = number
            rows.append((name, label))
    return rows


# Run with `python -m`, this file executes as `__main__` and the build command
# then imports it under its real name: only that copy registers the builder.
class Cater(video_frames.VideoDatasetBuilder, skip_registration=__name__ == "__main__"):
    """CATER localization videos (all frames, 64x64) and grid cells; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "All frames at 64x64 (area resize of the full frame), "
                              "localize class, scene JSON."}
    BUILDER_CONFIGS = [
        CaterConfig(name="all_actions", description="Static camera."),
        CaterConfig(name="all_actions_cameramotion", description="Moving camera."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put CATER (or `python -m aloe.synthetic.cater` output) in manual_dir: "
        "{variant}/videos/*.avi, {variant}/scenes/*.json (optional), "
        "{variant}/lists/localize/{train,val}.txt for variant in " + ", ".join(VARIANTS) + ".")

    def _info(self) -> tfds.core.DatasetInfo:
        """The features; the frame size follows the config's resolution."""
        size = self.builder_config.resolution
        return self.dataset_info_from_configs(
            description="CATER (Girdhar & Ramanan 2020) snitch localization: frames and grid cell.",
            features=tfds.features.FeaturesDict({
                # uint8 [T, 64, 64, 3], each frame stored as PNG.
                "video": tfds.features.Video(shape=(None, size, size, 3)),
                "video_name": tfds.features.Text(),  # e.g. "CATER_new_000123.avi"
                # The snitch's final cell row * 6 + col, from the list file.
                "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                # int32 [2]: (height, width) of the source video.
                "source_size": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                "scene": tfds.features.Text(),  # the scene file's JSON text; "" if none.
            }),
            supervised_keys=("video", "label"),
            homepage="https://rohitgirdhar.github.io/CATER/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        """Reads and checks both list files, then one generator per split."""
        root = os.path.join(os.fspath(dl_manager.manual_dir), self.builder_config.variant_dir)
        if not os.path.isdir(root):
            raise ValueError(f"{root}: the CATER variant directory is missing.")
        self.report = video_frames.BadVideoReport(f"{self.name}/{self.builder_config.name}")
        lists = {split: os.path.join(root, "lists", "localize", name)
                 for split, name in SPLIT_LISTS.items()}
        rows = {split: read_list_file(path) for split, path in lists.items()}
        train_names = {name for name, _ in rows["train"]}
        for name, _ in rows["validation"]:
            if name in train_names:
                raise ValueError(f"{lists['validation']}: {name} is also listed in "
                                 f"{lists['train']}.")
        return {split: self._generate_examples(split, root, split_rows)
                for split, split_rows in rows.items()}

    def _generate_examples(self, split: str, root: str, rows: list[tuple[str, int]]
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(video name, example) per list line; bad videos raise or are reported."""
        config = self.builder_config
        paths = [os.path.join(root, "videos", name) for name, _ in rows]
        decoded = video_frames.decode_videos(paths, config.resolution, config.min_frames,
                                             config.decode_threads)
        written = 0
        for (name, label), (path, frames, source_size) in zip(rows, decoded):
            if isinstance(frames, video_frames.VideoError):
                if not config.skip_bad_videos:
                    raise frames
                self.report.skip(split, path, str(frames))
                continue
            scene_path = os.path.join(root, "scenes", os.path.splitext(name)[0] + ".json")
            scene = ""
            if os.path.isfile(scene_path):
                read_json(scene_path)  # A scene file must be valid JSON.
                with open(scene_path, encoding="utf-8") as f:
                    scene = f.read()
            written += 1
            yield name, {"video": frames, "video_name": name, "label": label,
                         "source_size": np.asarray(source_size, np.int32), "scene": scene}
        self.finish_split(split, written)


if __name__ == "__main__":
    video_frames.tfds_build_main("cater", "aloe.data.cater")

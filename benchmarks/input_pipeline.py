"""Speed of the video datasets: TFDS build (videos/s) and tf.data pipelines (batches/s).

Builds the `clevrer` and `cater` (all_actions) TFDS datasets from a small
generated dataset at the real resolutions (CLEVRER 480x320 mp4, CATER 320x240
avi), or from real data with `--clevrer_dir` / `--cater_dir` (then only the
first `--max_videos_per_split` videos of each split are built), and times:

- build: videos/s through decode (PyAV) + area resize to 64x64 + PNG + TFRecord;
- `pipeline.video_batches` (training) at the paper's shapes: CLEVRER 16 x 25
  frames, CATER 8 x 80 frames, float32 64x64x3.

Each pipeline's batches/s are printed next to the rate its consumer takes them:
the ALOE train step (`--aloe_steps_per_sec`, default 0.158 = 1 / 6.34 s, the
paper-size CLEVRER step measured by `benchmarks/train_step.py`, see
BUILD_NOTES.md; the CATER model's step is not measured, the same figure is
used). MONet trains from a frame store, read by index (`aloe.tasks.monet`), not
through tf.data. The last line, `ratio_pipeline_to_step=<number>`, is the
smallest ratio of pipeline batches/s to consumer steps/s: above 1 the input
pipeline keeps up with training.

    python benchmarks/input_pipeline.py                  # about 1-2 minutes on 2 cores
    python benchmarks/input_pipeline.py --clevrer_dir $CLEVRER --cater_dir $CATER

Pipelines read from one process (process 0 of 1) with TFDS's default reading
options; the timings include PNG decoding of the selected frames, the
float conversion and the transfer to NumPy.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Iterable

import tensorflow_datasets as tfds

from aloe.data import cater, clevrer, pipeline
from aloe.synthetic import cater as cater_gen
from aloe.synthetic import clevrer as clevrer_gen

MEASURED_ALOE_STEPS_PER_SEC = 1 / 6.34  # BUILD_NOTES.md, training-step benchmark.


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clevrer_dir", help="a CLEVRER root (default: generate one)")
    parser.add_argument("--cater_dir", help="a CATER root (default: generate one)")
    parser.add_argument("--clevrer_videos", type=int, default=6,
                        help="videos to generate (split 60/20/20)")
    parser.add_argument("--cater_videos", type=int, default=4, help="videos to generate")
    parser.add_argument("--max_videos_per_split", type=int, default=8,
                        help="with real data: videos built per split")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="time spent timing each pipeline (after 2 warm-up batches)")
    parser.add_argument("--aloe_steps_per_sec", type=float, default=MEASURED_ALOE_STEPS_PER_SEC)
    parser.add_argument("--work_dir", help="keep generated data and datasets here")
    return parser.parse_args()


def _subset_clevrer(root: str, out: str, per_split: int) -> None:
    """Copies the first `per_split` scenes of each split (videos, annotations, questions)."""
    for split in clevrer.SPLITS.values():
        with open(os.path.join(root, "questions", f"{split}.json")) as f:
            entries = json.load(f)[:per_split]
        os.makedirs(os.path.join(out, "questions"), exist_ok=True)
        with open(os.path.join(out, "questions", f"{split}.json"), "w") as f:
            json.dump(entries, f)
        for entry in entries:
            source = clevrer_gen.scene_paths(root, split, entry["scene_index"])
            target = clevrer_gen.scene_paths(out, split, entry["scene_index"])
            for kind in ("video", "annotation"):
                if os.path.exists(source[kind]):
                    os.makedirs(os.path.dirname(target[kind]), exist_ok=True)
                    shutil.copy(source[kind], target[kind])


def _subset_cater(root: str, out: str, per_split: int) -> None:
    """Copies the first `per_split` listed videos of each all_actions list."""
    variant = os.path.join(root, "all_actions")
    for list_name in cater.SPLIT_LISTS.values():
        rows = cater.read_list_file(os.path.join(variant, "lists", "localize", list_name))
        rows = rows[:per_split]
        target = os.path.join(out, "all_actions")
        os.makedirs(os.path.join(target, "lists", "localize"), exist_ok=True)
        with open(os.path.join(target, "lists", "localize", list_name), "w") as f:
            f.writelines(f"{name} {label}\n" for name, label in rows)
        for name, _ in rows:
            for folder, file_name in (("videos", name),
                                      ("scenes", os.path.splitext(name)[0] + ".json")):
                if os.path.exists(os.path.join(variant, folder, file_name)):
                    os.makedirs(os.path.join(target, folder), exist_ok=True)
                    shutil.copy(os.path.join(variant, folder, file_name),
                                os.path.join(target, folder, file_name))


def _build(builder: tfds.core.DatasetBuilder, manual_dir: str) -> float:
    """Builds the dataset; returns videos/s."""
    start = time.perf_counter()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    seconds = time.perf_counter() - start
    videos = sum(split.num_examples for split in builder.info.splits.values())
    return videos / seconds


def _batches_per_second(batches: Iterable[dict], seconds: float) -> float:
    """Batches/s after two warm-up batches, timed for about `seconds`."""
    iterator = iter(batches)
    for _ in range(2):
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    """Generates (or subsets) the data, builds, times the pipelines, prints the table."""
    args = parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="aloe_input_pipeline_")
    clevrer_root, cater_root = os.path.join(work, "clevrer"), os.path.join(work, "cater")
    if args.clevrer_dir:
        _subset_clevrer(args.clevrer_dir, clevrer_root, args.max_videos_per_split)
    elif not os.path.isdir(clevrer_root):
        clevrer_gen.generate_clevrer(clevrer_root, args.clevrer_videos, seed=0, progress=False)
    if args.cater_dir:
        _subset_cater(args.cater_dir, cater_root, args.max_videos_per_split)
    elif not os.path.isdir(cater_root):
        cater_gen.generate_cater(cater_root, args.cater_videos, seed=0, val_fraction=0.4,
                                 variants=("all_actions",), progress=False)
    data_dir = os.path.join(work, "tfds")
    shutil.rmtree(data_dir, ignore_errors=True)
    clevrer_builder = clevrer.Clevrer(data_dir=data_dir)
    cater_builder = cater.Cater(data_dir=data_dir, config="all_actions")
    build_rates = {"clevrer": _build(clevrer_builder, clevrer_root),
                   "cater": _build(cater_builder, cater_root)}

    process = dict(process_index=0, process_count=1)
    pipelines = {
        "clevrer video 16x25": (pipeline.video_batches(
            clevrer_builder, "train", num_frames=25, global_batch_size=16, training=True,
            seed=0, **process), args.aloe_steps_per_sec),
        "cater video 8x80": (pipeline.video_batches(
            cater_builder, "train", num_frames=80, global_batch_size=8, training=True,
            seed=0, **process), args.aloe_steps_per_sec),
    }
    print(f"build: clevrer {build_rates['clevrer']:.2f} videos/s "
          f"(480x320 mp4, 128 frames), cater {build_rates['cater']:.2f} videos/s "
          f"(320x240 avi, 301 frames)")
    ratios = []
    for name, (batches, consumer_rate) in pipelines.items():
        rate = _batches_per_second(batches, args.seconds)
        ratios.append(rate / consumer_rate)
        print(f"{name}: {rate:.2f} batches/s, consumer {consumer_rate:.3f} steps/s, "
              f"ratio {ratios[-1]:.1f}")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ratio_pipeline_to_step={min(ratios):.2f}")


if __name__ == "__main__":
    main()

"""Mini-CATER: a small dataset in CATER's on-disk format for snitch localization.

Writes, for each variant (`all_actions`: static camera, and
`all_actions_cameramotion`: a camera that glides around the scene),

    {out}/{variant}/videos/CATER_new_NNNNNN.avi     301 frames, MPEG-4
    {out}/{variant}/scenes/CATER_new_NNNNNN.json    objects, locations, movements
    {out}/{variant}/lists/localize/{train,val}.txt  "CATER_new_NNNNNN.avi <class>"

where the class is the snitch's final grid cell, `row * 6 + col` with
`col = floor(x) + 3`, `row = floor(y) + 3`. Every video is a function of
(seed, variant, index) alone, so any number of workers gives the same files.
The two variants hold different scenes, as CATER's do.

    python -m aloe.synthetic.cater --out /tmp/mini_cater --num_videos 100 --seed 0

(about 1 s of CPU per 320x240 video; see the printed report). With
`--render false` no videos are written, only the scene files and lists, the
same as a rendering run's with the same seed (e.g. for
`aloe.data.object_states --dataset=cater`), at a small fraction of the cost.
"""

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np
import tqdm

from aloe.synthetic.cater_render import CameraPath, orbiting_camera, render_scene, static_camera
from aloe.synthetic.cater_scene import (NUM_FRAMES, CaterScene, localize_class, simulate_scene,
                                        snitch_tracking_flags)
from aloe.synthetic import clevrer
from aloe.synthetic.video import write_video

VARIANTS = ("all_actions", "all_actions_cameramotion")
NUM_CLASSES = 36
FPS = 24


def video_name(index: int) -> str:
    """CATER's file stem for video `index`, e.g. `CATER_new_000007`."""
    return f"CATER_new_{index:06d}"


def video_rng(seed: int, variant: str, index: int) -> np.random.Generator:
    """The generator that alone decides one video's scene and camera."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown CATER variant {variant!r}; expected one of {VARIANTS}.")
    return np.random.default_rng([seed, VARIANTS.index(variant), index])


def make_scene(seed: int, variant: str, index: int, width: int = 320,
               height: int = 240) -> tuple[CaterScene, CameraPath]:
    """Simulates one video's scene and draws its camera path (no rendering)."""
    rng = video_rng(seed, variant, index)
    scene = simulate_scene(rng, NUM_FRAMES)
    if variant == "all_actions":
        return scene, static_camera(rng, NUM_FRAMES)
    return scene, orbiting_camera(rng, NUM_FRAMES, width, height)


def make_video(seed: int, variant: str, index: int, width: int = 320,
               height: int = 240) -> tuple[CaterScene, CameraPath, np.ndarray]:
    """Simulates and renders one video.

    Returns:
      The scene, the camera path, and uint8 frames `[301, height, width, 3]`.
    """
    scene, camera = make_scene(seed, variant, index, width, height)
    return scene, camera, render_scene(scene, camera, width, height)


def _frame_dict(values: np.ndarray) -> dict[str, list[float]]:
    """`[frames, 3]` -> {"0": [x, y, z], ...} as CATER writes locations."""
    return {str(t): [float(v) for v in row] for t, row in enumerate(values)}


def scene_json(scene: CaterScene, camera: CameraPath, index: int, width: int,
               height: int) -> dict:
    """CATER's scene JSON for one video.

    `objects[i]` holds `shape`, `size`, `sized`, `material`, `color`,
    `instance`, `3d_coords` and `rotation` (degrees) at frame 0, `pixel_coords`
    `[col, row, depth]` at frame 0, and `locations` `{"0": [x, y, z], ...,
    "300": [...]}`; `movements` maps each instance to `[action, other instance
    or null, start frame, end frame]` entries. `camera` (not in CATER) records
    the camera centre per frame.
    """
    first = scene.locations[:, 0]
    pixels = camera.project(np.asarray(first)[None], width, height)[0]
    rotation = camera.rotations()[0]
    behind = rotation[2] * np.array([1.0, 1.0, 0.0])
    behind /= np.linalg.norm(behind)
    left = -rotation[0] * np.array([1.0, 1.0, 0.0])
    left /= np.linalg.norm(left)
    objects = []
    for i, obj in enumerate(scene.objects):
        objects.append({
            "shape": obj.shape, "size": obj.size, "sized": obj.sized,
            "material": obj.material, "color": obj.color, "instance": obj.instance,
            "3d_coords": [float(v) for v in first[i]],
            "rotation": float(np.degrees(scene.yaw[i, 0]) % 360.0),
            "pixel_coords": [int(np.floor(pixels[i, 0])), int(np.floor(pixels[i, 1])),
                             float(pixels[i, 2])],
            "locations": _frame_dict(scene.locations[i]),
        })
    return {
        "split": "new",
        "image_index": index,
        "image_filename": video_name(index) + ".avi",
        "objects": objects,
        "movements": {name: [list(m) for m in moves] for name, moves in scene.movements.items()},
        "directions": {
            "behind": behind.tolist(), "front": (-behind).tolist(),
            "left": left.tolist(), "right": (-left).tolist(),
            "above": [0.0, 0.0, 1.0], "below": [0.0, 0.0, -1.0]},
        "camera": {
            "look_at": camera.look_at.tolist(),
            "horizontal_fov_degrees": camera.horizontal_fov_degrees,
            "image_size": [width, height],
            "locations": _frame_dict(camera.positions)},
    }


@dataclasses.dataclass(frozen=True)
class _VideoJob:
    """Everything a worker process needs to write one video."""
    out: str
    variant: str
    index: int
    seed: int
    width: int
    height: int
    write_videos: bool = True


def _write_video_files(job: _VideoJob) -> dict:
    """Writes one video's scene JSON (and renders the video); returns its summary."""
    scene, camera = make_scene(job.seed, job.variant, job.index, job.width, job.height)
    root = os.path.join(job.out, job.variant)
    name = video_name(job.index)
    final = scene.locations[scene.snitch_index(), -1]
    if not (-3.0 <= final[0] < 3.0 and -3.0 <= final[1] < 3.0):
        raise RuntimeError(f"{name} ({job.variant}): the snitch ends off the grid at {final[:2]}.")
    if job.write_videos:
        write_video(os.path.join(root, "videos", name + ".avi"),
                    render_scene(scene, camera, job.width, job.height), fps=FPS)
    scene_path = os.path.join(root, "scenes", name + ".json")
    os.makedirs(os.path.dirname(scene_path), exist_ok=True)
    with open(scene_path + ".partial", "w") as f:
        json.dump(scene_json(scene, camera, job.index, job.width, job.height), f)
    os.replace(scene_path + ".partial", scene_path)
    return {"variant": job.variant, "index": job.index,
            "label": localize_class(final[0], final[1]), **snitch_tracking_flags(scene)}


def validation_indices(num_videos: int, val_fraction: float, seed: int) -> set[int]:
    """Indices of the videos listed in `val.txt` (the same in both variants)."""
    num_val = int(round(num_videos * val_fraction))
    order = np.random.default_rng([seed, len(VARIANTS)]).permutation(num_videos)
    return {int(i) for i in order[:num_val]}


def _check_arguments(num_videos: int, width: int, height: int, workers: int,
                     val_fraction: float, variants: Sequence[str]) -> None:
    """Raises ValueError naming the first bad argument of `generate_cater`."""
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}.")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 16, got {width}x{height}.")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {list(variants)}.")


def generate_cater(out: str, num_videos: int, seed: int, width: int = 320, height: int = 240,
                   workers: int = 2, val_fraction: float = 0.2,
                   variants: Sequence[str] = VARIANTS, progress: bool = True,
                   render_videos: bool = True) -> dict:
    """Writes a mini-CATER dataset and returns (and prints) a report.

    Args:
      out: output root; one directory per variant is written below it.
      num_videos: videos per variant.
      seed: dataset seed; video i of a variant draws from (seed, variant, i).
      width, height: frame size in pixels (even).
      workers: processes rendering videos in parallel (1: in this process).
      val_fraction: share of the videos listed in `val.txt`.
      variants: which of `VARIANTS` to write.
      progress: show a progress bar.
      render_videos: False writes no videos (scene files and lists as with True).

    Returns:
      `videos` {variant: {"train": n, "val": n}}; the shares of videos whose
      snitch `snitch_ends_hidden`, `snitch_moved_while_hidden`, or either
      (`snitch_needs_tracking`), overall and in `per_variant`;
      `class_histogram` {variant: 36 counts}; `seconds`; `videos_per_second`.
    """
    _check_arguments(num_videos, width, height, workers, val_fraction, variants)
    jobs = [_VideoJob(os.fspath(out), v, i, seed, width, height, render_videos)
            for v in variants for i in range(num_videos)]
    start = time.perf_counter()
    bar = tqdm.tqdm(total=len(jobs), desc="mini-CATER videos", unit="video", disable=not progress)
    # Always in fresh spawned processes, even with one worker, so that the pixels
    # never depend on the caller's floating-point state (see aloe.synthetic.clevrer).
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        summaries = []
        for summary in pool.imap_unordered(_write_video_files, jobs):
            summaries.append(summary)
            bar.update()
    bar.close()
    seconds = time.perf_counter() - start
    val = validation_indices(num_videos, val_fraction, seed)
    report: dict = {"videos": {}, "per_variant": {}, "class_histogram": {}}
    for variant in variants:
        rows = sorted((s for s in summaries if s["variant"] == variant), key=lambda s: s["index"])
        lists = os.path.join(out, variant, "lists", "localize")
        os.makedirs(lists, exist_ok=True)
        for split in ("train", "val"):
            chosen = [s for s in rows if (s["index"] in val) == (split == "val")]
            with open(os.path.join(lists, f"{split}.txt"), "w") as f:
                f.writelines(f"{video_name(s['index'])}.avi {s['label']}\n" for s in chosen)
        report["videos"][variant] = {"train": num_videos - len(val), "val": len(val)}
        report["per_variant"][variant] = _tracking_shares(rows)
        report["class_histogram"][variant] = np.bincount(
            [s["label"] for s in rows], minlength=NUM_CLASSES).tolist()
    report.update(_tracking_shares(summaries))
    report["seconds"] = seconds
    report["videos_per_second"] = len(jobs) / seconds
    print(format_report(report))
    return report


def _tracking_shares(summaries: list[dict]) -> dict[str, float]:
    """Shares of videos whose snitch ends hidden / moved while hidden / either."""
    n = max(len(summaries), 1)
    ends = sum(s["ends_hidden"] for s in summaries)
    moved = sum(s["moved_while_hidden"] for s in summaries)
    either = sum(s["ends_hidden"] or s["moved_while_hidden"] for s in summaries)
    return {"snitch_ends_hidden": ends / n, "snitch_moved_while_hidden": moved / n,
            "snitch_needs_tracking": either / n}


def format_report(report: dict) -> str:
    """Readable lines for a `generate_cater` report."""
    lines = []
    for variant, counts in report["videos"].items():
        shares = report["per_variant"][variant]
        lines.append(f"{variant}: {counts['train']} train + {counts['val']} val videos; snitch ends "
                     f"hidden {shares['snitch_ends_hidden']:.1%}, moved while hidden "
                     f"{shares['snitch_moved_while_hidden']:.1%}, either "
                     f"{shares['snitch_needs_tracking']:.1%}")
        lines.append(f"  class histogram (row-major 6x6): {report['class_histogram'][variant]}")
    lines.append(f"all videos: snitch needs tracking through occlusion in "
                 f"{report['snitch_needs_tracking']:.1%}; {report['videos_per_second']:.2f} "
                 f"videos/s ({report['seconds']:.1f} s)")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Command line entry point; returns the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output root directory")
    parser.add_argument("--num_videos", type=int, required=True, help="videos per variant")
    parser.add_argument("--seed", type=int, required=True, help="dataset seed")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--render", type=clevrer.boolean_flag, default=True,
                        help="true: write videos; false: scene files and lists only")
    args = parser.parse_args(argv)
    return generate_cater(args.out, args.num_videos, args.seed, width=args.width,
                          height=args.height, workers=args.workers,
                          val_fraction=args.val_fraction, variants=args.variants,
                          render_videos=args.render)


if __name__ == "__main__":
    main(sys.argv[1:])

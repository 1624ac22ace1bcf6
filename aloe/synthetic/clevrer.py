"""Mini-CLEVRER: simulated and rendered videos with questions, in CLEVRER's file layout.

    python -m aloe.synthetic.clevrer --out /tmp/mini_clevrer --num_videos 300 --seed 0
        [--width 480 --height 320 --workers 2 --questions_per_video 15 --render true]

writes, for N videos split 60 / 20 / 20 into train / validation / test with scene
indices numbered consecutively from 0 (folders in CLEVRER's 1000-video chunks):

    videos/{split}/video_00000-01000/video_00000.mp4          128 frames, H.264
    annotations/{split}/annotation_00000-01000/annotation_00000.json   official schema
    questions/{train,validation,test}.json                     test without answers
    masks/{split}/mask_00000-01000/mask_00000.npz              key "masks": uint8 [128, H, W]
    simulation/{split}/sim_00000-01000/sim_00000.json          {"future", "counterfactuals"}

With `--render false` only the annotations, simulation files and questions
are written (no videos, no masks), identical to those of a rendering run with
the same seed and frame aspect (`--width / --height` set the camera, so they
still matter): the simulation with its counterfactual worlds is most of what
is left, so thousands of videos with every question type take minutes (e.g.
for `aloe.data.object_states`). Rendering costs about one CPU-second per
480x320 video (simulation with counterfactual worlds, rendering, H.264
encoding, masks): about 2 videos/s with 2 workers on two free cores. The simulation files take about 0.5 MB per video.

Masks hold 0 for the background and object_id + 1 for each object. The
simulation files keep what the simulator knows beyond the visible frames (the
unseen continuation and the worlds re-simulated without each object, keyed by
the removed object's id as a string), so every answer can be recomputed with
`aloe.clevrer.executor.Scene.from_annotation(annotation, future, counterfactuals)`.

Each video depends only on (seed, scene_index), so the output does not depend on
the number of workers. Questions are drawn per video by
`aloe.synthetic.clevrer_questions.candidate_questions` and then selected per
split so that no descriptive answer dominates its family.
"""

import argparse
import collections
from concurrent import futures
import dataclasses
import json
import multiprocessing
import os
import time
from typing import Any, Sequence

import numpy as np
import tqdm

from aloe.clevrer.executor import Scene
from aloe.synthetic import clevrer_questions, physics, render, video

SPLITS = ("train", "validation", "test")
CHUNK = 1000  # Videos per folder, as in CLEVRER.


def split_sizes(num_videos: int) -> dict[str, int]:
    """Videos per split: 60 / 20 / 20 percent, rounded, the test split taking the rest."""
    train, validation = round(0.6 * num_videos), round(0.2 * num_videos)
    return {"train": train, "validation": validation, "test": num_videos - train - validation}


def scene_paths(out: str | os.PathLike, split: str, scene_index: int) -> dict[str, str]:
    """The video, annotation, mask and simulation files of one scene."""
    low = scene_index // CHUNK * CHUNK
    chunk = f"{low:05d}-{low + CHUNK:05d}"
    number = f"{scene_index:05d}"
    return {
        "video": os.path.join(out, "videos", split, f"video_{chunk}", f"video_{number}.mp4"),
        "annotation": os.path.join(out, "annotations", split, f"annotation_{chunk}",
                                   f"annotation_{number}.json"),
        "mask": os.path.join(out, "masks", split, f"mask_{chunk}", f"mask_{number}.npz"),
        "simulation": os.path.join(out, "simulation", split, f"sim_{chunk}", f"sim_{number}.json"),
    }


def _write_json(path: str, value: Any) -> None:
    """Writes JSON atomically (a file is either complete or absent)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(value, f, separators=(",", ":"))
    os.replace(path + ".partial", path)


@dataclasses.dataclass(frozen=True)
class _Job:
    """What one worker needs to make one scene."""
    out: str
    split: str
    scene_index: int
    seed: int
    width: int
    height: int
    config: physics.PhysicsConfig
    write_videos: bool = True


def _scene_statistics(annotation: dict[str, Any]) -> dict[str, int]:
    """Objects, collisions, entrances, exits and whether a collision chain occurs."""
    events = annotation["collision"]
    seen = np.array([[o["inside_camera_view"] for o in f["objects"]]
                     for f in annotation["motion_trajectory"]])
    chained = any(set(a["object_ids"]) & set(b["object_ids"]) and a["frame_id"] < b["frame_id"]
                  and set(a["object_ids"]) != set(b["object_ids"]) for a in events for b in events)
    return {"objects": len(annotation["object_property"]), "collisions": len(events),
            "entrances": int((seen[1:] & ~seen[:-1]).sum()),
            "exits": int((~seen[1:] & seen[:-1]).sum()), "collision_chain": int(chained)}


def _make_scene(job: _Job) -> dict[str, Any]:
    """Simulates (and renders) one scene, writes it; returns its candidate questions and statistics."""
    camera = physics.Camera(aspect=job.width / job.height)
    scene = physics.simulate_scene(job.scene_index, np.random.default_rng([job.seed, job.scene_index]),
                                   job.config, camera)
    annotation = scene["annotation"]
    paths = scene_paths(job.out, job.split, job.scene_index)
    if job.write_videos:
        frames, masks = render.render_video(annotation, job.width, job.height, camera)
        video.write_video(paths["video"], frames)
        os.makedirs(os.path.dirname(paths["mask"]), exist_ok=True)
        np.savez_compressed(paths["mask"], masks=masks)
    _write_json(paths["annotation"], annotation)
    counterfactuals = {str(k): v for k, v in scene["counterfactuals"].items()}
    _write_json(paths["simulation"], {"scene_index": job.scene_index,
                                      "video_filename": annotation["video_filename"],
                                      "future": scene["future"], "counterfactuals": counterfactuals})
    executable = Scene.from_annotation(annotation, scene["future"], counterfactuals)
    candidates = clevrer_questions.candidate_questions(
        executable, np.random.default_rng([job.seed, job.scene_index, 1]))
    return {"scene_index": job.scene_index, "split": job.split, "candidates": candidates,
            "statistics": _scene_statistics(annotation)}


def _without_answers(question: dict[str, Any]) -> dict[str, Any]:
    """A question as CLEVRER's test file holds it: no answer, no choice answers."""
    stripped = {k: v for k, v in question.items() if k != "answer"}
    if "choices" in stripped:
        stripped["choices"] = [{k: v for k, v in c.items() if k != "answer"}
                               for c in stripped["choices"]]
    return stripped


def generate_clevrer(out: str | os.PathLike, num_videos: int, seed: int, *, width: int = 480,
                     height: int = 320, workers: int = 2, questions_per_video: int = 15,
                     config: physics.PhysicsConfig | None = None,
                     progress: bool = True, render_videos: bool = True) -> dict[str, Any]:
    """Writes a mini-CLEVRER dataset under `out` (layout in the module docstring).

    Args:
      out: the dataset root.
      num_videos: number of videos over all splits.
      seed: dataset seed; video i depends only on (seed, i).
      width, height: frame size in pixels (even numbers).
      workers: processes simulating and rendering videos (always spawned processes).
      questions_per_video: questions kept per video after balancing.
      config: physics and scenario settings (default `physics.PhysicsConfig()`).
      progress: whether to show a progress bar.
      render_videos: False writes no videos and masks (annotations, simulation
        files and questions are the same as with True).

    Returns:
      A report: videos per split, questions per split and type, answer balance per
      family (`clevrer_questions.balance_report`), scene statistics, timing.
    """
    out = os.fspath(out)
    if num_videos < 1:
        raise ValueError(f"--num_videos must be at least 1, got {num_videos}.")
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"--width / --height must be even and positive, got {width}x{height}.")
    config = config or physics.PhysicsConfig()
    sizes = split_sizes(num_videos)
    jobs, first = [], 0
    for split in SPLITS:
        jobs += [_Job(out, split, i, seed, width, height, config, render_videos)
                 for i in range(first, first + sizes[split])]
        first += sizes[split]
    start = time.perf_counter()
    bar = tqdm.tqdm(total=len(jobs), desc="mini-CLEVRER videos", unit="video", disable=not progress)
    # Always in fresh spawned processes, even with one worker: a host process that
    # has run JAX or TensorFlow may have changed its floating-point state (e.g.
    # denormal flushing), which would make the rendered pixels depend on the caller.
    # A worker that dies raises BrokenProcessPool here instead of hanging.
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max(1, workers), mp_context=context) as pool:
        results = []
        for done in futures.as_completed([pool.submit(_make_scene, job) for job in jobs]):
            results.append(done.result())
            bar.update()
    bar.close()
    elapsed = time.perf_counter() - start
    results.sort(key=lambda r: r["scene_index"])
    selected: dict[int, list[dict]] = {}
    question_counts = {}
    for split_number, split in enumerate(SPLITS):
        in_split = [r for r in results if r["split"] == split]
        chosen = clevrer_questions.select_balanced(
            {r["scene_index"]: r["candidates"] for r in in_split},
            np.random.default_rng([seed, 2, split_number]), questions_per_video)
        selected.update(chosen)
        entries = [{"scene_index": r["scene_index"],
                    "video_filename": f"video_{r['scene_index']:05d}.mp4",
                    "questions": [_without_answers(q) if split == "test" else q
                                  for q in chosen[r["scene_index"]]]} for r in in_split]
        _write_json(os.path.join(out, "questions", f"{split}.json"), entries)
        question_counts[split] = dict(collections.Counter(
            q["question_type"] for r in in_split for q in chosen[r["scene_index"]]))
    statistics = {key: float(np.mean([r["statistics"][key] for r in results]))
                  for key in results[0]["statistics"]}
    report = {"videos": sizes, "questions": question_counts,
              "answer_balance": clevrer_questions.balance_report(selected),
              "mean_per_video": statistics, "resolution": [width, height], "workers": workers,
              "seconds": elapsed, "videos_per_second": len(jobs) / elapsed}
    print(format_report(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of a `generate_clevrer` report."""
    lines = [f"mini-CLEVRER: {sum(report['videos'].values())} videos "
             f"({', '.join(f'{s} {n}' for s, n in report['videos'].items())}) at "
             f"{report['resolution'][0]}x{report['resolution'][1]} in {report['seconds']:.1f} s "
             f"= {report['videos_per_second']:.2f} videos/s with {report['workers']} workers"]
    for split, counts in report["questions"].items():
        lines.append(f"  questions {split}: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    lines.append("  per video: " + ", ".join(f"{k} {v:.2f}" for k, v in report["mean_per_video"].items()))
    for group, entry in report["answer_balance"].items():
        shares = ", ".join(f"{a} {s:.0%}" for a, s in
                           sorted(entry["shares"].items(), key=lambda item: -item[1])[:4])
        lines.append(f"  balance {group} (n={entry['total']}): {shares}")
    return "\n".join(lines)


def boolean_flag(text: str) -> bool:
    """'true' / 'false' (any case, or 1 / 0) -> bool, for argparse."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="dataset root to write")
    parser.add_argument("--num_videos", type=int, required=True, help="videos over all splits")
    parser.add_argument("--seed", type=int, required=True, help="dataset seed")
    parser.add_argument("--width", type=int, default=480, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=320, help="frame height in pixels")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--questions_per_video", type=int, default=15, help="questions kept per video")
    parser.add_argument("--render", type=boolean_flag, default=True,
                        help="true: write videos and masks; false: annotations and questions only")
    args = parser.parse_args(argv)
    return generate_clevrer(args.out, args.num_videos, args.seed, width=args.width,
                            height=args.height, workers=args.workers,
                            questions_per_video=args.questions_per_video,
                            render_videos=args.render)


if __name__ == "__main__":
    main()

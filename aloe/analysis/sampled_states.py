r"""What the sampled object states allow: the symbolic executor on what a reasoner is shown.

    python -m aloe.analysis.sampled_states --clevrer_root DIR [--num_frames 12] \
        [--eval_frames strided|spanning] [--fit_split train --split validation] \
        [--fit_videos 300] [--out report.json]

A reasoner on object states sees each object's position, velocity and in-view
flag at `num_frames` evaluation frames of a video (`aloe.data.sampling.EVAL_FRAMES`:
the release's stride from frame 0, or spanning the video to its last frame), not
the annotation's event list. This analysis asks how many questions those frames
answer: it rebuilds each validation video from its sampled frames alone and
runs CLEVRER's symbolic executor (`aloe.clevrer.executor`) on it.

* Trajectories hold: frame t shows the states of the latest sampled frame <= t,
  so entrances and exits fall on sampled frames.
* Collisions are detected: for each pair of objects and each interval between
  two sampled frames in which both are in view, the score is the smaller of the
  two objects' velocity changes divided by (1 + their closest sampled distance);
  an interval scoring above a threshold holds a collision, placed mid-interval
  (runs of such intervals count once). The threshold is the one that best tells
  the collided pairs of `--fit_videos` training videos from the others.

The report gives the detector's per-pair accuracy, recall and specificity, and
the executor's accuracy on the rebuilt videos: descriptive questions (answer)
and explanatory ones (per option; counts are of questions), overall and per
question family (`aloe.analysis.families`), beside the same executor on the full annotation
(1.0 unless the questions disagree with their annotations). Predictive and
counterfactual questions ask about worlds the video does not show, so the
rebuilt videos cannot answer them symbolically and they are not scored. With
`--num_frames 128` every frame is seen and the figures measure the detector.
"""

import argparse
import collections
import itertools
import json
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from aloe.analysis import families
from aloe.clevrer import difficulty
from aloe.clevrer import executor
from aloe.clevrer.scene import Scene
from aloe.data import clevrer
from aloe.data import sampling
from aloe.json_io import read_json

SCORED_TYPES = ("descriptive", "explanatory")


def _trajectory(annotation: Mapping[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """Object ids, location `[T, n, 2]`, velocity `[T, n, 2]` and in-view `[T, n]`."""
    ids = sorted(int(p["object_id"]) for p in annotation["object_property"])
    column = {object_id: j for j, object_id in enumerate(ids)}
    frames = annotation["motion_trajectory"]
    location = np.zeros((len(frames), len(ids), 2))
    velocity = np.zeros((len(frames), len(ids), 2))
    visible = np.zeros((len(frames), len(ids)), bool)
    for t, frame in enumerate(frames):
        for state in frame["objects"]:
            j = column[int(state["object_id"])]
            location[t, j] = state["location"][:2]
            velocity[t, j] = state["velocity"][:2]
            visible[t, j] = bool(state["inside_camera_view"])
    return ids, location, velocity, visible


def collision_scores(annotation: Mapping[str, Any],
                     frames: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """`{(id_a, id_b): float [len(frames) - 1]}`, the collision score of every interval.

    The score is 0 where either object is out of view at either end (module docstring).
    """
    ids, location, velocity, visible = _trajectory(annotation)
    location, velocity, visible = location[frames], velocity[frames], visible[frames]
    change = np.linalg.norm(np.diff(velocity, axis=0), axis=-1)  # [S - 1, n]
    seen = visible[1:] & visible[:-1]
    scores = {}
    for a, b in itertools.combinations(range(len(ids)), 2):
        gap = np.linalg.norm(location[:, a] - location[:, b], axis=-1)
        closest = np.minimum(gap[1:], gap[:-1])
        score = np.minimum(change[:, a], change[:, b]) / (1.0 + closest)
        scores[(ids[a], ids[b])] = np.where(seen[:, a] & seen[:, b], score, 0.0)
    return scores


def _collided(annotation: Mapping[str, Any]) -> set[tuple[int, int]]:
    return {tuple(sorted(int(o) for o in c["object_ids"])) for c in annotation["collision"]}


def fit_threshold(annotations: Sequence[Mapping[str, Any]], frames: np.ndarray) -> float:
    """The score threshold that best separates collided from other pairs (pair accuracy)."""
    best, truth = [], []
    for annotation in annotations:
        collided = _collided(annotation)
        for pair, score in collision_scores(annotation, frames).items():
            best.append(score.max(initial=0.0))
            truth.append(pair in collided)
    best, truth = np.asarray(best), np.asarray(truth)
    candidates = np.unique(best)
    accuracy = [np.mean((best > c) == truth) for c in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def sampled_annotation(annotation: Mapping[str, Any], frames: np.ndarray, threshold: float,
                       scores: Mapping[tuple[int, int], np.ndarray] | None = None
                       ) -> dict[str, Any]:
    """The annotation as the sampled frames show it: held trajectory, detected collisions.

    `scores` are `collision_scores(annotation, frames)` where the caller has them.
    """
    held = np.searchsorted(frames, np.arange(len(annotation["motion_trajectory"])), "right") - 1
    trajectory = [dict(annotation["motion_trajectory"][frames[max(s, 0)]], frame_id=t)
                  for t, s in enumerate(held)]
    if scores is None:
        scores = collision_scores(annotation, frames)
    found = []
    for pair, score in scores.items():
        above = np.concatenate([[False], score > threshold])
        for start in np.flatnonzero(above[1:] & ~above[:-1]):  # The first interval of a run.
            found.append({"object_ids": list(pair),
                          "frame_id": int(frames[start] + frames[start + 1]) // 2})
    return dict(annotation, motion_trajectory=trajectory, collision=found)


def _scores(question: Mapping[str, Any], scene: Scene) -> list[bool]:
    """Right or wrong (per option for explanatory) of the executor's answers on `scene`."""
    def run(choice_program=None) -> str | None:
        try:
            return executor.answer(question["program"], scene, choice_program)
        except executor.ExecutionError:  # E.g. "the first collision" when none is seen.
            return None
    if question["question_type"] == "descriptive":
        return [run() == question["answer"]]
    return [run(c["program"]) == c["answer"] for c in question["choices"]]


def _read_annotation(annotations_dir: str, split: str,
                     scene_index: int) -> tuple[dict[str, Any], Scene]:
    """One video's annotation, checked for what this module reads (errors name the file),
    and its scene."""
    path = difficulty.annotation_path(os.path.join(annotations_dir, split), scene_index)
    annotation = read_json(path)
    try:
        scene = Scene.from_annotation(annotation)  # The executor's fields.
        _trajectory(annotation)                    # And every object's location.
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: field {err} is missing or malformed.") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return annotation, scene


def _per_option(scores: Sequence[Sequence[bool]]) -> float:
    """The share of right answers over every option of every question."""
    return float(np.mean([right for question in scores for right in question]))


def sampled_states_report(clevrer_root: str, num_frames: int, eval_frames: str = "strided",
                          split: str = "validation", fit_split: str = "train",
                          fit_videos: int = 300) -> dict[str, Any]:
    """The detector's and the executor's figures (module docstring) as a JSON-able dict.

    Raises:
      ValueError: naming the file of a malformed question or annotation file.
    """
    annotations_dir = os.path.join(clevrer_root, "annotations")
    questions, fit_questions = (
        clevrer.read_question_file(os.path.join(clevrer_root, "questions", f"{name}.json"))
        for name in (split, fit_split))
    fit = [_read_annotation(annotations_dir, fit_split, scene_index)[0]
           for scene_index in sorted(fit_questions)[:fit_videos]]
    if not fit:
        raise ValueError(f"{clevrer_root}: split {fit_split!r} has no videos to fit on.")
    frames = sampling.eval_frame_choice(eval_frames)(len(fit[0]["motion_trajectory"]),
                                                     num_frames)
    threshold = fit_threshold(fit, frames)

    pairs = collections.Counter()
    scored = {"sampled": collections.defaultdict(list), "annotation": collections.defaultdict(list)}
    for scene_index, entry in sorted(questions.items()):
        annotation, scene = _read_annotation(annotations_dir, split, scene_index)
        collided = _collided(annotation)
        scores = collision_scores(annotation, frames)
        for pair, score in scores.items():
            pairs[(pair in collided, bool(score.max(initial=0.0) > threshold))] += 1
        rebuilt = sampled_annotation(annotation, frames, threshold, scores)
        scenes = {"sampled": Scene.from_annotation(rebuilt), "annotation": scene}
        for question in filter(families.answered, entry["questions"]):
            if question["question_type"] in SCORED_TYPES:
                for name, scene in scenes.items():
                    right = _scores(question, scene)
                    scored[name][question["question_type"]].append(right)
                    scored[name][families.family(question)].append(right)
    collided = pairs[(True, True)] + pairs[(True, False)]
    return {
        "clevrer_root": clevrer_root, "split": split, "num_frames": num_frames,
        "eval_frames": eval_frames,
        "frames": frames.tolist(), "threshold": threshold, "fit_videos": len(fit),
        "collision_pairs": {
            "count": sum(pairs.values()), "collided": collided,
            "accuracy": (pairs[(True, True)] + pairs[(False, False)]) / sum(pairs.values()),
            "recall": pairs[(True, True)] / max(collided, 1),
            "specificity": pairs[(False, False)] / max(sum(pairs.values()) - collided, 1)},
        "executor": {key: {"count": len(values),  # Questions; accuracy is per option.
                           "sampled": _per_option(values),
                           "annotation": _per_option(scored["annotation"][key])}
                     for key, values in sorted(scored["sampled"].items(),
                                               key=lambda kv: (kv[0] not in SCORED_TYPES,
                                                               -len(kv[1]), kv[0]))},
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: the detector, then the executor per type and family."""
    pairs = report["collision_pairs"]
    lines = [f"{report['num_frames']} {report['eval_frames']} frames of {report['clevrer_root']} "
             f"({report['split']}); collision threshold {report['threshold']:.3f} fitted on "
             f"{report['fit_videos']} videos",
             f"collision pairs: {pairs['count']} ({pairs['collided']} collided), accuracy "
             f"{pairs['accuracy']:.3f}, recall {pairs['recall']:.3f}, specificity "
             f"{pairs['specificity']:.3f}"]
    width = max(len(key) for key in report["executor"])
    lines.append(f"{'executor on':{width}s} {'count':>6s} {'sampled':>8s} {'annotation':>10s}")
    for key, row in report["executor"].items():
        lines.append(f"{key:{width}s} {row['count']:6d} {row['sampled']:8.3f} "
                     f"{row['annotation']:10.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clevrer_root", required=True,
                        help="folder with annotations/{split}/ and questions/{split}.json")
    parser.add_argument("--num_frames", type=int, default=12)
    parser.add_argument("--eval_frames", default="strided", choices=tuple(sampling.EVAL_FRAMES))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--fit_split", default="train")
    parser.add_argument("--fit_videos", type=int, default=300)
    parser.add_argument("--out", default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = sampled_states_report(args.clevrer_root, args.num_frames, args.eval_frames,
                                   args.split, args.fit_split, args.fit_videos)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    print(format_report(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])

"""The symbolic executor on videos rebuilt from sampled frames (`aloe.analysis.sampled_states`)."""

import json
import shutil
import pathlib

import numpy as np
import pytest

from aloe.analysis import sampled_states
from aloe.clevrer import difficulty
from aloe.data import sampling
from aloe.synthetic import clevrer as synthetic_clevrer


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> pathlib.Path:
    """A render-free mini-CLEVRER of 60 videos (36 train, 12 validation)."""
    out = tmp_path_factory.mktemp("sampled_states")
    synthetic_clevrer.main(["--out", str(out), "--num_videos", "60", "--seed", "3",
                            "--workers", "1", "--questions_per_video", "12", "--render", "false"])
    return out


def _annotation(root: pathlib.Path, scene_index: int, split: str = "validation") -> dict:
    path = difficulty.annotation_path(root / "annotations" / split, scene_index)
    return json.loads(pathlib.Path(path).read_text())


def _validation_scenes(root: pathlib.Path, split: str = "validation") -> list[int]:
    questions = json.loads((root / "questions" / f"{split}.json").read_text())
    return [entry["scene_index"] for entry in questions]


def test_every_frame_rebuilds_the_trajectory_and_finds_the_collisions(generated):
    frames = np.arange(128)
    threshold = sampled_states.fit_threshold(
        [_annotation(generated, i, "train") for i in _validation_scenes(generated, "train")],
        frames)
    found_true = found_false = num_true = 0
    for scene_index in _validation_scenes(generated):
        annotation = _annotation(generated, scene_index)
        rebuilt = sampled_states.sampled_annotation(annotation, frames, threshold)
        assert rebuilt["motion_trajectory"] == annotation["motion_trajectory"]
        found = {tuple(c["object_ids"]) for c in rebuilt["collision"]}
        true = {tuple(sorted(c["object_ids"])) for c in annotation["collision"]}
        found_true, found_false = found_true + len(found & true), found_false + len(found - true)
        num_true += len(true)
    assert num_true >= 10 and found_true >= 0.9 * num_true and found_false <= 0.1 * num_true


def test_held_trajectory_shows_the_latest_sampled_frame(generated):
    frames = sampling.spanning_frames(128, 12)
    annotation = _annotation(generated, _validation_scenes(generated)[0])
    rebuilt = sampled_states.sampled_annotation(annotation, frames, threshold=1.0)
    for t, frame in enumerate(rebuilt["motion_trajectory"]):
        shown = frames[frames <= t].max()
        assert frame["frame_id"] == t
        assert frame["objects"] == annotation["motion_trajectory"][shown]["objects"]


def test_no_collision_score_where_an_object_is_out_of_view(generated):
    frames = sampling.evenly_spaced_frames(128, 12)
    for scene_index in _validation_scenes(generated):
        annotation = _annotation(generated, scene_index)
        seen = {o["object_id"]: [] for o in annotation["object_property"]}
        for t in frames:
            states = {o["object_id"]: o["inside_camera_view"]
                      for o in annotation["motion_trajectory"][t]["objects"]}
            for object_id in seen:
                seen[object_id].append(states.get(object_id, False))
        for (a, b), score in sampled_states.collision_scores(annotation, frames).items():
            both = np.array(seen[a]) & np.array(seen[b])
            assert np.all(score[~(both[1:] & both[:-1])] == 0.0)


def test_every_frame_answers_nearly_every_question_and_few_frames_fewer(generated):
    full = sampled_states.sampled_states_report(str(generated), 128, fit_videos=36)
    assert full["collision_pairs"]["recall"] >= 0.9
    assert full["executor"]["descriptive"]["annotation"] == 1.0
    assert full["executor"]["descriptive"]["sampled"] >= 0.93
    assert full["executor"]["explanatory"]["sampled"] >= 0.9
    strided = sampled_states.sampled_states_report(str(generated), 12, "strided", fit_videos=36)
    spanning = sampled_states.sampled_states_report(str(generated), 12, "spanning", fit_videos=36)
    assert strided["frames"][-1] == 110 and spanning["frames"][-1] == 127
    every_frame = full["executor"]["descriptive"]["sampled"]
    for report in (strided, spanning):  # Collisions between sampled frames are missed.
        assert report["executor"]["descriptive"]["sampled"] < every_frame
    text = sampled_states.format_report(spanning)
    assert "12 spanning frames" in text and "descriptive" in text


def test_a_malformed_annotation_is_named(generated, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(generated / "questions", copy / "questions")
    shutil.copytree(generated / "annotations", copy / "annotations")
    scene_index = _validation_scenes(copy)[0]
    path = pathlib.Path(difficulty.annotation_path(copy / "annotations" / "validation",
                                                   scene_index))
    annotation = json.loads(path.read_text())
    del annotation["motion_trajectory"][3]["objects"][0]["location"]
    path.write_text(json.dumps(annotation))
    with pytest.raises(ValueError, match=f"{path.name}: field 'location'"):
        sampled_states.sampled_states_report(str(copy), 12, fit_videos=2)

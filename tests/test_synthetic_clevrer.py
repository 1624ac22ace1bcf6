"""End-to-end tests of the mini-CLEVRER writer, read back by an independent reader."""

import json
import os
import pathlib

import av
import numpy as np
import pytest

from aloe.clevrer import executor
from aloe.synthetic import clevrer

NUM_VIDEOS, SEED, WIDTH, HEIGHT = 5, 0, 96, 64
COLORS = {"gray", "red", "blue", "green", "brown", "yellow", "cyan", "purple"}
TYPES = {"descriptive", "explanatory", "predictive", "counterfactual"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    out = tmp_path_factory.mktemp("mini_clevrer")
    report = clevrer.main(["--out", str(out), "--num_videos", str(NUM_VIDEOS), "--seed", str(SEED),
                           "--width", str(WIDTH), "--height", str(HEIGHT), "--workers", "1",
                           "--questions_per_video", "8"])
    return out, report


# An independent reader of the official layout and schemas.

def _expected_files(root: pathlib.Path) -> dict[int, dict[str, pathlib.Path]]:
    """scene_index -> paths, from CLEVRER's naming rules (60/20/20 split, 1000-video chunks)."""
    splits = ["train"] * 3 + ["validation"] + ["test"]
    files = {}
    for index, split in enumerate(splits):
        chunk = "00000-01000"
        files[index] = {
            "split": split,
            "video": root / "videos" / split / f"video_{chunk}" / f"video_{index:05d}.mp4",
            "annotation": root / "annotations" / split / f"annotation_{chunk}" / f"annotation_{index:05d}.json",
            "mask": root / "masks" / split / f"mask_{chunk}" / f"mask_{index:05d}.npz",
            "simulation": root / "simulation" / split / f"sim_{chunk}" / f"sim_{index:05d}.json"}
    return files


def _decode(path: pathlib.Path) -> np.ndarray:
    """All frames of a video, uint8 `[T, H, W, 3]`, decoded with PyAV directly."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _is_vector(value, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value))


def _check_trajectory(frames: list, first_frame: int, object_ids: set) -> None:
    for offset, frame in enumerate(frames):
        assert set(frame) == {"frame_id", "objects"} and frame["frame_id"] == first_frame + offset
        assert {o["object_id"] for o in frame["objects"]} == object_ids
        for obj in frame["objects"]:
            assert set(obj) == {"object_id", "location", "orientation", "velocity",
                                "angular_velocity", "inside_camera_view"}
            assert _is_vector(obj["location"], 3) and _is_vector(obj["orientation"], 4)
            assert _is_vector(obj["velocity"], 3) and _is_vector(obj["angular_velocity"], 3)
            assert isinstance(obj["inside_camera_view"], bool)


def _check_collisions(events: list, frames: range, object_ids: set) -> None:
    for event in events:
        assert set(event) == {"object_ids", "frame_id", "location"}
        assert len(event["object_ids"]) == 2 and set(event["object_ids"]) <= object_ids
        assert isinstance(event["frame_id"], int) and event["frame_id"] in frames
        assert _is_vector(event["location"], 3)


def _read_annotation(path: pathlib.Path, index: int) -> dict:
    annotation = json.loads(path.read_text())
    assert set(annotation) == {"scene_index", "video_filename", "object_property",
                               "motion_trajectory", "collision"}
    assert annotation["scene_index"] == index
    assert annotation["video_filename"] == f"video_{index:05d}.mp4"
    ids = set()
    for prop in annotation["object_property"]:
        assert set(prop) == {"object_id", "color", "material", "shape"}
        assert prop["color"] in COLORS and prop["material"] in {"metal", "rubber"}
        assert prop["shape"] in {"cube", "sphere", "cylinder"} and isinstance(prop["object_id"], int)
        ids.add(prop["object_id"])
    assert 3 <= len(ids) <= 6 and len(annotation["motion_trajectory"]) == 128
    _check_trajectory(annotation["motion_trajectory"], 0, ids)
    _check_collisions(annotation["collision"], range(128), ids)
    return annotation


def _read_questions(path: pathlib.Path, with_answers: bool) -> dict[int, list]:
    entries = json.loads(path.read_text())
    out = {}
    for entry in entries:
        assert set(entry) == {"scene_index", "video_filename", "questions"}
        assert entry["video_filename"] == f"video_{entry['scene_index']:05d}.mp4"
        for question_id, q in enumerate(entry["questions"]):
            assert q["question_id"] == question_id and q["question_type"] in TYPES
            assert isinstance(q["question"], str) and all(isinstance(t, str) for t in q["program"])
            if q["question_type"] == "descriptive":
                assert ("answer" in q) == with_answers
                continue
            assert "answer" not in q and len(q["choices"]) >= 2
            for choice_id, choice in enumerate(q["choices"]):
                assert choice["choice_id"] == choice_id and isinstance(choice["choice"], str)
                if with_answers:
                    assert choice["answer"] in {"correct", "wrong"}
                else:
                    assert "answer" not in choice
        out[entry["scene_index"]] = entry["questions"]
    return out


def test_split_sizes_and_chunk_names():
    assert clevrer.split_sizes(5) == {"train": 3, "validation": 1, "test": 1}
    assert clevrer.split_sizes(300) == {"train": 180, "validation": 60, "test": 60}
    paths = clevrer.scene_paths("/d", "validation", 12345)
    assert paths["video"] == "/d/videos/validation/video_12000-13000/video_12345.mp4"
    assert paths["mask"] == "/d/masks/validation/mask_12000-13000/mask_12345.npz"


def test_layout_schemas_videos_and_masks(dataset):
    root, report = dataset
    expected = _expected_files(root)
    written = {p for p in root.rglob("*") if p.is_file()}
    wanted = {p for f in expected.values() for k, p in f.items() if k != "split"}
    wanted |= {root / "questions" / f"{s}.json" for s in ("train", "validation", "test")}
    assert written == wanted
    assert report["videos"] == {"train": 3, "validation": 1, "test": 1}
    for index, files in expected.items():
        annotation = _read_annotation(files["annotation"], index)
        frames = _decode(files["video"])
        assert frames.shape == (128, HEIGHT, WIDTH, 3)
        with np.load(files["mask"], allow_pickle=False) as npz:
            assert list(npz.keys()) == ["masks"]
            masks = npz["masks"]
        assert masks.dtype == np.uint8 and masks.shape == (128, HEIGHT, WIDTH)
        labels = {p["object_id"] + 1 for p in annotation["object_property"]}
        assert set(np.unique(masks)) <= labels | {0}
        # Objects in view at frame 0 show in that frame's mask; masks line up with the video.
        in_view = {o["object_id"] + 1 for o in annotation["motion_trajectory"][0]["objects"]
                   if o["inside_camera_view"]}
        assert in_view <= set(np.unique(masks[0]))
        floor = masks[0] == 0
        assert np.abs(frames[0][~floor].astype(int).mean() - frames[0][floor].astype(int).mean()) > 3
        simulation = json.loads(files["simulation"].read_text())
        ids = {p["object_id"] for p in annotation["object_property"]}
        assert set(simulation) == {"scene_index", "video_filename", "future", "counterfactuals"}
        _check_trajectory(simulation["future"]["motion_trajectory"], 128, ids)
        _check_collisions(simulation["future"]["collision"], range(128, 160), ids)
        assert set(simulation["counterfactuals"]) == {str(i) for i in ids}
        for removed, world in simulation["counterfactuals"].items():
            _check_trajectory(world["motion_trajectory"], 0, ids - {int(removed)})
            _check_collisions(world["collision"], range(160), ids - {int(removed)})


def test_recorded_answers_equal_the_executor_on_written_files(dataset):
    root, report = dataset
    expected = _expected_files(root)
    counts = {}
    for split in ("train", "validation", "test"):
        questions = _read_questions(root / "questions" / f"{split}.json", split != "test")
        assert set(questions) == {i for i, f in expected.items() if f["split"] == split}
        for index, video_questions in questions.items():
            annotation = json.loads(expected[index]["annotation"].read_text())
            simulation = json.loads(expected[index]["simulation"].read_text())
            scene = executor.Scene.from_annotation(annotation, simulation["future"],
                                                   simulation["counterfactuals"])
            assert 1 <= len(video_questions) <= 8
            for q in video_questions:
                counts.setdefault(split, {}).setdefault(q["question_type"], 0)
                counts[split][q["question_type"]] += 1
                if q["question_type"] == "descriptive":
                    result = executor.answer(q["program"], scene)
                    assert split == "test" or result == q["answer"]
                    continue
                results = [executor.answer(q["program"], scene, c["program"]) for c in q["choices"]]
                if split != "test":
                    assert results == [c["answer"] for c in q["choices"]]
    assert counts == report["questions"]
    # Every question type is written (and so checked above) somewhere in the dataset.
    assert {t for split in counts.values() for t in split} == TYPES
    assert report["videos_per_second"] > 0 and report["answer_balance"]


@pytest.mark.slow
def test_generation_is_deterministic_and_independent_of_workers(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    clevrer.generate_clevrer(again, NUM_VIDEOS, SEED, width=WIDTH, height=HEIGHT, workers=2,
                             questions_per_video=8, progress=False)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        twin = again / path.relative_to(root)
        if path.suffix == ".mp4":
            np.testing.assert_array_equal(_decode(path), _decode(twin))
        elif path.suffix == ".npz":
            with np.load(path) as a, np.load(twin) as b:
                np.testing.assert_array_equal(a["masks"], b["masks"])
        else:
            assert path.read_bytes() == twin.read_bytes(), path
    other = tmp_path / "other"
    clevrer.generate_clevrer(other, 1, SEED + 1, width=WIDTH, height=HEIGHT, workers=1,
                             questions_per_video=8, progress=False)
    name = os.path.join("annotations", "train", "annotation_00000-01000", "annotation_00000.json")
    assert (other / name).read_bytes() != (root / name).read_bytes()


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_videos"):
        clevrer.generate_clevrer(tmp_path, 0, 0)
    with pytest.raises(ValueError, match="even"):
        clevrer.generate_clevrer(tmp_path, 1, 0, width=95, height=64)

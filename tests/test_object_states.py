"""Object-state latents from generated annotations / scene files, decoded back and compared."""

import filecmp
import json
import pathlib

import numpy as np
import pytest

from aloe import answer_prior
from aloe.data import cater_object_states
from aloe.data import clevrer_latents
from aloe.data import latents as latents_lib
from aloe.data import object_states
from aloe.data import vocab as vocab_lib
from aloe.synthetic import cater as synthetic_cater
from aloe.synthetic import cater_scene
from aloe.synthetic import clevrer as synthetic_clevrer

NUM_VIDEOS, SEED = 5, 0
LAYOUT = object_states.CLEVRER_LAYOUT


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> pathlib.Path:
    """A render-free mini-CLEVRER of 5 videos (3 train, 1 validation, 1 test)."""
    out = tmp_path_factory.mktemp("clevrer_states")
    synthetic_clevrer.main(["--out", str(out), "--num_videos", str(NUM_VIDEOS), "--seed",
                            str(SEED), "--workers", "1", "--questions_per_video", "8",
                            "--render", "false"])
    return out


def _annotations(root: pathlib.Path, split: str) -> dict[int, dict]:
    found = {}
    for path in sorted((root / "annotations" / split).rglob("annotation_*.json")):
        annotation = json.loads(path.read_text())
        found[annotation["scene_index"]] = annotation
    return found


def _visible_objects(annotation: dict, frame: int) -> dict[int, dict]:
    """object_id -> its true state in `frame`, objects in view only (read straight from JSON)."""
    properties = {p["object_id"]: p for p in annotation["object_property"]}
    return {o["object_id"]: {"position": o["location"][:2], "velocity": o["velocity"][:2],
                             **{k: properties[o["object_id"]][k]
                                for k in ("color", "material", "shape")}}
            for o in annotation["motion_trajectory"][frame]["objects"]
            if o["inside_camera_view"]}


def _same_object(decoded: dict, true: dict) -> bool:
    return (all(decoded[k] == true[k] for k in ("color", "material", "shape"))
            and np.allclose(decoded["position"], true["position"], atol=1e-5)
            and np.allclose(decoded["velocity"], true["velocity"], atol=1e-5))


@pytest.mark.parametrize("slot_order", ["identity", "per_frame"])
def test_latents_decode_to_the_annotation_and_hide_unseen_objects(generated, tmp_path,
                                                                  slot_order):
    out = tmp_path / "latents"
    written = object_states.main(["--annotations", str(generated / "annotations"),
                                  "--questions", str(generated / "questions"), "--out", str(out),
                                  "--slot_order", slot_order])
    assert written == {"train": 3, "valid": 1}
    metadata = json.loads((out / "object_states.json").read_text())
    assert metadata["layout"] == LAYOUT.to_json() and metadata["slot_order"] == slot_order
    unseen_frames = 0
    for split, store_split in (("train", "train"), ("validation", "valid")):
        store = latents_lib.LatentStore(out, store_split, expected_shape=(128, 8, 18))
        for scene_index, annotation in _annotations(generated, split).items():
            states = store.read(scene_index)
            for frame in range(128):
                visible = _visible_objects(annotation, frame)
                unseen_frames += len(visible) < len(annotation["object_property"])
                decoded = [LAYOUT.decode(states[frame, k]) for k in range(8)]
                # Empty slots are exactly zero; one occupied slot per object in view.
                for k, obj in enumerate(decoded):
                    if obj is None:
                        assert not states[frame, k].any()
                occupied = [obj for obj in decoded if obj is not None]
                assert len(occupied) == len(visible)
                if slot_order == "identity":
                    for object_id, true in visible.items():
                        assert _same_object(decoded[object_id], true)
                else:
                    for obj in occupied:
                        assert sum(_same_object(obj, true) for true in visible.values()) == 1
    assert unseen_frames > 0  # Some object is out of view in some frame (entering objects).
    if slot_order == "per_frame":  # The slot of an object changes between frames.
        states = latents_lib.LatentStore(out, "train").read(0)
        assert not np.array_equal(states[0] != 0, states[1] != 0)


def test_store_reads_through_the_latent_pipeline_with_its_vocab(generated, tmp_path):
    out = tmp_path / "latents"
    object_states.write_clevrer(str(generated / "annotations"), str(generated / "questions"),
                                str(out), noise=0.05)
    vocab = vocab_lib.Vocab.load(out / "vocab.json")
    assert vocab.word_ids == vocab_lib.release_vocab().word_ids
    data = clevrer_latents.ClevrerLatentData(out, "valid", vocab, num_frames=8)
    batch = next(data.eval_batches(8))
    assert batch["descriptive"]["latents"].shape[2:] == (8, 18)
    assert filecmp.cmp(out / "train.json", generated / "questions" / "train.json", shallow=False)
    # Noise touches occupied slots only, with about the requested scale.
    noisy = latents_lib.LatentStore(out, "train").read(1)
    clean = object_states.clevrer_object_states(_annotations(generated, "train")[1])
    occupied = clean[..., 4] == 1
    assert not noisy[~occupied].any()
    assert np.std(noisy[occupied] - clean[occupied]) == pytest.approx(0.05, rel=0.1)


def test_unknown_property_is_named(generated):
    annotation = _annotations(generated, "train")[0]
    annotation["object_property"][0]["color"] = "golden"
    with pytest.raises(ValueError, match=r"x\.json object 0: field 'color' has value 'golden'"):
        object_states.clevrer_object_states(annotation, source="x.json")


def test_render_free_generator_writes_the_rendering_ones_annotations_and_questions(
        generated, tmp_path):
    rendered = tmp_path / "rendered"
    synthetic_clevrer.main(["--out", str(rendered), "--num_videos", str(NUM_VIDEOS), "--seed",
                            str(SEED), "--workers", "1", "--questions_per_video", "8",
                            "--width", "48", "--height", "32"])  # The aspect of 480x320.
    assert (rendered / "videos").is_dir() and not (generated / "videos").exists()
    assert not (generated / "masks").exists()
    for folder in ("annotations", "questions", "simulation"):
        files = sorted(p.relative_to(rendered) for p in (rendered / folder).rglob("*.json"))
        assert files
        for relative in files:
            assert filecmp.cmp(rendered / relative, generated / relative, shallow=False), relative


def test_cater_containment_from_movements_matches_the_simulation():
    for index in range(12):
        scene, camera = synthetic_cater.make_scene(SEED, "all_actions", index)
        written = synthetic_cater.scene_json(scene, camera, index, 320, 240)
        hidden = cater_object_states.contained(written, cater_scene.NUM_FRAMES, "scene")
        np.testing.assert_array_equal(hidden, scene.hidden)


def test_render_free_cater_generator_writes_the_rendering_ones_scenes_and_lists(tmp_path):
    common = ["--num_videos", "2", "--seed", str(SEED), "--workers", "1", "--width", "32",
              "--height", "24", "--val_fraction", "0.5"]
    synthetic_cater.main(["--out", str(tmp_path / "rendered")] + common)
    synthetic_cater.main(["--out", str(tmp_path / "free"), "--render", "false"] + common)
    files = sorted(p.relative_to(tmp_path / "rendered")
                   for p in (tmp_path / "rendered").rglob("*") if p.suffix in (".json", ".txt"))
    assert len(files) == 2 * (2 + 2)
    for relative in files:
        assert filecmp.cmp(tmp_path / "rendered" / relative, tmp_path / "free" / relative,
                           shallow=False), relative
    assert not (tmp_path / "free" / "all_actions" / "videos").exists()


@pytest.mark.parametrize("slot_order", ["identity", "per_frame"])
def test_cater_store_decodes_to_the_scene_files(tmp_path, slot_order):
    root = tmp_path / "cater"
    synthetic_cater.main(["--out", str(root), "--num_videos", "4", "--seed", str(SEED),
                          "--workers", "1", "--render", "false", "--val_fraction", "0.25"])
    out = tmp_path / "latents"
    object_states.main(["--dataset", "cater", "--scenes", str(root), "--out", str(out),
                        "--slot_order", slot_order])
    layout = cater_object_states.CATER_LAYOUT
    labels = json.loads((out / "valid_labels.json").read_text())
    assert len(labels) == 2 and {e["camera"] for e in labels.values()} == {"static", "moving"}
    contained_seen = 0
    for split in ("train", "valid"):
        store = cater_object_states.cater_latents.CaterLatentStore(out, split)
        for name in store.scenes():
            variant, stem = name.split("/")
            scene = json.loads((root / variant / "scenes" / f"{stem}.json").read_text())
            states = store.read(name)
            hidden = cater_object_states.contained(scene, 301, stem)
            contained_seen += int(hidden.any())
            for frame in (0, 150, 300):
                decoded = [layout.decode(v) for v in states[frame]]
                occupied = [d for d in decoded if d is not None]
                truth = [(o, o["locations"][str(frame)]) for i, o in enumerate(scene["objects"])
                         if not hidden[i, frame]]
                assert len(occupied) == len(truth)
                for obj, location in truth:
                    assert sum(d["shape"] == obj["shape"] and d["color"] == obj["color"]
                               and d["size"] == obj["size"]
                               and np.allclose(d["position"], location, atol=1e-5)
                               for d in occupied) == 1
    assert contained_seen > 0


def test_answer_priors_count_the_most_common_training_answers(tmp_path):
    def scene(index, questions):
        return {"scene_index": index, "questions": questions}
    desc = lambda answer: {"question_type": "descriptive", "question_subtype": "count",
                           "answer": answer}
    mc = lambda *labels: {"question_type": "explanatory",
                          "choices": [{"answer": label} for label in labels]}
    (tmp_path / "train.json").write_text(json.dumps([
        scene(0, [desc("2"), desc("2"), desc("3"), mc("wrong", "wrong", "correct")])]))
    (tmp_path / "valid.json").write_text(json.dumps([
        scene(1, [desc("2"), desc("1"), desc("3"), desc("3"), mc("wrong", "wrong"),
                  mc("correct", "wrong", "wrong")])]))
    prior = answer_prior.main(["--root", str(tmp_path), "--out", str(tmp_path / "p.json")])
    assert prior == {"descriptive": 0.25, "explanatory_per_option": 0.8,
                     "explanatory_per_question": 0.5}
    cells = {"train": [5, 5, 7], "valid": [5, 6, 30]}
    for split, labels in cells.items():
        (tmp_path / f"{split}_labels.json").write_text(json.dumps({
            f"v/{i}": {"label": label, "camera": "static", "hidden": i == 0}
            for i, label in enumerate(labels)}))
    prior = answer_prior.cater_prior(str(tmp_path), fields=["hidden"])
    # Always cell 5 (row 0, col 5): right once; L1 to 6 (row 1, col 0) is 6, to 30 (row 5,
    # col 0) 10.
    assert prior["top1"] == pytest.approx(1 / 3) and prior["top5"] == pytest.approx(1 / 3)
    assert prior["l1"] == pytest.approx((0 + 6 + 10) / 3)
    assert prior["top1_hidden"] == 1.0 and prior["l1_not_hidden"] == pytest.approx(8.0)

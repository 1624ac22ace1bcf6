"""The CLEVRER latent batch pipeline: replayable training batches, exact evaluation passes."""

import json
import os

import numpy as np
import pytest

from aloe.data import vocab as vocab_lib
from aloe.data.clevrer_latents import ClevrerLatentData
from aloe.data.latents import LatentStore
from aloe.data.latents import labeled_subset

NUM_SCENES = 6
VOCAB = vocab_lib.release_vocab()
WORDS = sorted(VOCAB.word_ids)
ANSWERS = sorted(VOCAB.answer_classes)


def _scene_latents(scene):
    """Entry [t, k, 0] = 1000 * scene + t and [t, k, 1] = k: rows say where they came from."""
    latents = np.zeros((128, 8, 16), np.float32)
    latents[..., 0] = 1000 * scene + np.arange(128)[:, None]
    latents[..., 1] = np.arange(8)
    return latents


def _write_split(root, split, first_scene, answered=True, seed=0):
    """Random-word questions (distinct per scene); every third one has no answer."""
    rng = np.random.default_rng(seed)
    store = LatentStore(root, split)
    scenes = []
    for scene in range(first_scene, first_scene + NUM_SCENES):
        store.write(scene, _scene_latents(scene))
        questions = []
        for qid in range(1 + scene % 3):
            text = " ".join(rng.choice(WORDS, 6)) + "?"
            entry = {"question_id": qid, "question": text, "question_type": "descriptive",
                     "program": [], "answer": str(rng.choice(ANSWERS))}
            if not answered or qid == 2:
                del entry["answer"]
            questions.append(entry)
        for qid in range(10, 10 + scene % 2 + 1):
            choices = [{"choice_id": c, "choice": " ".join(rng.choice(WORDS, 3)), "program": [],
                        "answer": str(rng.choice(["correct", "wrong"]))}
                       for c in range(2 + (scene + qid) % 3)]
            if not answered or qid == 11:
                for choice in choices:
                    del choice["answer"]
            questions.append({"question_id": qid, "question": "which of the following is metal",
                              "question_type": ("explanatory", "predictive",
                                                "counterfactual")[scene % 3],
                              "program": [], "choices": choices})
        scenes.append({"scene_index": scene, "questions": questions})
    with open(os.path.join(root, f"{split}.json"), "w") as f:
        json.dump(scenes, f)
    return scenes


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("store"))
    _write_split(root, "train", 0)
    _write_split(root, "test", 15000, answered=False, seed=1)
    return root


def _source(latents):
    """(scene, frames [B, T]) of gathered latents `[B, T, K, d]`, from their values."""
    values = latents[:, :, 0, 0].astype(np.int64)
    return values[:, 0] // 1000, values % 1000


def _questions_by_scene(scenes):
    desc, mc = {}, {}
    for scene in scenes:
        for q in scene["questions"]:
            table = mc if "choices" in q else desc
            table.setdefault(scene["scene_index"], []).append(q)
    return desc, mc


def test_train_batch_rows_match_their_scene_and_question(root):
    with open(os.path.join(root, "train.json")) as f:
        desc_by_scene, mc_by_scene = _questions_by_scene(json.load(f))
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=25)
    batch = data.train_batch(3, 16, 8)
    desc, mc = batch["descriptive"], batch["multiple_choice"]
    assert desc["latents"].shape == (16, 25, 8, 16) and desc["latents"].dtype == np.float32
    assert desc["question"].shape == (16, 20) and desc["question"].dtype == np.int32
    assert desc["answer"].shape == (16,) and desc["answer"].dtype == np.int32
    assert mc["choices"].shape == (8, 4, 12) and mc["choice_labels"].dtype == np.float32
    assert mc["choice_mask"].dtype == bool
    for sub in (desc, mc):
        _, frames = _source(sub["latents"])
        assert (np.diff(frames, axis=1) > 0).all() and frames.max() < 128
        np.testing.assert_array_equal(sub["latents"][..., 1],
                                      np.broadcast_to(np.arange(8), sub["latents"].shape[:-1]))
    scenes, _ = _source(desc["latents"])
    for row, scene in enumerate(scenes):
        text = VOCAB.decode(desc["question"][row])
        matches = [q for q in desc_by_scene[scene]
                   if text == " ".join(vocab_lib.tokenize(q["question"]))]
        assert len(matches) == 1 and "answer" in matches[0]  # Only answered questions.
        assert desc["answer"][row] == VOCAB.answer_to_class(matches[0]["answer"])
    scenes, _ = _source(mc["latents"])
    for row, scene in enumerate(scenes):
        texts = [VOCAB.decode(c) for c, m in zip(mc["choices"][row], mc["choice_mask"][row]) if m]
        matches = [q for q in mc_by_scene[scene]
                   if texts == [" ".join(vocab_lib.tokenize(c["choice"])) for c in q["choices"]]]
        assert len(matches) == 1 and all("answer" in c for c in matches[0]["choices"])
        labels = [c["answer"] == "correct" for c in matches[0]["choices"]]
        np.testing.assert_array_equal(mc["choice_labels"][row],
                                      np.pad(labels, (0, 4 - len(labels))).astype(np.float32))


def test_arrays_read_per_batch_equal_preloaded_ones_and_may_come_from_a_frame_store(root,
                                                                                     tmp_path):
    preloaded = ClevrerLatentData(root, "train", VOCAB, num_frames=25)
    lazy = ClevrerLatentData(root, "train", VOCAB, num_frames=25, preload=False)
    assert lazy.array_shape == preloaded.array_shape == (128, 8, 16)
    for a, b in [(preloaded.train_batch(3, 16, 8, 4), lazy.train_batch(3, 16, 8, 4)),
                 *zip(preloaded.eval_batches(8), lazy.eval_batches(8))]:
        for path, value in _flatten(a):
            np.testing.assert_array_equal(value, dict(_flatten(b))[path], err_msg=path)
    # uint8 frames [128, 2, 2, 3] of another store: pixel (0, 0) holds (frame % 256, scene).
    frame_store = LatentStore(tmp_path, "train", dtype=np.uint8)
    for scene in preloaded.scene_indices:
        frames = np.zeros((128, 2, 2, 3), np.uint8)
        frames[:, 0, 0, 0], frames[:, 0, 0, 1] = np.arange(128), scene
        frame_store.write(scene, frames)
    pixels = ClevrerLatentData(root, "train", VOCAB, num_frames=25, arrays_root=tmp_path,
                               dtype=np.uint8, preload=False)
    batch = pixels.train_batch(3, 16, 8)["descriptive"]
    expected = preloaded.train_batch(3, 16, 8)["descriptive"]
    scenes, frames = _source(expected["latents"])
    assert batch["latents"].shape == (16, 25, 2, 2, 3) and batch["latents"].dtype == np.uint8
    np.testing.assert_array_equal(batch["latents"][:, :, 0, 0, 0], frames)
    np.testing.assert_array_equal(batch["latents"][:, :, 0, 0, 1],
                                  np.broadcast_to(scenes[:, None], frames.shape))
    np.testing.assert_array_equal(batch["question"], expected["question"])


def _flatten(tree, prefix=""):
    """`(path, array)` pairs of a nested dict of arrays."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


def test_train_batches_replay_and_split_over_processes(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=10, seed=7)
    first, again = data.train_batch(5, 8, 4), data.train_batch(5, 8, 4)
    for key in ("descriptive", "multiple_choice"):
        for name in first[key]:
            np.testing.assert_array_equal(first[key][name], again[key][name])
    assert not np.array_equal(first["descriptive"]["latents"],
                              data.train_batch(6, 8, 4)["descriptive"]["latents"])
    other_seed = ClevrerLatentData(root, "train", VOCAB, num_frames=10, seed=8)
    assert not np.array_equal(first["descriptive"]["latents"],
                              other_seed.train_batch(5, 8, 4)["descriptive"]["latents"])
    halves = [ClevrerLatentData(root, "train", VOCAB, num_frames=10, seed=7, process_index=p,
                                process_count=2).train_batch(5, 8, 4) for p in range(2)]
    for key in ("descriptive", "multiple_choice"):
        for name in first[key]:
            assert halves[0][key][name].shape[0] == first[key][name].shape[0] // 2
            np.testing.assert_array_equal(
                np.concatenate([h[key][name] for h in halves]), first[key][name])
    with pytest.raises(ValueError, match="mc_size = 3 must be a non-negative multiple of "
                                         "process_count = 2"):
        ClevrerLatentData(root, "train", VOCAB, process_index=1, process_count=2).train_batch(
            0, 4, 3)


def test_frames_are_uniform_over_the_video(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=25)
    frames = np.concatenate([_source(data.train_batch(s, 32, 0)["descriptive"]["latents"])[1]
                             for s in range(40)])
    counts = np.bincount(frames.ravel(), minlength=128)
    expected = frames.size / 128  # 250 per frame.
    assert counts.min() > 0.7 * expected and counts.max() < 1.3 * expected


def test_strided_training_frames(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=25, train_frames="strided")
    batch = data.train_batch(5, 32, 8, 8)
    for kind in ("descriptive", "multiple_choice", "auxiliary"):
        _, frames = _source(batch[kind]["latents"])
        np.testing.assert_array_equal(np.diff(frames, axis=1), 5)
        assert frames[:, 0].min() >= 0 and frames[:, 0].max() <= 7
    starts = _source(batch["descriptive"]["latents"])[1][:, 0]
    assert len(np.unique(starts)) > 1
    # Evaluation is unchanged: stride 5 from frame 0.
    evaluated = next(iter(data.eval_batches(4)))["descriptive"]["latents"]
    np.testing.assert_array_equal(_source(evaluated)[1][0], np.arange(25) * 5)


def test_spanning_evaluation_frames_reach_the_last_frame(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=12, eval_frames="spanning")
    batch = next(iter(data.eval_batches(4)))
    for kind in ("descriptive", "multiple_choice"):
        _, frames = _source(batch[kind]["latents"])
        np.testing.assert_array_equal(frames[0], np.round(np.linspace(0, 127, 12)))
    with pytest.raises(ValueError, match="eval_frames must be one of"):
        ClevrerLatentData(root, "train", VOCAB, eval_frames="random")


@pytest.mark.parametrize("process_count", [1, 2, 3])
def test_eval_visits_every_question_once_in_lockstep(root, process_count):
    data = [ClevrerLatentData(root, "train", VOCAB, num_frames=25, process_index=p,
                              process_count=process_count) for p in range(process_count)]
    batch_size = 3 * process_count
    batches = [list(d.eval_batches(batch_size)) for d in data]
    assert len({len(b) for b in batches}) == 1  # Same number of batches on every process.
    assert len(batches[0]) == data[0].num_eval_batches(batch_size)
    seen = {"descriptive": [], "multiple_choice": []}
    for per_process in batches:
        for batch in per_process:
            for kind in seen:
                sub, meta = batch[kind], batch["meta"][kind]
                assert sub["valid"].shape == (3,) and sub["latents"].shape == (3, 25, 8, 16)
                valid = sub["valid"]
                scenes, frames = _source(sub["latents"][valid])
                np.testing.assert_array_equal(scenes, meta["scene_index"][valid])
                np.testing.assert_array_equal(frames, np.broadcast_to(np.arange(25) * 5,
                                                                      frames.shape))
                assert (meta["scene_index"][~valid] == -1).all()
                assert not sub["question"][~valid].any()
                seen[kind] += list(zip(meta["scene_index"][valid], meta["question_id"][valid]))
    desc, mc = data[0].questions.descriptive, data[0].questions.multiple_choice
    assert sorted(seen["descriptive"]) == sorted(zip(desc.scene_index, desc.question_id))
    assert sorted(seen["multiple_choice"]) == sorted(zip(mc.scene_index, mc.question_id))
    assert len(set(seen["descriptive"])) == len(desc)


def test_eval_batch_contents_and_unanswered_questions(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=25)
    batch = next(data.eval_batches(64))
    desc, mc, meta = batch["descriptive"], batch["multiple_choice"], batch["meta"]
    questions = data.questions
    n_desc, n_mc = len(questions.descriptive), len(questions.multiple_choice)
    assert desc["valid"].sum() == n_desc and mc["valid"].sum() == n_mc
    np.testing.assert_array_equal(desc["answer"][:n_desc], questions.descriptive.answer)
    assert (desc["answer"][:n_desc] == -1).sum() == (questions.descriptive.question_id == 2).sum()
    np.testing.assert_array_equal(meta["multiple_choice"]["question_type"][:n_mc],
                                  questions.multiple_choice.question_type)
    np.testing.assert_array_equal(meta["multiple_choice"]["choice_ids"][:n_mc],
                                  questions.multiple_choice.choice_ids)
    labels, mask = mc["choice_labels"][:n_mc], mc["choice_mask"][:n_mc]
    unanswered = questions.multiple_choice.question_id == 11
    assert (labels[unanswered][mask[unanswered]] == -1).all()
    assert set(np.unique(labels[~unanswered])) <= {0.0, 1.0}
    assert (labels[~mask] == 0).all()

    test = ClevrerLatentData(root, "test", VOCAB, num_frames=25)
    batch = next(test.eval_batches(64))
    assert (batch["descriptive"]["answer"] == -1).all()
    assert (batch["multiple_choice"]["choice_labels"][batch["multiple_choice"]["choice_mask"]]
            == -1).all()
    with pytest.raises(ValueError, match=r"test\.json: no descriptive questions with answers"):
        test.train_batch(0, 4, 0)


@pytest.mark.parametrize("preload", [True, False])
def test_missing_or_malformed_latents_are_named(tmp_path, preload):
    root = str(tmp_path)
    _write_split(root, "valid", 10000)
    os.remove(os.path.join(root, "valid", "10003.npz"))
    with pytest.raises(FileNotFoundError, match=r"valid/10003\.npz"):
        ClevrerLatentData(root, "valid", VOCAB, preload=preload)
    with open(os.path.join(root, "valid", "10003.npz"), "wb") as f:
        np.save(f, np.zeros((128, 8, 16), np.float64))
    with pytest.raises(ValueError, match=r"valid/10003\.npz: latent array has dtype float64"):
        ClevrerLatentData(root, "valid", VOCAB, preload=preload)
    LatentStore(root, "valid").write(10003, np.zeros((20, 8, 16), np.float32))
    with pytest.raises(ValueError, match=r"10003\.npz: latent array has shape \(20, 8, 16\)"):
        ClevrerLatentData(root, "valid", VOCAB, preload=preload)
    with pytest.raises(ValueError, match="unknown_words='unk' needs a vocabulary"):
        ClevrerLatentData(root, "valid", VOCAB, unknown_words="unk")
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        ClevrerLatentData(root, "nothing", VOCAB)


def test_labeled_subset_is_exact_stable_and_nested():
    names = [f"video_{i:05d}" for i in range(101)]
    half = labeled_subset(names, 0.5, seed=3)
    assert half.sum() == 50
    # Independent of order (a property of each video alone) and of the call.
    order = np.random.default_rng(0).permutation(len(names))
    np.testing.assert_array_equal(labeled_subset([names[i] for i in order], 0.5, seed=3),
                                  half[order])
    quarter = labeled_subset(names, 0.25, seed=3)
    assert quarter.sum() == 25 and not (quarter & ~half).any()
    assert labeled_subset(names, 1.0).all()
    assert (labeled_subset(names, 0.5, seed=4) != half).any()
    with pytest.raises(ValueError, match="labeled_fraction"):
        labeled_subset(names, 0.0)


def test_label_fraction_limits_supervised_rows_but_not_auxiliary(root):
    data = ClevrerLatentData(root, "train", VOCAB, num_frames=5, labeled_fraction=0.5)
    assert data.labeled.sum() == NUM_SCENES // 2
    labeled = set(data.scene_indices[data.labeled].tolist())
    supervised, auxiliary = set(), set()
    for step in range(40):
        batch = data.train_batch(step, 4, 4, auxiliary_size=4)
        for key in ("descriptive", "multiple_choice"):
            supervised.update(_source(batch[key]["latents"])[0].tolist())
        aux = batch["auxiliary"]
        assert set(aux) == {"latents", "question"} and aux["question"].shape == (4, 20)
        scenes, frames = _source(aux["latents"])
        assert (np.diff(frames, axis=1) > 0).all()
        auxiliary.update(scenes.tolist())
    assert supervised == labeled
    assert auxiliary == set(data.scene_indices.tolist())
    # The auxiliary sub-batch does not change the supervised rows of a step.
    full = ClevrerLatentData(root, "train", VOCAB, num_frames=5)
    np.testing.assert_array_equal(full.train_batch(2, 4, 4)["descriptive"]["latents"],
                                  full.train_batch(2, 4, 4, 8)["descriptive"]["latents"])

"""The toy latent dataset: release layout, CLEVRER schema, answers that follow from the latents."""

import collections
import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aloe.clevrer import program as program_lib
from aloe.data import vocab as vocab_lib
from aloe.data.clevrer_latents import ClevrerLatentData
from aloe.data.latents import LatentStore
from aloe.synthetic import toy_latents

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=12, num_valid=6, seed=3)
    return root


def _load(root, split):
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


def decode_objects(latents):
    """Objects read back from a scene's latents `[128, 8, 16]`, by the documented layout."""
    objects = []
    for slot in range(1, latents.shape[1]):
        mean = latents[:, slot].mean(axis=0)
        if mean[14] < 0.5:  # Not present.
            continue
        positions = latents[:, slot, 12:14]
        objects.append({
            "slot": slot,
            "color": program_lib.COLORS[int(np.argmax(mean[0:8]))],
            "shape": program_lib.SHAPES[int(np.argmax(mean[8:11]))],
            "material": "metal" if mean[11] > 0.5 else "rubber",
            "moving": bool(np.abs(positions - positions[0]).max() > 0.3),
        })
    return objects


def execute(program, objects, inputs=()):
    """Runs the object-level part of CLEVRER's module language on decoded objects."""
    stack = list(inputs)
    for token in program:
        if token == "objects":
            stack.append(list(objects))
        elif token in ("filter_color", "filter_material", "filter_shape"):
            value, found = stack.pop(), stack.pop()
            stack.append([o for o in found if o[token[len("filter_"):]] == value])
        elif token in ("filter_moving", "filter_stationary"):
            frame, found = stack.pop(), stack.pop()
            assert frame == "null"
            stack.append([o for o in found if o["moving"] == (token == "filter_moving")])
        elif token == "unique":
            found = stack.pop()
            assert len(found) == 1, "a referring expression must single out one object"
            stack.append(found[0])
        elif token == "count":
            stack.append(str(len(stack.pop())))
        elif token == "exist":
            stack.append("yes" if stack.pop() else "no")
        elif token.startswith("query_"):
            stack.append(stack.pop()[token[len("query_"):]])
        elif token == "belong_to":
            found, obj = stack.pop(), stack.pop()
            stack.append("correct" if obj in found else "wrong")
        else:
            assert program_lib.literal_kind(token) is not None, token
            stack.append(token)
    assert len(stack) == 1
    return stack[0]


def _literals_in_text(program, text):
    words = set(vocab_lib.tokenize(text))
    for token in program:
        if program_lib.literal_kind(token) in ("color", "material", "shape"):
            assert token in words or token + "s" in words, (token, text)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_every_answer_follows_from_the_latents(toy_root, split):
    store = LatentStore(toy_root, split, expected_shape=(128, 8, 16))
    scenes = _load(toy_root, split)
    assert [s["scene_index"] for s in scenes] == store.scenes()
    assert scenes[0]["scene_index"] == (0 if split == "train" else 10000)
    checked = collections.Counter()
    for scene in scenes:
        latents = store.read(scene["scene_index"])
        assert (latents[:, 0, 15].mean() > 0.5)  # The background slot.
        objects = decode_objects(latents)
        assert 3 <= len(objects) <= 6
        for question in scene["questions"]:
            program_lib.validate_question(question)
            _literals_in_text(question["program"], question["question"])
            if question["question_type"] == "descriptive":
                assert execute(question["program"], objects) == question["answer"]
                checked["descriptive"] += 1
                continue
            assert 2 <= len(question["choices"]) <= 4
            answers = set()
            for choice in question["choices"]:
                _literals_in_text(choice["program"], choice["choice"])
                target = execute(choice["program"], objects)
                assert execute(question["program"], objects, [target]) == choice["answer"]
                answers.add(choice["answer"])
            assert answers == {"correct", "wrong"}
            checked[question["question_type"]] += 1
    assert set(checked) == {"descriptive", "explanatory", "predictive", "counterfactual"}


def test_answers_are_balanced_within_each_family(toy_root):
    counts = collections.defaultdict(collections.Counter)
    for question in (q for s in _load(toy_root, "train") for q in s["questions"]):
        if question["question_type"] == "descriptive":
            counts[question["question_subtype"]][question["answer"]] += 1
        else:
            for choice in question["choices"]:
                counts[question["question_type"]][choice["answer"]] += 1
    assert set(counts) == set(toy_latents.DESCRIPTIVE_FAMILIES) | set(toy_latents.MC_FAMILIES)
    assert set(counts["exist"]) == {"yes", "no"} and set(counts["query_material"]) == {
        "metal", "rubber"}
    assert set(counts["count"]) == {"0", "1", "2", "3", "4", "5"}
    for family in ("exist", "query_material", "query_shape"):
        assert max(counts[family].values()) - min(counts[family].values()) <= 2, counts[family]
    # "5" is only possible in some scenes; no count answer dominates.
    assert max(counts["count"].values()) <= sum(counts["count"].values()) / 3, counts["count"]
    for family in toy_latents.MC_FAMILIES:
        correct = counts[family]["correct"] / sum(counts[family].values())
        assert 0.3 < correct < 0.7, counts[family]


def test_reads_back_through_the_pipeline(toy_root):
    vocab = vocab_lib.Vocab.load(os.path.join(toy_root, "vocab.json"))
    assert vocab.word_ids == vocab_lib.release_vocab().word_ids
    train = ClevrerLatentData(toy_root, "train", vocab, num_frames=8)
    batch = train.train_batch(0, 8, 4)
    assert batch["descriptive"]["latents"].shape == (8, 8, 8, 16)
    assert (batch["descriptive"]["answer"] >= 0).all()
    assert set(np.unique(batch["multiple_choice"]["choice_labels"])) <= {0.0, 1.0}
    valid = ClevrerLatentData(toy_root, "valid", vocab, num_frames=8)
    num_questions = sum(len(s["questions"]) for s in _load(toy_root, "valid"))
    visited = sum(int(b["descriptive"]["valid"].sum() + b["multiple_choice"]["valid"].sum())
                  for b in valid.eval_batches(16))
    assert visited == num_questions
    # The question types recorded in the metadata cover all three.
    types = np.concatenate([b["meta"]["multiple_choice"]["question_type"][b["multiple_choice"]
                                                                          ["valid"]]
                            for b in valid.eval_batches(16)])
    assert set(types) == {0, 1, 2}


def test_same_seed_same_files_and_command_line(toy_root, tmp_path):
    again = str(tmp_path / "again")
    done = subprocess.run([sys.executable, "-m", "aloe.synthetic.toy_latents", "--out", again,
                           "--num_train", "12", "--num_valid", "6", "--seed", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("vocab.json", "train.json", "valid.json", "train/4.npz", "valid/10005.npz"):
        assert filecmp.cmp(os.path.join(toy_root, name), os.path.join(again, name),
                           shallow=False), name
    other = str(tmp_path / "other")
    toy_latents.write_toy_dataset(other, num_train=12, num_valid=6, seed=4)
    assert _load(other, "train") != _load(toy_root, "train")
    # Each split has its own random stream.
    fewer = str(tmp_path / "fewer")
    toy_latents.write_toy_dataset(fewer, num_train=5, num_valid=6, seed=3)
    assert _load(fewer, "valid") == _load(toy_root, "valid")
    with pytest.raises(ValueError, match="num_train and num_valid must be >= 1"):
        toy_latents.write_toy_dataset(str(tmp_path / "empty"), num_train=0, num_valid=1, seed=0)

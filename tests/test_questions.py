"""Parsing CLEVRER question files into encoded arrays, on the real samples and bad entries."""

import copy
import json

import numpy as np
import pytest

from aloe.data import questions as questions_lib
from aloe.data import vocab as vocab_lib

SAMPLE_FILES = ("train_explanatory_564.json", "validation_explanatory_564.json")


@pytest.fixture(scope="module")
def release_vocab():
    return vocab_lib.release_vocab()


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_real_samples_parse_with_the_release_vocab(clevrer_samples_dir, release_vocab, name):
    path = clevrer_samples_dir / name
    raw = json.loads(path.read_text())
    parsed = questions_lib.load_questions(path, release_vocab)
    mc = parsed.multiple_choice
    assert len(parsed.descriptive) == 0 and len(mc) == 564
    assert mc.question.shape == (564, 20) and mc.question.dtype == np.int32
    assert mc.choices.shape == (564, 4, 12) and mc.choice_labels.dtype == np.int8
    assert (mc.question_type == questions_lib.MC_QUESTION_TYPES.index("explanatory")).all()
    assert mc.choice_mask.all() and mc.answered().all()
    for row, scene in enumerate(raw):
        question = scene["questions"][0]
        assert mc.scene_index[row] == scene["scene_index"]
        assert mc.question_id[row] == question["question_id"]
        assert release_vocab.decode(mc.question[row]) == " ".join(
            vocab_lib.tokenize(question["question"]))
        for slot, choice in enumerate(question["choices"]):
            assert mc.choice_ids[row, slot] == choice["choice_id"]
            assert mc.choice_labels[row, slot] == (choice["answer"] == "correct")
            assert release_vocab.decode(mc.choices[row, slot]) == " ".join(
                vocab_lib.tokenize(choice["choice"]))
    assert set(parsed.scene_indices()) == {s["scene_index"] for s in raw}


def _descriptive(question_id=0, **fields):
    entry = {"question_id": question_id, "question": "What is the color of the cube?",
             "question_type": "descriptive", "program": [], "answer": "red"}
    entry.update(fields)
    return entry


def _explanatory(question_id=1, num_choices=2):
    return {"question_id": question_id, "question": "Which of the following is metal?",
            "question_type": "explanatory", "program": [],
            "choices": [{"choice_id": i, "choice": "the red cube", "program": [],
                         "answer": ("correct", "wrong")[i % 2]} for i in range(num_choices)]}


def test_descriptive_and_unanswered_questions(release_vocab):
    scenes = [{"scene_index": 5, "questions": [
        _descriptive(0, question_subtype="query_color"), _descriptive(1, answer="3"),
        _explanatory(2, num_choices=3)]},
        {"scene_index": 9, "questions": [
            {k: v for k, v in _descriptive(0).items() if k != "answer"},
            {**_explanatory(1), "choices": [{"choice_id": 4, "choice": "the cube"}]}]}]
    parsed = questions_lib.parse_questions(scenes, release_vocab, source="q.json")
    desc, mc = parsed.descriptive, parsed.multiple_choice
    assert list(desc.scene_index) == [5, 5, 9] and list(desc.question_id) == [0, 1, 0]
    assert list(desc.answer) == [release_vocab.answer_to_class("red"),
                                 release_vocab.answer_to_class("3"), -1]
    assert list(desc.question_subtype) == ["query_color", "", ""]
    assert mc.choice_labels.tolist() == [[1, 0, 1, -1], [-1, -1, -1, -1]]
    assert mc.choice_mask.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert mc.choice_ids.tolist() == [[0, 1, 2, -1], [4, -1, -1, -1]]
    assert list(mc.answered()) == [True, False]
    assert not mc.choices[0, 3].any()
    assert list(parsed.scene_indices()) == [5, 9]
    kept = desc.take(desc.answer >= 0)
    assert len(kept) == 2 and list(kept.question_id) == [0, 1]


def _replace(entry, path, value):
    entry = copy.deepcopy(entry)
    node = entry
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return entry


BAD_ENTRIES = {
    "question too long": (_replace(_descriptive(3), ["question"], "what is the " * 7 + "cube?"),
                          "22 words, more than the maximum length 20.*question_id 3"),
    "missing question": (_replace(_descriptive(3), ["question"], None),
                         "question_id 3: missing field 'question'"),
    "missing question_type": (_replace(_descriptive(3), ["question_type"], None),
                              "question_id 3: missing field 'question_type'"),
    "unknown question_type": (_replace(_descriptive(3), ["question_type"], "causal"),
                              "question_id 3: unknown question_type 'causal'"),
    "answer outside vocabulary": (_replace(_descriptive(3), ["answer"], "7"),
                                  r"answer '7' is not in the answer vocabulary.*question_id 3"),
    "unknown word": (_replace(_descriptive(3), ["question"], "what is the hue of the cube?"),
                     r"unknown word 'hue'.*question_id 3"),
    "non-integer id": (_replace(_descriptive(3), ["question_id"], "3"),
                       "field 'question_id' must be int"),
    "too many choices": (_explanatory(3, num_choices=5),
                         "question_id 3: 5 choices, more than max_choices = 4"),
    "no choices": (_replace(_explanatory(3), ["choices"], []),
                   "question_id 3: field 'choices' is empty"),
    "missing choice text": (_replace(_explanatory(3), ["choices", 1, "choice"], None),
                            "question_id 3, choice_id 1: missing field 'choice'"),
    "choice too long": (_replace(_explanatory(3), ["choices", 1, "choice"], "the cube " * 7),
                        "14 words, more than the maximum length 12.*question_id 3, choice_id 1"),
    "bad choice answer": (_replace(_explanatory(3), ["choices", 0, "answer"], "yes"),
                          "question_id 3, choice_id 0: field 'answer' must be 'correct' or "
                          "'wrong'"),
    "repeated choice id": (_replace(_explanatory(3), ["choices", 1, "choice_id"], 0),
                           "choice_id 0 appears twice"),
}


@pytest.mark.parametrize("name", sorted(BAD_ENTRIES))
def test_bad_entries_name_file_scene_and_question(release_vocab, tmp_path, name):
    entry, message = BAD_ENTRIES[name]
    path = tmp_path / "bad_questions.json"
    path.write_text(json.dumps([{"scene_index": 42, "questions": [_descriptive(0), entry]}]))
    with pytest.raises(ValueError, match="bad_questions.json") as error:
        questions_lib.load_questions(path, release_vocab)
    assert "scene_index 42" in str(error.value)
    assert error.match(message)


def test_bad_file_structure(release_vocab, tmp_path):
    with pytest.raises(ValueError, match="q.json: scene entry 0: missing field 'scene_index'"):
        questions_lib.parse_questions([{"questions": []}], release_vocab, source="q.json")
    with pytest.raises(ValueError, match="q.json: scene_index 1 appears twice"):
        questions_lib.parse_questions([{"scene_index": 1, "questions": []}] * 2, release_vocab,
                                      source="q.json")
    with pytest.raises(ValueError, match="scene_index 1: question_id 0 appears twice"):
        questions_lib.parse_questions([{"scene_index": 1, "questions": [_descriptive(0)] * 2}],
                                      release_vocab, source="q.json")
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        questions_lib.load_questions(path, release_vocab)


def test_configured_lengths_and_unknown_words(release_vocab):
    scenes = [{"scene_index": 0, "questions": [_explanatory(0, num_choices=3)]}]
    parsed = questions_lib.parse_questions(scenes, release_vocab, max_question_len=8,
                                           max_choice_len=4, max_choices=3)
    assert parsed.multiple_choice.question.shape == (1, 8)
    assert parsed.multiple_choice.choices.shape == (1, 3, 4)
    unk_vocab = vocab_lib.release_vocab(unknown="unk")
    odd = [{"scene_index": 0, "questions": [_descriptive(0, question="what is the hue?")]}]
    parsed = questions_lib.parse_questions(odd, unk_vocab)
    assert parsed.descriptive.question[0, 3] == unk_vocab.unk_id
    with pytest.raises(ValueError, match="unknown word 'hue'"):
        questions_lib.parse_questions(odd, unk_vocab, unknown="error")

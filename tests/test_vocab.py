"""Tokenization and the question / answer vocabularies (release format, build, unknown words)."""

import json

import numpy as np
import pytest

from aloe.data import vocab as vocab_lib


def test_tokenize_follows_the_release():
    text = "Which of the following is responsible for the Cube's entrance?"
    assert vocab_lib.tokenize(text) == ["which", "of", "the", "following", "is", "responsible",
                                        "for", "the", "cube's", "entrance"]
    assert vocab_lib.tokenize("If the cube, is removed?") == ["if", "the", "cube,", "is",
                                                              "removed"]


def test_release_file_loads_with_answer_class_id_minus_one(clevrer_samples_dir):
    path = clevrer_samples_dir / "aloe_vocab.json"
    raw = json.loads(path.read_text())
    vocab = vocab_lib.Vocab.load(path)
    assert vocab.vocab_size == 82 and vocab.num_answers == 21
    assert vocab.word_ids == raw["question_vocab"]
    for answer, release_id in raw["answer_vocab"].items():
        assert vocab.answer_to_class(answer) == release_id - 1
        assert vocab.class_to_answer(release_id - 1) == answer
    assert vocab.unk_id is None
    # The built-in copy of the release vocabulary is the same.
    builtin = vocab_lib.release_vocab()
    assert builtin.word_ids == vocab.word_ids and builtin.answer_classes == vocab.answer_classes


def test_save_writes_the_release_file_back(clevrer_samples_dir, tmp_path):
    path = clevrer_samples_dir / "aloe_vocab.json"
    vocab_lib.Vocab.load(path).save(tmp_path / "vocab.json")
    assert json.loads((tmp_path / "vocab.json").read_text()) == json.loads(path.read_text())


def _question_file(path, texts, answers):
    questions = [{"question_id": i, "question": t, "question_type": "descriptive", "program": [],
                  "answer": a} for i, (t, a) in enumerate(zip(texts, answers))]
    path.write_text(json.dumps([{"scene_index": 0, "questions": questions}]))
    return path


def test_build_on_exactly_the_release_words_gives_the_release_ids(clevrer_samples_dir, tmp_path):
    release = json.loads((clevrer_samples_dir / "aloe_vocab.json").read_text())
    # Shuffled words in questions of 7 words each, one answer per question.
    words = list(np.random.default_rng(0).permutation(list(release["question_vocab"])))
    texts = [" ".join(words[i:i + 7]) + "?" for i in range(0, len(words), 7)]
    answers = list(reversed(list(release["answer_vocab"])))
    texts += [texts[0]] * (len(answers) - len(texts))
    built = vocab_lib.Vocab.build([_question_file(tmp_path / "q.json", texts, answers)])
    assert built.word_ids == release["question_vocab"]
    assert {a: c + 1 for a, c in built.answer_classes.items()} == release["answer_vocab"]


def test_build_from_real_samples_is_sorted_and_order_independent(clevrer_samples_dir):
    files = [clevrer_samples_dir / "train_explanatory_564.json",
             clevrer_samples_dir / "validation_explanatory_564.json"]
    built = vocab_lib.Vocab.build(files)
    reverse = vocab_lib.Vocab.build(files[::-1])
    assert built.word_ids == reverse.word_ids
    words = sorted(built.word_ids, key=built.word_ids.get)
    assert words == sorted(words)
    assert sorted(built.word_ids.values()) == list(range(1, len(words) + 1))
    release = vocab_lib.release_vocab()
    assert set(words) <= set(release.word_ids)
    # Explanatory questions have no descriptive answers.
    assert built.num_answers == 0
    scenes = json.loads(files[0].read_text())
    assert set(vocab_lib.tokenize(scenes[0]["questions"][0]["question"])) <= set(words)


def test_encode_pads_and_decodes():
    vocab = vocab_lib.release_vocab()
    ids = vocab.encode("What is the color of the cube?", 20)
    assert ids.dtype == np.int32 and ids.shape == (20,)
    assert list(ids[:7]) == [vocab.word_ids[w] for w in
                             ("what", "is", "the", "color", "of", "the", "cube")]
    assert not ids[7:].any()
    assert vocab.decode(ids) == "what is the color of the cube"
    with pytest.raises(ValueError, match="8 words, more than the maximum length 5"):
        vocab.encode("what is the color of the big cube", 5, source="q.json", scene_index=3,
                     question_id=4)


def test_unknown_word_error_names_word_file_scene_and_question():
    vocab = vocab_lib.release_vocab()
    with pytest.raises(ValueError, match=r"unknown word 'banana' \(file q\.json, scene_index 7, "
                                         r"question_id 2\)"):
        vocab.encode("what is the banana?", 20, source="q.json", scene_index=7, question_id=2)
    with pytest.raises(ValueError, match="needs a vocabulary with '<unk>'"):
        vocab.encode("what is the banana?", 20, unknown="unk")
    with pytest.raises(ValueError, match="unknown-word policy"):
        vocab_lib.Vocab({"a": 1}, {}, unknown="ignore")


def test_unk_policy_reserves_an_id_after_the_release_words(clevrer_samples_dir, tmp_path):
    vocab = vocab_lib.Vocab.load(clevrer_samples_dir / "aloe_vocab.json", unknown="unk")
    assert vocab.unk_id == 82 and vocab.vocab_size == 83
    ids = vocab.encode("what is the banana?", 20)
    assert list(ids[:4]) == [vocab.word_ids["what"], vocab.word_ids["is"],
                             vocab.word_ids["the"], 82]
    # The policy can be tightened per call; the reserved id survives save / load.
    with pytest.raises(ValueError, match="banana"):
        vocab.encode("what is the banana?", 20, unknown="error")
    vocab.save(tmp_path / "unk.json")
    reloaded = vocab_lib.Vocab.load(tmp_path / "unk.json")
    assert reloaded.unk_id == 82 and reloaded.vocab_size == 83 and reloaded.unknown == "error"


def test_malformed_vocab_file_names_file_and_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"question_vocab": {"a": 1}, "answer_vocab": {"yes": 2}}))
    with pytest.raises(ValueError, match=r"bad\.json: field 'answer_vocab' ids must be exactly 1"):
        vocab_lib.Vocab.load(path)
    path.write_text(json.dumps({"question_vocab": {"a": 0}, "answer_vocab": {"yes": 1}}))
    with pytest.raises(ValueError, match=r"bad\.json: field 'question_vocab'"):
        vocab_lib.Vocab.load(path)
    with pytest.raises(ValueError, match="outside 0..0"):
        vocab_lib.Vocab({"a": 1}, {"yes": 0}).class_to_answer(1)


def test_build_names_a_question_file_that_is_not_json(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text("[{not json")
    with pytest.raises(ValueError, match=f"{bad}: not valid JSON"):
        vocab_lib.Vocab.build([bad])

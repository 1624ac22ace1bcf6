"""The mini-CLEVRER question generator on hand-built straight-line scenes."""

import collections
import json

import numpy as np
import pytest

from aloe.clevrer import executor, program
from aloe.clevrer.executor import Scene
from aloe.synthetic import clevrer_questions as questions
import clevrer_test_scenes as scenes

DESCRIPTIVE_KEYS = {"question_id", "question", "question_type", "question_subtype", "program",
                    "answer", "family"}
CHOICE_KEYS = {"question_id", "question", "question_type", "program", "choices", "family"}


def _random_scenes(seed: int, count: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [Scene.from_annotation(*scenes.random_worlds(rng, i)) for i in range(count)]


@pytest.fixture(scope="module")
def vocabulary(clevrer_samples_dir) -> tuple[set[str], set[str]]:
    vocab = json.loads((clevrer_samples_dir / "aloe_vocab.json").read_text())
    return set(vocab["question_vocab"]), set(vocab["answer_vocab"])


def _words(text: str) -> list[str]:
    return text.lower().replace("?", "").split(" ")


def test_candidates_are_executor_answers_in_the_release_vocabulary(vocabulary):
    words, answers = vocabulary
    rng = np.random.default_rng(5)
    types = collections.Counter()
    for scene in _random_scenes(seed=1, count=8):
        candidates = questions.candidate_questions(scene, rng)
        assert [q["question_id"] for q in candidates] == list(range(len(candidates)))
        for q in candidates:
            types[q["question_type"]] += 1
            program.validate_question(q)
            texts = [q["question"]] + [c["choice"] for c in q.get("choices", [])]
            assert all(w in words for text in texts for w in _words(text)), texts
            if q["question_type"] == "descriptive":
                assert set(q) == DESCRIPTIVE_KEYS
                assert q["answer"] == executor.answer(q["program"], scene)
                assert q["answer"] in answers
                assert q["question_subtype"] in ("count", "exist", "query_color", "query_material",
                                                 "query_shape")
            else:
                assert set(q) == CHOICE_KEYS
                labels = [c["answer"] for c in q["choices"]]
                assert 2 <= len(labels) <= 4 and {"correct", "wrong"} <= set(labels)
                assert [c["choice_id"] for c in q["choices"]] == list(range(len(labels)))
                for choice in q["choices"]:
                    assert choice["answer"] == executor.answer(q["program"], scene, choice["program"])
    assert set(types) == {"descriptive", "explanatory", "predictive", "counterfactual"}
    assert types["descriptive"] > 100


def test_known_answers_on_a_hand_built_scene():
    """Red cube hits the still blue sphere at frame 6; the blue sphere and the green cylinder
    collide unseen at frame 14; without the red cube only the cylinder and the yellow cube collide."""
    specs = {0: scenes.spec("red", "metal", "cube", moving=(0, 6), velocity=(1.0, 0.0)),
             1: scenes.spec("blue", "rubber", "sphere", moving=(6, 30), velocity=(1.0, 0.0)),
             2: scenes.spec("green", "rubber", "cylinder", visible=(3, 30)),
             3: scenes.spec("yellow", "metal", "cube")}
    scene = Scene.from_annotation(
        scenes.annotation(specs, [(0, 1, 6)], 10),
        future=scenes.world(specs, [(1, 2, 14)], range(10, 20)),
        counterfactuals={0: scenes.world(specs, [(2, 3, 12)], range(20), absent=0)})
    by_text = {q["question"]: q for q in questions.candidate_questions(scene, np.random.default_rng(0))}
    assert by_text["How many collisions happen?"]["answer"] == "1"
    entering = [q for q in by_text.values() if q["family"] == "count_enter"]
    assert len(entering) == 1  # Only the green rubber cylinder enters.
    named = set(_words(entering[0]["question"])[2:-3])
    assert entering[0]["answer"] == ("1" if named <= {"green", "rubber", "cylinders", "objects"} else "0")
    checked = collections.Counter()
    for q in by_text.values():
        if q["question_type"] not in ("predictive", "counterfactual"):
            continue
        happening = (1, 2) if q["question_type"] == "predictive" else (2, 3)
        negated = q["program"][-1] == "negate"
        for choice in q["choices"]:
            pair = executor.execute(choice["program"], scene).objects
            assert choice["answer"] == ("correct" if (pair == happening) != negated else "wrong")
            checked[q["question_type"]] += 1
    assert checked["predictive"] == 2 and checked["counterfactual"] >= 2


def test_scene_without_future_or_counterfactuals_gets_descriptive_and_explanatory_only():
    rng = np.random.default_rng(2)
    kinds = set()
    for i in range(6):
        annotation, _, _ = scenes.random_worlds(rng, i)
        kinds |= {q["question_type"] for q in questions.candidate_questions(
            Scene.from_annotation(annotation), rng)}
    assert kinds <= {"descriptive", "explanatory"} and "descriptive" in kinds


def test_select_balanced_meets_the_bounds_on_random_scenes():
    rng = np.random.default_rng(3)
    all_scenes = _random_scenes(seed=4, count=40)
    candidates = {scene.scene_index: questions.candidate_questions(scene, rng) for scene in all_scenes}
    raw = questions.balance_report(candidates)
    assert any(entry["most_common_share"] > entry["max_share_allowed"]
               for entry in raw.values() if "max_share_allowed" in entry)  # The pool is skewed.
    per_video = 10
    selected = questions.select_balanced(candidates, rng, per_video)
    assert set(selected) == set(candidates)
    assert all(len(qs) <= per_video for qs in selected.values())
    assert sum(len(qs) for qs in selected.values()) >= 0.9 * per_video * len(candidates)
    family_of = {(v, q["question"]): q["family"] for v, qs in candidates.items() for q in qs}
    families = collections.defaultdict(dict)
    for video, qs in selected.items():
        assert [q["question_id"] for q in qs] == list(range(len(qs)))
        assert all("family" not in q for q in qs)
        assert len({q["question"] for q in qs}) == len(qs)
        families[video] = {q["question"]: q for q in qs}
    # Family level: recover each selected question's family from its candidate.
    by_family = {(v, text): q | {"family": family_of[(v, text)]}
                 for v, qs in families.items() for text, q in qs.items()}
    report = questions.balance_report({0: list(by_family.values())})
    for group, entry in report.items():
        if "max_share_allowed" in entry:
            assert entry["most_common_share"] <= entry["max_share_allowed"], (group, entry)
    # Subtype level, as seen in the released files.
    for group, entry in questions.balance_report(selected).items():
        if "max_share_allowed" in entry:
            assert entry["most_common_share"] <= entry["max_share_allowed"], (group, entry)
    types = {q["question_type"] for qs in selected.values() for q in qs}
    assert types == {"descriptive", "explanatory", "predictive", "counterfactual"}
    assert "family" in candidates[0][0]  # The input is left untouched.


def test_select_balanced_keeps_every_rare_answer_of_a_skewed_family():
    def question(answer: str) -> dict:
        return {"question": f"q{answer}", "question_type": "descriptive", "question_subtype": "exist",
                "program": ["objects", "exist"], "answer": answer, "family": "exist_x"}
    candidates = {v: [question("yes") | {"question": f"yes {i}"} for i in range(4)] +
                  ([question("no")] if v % 3 == 0 else []) for v in range(30)}
    selected = questions.select_balanced(candidates, np.random.default_rng(0), per_video=2)
    tally = collections.Counter(q["answer"] for qs in selected.values() for q in qs)
    assert tally["no"] == 10  # All ten rare answers are kept ...
    assert tally["yes"] / (tally["yes"] + tally["no"]) <= questions.MAX_ANSWER_SHARE["yes/no"]
    assert tally["yes"] >= 10  # ... and the common one is cut to about as many.

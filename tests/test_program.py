"""The CLEVRER program parser on the real question samples and on malformed programs."""

import json

import pytest

from aloe.clevrer import program
from aloe.clevrer.program import Call, Input, Literal, ProgramError

# Arities as listed in DESIGN.md §6.
DESIGN_ARITIES = {
    0: "objects events unseen_events all_events",
    1: "unique count exist negate filter_start filter_end query_color query_material query_shape "
       "query_frame query_object counterfact_events",
    2: "belong_to filter_color filter_material filter_shape filter_resting filter_moving "
       "filter_stationary filter_in filter_out filter_collision filter_order filter_before "
       "filter_after query_direction query_collision_partner filter_ancestor filter_counterfact",
}


def _sample_questions(samples_dir):
    for name in ("train_explanatory_564.json", "validation_explanatory_564.json"):
        for video in json.loads((samples_dir / name).read_text()):
            yield from video["questions"]


def test_module_table_matches_design():
    expected = {m: arity for arity, names in DESIGN_ARITIES.items() for m in names.split()}
    assert program.MODULE_ARITY == expected and len(expected) == 33


def test_every_sample_program_parses_and_round_trips(clevrer_samples_dir):
    used, count = set(), 0
    for question in _sample_questions(clevrer_samples_dir):
        program.validate_question(question)
        tree = program.parse_program(question["program"], num_inputs=1)
        assert program.to_postfix(tree) == question["program"]
        used |= program.modules_used(tree)
        for choice in question["choices"]:
            choice_tree = program.parse_program(choice["program"])
            assert program.to_postfix(choice_tree) == choice["program"]
            combined = program.parse_program(choice["program"] + question["program"])
            assert combined.module in ("belong_to", "negate")
            used |= program.modules_used(choice_tree)
            count += 1
    assert count == 4 * 2 * 564
    assert used == {"events", "objects", "unique", "filter_color", "filter_material", "filter_shape",
                    "filter_collision", "filter_in", "filter_out", "filter_ancestor", "belong_to",
                    "negate"}
    assert used <= set(program.MODULE_SIGNATURES)


def test_tree_structure():
    tree = program.parse_program(["objects", "red", "filter_color", "null", "filter_moving", "count"])
    assert tree == Call("count", (Call("filter_moving", (
        Call("filter_color", (Call("objects", (), 0), Literal("color", "red", 1)), 2),
        Literal("frame", None, 3)), 4),), 5)
    question = program.parse_program(["unseen_events", "belong_to"], num_inputs=1)
    assert question == Call("belong_to", (Input(0), Call("unseen_events", (), 0)), 1)
    assert program.parse_program(["objects", "12", "filter_stationary"]).args[1] == Literal("frame", 12, 1)
    assert program.literal_kind("second") == "order" and program.literal_kind("rubber") == "material"
    assert program.literal_kind("left") is None


@pytest.mark.parametrize("tokens, message", [
    (["objects", "pink", "filter_color"], r"position 1 \('pink'\): unknown token"),
    (["objects", "red", "filter_colour"], r"position 2 \('filter_colour'\): unknown token"),
    (["red", "filter_color"], r"position 1 \('filter_color'\): filter_color takes 2 argument\(s\) "
                              r"but only 1"),
    (["objects", "objects"], r"leaves 2 values .*position 0 \('objects'\), position 1 \('objects'\)"),
    (["objects", "cube", "filter_color"], r"position 2 \('filter_color'\): argument 1 must be a color "
                                          r"literal.*got position 1 \('cube'\)"),
    (["red", "objects", "filter_in"], r"position 2 \('filter_in'\): argument 0 must be a computed "
                                      r"value, but position 0 \('red'\) is a color literal"),
    (["objects", "first", "filter_moving"], r"argument 1 must be a frame, but position 1 \('first'\)"),
    (["objects", "objects", "filter_order"], r"argument 1 must be an order literal"),
    (["null"], r"bare literal at position 0"),
    ([], "empty"),
    ("objects", "must be a list"),
    (["objects", 3, "filter_color"], r"position 1 \(3\): tokens must be strings"),
])
def test_malformed_programs(tokens, message):
    with pytest.raises(ProgramError, match=message):
        program.parse_program(tokens)


def test_question_inputs_and_validation_messages():
    question = {"question_id": 12, "question_type": "explanatory",
                "program": ["events", "filter_ancestor", "belong_to"],
                "choices": [{"choice_id": 0, "program": ["objects", "unique"]}]}
    with pytest.raises(ValueError, match=r"question 12: field 'program': position 2 \('belong_to'\)"):
        program.validate_question(question)
    question["program"] = ["events", "events", "objects", "unique", "filter_out", "unique",
                           "filter_ancestor", "belong_to"]
    program.validate_question(question)
    question["choices"].append({"choice_id": 1, "program": ["objects", "unique", "unique", "red"]})
    with pytest.raises(ValueError, match=r"question 12, choice 1: field 'program': the program leaves 2"):
        program.validate_question(question)
    with pytest.raises(ValueError, match="question 3: field 'question_type'"):
        program.validate_question({"question_id": 3, "question_type": "causal", "program": ["objects"]})
    with pytest.raises(ValueError, match="question 4: field 'program' is missing"):
        program.validate_question({"question_id": 4, "question_type": "descriptive"})
    with pytest.raises(ProgramError, match=r"leaves 2 values on the stack \(input 0, position 1"):
        program.parse_program(["objects", "count"], num_inputs=1)

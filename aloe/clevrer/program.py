"""CLEVRER's program language: the module table, literal arguments and a postfix parser.

A CLEVRER program is a postfix list of tokens. A token is either one of the 33
modules below (it pops its arguments from a stack and pushes its result) or a
literal argument (a colour, a material, a shape, an order such as "first", or a
frame such as "null"). Multiple-choice questions split one program in two: the
choice program computes an object or an event, and the question program
consumes it (`belong_to` in `choice + question`). A question program of that
kind is parsed with `num_inputs=1`: it starts with one value, the choice's,
already on the stack.

The parser turns the token list into a tree (`Call`, `Literal`, `Input` nodes)
and checks everything that can be checked without a scene: every token is a
module or a known literal, every module gets the number of arguments it needs,
literals sit only in the argument slots that take them, and the program leaves
exactly one value. Violations raise `ProgramError` (a `ValueError`) naming the
token's position and text; callers add the file and question id.
"""

import dataclasses
from typing import Sequence, Union

COLORS = ("gray", "red", "blue", "green", "brown", "yellow", "cyan", "purple")
MATERIALS = ("metal", "rubber")
SHAPES = ("sphere", "cylinder", "cube")
ORDERS = ("first", "second", "last")
# The frame literal for "over the whole video" (filter_moving / filter_stationary).
WHOLE_VIDEO = "null"

# Argument slots: VALUE takes a computed value (a module's result or an input);
# FRAME takes a computed frame or a frame literal; the others take one literal kind.
VALUE, FRAME, COLOR, MATERIAL, SHAPE, ORDER = "value", "frame", "color", "material", "shape", "order"

# Module -> the kinds of its argument slots, in stack order (the first is pushed first).
MODULE_SIGNATURES: dict[str, tuple[str, ...]] = {
    "objects": (),
    "events": (),
    "unseen_events": (),
    "all_events": (),
    "unique": (VALUE,),
    "count": (VALUE,),
    "exist": (VALUE,),
    "negate": (VALUE,),
    "filter_start": (VALUE,),
    "filter_end": (VALUE,),
    "query_color": (VALUE,),
    "query_material": (VALUE,),
    "query_shape": (VALUE,),
    "query_frame": (VALUE,),
    "query_object": (VALUE,),
    "counterfact_events": (VALUE,),
    "belong_to": (VALUE, VALUE),
    "filter_color": (VALUE, COLOR),
    "filter_material": (VALUE, MATERIAL),
    "filter_shape": (VALUE, SHAPE),
    "filter_resting": (VALUE, FRAME),
    "filter_moving": (VALUE, FRAME),
    "filter_stationary": (VALUE, FRAME),
    "filter_in": (VALUE, VALUE),
    "filter_out": (VALUE, VALUE),
    "filter_collision": (VALUE, VALUE),
    "filter_order": (VALUE, ORDER),
    "filter_before": (VALUE, VALUE),
    "filter_after": (VALUE, VALUE),
    "query_direction": (VALUE, FRAME),
    "query_collision_partner": (VALUE, VALUE),
    "filter_ancestor": (VALUE, VALUE),
    "filter_counterfact": (VALUE, VALUE),
}
MODULE_ARITY: dict[str, int] = {name: len(slots) for name, slots in MODULE_SIGNATURES.items()}

_LITERALS_BY_KIND = {COLOR: COLORS, MATERIAL: MATERIALS, SHAPE: SHAPES, ORDER: ORDERS}


class ProgramError(ValueError):
    """A program that is not well formed (unknown token, wrong arity, misplaced literal)."""


@dataclasses.dataclass(frozen=True)
class Literal:
    """A literal argument.

    Attributes:
      kind: "color", "material", "shape", "order" or "frame".
      value: the literal's text; for frames, an int frame index or None (whole video).
      position: index of the token in the program.
    """
    kind: str
    value: Union[str, int, None]
    position: int


@dataclasses.dataclass(frozen=True)
class Input:
    """A value the caller supplies before the program runs (a choice program's output)."""
    index: int


@dataclasses.dataclass(frozen=True)
class Call:
    """A module applied to its arguments (in stack order).

    Attributes:
      module: the module name, a key of `MODULE_SIGNATURES`.
      args: the argument nodes, the first pushed first.
      position: index of the module's token in the program.
    """
    module: str
    args: tuple["Node", ...]
    position: int


Node = Union[Call, Literal, Input]


def literal_kind(token: str) -> str | None:
    """The literal kind of `token` ("color", ..., "frame"), or None if it is no literal."""
    for kind, values in _LITERALS_BY_KIND.items():
        if token in values:
            return kind
    if token == WHOLE_VIDEO or (token.isascii() and token.isdigit()):
        return FRAME
    return None


def _literal(token: str, position: int) -> Literal:
    kind = literal_kind(token)
    if kind is None:
        raise ProgramError(f"position {position} ({token!r}): unknown token; it is neither one of the "
                           f"{len(MODULE_SIGNATURES)} modules nor a known literal.")
    if kind == FRAME:
        return Literal(FRAME, None if token == WHOLE_VIDEO else int(token), position)
    return Literal(kind, token, position)


def _describe(node: Node, program: Sequence[str]) -> str:
    if isinstance(node, Input):
        return f"input {node.index}"
    return f"position {node.position} ({program[node.position]!r})"


def _check_slot(module: str, position: int, slot: int, kind: str, node: Node,
                program: Sequence[str]) -> None:
    """Raises ProgramError if `node` cannot fill argument `slot` of kind `kind`."""
    if kind == VALUE:
        if isinstance(node, Literal):
            raise ProgramError(f"position {position} ({module!r}): argument {slot} must be a computed "
                               f"value, but {_describe(node, program)} is a {node.kind} literal.")
    elif kind == FRAME:
        if isinstance(node, Literal) and node.kind != FRAME:
            raise ProgramError(f"position {position} ({module!r}): argument {slot} must be a frame, "
                               f"but {_describe(node, program)} is a {node.kind} literal.")
    elif not isinstance(node, Literal) or node.kind != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ProgramError(f"position {position} ({module!r}): argument {slot} must be {article} {kind} "
                           f"literal (one of {', '.join(_LITERALS_BY_KIND[kind])}), got "
                           f"{_describe(node, program)}.")


def parse_program(program: Sequence[str], num_inputs: int = 0) -> Node:
    """Parses a postfix program into a tree and validates it.

    Args:
      program: the postfix token list, e.g. `["objects", "red", "filter_color", "unique"]`.
      num_inputs: values already on the stack before the first token (1 for the
        question program of a multiple-choice question, 0 otherwise).

    Returns:
      The root node, the program's single result.

    Raises:
      ProgramError: an unknown token, a module with too few arguments, a literal
        in a slot that does not take it, or a program that does not leave exactly
        one computed value.
    """
    if isinstance(program, str) or not isinstance(program, Sequence):
        raise ProgramError(f"a program must be a list of strings, got {type(program).__name__}.")
    if not program:
        raise ProgramError("the program is empty.")
    stack: list[Node] = [Input(i) for i in range(num_inputs)]
    for position, token in enumerate(program):
        if not isinstance(token, str):
            raise ProgramError(f"position {position} ({token!r}): tokens must be strings.")
        signature = MODULE_SIGNATURES.get(token)
        if signature is None:
            stack.append(_literal(token, position))
            continue
        if len(stack) < len(signature):
            raise ProgramError(f"position {position} ({token!r}): {token} takes {len(signature)} "
                               f"argument(s) but only {len(stack)} value(s) are on the stack.")
        args = tuple(stack[len(stack) - len(signature):])
        del stack[len(stack) - len(signature):]
        for slot, (kind, node) in enumerate(zip(signature, args)):
            _check_slot(token, position, slot, kind, node, program)
        stack.append(Call(token, args, position))
    if len(stack) != 1:
        described = ", ".join(_describe(node, program) for node in stack)
        raise ProgramError(f"the program leaves {len(stack)} values on the stack ({described}); "
                           f"a complete program leaves exactly one.")
    if isinstance(stack[0], Literal):
        raise ProgramError(f"the program's result is the bare literal at {_describe(stack[0], program)}.")
    return stack[0]


def question_program_inputs(question_type: str) -> int:
    """How many values a question program of this type consumes from its choice program."""
    if question_type == "descriptive":
        return 0
    if question_type in ("explanatory", "predictive", "counterfactual"):
        return 1
    raise ValueError(f"unknown question_type {question_type!r}; expected descriptive, explanatory, "
                     f"predictive or counterfactual.")


def to_postfix(node: Node) -> list[str]:
    """Writes a tree back as a postfix token list (inputs are left out: they precede the program)."""
    if isinstance(node, Input):
        return []
    if isinstance(node, Literal):
        if node.kind == FRAME:
            return [WHOLE_VIDEO if node.value is None else str(node.value)]
        return [str(node.value)]
    tokens: list[str] = []
    for arg in node.args:
        tokens.extend(to_postfix(arg))
    return tokens + [node.module]


def modules_used(node: Node) -> set[str]:
    """The names of the modules a parsed program calls."""
    if isinstance(node, Call):
        return {node.module}.union(*(modules_used(arg) for arg in node.args))
    return set()


def validate_question(question: dict) -> None:
    """Parses a question's program and its choices' programs (official question schema).

    Raises:
      ValueError: naming the question id (and choice id), the field and the parse error.
    """
    qid = question.get("question_id", "?")
    try:
        inputs = question_program_inputs(question.get("question_type"))
    except ValueError as err:
        raise ValueError(f"question {qid}: field 'question_type': {err}") from None
    entries = [(f"question {qid}", question, inputs)]
    if inputs:
        if not question.get("choices"):
            raise ValueError(f"question {qid}: field 'choices' is missing or empty.")
        entries += [(f"question {qid}, choice {choice.get('choice_id', '?')}", choice, 0)
                    for choice in question["choices"]]
    for where, entry, num_inputs in entries:
        if "program" not in entry:
            raise ValueError(f"{where}: field 'program' is missing.")
        try:
            parse_program(entry["program"], num_inputs=num_inputs)
        except ProgramError as err:
            raise ValueError(f"{where}: field 'program': {err}") from None

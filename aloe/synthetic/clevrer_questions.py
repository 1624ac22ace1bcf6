"""CLEVRER-style questions for mini-CLEVRER videos, answered by the symbolic executor.

`candidate_questions` writes, for one scene, questions of the four CLEVRER types
in the official schema (DESIGN.md §6) plus a `family` key naming the template.
Texts use only words of the released ALOE vocabulary and follow the phrasing of
real CLEVRER questions; programs are in CLEVRER's language; every answer comes
from `aloe.clevrer.executor`, and a question whose references have no single
referent (`IllPosedError`) is dropped. `select_balanced` then picks questions
across videos so that no descriptive answer dominates its family, and
`balance_report` measures the answer shares (both from `question_balance`).
"""

import dataclasses
import itertools
from typing import Iterable

import numpy as np

from aloe.clevrer import executor, program
from aloe.clevrer.executor import IllPosedError, Scene
from aloe.synthetic.question_balance import MAX_ANSWER_SHARE, balance_report, select_balanced

__all__ = ["ANSWERS", "MAX_ANSWER_SHARE", "candidate_questions", "select_balanced", "balance_report"]

ANSWERS = frozenset(("0", "1", "2", "3", "4", "5", "yes", "no") + program.COLORS +
                    program.MATERIALS + program.SHAPES)
_ATTRIBUTES = ("color", "material", "shape")
_MOTIONS = ("moving", "stationary")


@dataclasses.dataclass(frozen=True)
class _Description:
    """Attribute words describing objects ("red metal cube"); None leaves one out."""
    color: str | None = None
    material: str | None = None
    shape: str | None = None

    def text(self, suffix: str = "") -> str:
        """'the red cube' + suffix ("'s" or ",")."""
        return " ".join(["the"] + [w for w in (self.color, self.material) if w] +
                        [(self.shape or "object") + suffix])

    def plural(self) -> str:
        """'red cubes', 'metal objects'."""
        return " ".join([w for w in (self.color, self.material) if w] +
                        [self.shape + "s" if self.shape else "objects"])

    def filters(self) -> list[str]:
        """Program tokens filtering objects down to this description."""
        tokens = []
        for attribute in _ATTRIBUTES:
            if getattr(self, attribute):
                tokens += [getattr(self, attribute), f"filter_{attribute}"]
        return tokens

    def reference(self) -> list[str]:
        """Program of the one object this describes."""
        return ["objects"] + self.filters() + ["unique"]


def _descriptions(scene: Scene, object_id: int, without: str | None = None) -> list[_Description]:
    """Every attribute subset (leaving out `without`) that singles out `object_id` in view."""
    props = scene.properties
    usable = [a for a in _ATTRIBUTES if a != without]
    found = []
    for size in range(1, len(usable) + 1):
        for subset in itertools.combinations(usable, size):
            values = {a: getattr(props[object_id], a) for a in subset}
            matches = [o for o in scene.visible_object_ids
                       if all(getattr(props[o], a) == v for a, v in values.items())]
            if matches == [object_id]:
                found.append(_Description(**values))
    return found


class _Writer:
    """Collects the questions of one scene, answering each with the executor."""

    def __init__(self, scene: Scene, rng: np.random.Generator):
        self.scene, self.rng, self.questions = scene, rng, []
        self.visible = scene.visible_object_ids

    def pick(self, items: list):
        """A random member of `items` (None when empty)."""
        return items[int(self.rng.integers(len(items)))] if items else None

    def describe(self, object_id: int, without: str | None = None) -> _Description | None:
        """A random description singling out the object (None when there is none)."""
        return self.pick(_descriptions(self.scene, object_id, without))

    def partial(self, without: str | None = None) -> _Description:
        """A description of a random subset of a random visible object's attributes."""
        props = self.scene.properties[self.pick(list(self.visible))]
        keep = [a for a in _ATTRIBUTES if a != without and self.rng.random() < 0.4]
        return _Description(**{a: getattr(props, a) for a in keep})

    def events(self, kind: str) -> list[executor.Event]:
        """The observed events of one kind, in time order."""
        return [e for e in self.scene.events if e.kind == kind]

    def descriptive(self, family: str, subtype: str, text: str, tokens: list[str]) -> None:
        """Adds the question unless it is ill-posed or its answer is outside the vocabulary."""
        try:
            answer = executor.answer(tokens, self.scene)
        except IllPosedError:
            return
        if answer in ANSWERS:
            self.questions.append({"question": text, "question_type": "descriptive",
                                   "question_subtype": subtype, "program": tokens,
                                   "answer": answer, "family": family})

    def multiple_choice(self, family: str, qtype: str, text: str, tokens: list[str],
                        options: Iterable[tuple[str, list[str]]]) -> None:
        """Adds the question with 2-4 of `options`, at least one correct and one wrong."""
        labelled = {"correct": [], "wrong": []}
        for choice_text, choice_program in options:
            try:
                label = executor.answer(tokens, self.scene, choice_program=choice_program)
            except IllPosedError:
                continue
            labelled[label].append((choice_text, choice_program, label))
        if not labelled["correct"] or not labelled["wrong"]:
            return
        for group in labelled.values():
            self.rng.shuffle(group)
        rest = labelled["correct"][1:] + labelled["wrong"][1:]
        self.rng.shuffle(rest)
        extra = int(self.rng.integers(0, min(2, len(rest)) + 1))
        picked = [labelled["correct"][0], labelled["wrong"][0]] + rest[:extra]
        self.rng.shuffle(picked)
        choices = [{"choice_id": i, "choice": c, "program": p, "answer": a}
                   for i, (c, p, a) in enumerate(picked)]
        self.questions.append({"question": text, "question_type": qtype, "program": tokens,
                               "choices": choices, "family": family})

    # ---- Descriptive families.

    def frame_anchors(self) -> list[tuple[str, list[str]]]:
        """Moments to ask about: "when <text>" and the program of that frame."""
        anchors = [("the video begins", ["events", "filter_start", "query_frame"]),
                   ("the video ends", ["events", "filter_end", "query_frame"])]
        for kind, verb in (("in", "enters"), ("out", "exits")):
            for event in self.events(kind):
                about = self.describe(event.objects[0])
                if about:
                    anchors.append((f"{about.text()} {verb} the scene", ["events"] + about.reference() +
                                    [f"filter_{kind}", "unique", "query_frame"]))
        return anchors

    def counting_and_existence(self) -> None:
        """How many / are there any: moving or still objects, entrances, exits, collisions."""
        anchors = self.frame_anchors()
        for motion in _MOTIONS:
            group = self.partial()
            self.descriptive(f"count_{motion}", "count", f"How many {group.plural()} are {motion}?",
                             ["objects"] + group.filters() + ["null", f"filter_{motion}", "count"])
            group = self.partial()
            self.descriptive(f"exist_{motion}", "exist", f"Are there any {motion} {group.plural()}?",
                             ["objects"] + group.filters() + ["null", f"filter_{motion}", "exist"])
            for family, subtype in ((f"count_{motion}_when", "count"), (f"exist_{motion}_when", "exist")):
                group, (when, frame) = self.partial(), self.pick(anchors)
                text = (f"How many {group.plural()} are {motion} when {when}?" if subtype == "count"
                        else f"Are there any {motion} {group.plural()} when {when}?")
                self.descriptive(family, subtype, text, ["objects"] + group.filters() + frame +
                                 [f"filter_{motion}", subtype])
        for kind, verb in (("in", "enter"), ("out", "exit")):
            group = self.partial()
            events_of = ["events", "objects"] + group.filters() + [f"filter_{kind}"]
            self.descriptive(f"count_{verb}", "count", f"How many {group.plural()} {verb} the scene?",
                             events_of + ["count"])
            self.descriptive(f"exist_{verb}", "exist",
                             f"Are there any {group.plural()} that {verb} the scene?", events_of + ["exist"])
        self.descriptive("count_collisions", "count", "How many collisions happen?",
                         ["events", "objects", "filter_collision", "count"])
        for event in self.events("in") + self.events("out"):
            about, relation = self.describe(event.objects[0]), self.pick(["before", "after"])
            if about:
                verb = "enters" if event.kind == "in" else "exits"
                self.descriptive("count_collisions_" + relation, "count",
                                 f"How many collisions happen {relation} {about.text()} {verb} the scene?",
                                 ["events", "events"] + about.reference() +
                                 [f"filter_{event.kind}", "unique", f"filter_{relation}", "objects",
                                  "filter_collision", "count"])
        collided = [e.objects for e in self.events("collision")]
        pairs = list(itertools.combinations(self.visible, 2))
        for pair in [self.pick(collided), self.pick(pairs)]:
            described = [self.describe(o) for o in pair] if pair else [None]
            if all(described):
                first, second = described
                self.descriptive("exist_collision_between", "exist",
                                 f"Are there any collisions between {first.text()} and {second.text()}?",
                                 ["events"] + first.reference() + ["filter_collision"] +
                                 second.reference() + ["filter_collision", "exist"])

    def attribute_queries(self) -> None:
        """Colour / material / shape of an object singled out by motion, order or collision."""
        anchors = self.frame_anchors()
        for attribute in _ATTRIBUTES:
            family, subtype = f"query_{attribute}", f"query_{attribute}"

            def ask(template: str, what: str, tokens: list[str], suffix: str) -> None:
                text = (f"What is the {attribute} of {what}?" if template == "of"
                        else f"What {attribute} is {what}?")
                self.descriptive(f"{family}_{suffix}", subtype, text, tokens + [subtype])

            motion, (when, frame) = self.pick(list(_MOTIONS)), self.pick(anchors)
            target = self.pick(list(self.visible))
            props = self.scene.properties[target]
            for size in range(3):  # The shortest partial description that is well posed.
                group = _Description(**{a: getattr(props, a) for a in _ATTRIBUTES
                                        if a != attribute and self.rng.random() < size / 2})
                tokens = ["objects"] + group.filters() + frame + [f"filter_{motion}", "unique"]
                try:
                    executor.execute(tokens, self.scene)
                except IllPosedError:
                    continue
                what = (f"the {motion} {group.text()[4:]} when {when}" if self.rng.random() < 0.5
                        else f"{group.text()} that is {motion} when {when}")
                ask(self.pick(["of", "is"]), what, tokens, "when")
                break
            for kind, verb in (("in", "enters"), ("out", "exits")):
                order = self.pick(list(program.ORDERS) + ["unique"])
                picked = ["unique"] if order == "unique" else [order, "filter_order"]
                what = "the object" if order == "unique" else f"the {order} object"
                ask(self.pick(["of", "is"]), f"{what} that {verb} the scene",
                    ["events", "objects", f"filter_{kind}"] + picked + ["query_object"], verb)
            partner = self.pick(sorted({o for e in self.events("collision") for o in e.objects}))
            about = self.describe(partner) if partner is not None else None
            if about:
                order = self.pick(list(program.ORDERS) + ["unique"])
                if order == "unique":
                    what, picked = f"the object that collides with {about.text()}", ["unique"]
                else:
                    what = f"the {order} object to collide with {about.text()}"
                    picked = [order, "filter_order"]
                ask(self.pick(["of", "is"]), what, ["events"] + about.reference() + ["filter_collision"] +
                    picked + about.reference() + ["query_collision_partner"], "partner")

    # ---- Multiple-choice families.

    def event_phrases(self, event: executor.Event, source: str = "events") -> tuple[str, list[str]] | None:
        """A noun phrase and a program for an in / out / collision event."""
        described = [self.describe(o) for o in event.objects]
        if not all(described):
            return None
        if event.kind == "collision":
            first, second = described
            possessive = first.text("'s")
            text = self.pick([f"the collision between {first.text()} and {second.text()}",
                              f"{possessive} colliding with {second.text()}"])
            return text, [source] + first.reference() + ["filter_collision"] + second.reference() + [
                "filter_collision", "unique"]
        name = described[0].text("'s")
        text = (self.pick([f"{name} entrance", f"{name} entering the scene"]) if event.kind == "in"
                else self.pick([f"{name} exit", f"{name} exiting the scene"]))
        return text, [source] + described[0].reference() + [f"filter_{event.kind}", "unique"]

    def explanatory(self) -> None:
        """Which of the following is (not) responsible for a collision or an exit?"""
        targets = self.events("collision") + self.events("out")
        for target in [targets[i] for i in self.rng.permutation(len(targets))[:3]]:
            phrased = self.event_phrases(target)
            if not phrased:
                continue
            negated = bool(self.rng.random() < 0.5)
            tokens = (["events"] + phrased[1] + ["filter_ancestor", "belong_to"] +
                      (["negate"] if negated else []))
            text = f"Which of the following is {'not ' if negated else ''}responsible for {phrased[0]}?"
            options = []
            for obj in self.visible:
                about = self.describe(obj)
                if about and obj not in target.objects:
                    options.append((f"the presence of {about.text()}", about.reference()))
            for event in self.events("in") + self.events("collision"):
                if event != target and event.frame <= target.frame:
                    option = self.event_phrases(event)
                    if option:
                        options.append(option)
            self.multiple_choice("explanatory_not" if negated else "explanatory", "explanatory",
                                 text, tokens, options)

    def collision_options(self, pairs: Iterable[tuple[int, int]]) -> list[tuple[str, list[str]]]:
        """Choices "The X collides with the Y" over possible collisions (`all_events`)."""
        options = []
        for pair in pairs:
            described = [self.describe(o) for o in pair]
            if all(described):
                first, second = described
                text = self.pick([f"The {first.text()[4:]} collides with {second.text()}",
                                  f"The {first.text()[4:]} and {second.text()} collide"])
                options.append((text, ["all_events"] + first.reference() + ["filter_collision"] +
                                second.reference() + ["filter_collision", "unique"]))
        return options

    def predictive(self) -> None:
        """Which event will happen next? One unseen collision against one that does not happen."""
        if self.scene.future_events is None:
            return
        pairs = list(itertools.combinations(self.visible, 2))
        happen = {e.objects for e in self.scene.future_events if e.kind == "collision"}
        for pair in [p for p in pairs if p in happen][:2]:
            others = [p for p in pairs if p not in happen]
            options = self.collision_options([pair, self.pick(others)] if others else [pair])
            self.multiple_choice("predictive", "predictive",
                                 self.pick(["Which event will happen next?", "What will happen next?"]),
                                 ["unseen_events", "belong_to"], options)

    def counterfactual(self) -> None:
        """Which event will (not) happen if an object is removed?"""
        worlds = self.scene.counterfactual_events or {}
        removable = [o for o in self.visible if o in worlds]
        for removed in [removable[i] for i in self.rng.permutation(len(removable))[:2]]:
            about = self.describe(removed)
            if not about:
                continue
            negated = bool(self.rng.random() < 0.5)
            x, x_comma = about.text(), about.text(",")
            texts = ([f"Which event will not happen if {x} is removed?", f"What will not happen without {x}?",
                      f"If {x} is removed, which of the following will not happen?"] if negated else
                     [f"Which event will happen if {x} is removed?", f"What will happen if {x} is removed?",
                      f"Without {x_comma} which event will happen?",
                      f"If {x} is removed, which of the following will happen?"])
            pairs = [p for p in itertools.combinations(self.visible, 2) if removed not in p]
            pairs = [pairs[i] for i in self.rng.permutation(len(pairs))[:6]]
            self.multiple_choice("counterfactual_not" if negated else "counterfactual", "counterfactual",
                                 self.pick(texts), about.reference() + ["counterfact_events", "belong_to"] +
                                 (["negate"] if negated else []), self.collision_options(pairs))


def candidate_questions(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """Questions for one video in the official schema plus a 'family' key (template name).

    Descriptive: {question_id, question, question_type: 'descriptive', question_subtype,
    program, answer}; multiple choice (explanatory / predictive / counterfactual):
    {question_id, question, question_type, program, choices: [{choice_id, choice,
    program, answer: 'correct'|'wrong'}]} with 2-4 choices, at least one of each
    answer. Predictive questions need the scene's future, counterfactual ones its
    counterfactual worlds; without them those types are left out. Every answer is
    computed by the executor; ill-posed questions are discarded.
    """
    writer = _Writer(scene, rng)
    if not writer.visible:
        return []
    writer.counting_and_existence()
    writer.attribute_queries()
    writer.explanatory()
    writer.predictive()
    writer.counterfactual()
    unique_texts = {}
    for question in writer.questions:
        unique_texts.setdefault(question["question"], question)
    questions = list(unique_texts.values())
    for question_id, question in enumerate(questions):
        question["question_id"] = question_id
    return [{"question_id": q.pop("question_id"), **q} for q in questions]


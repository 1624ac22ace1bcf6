"""Balancing the answers of generated questions across videos.

A question set whose descriptive answers are skewed can be answered from the
question alone ("are there any moving objects?" is nearly always "yes"). The
selection here caps, within each question family, how large a share its most
common answer may take: `MAX_ANSWER_SHARE`, by answer kind.
"""

import collections
import copy
import itertools

import numpy as np

from aloe.clevrer import program

# Largest share the most common answer of a descriptive family may have, by answer kind.
MAX_ANSWER_SHARE = {"yes/no": 0.55, "material": 0.55, "shape": 0.45, "count": 0.4, "color": 0.3}


def answer_kind(answer: str) -> str:
    """The kind of a descriptive answer: 'yes/no', 'count', 'color', 'material' or 'shape'."""
    if answer in ("yes", "no"):
        return "yes/no"
    if answer.isdigit():
        return "count"
    for kind, values in (("color", program.COLORS), ("material", program.MATERIALS),
                         ("shape", program.SHAPES)):
        if answer in values:
            return kind
    raise ValueError(f"answer {answer!r} is not in the answer vocabulary.")


def _group(question: dict) -> str:
    return question.get("family") or question["question_subtype"]


def _largest_cap(counts: collections.Counter, max_share: float) -> int:
    """Largest per-answer cap K with max share min(c_max, K) / sum(min(c, K)) <= max_share (0: none)."""
    best = 0
    for cap in range(1, max(counts.values()) + 1):  # The share never falls as the cap grows.
        if min(max(counts.values()), cap) / sum(min(c, cap) for c in counts.values()) > max_share:
            break
        best = cap
    return best


def select_balanced(candidates: dict[int, list[dict]], rng: np.random.Generator,
                    per_video: int) -> dict[int, list[dict]]:
    """Picks questions across all videos so each descriptive family's answers are balanced.

    Three passes: (1) each video takes up to `per_video` questions, preferring
    question types and families it has few of and, within a descriptive family,
    the answers picked least so far; (2) every family's over-represented answers
    are cut back until its most common answer holds at most `MAX_ANSWER_SHARE`
    of the family; (3) free places are refilled with multiple-choice questions and
    with descriptive ones whose answer is not the family's most common (which
    cannot raise any share above the bound). Question ids are renumbered per
    video from 0 and the 'family' key is dropped; the inputs are not modified.
    """
    pool_answers = collections.defaultdict(set)
    for question in itertools.chain.from_iterable(candidates.values()):
        if question["question_type"] == "descriptive":
            pool_answers[_group(question)].add(question["answer"])
    counts = collections.defaultdict(collections.Counter)
    chosen = {video: [] for video in candidates}
    remaining = {video: [questions[i] for i in rng.permutation(len(questions))]
                 for video, questions in candidates.items()}

    def take(video: int, pickable) -> None:
        while len(chosen[video]) < per_video:
            types = collections.Counter(q["question_type"] for q in chosen[video])
            families = collections.Counter(_group(q) for q in chosen[video])
            options = [(i, q) for i, q in enumerate(remaining[video]) if pickable(q)]
            if not options:
                return

            def priority(item):
                index, q = item
                deficit = 0
                if q["question_type"] == "descriptive":
                    seen = counts.get(_group(q), collections.Counter())  # Look, never insert.
                    deficit = seen[q["answer"]] - min(seen[a] for a in pool_answers[_group(q)])
                return types[q["question_type"]], families[_group(q)], deficit, index

            index, question = min(options, key=priority)
            del remaining[video][index]
            chosen[video].append(question)
            if question["question_type"] == "descriptive":
                counts[_group(question)][question["answer"]] += 1

    videos = [list(candidates)[i] for i in rng.permutation(len(candidates))]
    for video in videos:
        take(video, lambda q: True)
    for family, seen in counts.items():
        if not seen:
            continue
        cap = _largest_cap(seen, MAX_ANSWER_SHARE[answer_kind(next(iter(seen)))])
        for answer_text, count in list(seen.items()):
            if count > cap:
                holders = [(v, q) for v in videos for q in chosen[v]
                           if q.get("answer") == answer_text and _group(q) == family
                           and q["question_type"] == "descriptive"]
                for i in rng.permutation(len(holders))[:count - cap]:
                    video, question = holders[i]
                    chosen[video].remove(question)
                seen[answer_text] = cap
    for video in videos:
        take(video, lambda q: q["question_type"] != "descriptive" or (
            counts.get(_group(q)) and counts[_group(q)][q["answer"]] < max(counts[_group(q)].values())))
    selected = {}
    for video in candidates:
        selected[video] = []
        for question_id, question in enumerate(chosen[video]):
            question = copy.deepcopy(question)
            question.pop("family", None)
            question["question_id"] = question_id
            selected[video].append(question)
    return selected


def balance_report(questions: dict[int, list[dict]]) -> dict:
    """Answer shares per descriptive family (its 'family' key, else its subtype) and per
    multiple-choice type (shares of 'correct' / 'wrong' choices).

    Returns:
      {group: {"total": int, "shares": {answer: share}, "most_common_share": float,
      "max_share_allowed": float (descriptive groups only)}}.
    """
    tallies = collections.defaultdict(collections.Counter)
    for question in itertools.chain.from_iterable(questions.values()):
        if question["question_type"] == "descriptive":
            tallies[_group(question)][question["answer"]] += 1
        else:
            for choice in question["choices"]:
                tallies[f"{question['question_type']} choices"][choice["answer"]] += 1
    report = {}
    for group, tally in sorted(tallies.items()):
        total = sum(tally.values())
        entry = {"total": total, "shares": {a: c / total for a, c in sorted(tally.items())},
                 "most_common_share": max(tally.values()) / total}
        if not group.endswith(" choices"):
            entry["max_share_allowed"] = MAX_ANSWER_SHARE[answer_kind(next(iter(tally)))]
        report[group] = entry
    return report

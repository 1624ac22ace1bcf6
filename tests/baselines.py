"""Answer baselines computed from a latent store's question files, independently of
`aloe.answer_prior`: what a model that ignores the video scores on held-out scenes."""

import collections
import json
import os


def _questions(root, split):
    with open(os.path.join(root, f"{split}.json")) as f:
        return [q for scene in json.load(f) for q in scene["questions"]]


def question_only(root):
    """Held-out accuracy of answering each descriptive question family by its
    most common training answer."""
    def families(split):
        return [(q["question_subtype"], q["answer"]) for q in _questions(root, split)
                if q["question_type"] == "descriptive"]
    majority = {}
    for family in {f for f, _ in families("train")}:
        answers = collections.Counter(a for f, a in families("train") if f == family)
        majority[family] = answers.most_common(1)[0][0]
    valid = families("valid")
    return sum(majority.get(f) == a for f, a in valid) / len(valid)


def constant_choice(root, question_type=None):
    """Held-out per-option accuracy of always answering "correct" (or always
    "wrong", whichever scores more), over the multiple-choice questions (of
    `question_type`, if given)."""
    labels = [c["answer"] == "correct" for q in _questions(root, "valid")
              if q["question_type"] != "descriptive"
              and question_type in (None, q["question_type"]) for c in q["choices"]]
    share = sum(labels) / len(labels)
    return max(share, 1 - share)

"""The CLEVRER task: ALOE on MONet latents, descriptive and multiple-choice questions.

Each batch holds a descriptive sub-batch (softmax cross-entropy over the answer
classes) and a multiple-choice sub-batch (one transformer pass per choice,
sigmoid cross-entropy per choice; a choice is predicted correct when its logit
is >= 0). The loss is the sum of the two sub-batch means, plus λ times the
self-supervised auxiliary loss of an unsupervised sub-batch when
`config.auxiliary.weight` > 0 (`aloe.tasks.auxiliary`), all in one transformer
pass. `data.labeled_fraction` < 1 trains the answers of a fixed subset of the
videos only; the unsupervised sub-batch draws from all of them.

The model is built from `config.model` (`aloe.models.factory`). Its entity
encoder decides what a batch carries under the key `latents`
(`aloe.tasks.inputs`): MONet latents of the store at `data.root`, or frames
`[B, T, S, S, 3]` uint8 of a frame store at `data.frames_root` in the latent
store's layout (`{frames_root}/{split}/{scene_index}.npz`), read batch by batch;
the questions always come from `data.root`.
"""

import json
import os
from typing import Any, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from aloe import augment
from aloe.clevrer import difficulty
from aloe.clevrer import metrics as clevrer_metrics
from aloe.data import clevrer_latents
from aloe.data import questions as questions_lib
from aloe.data import vocab as vocab_lib
from aloe.models import aloe as aloe_model
from aloe.models import factory
from aloe.tasks import auxiliary
from aloe.tasks import inputs as inputs_lib

PyTree = Any


def load_vocab(config: ml_collections.ConfigDict) -> vocab_lib.Vocab:
    """`data.vocab` if set, else `{root}/vocab.json`, else built from the train questions."""
    if not config.root:
        raise ValueError("config.data.root is empty: set it to the latent store's root "
                         "(--config.data.root=DIR).")
    if not os.path.isdir(config.root):
        raise FileNotFoundError(f"config.data.root = {config.root!r} is not a directory.")
    path = config.vocab or os.path.join(config.root, "vocab.json")
    if os.path.exists(path):
        return vocab_lib.Vocab.load(path, unknown=config.unknown_words)
    if config.vocab:
        raise FileNotFoundError(f"data.vocab = {config.vocab!r} does not exist.")
    return vocab_lib.Vocab.build([os.path.join(config.root, f"{config.train_split}.json")],
                                 unknown=config.unknown_words)


class ClevrerTask:
    """ALOE on CLEVRER latents (or frames); a `aloe.tasks.Task`."""

    def __init__(self, config: ml_collections.ConfigDict, *, process_index: int = 0,
                 process_count: int = 1):
        """Builds the vocabulary and the model; the data of a split are opened on first use.

        Raises:
          ValueError / FileNotFoundError: `data.root` (or, for a model that reads
            frames, `data.frames_root`) is empty or not a folder, a model field is
            unknown, or the data settings cannot feed the model (`aloe.tasks.inputs`).
        """
        self.config = config
        self.process_index, self.process_count = process_index, process_count
        self.vocab = load_vocab(config.data)
        self.auxiliary = auxiliary.enabled(config)
        self.model = factory.build_aloe(vocab_size=self.vocab.vocab_size,
                                        num_answers=self.vocab.num_answers,
                                        auxiliary=self.auxiliary, **config.model)
        self.inputs = inputs_lib.video_inputs(config, self.model)
        self._splits: dict[str, clevrer_latents.ClevrerLatentData] = {}

    def data(self, split: str) -> clevrer_latents.ClevrerLatentData:
        """The data of `split` (questions and per-scene arrays), opened on first use."""
        if split not in self._splits:
            d, inputs = self.config.data, self.inputs
            data = clevrer_latents.ClevrerLatentData(
                d.root, split, self.vocab, num_frames=d.num_frames,
                max_question_len=d.max_question_len, max_choice_len=d.max_choice_len,
                max_choices=d.max_choices, unknown_words=d.unknown_words, seed=self.config.seed,
                labeled_fraction=d.labeled_fraction, labeled_seed=d.labeled_seed,
                process_index=self.process_index, process_count=self.process_count,
                # An evaluation answer the vocabulary lacks is counted (always wrong).
                answers_outside_vocab="error" if split == d.train_split else "count",
                arrays_root=inputs.root, dtype=inputs.dtype, preload=inputs.preload,
                train_frames=d.get("train_frames", "random"),
                eval_frames=d.get("eval_frames", "strided"))
            inputs.check_array(data.store.path(data.scene_indices[0]), data.array_shape)
            self._splits[split] = data
        return self._splits[split]

    # Parameters and training.

    def init_params(self, rng: jax.Array) -> PyTree:
        """Fresh model parameters (no data needed)."""
        d = self.config.data
        inputs = self.inputs.example(d.num_frames)
        question = jnp.zeros((1, d.max_question_len), jnp.int32)
        choices = jnp.zeros((1, d.max_choices, d.max_choice_len), jnp.int32)
        return self.model.init({"params": rng}, inputs, question, choices,
                               deterministic=True)["params"]

    def train_batch(self, step: int) -> dict[str, Any]:
        """This process's rows of step `step`'s batch: descriptive, multiple-choice, auxiliary."""
        t = self.config.train
        aux_size = self.config.auxiliary.batch if self.auxiliary else 0
        return self.data(self.config.data.train_split).train_batch(
            step, t.descriptive_batch, t.mc_batch, aux_size)

    def _apply(self, params, method, *args, rng=None, **kwargs):
        """`model.apply` of `method`: deterministic without `rng`, else with dropout from it."""
        if rng is None:
            return self.model.apply({"params": params}, *args, deterministic=True, method=method,
                                    **kwargs)
        return self.model.apply({"params": params}, *args, deterministic=False,
                                rngs={"dropout": rng}, method=method, **kwargs)

    def loss(self, params: PyTree, batch: dict[str, Any],
             rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Training loss on one device's rows, with dropout and slot permutation.

        The auxiliary targets are the model's own (`return_targets`): the
        (permuted) latents, or the ResNet's entities of the frames.
        """
        perm_desc, perm_mc, drop, perm_aux, mask_rng = jax.random.split(rng, 5)
        desc, mc = batch["descriptive"], batch["multiple_choice"]
        desc_latents, mc_latents = desc["latents"], mc["latents"]
        if self.config.train.permute_slots:
            desc_latents = augment.permute_slots(perm_desc, desc_latents)
            mc_latents = augment.permute_slots(perm_mc, mc_latents)
        aux_inputs = None
        if self.auxiliary:
            aux_latents = batch["auxiliary"]["latents"]
            if self.config.train.permute_slots:
                aux_latents = augment.permute_slots(perm_aux, aux_latents)
            grid = self.inputs.entity_grid(aux_latents.shape)
            masks = auxiliary.draw_masks(self.config, mask_rng, grid)
            aux_inputs = (aux_latents, batch["auxiliary"]["question"], masks.m)
        outputs = self._apply(
            params, aloe_model.ALOE.descriptive_and_multiple_choice, desc_latents,
            desc["question"], mc_latents, mc["question"], mc["choices"], rng=drop,
            aux=aux_inputs, return_targets=self.auxiliary)
        desc_logits, mc_logits = outputs[:2]
        desc_loss = optax.softmax_cross_entropy_with_integer_labels(
            desc_logits, desc["answer"]).mean()
        mc_loss, option_acc, question_acc = multiple_choice_loss(
            mc_logits, mc["choice_labels"], mc["choice_mask"])
        metrics = {
            "descriptive_loss": desc_loss,
            "multiple_choice_loss": mc_loss,
            "descriptive_accuracy": (desc_logits.argmax(-1) == desc["answer"]).mean(),
            "multiple_choice_per_option": option_acc,
            "multiple_choice_per_question": question_acc,
        }
        loss = desc_loss + mc_loss
        if self.auxiliary:
            weighted, aux_metrics = auxiliary.loss_and_metrics(
                self.config, outputs[2], outputs[3], masks.tau)
            loss += weighted
            metrics.update(aux_metrics)
        return loss, metrics

    def summary_images(self, params: PyTree, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """None: this task draws no images."""
        del params, batch
        return {}

    # Evaluation.

    def eval_batches(self, split: str) -> Iterator[dict[str, Any]]:
        """The split's evaluation batches; slots permuted with `eval.shuffle_objects`."""
        batches = self.data(split).eval_batches(self.config.eval.batch_size)
        if not self.config.eval.get("shuffle_objects", False):
            return batches
        return shuffled_slots(batches, self.config.seed)

    def num_eval_batches(self, split: str) -> int:
        """How many batches `eval_batches(split)` yields (for progress lines)."""
        return self.data(split).num_eval_batches(self.config.eval.batch_size)

    def predict(self, params: PyTree, batch: dict[str, Any]) -> dict[str, jax.Array]:
        """Answer probabilities `[B, num_answers]` and choice logits `[B, C]`, deterministic."""
        desc, mc = batch["descriptive"], batch["multiple_choice"]
        desc_logits, mc_logits = self._apply(
            params, aloe_model.ALOE.descriptive_and_multiple_choice, desc["latents"],
            desc["question"], mc["latents"], mc["question"], mc["choices"])
        return {"descriptive_probs": nn.softmax(desc_logits), "choice_logits": mc_logits}

    def eval_record(self, batch: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict:
        """The valid rows' ids, labels and outputs of both sub-batches."""
        desc, mc, meta = batch["descriptive"], batch["multiple_choice"], batch["meta"]
        dv, mv = np.asarray(desc["valid"], bool), np.asarray(mc["valid"], bool)
        return {
            "desc_scene": meta["descriptive"]["scene_index"][dv],
            "desc_question_id": meta["descriptive"]["question_id"][dv],
            "desc_answer": desc["answer"][dv],
            "desc_probs": outputs["descriptive_probs"][dv],
            "mc_scene": meta["multiple_choice"]["scene_index"][mv],
            "mc_question_id": meta["multiple_choice"]["question_id"][mv],
            "mc_type": meta["multiple_choice"]["question_type"][mv],
            "mc_choice_ids": meta["multiple_choice"]["choice_ids"][mv],
            "mc_labels": mc["choice_labels"][mv],
            "mc_mask": mc["choice_mask"][mv],
            "mc_logits": outputs["choice_logits"][mv],
        }

    def summarize(self, records: dict[str, np.ndarray], out_dir: str, tag: str) -> dict:
        """Metrics of an evaluated split, its predictions, and optional analyses.

        Writes `{out_dir}/predictions_{tag}.json` (CLEVRER submission format) and
        `{out_dir}/answers_{tag}.json` (every question with the model's
        probabilities, for error analysis). The metrics are computed only for
        questions that have answers; a split without answers (the test split)
        yields only counts. With `eval.clevrer_questions` and
        `eval.clevrer_annotations` set (the raw CLEVRER files of the evaluated
        split), the counterfactual difficulty split of `aloe.clevrer.difficulty`
        is added under `counterfactual_{category}_per_option` / `_per_question` /
        `_share`.
        """
        desc_pred = records["desc_probs"].argmax(-1)
        mc_pred_correct = records["mc_logits"] >= 0
        answers = [self.vocab.class_to_answer(int(c)) for c in desc_pred]
        predictions = clevrer_metrics.submission(
            records["desc_scene"], records["desc_question_id"], answers, records["mc_scene"],
            records["mc_question_id"], records["mc_choice_ids"], mc_pred_correct,
            records["mc_mask"])
        os.makedirs(out_dir, exist_ok=True)
        predictions_file = os.path.join(out_dir, f"predictions_{tag}.json")
        with open(predictions_file, "w") as f:
            json.dump(predictions, f)
        with open(os.path.join(out_dir, f"answers_{tag}.json"), "w") as f:
            json.dump(self._answers_with_probabilities(records, answers), f)
        desc_known = records["desc_answer"] != questions_lib.UNKNOWN
        mc_known = (records["mc_labels"] >= 0).all(axis=1)
        results = clevrer_metrics.clevrer_metrics(
            desc_pred[desc_known], records["desc_answer"][desc_known],
            mc_pred_correct[mc_known], records["mc_labels"][mc_known],
            records["mc_mask"][mc_known], records["mc_type"][mc_known])
        results["num_unanswered"] = int((~desc_known).sum() + (~mc_known).sum())
        # Answers outside the vocabulary count as wrong in `descriptive`.
        results["num_answers_outside_vocab"] = int(
            (records["desc_answer"] == questions_lib.OUTSIDE_VOCAB).sum())
        e = self.config.eval
        if e.get("clevrer_questions") and e.get("clevrer_annotations"):
            report = difficulty.difficulty_report(e.clevrer_questions, e.clevrer_annotations,
                                                  predictions_file)
            for category, row in report["categories"].items():
                results[f"counterfactual_{category}_share"] = row["share"]
                for kind in ("per_option", "per_question"):
                    results[f"counterfactual_{category}_{kind}"] = row[f"model_{kind}"]
        return results

    def _answers_with_probabilities(self, records: dict[str, np.ndarray],
                                    answers: list[str]) -> list[dict]:
        """Every evaluated question with the predicted answer and the model's probabilities."""
        rows = []
        for i, answer in enumerate(answers):
            probs = records["desc_probs"][i]
            top = np.argsort(-probs)[:5]
            label = int(records["desc_answer"][i])
            rows.append({"scene_index": int(records["desc_scene"][i]),
                         "question_id": int(records["desc_question_id"][i]),
                         "question_type": "descriptive", "answer": answer,
                         "true_answer": self.vocab.class_to_answer(label) if label >= 0 else None,
                         "top5": {self.vocab.class_to_answer(int(c)): round(float(probs[c]), 6)
                                  for c in top}})
        probs = 1.0 / (1.0 + np.exp(-records["mc_logits"]))
        for i in range(len(records["mc_scene"])):
            choices = [{"choice_id": int(records["mc_choice_ids"][i, c]),
                        "probability_correct": round(float(probs[i, c]), 6),
                        "true_answer": (None if records["mc_labels"][i, c] < 0 else
                                        "correct" if records["mc_labels"][i, c] > 0.5 else
                                        "wrong")}
                       for c in np.flatnonzero(records["mc_mask"][i])]
            rows.append({"scene_index": int(records["mc_scene"][i]),
                         "question_id": int(records["mc_question_id"][i]),
                         "question_type": clevrer_metrics.MC_TYPES[int(records["mc_type"][i])],
                         "choices": choices})
        return rows


def shuffled_slots(batches: Iterator[dict[str, Any]], seed: int) -> Iterator[dict[str, Any]]:
    """The batches with the slots of each sub-batch's latents permuted, as the release does.

    The release shuffles the object axis at inference with one permutation per
    model call (shared by the rows and frames of a batch). Here each evaluation
    batch draws one permutation for its descriptive and one for its
    multiple-choice latents `[B, T, K, d]`, from a generator seeded by `seed`, so
    the evaluation is repeatable and the same on every process.
    """
    rng = np.random.default_rng([seed, 0x5107])
    for batch in batches:
        for kind in ("descriptive", "multiple_choice"):
            latents = batch[kind]["latents"]
            batch[kind]["latents"] = latents[:, :, rng.permutation(latents.shape[2])]
        yield batch


def multiple_choice_loss(logits: jax.Array, labels: jax.Array,
                         mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sigmoid cross-entropy per choice, averaged per question then over questions.

    Averaging within each question first keeps every question's weight equal
    whatever its number of choices, and makes the data-parallel mean over
    devices equal to the mean over the global batch.

    Args:
      logits: `[batch, choices]`.
      labels: `[batch, choices]` 1 correct / 0 wrong.
      mask: bool `[batch, choices]`, which choices exist (each row has one at least).

    Returns:
      (loss, per-option accuracy, per-question accuracy), scalars.
    """
    mask = mask.astype(jnp.float32)
    per_choice = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
    count = jnp.maximum(mask.sum(-1), 1.0)
    loss = ((per_choice * mask).sum(-1) / count).mean()
    right = ((logits >= 0) == (labels > 0.5)).astype(jnp.float32)
    option_acc = ((right * mask).sum(-1) / count).mean()
    question_acc = (jnp.where(mask > 0, right, 1.0).min(-1)).mean()
    return loss, option_acc, question_acc

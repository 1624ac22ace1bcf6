"""The CATER task: ALOE on MONet latents, localizing the snitch on the 6x6 grid.

Each training batch mixes static- and moving-camera videos in the configured
proportion (`train.static_batch` + `train.moving_batch`; the paper's 4 + 4).
The model reads `[CLS, objects]` and predicts the snitch's final cell (36-way
softmax). The loss is the softmax cross-entropy plus `train.l1_loss_weight`
times the expected Manhattan distance to the true cell under the predicted
distribution (`aloe.cater.grid.expected_l1_loss`; "Ours (with L1 loss)" of the
paper's Table 2), both averaged over the batch. Evaluation reports top-1,
top-5 and L1 over all videos and per camera, and writes every video's top-5
prediction to `predictions_{tag}.json`.

The model is built from `config.model` (`aloe.models.factory`). Its entity
encoder decides what a batch carries under the key `latents`
(`aloe.tasks.inputs`): MONet latents of the store at `data.root`, or frames
`[B, T, S, S, 3]` uint8 of a frame store at `data.frames_root`
(`aloe.data.frame_store`; the layout of `aloe.data.cater_latents` with its own
labels files), which then takes the place of the latent store. The auxiliary
loss predicts the encoder's own entities (the model's `return_targets`).
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
from aloe.cater import grid
from aloe.data import cater_latents
from aloe.models import aloe as aloe_model
from aloe.models import factory
from aloe.tasks import auxiliary
from aloe.tasks import inputs as inputs_lib

PyTree = Any
TOP_K = 5  # Predictions kept per video in the predictions file.


class CaterTask:
    """ALOE on CATER latents (or frames); a `aloe.tasks.Task`."""

    def __init__(self, config: ml_collections.ConfigDict, *, process_index: int = 0,
                 process_count: int = 1):
        """Builds the model; the data of a split are opened on first use.

        Raises:
          ValueError / FileNotFoundError: the store's root (`config.data.root`, or
            `data.frames_root` for a model that reads frames) is empty or not a
            folder, a model field is unknown, or the data settings cannot feed the
            model (`aloe.tasks.inputs`).
        """
        self.config = config
        self.process_index, self.process_count = process_index, process_count
        self.auxiliary = auxiliary.enabled(config)
        self.model = factory.build_aloe_cater(num_classes=grid.NUM_CELLS,
                                              auxiliary=self.auxiliary, **config.model)
        self.inputs = inputs_lib.video_inputs(config, self.model, store="CATER latent")
        self.root = self.inputs.root
        self._splits: dict[str, cater_latents.CaterLatentData] = {}

    def data(self, split: str) -> cater_latents.CaterLatentData:
        """The latent (or frame) data of `split`, opened on first use."""
        if split not in self._splits:
            d, inputs = self.config.data, self.inputs
            self._splits[split] = cater_latents.CaterLatentData(
                self.root, split, num_frames=d.num_frames, seed=self.config.seed,
                labeled_fraction=d.labeled_fraction, labeled_seed=d.labeled_seed,
                process_index=self.process_index, process_count=self.process_count,
                dtype=inputs.dtype, **inputs.shape_checks())
        return self._splits[split]

    # Parameters and training.

    def init_params(self, rng: jax.Array) -> PyTree:
        """Fresh model parameters (no data needed)."""
        inputs = self.inputs.example(self.config.data.num_frames)
        return self.model.init({"params": rng}, inputs, deterministic=True)["params"]

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of step `step`'s batch (static rows, then moving rows)."""
        t = self.config.train
        aux_size = self.config.auxiliary.batch if self.auxiliary else 0
        return self.data(self.config.data.train_split).train_batch(
            step, t.static_batch, t.moving_batch, aux_size)

    def loss(self, params: PyTree, batch: dict[str, Any],
             rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Training loss on one device's rows, with dropout and slot permutation.

        The auxiliary targets are the model's own (`return_targets`): the
        (permuted) latents, or the ResNet's entities of the frames.

        Args:
          params: model parameters.
          batch: `latents [B, T, K, d]` (or frames `[B, T, S, S, 3]`),
            `label [B]`, `moving [B]`.
          rng: this device's key for the step.

        Returns:
          (cross-entropy + l1_loss_weight * expected L1, metrics), batch means.
        """
        permute, dropout, permute_aux, mask_rng = jax.random.split(rng, 4)
        latents = batch["latents"]
        if self.config.train.permute_slots:
            latents = augment.permute_slots(permute, latents)
        if self.auxiliary:
            # One pass: the supervised rows fully visible, then the masked unsupervised rows.
            aux_latents = batch["auxiliary"]["latents"]
            if self.config.train.permute_slots:
                aux_latents = augment.permute_slots(permute_aux, aux_latents)
            grid_shape = self.inputs.entity_grid(aux_latents.shape)  # [B, T, K]
            masks = auxiliary.draw_masks(self.config, mask_rng, grid_shape)
            visible = jnp.concatenate([jnp.ones(latents.shape[:2] + grid_shape[2:], bool),
                                       masks.m])
            all_logits, predicted_latents, targets = self.model.apply(
                {"params": params}, jnp.concatenate([latents, aux_latents]), visible,
                deterministic=False, rngs={"dropout": dropout}, return_targets=True,
                method=aloe_model.ALOECater.logits_and_latents)
            logits = all_logits[:latents.shape[0]]
        else:
            logits = self.model.apply({"params": params}, latents, deterministic=False,
                                      rngs={"dropout": dropout})
        labels = batch["label"]
        cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        expected_l1 = grid.expected_l1_loss(logits, labels).mean()
        predicted = logits.argmax(-1)
        distances = jnp.asarray(grid.cell_distances(), jnp.float32)[predicted, labels]
        metrics = {
            "cross_entropy": cross_entropy,
            "expected_l1": expected_l1,
            "top1": (predicted == labels).mean(),
            "l1": distances.mean(),
        }
        loss = cross_entropy + self.config.train.l1_loss_weight * expected_l1
        if self.auxiliary:
            supervised = latents.shape[0]
            weighted, aux_metrics = auxiliary.loss_and_metrics(
                self.config, predicted_latents[supervised:], targets[supervised:], masks.tau)
            loss += weighted
            metrics.update(aux_metrics)
        return loss, metrics

    def summary_images(self, params: PyTree, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """None: this task draws no images."""
        del params, batch
        return {}

    # Evaluation.

    def eval_batches(self, split: str) -> Iterator[dict[str, Any]]:
        """Every video of `split` once (see `CaterLatentData.eval_batches`)."""
        return self.data(split).eval_batches(self.config.eval.batch_size)

    def num_eval_batches(self, split: str) -> int:
        """How many batches `eval_batches(split)` yields (for progress lines)."""
        return self.data(split).num_eval_batches(self.config.eval.batch_size)

    def predict(self, params: PyTree, batch: dict[str, Any]) -> dict[str, jax.Array]:
        """Cell probabilities `[B, 36]`, deterministic."""
        logits = self.model.apply({"params": params}, batch["latents"], deterministic=True)
        return {"probs": nn.softmax(logits)}

    def eval_record(self, batch: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict:
        """The valid rows' names, labels, cameras and probabilities."""
        valid = np.asarray(batch["valid"], bool)
        return {
            "name": batch["meta"]["name"][valid],
            "label": np.asarray(batch["label"])[valid],
            "moving": np.asarray(batch["moving"])[valid],
            "probs": np.asarray(outputs["probs"])[valid],
        }

    def summarize(self, records: dict[str, np.ndarray], out_dir: str, tag: str) -> dict:
        """Metrics of an evaluated split, and every video's top-5 prediction.

        Writes `{out_dir}/predictions_{tag}.json`: a list, in name order, of
        `{name, camera, label, prediction, top5, top5_probs}` (top-5 cells, most
        probable first).

        Returns:
          `aloe.cater.grid.cater_metrics`: `top1`, `top5`, `l1` overall and with
          suffixes `_static` / `_moving`, and the video counts.
        """
        names = cater_latents.decode_names(records["name"])
        probs, labels, moving = records["probs"], records["label"], records["moving"]
        best = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
        predictions = [
            {"name": name, "camera": cater_latents.CAMERAS[int(is_moving)],
             "label": int(label), "prediction": int(top[0]), "top5": [int(c) for c in top],
             "top5_probs": [round(float(p), 6) for p in row[top]]}
            for name, label, is_moving, top, row in zip(names, labels, moving, best, probs)]
        predictions.sort(key=lambda entry: entry["name"])
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"predictions_{tag}.json"), "w", encoding="utf-8") as f:
            json.dump(predictions, f, indent=1)
        return grid.cater_metrics(probs, labels, moving)

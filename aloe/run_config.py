"""The record of a run in its workdir: `config.json`, the history of its changes, its vocabulary.

- `{workdir}/config.json`: the config the checkpoints were trained with. Training
  writes it only after the config has been checked against the workdir (the
  fields below, then the checkpoint's shapes), so a refused resume leaves it as
  it was.
- Resuming with a field changed that alters the optimisation (learning rate,
  schedule, batch sizes, model, data, seed, ...) is refused with the list of
  differences unless it is allowed explicitly (`--allow_config_change`). Fields
  that only change how often the run logs, saves or validates, the evaluation
  and extraction settings, and the run's length (unless a cosine schedule
  depends on it) may change freely. Any accepted change is recorded: the
  previous `config.json` moves to `config_history/config_{UTC time}.json` and
  `config_changes.jsonl` gains a line `{"time", "changes": {field: [old, new]},
  "allowed_by_flag"}`; the first run's config is always kept.
- `{workdir}/vocab.json`: the vocabulary of a task that has one (`task.vocab`),
  written when training starts; resuming or evaluating with another vocabulary
  is an error that names both.
- `--mode=eval|extract` and the analyses read `config.json` (`for_workdir`):
  the config given on the command line only supplies the schema, and only the
  fields named by command-line overrides change; an override that changes the
  model's shape is refused.
"""

import datetime
import fnmatch
import json
import os
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections

from aloe import checkpointing
from aloe import json_io

CONFIG_FILE = "config.json"
HISTORY_DIR = "config_history"
CHANGES_FILE = "config_changes.jsonl"
VOCAB_FILE = "vocab.json"

# Fields that may change on resume without altering the optimisation.
# train.microbatches changes how a step's gradient is computed, not which
# (aloe.gradients: exactly for losses that are means over examples).
FREE_FIELDS = ("train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
               "train.eval_every", "train.eval_batches", "train.init_from", "train.microbatches",
               "data.eval_frames", "eval.*", "extract.*")


class ConfigChangeError(ValueError):
    """Resuming with a config whose optimisation differs from the workdir's."""


class VocabularyMismatchError(ValueError):
    """A task's vocabulary differs from the one the workdir's checkpoints were trained with."""


def flatten(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.steps": 10, ...}` with JSON values (tuples become lists)."""
    if isinstance(config, ml_collections.ConfigDict):
        config = json.loads(config.to_json_best_effort())
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix[:-1]] = node

    walk("", config)
    return flat


def read(workdir: str) -> dict[str, Any] | None:
    """The flattened `config.json` of `workdir`, or None when there is none."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    return flatten(json_io.read_json(path))


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for every field of both that differs.

    Fields only one side has (added to or removed from the configs since) are
    not changes: a field added since keeps the behaviour from before it.
    """
    return {k: [old[k], new[k]] for k in sorted(old.keys() & new.keys()) if old[k] != new[k]}


def guarded(changes: Mapping[str, list[Any]], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The changes that alter the optimisation (all but `FREE_FIELDS` and a run's length)."""
    free = lambda k: (any(fnmatch.fnmatch(k, p) for p in FREE_FIELDS)
                      or (k == "train.steps" and new.get("optimizer.schedule") != "cosine"))
    return {k: v for k, v in changes.items() if not free(k)}


def describe(changes: Mapping[str, list[Any]]) -> str:
    return "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_resume(config: ml_collections.ConfigDict, workdir: str, *,
                 allow_change: bool = False) -> dict[str, list[Any]]:
    """The changes from the workdir's `config.json` to `config`; raises if they are refused.

    Raises:
      ConfigChangeError: listing the fields that alter the optimisation, unless
        `allow_change`.
    """
    saved = read(workdir)
    if saved is None:
        return {}
    changes = differences(saved, flatten(config))
    refused = guarded(changes, flatten(config))
    if refused and not allow_change:
        raise ConfigChangeError(
            f"{os.path.join(workdir, CONFIG_FILE)} was trained with another config; resuming "
            f"would change the optimisation: {describe(refused)}. Resume with the same values "
            f"(the fields above as in config.json), use a new workdir, or pass "
            f"--allow_config_change to accept and record the change.")
    return changes


def record(config: ml_collections.ConfigDict, workdir: str,
           changes: Mapping[str, list[Any]], *, allowed_by_flag: bool = False) -> None:
    """Writes `config.json` (process 0): first run, or an accepted change (then recorded)."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path) and not changes:
        return
    if os.path.exists(path):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        os.makedirs(os.path.join(workdir, HISTORY_DIR), exist_ok=True)
        os.replace(path, os.path.join(workdir, HISTORY_DIR, f"config_{stamp}.json"))
        with open(os.path.join(workdir, CHANGES_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": stamp, "changes": dict(changes),
                                "allowed_by_flag": bool(allowed_by_flag and guarded(
                                    changes, flatten(config)))}) + "\n")
        logging.warning("Config changed on resume (recorded in %s): %s",
                        os.path.join(workdir, CHANGES_FILE), describe(changes))
    _write_text(path, config.to_json_best_effort(indent=2))


def for_workdir(schema: ml_collections.ConfigDict, workdir: str,
                overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """The workdir's config with `overrides` applied; `schema` itself when there is none.

    Args:
      schema: the command line's config (its values are used only for fields
        that `config.json` lacks, e.g. fields added since training, and for
        `overrides`).
      workdir: the run's directory.
      overrides: `{"eval.split": "valid", ...}`, the fields named on the command line.

    Raises:
      ValueError: naming the overrides, when they change the model's shape.
    """
    saved = read(workdir)
    if saved is None:
        return schema
    config = ml_collections.ConfigDict(schema.to_dict())
    known = flatten(schema)
    unknown = sorted(k for k in saved if k not in known)
    if unknown:
        logging.warning("%s: fields the config has no longer are ignored: %s",
                        os.path.join(workdir, CONFIG_FILE), ", ".join(unknown))
    config.update_from_flattened_dict({k: v for k, v in saved.items() if k in known})
    base = ml_collections.ConfigDict(config.to_dict())
    ignored = {k: v for k, v in differences(flatten(base), known).items() if k not in overrides}
    if ignored:
        logging.info("Using %s; the command line's config differs in fields it does not name, "
                     "which are ignored: %s", os.path.join(workdir, CONFIG_FILE),
                     describe(ignored))
    config.update_from_flattened_dict(dict(overrides))
    if overrides:
        _check_same_model(base, config, overrides, workdir)
    return config


def _check_same_model(base: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                      overrides: Mapping[str, Any], workdir: str) -> None:
    """Raises when `config`'s parameters have other shapes than `base`'s."""
    from aloe import tasks  # pylint: disable=g-import-not-at-top (tasks import the data stack)
    shapes = lambda c: checkpointing._leaf_shapes(jax.eval_shape(  # pylint: disable=protected-access
        tasks.build(c).init_params, jax.random.key(0)))
    mismatch = checkpointing.describe_mismatch(shapes(base), shapes(config))
    if mismatch:
        raise ValueError(
            f"The overrides {', '.join(f'{k}={v!r}' for k, v in overrides.items())} change the "
            f"shape of the model trained in {workdir} ({mismatch}); the checkpoint cannot be read "
            f"with them. Drop them (the model's fields come from "
            f"{os.path.join(workdir, CONFIG_FILE)}).")


def check_vocab(task: Any, workdir: str) -> None:
    """Raises when `task.vocab` differs from the workdir's recorded `vocab.json`."""
    path = os.path.join(workdir, VOCAB_FILE)
    if not hasattr(task, "vocab") or not os.path.exists(path):
        return
    from aloe.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    trained = vocab_lib.Vocab.load(path, unknown="error")
    ours = task.vocab
    if trained.word_ids != ours.word_ids or trained.answer_classes != ours.answer_classes:
        words = sorted(set(trained.word_ids) ^ set(ours.word_ids))
        answers = sorted(set(trained.answer_classes) ^ set(ours.answer_classes))
        raise VocabularyMismatchError(
            f"The vocabulary differs from the one the checkpoints in {workdir} were trained "
            f"with ({path}: {len(trained.word_ids)} words, {trained.num_answers} answers; "
            f"this config's: {len(ours.word_ids)} words, {ours.num_answers} answers"
            + (f"; e.g. words only in one: {', '.join(words[:5])}" if words else "")
            + (f"; answers only in one: {', '.join(answers[:5])}" if answers else "")
            + "). Point config.data.vocab at the training vocabulary (a copy is that file) or "
            "restore the data root's vocab.json.")


def record_vocab(task: Any, workdir: str, *, overwrite: bool = False) -> None:
    """Writes `task.vocab` to `{workdir}/vocab.json` (process 0) when the task has one.

    An existing file is kept unless `overwrite` (a run starting without checkpoints).
    """
    path = os.path.join(workdir, VOCAB_FILE)
    if (hasattr(task, "vocab") and jax.process_index() == 0
            and (overwrite or not os.path.exists(path))):
        task.vocab.save(path + ".tmp")
        os.replace(path + ".tmp", path)


def _write_text(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)

"""`--mode=extract`: MONet latents of every frame of every video, into a latent store.

Runs the frozen MONet of a workdir (its latest checkpoint) over every frame of
every video of the configured splits and writes what ALOE trains on:

- CLEVRER (`data.dataset` 'clevrer'): the release layout of `aloe.data.latents`,
  `{out}/{split}/{scene_index}.npz` float32 `[frames, K, d]`, plus the question
  files copied from `extract.questions_dir` (`train.json` for the train split,
  `validation.json` -> `valid.json`, ...) and the vocabulary to read them with,
  `vocab.json` (`write_vocab`);
- CATER ('cater/...'): `aloe.data.cater_latents`, `{out}/{split}/{variant}/{name}.npy`
  and `{out}/{split}_labels.json` for every variant of `extract.datasets`.

Each process encodes its own share of the videos (`tfds.split_for_jax_process`)
on its local devices, the frames of a video split over them; the latents do not
depend on the number of devices. A video whose file already exists is skipped,
and files are written atomically, so an interrupted extraction resumes where it
stopped. A progress bar counts videos.
"""

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from aloe import checkpointing
from aloe import parallel
from aloe import tasks
from aloe.data import cater_latents
from aloe.data import latents as latents_lib
from aloe.data import pipeline
from aloe.data import vocab as vocab_lib
from aloe.models import monet as monet_lib
from aloe.tasks import monet as monet_task


def _splits(text: str) -> list[tuple[str, str]]:
    """`config.extract.splits` as (tfds split, store split) pairs."""
    try:
        return pipeline.split_pairs(text)
    except ValueError as err:
        raise ValueError(f"config.extract.splits = {err}") from None


def make_encoder(model: monet_lib.MONet, mesh: jax.sharding.Mesh):
    """`(params, frames [N, H, W, 3]) -> mu [N, K, d]`, N a multiple of the mesh size."""
    encode = lambda params, frames: model.apply({"params": params}, frames,
                                                method=monet_lib.MONet.encode)[0]
    return parallel.data_parallel(encode, mesh, in_specs=(parallel.REPLICATED, parallel.SHARDED),
                                  out_specs=parallel.SHARDED)


def encode_video(encoder, params: Any, video: np.ndarray, batch_size: int,
                 num_devices: int) -> np.ndarray:
    """float32 `[T, K, d]` latent means of a video's frames `[T, H, W, 3]`."""
    chunk = max(num_devices, batch_size // num_devices * num_devices)
    outputs = []
    for start in range(0, len(video), chunk):
        frames = video[start:start + chunk]
        padded = np.pad(frames, ((0, chunk - len(frames)),) + ((0, 0),) * 3)
        outputs.append(np.asarray(encoder(params, padded))[:len(frames)])
    return np.concatenate(outputs).astype(np.float32)


def extract(config: ml_collections.ConfigDict, workdir: str) -> dict[str, int]:
    """Writes the latent store `config.extract.out`; returns videos written per split."""
    ex = config.extract
    if not ex.out:
        raise ValueError("config.extract.out is empty: set it to the latent store root to write.")
    mesh = parallel.make_mesh(jax.local_devices())
    task = tasks.build(config, process_index=jax.process_index(),
                       process_count=jax.process_count())
    params, step = checkpointing.restore_params(workdir, task.init_params, parallel.make_mesh(),
                                                seed=config.seed)
    params = jax.device_put(jax.device_get(params), jax.sharding.NamedSharding(
        mesh, parallel.REPLICATED))
    logging.info("Extracting latents with MONet step %d into %s", step, ex.out)
    encoder = make_encoder(task.model, mesh)
    datasets = [config.data.dataset]
    if "datasets" in ex:
        datasets = [name.strip() for name in ex.datasets.split(",") if name.strip()]
    written: dict[str, int] = {}
    for tfds_split, store_split in _splits(ex.splits):
        labels: dict[str, dict[str, Any]] = {}
        for name in datasets:
            builder = monet_task.open_builder(config.data, name)
            count = _extract_split(builder, name, tfds_split, store_split, ex, encoder, params,
                                   mesh.size)
            written[store_split] = written.get(store_split, 0) + count
            if "video_name" in builder.info.features and jax.process_index() == 0:
                labels.update(pipeline.cater_labels(builder, name, tfds_split))
        if labels:
            cater_latents.write_labels(ex.out, store_split, labels)
        _copy_questions(ex, tfds_split, store_split)
    if ex.questions_dir and jax.process_index() == 0:
        write_vocab(ex.out, [store for _, store in _splits(ex.splits)])
    return written


def write_vocab(out: str, store_splits: list[str]) -> vocab_lib.Vocab:
    """Writes `{out}/vocab.json`, the vocabulary ALOE reads these latents' questions with.

    The release vocabulary (`vocab.release_vocab`, DESIGN.md §4) when every word
    and answer of the splits' question files is in it, else one built from all
    of them, so training and evaluation on the store agree on every answer. An
    existing `vocab.json` is kept.
    """
    path = os.path.join(out, "vocab.json")
    if os.path.exists(path):
        logging.info("Keeping the existing %s.", path)
        return vocab_lib.Vocab.load(path)
    files = [p for p in (os.path.join(out, f"{s}.json") for s in store_splits)
             if os.path.exists(p)]
    built = vocab_lib.Vocab.build(files)
    release = vocab_lib.release_vocab()
    fits = (built.word_ids.keys() <= release.word_ids.keys()
            and built.answer_classes.keys() <= release.answer_classes.keys())
    vocab = release if fits else built
    vocab.save(path + ".tmp")
    os.replace(path + ".tmp", path)
    logging.info("Wrote %s: %s (%d words, %d answers).", path,
                 "the release vocabulary" if fits else "built from " + ", ".join(files),
                 len(vocab.word_ids), vocab.num_answers)
    return vocab


def _extract_split(builder, name: str, tfds_split: str, store_split: str,
                   ex: ml_collections.ConfigDict, encoder, params, num_devices: int) -> int:
    """Encodes this process's videos of one split of one dataset; returns how many."""
    is_cater = "video_name" in builder.info.features
    if is_cater:
        store = cater_latents.CaterLatentStore(ex.out, store_split)
    else:
        store = latents_lib.LatentStore(ex.out, store_split)
    videos = pipeline.extraction_videos(builder, tfds_split,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())
    total = builder.info.splits[tfds_split].num_examples // jax.process_count()
    count = 0
    for video in tqdm.tqdm(videos, desc=f"{name} {tfds_split}", total=total, unit="video",
                           disable=jax.process_index() != 0):
        key = (cater_latents.video_key(name, video["video_name"]) if is_cater
               else int(video["scene_index"]))
        if store.has(key):
            continue
        store.write(key, encode_video(encoder, params, video["video"], ex.batch_size,
                                      num_devices))
        count += 1
    return count


def _copy_questions(ex: ml_collections.ConfigDict, tfds_split: str, store_split: str) -> None:
    """Copies `{questions_dir}/{tfds_split}.json` to `{out}/{store_split}.json` (process 0)."""
    if not ex.questions_dir or jax.process_index() != 0:
        return
    source = os.path.join(ex.questions_dir, f"{tfds_split}.json")
    if not os.path.exists(source):
        raise FileNotFoundError(f"config.extract.questions_dir: {source} does not exist.")
    target = os.path.join(ex.out, f"{store_split}.json")
    shutil.copyfile(source, target + ".tmp")
    os.replace(target + ".tmp", target)
    with open(target, encoding="utf-8") as f:
        json.load(f)  # A copy that does not parse fails here, not in training.

"""From videos to answers, as a user runs it: MONet on generated videos, extraction, ALOE.

Extraction writes the vocabulary the latents are read with, so an evaluation
answer that no training question has is still answered and scored; a MONet run
resumed from a checkpoint reads no frame of the steps before it.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from aloe.data import vocab as vocab_lib
from configs import monet_test

import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = subprocess_env.cpu_devices()


# 8: videos -> MONet -> extracted latents -> ALOE, with an answer training lacks.

@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Five generated videos (train 0-2, validation 3, test 4) as a built tfds dataset."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from aloe.data import clevrer  # pylint: disable=g-import-not-at-top
    from aloe.synthetic import clevrer as clevrer_gen  # pylint: disable=g-import-not-at-top
    root = tmp_path_factory.mktemp("mini_clevrer")
    clevrer_gen.generate_clevrer(root, 5, 0, width=96, height=64, workers=2, progress=False)
    data_dir = tmp_path_factory.mktemp("tfds")
    clevrer.Clevrer(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return root, data_dir


def _descriptive_answers(path):
    with open(path) as f:
        return {q["answer"] for s in json.load(f) for q in s["questions"]
                if q["question_type"] == "descriptive"}


@pytest.mark.slow
def test_extract_train_evaluate_with_an_answer_training_lacks(videos, tmp_path):
    root, data_dir = videos
    questions = tmp_path / "questions"
    shutil.copytree(root / "questions", questions)
    # A validation question whose answer no training question has (a release answer).
    lacking = sorted(set(vocab_lib.RELEASE_ANSWERS) - _descriptive_answers(
        questions / "train.json"))[0]
    with open(questions / "train.json") as f:
        question = dict(next(q for s in json.load(f) for q in s["questions"]
                             if q["question_type"] == "descriptive"))
    with open(questions / "validation.json") as f:
        scenes = json.load(f)
    question["question_id"] = 1 + max(q["question_id"] for q in scenes[0]["questions"])
    question["answer"] = lacking
    scenes[0]["questions"].append(question)
    with open(questions / "validation.json", "w") as f:
        json.dump(scenes, f)
    monet, latents, aloe = (str(tmp_path / name) for name in ("monet", "latents", "aloe"))
    config = (f"--config={REPO}/configs/monet_test.py", "--config.eval.after_training=false")

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "aloe.main", *args], cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    run(*config, f"--workdir={monet}", f"--config.data.data_dir={data_dir}")
    # Extraction reads the MONet workdir's config.json: only the output is named.
    run(*config, f"--workdir={monet}", "--mode=extract",
        f"--config.extract.out={latents}", f"--config.extract.questions_dir={questions}")
    assert vocab_lib.Vocab.load(os.path.join(latents, "vocab.json")).answer_classes == (
        vocab_lib.release_vocab().answer_classes)
    run(f"--config={REPO}/configs/test.py", f"--workdir={aloe}", f"--config.data.root={latents}",
        "--config.data.num_slots=4", "--config.model.latent_dim=8", "--config.train.steps=2",
        "--config.train.checkpoint_every=2", "--config.eval.batch_size=8")
    with open(os.path.join(aloe, "eval_valid_2.json")) as f:
        results = json.load(f)
    assert results["num_descriptive"] >= 1 and 0.0 <= results["descriptive"] <= 1.0
    with open(os.path.join(aloe, "answers_valid_2.json")) as f:
        answered = {(a["scene_index"], a["question_id"]): a for a in json.load(f)}
    assert answered[(scenes[0]["scene_index"], question["question_id"])]["true_answer"] == lacking


# MONet pretraining resumes its frame stream by index.

def tiny_monet_config(data_dir, frames_root, **overrides):
    config = monet_test.get_config()
    config.data.data_dir = os.fspath(data_dir)
    config.data.frames_root = os.fspath(frames_root)
    config.eval.after_training = False
    config.update_from_flattened_dict(overrides)
    return config


@pytest.mark.slow
def test_monet_resume_reads_no_skipped_batch(videos, tmp_path, monkeypatch):
    from aloe import train  # pylint: disable=g-import-not-at-top
    from aloe.data import frame_store  # pylint: disable=g-import-not-at-top
    from aloe.data import latents as latents_lib  # pylint: disable=g-import-not-at-top
    _, data_dir = videos
    frames = tmp_path / "frames"
    frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(frames),
                                  "train:train", progress=False)
    config = tiny_monet_config(data_dir, frames, **{"train.steps": 4,
                                                     "train.checkpoint_every": 2})
    full = train.train(config, str(tmp_path / "full"))

    reads = []
    original = latents_lib.LatentStore.read_frames
    monkeypatch.setattr(latents_lib.LatentStore, "read_frames",
                        lambda self, scene, picked: reads.append(scene) or original(
                            self, scene, picked))
    interrupted = str(tmp_path / "interrupted")
    first = train.train(tiny_monet_config(data_dir, frames, **{"train.steps": 2}), interrupted)
    assert int(first.step) == 2 and len(reads) == 2 * config.train.batch_size
    reads.clear()
    resumed = train.train(config, interrupted)
    assert int(resumed.step) == 4
    # Steps 2 and 3 only: the two batches before the checkpoint are not read again.
    assert len(reads) == 2 * config.train.batch_size
    for a, b in zip(jax.tree.leaves(jax.device_get(full.params)),
                    jax.tree.leaves(jax.device_get(resumed.params))):
        np.testing.assert_array_equal(a, b)

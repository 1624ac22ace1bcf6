"""mini-CATER end to end at tiny scale: generate, build, MONet, extract, train, evaluate."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aloe import evaluate
from aloe import extract
from aloe import train
from aloe.data import cater
from aloe.data import cater_latents
from aloe.synthetic import cater as cater_gen
from configs import monet_cater
from configs import toy_cater


@pytest.mark.slow
def test_generate_build_pretrain_extract_train_evaluate(tmp_path):
    root, data_dir = tmp_path / "mini_cater", tmp_path / "tfds"
    cater_gen.generate_cater(os.fspath(root), 6, 0, width=96, height=72, workers=2,
                             val_fraction=0.34, progress=False)
    for variant in ("all_actions", "all_actions_cameramotion"):
        cater.Cater(data_dir=data_dir, config=variant).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))

    monet = monet_cater.get_config()
    monet.update_from_flattened_dict({
        "data.data_dir": os.fspath(data_dir),
        "model.num_slots": 4, "model.latent_dim": 6, "model.unet_channels": (4, 4, 4, 4, 4),
        "model.unet_mlp_hidden": (16,), "model.encoder_channels": (4, 4, 4, 4),
        "model.encoder_hidden": 16, "model.decoder_channels": (4,), "train.steps": 2,
        "train.batch_size": 4, "train.checkpoint_every": 2, "train.log_every": 1,
        "eval.after_training": False, "extract.out": os.fspath(tmp_path / "latents"),
        "extract.batch_size": 64})
    train.train(monet, os.fspath(tmp_path / "monet"))
    written = extract.extract(monet, os.fspath(tmp_path / "monet"))
    assert sum(written.values()) == 12  # 6 videos in each camera variant.

    # The labels file agrees with the list files, and every video has its latents.
    for split, list_name in (("train", "train.txt"), ("valid", "val.txt")):
        with open(tmp_path / "latents" / f"{split}_labels.json") as f:
            labels = json.load(f)
        for variant, camera in (("all_actions", "static"),
                                ("all_actions_cameramotion", "moving")):
            for name, label in cater.read_list_file(
                    os.fspath(root / variant / "lists" / "localize" / list_name)):
                key = f"{variant}/{os.path.splitext(name)[0]}"
                assert labels[key] == {"label": label, "camera": camera}
                array = cater_latents.CaterLatentStore(tmp_path / "latents", split).read(key)
                assert array.shape == (301, 4, 6) and np.isfinite(array).all()

    aloe = toy_cater.get_config()
    aloe.update_from_flattened_dict({
        "data.root": os.fspath(tmp_path / "latents"), "data.num_slots": 4,
        "data.num_frames": 8, "model.latent_dim": 6, "model.num_heads": 2,
        "model.num_layers": 1, "model.mlp_dim": 16, "model.head_hidden_dim": 8,
        "train.steps": 4, "train.static_batch": 4, "train.moving_batch": 4,
        "train.checkpoint_every": 4, "train.log_every": 2, "eval.batch_size": 4,
        "auxiliary.weight": 2.0, "auxiliary.batch": 4})
    state = train.train(aloe, os.fspath(tmp_path / "aloe"))
    results = evaluate.evaluate(aloe, os.fspath(tmp_path / "aloe"), params=state.params, step=4)
    for name in ("top1", "top5", "l1", "top1_static", "top1_moving", "l1_static", "l1_moving"):
        assert np.isfinite(results[name]), (name, results)
    assert results["num_videos"] == results["num_static"] + results["num_moving"] > 0

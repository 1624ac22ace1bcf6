"""Frame stores written from tiny tfds CLEVRER and CATER datasets, read back and checked."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from aloe.data import cater
from aloe.data import cater_latents
from aloe.data import clevrer
from aloe.data import frame_store
from aloe.data import latents as latents_lib
from aloe.data import video_frames
from aloe.synthetic import cater as cater_gen
from aloe.synthetic import clevrer as clevrer_gen

CLEVRER_SPLITS = {"train": "train", "validation": "valid"}
CATER_DATASETS = [f"cater/{variant}" for variant in cater.VARIANTS]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> pathlib.Path:
    """One tfds data directory for the CLEVRER and CATER datasets."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def clevrer_data(tmp_path_factory, data_dir) -> tuple[pathlib.Path, pathlib.Path]:
    """`(mini-CLEVRER root, tfds data_dir)`: 4 videos at 96x64 (train 2, validation 1, test 1)."""
    root = tmp_path_factory.mktemp("mini_clevrer")
    clevrer_gen.generate_clevrer(root, 4, 0, width=96, height=64, workers=1, progress=False)
    clevrer.Clevrer(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return root, data_dir


@pytest.fixture(scope="session")
def cater_data(tmp_path_factory, data_dir) -> tuple[pathlib.Path, pathlib.Path]:
    """`(mini-CATER root, tfds data_dir)`: 3 videos per camera at 96x72 (1 in validation)."""
    root = tmp_path_factory.mktemp("mini_cater")
    cater_gen.generate_cater(os.fspath(root), 3, 0, width=96, height=72, workers=1,
                             val_fraction=0.34, progress=False)
    for variant in cater.VARIANTS:
        cater.Cater(data_dir=data_dir, config=variant).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return root, data_dir


def tfds_videos(data_dir: pathlib.Path, dataset: str, split: str, key: str) -> dict:
    """`{key value: uint8 [T, 64, 64, 3]}` decoded by tfds itself."""
    builder = tfds.builder(dataset, data_dir=os.fspath(data_dir))
    return {(ex[key].decode() if isinstance(ex[key], bytes) else int(ex[key])): ex["video"]
            for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def modification_times(folder: pathlib.Path) -> dict[str, int]:
    """Every file under `folder` (relative path) -> its modification time in ns."""
    return {os.fspath(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def test_clevrer_frames_equal_tfds_and_resume_rewrites_only_missing(clevrer_data, tmp_path):
    _, data_dir = clevrer_data
    out = tmp_path / "frames"
    written = frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                            "train:train,validation:valid", progress=False)
    assert written == {"train": 2, "valid": 1}
    for tfds_split, store_split in CLEVRER_SPLITS.items():
        expected = tfds_videos(data_dir, "clevrer", tfds_split, "scene_index")
        store = latents_lib.LatentStore(out, store_split, dtype=np.uint8)
        assert store.scenes() == sorted(expected)
        for scene, video in expected.items():
            frames = store.read(scene)
            assert frames.dtype == np.uint8 and frames.shape == (128, 64, 64, 3)
            np.testing.assert_array_equal(frames, video)
    assert not (out / "test").exists()  # Only the named splits.

    before = modification_times(out)
    again = frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                          progress=False)
    assert again == {"train": 0, "valid": 0} and modification_times(out) == before
    deleted = out / "train" / f"{latents_lib.LatentStore(out, 'train').scenes()[1]}.npz"
    deleted.unlink()
    third = frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                          progress=False)
    assert third == {"train": 1, "valid": 0}
    after = modification_times(out)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {os.fspath(deleted.relative_to(out))}
    assert sorted(after) == sorted(before)  # No temporary files left behind.


def test_resized_frames_follow_the_area_resize_policy(clevrer_data, tmp_path):
    _, data_dir = clevrer_data
    out = tmp_path / "frames32"
    frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                  "validation:valid", frame_size=32, progress=False)
    (scene, video), = tfds_videos(data_dir, "clevrer", "validation", "scene_index").items()
    frames = latents_lib.LatentStore(out, "valid", dtype=np.uint8).read(scene)
    assert frames.shape == (128, 32, 32, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, video_frames.resize_frames(video, 32, 32))
    # TensorFlow's own area resize (an independent implementation) agrees within a level.
    reference = tf.image.resize(video.astype(np.float32), (32, 32), method="area").numpy()
    assert np.abs(frames.astype(float) - np.rint(reference)).max() <= 1
    # A resumed run at another frame size refuses the old files, naming one.
    with pytest.raises(ValueError, match=rf"valid/{scene}\.npz: existing frame file holds uint8 "
                                         rf"\(128, 32, 32, 3\).*frame_size = 64"):
        frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                      "validation:valid", progress=False)
    # An existing file that is not an array at all is refused, naming it.
    path = out / "valid" / f"{scene}.npz"
    path.write_bytes(b"not an array")
    with pytest.raises(ValueError, match=rf"valid/{scene}\.npz: cannot read the existing frame "
                                         rf"file"):
        frame_store.write_frame_store(os.fspath(data_dir), "clevrer", os.fspath(out),
                                      "validation:valid", frame_size=32, progress=False)


def test_cater_frames_and_labels_in_the_cater_latents_layout(cater_data, tmp_path):
    root, data_dir = cater_data
    out = tmp_path / "frames"
    # One variant per run: the second run's labels are added to the first run's.
    counts = [frame_store.write_frame_store(os.fspath(data_dir), dataset, os.fspath(out),
                                            progress=False) for dataset in CATER_DATASETS]
    assert counts == [{"train": 2, "valid": 1}] * 2
    for tfds_split, store_split, list_name in (("train", "train", "train.txt"),
                                               ("validation", "valid", "val.txt")):
        with open(out / f"{store_split}_labels.json") as f:
            labels = json.load(f)
        expected_labels = {}
        store = cater_latents.CaterLatentStore(out, store_split, dtype=np.uint8)
        for variant, camera in zip(cater.VARIANTS, cater_latents.CAMERAS):
            videos = tfds_videos(data_dir, f"cater/{variant}", tfds_split, "video_name")
            for name, label in cater.read_list_file(root / variant / "lists" / "localize" /
                                                    list_name):
                key = f"{variant}/{name.removesuffix('.avi')}"
                expected_labels[key] = {"label": label, "camera": camera}
                frames = store.read(key)
                assert frames.dtype == np.uint8 and frames.shape == (301, 64, 64, 3)
                np.testing.assert_array_equal(frames, videos[name])
        assert labels == expected_labels
        assert store.scenes() == sorted(expected_labels)
    # The CATER data pipeline opens the store as frames.
    data = cater_latents.CaterLatentData(out, "train", num_frames=5, dtype=np.uint8,
                                         frame_size=64)
    batch = data.train_batch(0, 2, 2)
    assert batch["latents"].shape == (4, 5, 64, 64, 3) and batch["latents"].dtype == np.uint8
    np.testing.assert_array_equal(batch["moving"], [False, False, True, True])
    with pytest.raises(ValueError, match="frame array has 64 rows .* expected 32"):
        cater_latents.CaterLatentData(out, "train", num_frames=5, dtype=np.uint8, frame_size=32)
    with pytest.raises(ValueError, match="dtype uint8, expected float32"):
        cater_latents.CaterLatentData(out, "train", num_frames=5)


def test_each_process_writes_its_own_share(cater_data, tmp_path):
    _, data_dir = cater_data
    stores = []
    for index in (0, 1):
        out = tmp_path / f"process_{index}"
        written = frame_store.write_frame_store(
            os.fspath(data_dir), CATER_DATASETS, os.fspath(out), "train:train",
            process_index=index, process_count=2, progress=False)
        stores.append(set(cater_latents.CaterLatentStore(out, "train").scenes()))
        assert written == {"train": len(stores[-1])} and len(stores[-1]) == 2  # 1 per camera.
    assert not stores[0] & stores[1]
    # Process 0 writes the labels of every video; the others write none.
    labels = cater_latents.read_labels(tmp_path / "process_0" / "train_labels.json")
    assert set(labels.names) == stores[0] | stores[1]
    assert not (tmp_path / "process_1" / "train_labels.json").exists()


def test_bad_arguments_are_named(clevrer_data, cater_data, tmp_path):
    data_dir = os.fspath(cater_data[1])
    out = os.fspath(tmp_path / "frames")
    with pytest.raises(ValueError, match="splits = 'train'"):
        frame_store.write_frame_store(data_dir, "clevrer", out, "train")
    with pytest.raises(ValueError, match=r"'cater/all_actions' .* no split 'test'"):
        frame_store.write_frame_store(data_dir, "cater/all_actions", out, "test:test")
    with pytest.raises(ValueError, match="CLEVRER and CATER frames cannot share one store"):
        frame_store.write_frame_store(data_dir, "clevrer,cater/all_actions", out)
    with pytest.raises(FileNotFoundError, match="'clevrer' is not built"):
        frame_store.write_frame_store(os.fspath(tmp_path), "clevrer", out)
    with pytest.raises(ValueError, match="out is empty"):
        frame_store.write_frame_store(data_dir, "clevrer", "")
    assert not os.path.exists(out)


def test_command_line_writes_the_store(clevrer_data, tmp_path):
    _, data_dir = clevrer_data
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "aloe.data.frame_store", f"--data_dir={data_dir}",
         "--dataset=clevrer", f"--out={out}", "--splits=validation:valid", "--frame_size=16"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "new videos per split {'valid': 1}" in result.stdout
    store = latents_lib.LatentStore(out, "valid", dtype=np.uint8)
    assert store.read(store.scenes()[0]).shape == (128, 16, 16, 3)

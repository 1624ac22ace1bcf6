"""The `cater` TFDS builder on mini-CATER files, read back and checked independently."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from aloe.data import cater, video_frames
from aloe.synthetic import cater as cater_gen

NUM_VIDEOS, SEED, WIDTH, HEIGHT = 5, 1, 96, 72  # 4:3 like CATER's 320x240
# MPEG-4 at the generator's quantiser scores 25-29 dB per video on these tiny
# frames (resized); a 10-frame shift scores 20-23 dB.
CATER_PSNR_DB = 24.0


@pytest.fixture(scope="session")
def cater_root(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("mini_cater")
    cater_gen.generate_cater(os.fspath(out), NUM_VIDEOS, SEED, width=WIDTH, height=HEIGHT,
                             workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def builders(cater_root, tmp_path_factory) -> dict[str, tfds.core.DatasetBuilder]:
    data_dir = tmp_path_factory.mktemp("tfds_cater")
    built = {}
    for variant in cater.VARIANTS:
        built[variant] = cater.Cater(data_dir=data_dir, config=variant)
        built[variant].download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(cater_root)))
    return built


def _examples(builder, split) -> dict[str, dict]:
    return {ex["video_name"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def _list(path: pathlib.Path) -> dict[str, int]:
    """An independent reading of a list file: name -> class."""
    return {name: int(label) for name, label in
            (line.split(" ") for line in path.read_text().splitlines())}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def _area_resize_tf(frames: np.ndarray) -> np.ndarray:
    """TensorFlow's own area resize to 64x64, rounded: an independent implementation."""
    resized = tf.image.resize(frames.astype(np.float32), (64, 64), method="area").numpy()
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def test_examples_labels_and_scenes_equal_the_files(cater_root, builders):
    for variant, builder in builders.items():
        lists = cater_root / variant / "lists" / "localize"
        for split, list_name in (("train", "train.txt"), ("validation", "val.txt")):
            expected = _list(lists / list_name)
            examples = _examples(builder, split)
            assert {n: int(ex["label"]) for n, ex in examples.items()} == expected
            for name, example in examples.items():
                assert example["video"].shape == (301, 64, 64, 3)
                assert example["video"].dtype == np.uint8
                assert example["source_size"].tolist() == [HEIGHT, WIDTH]
                scene_file = cater_root / variant / "scenes" / name.replace(".avi", ".json")
                assert json.loads(example["scene"]) == json.loads(scene_file.read_text())


def test_frames_match_the_rendered_source_and_an_independent_decode(cater_root, builders):
    variant, index = "all_actions_cameramotion", 2
    name = cater_gen.video_name(index) + ".avi"
    split = "validation" if name in _list(
        cater_root / variant / "lists" / "localize" / "val.txt") else "train"
    frames = _examples(builders[variant], split)[name]["video"]
    with av.open(os.fspath(cater_root / variant / "videos" / name)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert np.abs(frames.astype(int) - _area_resize_tf(decoded).astype(int)).max() <= 1
    _, _, rendered = cater_gen.make_video(SEED, variant, index, WIDTH, HEIGHT)
    reference = _area_resize_tf(rendered)
    assert _psnr(frames, reference) > CATER_PSNR_DB
    assert _psnr(frames[10:], reference[:-10]) < _psnr(frames, reference) - 1.5


@pytest.mark.parametrize("line, message", [
    ("CATER_new_000001.avi", "line 2: expected '<video>.avi <class>'"),
    ("CATER_new_000001.avi x7", "line 2: expected '<video>.avi <class>'"),
    ("CATER_new_000001.mp4 7", "line 2: expected '<video>.avi <class>'"),
    ("CATER_new_000001.avi 36", r"line 2: class 36 is outside 0\.\.35"),
    ("CATER_new_000000.avi 4", "line 2: CATER_new_000000.avi is already listed on line 1"),
])
def test_bad_list_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "train.txt"
    path.write_text(f"CATER_new_000000.avi 3\n{line}\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, {message}"):
        cater.read_list_file(path)


def test_list_file_parses_classes_in_order(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("CATER_new_000004.avi 35\nCATER_new_000002.avi 0\n\n")
    assert cater.read_list_file(path) == [("CATER_new_000004.avi", 35),
                                          ("CATER_new_000002.avi", 0)]


def _copy_variant(cater_root: pathlib.Path, out: pathlib.Path, variant: str) -> pathlib.Path:
    shutil.copytree(cater_root / variant, out / variant)
    return out / variant


def _first_train_video(variant_dir: pathlib.Path) -> str:
    return (variant_dir / "lists" / "localize" / "train.txt").read_text().split()[0]


def test_bad_video_raises_or_is_skipped_and_reported(tmp_path, cater_root):
    variant_dir = _copy_variant(cater_root, tmp_path / "root", "all_actions")
    name = _first_train_video(variant_dir)
    bad = variant_dir / "videos" / name
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])  # truncated
    manual = tfds.download.DownloadConfig(manual_dir=os.fspath(tmp_path / "root"))
    strict = cater.Cater(data_dir=tmp_path / "strict", config="all_actions")
    with pytest.raises(ValueError, match=f"{re.escape(str(bad))}: (decoded .* fewer than the "
                                         f"required 301|cannot decode)"):
        strict.download_and_prepare(download_config=manual)
    skipping = cater.Cater(data_dir=tmp_path / "skip", config=cater.CaterConfig(
        name="all_actions_skip_bad", variant="all_actions", skip_bad_videos=True))
    skipping.download_and_prepare(download_config=manual)
    listed = _list(variant_dir / "lists" / "localize" / "train.txt")
    assert skipping.info.splits["train"].num_examples == len(listed) - 1
    assert name not in _examples(skipping, "train")
    report = video_frames.read_report(skipping)
    assert report["skipped_count"] == {"train": 1, "validation": 0}
    assert report["skipped"]["train"][0]["file"] == os.fspath(bad)


def test_missing_video_and_video_in_both_lists_raise(tmp_path, cater_root):
    variant_dir = _copy_variant(cater_root, tmp_path / "root", "all_actions")
    manual = tfds.download.DownloadConfig(manual_dir=os.fspath(tmp_path / "root"))
    name = _first_train_video(variant_dir)
    os.remove(variant_dir / "videos" / name)
    with pytest.raises(ValueError, match=f"{re.escape(name)}: video file not found"):
        cater.Cater(data_dir=tmp_path / "a", config="all_actions").download_and_prepare(
            download_config=manual)
    with open(variant_dir / "lists" / "localize" / "val.txt", "a") as f:
        f.write(f"{name} 3\n")
    with pytest.raises(ValueError, match=f"val.txt: {re.escape(name)} is also listed in"):
        cater.Cater(data_dir=tmp_path / "b", config="all_actions").download_and_prepare(
            download_config=manual)


@pytest.mark.slow
def test_command_line_build_with_a_json_config(tmp_path, cater_root):
    variant_dir = _copy_variant(cater_root, tmp_path / "root", "all_actions")
    name = _first_train_video(variant_dir)
    (variant_dir / "videos" / name).write_bytes(b"\x00" * 1000)
    data_dir = tmp_path / "data"
    config = '{"name": "all_actions_skip_bad", "variant": "all_actions", "skip_bad_videos": true}'
    result = subprocess.run(
        [sys.executable, "-m", "aloe.data.cater", f"--manual_dir={tmp_path / 'root'}",
         f"--data_dir={data_dir}", f"--config={config}"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 videos skipped" in result.stdout
    report = json.loads((data_dir / "cater" / "all_actions_skip_bad" / "1.0.0" /
                         video_frames.REPORT_FILE).read_text())
    assert [entry["file"] for entry in report["skipped"]["train"]] == [
        os.fspath(variant_dir / "videos" / name)]
    listed = _list(variant_dir / "lists" / "localize" / "val.txt")
    built = tfds.builder_from_directory(os.fspath(data_dir / "cater" / "all_actions_skip_bad" /
                                                  "1.0.0"))
    labels = {ex["video_name"].decode(): int(ex["label"])
              for ex in tfds.as_numpy(built.as_dataset(split="validation"))}
    assert labels == listed


@pytest.mark.slow
def test_stock_tfds_build_builds_both_variants(tmp_path, cater_root):
    data_dir = tmp_path / "data"
    tfds_command = os.path.join(os.path.dirname(sys.executable), "tfds")
    result = subprocess.run(
        [tfds_command, "build", cater.__file__, f"--manual_dir={cater_root}",
         f"--data_dir={data_dir}"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    for variant in cater.VARIANTS:
        built = tfds.builder(f"cater/{variant}", data_dir=data_dir)
        for split, list_name in (("train", "train.txt"), ("validation", "val.txt")):
            labels = {ex["video_name"].decode(): int(ex["label"])
                      for ex in tfds.as_numpy(built.as_dataset(split=split))}
            assert labels == _list(cater_root / variant / "lists" / "localize" / list_name)

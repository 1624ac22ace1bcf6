"""The CATER latent store and batches, and the toy CATER latents written through them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aloe.cater import grid
from aloe.data import cater_latents
from aloe.synthetic import toy_cater_latents as toy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES, SLOTS, DIM = 30, 3, 4


def _write_store(root, split="train", num_static=4, num_moving=4, shape=(FRAMES, SLOTS, DIM)):
    """Videos whose latents say which frame (dim 0) and which video (dim 1) they are."""
    store = cater_latents.CaterLatentStore(root, split)
    labels = {}
    for video in range(num_static + num_moving):
        camera = "static" if video < num_static else "moving"
        name = f"{camera}_variant/CATER_new_{video:06d}"
        latents = np.zeros(shape, np.float32)
        latents[..., 0] = np.arange(shape[0])[:, None]
        latents[..., 1] = video
        store.write(name, latents)
        labels[name] = {"label": video % 36, "camera": camera}
    cater_latents.write_labels(root, split, labels)
    return labels


def _frames(batch):
    return batch["latents"][:, :, 0, 0].astype(int)


def _videos(batch):
    return batch["latents"][:, 0, 0, 1].astype(int)


def test_store_and_labels_round_trip(tmp_path):
    labels = _write_store(tmp_path)
    parsed = cater_latents.read_labels(cater_latents.labels_path(tmp_path, "train"))
    assert parsed.names == sorted(labels)
    assert parsed.moving.sum() == 4
    np.testing.assert_array_equal(parsed.label, [labels[n]["label"] for n in parsed.names])
    store = cater_latents.CaterLatentStore(tmp_path, "train", (FRAMES, SLOTS, DIM))
    name = parsed.names[0]
    assert store.path(name) == os.path.join(str(tmp_path), "train", *name.split("/")) + ".npy"
    assert store.check_headers([name]) == (FRAMES, SLOTS, DIM)
    assert store.read(name)[5, 1, 0] == 5.0
    assert cater_latents.decode_names(cater_latents.encode_names(parsed.names)) == parsed.names


def test_training_batches_mix_cameras_with_sorted_frames_and_replay(tmp_path):
    _write_store(tmp_path)
    data = cater_latents.CaterLatentData(tmp_path, "train", num_frames=6, seed=3)
    batch = data.train_batch(7, static_size=4, moving_size=4)
    assert batch["latents"].shape == (8, 6, SLOTS, DIM) and batch["latents"].dtype == np.float32
    np.testing.assert_array_equal(batch["moving"], [False] * 4 + [True] * 4)
    videos = _videos(batch)
    assert (videos[:4] < 4).all() and (videos[4:] >= 4).all()
    np.testing.assert_array_equal(batch["label"], videos % 36)
    frames = _frames(batch)
    assert (np.diff(frames, axis=1) > 0).all() and frames.min() >= 0 and frames.max() < FRAMES
    again = data.train_batch(7, static_size=4, moving_size=4)
    np.testing.assert_array_equal(again["latents"], batch["latents"])
    other = data.train_batch(8, static_size=4, moving_size=4)
    assert not np.array_equal(_frames(other), frames)
    # Over many steps the frames reach both ends of the video.
    seen = np.concatenate([_frames(data.train_batch(s, 4, 4)).ravel() for s in range(30)])
    assert seen.min() == 0 and seen.max() == FRAMES - 1


def test_processes_split_each_camera_of_the_global_batch(tmp_path):
    _write_store(tmp_path)
    whole = cater_latents.CaterLatentData(tmp_path, "train", num_frames=5, seed=1)
    parts = [cater_latents.CaterLatentData(tmp_path, "train", num_frames=5, seed=1,
                                           process_index=p, process_count=2) for p in (0, 1)]
    batch = whole.train_batch(2, 4, 4)
    halves = [p.train_batch(2, 4, 4) for p in parts]
    expected = np.concatenate([batch["latents"][0:2], batch["latents"][2:4],
                               batch["latents"][4:6], batch["latents"][6:8]])
    got = np.concatenate([halves[0]["latents"][:2], halves[1]["latents"][:2],
                          halves[0]["latents"][2:], halves[1]["latents"][2:]])
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="static_size = 3 must be a non-negative multiple"):
        parts[0].train_batch(0, 3, 4)


def test_eval_batches_cover_every_video_once_with_spanning_frames(tmp_path):
    labels = _write_store(tmp_path, num_static=3, num_moving=2)
    names = []
    for process in (0, 1):
        data = cater_latents.CaterLatentData(tmp_path, "train", num_frames=4,
                                             process_index=process, process_count=2)
        batches = list(data.eval_batches(4))
        assert len(batches) == data.num_eval_batches(4) == 2
        for batch in batches:
            valid = batch["valid"]
            names += [n for n, v in zip(cater_latents.decode_names(batch["meta"]["name"]), valid)
                      if v]
            assert (batch["label"][~valid] == -1).all()
            assert not batch["latents"][~valid].any()
            assert (_frames(batch)[valid] == [0, 10, 19, 29]).all()
            for name, label in zip(cater_latents.decode_names(batch["meta"]["name"])[:valid.sum()],
                                   batch["label"][valid]):
                assert labels[name]["label"] == label
    assert names == sorted(labels)


def test_missing_and_malformed_files_are_named(tmp_path):
    labels = _write_store(tmp_path)
    missing = sorted(labels)[3]
    os.remove(os.path.join(tmp_path, "train", *missing.split("/")) + ".npy")
    with pytest.raises(FileNotFoundError, match=f"{missing}.npy: latent file of video"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=4)

    _write_store(tmp_path)
    store = cater_latents.CaterLatentStore(tmp_path, "train")
    odd = sorted(labels)[5]
    store.write(odd, np.zeros((FRAMES, SLOTS + 1, DIM), np.float32))
    with pytest.raises(ValueError, match=f"{odd}.npy: latent array has shape"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=4)
    np.save(store.path(odd), np.zeros((FRAMES, SLOTS, DIM), np.float64))
    with pytest.raises(ValueError, match=f"{odd}.npy: latent array has dtype float64"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=4)
    with open(store.path(odd), "wb") as f:
        f.write(b"not an array")
    with pytest.raises(ValueError, match=f"{odd}.npy: cannot read the latent array"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=4)

    _write_store(tmp_path)
    first = store.path(sorted(labels)[0])
    with pytest.raises(ValueError, match="has 3 slots .* expected 8"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=4, num_slots=8)
    with pytest.raises(ValueError, match=f"{first}: {FRAMES} frames, fewer than num_frames"):
        cater_latents.CaterLatentData(tmp_path, "train", num_frames=FRAMES + 1)
    with pytest.raises(ValueError, match="non-finite"):
        store.write(sorted(labels)[0], np.full((FRAMES, SLOTS, DIM), np.nan, np.float32))
    with pytest.raises(FileNotFoundError, match="valid_labels.json: no such file"):
        cater_latents.CaterLatentData(tmp_path, "valid")


@pytest.mark.parametrize("entries, message", [
    ({"CATER_new_000001": {"label": 36, "camera": "static"}},
     "video 'CATER_new_000001': field 'label' must be an integer in 0..35, got 36"),
    ({"CATER_new_000001": {"label": True, "camera": "static"}}, "field 'label'"),
    ({"CATER_new_000001": {"label": 3, "camera": "panning"}},
     "video 'CATER_new_000001': field 'camera' must be one of"),
    ({"../CATER_new_000001": {"label": 3, "camera": "static"}}, "is not a relative path"),
    ({"CATER_new_000001": 3}, "expected an object with fields 'label' and 'camera'"),
    ([], "expected a non-empty JSON object"),
])
def test_bad_labels_are_named(tmp_path, entries, message):
    path = cater_latents.labels_path(tmp_path, "train")
    with open(path, "w") as f:
        json.dump(entries, f)
    with pytest.raises(ValueError, match=f"train_labels.json: .*{message}"):
        cater_latents.read_labels(path)
    if isinstance(entries, dict):
        with pytest.raises(ValueError, match=message):
            cater_latents.write_labels(tmp_path, "valid", entries)


def test_one_camera_split_cannot_feed_a_mixed_batch(tmp_path):
    _write_store(tmp_path, num_static=4, num_moving=0)
    data = cater_latents.CaterLatentData(tmp_path, "train", num_frames=4)
    assert data.train_batch(0, 4, 0)["moving"].sum() == 0
    with pytest.raises(ValueError, match="train_labels.json: no moving-camera videos"):
        data.train_batch(0, 4, 4)


# The toy CATER latents.

@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_cater")
    toy.write_toy_cater_dataset(root, num_train=12, num_valid=4, seed=5)
    return root


def _final_world_positions(latents):
    """(x, y) of every object in view over the last 50 (still) frames, camera offset
    added back, averaged over those frames to remove the noise."""
    still = latents[-50:]
    world = (still[:, :, toy.POSITION_DIMS] + still[:, :1, toy.CAMERA_DIMS]) / toy.POSITION_SCALE
    present = (still[:, :, toy.PRESENT_DIM] > 0.5).all(axis=0)
    return {int(slot): world[:, slot].mean(axis=0) for slot in np.flatnonzero(present)}


def test_toy_labels_follow_from_the_latents(toy_root):
    labels = cater_latents.read_labels(cater_latents.labels_path(toy_root, "train"))
    with open(cater_latents.labels_path(toy_root, "train")) as f:
        stories = {name: entry["story"] for name, entry in json.load(f).items()}
    assert len(labels.names) == 24 and labels.moving.sum() == 12
    assert set(stories.values()) == set(toy.STORIES)
    store = cater_latents.CaterLatentStore(toy_root, "train", (301, 8, 16))
    travels = []
    for name, label, moving in zip(labels.names, labels.label, labels.moving):
        latents = store.read(name)
        assert name.startswith("all_actions_cameramotion/" if moving else "all_actions/")
        # The camera offset is zero for a static camera, a straight line for a moving one.
        camera = latents[:, 0, toy.CAMERA_DIMS]
        frames = np.arange(len(camera))
        slope, intercept = np.polyfit(frames, camera, 1)
        assert (camera - frames[:, None] * slope - intercept).std() < 1.5 * toy.NOISE_STD[moving]
        if moving:
            travels.append(np.abs(slope * frames[-1]).max())
        else:
            assert np.abs(slope * frames[-1]).max() < 0.03 and np.abs(intercept).max() < 0.03
        snitch = [s for s in range(1, 8) if np.abs(
            latents[:, s, toy.COLOR_DIMS] - toy.SNITCH_COLOR).max(axis=1).min() < 0.2]
        final = _final_world_positions(latents)
        cells = {slot: int(grid.position_to_class(xy)) for slot, xy in final.items()}
        if stories[name] == "visible":
            # The golden object is in view at the end, in the labelled cell.
            assert len(snitch) == 1 and cells[snitch[0]] == label, name
        else:
            # The snitch is hidden at the end, under a cone standing in the labelled cell.
            assert not snitch or snitch[0] not in final
            cones = [s for s in final if latents[-1, s, toy.SHAPE_DIMS.start + 3] > 0.5]
            assert any(cells[s] == label for s in cones), name
    assert np.mean(travels) > 0.1


def test_toy_command_line_writes_the_same_files(toy_root, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "aloe.synthetic.toy_cater_latents",
                           "--out", str(out), "--num_train", "12", "--num_valid", "4",
                           "--seed", "5"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-2000:]
    for split in ("train", "valid"):
        with open(cater_latents.labels_path(out, split)) as f, \
                open(cater_latents.labels_path(toy_root, split)) as g:
            assert json.load(f) == json.load(g)
    name = "all_actions_cameramotion/CATER_new_000013"
    store = cater_latents.CaterLatentStore(out, "valid")
    np.testing.assert_array_equal(store.read(name),
                                  cater_latents.CaterLatentStore(toy_root, "valid").read(name))

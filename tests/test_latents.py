"""The latent store: release layout, atomic writes, named errors, CATER-sized arrays."""

import os

import numpy as np
import pytest

from aloe.data.latents import LatentStore


def _latents(seed, shape=(128, 8, 16)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_write_read_round_trip_in_the_release_layout(tmp_path):
    store = LatentStore(tmp_path, "train", expected_shape=(128, 8, 16))
    for scene in (12, 3, 10000):
        store.write(scene, _latents(scene))
    assert store.scenes() == [3, 12, 10000]
    assert store.has(12) and not store.has(4)
    assert store.path(12) == os.path.join(tmp_path, "train", "12.npz")
    # The file is a plain np.save array, whatever its suffix says.
    with open(tmp_path / "train" / "12.npz", "rb") as f:
        np.testing.assert_array_equal(np.load(f, allow_pickle=False), _latents(12))
    np.testing.assert_array_equal(store.read(3), _latents(3))
    stacked = store.load_all([12, 3])
    assert stacked.shape == (2, 128, 8, 16) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[0], _latents(12))
    np.testing.assert_array_equal(store.load_all()[2], _latents(10000))
    # No temporary files are left behind, and an overwrite replaces the array.
    store.write(3, _latents(99))
    assert sorted(os.listdir(tmp_path / "train")) == ["10000.npz", "12.npz", "3.npz"]
    np.testing.assert_array_equal(store.read(3), _latents(99))


def test_release_files_written_by_np_save_are_read(tmp_path):
    os.makedirs(tmp_path / "valid")
    with open(tmp_path / "valid" / "10005.npz", "wb") as f:
        np.save(f, _latents(5))
    np.testing.assert_array_equal(LatentStore(tmp_path, "valid").read(10005), _latents(5))
    # A real one-array npz archive is accepted too; a two-array one is not.
    np.savez(tmp_path / "valid" / "10006.npz", mu=_latents(6))
    np.testing.assert_array_equal(LatentStore(tmp_path, "valid").read(10006), _latents(6))
    np.savez(tmp_path / "valid" / "10007.npz", a=_latents(6), b=_latents(7))
    with pytest.raises(ValueError, match=r"10007\.npz: npz archive holds 2 arrays"):
        LatentStore(tmp_path, "valid").read(10007)


def test_cater_shapes_and_free_split_names(tmp_path):
    store = LatentStore(tmp_path, "all_actions_cameramotion_val", expected_shape=(301, 8, 36))
    store.write(7, _latents(7, (301, 8, 36)))
    assert store.load_all().shape == (1, 301, 8, 36)
    with pytest.raises(ValueError, match=r"7\.npz: latent array has shape \(128, 8, 16\), "
                                         r"expected \(301, 8, 36\)"):
        store.write(7, _latents(7))
    np.testing.assert_array_equal(store.read(7), _latents(7, (301, 8, 36)))


@pytest.mark.parametrize("content, message", [
    (np.zeros((128, 8, 15), np.float32), r"shape \(128, 8, 15\), expected \(128, 8, 16\)"),
    (np.zeros((128, 8, 16), np.float64), "dtype float64, expected float32"),
    (np.full((128, 8, 16), np.nan, np.float32), "16384 non-finite value"),
    (np.array([{"pickled": 1}], dtype=object), "cannot read the latent array"),
    (b"not an array at all", "cannot read the latent array"),
    (b"", "cannot read the latent array"),
])
def test_malformed_files_are_named(tmp_path, content, message):
    os.makedirs(tmp_path / "train")
    path = tmp_path / "train" / "4.npz"
    with open(path, "wb") as f:
        if isinstance(content, bytes):
            f.write(content)
        else:
            np.save(f, content, allow_pickle=True)
    store = LatentStore(tmp_path, "train", expected_shape=(128, 8, 16))
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        store.read(4)
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        store.read_frames(4, np.arange(3))


def test_read_frames_reads_the_picked_frames_of_arrays_and_archives(tmp_path):
    store = LatentStore(tmp_path, "train", dtype=np.uint8)
    frames = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    store.write(1, frames)
    np.savez(tmp_path / "train" / "2.npz", frames=frames)  # A one-array archive.
    picked = np.array([0, 7, 19])
    for scene in (1, 2):
        np.testing.assert_array_equal(store.read_frames(scene, picked), frames[picked])
    with pytest.raises(FileNotFoundError, match=r"train/3\.npz"):
        store.read_frames(3, picked)


def test_check_headers_names_missing_mistyped_and_mismatched_files(tmp_path):
    store = LatentStore(tmp_path, "train")
    for scene in (1, 2):
        store.write(scene, _latents(scene))
    np.savez(tmp_path / "train" / "5.npz", latents=_latents(5))  # A one-array archive.
    assert store.check_headers([1, 2, 5]) == (128, 8, 16)
    with pytest.raises(FileNotFoundError, match=r"train/9\.npz: latent file of scene 9"):
        store.check_headers([1, 9])
    store.write(3, _latents(3, (64, 8, 16)))
    with pytest.raises(ValueError, match=r"3\.npz: latent array has shape \(64, 8, 16\), but "
                                         r".*1\.npz has \(128, 8, 16\)"):
        store.check_headers([1, 2, 3])
    with open(tmp_path / "train" / "4.npz", "wb") as f:
        np.save(f, np.zeros((128, 8, 16), np.float64))
    with pytest.raises(ValueError, match=r"4\.npz: latent array has dtype float64"):
        store.check_headers([4])
    with pytest.raises(ValueError, match=r"3\.npz: latent array has shape \(64, 8, 16\), "
                                         r"expected \(128, 8, 16\)"):
        LatentStore(tmp_path, "train", expected_shape=(128, 8, 16)).check_headers([1, 3])


def test_missing_file_and_inconsistent_shapes_are_named(tmp_path):
    store = LatentStore(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"train/5\.npz: latent file of scene 5"):
        store.read(5)
    store.write(1, _latents(1))
    store.write(2, _latents(2, (64, 8, 16)))
    with pytest.raises(ValueError, match=r"2\.npz: latent array has shape \(64, 8, 16\), but "
                                         r".*1\.npz has \(128, 8, 16\)"):
        store.load_all()
    with pytest.raises(FileNotFoundError, match=r"9\.npz"):
        store.load_all([1, 9])
    with pytest.raises(ValueError, match="non-finite"):
        store.write(3, np.full((2, 2), np.inf, np.float32))
    assert not store.has(3)
    with pytest.raises(ValueError, match="plain folder name"):
        LatentStore(tmp_path, "../elsewhere")

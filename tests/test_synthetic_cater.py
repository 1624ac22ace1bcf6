"""Tests of the mini-CATER generator, read back through a small independent reader."""

import json
import math
import pathlib
import re

import av
import numpy as np
import pytest

from aloe.synthetic import cater, cater_render, cater_scene

WIDTH, HEIGHT, NUM_VIDEOS, SEED = 64, 48, 4, 3
LAST_FRAME = 300
CATER_ACTIONS = {"_slide", "_pick_place", "_rotate", "_contain", "_no_op"}
LIST_LINE = re.compile(r"^(CATER_new_(\d{6})\.avi) (\d+)$")


# ---- A small reader of CATER's format, written against the format, not the generator.

def read_list(path: pathlib.Path) -> list[tuple[str, int, int]]:
    """(video file, index, class) per line of a localize list file."""
    rows = []
    for line in path.read_text().splitlines():
        match = LIST_LINE.match(line)
        assert match, f"{path}: bad line {line!r}"
        rows.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return rows


def formula_class(x: float, y: float) -> int:
    """CATER's grid cell of a final (x, y) position."""
    col, row = math.floor(x) + 3, math.floor(y) + 3
    assert 0 <= col <= 5 and 0 <= row <= 5, (x, y)
    return row * 6 + col


def covering(scene: dict) -> dict[str, list[str | None]]:
    """Per instance and frame, the cone covering it (from the movement records only).

    A `_contain` covers its target from its end frame until the cone's next
    `_pick_place` starts (the last frame the cone is still down).
    """
    cover = {o["instance"]: [None] * (LAST_FRAME + 1) for o in scene["objects"]}
    for cone, moves in scene["movements"].items():
        for k, (action, other, start, end) in enumerate(moves):
            if action != "_contain":
                continue
            lift = next((m[2] for m in moves[k + 1:] if m[0] == "_pick_place"), LAST_FRAME)
            for t in range(end, lift + 1):
                assert cover[other][t] is None, f"{other} covered twice at frame {t}"
                cover[other][t] = cone
    return cover


def xyz_track(scene: dict, instance: str) -> np.ndarray:
    """`[301, 3]` positions of one object from its `locations` dict."""
    obj = next(o for o in scene["objects"] if o["instance"] == instance)
    return np.array([obj["locations"][str(t)] for t in range(LAST_FRAME + 1)])


def xy_track(scene: dict, instance: str) -> np.ndarray:
    """`[301, 2]` floor positions of one object."""
    return xyz_track(scene, instance)[:, :2]


def snitch_flags(scene: dict) -> tuple[bool, bool]:
    """(ends hidden, moved while hidden) for the snitch, from the JSON alone."""
    snitch = next(o["instance"] for o in scene["objects"] if o["shape"] == "spl")
    hidden = np.array([c is not None for c in covering(scene)[snitch]])
    step = np.linalg.norm(np.diff(xy_track(scene, snitch), axis=0), axis=1)
    return bool(hidden[-1]), bool(np.any((step > 1e-9) & hidden[1:] & hidden[:-1]))


def golden_mask(frames: np.ndarray) -> np.ndarray:
    """Pixels whose colour is the snitch's gold (no other palette colour shades to it)."""
    f = frames.astype(np.int32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return (r >= 60) & (100 * g >= 72 * r) & (100 * g <= 90 * r) & (100 * b <= 20 * r)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    out = tmp_path_factory.mktemp("mini_cater")
    report = cater.generate_cater(str(out), NUM_VIDEOS, SEED, width=WIDTH, height=HEIGHT,
                                  workers=2, val_fraction=0.25, progress=False)
    return out, report


def load_scene(root: pathlib.Path, variant: str, video: str) -> dict:
    return json.loads((root / variant / "scenes" / video.replace(".avi", ".json")).read_text())


# ---- Format and labels.

def test_list_labels_follow_the_formula_on_the_final_snitch_location(dataset):
    root, _ = dataset
    for variant in cater.VARIANTS:
        train = read_list(root / variant / "lists" / "localize" / "train.txt")
        val = read_list(root / variant / "lists" / "localize" / "val.txt")
        assert sorted(i for _, i, _ in train + val) == list(range(NUM_VIDEOS))
        assert len(val) == 1
        for video, _, label in train + val:
            scene = load_scene(root, variant, video)
            snitch = [o for o in scene["objects"] if o["shape"] == "spl"]
            assert len(snitch) == 1
            x, y, _ = snitch[0]["locations"][str(LAST_FRAME)]
            assert label == formula_class(x, y)


def test_videos_decode_to_301_frames_of_the_configured_size(dataset):
    root, _ = dataset
    for variant in cater.VARIANTS:
        for index in range(NUM_VIDEOS):
            path = root / variant / "videos" / f"CATER_new_{index:06d}.avi"
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) == LAST_FRAME + 1
            assert {f.shape for f in frames} == {(HEIGHT, WIDTH, 3)}
            assert np.std(frames[0]) > 5  # Objects on a floor, not a blank frame.


def test_scene_json_keys_and_types(dataset):
    root, _ = dataset
    for variant in cater.VARIANTS:
        for index in range(NUM_VIDEOS):
            scene = load_scene(root, variant, f"CATER_new_{index:06d}.avi")
            assert scene["image_filename"] == f"CATER_new_{index:06d}.avi"
            objects = scene["objects"]
            assert 5 <= len(objects) <= 10
            assert sum(o["shape"] == "spl" for o in objects) == 1
            names = [o["instance"] for o in objects]
            assert len(set(names)) == len(names) and set(scene["movements"]) == set(names)
            for obj in objects:
                assert obj["shape"] in {"spl", "cone", "cube", "sphere", "cylinder"}
                assert obj["size"] in {"small", "medium", "large"}
                assert obj["material"] in {"rubber", "metal"}
                assert isinstance(obj["color"], str) and isinstance(obj["sized"], float)
                assert list(obj["locations"]) == [str(t) for t in range(LAST_FRAME + 1)]
                for xyz in obj["locations"].values():
                    assert len(xyz) == 3 and all(isinstance(v, float) for v in xyz)
            for moves in scene["movements"].values():
                for action, other, start, end in moves:
                    assert action in CATER_ACTIONS
                    assert (other is None) == (action != "_contain")
                    assert isinstance(start, int) and 0 <= start < end <= LAST_FRAME


def test_generation_is_deterministic_per_seed_and_worker_count(dataset, tmp_path):
    root, _ = dataset
    report = cater.main(["--out", str(tmp_path), "--num_videos", str(NUM_VIDEOS), "--seed",
                         str(SEED), "--width", str(WIDTH), "--height", str(HEIGHT),
                         "--workers", "1", "--val_fraction", "0.25"])
    assert report["videos"]["all_actions"] == {"train": 3, "val": 1}
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    other = cater.make_scene(SEED + 1, "all_actions", 0)[0]
    same = cater.make_scene(SEED, "all_actions", 0)[0]
    first = load_scene(root, "all_actions", "CATER_new_000000.avi")["objects"][0]["locations"]
    assert np.allclose(same.locations[0], [first[str(t)] for t in range(LAST_FRAME + 1)])
    assert not np.allclose(other.locations[0, 0], same.locations[0, 0])


def test_report_matches_an_independent_count(dataset):
    root, report = dataset
    flags = [snitch_flags(load_scene(root, v, f"CATER_new_{i:06d}.avi"))
             for v in cater.VARIANTS for i in range(NUM_VIDEOS)]
    assert report["snitch_ends_hidden"] == pytest.approx(np.mean([e for e, _ in flags]))
    assert report["snitch_moved_while_hidden"] == pytest.approx(np.mean([m for _, m in flags]))
    assert report["snitch_needs_tracking"] == pytest.approx(np.mean([e or m for e, m in flags]))
    for variant in cater.VARIANTS:
        labels = [c for name in ("train", "val")
                  for _, _, c in read_list(root / variant / "lists" / "localize" / f"{name}.txt")]
        assert report["class_histogram"][variant] == np.bincount(labels, minlength=36).tolist()
    assert report["videos_per_second"] > 0


# ---- Simulation: occlusion, containment, physical consistency.

def simulated_scenes(count: int, seed: int = 11):
    for i in range(count):
        scene = cater_scene.simulate_scene(np.random.default_rng([seed, i]))
        camera = cater_render.static_camera(np.random.default_rng([seed, i, 1]), 301)
        yield scene, cater.scene_json(scene, camera, i, WIDTH, HEIGHT)


def test_snitch_needs_tracking_in_at_least_a_quarter_of_videos():
    flags = [snitch_flags(js) for _, js in simulated_scenes(120)]
    needs_tracking = np.mean([ends or moved for ends, moved in flags])
    assert needs_tracking >= 0.25
    assert np.mean([ends for ends, _ in flags]) < 0.9  # The task is not always "find a cone".


def test_covered_objects_move_with_their_cone_and_nothing_interpenetrates_at_rest():
    nested = moved_under_cone = 0
    for scene, js in simulated_scenes(25):
        cover = covering(js)
        assert all(np.array_equal(scene.hidden[i], [c is not None for c in cover[o.instance]])
                   for i, o in enumerate(scene.objects))
        tracks = {o["instance"]: xy_track(js, o["instance"]) for o in js["objects"]}
        for name, cones in cover.items():
            for t, cone in enumerate(cones):
                if cone is not None:
                    assert np.allclose(tracks[name][t], tracks[cone][t])
                    nested += cover[cone][t] is not None
            moving = np.linalg.norm(np.diff(tracks[name], axis=0), axis=1) > 0
            moved_under_cone += np.any(moving & np.array([c is not None for c in cones[1:]]))
        names = list(tracks)
        xyz = np.stack([xyz_track(js, n) for n in names])  # [objects, frames, 3]
        xy = xyz[..., :2]
        sized = np.array([next(o["sized"] for o in js["objects"] if o["instance"] == n)
                          for n in names])
        uncovered = np.array([[c is None for c in cover[n]] for n in names])
        resting = uncovered[:, 1:] & np.all(xyz[:, 1:] == xyz[:, :-1], axis=-1)
        gap = (np.linalg.norm(xy[:, None, 1:] - xy[None, :, 1:], axis=-1)
               - sized[:, None, None] - sized[None, :, None])
        both = resting[:, None] & resting[None] & ~np.eye(len(names), dtype=bool)[..., None]
        assert np.all(gap[both] >= 0), [names[i] for i in np.argwhere(both & (gap < 0))[0][:2]]
    assert nested > 0 and moved_under_cone > 0  # The sample exercises both cases.


def test_contained_snitch_is_invisible_and_travels_with_its_cone():
    for index in range(40):
        scene, camera = cater.make_scene(7, "all_actions", index)
        if cater_scene.snitch_tracking_flags(scene)["moved_while_hidden"]:
            break
    else:
        pytest.fail("no video among 40 moves the snitch under a cone")
    js = cater.scene_json(scene, camera, index, 160, 120)
    frames = cater_render.render_scene(scene, camera, 160, 120)
    snitch = next(o["instance"] for o in js["objects"] if o["shape"] == "spl")
    cones = covering(js)[snitch]
    hidden = np.array([c is not None for c in cones])
    track = xy_track(js, snitch)
    travelled = sum(np.linalg.norm(track[t + 1] - track[t])
                    for t in range(LAST_FRAME) if hidden[t] and hidden[t + 1])
    assert travelled > 0.1
    for t in np.flatnonzero(hidden):
        assert np.allclose(track[t], xy_track(js, cones[t])[t])
    golden = golden_mask(frames).sum(axis=(1, 2))
    assert np.all(golden[hidden] == 0)
    assert np.mean(golden[~hidden] > 0) > 0.8  # Visible most of the time otherwise.


# ---- Cameras and rendering.

def test_cameras_keep_the_grid_in_view_and_the_moving_one_moves_smoothly():
    rng = np.random.default_rng(0)
    corners = np.array([[x, y, 0.0] for x in (-3, 3) for y in (-3, 3)])
    for camera in (cater_render.static_camera(rng, 301),
                   cater_render.orbiting_camera(rng, 301, 320, 240)):
        uvd = camera.project(np.broadcast_to(corners, (301, 4, 3)), 320, 240)
        assert np.all((uvd[..., 0] >= 0) & (uvd[..., 0] <= 320))
        assert np.all((uvd[..., 1] >= 0) & (uvd[..., 1] <= 240) & (uvd[..., 2] > 0))
    steps = np.linalg.norm(np.diff(camera.positions, axis=0), axis=1)
    assert steps.sum() > 10.0 and steps.max() < 0.6
    assert np.all(np.abs(np.diff(steps)) < 0.05)  # No jerks.


def lone_object_scene(shape: str, size: str, colour: str) -> cater_scene.CaterScene:
    obj = cater_scene.CaterObject(shape, size, cater_scene.SIZES[size], "rubber", colour, "X_0")
    locations = np.tile([0.3, -0.2, obj.half_height], (301, 1))[None]
    return cater_scene.CaterScene([obj], locations, np.zeros((1, 301)),
                                  np.full((1, 301), -1), {"X_0": []})


def test_a_sphere_renders_where_and_as_large_as_projection_says():
    scene = lone_object_scene("sphere", "large", "red")
    camera = cater_render.static_camera(np.random.default_rng(1), 301)
    frames, ids = cater_render.render_scene(scene, camera, 320, 240, with_object_ids=True)
    mask = ids[0] == 0
    rows, cols = np.nonzero(mask)
    u, v, depth = camera.project(scene.locations[0][:, None], 320, 240)[0, 0]
    assert abs(cols.mean() + 0.5 - u) < 1.5 and abs(rows.mean() + 0.5 - v) < 1.5
    expected_area = math.pi * (camera.focal_length(320) * 0.75 / depth) ** 2
    assert mask.sum() == pytest.approx(expected_area, rel=0.1)
    assert np.array_equal(frames[0], frames[-1])  # Static scene, static camera.
    assert frames[0][mask][:, 0].mean() > 2 * frames[0][mask][:, 1].mean()  # Red.


def test_covered_objects_are_not_drawn_even_without_a_cone_around_them():
    scene = lone_object_scene("spl", "small", "gold")
    scene.container[0, 100:200] = 0  # Marked covered; nothing else occludes it.
    camera = cater_render.static_camera(np.random.default_rng(3), 301)
    golden = golden_mask(cater_render.render_scene(scene, camera, 96, 72)).sum(axis=(1, 2))
    assert np.all(golden[100:200] == 0)
    assert np.all(golden[:100] > 3) and np.all(golden[200:] > 3)


def test_a_cone_narrows_towards_its_apex():
    scene = lone_object_scene("cone", "large", "blue")
    camera = cater_render.static_camera(np.random.default_rng(2), 301)
    _, ids = cater_render.render_scene(scene, camera, 320, 240, with_object_ids=True)
    widths = (ids[0] == 0).sum(axis=1)
    rows = np.flatnonzero(widths)
    top, bottom = widths[rows[: len(rows) // 4]].mean(), widths[rows[len(rows) // 2:]].mean()
    assert top < 0.5 * bottom


def test_localize_class_and_bad_arguments():
    assert cater_scene.localize_class(-3.0, -3.0) == 0
    assert cater_scene.localize_class(2.999, 2.999) == 35
    assert cater_scene.localize_class(-0.5, 0.5) == 3 * 6 + 2
    assert cater_scene.localize_class(3.2, -3.5) == 5  # Clipped defensively.
    for kwargs in ({"num_videos": 0}, {"width": 63}, {"val_fraction": 1.0}, {"workers": 0},
                   {"variants": ["all_actions_fast"]}):
        args = {"out": "/nonexistent", "num_videos": 1, "seed": 0, **kwargs}
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            cater.generate_cater(**args)

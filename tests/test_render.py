"""Tests of `aloe.synthetic.render`: masks, occlusion, and what survives a 64x64 downscale."""

import itertools

import numpy as np
import pytest

from aloe.synthetic import physics, render

RENDERER = render.Renderer(480, 320)
# (x, y, yaw): left middle, far right, near middle, far left, near right.
POSES = [(-1.5, 0.0, 0.3), (1.0, 2.0, 0.9), (0.5, -1.5, 1.4), (-2.5, 3.0, 0.0), (2.5, -1.0, 0.6)]


def _area_resample(values: np.ndarray, axis: int, size_out: int) -> np.ndarray:
    """Area-averages `values` along `axis` to `size_out` cells (pixels as constant boxes)."""
    values = np.moveaxis(values.astype(np.float64), axis, 0)
    size_in = values.shape[0]
    integral = np.concatenate([np.zeros_like(values[:1]), np.cumsum(values, 0)])
    edges = np.linspace(0, size_in, size_out + 1)
    whole = np.minimum(np.floor(edges).astype(int), size_in - 1)
    part = (edges - whole).reshape((-1,) + (1,) * (values.ndim - 1))
    at_edges = integral[whole] + part * values[whole]  # The integral up to each edge.
    return np.moveaxis((at_edges[1:] - at_edges[:-1]) * size_out / size_in, 0, axis)


def _downscale(image: np.ndarray) -> np.ndarray:
    """Area-average `[320, 480]` or `[320, 480, C]` to 64x64."""
    return _area_resample(_area_resample(image, 0, 64), 1, 64)


def _single(shape: str, material: str, color: str, pose) -> tuple[np.ndarray, np.ndarray]:
    """Downscaled luminance in [0, 1] and object coverage, both `[64, 64]`, of one object."""
    x, y, yaw = pose
    image, mask = RENDERER.render([shape], [material], [color],
                                  np.array([[x, y, render.CENTER_HEIGHT[shape]]]), np.array([yaw]))
    return _downscale(image).mean(-1) / 255.0, _downscale(mask > 0)


def test_area_downscale_helper_averages_blocks():
    image = np.random.default_rng(0).random((320, 480))
    small = _downscale(image)
    np.testing.assert_allclose(small.mean(), image.mean(), rtol=1e-9)
    np.testing.assert_allclose(small[0, 0], (image[:5, :7].sum() + 0.5 * image[:5, 7].sum()) / 37.5)


def test_masks_sit_at_projected_centres_and_match_the_image():
    shapes, materials = ["sphere", "cube", "cylinder"], ["metal", "rubber", "metal"]
    colors = ["red", "blue", "green"]
    centers = np.array([[-2.0, 0.0, 0.4], [1.5, 2.5, 0.36], [0.5, -1.5, 0.4]])
    image, mask = RENDERER.render(shapes, materials, colors, centers, np.array([0.0, 0.7, 0.0]),
                                  labels=[5, 6, 7])
    empty, empty_mask = RENDERER.render([], [], [], np.zeros((0, 3)), np.zeros(0))
    assert not empty_mask.any()
    assert set(np.unique(mask)) == {0, 5, 6, 7}
    u, v, _ = RENDERER.camera.project(centers)
    for k, label in enumerate([5, 6, 7]):
        ys, xs = np.nonzero(mask == label)
        assert mask[int(v[k] * 320), int(u[k] * 480)] == label
        # The silhouette's centroid lies within a fifth of its size of the projected centre.
        size = max(np.ptp(ys), np.ptp(xs))
        assert abs(xs.mean() - u[k] * 480) < size / 5 and abs(ys.mean() - v[k] * 320) < size / 5
        channel = {"red": 0, "green": 1, "blue": 2}[colors[k]]
        pixels = image[mask == label].astype(int)
        others = np.delete(pixels, channel, axis=1).max(1)
        assert np.median(pixels[:, channel] - others) > 20
    # Floor pixels away from the objects are untouched (shadows only darken near objects).
    far = (mask == 0) & (np.abs(image.astype(int) - empty.astype(int)).max(-1) > 0)
    assert far.mean() < 0.05 and np.all(image[far] <= empty[far])


def test_nearer_object_hides_the_one_behind():
    # A cube right behind a sphere along the line of sight.
    front = np.array([0.0, -1.0, 0.4])
    direction = front - np.asarray(RENDERER.camera.position)
    back = front + 1.2 * direction / np.linalg.norm(direction[:2])
    back[2] = 0.36
    for order in ([0, 1], [1, 0]):
        shapes = [["sphere", "cube"][i] for i in order]
        centers = np.array([[front, back][i] for i in order])
        labels = [[1, 2][i] for i in order]
        _, mask = RENDERER.render(shapes, ["rubber"] * 2, ["red", "blue"], centers, np.zeros(2),
                                  labels=labels)
        u, v, _ = RENDERER.camera.project(front)
        assert mask[int(v * 320), int(u * 480)] == 1
        assert 0 < (mask == 2).sum() < (mask == 1).sum() * 2


def test_render_video_masks_follow_the_annotation():
    scene = physics.simulate_scene(2, np.random.default_rng([0, 2]))
    annotation = scene["annotation"]
    annotation = dict(annotation, motion_trajectory=annotation["motion_trajectory"][::16])
    frames, masks = render.render_video(annotation, 96, 64)
    assert frames.shape == (8, 64, 96, 3) and masks.shape == (8, 64, 96)
    assert frames.dtype == masks.dtype == np.uint8
    camera = render.Camera()
    checked = 0
    for f, record in enumerate(annotation["motion_trajectory"]):
        depth = {o["object_id"]: camera.project(np.array(o["location"]))[2] for o in record["objects"]}
        for obj in record["objects"]:
            if not obj["inside_camera_view"]:
                continue
            u, v, _ = camera.project(np.array(obj["location"]))
            label = int(masks[f, min(int(v * 64), 63), min(int(u * 96), 95)])
            assert label != 0
            # Either the object itself or one nearer to the camera covers its centre.
            assert label == obj["object_id"] + 1 or depth[label - 1] < depth[obj["object_id"]]
            checked += 1
    assert checked >= 10
    assert set(np.unique(masks)) <= {0} | {p["object_id"] + 1 for p in annotation["object_property"]}


def test_metal_and_rubber_differ_after_a_64x64_downscale():
    """Metal's reflections and highlights give a larger luminance spread than matte rubber."""
    for shape, color, pose in itertools.product(render.SHAPES, render.SURFACE_COLORS, POSES[:3]):
        spread = {}
        for material in render.MATERIALS:
            luminance, coverage = _single(shape, material, color, pose)
            spread[material] = luminance[coverage > 0.75].std()
        assert spread["metal"] > 1.1 * spread["rubber"], (shape, color, pose, spread)


def test_shapes_differ_after_a_64x64_downscale():
    for material, color, pose in itertools.product(render.MATERIALS, ["gray", "yellow"], POSES):
        seen = {shape: _single(shape, material, color, pose) for shape in render.SHAPES}
        for a, b in itertools.combinations(render.SHAPES, 2):
            # Silhouettes differ by several whole 64x64 pixels, and so do the images.
            assert np.abs(seen[a][1] - seen[b][1]).sum() > 4, (a, b, material, color, pose)
            assert np.abs(seen[a][0] - seen[b][0]).sum() > 1.5, (a, b, material, color, pose)
    # The silhouette belongs to the shape alone: another colour and material leave it unchanged.
    np.testing.assert_array_equal(_single("cube", "metal", "red", POSES[0])[1],
                                  _single("cube", "rubber", "cyan", POSES[0])[1])


def test_renderer_rejects_bad_input():
    with pytest.raises(ValueError, match="aspect"):
        render.Renderer(64, 64)
    with pytest.raises(ValueError, match="object 0"):
        RENDERER.render(["pyramid"], ["metal"], ["red"], np.array([[0.0, 0.0, 0.4]]), np.zeros(1))
    annotation = physics.simulate_scene(0, np.random.default_rng(0))["annotation"]
    broken = dict(annotation, object_property=annotation["object_property"][1:])
    with pytest.raises(ValueError, match="object_property"):
        render.render_video(broken, 96, 64)

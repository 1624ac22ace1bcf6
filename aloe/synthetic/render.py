"""Objects' geometry, the fixed camera, and vectorised ray-cast rendering with instance masks.

A pinhole `Camera` looks obliquely at a grey floor lit by one key light; the
simulator (`aloe.synthetic.physics`) uses the same camera to decide what is
"inside the camera view" and the same object sizes. Each object is ray cast
analytically inside its projected bounding box only (spheres, vertical
cylinders with a flat elliptical-looking top, cubes turned about the vertical
axis), so a 480x320 frame costs a few milliseconds. Occlusion follows a depth
buffer, which also yields the instance mask (0 = background, k = object_id + 1).
Materials differ in the shading model: rubber is matte (soft all-round light,
gentle diffuse shading, a faint broad highlight); metal is shiny (a dim body
tinted by the reflected surroundings: a floor darkening into the contact
shadow, a brighter sky and a rectangular soft box, plus a tight white
highlight). A soft shadow is cast on the floor away from the light.
"""

import dataclasses
import functools
from typing import Any, Sequence

import numpy as np

COLORS = ("gray", "red", "blue", "green", "brown", "yellow", "cyan", "purple")
MATERIALS = ("metal", "rubber")
SHAPES = ("cube", "sphere", "cylinder")
# Half extents: sphere and cylinder radius, cube half side.
HALF_SIZE = {"sphere": 0.4, "cube": 0.36, "cylinder": 0.38}
# Height of the centre above the floor (the cylinder is 0.8 tall).
CENTER_HEIGHT = {"sphere": 0.4, "cube": 0.36, "cylinder": 0.4}


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera looking obliquely at the floor.

    Attributes:
      position: camera centre `[3]` in world units.
      look_at: the world point `[3]` on the optical axis.
      focal: focal length as a fraction of the image width.
      aspect: image width / height.
    """
    position: tuple[float, float, float] = (0.0, -7.5, 9.0)
    look_at: tuple[float, float, float] = (0.0, 0.8, 0.0)
    focal: float = 1.25
    aspect: float = 1.5

    def axes(self) -> np.ndarray:
        """Rows right, up, forward `[3, 3]` of the camera frame in world coordinates."""
        return _camera_axes(self.position, self.look_at).copy()

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Projects world points `[..., 3]` to image fractions.

        Returns:
          (u, v, depth), each `[...]`: u in [0, 1] from left to right, v in [0, 1]
          from top to bottom for points in the frame; depth along the optical axis.
        """
        rel = np.asarray(points, np.float64) - np.asarray(self.position)
        cam = rel @ _camera_axes(self.position, self.look_at).T
        depth = cam[..., 2]
        safe = np.where(depth > 1e-6, depth, 1e-6)
        u = 0.5 + self.focal * cam[..., 0] / safe
        v = 0.5 - self.focal * self.aspect * cam[..., 1] / safe
        return u, v, depth

    def floor_point(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The floor points `[..., 2]` seen at image fractions `u`, `v` (`[...]`)."""
        right, up, forward = _camera_axes(self.position, self.look_at)
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        rays = (forward + ((u - 0.5) / self.focal)[..., None] * right
                - ((v - 0.5) / (self.focal * self.aspect))[..., None] * up)
        if np.any(rays[..., 2] >= 0):
            raise ValueError("an image point above the horizon has no floor point.")
        t = -self.position[2] / rays[..., 2]
        return np.asarray(self.position[:2]) + t[..., None] * rays[..., :2]

    def in_view(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether world points `[..., 3]` project inside the frame shrunk by `margin` (bool `[...]`)."""
        u, v, depth = self.project(points)
        return ((depth > 0) & (u >= margin) & (u <= 1 - margin)
                & (v >= margin) & (v <= 1 - margin))


@functools.lru_cache(maxsize=16)
def _camera_axes(position: tuple[float, ...], look_at: tuple[float, ...]) -> np.ndarray:
    """Rows right, up, forward `[3, 3]` of a camera at `position` looking at `look_at`."""
    forward = np.subtract(look_at, position).astype(np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(right, forward), forward])


# CLEVR's palette, as albedo in [0, 1].
SURFACE_COLORS = {name: np.array(rgb, np.float32) / 255.0 for name, rgb in {
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208),
    "yellow": (255, 238, 51)}.items()}
_LIGHT = np.array([-0.45, -0.4, 0.8]) / np.linalg.norm([-0.45, -0.4, 0.8])
# A rectangular soft box (centre, half sizes) at a height over the floor, seen in metal.
_SOFT_BOX_CENTER = np.array([-1.0, 4.5], np.float32)
_SOFT_BOX_HALF = np.array([3.0, 2.0], np.float32)
_SOFT_BOX_HEIGHT = 6.0
_FLOOR_GREY = 0.58


def _environment(points: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Brightness `[..., 1]` that metal at `points` `[..., 3]` reflects along unit `directions`.

    The surroundings are at a finite distance, so flat faces show gradients:
    below the horizon the floor, dark in the contact shadow near the object and
    lit in a band towards the light; above, a sky brightening upwards and a
    rectangular soft box hanging over the far side of the scene.
    """
    up = directions[..., 2:3]
    flat = directions[..., :2] / np.maximum(np.linalg.norm(directions[..., :2], axis=-1,
                                                           keepdims=True), 1e-6)
    toward_light = flat @ (_LIGHT[:2] / np.linalg.norm(_LIGHT[:2])).astype(np.float32)
    to_floor = points[..., 2:3] / np.maximum(-up, 1e-3)
    floor = (0.06 + 0.3 * _smoothstep(to_floor / 1.5)
             + 0.45 * _smoothstep((toward_light[..., None] - 0.8) / 0.2))
    to_box = (_SOFT_BOX_HEIGHT - points[..., 2:3]) / np.maximum(up, 1e-3)
    box_offset = np.abs(points[..., :2] + to_box * directions[..., :2] - _SOFT_BOX_CENTER)
    box = 0.9 * np.prod(_smoothstep((_SOFT_BOX_HALF - box_offset) / 0.6), -1, keepdims=True)
    return np.where(up > 0, 0.35 + 0.35 * up + box, floor)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, and a smooth cubic ramp between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class Renderer:
    """Renders frames of one resolution; the rays and the empty floor are computed once.

    An object whose shape, material, colour, centre and yaw are the same as in the
    previous frame reuses that frame's shadow and surface patches (exactly).

    Args:
      width, height: image size in pixels; width / height must equal `camera.aspect`.
      camera: the scene camera (default `Camera()`).
    """

    def __init__(self, width: int = 480, height: int = 320, camera: Camera | None = None):
        self.camera = camera or Camera()
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}.")
        if abs(width / height - self.camera.aspect) > 0.02:
            raise ValueError(f"image size {width}x{height} has aspect {width / height:.3f} but the "
                             f"camera was built for aspect {self.camera.aspect:.3f}.")
        self.width, self.height = width, height
        right, up, forward = self.camera.axes()
        focal = self.camera.focal * width
        xs = (np.arange(width) + 0.5 - width / 2) / focal
        ys = -(np.arange(height) + 0.5 - height / 2) / focal
        dirs = forward + xs[None, :, None] * right + ys[:, None, None] * up
        self.rays = (dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)).astype(np.float32)
        self.origin = np.asarray(self.camera.position, np.float32)
        t_floor = -self.origin[2] / np.minimum(self.rays[..., 2], -1e-6)
        self.floor_xy = (self.origin[:2] + t_floor[..., None] * self.rays[..., :2]).astype(np.float32)
        # Light pooled around the middle of the floor, fading with distance.
        spot = np.exp(-((self.floor_xy - np.array([-0.5, 0.5])) ** 2).sum(-1) / 60.0)
        floor = _FLOOR_GREY * (0.7 + 0.35 * spot)
        self.floor = np.repeat(floor[..., None], 3, -1).astype(np.float32)
        self._cache: dict[tuple, tuple] = {}  # The patches of the last frame's objects.

    def _bounding_box(self, corners: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel box (y0, y1, x0, x1) around world points `[k, 3]`; None when off-image."""
        u, v, depth = self.camera.project(corners)
        if np.any(depth <= 0.1):
            return None
        x0, x1 = int(np.floor(u.min() * self.width)) - 1, int(np.ceil(u.max() * self.width)) + 1
        y0, y1 = int(np.floor(v.min() * self.height)) - 1, int(np.ceil(v.max() * self.height)) + 1
        x0, x1 = max(x0, 0), min(x1, self.width)
        y0, y1 = max(y0, 0), min(y1, self.height)
        return None if x0 >= x1 or y0 >= y1 else (y0, y1, x0, x1)

    def _shadow(self, center: np.ndarray, shape: str) -> tuple[tuple[int, ...], np.ndarray] | None:
        """Box and floor attenuation `[h, w, 1]` of an object's soft shadow, cast away from the light."""
        size = HALF_SIZE[shape]
        cast = center[:2] - _LIGHT[:2] / _LIGHT[2] * center[2]
        box = self._bounding_box(np.array([[cast[0] + dx, cast[1] + dy, 0.0]
                                           for dx in (-2.2 * size, 2.2 * size)
                                           for dy in (-2.2 * size, 2.2 * size)]))
        if box is None:
            return None
        y0, y1, x0, x1 = box
        offset = self.floor_xy[y0:y1, x0:x1] - (cast + center[:2]) / 2
        along = _LIGHT[:2] / np.linalg.norm(_LIGHT[:2])
        a = (offset @ along) / (size * 1.6)
        b = (offset @ np.array([-along[1], along[0]])) / (size * 1.15)
        darkness = 0.45 * _smoothstep(1.25 - np.sqrt(a * a + b * b))
        return box, (1.0 - darkness)[..., None].astype(np.float32)

    def _surface(self, shape: str, material: str, color: str, center: np.ndarray,
                 yaw: float) -> tuple[tuple[int, ...], np.ndarray, np.ndarray] | None:
        """Box, ray distances `[h, w]` (inf off the object) and colours `[h, w, 3]` of one object."""
        size = HALF_SIZE[shape] * (1.42 if shape == "cube" else 1.0)
        x, y, z = center
        box = self._bounding_box(np.array([[x + dx, y + dy, z + dz] for dx in (-size, size)
                                           for dy in (-size, size) for dz in (-z, z)]))
        if box is None:
            return None
        y0, y1, x0, x1 = box
        rays = self.rays[y0:y1, x0:x1]
        t, normal = self._intersect(rays, center, shape, yaw)
        return box, t, self._shade(rays, t, normal, SURFACE_COLORS[color], material)

    def _intersect(self, rays: np.ndarray, center: np.ndarray, shape: str,
                   yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Ray hits of one object: distance `[h, w]` (inf on a miss) and unit normals `[h, w, 3]`."""
        size = HALF_SIZE[shape]
        rel = self.origin - center.astype(np.float32)
        if shape == "sphere":
            b = rays @ rel
            disc = b * b - (rel @ rel - size * size)
            t = -b - np.sqrt(np.maximum(disc, 0.0))
            hit = (disc >= 0) & (t > 0)
            normal = (rel + np.where(hit, t, 0.0)[..., None] * rays) / size
            return np.where(hit, t, np.inf), normal
        if shape == "cylinder":
            top = 2.0 * center[2]  # The cylinder stands on the floor.
            a = rays[..., 0] ** 2 + rays[..., 1] ** 2
            b = rays[..., 0] * rel[0] + rays[..., 1] * rel[1]
            disc = b * b - a * (rel[0] ** 2 + rel[1] ** 2 - size * size)
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
            z_side = self.origin[2] + t_side * rays[..., 2]
            t_side = np.where((disc >= 0) & (z_side >= 0) & (z_side <= top) & (t_side > 0),
                              t_side, np.inf)
            t_top = (top - self.origin[2]) / rays[..., 2]
            hit_top = rel[:2] + t_top[..., None] * rays[..., :2]
            t_top = np.where((hit_top ** 2).sum(-1) <= size * size, t_top, np.inf)
            on_top = t_top <= t_side
            side = rel + np.where(np.isfinite(t_side), t_side, 0.0)[..., None] * rays
            side[..., 2] = 0.0
            normal = np.where(on_top[..., None], np.array([0.0, 0.0, 1.0], np.float32), side / size)
            return np.minimum(t_top, t_side), normal
        # Cube: slabs in the cube's own frame (turned by yaw about the vertical axis).
        c, s = np.cos(yaw), np.sin(yaw)
        turn = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], np.float32)  # World -> cube.
        local_rays = rays @ turn.T
        local_rays = np.where(np.abs(local_rays) < 1e-9, 1e-9, local_rays)
        local_origin = turn @ rel
        near = (-np.sign(local_rays) * size - local_origin) / local_rays
        far = (np.sign(local_rays) * size - local_origin) / local_rays
        t_near, t_far = near.max(-1), far.min(-1)
        t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
        face = near.argmax(-1)
        local_normal = -np.sign(np.take_along_axis(local_rays, face[..., None], -1)) * (
            face[..., None] == np.arange(3))
        return t, local_normal.astype(np.float32) @ turn

    def _shade(self, rays: np.ndarray, distance: np.ndarray, normal: np.ndarray,
               color: np.ndarray, material: str) -> np.ndarray:
        """RGB `[h, w, 3]` of the surface points at `distance` `[h, w]` along `rays` with `normal`s."""
        light = _LIGHT.astype(np.float32)
        diffuse = np.maximum(normal @ light, 0.0)[..., None]
        halfway = light - rays
        halfway /= np.linalg.norm(halfway, axis=-1, keepdims=True)
        facing = np.clip((normal * halfway).sum(-1), 0.0, 1.0)[..., None]
        if material == "rubber":  # Soft light from all around: gentle shading.
            return color * (0.45 + 0.1 * normal[..., 2:3] + 0.5 * diffuse) + 0.04 * facing ** 6
        reflected = rays - 2.0 * (rays * normal).sum(-1, keepdims=True) * normal
        points = self.origin + np.where(np.isfinite(distance), distance, 0.0)[..., None] * rays
        return (color * (0.04 + 0.2 * diffuse) + _environment(points, reflected) * (0.85 * color + 0.15)
                + 1.3 * facing ** 60)

    def render(self, shapes: Sequence[str], materials: Sequence[str], colors: Sequence[str],
               centers: np.ndarray, yaws: np.ndarray,
               labels: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Renders one frame.

        Args:
          shapes, materials, colors: per object attribute values, `n` each.
          centers: `[n, 3]` world centres of the objects.
          yaws: `[n]` rotations about the vertical axis (used by cubes).
          labels: `[n]` mask values of the objects in 1..255 (default 1..n).

        Returns:
          image uint8 `[height, width, 3]` and mask uint8 `[height, width]` holding
          each visible object's label and 0 on the floor.
        """
        labels = list(range(1, len(shapes) + 1)) if labels is None else list(labels)
        if len(labels) != len(shapes) or not all(0 < v < 256 for v in labels):
            raise ValueError(f"labels must be {len(shapes)} values in 1..255, got {labels}.")
        image = self.floor.copy()
        depth = np.full((self.height, self.width), np.inf, np.float32)
        mask = np.zeros((self.height, self.width), np.uint8)
        centers = np.asarray(centers, np.float64)
        previous, self._cache = self._cache, {}
        patches = []
        for k, (shape, material, color) in enumerate(zip(shapes, materials, colors)):
            if shape not in HALF_SIZE or material not in MATERIALS or (
                    color not in SURFACE_COLORS):
                raise ValueError(f"object {k}: unknown shape / material / colour "
                                 f"{shape!r} / {material!r} / {color!r}.")
            # An object that has not moved since the last frame reuses its patches.
            key = (shape, material, color, tuple(centers[k]), float(yaws[k]))
            patch = self._cache.get(key) or previous.get(key) or (
                self._shadow(centers[k], shape),
                self._surface(shape, material, color, centers[k], float(yaws[k])))
            self._cache[key] = patch
            patches.append(patch)
        for shadow, _ in patches:
            if shadow is not None:
                (y0, y1, x0, x1), attenuation = shadow
                image[y0:y1, x0:x1] *= attenuation
        for label, (_, surface) in zip(labels, patches):
            if surface is None:
                continue
            (y0, y1, x0, x1), t, shaded = surface
            nearer = t < depth[y0:y1, x0:x1]
            image[y0:y1, x0:x1] = np.where(nearer[..., None], shaded, image[y0:y1, x0:x1])
            depth[y0:y1, x0:x1] = np.where(nearer, t, depth[y0:y1, x0:x1])
            mask[y0:y1, x0:x1] = np.where(nearer, label, mask[y0:y1, x0:x1])
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mask


def render_video(annotation: dict[str, Any], width: int = 480, height: int = 320,
                 camera: Camera | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Renders every frame of a CLEVRER annotation (official schema).

    Returns:
      frames uint8 `[T, height, width, 3]` and masks uint8 `[T, height, width]`
      with 0 for the background and object_id + 1 for each object.
    """
    renderer = Renderer(width, height, camera)
    properties = {p["object_id"]: p for p in annotation["object_property"]}
    trajectory = annotation["motion_trajectory"]
    frames = np.empty((len(trajectory), height, width, 3), np.uint8)
    masks = np.empty((len(trajectory), height, width), np.uint8)
    for f, record in enumerate(trajectory):
        objects = record["objects"]
        try:
            props = [properties[o["object_id"]] for o in objects]
        except KeyError as e:
            raise ValueError(f"scene {annotation.get('scene_index')}: frame {record.get('frame_id')} "
                             f"names object_id {e.args[0]} missing from object_property.") from None
        centers = np.array([o["location"] for o in objects], np.float64).reshape(-1, 3)
        quats = np.array([o["orientation"] for o in objects], np.float64).reshape(-1, 4)
        yaws = 2.0 * np.arctan2(quats[:, 2], quats[:, 3])
        frames[f], masks[f] = renderer.render(
            [p["shape"] for p in props], [p["material"] for p in props],
            [p["color"] for p in props], centers, yaws, [o["object_id"] + 1 for o in objects])
    return frames, masks

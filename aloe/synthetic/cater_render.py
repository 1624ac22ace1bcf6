"""Cameras and a vectorised numpy ray caster for mini-CATER scenes.

Each object is ray cast analytically (sphere, yawed cube, vertical cylinder,
vertical cone) only inside its projected bounding box, for all frames of a
chunk at once; a depth buffer composites the objects over a lit floor. Covered
objects are not drawn. Shading is Lambert plus a Blinn-Phong highlight (strong
and tight for metal, faint for rubber) from a fixed key light.

Camera convention: rows of the rotation are the camera's right, down and forward
axes in world coordinates; pixel `(row, col)` covers `[col, col + 1) x [row,
row + 1)` and its ray passes through its centre.
"""

import dataclasses

import numpy as np

from aloe.synthetic.cater_scene import COLORS, GRID_HALF_EXTENT, CaterObject, CaterScene

HORIZONTAL_FOV_DEGREES = 49.13  # Blender's default 35 mm lens on a 32 mm sensor.
STATIC_CAMERA_POSITION = (7.2, -6.6, 5.6)
CAMERA_JITTER = 0.5
CAMERA_KEYFRAME_INTERVAL = 30
_LIGHT_DIRECTION = np.array([0.35, -0.55, 1.0]) / np.linalg.norm([0.35, -0.55, 1.0])
_FLOOR_RGB = np.array([150.0, 150.0, 146.0], np.float32)
_FLOOR_LIGHT_XY = (1.5, -1.5)  # The floor is brightest here.
_SKY_LEVEL = 0.4  # Brightness above the horizon, relative to the floor colour.
_TALLEST_RESTING = 1.5  # A large cone's apex (lifted objects may leave the view).


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """A pinhole camera per frame, always aimed at `look_at`.

    Attributes:
      positions: float `[frames, 3]` camera centres in world coordinates.
      look_at: float `[3]` the point the optical axis goes through.
      horizontal_fov_degrees: horizontal field of view.
    """
    positions: np.ndarray
    look_at: np.ndarray
    horizontal_fov_degrees: float = HORIZONTAL_FOV_DEGREES

    def rotations(self) -> np.ndarray:
        """Float `[frames, 3, 3]` world-to-camera rotations (rows: right, down, forward)."""
        forward = self.look_at[None] - self.positions
        forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
        right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
        right /= np.linalg.norm(right, axis=-1, keepdims=True)
        down = np.cross(forward, right)
        return np.stack([right, down, forward], axis=1)

    def focal_length(self, width: int) -> float:
        """Focal length in pixels for an image `width` pixels wide."""
        return (width / 2.0) / np.tan(np.radians(self.horizontal_fov_degrees) / 2.0)

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """Projects world points `[frames, points, 3]` to `[frames, points, 3]` (u, v, depth)."""
        cam = np.einsum("tij,tpj->tpi", self.rotations(), points - self.positions[:, None])
        f = self.focal_length(width)
        u = f * cam[..., 0] / cam[..., 2] + width / 2.0
        v = f * cam[..., 1] / cam[..., 2] + height / 2.0
        return np.stack([u, v, cam[..., 2]], axis=-1)


def _grid_in_view(camera: CameraPath, width: int, height: int) -> bool:
    """Whether the grid and resting objects on it project inside the image in every frame."""
    e = GRID_HALF_EXTENT
    corners = np.array([[x, y, z] for x in (-e, e) for y in (-e, e) for z in (0.0, _TALLEST_RESTING)])
    uvd = camera.project(np.broadcast_to(corners, (len(camera.positions),) + corners.shape),
                         width, height)
    return bool(np.all(uvd[..., 2] > 0.5) and np.all(uvd[..., 0] >= 0)
                and np.all(uvd[..., 0] <= width) and np.all(uvd[..., 1] >= 0)
                and np.all(uvd[..., 1] <= height))


def static_camera(rng: np.random.Generator, num_frames: int) -> CameraPath:
    """CATER's oblique camera with a uniform +-0.5 jitter on each coordinate."""
    position = np.array(STATIC_CAMERA_POSITION) + rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, 3)
    return CameraPath(np.repeat(position[None], num_frames, axis=0), np.zeros(3))


def orbiting_camera(rng: np.random.Generator, num_frames: int, width: int = 320,
                    height: int = 240) -> CameraPath:
    """A camera that starts at the static pose and glides between keyframes.

    Every `CAMERA_KEYFRAME_INTERVAL` frames a new pose is drawn (azimuth turned
    by 15-45 degrees either way, new height and distance); poses in between
    ease in and out (cosine), so the motion is smooth and stops at keyframes.
    Paths that would push part of the grid out of the image are redrawn.
    """
    start = static_camera(rng, 1).positions[0]
    keys = np.arange(0, num_frames - 1 + CAMERA_KEYFRAME_INTERVAL, CAMERA_KEYFRAME_INTERVAL)
    keys[-1] = min(keys[-1], num_frames - 1)
    frames = np.arange(num_frames)
    for _ in range(100):
        azimuth = [np.arctan2(start[1], start[0])]
        radius, elevation = [np.hypot(start[0], start[1])], [start[2]]
        for _ in keys[1:]:
            turn = np.radians(rng.uniform(15, 45)) * rng.choice([-1.0, 1.0])
            azimuth.append(azimuth[-1] + turn)
            radius.append(rng.uniform(8.5, 11.0))
            elevation.append(rng.uniform(4.5, 9.0))
        segment = np.minimum(np.searchsorted(keys, frames, side="right") - 1, len(keys) - 2)
        w = (frames - keys[segment]) / (keys[segment + 1] - keys[segment])
        w = 0.5 - 0.5 * np.cos(np.pi * np.clip(w, 0.0, 1.0))

        def ease(values: list[float]) -> np.ndarray:
            values = np.asarray(values)
            return (1 - w) * values[segment] + w * values[segment + 1]

        a, r = ease(azimuth), ease(radius)
        positions = np.stack([r * np.cos(a), r * np.sin(a), ease(elevation)], axis=-1)
        camera = CameraPath(positions, np.zeros(3))
        if _grid_in_view(camera, width, height):
            return camera
    raise RuntimeError("could not draw a camera path that keeps the grid in view.")


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis."""
    return np.einsum("...i,...i->...", a, b)


def _unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to unit length along the last axis."""
    return v / np.maximum(np.sqrt(_dot(v, v)), 1e-9)[..., None]


def _yaw_rotate(v: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotates `[..., 3]` vectors about the vertical axis by the angle of (cos, sin)."""
    return np.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1],
                     v[..., 2]], -1)


def _hit_distance(shape: str, oc: np.ndarray, rays: tuple[np.ndarray, np.ndarray, np.ndarray],
                  radius: float, half_height: float, yaw: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit on one object, inf where the ray misses.

    Args:
      shape: "sphere", "spl", "cube", "cylinder" or "cone".
      oc: float `[frames, 3]` camera centre minus the object's centre.
      rays: world x, y and z components of the ray directions, each float
        `[frames, rows, cols]`.
      radius, half_height: footprint radius and half height of the shape
        (a cube's half side is its half height).
      yaw: float `[frames]` rotation about the vertical axis (used by cubes).

    Returns:
      float `[frames, rows, cols]`.
    """
    inf = np.float32(np.inf)
    ox, oy, oz = (oc[:, k, None, None] for k in range(3))
    dx, dy, dz = rays
    if shape in ("sphere", "spl"):
        b = ox * dx + oy * dy + oz * dz
        a = dx * dx + dy * dy + dz * dz
        disc = b * b - a * (ox * ox + oy * oy + oz * oz - radius ** 2)
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc >= 0) & (t > 0), t, inf)
    if shape == "cube":  # Slabs of the box in its own (yawed) frame.
        cos, sin = np.cos(yaw)[:, None, None], np.sin(yaw)[:, None, None]
        t_in, t_out = None, None
        for o, d in ((cos * ox + sin * oy, cos * dx + sin * dy),
                     (cos * oy - sin * ox, cos * dy - sin * dx), (oz, dz)):
            inv = 1.0 / np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)
            t1, t2 = (-half_height - o) * inv, (half_height - o) * inv
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t_in = near if t_in is None else np.maximum(t_in, near)
            t_out = far if t_out is None else np.minimum(t_out, far)
        return np.where((t_out >= t_in) & (t_in > 0), t_in, inf)
    if shape == "cylinder":  # Vertical side x^2 + y^2 = r^2, then the top disc.
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        c = ox * ox + oy * oy - radius ** 2
    else:  # Cone side x^2 + y^2 = k^2 (top - z)^2, apex at the top.
        k2 = (radius / (2 * half_height)) ** 2
        h = half_height - oz
        a = dx * dx + dy * dy - k2 * dz * dz
        b = 2 * (ox * dx + oy * dy + k2 * h * dz)
        c = ox * ox + oy * oy - k2 * h * h
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0))
    inv_2a = 0.5 / np.where(np.abs(a) < 1e-12, np.float32(1e-12), a)
    best = np.full(disc.shape, inf, dtype=np.float32)
    for sign in (1.0, -1.0):
        t = (-b + sign * root) * inv_2a
        z = oz + t * dz
        best = np.where((disc >= 0) & (t > 0) & (np.abs(z) <= half_height) & (t < best), t, best)
    if shape == "cylinder":
        t_cap = (half_height - oz) / np.where(np.abs(dz) < 1e-9, np.float32(-1e-9), dz)
        px, py = ox + t_cap * dx, oy + t_cap * dy
        best = np.where((t_cap > 0) & (px * px + py * py <= radius ** 2) & (t_cap < best), t_cap, best)
    return best


def _surface_normal(shape: str, p: np.ndarray, radius: float, half_height: float,
                    yaw: np.ndarray) -> np.ndarray:
    """Unit outward normals `[n, 3]` at surface points `p` `[n, 3]` relative to the centre."""
    if shape in ("sphere", "spl"):
        return _unit(p)
    if shape == "cube":
        cos, sin = np.cos(yaw), np.sin(yaw)
        local = _yaw_rotate(p, cos, -sin)
        axis = np.argmax(np.abs(local), -1)
        n = np.sign(np.take_along_axis(local, axis[:, None], -1)) * (np.arange(3) == axis[:, None])
        return _yaw_rotate(n, cos, sin)
    if shape == "cylinder":
        side = np.stack([p[:, 0], p[:, 1], np.zeros(len(p))], -1)
        on_top = p[:, 2] >= half_height - 1e-3
        return np.where(on_top[:, None], np.array([0.0, 0.0, 1.0]), _unit(side))
    k2 = (radius / (2 * half_height)) ** 2
    return _unit(np.stack([p[:, 0], p[:, 1], k2 * (half_height - p[:, 2])], -1))


def _shade(albedo: np.ndarray, metal: bool, normal: np.ndarray, d: np.ndarray) -> np.ndarray:
    """RGB in 0..255, `[n, 3]`, for unit normals `[n, 3]` seen along rays `d` `[n, 3]`."""
    diffuse = np.clip(normal @ _LIGHT_DIRECTION, 0.0, 1.0)[:, None]
    half = _unit(_LIGHT_DIRECTION - _unit(d))
    facing = np.clip(_dot(normal, half), 0.0, 1.0)[:, None]
    if metal:
        rgb = albedo * (0.22 + 0.7 * diffuse) + 255.0 * 0.8 * facing ** 60
    else:
        rgb = albedo * (0.3 + 0.7 * diffuse) + 255.0 * 0.06 * facing ** 6
    return np.clip(rgb, 0, 255)


def _upsample(values: np.ndarray, axis: int, size: int, step: int) -> np.ndarray:
    """Linear interpolation along `axis` from samples every `step` pixels to `size` pixels."""
    fine = np.arange(size)
    left, frac = fine // step, (fine % step / step).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = size
    frac = frac.reshape(shape)
    return (np.take(values, left, axis=axis) * (1 - frac)
            + np.take(values, left + 1, axis=axis) * frac)


def _floor(camera: CameraPath, frames: np.ndarray, width: int, height: int,
           step: int = 4) -> np.ndarray:
    """Uint8 `[len(frames), height, width, 3]` lit floor (and dark sky above the horizon).

    The brightness is smooth, so it is computed every `step` pixels and
    interpolated linearly in between.
    """
    rot = camera.rotations()[frames].astype(np.float32)
    f = camera.focal_length(width)
    xs = ((np.arange(width // step + 2) * step + 0.5 - width / 2.0) / f).astype(np.float32)
    ys = ((np.arange(height // step + 2) * step + 0.5 - height / 2.0) / f).astype(np.float32)
    xs, ys = xs[None, None, :], ys[None, :, None]

    def ray_component(k: int) -> np.ndarray:  # World axis k of each sampled ray, [frames, h, w].
        return rot[:, 0, k, None, None] * xs + rot[:, 1, k, None, None] * ys + rot[:, 2, k, None, None]

    origin = camera.positions[frames].astype(np.float32)[:, :, None, None]
    dz = ray_component(2)
    ground = dz < -1e-6
    t = -origin[:, 2] / np.where(ground, dz, np.float32(-1e-6))
    dx = origin[:, 0] + t * ray_component(0) - _FLOOR_LIGHT_XY[0]
    dy = origin[:, 1] + t * ray_component(1) - _FLOOR_LIGHT_XY[1]
    lit = 0.65 + 0.35 / (1.0 + (dx * dx + dy * dy) * np.float32(1 / 30.0))
    level = np.where(ground, lit, _SKY_LEVEL)
    level = _upsample(_upsample(level, 2, width, step), 1, height, step)
    palette = np.clip(np.arange(256)[:, None] / 255.0 * _FLOOR_RGB, 0, 255).astype(np.uint8)
    return palette[np.clip(level * 255.0, 0, 255).astype(np.uint8)]


def render_extent(obj: CaterObject) -> tuple[float, float]:
    """(footprint radius, half height) of the drawn shape of a `CaterObject`."""
    if obj.shape == "spl":
        return obj.half_height, obj.half_height
    return obj.sized, obj.half_height


def _object_boxes(scene: CaterScene, camera: CameraPath, width: int,
                  height: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per object: pixel corners (lo, hi), each int `[frames, 2]` (col, row), of a box covering it."""
    boxes = []
    for i, obj in enumerate(scene.objects):
        r, hh = render_extent(obj)
        corners = np.array([[x, y, z] for x in (-r, r) for y in (-r, r) for z in (-hh, hh)])
        uv = camera.project(scene.locations[i][:, None] + corners[None], width, height)[..., :2]
        lo = np.maximum(np.floor(uv.min(1)).astype(np.int64) - 1, -1)
        hi = np.minimum(np.ceil(uv.max(1)).astype(np.int64) + 1, [width, height])
        boxes.append((lo, np.maximum(hi, lo + 1)))
    return boxes


def render_scene(scene: CaterScene, camera: CameraPath, width: int, height: int,
                 with_object_ids: bool = False,
                 chunk_frames: int = 50) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Renders every frame of a scene.

    Args:
      scene: the simulated scene; covered objects are not drawn.
      camera: one pose per frame of the scene.
      width, height: image size in pixels.
      with_object_ids: also return which object each pixel shows.
      chunk_frames: frames composited at once (bounds memory).

    Returns:
      uint8 frames `[frames, height, width, 3]`; with `with_object_ids`, also
      int8 `[frames, height, width]` object indices (-1: floor).
    """
    num_frames = scene.locations.shape[1]
    if camera.positions.shape != (num_frames, 3):
        raise ValueError(f"camera has {camera.positions.shape[0]} poses for {num_frames} frames.")
    rot = camera.rotations().astype(np.float32)
    f = camera.focal_length(width)
    static = bool(np.all(camera.positions == camera.positions[:1]))
    frames_out = np.empty((num_frames, height, width, 3), np.uint8)
    ids_out = np.full((num_frames, height, width), -1, np.int8) if with_object_ids else None
    boxes = _object_boxes(scene, camera, width, height)
    hidden = scene.hidden
    floor = _floor(camera, np.arange(1), width, height) if static else None
    for c0 in range(0, num_frames, chunk_frames):
        chunk = np.arange(c0, min(c0 + chunk_frames, num_frames))
        colour = (np.repeat(floor, len(chunk), 0) if static
                  else _floor(camera, chunk, width, height)).reshape(-1, 3)
        depth = np.full(len(chunk) * height * width, np.inf, np.float32)
        ids = np.full(len(chunk) * height * width, -1, np.int8)
        for i, obj in enumerate(scene.objects):
            (lo, hi), (r, hh) = boxes[i], render_extent(obj)
            sel = chunk[~hidden[i, chunk]]
            if len(sel) == 0:
                continue
            wb, hb = (hi[sel] - lo[sel]).max(0)
            cols = lo[sel, 0][:, None] + np.arange(wb)[None]
            rows = lo[sel, 1][:, None] + np.arange(hb)[None]
            xs = ((cols + 0.5 - width / 2.0) / f).astype(np.float32)
            ys = ((rows + 0.5 - height / 2.0) / f).astype(np.float32)
            rs = rot[sel][:, :, :, None, None]  # [frames, 3, 3, 1, 1]
            rays = tuple(rs[:, 0, k] * xs[:, None, :] + rs[:, 1, k] * ys[:, :, None] + rs[:, 2, k]
                         for k in range(3))
            oc = (camera.positions[sel] - scene.locations[i, sel]).astype(np.float32)
            t = _hit_distance(obj.shape, oc, rays, r, hh, scene.yaw[i, sel].astype(np.float32))
            ti, ri, ci = np.nonzero(np.isfinite(t))
            row, col = rows[ti, ri], cols[ti, ci]
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            ti, ri, ci, row, col = ti[inside], ri[inside], ci[inside], row[inside], col[inside]
            flat = ((sel[ti] - c0) * height + row) * width + col
            t_hit = t[ti, ri, ci]
            nearer = t_hit < depth[flat]
            ti, ri, ci, flat, t_hit = ti[nearer], ri[nearer], ci[nearer], flat[nearer], t_hit[nearer]
            depth[flat] = t_hit
            rays = np.stack([component[ti, ri, ci] for component in rays], -1)
            normal = _surface_normal(obj.shape, oc[ti] + t_hit[:, None] * rays, r, hh,
                                     scene.yaw[i, sel[ti]])
            albedo = np.array(COLORS[obj.color], np.float32)
            colour[flat] = _shade(albedo, obj.material == "metal", normal, rays).astype(np.uint8)
            ids[flat] = i
        frames_out[chunk] = colour.reshape(len(chunk), height, width, 3)
        if ids_out is not None:
            ids_out[chunk] = ids.reshape(len(chunk), height, width)
    return (frames_out, ids_out) if with_object_ids else frames_out

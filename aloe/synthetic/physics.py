"""Planar physics of CLEVRER-like objects and the scene description it produces.

Objects (spheres, cubes, cylinders of rubber or metal in eight colours) slide on
the floor plane `z = 0`. Some rest inside the camera view from the start, some
start inside it already moving, the others wait outside the view and are pushed
in at chosen frames. They slow down under sliding friction, collide as discs
(impulse along the line of centres; mass from material and shape, restitution
from material: metal is bouncier than rubber) and leave the view. The simulation
is deterministic: the same scenario always yields bit-identical trajectories,
and an object that is never touched by another moves exactly as it would alone,
which makes counterfactual worlds (the same start without one object) differ
from the factual world only downstream of that object's collisions.

World units: lengths in floor units (objects are about 0.8 across), velocities in
units per second, `fps` frames per second. The objects' sizes and the fixed
camera that decides what is "inside the camera view" come from
`aloe.synthetic.render`, so what is simulated is what is drawn.
"""

import dataclasses
from typing import Any, Sequence

import numpy as np

# Re-exported: the attribute values, object sizes and camera shared with the renderer.
from aloe.synthetic.render import CENTER_HEIGHT, COLORS, HALF_SIZE, MATERIALS, SHAPES, Camera  # noqa: F401

# Radius of the disc that stands for each shape in collisions.
COLLISION_RADIUS = {"sphere": 0.4, "cube": 0.43, "cylinder": 0.38}
DENSITY = {"metal": 2.5, "rubber": 1.0}
RESTITUTION = {"metal": 0.92, "rubber": 0.6}
_VOLUME = {"sphere": 4.0 / 3.0 * np.pi * 0.4**3, "cube": 0.72**3, "cylinder": np.pi * 0.38**2 * 0.8}


@dataclasses.dataclass(frozen=True)
class PhysicsConfig:
    """Simulation and scenario settings.

    Attributes:
      fps: frames per second of the video.
      substeps: integration steps per frame.
      num_visible_frames: frames shown in the video (CLEVRER: 128).
      num_frames: frames simulated in all (the rest is the unseen future).
      friction: sliding deceleration in units / s^2 (0 disables friction).
      spin_gain: spin given to cubes and cylinders per unit of tangential impact speed.
      spin_friction: angular deceleration in rad / s^2.
      min_objects, max_objects: the number of objects per scene.
      last_launch_frame: the latest frame at which an object is pushed.
      merge_frames: a repeated contact of the same pair within this many frames
        of its last recorded collision is not recorded again.
      max_attempts: scenarios tried before the best one so far is taken.
    """
    fps: int = 25
    substeps: int = 8
    num_visible_frames: int = 128
    num_frames: int = 160
    friction: float = 0.25
    spin_gain: float = 1.5
    spin_friction: float = 2.0
    min_objects: int = 3
    max_objects: int = 6
    last_launch_frame: int = 115
    merge_frames: int = 8
    max_attempts: int = 60


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """One object of a scenario: its properties and how it is set in motion.

    Attributes:
      object_id: the object's id in the annotation.
      color, material, shape: CLEVRER attribute values.
      start: initial floor position `(x, y)`.
      launch_frame: the frame at which `launch_velocity` is added to its velocity.
      launch_velocity: `(vx, vy)` in units per second; zero for resting objects.
    """
    object_id: int
    color: str
    material: str
    shape: str
    start: tuple[float, float]
    launch_frame: int = 0
    launch_velocity: tuple[float, float] = (0.0, 0.0)

    @property
    def mass(self) -> float:
        """Density of the material times the volume of the shape."""
        return DENSITY[self.material] * _VOLUME[self.shape]


@dataclasses.dataclass
class Trajectories:
    """The simulated motion of a set of objects.

    Attributes:
      object_ids: `[n]` ids of the simulated objects.
      positions: `[frames, n, 2]` floor positions.
      velocities: `[frames, n, 2]` in units per second.
      yaw: `[frames, n]` rotation about the vertical axis (cubes and cylinders).
      spin: `[frames, n]` angular velocity about the vertical axis.
      collisions: `(object_id_a, object_id_b, frame_id, (x, y))` with a < b, in
        time order; `frame_id` is the first frame showing the state after contact.
      contacts: every `(object_id_a, object_id_b, frame_id)` at which the pair
        touched (collisions, repeated and lasting contacts): the only way one
        object's motion affects another's.
    """
    object_ids: list[int]
    positions: np.ndarray
    velocities: np.ndarray
    yaw: np.ndarray
    spin: np.ndarray
    collisions: list[tuple[int, int, int, tuple[float, float]]]
    contacts: list[tuple[int, int, int]]


def simulate(specs: Sequence[ObjectSpec], config: PhysicsConfig = PhysicsConfig()) -> Trajectories:
    """Integrates the motion of `specs` over `config.num_frames` frames."""
    n, num_frames = len(specs), config.num_frames
    ids = [s.object_id for s in specs]
    pos = np.array([s.start for s in specs], np.float64).reshape(n, 2)
    vel = np.zeros((n, 2))
    yaw, spin = np.zeros(n), np.zeros(n)
    radius = np.array([COLLISION_RADIUS[s.shape] for s in specs])
    mass = np.array([s.mass for s in specs])
    bounce = np.array([RESTITUTION[s.material] for s in specs])
    spins = np.array([s.shape != "sphere" for s in specs])
    launches: dict[int, list[int]] = {}
    for i, s in enumerate(specs):
        if any(s.launch_velocity):
            launches.setdefault(s.launch_frame, []).append(i)
    first, second = np.triu_indices(n, 1)
    reach = radius[first] + radius[second]
    touching = np.zeros(len(first), bool)
    last_recorded = np.full(len(first), -10**9)
    out_pos, out_vel = np.empty((num_frames, n, 2)), np.empty((num_frames, n, 2))
    out_yaw, out_spin = np.empty((num_frames, n)), np.empty((num_frames, n))
    collisions, contacts = [], set()
    h = 1.0 / (config.fps * config.substeps)
    for frame in range(num_frames):
        for i in launches.get(frame, ()):
            vel[i] += specs[i].launch_velocity
        out_pos[frame], out_vel[frame], out_yaw[frame], out_spin[frame] = pos, vel, yaw, spin
        if frame == num_frames - 1:
            break
        # Without contacts speeds only fall, so pairs farther apart than they can travel
        # in one frame cannot touch during it; then contact detection is skipped.
        speed = np.sqrt((vel**2).sum(-1))
        gap = np.sqrt(((pos[second] - pos[first])**2).sum(-1)) - reach
        may_touch = bool(np.any(gap <= (speed[first] + speed[second]) / config.fps + 1e-6))
        for _ in range(config.substeps):
            pos += vel * h
            yaw += spin * h
            speed = np.sqrt((vel**2).sum(-1))
            vel *= np.maximum(0.0, 1.0 - config.friction * h / np.maximum(speed, 1e-12))[:, None]
            spin *= np.maximum(0.0, 1.0 - config.spin_friction * h / np.maximum(np.abs(spin), 1e-12))
            if not may_touch:
                touching[:] = False
                continue
            delta = pos[second] - pos[first]
            close = (delta**2).sum(-1) < reach**2
            for p in np.flatnonzero(close):
                i, j = first[p], second[p]
                touched, collided = _resolve_contact(i, j, pos, vel, spin, radius, mass, bounce,
                                                     spins, config)
                if touched:
                    contacts.add((ids[i], ids[j], frame + 1))
                if collided:
                    if not touching[p] and frame + 1 - last_recorded[p] > config.merge_frames:
                        normal = (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])
                        where = pos[i] + normal * radius[i]
                        collisions.append((ids[i], ids[j], frame + 1, (float(where[0]), float(where[1]))))
                        last_recorded[p] = frame + 1
            touching = close
    return Trajectories(ids, out_pos, out_vel, out_yaw, out_spin, collisions,
                        sorted(contacts, key=lambda c: (c[2], c[0], c[1])))


def _resolve_contact(i, j, pos, vel, spin, radius, mass, bounce, spins,
                     config) -> tuple[bool, bool]:
    """Separates an overlapping pair and, if approaching, exchanges an impulse (in place).

    Returns (whether they overlapped, whether they were approaching: a collision).
    """
    delta = pos[j] - pos[i]
    dist = float(np.sqrt(delta @ delta))
    normal = delta / dist if dist > 1e-9 else np.array([1.0, 0.0])
    inv_i, inv_j = 1.0 / mass[i], 1.0 / mass[j]
    depth = radius[i] + radius[j] - dist
    if depth <= 0:
        return False, False
    # Mass-weighted separation leaves the centre of mass where it was.
    pos[i] -= normal * depth * inv_i / (inv_i + inv_j)
    pos[j] += normal * depth * inv_j / (inv_i + inv_j)
    rel = vel[j] - vel[i]
    approach = float(rel @ normal)
    if approach >= 0:
        return True, False
    restitution = np.sqrt(bounce[i] * bounce[j])
    impulse = -(1.0 + restitution) * approach / (inv_i + inv_j)
    vel[i] -= impulse * inv_i * normal
    vel[j] += impulse * inv_j * normal
    tangential = rel - approach * normal
    twist = config.spin_gain * (normal[0] * tangential[1] - normal[1] * tangential[0])
    spin[i] += twist * spins[i]
    spin[j] += twist * spins[j]
    return True, True


def orientations(specs: Sequence[ObjectSpec], traj: Trajectories) -> tuple[np.ndarray, np.ndarray]:
    """Quaternions `[frames, n, 4]` (x, y, z, w) and angular velocities `[frames, n, 3]`.

    Spheres roll without slipping; cubes and cylinders turn about the vertical axis.
    """
    num_frames, n = traj.yaw.shape
    quat = np.zeros((num_frames, n, 4))
    quat[..., 2], quat[..., 3] = np.sin(traj.yaw / 2), np.cos(traj.yaw / 2)
    omega = np.zeros((num_frames, n, 3))
    omega[..., 2] = traj.spin
    for k, spec in enumerate(specs):
        if spec.shape != "sphere":
            continue
        r = HALF_SIZE["sphere"]
        omega[:, k, 0], omega[:, k, 1], omega[:, k, 2] = (
            -traj.velocities[:, k, 1] / r, traj.velocities[:, k, 0] / r, 0.0)
        q = np.array([0.0, 0.0, 0.0, 1.0])
        quat[0, k] = q
        for f in range(1, num_frames):
            step = traj.positions[f, k] - traj.positions[f - 1, k]
            length = float(np.hypot(*step))
            if length > 1e-12:
                axis = np.array([-step[1], step[0], 0.0]) / length
                half = 0.5 * length / r
                q = _quat_multiply(np.append(axis * np.sin(half), np.cos(half)), q)
            quat[f, k] = q
    return quat, omega


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (x, y, z, w) quaternions `[4]`."""
    (ax, ay, az, aw), (bx, by, bz, bw) = a, b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def object_centers(specs: Sequence[ObjectSpec], positions: np.ndarray) -> np.ndarray:
    """World centres `[frames, n, 3]` of objects at floor positions `[frames, n, 2]`."""
    height = np.array([CENTER_HEIGHT[s.shape] for s in specs])
    return np.concatenate([positions, np.broadcast_to(height, positions.shape[:-1])[..., None]], -1)


def trajectory_records(specs: Sequence[ObjectSpec], traj: Trajectories, camera: Camera,
                       frames: range, decimals: int = 3) -> list[dict[str, Any]]:
    """The `motion_trajectory` entries (official CLEVRER schema) of `frames`."""
    centers = np.round(object_centers(specs, traj.positions), decimals) + 0.0  # No -0.0.
    visible = camera.in_view(centers)
    quat, omega = orientations(specs, traj)
    quat, omega = np.round(quat, decimals) + 0.0, np.round(omega, decimals) + 0.0
    vel = np.round(traj.velocities, decimals) + 0.0
    records = []
    for f in frames:
        objects = [{"object_id": oid, "location": centers[f, k].tolist(),
                    "orientation": quat[f, k].tolist(),
                    "velocity": [float(vel[f, k, 0]), float(vel[f, k, 1]), 0.0],
                    "angular_velocity": omega[f, k].tolist(),
                    "inside_camera_view": bool(visible[f, k])}
                   for k, oid in enumerate(traj.object_ids)]
        records.append({"frame_id": f, "objects": objects})
    return records


def collision_records(specs: Sequence[ObjectSpec], traj: Trajectories, frames: range,
                      decimals: int = 3) -> list[dict[str, Any]]:
    """The `collision` entries (official CLEVRER schema) whose frame lies in `frames`."""
    height = {s.object_id: CENTER_HEIGHT[s.shape] for s in specs}
    return [{"object_ids": [a, b], "frame_id": f,
             "location": [round(x, decimals), round(y, decimals),
                          round((height[a] + height[b]) / 2, decimals)]}
            for a, b, f, (x, y) in traj.collisions if f in frames]


# Scenarios: who rests, who is pushed in, when and where.


def _free_spot(rng: np.random.Generator, camera: Camera, taken: list[np.ndarray],
               min_gap: float) -> np.ndarray:
    """A floor point well inside the view, at least `min_gap` from every point in `taken`."""
    for _ in range(200):
        xy = camera.floor_point(*rng.uniform([0.1, 0.12], [0.9, 0.9]))
        if camera.in_view(np.append(xy, 0.4), margin=0.08) and all(
                np.hypot(*(xy - t)) >= min_gap for t in taken):
            return xy
    raise RuntimeError("no free spot in view: too many objects for the floor area.")


def _hidden_distance(camera: Camera, target: np.ndarray, direction: np.ndarray) -> float:
    """Distance from `target` backwards along `-direction` to where no part of an object shows."""
    steps = np.arange(0.0, 25.0, 0.05)
    corners = np.array([[dx, dy, dz] for dx in (-0.6, 0.6) for dy in (-0.6, 0.6) for dz in (0, 0.9)])
    points = np.concatenate([target[None] - steps[:, None] * direction[None],
                             np.zeros((len(steps), 1))], -1)
    shown = camera.in_view(points[:, None] + corners[None]).any(-1)
    hidden = np.flatnonzero(~shown & (steps > 0.5))
    return float(steps[hidden[0]]) if len(hidden) else 25.0


def sample_scenario(rng: np.random.Generator, num_objects: int,
                    config: PhysicsConfig = PhysicsConfig(),
                    camera: Camera = Camera()) -> list[ObjectSpec]:
    """Draws `num_objects` objects, their roles (resting, moving, pushed in) and pushes.

    Attribute triples (colour, material, shape) are all different. At least one
    object rests in view and at least one is pushed in from outside.
    """
    n = num_objects
    if not 3 <= n <= len(COLORS) * len(MATERIALS) * len(SHAPES):
        raise ValueError(f"num_objects must be between 3 and 48, got {n}.")
    triples = [(c, m, s) for c in COLORS for m in MATERIALS for s in SHAPES]
    chosen = [triples[k] for k in rng.choice(len(triples), n, replace=False)]
    num_resting = int(rng.integers(1, max(2, (n + 1) // 2) + 1))
    num_moving = int(rng.random() < 0.4) if n - num_resting >= 2 else 0
    launch_frames = rng.integers(0, config.last_launch_frame + 1, n)
    launch_frames[num_resting + num_moving] = rng.integers(0, 30)  # Something happens early.
    specs, inside, parked = [], [], []
    for k, (color, material, shape) in enumerate(chosen):
        base = dict(object_id=k, color=color, material=material, shape=shape)
        if k < num_resting + num_moving:
            xy = _free_spot(rng, camera, inside, min_gap=1.4)
            inside.append(xy)
            if k < num_resting:
                specs.append(ObjectSpec(start=tuple(xy), **base))
                continue
            heading = rng.uniform(0, 2 * np.pi)
            speed = rng.uniform(1.0, 2.2)
            specs.append(ObjectSpec(start=tuple(xy), launch_frame=0,
                                    launch_velocity=(speed * np.cos(heading), speed * np.sin(heading)),
                                    **base))
            continue
        for _ in range(100):
            if inside and rng.random() < 0.75:
                target = inside[rng.integers(len(inside))] + rng.normal(0, 0.25, 2)
            else:
                target = _free_spot(rng, camera, [], 0.0)
            heading = rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(heading), np.sin(heading)])
            distance = _hidden_distance(camera, target, direction) + 0.3
            start = target - distance * direction
            if all(np.hypot(*(start - p)) >= 1.4 for p in parked + inside):
                break
        parked.append(start)
        arrival = rng.uniform(1.8, 3.2)
        speed = np.sqrt(arrival**2 + 2 * config.friction * distance)
        specs.append(ObjectSpec(start=tuple(start), launch_frame=int(launch_frames[k]),
                                launch_velocity=tuple(speed * direction), **base))
    return specs


def _scenario_score(specs: Sequence[ObjectSpec], traj: Trajectories, camera: Camera,
                    config: PhysicsConfig, min_collisions: int, want_future: bool) -> tuple[bool, float]:
    """(acceptable, score) of a simulated scenario; higher scores are preferred."""
    visible = camera.in_view(object_centers(specs, traj.positions))
    seen = visible[:config.num_visible_frames].any(0).all()
    where = np.array([[x, y, 0.4] for _, _, _, (x, y) in traj.collisions]).reshape(-1, 3)
    all_in_view = bool(camera.in_view(where).all())
    frames = np.array([f for _, _, f, _ in traj.collisions], int)
    shown = int((frames < config.num_visible_frames).sum())
    future = int((frames >= config.num_visible_frames).sum())
    ok = seen and all_in_view and shown >= min_collisions and (future > 0 or not want_future)
    score = seen + all_in_view + min(shown, min_collisions) / max(min_collisions, 1) + (future > 0)
    return ok, score


def scene_description(scene_index: int, specs: Sequence[ObjectSpec],
                      config: PhysicsConfig = PhysicsConfig(),
                      camera: Camera = Camera()) -> dict[str, Any]:
    """The annotation (official schema), unseen future and counterfactual worlds of a scenario.

    Returns:
      {"annotation": ..., "future": {"motion_trajectory", "collision"},
       "counterfactuals": {removed_object_id: {"motion_trajectory", "collision"}}};
      the scene description that `aloe.clevrer.scene.Scene.from_annotation` reads.
    """
    # Counterfactual worlds span the video's duration, as the observed world does:
    # "what would happen without X" asks about the same 128 frames.
    visible = range(config.num_visible_frames)
    future = range(config.num_visible_frames, config.num_frames)
    traj = simulate(specs, config)
    annotation = {
        "scene_index": scene_index, "video_filename": f"video_{scene_index:05d}.mp4",
        "object_property": [{"object_id": s.object_id, "color": s.color, "material": s.material,
                             "shape": s.shape} for s in specs],
        "motion_trajectory": trajectory_records(specs, traj, camera, visible),
        "collision": collision_records(specs, traj, visible)}
    counterfactuals = {}
    for removed in specs:
        rest = [s for s in specs if s.object_id != removed.object_id]
        world = simulate(rest, config)
        counterfactuals[removed.object_id] = {
            "motion_trajectory": trajectory_records(rest, world, camera, visible),
            "collision": collision_records(rest, world, visible)}
    return {"annotation": annotation,
            "future": {"motion_trajectory": trajectory_records(specs, traj, camera, future),
                       "collision": collision_records(specs, traj, future)},
            "counterfactuals": counterfactuals}


def simulate_scene(scene_index: int, rng: np.random.Generator,
                   config: PhysicsConfig = PhysicsConfig(),
                   camera: Camera = Camera()) -> dict[str, Any]:
    """Samples scenarios until one has CLEVRER-like events, then describes it.

    A scenario is accepted when every object shows up in the visible frames,
    every collision happens in view, there are at least 1-3 visible collisions
    (drawn per scene) and, for most scenes, a collision in the unseen future.
    After `config.max_attempts` the best-scoring scenario is kept.
    """
    num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    min_collisions = min(int(rng.choice([1, 2, 2, 3])), max(1, num_objects - 2))
    want_future = bool(rng.random() < 0.7)
    best, best_score = None, -1.0
    for _ in range(config.max_attempts):
        specs = sample_scenario(rng, num_objects, config, camera)
        ok, score = _scenario_score(specs, simulate(specs, config), camera, config,
                                    min_collisions, want_future)
        if ok:
            best = specs
            break
        if score > best_score:
            best, best_score = specs, score
    return scene_description(scene_index, best, config, camera)

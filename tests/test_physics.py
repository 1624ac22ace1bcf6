"""Tests of the planar physics and the scene description of `aloe.synthetic.physics`."""

import dataclasses
import math

import numpy as np
import pytest

from aloe.synthetic import physics

NO_FRICTION = physics.PhysicsConfig(friction=0.0, num_frames=60)


def _two_body(material_a: str, material_b: str, shape_a: str = "cube", shape_b: str = "sphere",
              offset: float = 0.3, config: physics.PhysicsConfig = NO_FRICTION):
    """A moving object `a` hitting a resting object `b` off-centre."""
    specs = [physics.ObjectSpec(0, "red", material_a, shape_a, (-2.0, 0.0), 0, (3.0, 0.0)),
             physics.ObjectSpec(1, "blue", material_b, shape_b, (0.5, offset))]
    return specs, physics.simulate(specs, config)


@pytest.mark.parametrize("materials", [("metal", "rubber"), ("rubber", "rubber"), ("metal", "metal")])
def test_collision_conserves_momentum_and_follows_restitution(materials):
    specs, traj = _two_body(*materials)
    masses = np.array([s.mass for s in specs])
    assert len(traj.collisions) == 1
    a, b, frame, _ = traj.collisions[0]
    assert (a, b) == (0, 1) and 0 < frame < NO_FRICTION.num_frames - 1
    momentum = (masses[None, :, None] * traj.velocities).sum(1)  # [frames, 2]
    np.testing.assert_allclose(momentum, np.broadcast_to(momentum[0], momentum.shape), atol=1e-9)
    # Normal relative speed after = -e * before, with e the geometric mean of the materials'.
    before, after = traj.velocities[frame - 1], traj.velocities[frame + 1]
    # The resting object is pushed along the line of centres at contact, found analytically.
    reach = physics.COLLISION_RADIUS[specs[0].shape] + physics.COLLISION_RADIUS[specs[1].shape]
    contact_a = np.array([0.5 - math.sqrt(reach**2 - 0.3**2), 0.0])
    normal = (np.array([0.5, 0.3]) - contact_a) / reach
    np.testing.assert_allclose(after[1] / np.linalg.norm(after[1]), normal, atol=0.02)
    normal = after[1] / np.linalg.norm(after[1])
    e = math.sqrt(physics.RESTITUTION[materials[0]] * physics.RESTITUTION[materials[1]])
    np.testing.assert_allclose((after[1] - after[0]) @ normal, -e * ((before[1] - before[0]) @ normal),
                               rtol=1e-6)


def test_metal_is_bouncier_than_rubber():
    def separation_speed(material):
        specs, traj = _two_body(material, material, "sphere", "sphere", offset=0.0)
        return traj.velocities[-1, 1, 0] - traj.velocities[-1, 0, 0]
    assert separation_speed("metal") > separation_speed("rubber") > 0


def test_friction_stops_an_object_after_v2_over_2a():
    config = physics.PhysicsConfig(num_frames=200, substeps=20)
    spec = physics.ObjectSpec(0, "gray", "rubber", "cylinder", (0.0, 0.0), 3, (0.0, 1.5))
    traj = physics.simulate([spec], config)
    assert np.all(traj.velocities[-1] == 0)
    np.testing.assert_allclose(traj.positions[-1, 0, 1], 1.5**2 / (2 * config.friction), rtol=0.01)
    assert np.all(traj.positions[:4, 0] == 0)  # At rest until it is pushed.


def _influence_frames(removed: int, *contact_logs) -> dict[int, float]:
    """The first frame at which each object can feel `removed`'s absence (inf: never).

    Influence spreads only through contacts, in either world, forward in time.
    """
    influence = {removed: -math.inf}
    events = sorted(c for log in contact_logs for c in log)
    changed = True
    while changed:
        changed = False
        for a, b, frame in events:
            for src, dst in ((a, b), (b, a)):
                if influence.get(src, math.inf) <= frame < influence.get(dst, math.inf):
                    influence[dst] = frame
                    changed = True
    return influence


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counterfactual_worlds_change_only_downstream_of_collisions(seed):
    rng = np.random.default_rng(seed)
    specs = physics.sample_scenario(rng, 6)
    factual = physics.simulate(specs)
    assert {(a, b, f) for a, b, f, _ in factual.collisions} <= set(factual.contacts)
    column = {oid: k for k, oid in enumerate(factual.object_ids)}
    changed_partners = 0
    for removed in factual.object_ids:
        rest = [s for s in specs if s.object_id != removed]
        world = physics.simulate(rest)
        influence = _influence_frames(removed, factual.contacts, world.contacts)
        for k, oid in enumerate(world.object_ids):
            first = influence.get(oid, math.inf)
            same = factual.positions.shape[0] if first == math.inf else int(first)
            for field in ("positions", "velocities", "yaw"):
                np.testing.assert_array_equal(getattr(world, field)[:same, k],
                                              getattr(factual, field)[:same, column[oid]])
        hits = [c for c in factual.collisions if removed in c[:2]]
        if hits:
            # The first partner of the removed object moves differently without it.
            partner = [o for o in hits[0][:2] if o != removed][0]
            k = world.object_ids.index(partner)
            assert not np.array_equal(world.positions[:, k], factual.positions[:, column[partner]])
            changed_partners += 1
        elif not any(removed in c[:2] for c in factual.contacts):
            # Never touching anything, it changes nothing.
            others = [column[o] for o in world.object_ids]
            np.testing.assert_array_equal(world.positions, factual.positions[:, others])
            assert world.collisions == factual.collisions
    assert changed_partners >= 2


def test_removing_an_object_that_never_collides_changes_nothing():
    specs = physics.sample_scenario(np.random.default_rng(5), 4)
    loner = physics.ObjectSpec(99, "yellow", "metal", "sphere", (40.0, 40.0), 10, (1.0, 0.0))
    with_loner = physics.scene_description(0, specs + [loner])
    without = physics.scene_description(0, specs)
    # Counterfactual worlds cover the observed frames only, like the annotation.
    assert with_loner["counterfactuals"][99]["collision"] == without["annotation"]["collision"]
    assert with_loner["counterfactuals"][99]["motion_trajectory"] == (
        without["annotation"]["motion_trajectory"])


def test_scene_is_deterministic_for_a_seed():
    first = physics.simulate_scene(4, np.random.default_rng([1, 4]))
    again = physics.simulate_scene(4, np.random.default_rng([1, 4]))
    other = physics.simulate_scene(4, np.random.default_rng([2, 4]))
    assert first == again
    assert first["annotation"] != other["annotation"]


def test_scene_description_follows_the_schema_and_the_camera():
    config = physics.PhysicsConfig()
    camera = physics.Camera()
    scene = physics.simulate_scene(11, np.random.default_rng([3, 11]), config, camera)
    annotation = scene["annotation"]
    assert annotation["video_filename"] == "video_00011.mp4"
    assert [f["frame_id"] for f in annotation["motion_trajectory"]] == list(range(128))
    assert [f["frame_id"] for f in scene["future"]["motion_trajectory"]] == list(range(128, 160))
    for frame in annotation["motion_trajectory"]:
        for obj in frame["objects"]:
            assert len(obj["location"]) == 3 and len(obj["velocity"]) == 3
            np.testing.assert_allclose(np.linalg.norm(obj["orientation"]), 1.0, atol=1e-2)
            assert obj["inside_camera_view"] == bool(camera.in_view(np.array(obj["location"])))
    for event in annotation["collision"]:
        assert event["frame_id"] < 128 and event["object_ids"][0] < event["object_ids"][1]
    assert all(e["frame_id"] >= 128 for e in scene["future"]["collision"])


def test_scenes_have_clevrer_like_statistics():
    objects, collisions, entrances, chains = [], [], 0, 0
    for index in range(8):
        annotation = physics.simulate_scene(index, np.random.default_rng([0, index]))["annotation"]
        objects.append(len(annotation["object_property"]))
        events = annotation["collision"]
        collisions.append(len(events))
        seen = np.array([[o["inside_camera_view"] for o in f["objects"]]
                         for f in annotation["motion_trajectory"]])
        entrances += int((seen[1:] & ~seen[:-1]).sum())
        chains += any(set(e1["object_ids"]) & set(e2["object_ids"]) and e1["frame_id"] < e2["frame_id"]
                      and set(e1["object_ids"]) != set(e2["object_ids"]) for e1 in events for e2 in events)
    assert 3 <= min(objects) and max(objects) <= 6
    assert np.mean(collisions) >= 1.5 and min(collisions) >= 1
    assert entrances >= 8 and chains >= 3


def test_resting_objects_are_in_view_and_pushed_objects_start_outside():
    camera = physics.Camera()
    for seed in range(5):
        specs = physics.sample_scenario(np.random.default_rng(seed), 5)
        for spec in specs:
            center = np.array([*spec.start, physics.CENTER_HEIGHT[spec.shape]])
            pushed_in = any(spec.launch_velocity) and not camera.in_view(center)
            assert camera.in_view(center) or pushed_in
        assert len({(s.color, s.material, s.shape) for s in specs}) == len(specs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        specs[0].color = "red"

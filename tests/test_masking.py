"""Property tests of the six masking schemes over many random draws."""

import functools
import re

import jax
import numpy as np
import pytest

from aloe import masking

FRAMES, SLOTS, DRAWS = 25, 8, 200


def draw(scheme: str, frames: int = FRAMES, slots: int = SLOTS, draws: int = DRAWS,
         seed: int = 0, **params) -> tuple[np.ndarray, np.ndarray]:
    """`draws` independent masks under jit + vmap: (m, tau), bool [draws, frames, slots]."""
    keys = jax.random.split(jax.random.key(seed), draws)
    one = functools.partial(masking.make_masks, scheme, frames=frames, slots=slots, **params)
    masks = jax.jit(jax.vmap(one))(keys)
    m, tau = np.asarray(masks.m), np.asarray(masks.tau)
    assert m.dtype == tau.dtype == np.bool_
    assert m.shape == tau.shape == (draws, frames, slots)
    assert not (m & tau).any(), "a token is both visible and a target"
    return m, tau


def frame_roles(m: np.ndarray, tau: np.ndarray) -> str:
    """One letter per frame of one draw: C context (all visible), T target (hidden,
    some scored), B hidden and unscored, X anything else (partly visible)."""
    letters = []
    for visible, scored in zip(m, tau):
        if visible.all():
            letters.append("C")
        elif not visible.any():
            letters.append("T" if scored.any() else "B")
        else:
            letters.append("X")
    return "".join(letters)


def test_one_object_per_frame():
    m, tau = draw("a")
    np.testing.assert_array_equal(tau.sum(-1), 1)
    np.testing.assert_array_equal(m, ~tau)
    # The hidden slot is uniform over slots: 5000 frames, about 625 per slot.
    counts = tau.sum(axis=(0, 1))
    assert counts.min() > 525 and counts.max() < 725, counts
    # Frames of one draw are independent: not all frames hide the same slot.
    assert (tau[:, 0] != tau[:, 1]).any(-1).mean() > 0.7


@pytest.mark.parametrize("mask_prob", [0.15, 0.5])
def test_random_objects(mask_prob):
    m, tau = draw("random_objects", mask_prob=mask_prob)
    np.testing.assert_array_equal(tau, ~m)
    # 40,000 tokens: the hidden fraction is within ~8 standard deviations of p.
    assert abs(tau.mean() - mask_prob) < 0.02
    # Several objects per frame can be hidden (the paper's point against scheme b).
    assert (tau.sum(-1) >= 2).any()
    # Draws differ from each other.
    assert len({row.tobytes() for row in tau}) == DRAWS


@pytest.mark.parametrize("scheme,objects", [("c", 1), ("c", 3), ("d", None)])
@pytest.mark.parametrize("buffer,targets", [(3, 3), (0, 5)])
def test_prediction_layout(scheme, objects, buffer, targets):
    params = {"buffer": buffer, "target_frames": targets}
    if objects is not None:
        params["objects_per_frame"] = objects
    m, tau = draw(scheme, **params)
    pattern = re.compile("(C+)" + "B" * buffer + "T" * targets + "B*")
    context_lengths = set()
    for b in range(DRAWS):
        roles = frame_roles(m[b], tau[b])
        match = pattern.fullmatch(roles)
        assert match, f"draw {b}: frame roles {roles}"
        context_lengths.add(len(match.group(1)))
        scored_per_frame = tau[b][np.array([r == "T" for r in roles])].sum(-1)
        np.testing.assert_array_equal(scored_per_frame, objects or SLOTS)
    # The split point is random and takes every valid value.
    assert context_lengths == set(range(1, FRAMES - buffer - targets + 1))


@pytest.mark.parametrize("scheme,objects", [("object_infilling", 2), ("scene_infilling", None)])
@pytest.mark.parametrize("buffer,targets", [(3, 3), (1, 7)])
def test_infilling_layout(scheme, objects, buffer, targets):
    params = {"buffer": buffer, "target_frames": targets}
    if objects is not None:
        params["objects_per_frame"] = objects
    m, tau = draw(scheme, **params)
    pattern = re.compile("(C+)" + "B" * buffer + "T" * targets + "B" * buffer + "(C+)")
    left_lengths = set()
    for b in range(DRAWS):
        roles = frame_roles(m[b], tau[b])
        match = pattern.fullmatch(roles)
        assert match, f"draw {b}: frame roles {roles}"
        left_lengths.add(len(match.group(1)))
        scored_per_frame = tau[b][np.array([r == "T" for r in roles])].sum(-1)
        np.testing.assert_array_equal(scored_per_frame, objects or SLOTS)
    assert left_lengths == set(range(1, FRAMES - 2 * buffer - targets))


def test_object_targets_are_uniform_over_slots():
    _, tau = draw("e", objects_per_frame=1)
    counts = tau.sum(axis=(0, 1))  # 600 target frames, about 75 per slot
    assert counts.sum() == DRAWS * 3
    assert counts.min() > 40 and counts.max() < 115, counts


def test_min_context_gives_fixed_final_targets():
    m, tau = draw("d", frames=10, buffer=3, target_frames=2, min_context_frames=5, draws=20)
    for b in range(20):
        assert frame_roles(m[b], tau[b]) == "CCCCCBBBTT"


def test_letters_and_names_agree_and_jit_matches_eager():
    key = jax.random.key(7)
    for letter, name in masking.SCHEME_LETTERS.items():
        by_letter = masking.make_masks(letter, key, FRAMES, SLOTS)
        by_name_jitted = jax.jit(functools.partial(masking.make_masks, name.upper(),
                                                   frames=FRAMES, slots=SLOTS))(key)
        np.testing.assert_array_equal(by_letter.m, by_name_jitted.m)
        np.testing.assert_array_equal(by_letter.tau, by_name_jitted.tau)


def test_make_batch_masks():
    batch = masking.make_batch_masks("b", jax.random.key(3), 6, FRAMES, SLOTS, mask_prob=0.3)
    assert batch.m.shape == batch.tau.shape == (6, FRAMES, SLOTS)
    np.testing.assert_array_equal(batch.tau, ~batch.m)
    assert len({np.asarray(row).tobytes() for row in batch.tau}) == 6


@pytest.mark.parametrize("scheme,params", [
    ("c", {"buffer": 20, "target_frames": 5}),  # no frame left for context
    ("d", {"buffer": 2, "target_frames": 30}),
    ("e", {"buffer": 11, "target_frames": 2}),  # 11 + 2 + 11 + 2 contexts > 25
    ("f", {"buffer": 3, "target_frames": 3, "min_context_frames": 9}),
])
def test_sizes_that_do_not_fit(scheme, params):
    with pytest.raises(ValueError, match="does not fit in 25 frames"):
        masking.make_masks(scheme, jax.random.key(0), FRAMES, SLOTS, **params)


def test_bad_names_and_parameters():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown masking scheme 'g'"):
        masking.make_masks("g", key, FRAMES, SLOTS)
    with pytest.raises(ValueError, match="does not take \\['buffer'\\]"):
        masking.make_masks("a", key, FRAMES, SLOTS, buffer=2)
    with pytest.raises(ValueError, match="objects_per_frame=9"):
        masking.make_masks("c", key, FRAMES, SLOTS, objects_per_frame=9)
    with pytest.raises(ValueError, match="mask_prob"):
        masking.make_masks("b", key, FRAMES, SLOTS, mask_prob=1.0)
    with pytest.raises(ValueError, match="target_frames must be >= 1"):
        masking.make_masks("d", key, FRAMES, SLOTS, target_frames=0)
    with pytest.raises(TypeError, match="frames must be a static Python int"):
        jax.jit(lambda k, t: masking.make_masks("a", k, t, SLOTS))(key, 5)
    assert masking.scheme_parameters("f") == ("buffer", "target_frames", "min_context_frames")

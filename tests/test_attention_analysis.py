"""Tests of the attention analysis: maps, their recomputation, the analyses, the pictures."""

import json
import math
import os

import jax
import numpy as np
import pytest
from PIL import Image

from aloe.analysis import attention
from aloe.analysis import figures
from aloe.analysis import inputs as inputs_lib
from aloe.data import vocab as vocab_lib
from aloe.models import ALOE
from aloe.synthetic import toy_latents
from configs import test as test_config

D, HEADS, LAYERS, FRAMES, SLOTS, LQ, LC, IMAGE = 4, 2, 2, 4, 3, 5, 3, 16
N = 1 + LQ + LC + FRAMES * SLOTS


@pytest.fixture(scope="module")
def tiny():
    """A tiny ALOE with non-zero attention biases and CLS, and one example."""
    model = ALOE(vocab_size=9, num_answers=5, latent_dim=D, num_heads=HEADS, num_layers=LAYERS,
                 mlp_dim=16, head_hidden_dim=8, descriptive_choice_len=LC)
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(FRAMES, SLOTS, D)).astype(np.float32)
    question = np.array([3, 1, 4, 0, 0], np.int32)
    choice = np.array([5, 2, 0], np.int32)
    params = jax.jit(lambda key: model.init({"params": key}, latents[None], question[None],
                                            choice[None, None], deterministic=True))(
        jax.random.key(0))["params"]
    params = jax.tree.map(np.asarray, params)
    for layer in range(LAYERS):
        block = params["transformer"][f"layer_{layer}"]["attention"]
        for name in ("content_bias", "position_bias"):
            block[name] = rng.normal(size=block[name].shape).astype(np.float32)
    params["cls_token"] = rng.normal(size=D + 2).astype(np.float32)
    return model, params, latents, question, choice


@pytest.fixture(scope="module")
def maps(tiny):
    """Attention maps of the descriptive and of the multiple-choice sequence."""
    model, params, latents, question, choice = tiny
    return {"descriptive": attention.attention_maps(model, params, latents, question),
            "multiple_choice": attention.attention_maps(model, params, latents, question, choice)}


def _normed_inputs_fn(model, method):
    """Compiled: the LayerNorm outputs that feed each layer's attention, [layers, N, width]."""
    def run(params, *args):
        _, state = model.apply({"params": params}, *args, deterministic=True, method=method,
                               capture_intermediates=lambda m, _: m.name == "attention_norm",
                               mutable=["intermediates"])
        layers = state["intermediates"]["transformer"]
        return [layers[f"layer_{i}"]["attention_norm"]["__call__"][0][0] for i in range(LAYERS)]
    return jax.jit(run)


def _inputs(kind, latents, question, choice):
    if kind == "descriptive":
        return ALOE.descriptive, (latents[None], question[None])
    return ALOE.multiple_choice, (latents[None], question[None], choice[None, None])


def numpy_relative_attention(x, p, token_mask):
    """Transformer-XL weights of one layer, written out element by element: [heads, N, N]."""
    n, width = x.shape
    head_dim = width // HEADS
    split = lambda a: a.reshape(n, HEADS, head_dim).transpose(1, 0, 2)
    q = split(x @ p["query"] / math.sqrt(head_dim))
    k = split(x @ p["key"])
    distance = np.arange(n - 1, -1, -1, dtype=np.float64)[:, None]
    freq = 1.0 / 10000 ** (np.arange(0, width, 2) / width)
    rel = split(np.concatenate([np.sin(distance * freq), np.cos(distance * freq)], 1)
                @ p["relative_key"])
    content = np.einsum("hid,hjd->hij", q + p["content_bias"][:, None], k)
    scores = np.einsum("hid,hjd->hij", q + p["position_bias"][:, None], rel)
    scores[:, ~token_mask] = 0.0       # A padding query's position scores are zero.
    position = np.zeros_like(scores)
    for i in range(n):
        for j in range(n):
            if j <= i:                 # Relative distance i - j.
                position[:, i, j] = scores[:, i, n - 1 - i + j]
            elif j >= i + 2:           # Transformer-XL's shift brings in row i + 1.
                position[:, i, j] = scores[:, i + 1, j - i - 2]
    logits = np.where(token_mask[None, None, :], content + position, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def test_maps_have_layer_head_query_key_shape_and_rows_sum_to_one(maps):
    for kind, result in maps.items():
        assert result["kind"] == kind
        assert result["weights"].shape == (LAYERS, HEADS, N, N)
        assert result["layout"] == attention.TokenLayout(LQ, LC, FRAMES, SLOTS)
        np.testing.assert_allclose(result["weights"].sum(-1), 1.0, atol=1e-5)
        # Padding words are never attended to.
        padding = ~result["token_mask"]
        # Two question pads; the descriptive padding choice (3) or the choice's one pad.
        assert padding.sum() == {"descriptive": 5, "multiple_choice": 3}[kind]
        assert np.all(result["weights"][..., padding] == 0.0)
    assert maps["descriptive"]["output"].shape == (5,)
    assert isinstance(maps["multiple_choice"]["output"], float)


@pytest.mark.parametrize("kind", ["descriptive", "multiple_choice"])
def test_weights_equal_numpy_recomputation_from_each_layers_input(tiny, maps, kind):
    model, params, latents, question, choice = tiny
    method, args = _inputs(kind, latents, question, choice)
    normed = _normed_inputs_fn(model, method)(params, *args)
    for layer in range(LAYERS):
        expected = numpy_relative_attention(
            np.asarray(normed[layer], np.float64),
            {k: np.asarray(v, np.float64)
             for k, v in params["transformer"][f"layer_{layer}"]["attention"].items()},
            maps[kind]["token_mask"])
        np.testing.assert_allclose(maps[kind]["weights"][layer], expected, atol=2e-5)


def test_layout_indices_are_where_the_inputs_enter(tiny):
    """Changing one object / word changes exactly the first layer's input row the layout names."""
    model, params, latents, question, choice = tiny
    layout = attention.TokenLayout(LQ, LC, FRAMES, SLOTS)
    run = _normed_inputs_fn(model, ALOE.multiple_choice)
    first_layer = lambda *example: np.asarray(run(
        params, *_inputs("multiple_choice", *example)[1])[0])
    base = first_layer(latents, question, choice)

    def changed_rows(*example):
        return list(np.flatnonzero(np.abs(first_layer(*example) - base).max(-1) > 1e-6))

    moved = latents.copy()
    moved[2, 1] += 3.0
    assert changed_rows(moved, question, choice) == [layout.object_index(2, 1)]
    assert layout.describe(layout.object_index(2, 1)) == "object(t=2, slot=1)"
    reworded = question.copy()
    reworded[1] = 7
    assert changed_rows(latents, reworded, choice) == [layout.question_index(1)]
    rechosen = choice.copy()
    rechosen[0] = 8
    assert changed_rows(latents, question, rechosen) == [layout.choice_index(0)]
    assert layout.describe(0) == "CLS" and layout.num_tokens == N
    np.testing.assert_array_equal(layout.object_indices().ravel(), np.arange(1 + LQ + LC, N))


def planted_maps():
    """Maps whose last layer, head 1, has known maxima; other weights small noise."""
    layout = attention.TokenLayout(2, 1, 3, 4)
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.0, 0.01, size=(2, 2, layout.num_tokens, layout.num_tokens))
    objects = layout.object_indices()
    weights[1, 1, objects[1, 3], layout.question_index(0)] = 0.5   # word 0 <- slot 3
    weights[1, 1, objects[1, 0], layout.question_index(1)] = 0.4   # word 1 <- slot 0
    weights[1, 1, objects[1, 2], layout.choice_index(0)] = 0.3     # choice word <- slot 2
    weights[1, 1, 0, objects[0]] = [0.1, 0.3, 0.2, 0.0]
    weights[1, 1, 0, objects[1]] = [0.0, 0.1, 0.05, 0.4]
    weights[1, 1, 0, objects[2]] = [0.2, 0.2, 0.0, 0.1]           # A tie: lower slot first.
    word_ids = np.full(layout.num_tokens, -1)
    word_ids[1:4] = [6, 7, 9]
    return {"weights": weights, "layout": layout, "word_ids": word_ids,
            "token_mask": np.ones(layout.num_tokens, bool)}


def test_word_slot_and_cls_object_analyses_find_planted_maxima():
    maps = planted_maps()
    words = attention.word_slot_attention(maps, frame=1, layer=-1, head=1)
    np.testing.assert_array_equal(words["slot"], [3, 0, 2])
    np.testing.assert_array_equal(words["word_id"], [6, 7, 9])
    np.testing.assert_array_equal(words["is_choice"], [False, False, True])
    np.testing.assert_allclose(words["weight"], [0.5, 0.4, 0.3])
    cls = attention.cls_object_attention(maps, layer=1, head=1)
    np.testing.assert_allclose(cls[1], [0.0, 0.1, 0.05, 0.4])
    np.testing.assert_array_equal(attention.top_slots(cls, 2), [[1, 2], [3, 1], [0, 1]])
    averaged = attention.cls_object_attention(maps, layer=1, head=None)
    np.testing.assert_allclose(averaged, maps["weights"][1, :, 0][:, 4:].mean(0).reshape(3, 4))
    with pytest.raises(ValueError, match="frame 3"):
        attention.word_slot_attention(maps, frame=3)


def test_mask_boxes_cover_the_region_above_one_half():
    masks = np.zeros((3, 10, 12), np.float32)
    masks[0, 2:5, 3:9] = 0.9
    masks[0, 6, 1] = 0.5                      # Not above the threshold.
    masks[2, 7, 11] = 0.6
    np.testing.assert_array_equal(figures.mask_boxes(masks[..., None]),
                                  [[2, 3, 5, 9], [-1, -1, -1, -1], [7, 11, 8, 12]])


def scene_views():
    """Grey frames, slot 0 background, slots 1 and 2 rectangles (slot 2 moves)."""
    frames = np.full((FRAMES, IMAGE, IMAGE, 3), 0.5, np.float32)
    masks = np.zeros((FRAMES, SLOTS, IMAGE, IMAGE), np.float32)
    masks[:, 0] = 1.0
    for t in range(FRAMES):
        masks[t, 1, 2:6, 3:11] = 1.0           # 4 x 8
        masks[t, 2, 9:15, 2 + t:5 + t] = 1.0   # 6 x 3
    masks[:, 0] -= masks[:, 1] + masks[:, 2]
    return frames, masks


def colour_box(image, colour):
    """(height, width, left) of the pixels of exactly `colour`, or None."""
    hit = np.all(image == np.asarray(colour, np.uint8), axis=-1)
    if not hit.any():
        return None
    rows, cols = np.flatnonzero(hit.any(1)), np.flatnonzero(hit.any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1, cols[0]


def test_most_attended_strip_boxes_the_top_slot_of_each_frame():
    frames, masks = scene_views()
    scale = 3
    top = np.array([[1], [1], [2], [2]])      # Slot 1 in frames 0-1, slot 2 in frames 2-3.
    image = figures.most_attended_figure(frames, masks, top, scale=scale)
    colours = figures.slot_colours(SLOTS)
    assert image.shape[1] == 2 + FRAMES * (IMAGE * scale + 2)
    height1, width1, left1 = colour_box(image, colours[1])
    height2, width2, left2 = colour_box(image, colours[2])
    assert (height1, width1) == (4 * scale, IMAGE * scale + 2 + 8 * scale)   # Frames 0 and 1.
    assert height2 == 6 * scale and left2 > left1 + IMAGE * scale        # Frames 2 and 3.
    assert width2 == IMAGE * scale + 2 + 3 * scale + scale                # Moved by one pixel.
    assert colour_box(image, colours[0]) is None


def test_cross_modal_words_take_the_colour_of_boxed_slots_only():
    frames, masks = scene_views()
    colours = figures.slot_colours(SLOTS)
    image = figures.cross_modal_figure(frames[0], masks[0], ["red", "cube", "scene"], [1, 1, 0],
                                       text_width=200)
    near = lambda colour: np.abs(image.astype(int) - colour).max(-1) <= 8
    picture = image[:IMAGE * 4, 204:]                       # The frame, without its legend.
    assert near(colours[1])[:, :200].any()                  # Words of slot 1 coloured ...
    assert colour_box(picture, colours[1])[:2] == (4 * 4, 8 * 4)    # ... and its box drawn.
    assert not near(colours[0]).any() and not near(colours[2])[:, :200].any()
    assert near((0, 0, 0))[:, :200].any()                   # The background's word is black.


def test_pictures_written_as_png_and_tensorboard_images(tiny, tmp_path):
    model, params, latents, question, choice = tiny
    frames, masks = scene_views()
    result = attention.analyse_attention(
        model, params, latents, question, choice, frames=frames, masks=masks,
        out_dir=tmp_path / "png", logdir=tmp_path / "tb", id_to_word={1: "cube", 3: "what"})
    assert set(result["paths"]) == {"cross_modal", "most_attended", "slot_alignment"}
    for name, path in result["paths"].items():
        assert os.path.getsize(path) > 0
        with Image.open(path) as png:
            assert png.size == result["images"][name].shape[1::-1]
        np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")),
                                      result["images"][name])
    alignment = result["images"]["slot_alignment"]
    assert alignment.shape[1] > FRAMES * 25 and alignment.shape[0] > SLOTS * 25
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb").rglob("*tfevents*"))
    for name in result["paths"]:
        assert f"attention/{name}".encode() in events
    assert b"\x89PNG" in events


def test_load_scene_reads_the_question_and_evenly_spaced_latents(tmp_path):
    root = tmp_path / "store"
    toy_latents.write_toy_dataset(root, num_train=1, num_valid=1, seed=0)
    config = test_config.get_config()
    config.data.root = str(root)
    vocab = vocab_lib.release_vocab()
    scene = json.loads((root / "valid.json").read_text())[0]
    desc = next(q for q in scene["questions"] if q["question_type"] == "descriptive")
    mc = next(q for q in scene["questions"] if "choices" in q)
    stored = np.load(root / "valid" / "10000.npz", allow_pickle=False)
    frames = np.arange(config.data.num_frames) * (128 // config.data.num_frames)

    first = inputs_lib.load_scene(config.data, vocab, "valid", 10000)
    assert first["kind"] == "descriptive" and first["choice"] is None
    np.testing.assert_array_equal(first["question"], vocab.encode(desc["question"], 20))
    np.testing.assert_array_equal(first["latents"], stored[frames])
    second = inputs_lib.load_scene(config.data, vocab, "valid", 10000, mc["question_id"],
                                   mc["choices"][1]["choice_id"])
    np.testing.assert_array_equal(second["question"], vocab.encode(mc["question"], 20))
    np.testing.assert_array_equal(second["choice"], vocab.encode(mc["choices"][1]["choice"], 12))
    with pytest.raises(ValueError, match=r"valid.json: scene_index 10000, question_id 999"):
        inputs_lib.load_scene(config.data, vocab, "valid", 10000, 999)

    video = np.random.default_rng(0).integers(0, 256, (128, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", video)
    loaded = inputs_lib.load_frames(str(tmp_path / "frames.npy"), frames, 128, 8)
    np.testing.assert_allclose(loaded, video[frames] / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="frames.npy: frames must be"):
        inputs_lib.load_frames(str(tmp_path / "frames.npy"), frames, 128, 16)

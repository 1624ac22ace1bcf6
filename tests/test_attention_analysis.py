"""Tests of the attention analysis: maps, their recomputation, the analyses, the pictures."""

import json
import math
import os
import subprocess
import sys

import jax
import matplotlib
import numpy as np
import pytest
from PIL import Image

from aloe.analysis import attention
from aloe.analysis import figures
from aloe.analysis import inputs as inputs_lib
from aloe.data import vocab as vocab_lib
from aloe.models import ALOE
from aloe.models import build_aloe
from aloe.synthetic import toy_latents
from configs import monet_clevrer
from configs import test as test_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

D, HEADS, LAYERS, FRAMES, SLOTS, LQ, LC, IMAGE = 4, 2, 2, 4, 3, 5, 3, 16
N = 1 + LQ + LC + FRAMES * SLOTS


@pytest.fixture(scope="module")
def tiny():
    """A tiny ALOE with non-zero attention biases and CLS, and one example."""
    model = build_aloe(vocab_size=9, num_answers=5, latent_dim=D, num_heads=HEADS,
                       num_layers=LAYERS, mlp_dim=16, head_hidden_dim=8, descriptive_choice_len=LC)
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


def rectangles(ax):
    """The outlines drawn on an axes: [(slot colour, (top, left, bottom, right), width, style)]."""
    found = []
    for patch in ax.patches:
        x, y = patch.get_xy()
        box = (round(y + 0.5), round(x + 0.5), round(y + 0.5 + patch.get_height()),
               round(x + 0.5 + patch.get_width()))
        colour = tuple(round(c * 255) for c in patch.get_edgecolor()[:3])
        found.append((colour, box, patch.get_linewidth(), patch.get_linestyle()))
    return found


def labels_of(fig):
    """Every text a reader sees: titles, axis labels, legend entries, colour-bar labels."""
    texts = [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
        if ax.get_legend():
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    for legend in fig.legends:
        texts += [t.get_text() for t in legend.get_texts()]
    return [t for t in texts if t]


def test_most_attended_boxes_the_top_slots_of_each_frame():
    frames, masks = scene_views()
    top = np.array([[1, 2], [1, 0], [2, 1], [2, 1]])   # Slot 1 first in frames 0-1, 2 in 2-3.
    fig = figures.most_attended_figure(frames, masks, top, title="what it shows")
    colours = figures.slot_colours(SLOTS)
    panels = fig.axes[:FRAMES]
    for t, ax in enumerate(panels):
        assert ax.get_title() == f"frame {t}"
        np.testing.assert_array_equal(ax.images[0].get_array(), figures.to_uint8(frames[t]))
        drawn = rectangles(ax)
        first = drawn[0]
        assert first[0] == colours[top[t, 0]] and first[2] == 3.0 and first[3] in ("-", "solid")
        assert first[1] == tuple(figures.mask_boxes(masks[t])[top[t, 0]])
        assert all(width < 3.0 and style in ("--", "dashed") for _, _, width, style in drawn[1:])
    assert rectangles(panels[0])[0][1] == (2, 3, 6, 11)           # Slot 1's 4 x 8 rectangle.
    assert rectangles(panels[3])[0][1] == (9, 5, 15, 8)           # Slot 2 moved to x = 5.
    assert panels[0].get_ylabel() == "y (pixels)" and panels[0].get_xlabel() == "x (pixels)"
    assert fig.get_suptitle() == "what it shows"
    legend = labels_of(fig)
    assert "most attended slot" in legend and "next 1 most attended" in legend
    assert {"slot 0", "slot 1", "slot 2"} <= set(legend)


def test_cross_modal_words_take_the_colour_of_boxed_slots_only():
    frames, masks = scene_views()
    colours = figures.slot_colours(SLOTS)
    fig = figures.cross_modal_figure(frames[0], masks[0], ["red", "cube", "scene"], [1, 1, 0],
                                     is_choice=[False, False, True], title="t")
    text_ax, image_ax = fig.axes[:2]
    word_colours = {t.get_text(): tuple(round(c * 255) for c in
                                        matplotlib.colors.to_rgb(t.get_color()))
                    for t in text_ax.texts}
    assert word_colours["Q  red"] == word_colours["Q  cube"] == colours[1]
    assert word_colours["C  scene"] == (0, 0, 0)       # The background's word is black.
    assert word_colours["slot 0 (no box)"] == (0, 0, 0)
    boxes = {colour: box for colour, box, _, _ in rectangles(image_ax)}
    assert boxes == {colours[1]: (2, 3, 6, 11), colours[2]: (9, 2, 15, 5)}  # No background box.
    assert image_ax.get_xlabel() == "x (pixels)" and image_ax.get_ylabel() == "y (pixels)"
    assert [t.get_text() for t in image_ax.get_legend().get_texts()] == ["slot 1", "slot 2"]


def test_slot_alignment_shades_attention_with_a_colour_bar_and_outlines_the_top_slots():
    frames, masks = scene_views()
    cls = np.random.default_rng(3).uniform(size=(FRAMES, SLOTS)).astype(np.float32)
    top = attention.top_slots(cls, 1)
    fig = figures.slot_alignment_figure(cls, top, frames=frames, masks=masks, title="t")
    ax, bar = fig.axes
    np.testing.assert_allclose(ax.images[0].get_array(), cls.T)
    assert ax.get_xlabel() == "frame (time)" and ax.get_ylabel() == "MONet slot"
    assert bar.get_ylabel() == "CLS attention weight"
    outlined = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches}
    assert outlined == {(t, int(top[t, 0])) for t in range(FRAMES)}
    assert len(ax.images) == 1 + FRAMES * SLOTS                  # A segment in every cell.
    assert "1 most attended slot of the frame" in labels_of(fig)


def test_every_picture_says_what_it_shows(tiny, tmp_path):
    """Titles name the question, choice, predicted and true answer, layer and head; axes named."""
    model, params, latents, question, choice = tiny
    frames, masks = scene_views()
    words = {3: "what", 1: "cube", 4: "shape", 5: "the", 2: "sphere"}
    result = attention.analyse_attention(
        model, params, latents, question, choice, frames=frames, masks=masks,
        id_to_word=words, true_answer="wrong", layer=0, head=1)
    logit = result["maps"]["output"]
    predicted = "correct" if logit >= 0 else "wrong"
    for name, fig in result["figures"].items():
        title = fig.get_suptitle()
        assert "Q: what cube shape" in title and "C: the sphere" in title, (name, title)
        assert f"predicted: {predicted}" in title and "true: wrong" in title, (name, title)
        assert "layer 0 of 0..1, head 1" in title, (name, title)
        for ax in fig.axes:
            if ax.images:
                assert ax.get_xlabel() or ax.get_ylabel(), (name, ax.get_title())
    descriptive = attention.analyse_attention(
        model, params, latents, question, frames=frames, masks=masks, id_to_word=words,
        answer_names=["red", "blue", "cube", "sphere", "yes"], true_answer="blue")
    best = int(np.argmax(descriptive["maps"]["output"]))
    title = descriptive["figures"]["slot_alignment"].get_suptitle()
    assert f"predicted: {['red', 'blue', 'cube', 'sphere', 'yes'][best]} (p=" in title
    assert "true: blue" in title and "C:" not in title and "layer 1 of 0..1, head 0" in title


def test_pictures_written_as_png_and_tensorboard_images(tiny, tmp_path):
    model, params, latents, question, choice = tiny
    frames, masks = scene_views()
    result = attention.analyse_attention(
        model, params, latents, question, choice, frames=frames, masks=masks,
        out_dir=tmp_path / "png", logdir=tmp_path / "tb", id_to_word={1: "cube", 3: "what"})
    assert set(result["paths"]) == {"cross_modal", "most_attended", "slot_alignment"}
    for name, path in result["paths"].items():
        with Image.open(path) as png:
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), result["images"][name])
        width, height = result["figures"][name].get_size_inches() * figures.DPI
        assert result["images"][name].shape == (round(height), round(width), 3)
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb").rglob("*tfevents*"))
    for name in result["paths"]:
        assert f"attention/{name}".encode() in events
    assert b"\x89PNG" in events


def test_commands_show_their_required_flags_and_refuse_to_run_without_frames():
    for command in ("attention", "predicted_frames"):
        shown = subprocess.run([sys.executable, "-m", f"aloe.analysis.{command}", "--help"],
                               capture_output=True, text=True, timeout=300, cwd=REPO,
                               env={**os.environ, "JAX_PLATFORMS": "cpu"})
        assert "Try --helpfull" in shown.stdout, shown.stderr[-2000:]   # absl's short help.
        for flag in ("--config", "--monet_config", "--workdir", "--monet_workdir", "--scene",
                     "--out", "--frames_npy"):
            assert flag in shown.stdout, (command, flag)
    monet = monet_clevrer.get_config()
    with pytest.raises(ValueError, match="--frames_npy=FRAMES.npy or --monet_config.data.data_dir"):
        inputs_lib.command_inputs(test_config.get_config(), "/nonexistent", monet,
                                  "/nonexistent", "valid", 10000, None)


def test_commands_load_tensorflow_only_after_setting_its_environment():
    # Importing the commands must not load TensorFlow: their main sets its environment
    # (reporting.configure_logging) first, so its native start-up lines stay hidden.
    code = ("import sys, aloe.analysis.attention, aloe.analysis.predicted_frames, aloe.study; "
            "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert shown.stdout.strip() == "[]", shown.stderr[-2000:]


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
    assert first["true_answer"] == desc["answer"]
    np.testing.assert_array_equal(first["question"], vocab.encode(desc["question"], 20))
    np.testing.assert_array_equal(first["latents"], stored[frames])
    second = inputs_lib.load_scene(config.data, vocab, "valid", 10000, mc["question_id"],
                                   mc["choices"][1]["choice_id"])
    np.testing.assert_array_equal(second["question"], vocab.encode(mc["question"], 20))
    np.testing.assert_array_equal(second["choice"], vocab.encode(mc["choices"][1]["choice"], 12))
    assert second["true_answer"] == mc["choices"][1]["answer"]
    with pytest.raises(ValueError, match=r"valid.json: scene_index 10000, question_id 999"):
        inputs_lib.load_scene(config.data, vocab, "valid", 10000, 999)

    video = np.random.default_rng(0).integers(0, 256, (128, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", video)
    loaded = inputs_lib.load_frames(str(tmp_path / "frames.npy"), frames, 128, 8)
    np.testing.assert_allclose(loaded, video[frames] / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="frames.npy: frames must be"):
        inputs_lib.load_frames(str(tmp_path / "frames.npy"), frames, 128, 16)

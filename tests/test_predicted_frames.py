"""Tests of the predicted-frames analysis: layout, predictions, decoding and the picture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from aloe import masking
from aloe.analysis import figures
from aloe.analysis import predicted_frames
from aloe.models import ALOE
from aloe.models import build_aloe
from aloe.models import monet as monet_lib

D, FRAMES, SLOTS, IMAGE = 4, 8, 3, 32


@pytest.fixture(scope="module")
def tiny():
    """Tiny ALOE with the auxiliary parameters, tiny 32x32 MONet, one example."""
    model = build_aloe(vocab_size=9, num_answers=5, latent_dim=D, num_heads=2, num_layers=2,
                       mlp_dim=16, head_hidden_dim=8, descriptive_choice_len=3, auxiliary=True)
    monet = monet_lib.MONet(num_slots=SLOTS, latent_dim=D, image_size=IMAGE,
                            unet_channels=(8, 8, 8), unet_mlp_hidden=(16,),
                            encoder_channels=(8, 8, 8, 8), encoder_hidden=16,
                            decoder_channels=(8, 8))
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(FRAMES, SLOTS, D)).astype(np.float32)
    question = np.array([3, 1, 4, 0, 0], np.int32)
    params = jax.jit(lambda key: model.init(
        {"params": key}, latents[None], question[None], np.ones((1, 2, 3), np.int32),
        deterministic=True))(jax.random.key(0))["params"]
    monet_params = jax.jit(lambda key: monet.init(
        {"params": key}, jnp.zeros((1, 4, D)), method=monet_lib.MONet.decode))(
        jax.random.key(1))["params"]
    frames = rng.uniform(size=(FRAMES, IMAGE, IMAGE, 3)).astype(np.float32)
    return model, params, monet, monet_params, latents, question, frames


@pytest.fixture(scope="module")
def rendered(tiny, tmp_path_factory):
    model, params, monet, monet_params, latents, question, frames = tiny
    out = tmp_path_factory.mktemp("predicted")
    return predicted_frames.render_predicted_frames(
        model, params, monet, monet_params, latents, question, frames=frames,
        question_text="what shape is the cube", frame_numbers=list(range(0, 128, 16)),
        out_dir=str(out))


def test_appendix_c_layout_puts_the_targets_last():
    masks = predicted_frames.appendix_c_masks(FRAMES, SLOTS, buffer=3, target_frames=3)
    np.testing.assert_array_equal(masks.m.all(1), [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks.m.any(1), masks.m.all(1))
    np.testing.assert_array_equal(masks.tau.all(1), [0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(masks.tau.any(1), masks.tau.all(1))
    # It is scheme 'd' for every key: the layout does not depend on the draw.
    drawn = masking.scene_prediction(jax.random.key(7), FRAMES, SLOTS, buffer=3,
                                     target_frames=3, min_context_frames=2)
    np.testing.assert_array_equal(drawn.m, masks.m)
    with pytest.raises(ValueError, match="no context"):
        predicted_frames.appendix_c_masks(6, SLOTS)


def test_predictions_come_from_the_model_and_decode_through_monet(tiny, rendered):
    model, params, monet, monet_params, latents, question, _ = tiny
    visible = jnp.asarray(rendered["visible"])[None]
    expected = jax.jit(lambda p: model.apply({"params": p}, latents[None], question[None],
                                             visible, deterministic=True,
                                             method=ALOE.predict_latents))(params)[0]
    np.testing.assert_allclose(rendered["predicted_latents"], expected, atol=1e-5)
    decode = jax.jit(lambda z: monet.apply({"params": monet_params}, z,
                                           method=monet_lib.MONet.decode_image)[0])
    decoded = np.asarray(decode(expected))
    target, hidden = rendered["target"], rendered["hidden"]
    np.testing.assert_allclose(rendered["predicted_images"][target], decoded[target], atol=1e-5)
    np.testing.assert_array_equal(rendered["predicted_images"][hidden & ~target], 0.0)
    np.testing.assert_array_equal(rendered["input_images"][hidden], 0.0)
    true_images = np.asarray(decode(jnp.asarray(latents)))
    np.testing.assert_allclose(rendered["input_images"][~hidden], true_images[~hidden], atol=1e-5)
    np.testing.assert_allclose(rendered["pixel_error"],
                               np.mean((decoded[target] - true_images[target]) ** 2), rtol=1e-4)
    np.testing.assert_allclose(rendered["latent_error"],
                               np.mean((np.asarray(expected) - latents)[target] ** 2), rtol=1e-4)


def test_hidden_frames_true_latents_do_not_reach_the_predictions(tiny, rendered):
    model, params, monet, monet_params, latents, question, _ = tiny
    changed = latents.copy()
    changed[rendered["hidden"]] += 5.0
    again = predicted_frames.predict_frames(model, params, monet, monet_params, changed, question)
    np.testing.assert_allclose(again["predicted_latents"], rendered["predicted_latents"],
                               atol=1e-5)
    assert again["latent_error"] > rendered["latent_error"]   # Scored against the new truth.


def test_figure_shows_three_named_rows_and_marks_the_targets(tiny, rendered):
    frames = tiny[-1]
    fig = rendered["figure"]
    axes = np.asarray(fig.axes).reshape(3, FRAMES)
    rows = [frames, rendered["input_images"], rendered["predicted_images"]]
    red = tuple(c / 255 for c in predicted_frames.TARGET_COLOUR)
    for r, row in enumerate(rows):
        for t in range(FRAMES):
            np.testing.assert_array_equal(axes[r, t].images[0].get_array(),
                                          figures.to_uint8(row[t]))
            edge = tuple(axes[r, t].spines["top"].get_edgecolor()[:3])
            assert (edge == red) == bool(rendered["target"][t])
    # Hidden frames are black in the 'input' row.
    for t in np.flatnonzero(rendered["hidden"]):
        assert np.asarray(axes[1, t].images[0].get_array()).max() == 0
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["true", "input (seen)", "predicted"]
    assert [ax.get_title() for ax in axes[0]] == [f"frame {t} (video {16 * t})"
                                                   for t in range(FRAMES)]
    assert [ax.get_xlabel() for ax in axes[2]] == ["context"] * 2 + ["hidden"] * 3 + ["target"] * 3
    title = fig.get_suptitle()
    assert "last 3 frames from the first 2 (3 hidden" in title
    assert "Q: what shape is the cube" in title
    assert f"latent MSE {rendered['latent_error']:.4f}" in title
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("target frame") and legend[1].startswith("hidden")
    path = rendered["paths"]["predicted_frames"]
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), rendered["image"])


def test_without_frames_the_first_row_says_it_is_decoded(tiny):
    model, params, monet, monet_params, latents, question, _ = tiny
    result = predicted_frames.render_predicted_frames(model, params, monet, monet_params,
                                                      latents, question)
    assert result["figure"].axes[0].get_ylabel() == "true latents, decoded"


def test_a_model_without_auxiliary_parameters_is_refused(tiny):
    _, params, monet, monet_params, latents, question, _ = tiny
    plain = build_aloe(vocab_size=9, num_answers=5, latent_dim=D, num_heads=2, num_layers=2)
    with pytest.raises(ValueError, match="auxiliary"):
        predicted_frames.predict_frames(plain, params, monet, monet_params, latents, question)

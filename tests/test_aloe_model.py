"""Tests of the ALOE model: token layout, padding mask, heads, parameter count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe.models import ALOE
from aloe.models import ALOECater
from aloe.models import build_aloe
from aloe.models import build_aloe_cater

D, HEADS, FRAMES, SLOTS, LQ, LC, CHOICES, BATCH = 4, 2, 2, 3, 5, 3, 3, 2
VOCAB, ANSWERS = 9, 5
MLP = {"name": "mlp"}  # The paper's 4 x 2048 hidden layers.


def tiny_model(**overrides) -> ALOE:
    config = dict(vocab_size=VOCAB, num_answers=ANSWERS, latent_dim=D, num_heads=HEADS,
                  num_layers=2, mlp_dim=16, head_hidden_dim=8, descriptive_choice_len=LC)
    return build_aloe(**{**config, **overrides})


def tiny_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    latents = jnp.asarray(rng.normal(size=(BATCH, FRAMES, SLOTS, D)), jnp.float32)
    question = np.asarray(rng.integers(1, VOCAB, size=(BATCH, LQ)), np.int32)
    question[:, 3:] = 0  # Two padding words at the end.
    choices = np.asarray(rng.integers(1, VOCAB, size=(BATCH, CHOICES, LC)), np.int32)
    choices[:, :, 2:] = 0
    return latents, jnp.asarray(question), jnp.asarray(choices)


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model()
    latents, question, choices = tiny_inputs()
    params = jax.jit(lambda key: model.init({"params": key}, latents, question, choices,
                                            deterministic=True))(jax.random.key(0))["params"]
    # Non-zero CLS so that the token layout test sees it.
    params["cls_token"] = jnp.arange(D + 2, dtype=jnp.float32) / 10
    return model, params


def run(model, params, method, *args, rng=None):
    apply = jax.jit(model.apply, static_argnames=("method", "deterministic"))
    kwargs = {"deterministic": rng is None}
    if rng is not None:
        kwargs["rngs"] = {"dropout": rng}
    return np.asarray(apply({"params": params}, *args, method=method, **kwargs))


def test_paper_configuration_parameter_count():
    model = build_aloe(vocab_size=82, num_answers=21)
    shapes = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 25, 8, 16)), jnp.zeros((1, 20), jnp.int32),
        jnp.zeros((1, 4, 12), jnp.int32), deterministic=True))["params"]
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    width, token, mlp, hidden = 10 * 18, 18, 1024, 128
    embedding = 82 * (16 - 2)
    cls = token
    projection = token * width + width
    layer = (2 * 2 * width                 # two LayerNorms (scale, bias)
             + 5 * width * width           # q, k, v, relative key, output: no bias
             + 2 * 10 * 18                 # u and v
             + width * mlp + mlp           # feed-forward in
             + mlp * width + width)        # feed-forward out
    heads = (width * hidden + hidden + hidden * 21 + 21) + (width * hidden + hidden + hidden + 1)
    expected = embedding + cls + projection + 28 * layer + heads
    assert expected == 14_975_632
    assert count == expected


@pytest.mark.parametrize("kind", ["descriptive", "multiple_choice"])
def test_token_layout(tiny, kind):
    model, params = tiny
    latents, question, choices = tiny_inputs(1)
    if kind == "descriptive":
        args, method = (latents, question), ALOE.descriptive
        words = [(question, (0.0, 1.0)), (jnp.zeros((BATCH, LC), jnp.int32), (0.0, 1.0))]
    else:
        args, method = (latents, question, choices[:, :1]), ALOE.multiple_choice
        words = [(question, (1.0, 0.0)), (choices[:, 0], (0.0, 1.0))]
    _, state = jax.jit(lambda p, *a: model.apply(
        {"params": p}, *a, deterministic=True, method=method, capture_intermediates=True))(
            params, *args)
    projected = np.asarray(state["intermediates"]["token_projection"]["__call__"][0])

    table = np.asarray(params["word_embedding"]["embedding"])
    rows = [np.broadcast_to(np.asarray(params["cls_token"]), (BATCH, 1, D + 2))]
    for ids, flag in words:
        ids = np.asarray(ids)
        flags = np.broadcast_to(np.asarray(flag + (1.0, 0.0)), ids.shape + (4,))
        rows.append(np.concatenate([table[ids], flags], axis=-1))
    objects = np.asarray(latents).reshape(BATCH, FRAMES * SLOTS, D)  # frame-major
    rows.append(np.concatenate([objects, np.broadcast_to([0.0, 1.0], objects.shape[:2] + (2,))],
                               axis=-1))
    tokens = np.concatenate(rows, axis=1)
    kernel = np.asarray(params["token_projection"]["kernel"])
    bias = np.asarray(params["token_projection"]["bias"])
    np.testing.assert_allclose(projected, tokens @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_output_shapes(tiny):
    model, params = tiny
    latents, question, choices = tiny_inputs()
    assert run(model, params, ALOE.descriptive, latents, question).shape == (BATCH, ANSWERS)
    assert run(model, params, ALOE.multiple_choice, latents, question,
               choices).shape == (BATCH, CHOICES)
    cls, objects = model.apply({"params": params}, latents, question_flag=(1.0, 0.0),
                               deterministic=True, method=ALOE.encode)
    assert cls.shape == (BATCH, HEADS * (D + 2))
    assert objects.shape == (BATCH, FRAMES, SLOTS, HEADS * (D + 2))


@pytest.mark.parametrize("mask_on", [True, False])
def test_padding_mask(tiny, mask_on):
    model, params = tiny
    model = model.clone(word_padding_mask=mask_on)
    latents, question, choices = tiny_inputs()
    changed = jax.tree.map(lambda x: x, params)
    changed["word_embedding"]["embedding"] = params["word_embedding"]["embedding"].at[0].set(3.0)
    for method, args in ((ALOE.descriptive, (latents, question)),
                         (ALOE.multiple_choice, (latents, question, choices))):
        before = run(model, params, method, *args)
        after = run(model, changed, method, *args)
        if mask_on:
            np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-5)
        else:
            assert not np.allclose(before, after, rtol=1e-3, atol=1e-3)


def test_choice_logits_depend_only_on_their_choice(tiny):
    model, params = tiny
    latents, question, choices = tiny_inputs()
    before = run(model, params, ALOE.multiple_choice, latents, question, choices)
    other = choices.at[:, 1, :2].set(jnp.asarray([[7, 8], [8, 7]], jnp.int32))
    after = run(model, params, ALOE.multiple_choice, latents, question, other)
    np.testing.assert_allclose(after[:, [0, 2]], before[:, [0, 2]], rtol=1e-5, atol=1e-5)
    assert not np.allclose(after[:, 1], before[:, 1])


def test_dropout_and_determinism(tiny):
    model, params = tiny
    latents, question, choices = tiny_inputs()
    args = (latents, question, choices)
    np.testing.assert_array_equal(run(model, params, ALOE.multiple_choice, *args),
                                  run(model, params, ALOE.multiple_choice, *args))
    first = run(model, params, ALOE.multiple_choice, *args, rng=jax.random.key(1))
    np.testing.assert_array_equal(
        first, run(model, params, ALOE.multiple_choice, *args, rng=jax.random.key(1)))
    assert not np.allclose(first, run(model, params, ALOE.multiple_choice, *args,
                                      rng=jax.random.key(2)))
    assert not np.allclose(run(model, params, ALOE.descriptive, latents, question,
                               rng=jax.random.key(1)),
                           run(model, params, ALOE.descriptive, latents, question,
                               rng=jax.random.key(2)))


def test_descriptive_flag_quirk(tiny):
    model, params = tiny
    latents, question, _ = tiny_inputs()
    quirk = run(model, params, ALOE.descriptive, latents, question)
    plain = run(model.clone(descriptive_flag_quirk=False), params, ALOE.descriptive, latents,
                question)
    assert not np.allclose(quirk, plain)


def test_bad_inputs_are_rejected(tiny):
    model, params = tiny
    latents, question, choices = tiny_inputs()
    with pytest.raises(ValueError, match="latents"):
        run(model, params, ALOE.descriptive, latents[..., :-1], question)
    with pytest.raises(ValueError, match="question"):
        run(model, params, ALOE.descriptive, latents, question[:1])
    with pytest.raises(ValueError, match="choices"):
        run(model, params, ALOE.multiple_choice, latents, question, choices[:, 0])


@pytest.mark.parametrize("choice_len", [LC, LC + 1])
def test_combined_pass_equals_separate_methods(tiny, choice_len):
    model, params = tiny
    latents, question, choices = tiny_inputs(2)
    model = model.clone(descriptive_choice_len=choice_len)
    mc_latents, mc_question = latents[::-1], question[::-1]
    desc, mc = model.apply({"params": params}, latents, question, mc_latents, mc_question,
                           choices, deterministic=True,
                           method=ALOE.descriptive_and_multiple_choice)
    np.testing.assert_allclose(desc, run(model, params, ALOE.descriptive, latents, question),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mc, run(model, params, ALOE.multiple_choice, mc_latents,
                                       mc_question, choices), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_auxiliary():
    model = tiny_model(auxiliary=True)
    latents, question, choices = tiny_inputs()
    params = model.init({"params": jax.random.key(0)}, latents, question, choices,
                        deterministic=True)["params"]
    return model, params


def test_auxiliary_parameters_only_when_asked(tiny, tiny_auxiliary):
    assert "mask_embedding" not in tiny[1] and "latent_prediction" not in tiny[1]
    params = tiny_auxiliary[1]
    assert params["mask_embedding"].shape == (D,)
    assert params["latent_prediction"]["kernel"].shape == (HEADS * (D + 2), D)


def test_hidden_objects_do_not_reach_the_model(tiny_auxiliary):
    model, params = tiny_auxiliary
    latents, question, _ = tiny_inputs(3)
    visible = np.ones((BATCH, FRAMES, SLOTS), bool)
    visible[:, 1, 2] = False
    visible[0, 0, 0] = False
    changed = np.asarray(latents).copy()
    changed[~visible] += 5.0
    predict = lambda x: run(model, params, ALOE.predict_latents, x, question, jnp.asarray(visible))
    before, after = predict(latents), predict(jnp.asarray(changed))
    assert before.shape == (BATCH, FRAMES, SLOTS, D)
    np.testing.assert_allclose(before, after, rtol=1e-6, atol=1e-6)
    # A visible object does reach the predictions.
    changed[0, 0, 1] += 5.0
    assert not np.allclose(before, predict(jnp.asarray(changed)))
    # Predictions are f applied to the transformer's object outputs (an independent route).
    _, objects = model.apply({"params": params}, latents, question,
                             jnp.zeros((BATCH, LC), jnp.int32), question_flag=(0.0, 1.0),
                             visible=jnp.asarray(visible), deterministic=True,
                             method=ALOE.encode)
    kernel, bias = params["latent_prediction"]["kernel"], params["latent_prediction"]["bias"]
    np.testing.assert_allclose(before, np.asarray(objects) @ kernel + bias, rtol=1e-4, atol=1e-5)


def test_combined_pass_with_auxiliary_sub_batch(tiny_auxiliary):
    model, params = tiny_auxiliary
    latents, question, choices = tiny_inputs(4)
    visible = jnp.asarray(np.random.default_rng(0).random((BATCH, FRAMES, SLOTS)) > 0.3)
    desc, mc, predicted = model.apply(
        {"params": params}, latents, question, latents[::-1], question[::-1], choices,
        deterministic=True, aux=(latents[::-1], question, visible),
        method=ALOE.descriptive_and_multiple_choice)
    np.testing.assert_allclose(desc, run(model, params, ALOE.descriptive, latents, question),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mc, run(model, params, ALOE.multiple_choice, latents[::-1],
                                       question[::-1], choices), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predicted, run(model, params, ALOE.predict_latents,
                                              latents[::-1], question, visible),
                               rtol=1e-5, atol=1e-5)


def test_masking_needs_the_auxiliary_parameters(tiny):
    model, params = tiny
    latents, question, _ = tiny_inputs()
    with pytest.raises(ValueError, match="auxiliary=True"):
        model.apply({"params": params}, latents, question, None,
                    question_flag=(1.0, 0.0), visible=jnp.ones(latents.shape[:3], bool),
                    deterministic=True, method=ALOE.encode)


def test_cater_model_grid_logits_and_latents():
    model = build_aloe_cater(latent_dim=D, num_heads=HEADS, num_layers=2, mlp_dim=16,
                      head_hidden_dim=8, auxiliary=True)
    latents = tiny_inputs()[0]
    params = model.init({"params": jax.random.key(0)}, latents, deterministic=True)["params"]
    assert params["grid_output"]["kernel"].shape == (8, 36)
    logits = model.apply({"params": params}, latents, deterministic=True)
    visible = jnp.ones(latents.shape[:3], bool)
    logits2, predicted = model.apply({"params": params}, latents, visible, deterministic=True,
                                     method=ALOECater.logits_and_latents)
    assert logits.shape == (BATCH, 36) and predicted.shape == latents.shape
    np.testing.assert_allclose(logits, logits2, rtol=1e-6)
    # Objects of later frames change the logits: the model sees the whole video.
    moved = latents.at[:, -1].add(1.0)
    assert not np.allclose(logits, model.apply({"params": params}, moved, deterministic=True))


def test_cater_paper_configuration_parameter_count():
    model = build_aloe_cater()
    shapes = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 80, 8, 36)), deterministic=True))["params"]
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    width, token, mlp = 8 * 38, 38, 1024
    layer = 4 * width + 5 * width * width + 2 * width + width * mlp + mlp + mlp * width + width
    expected = token + (token * width + width) + 16 * layer + (width * 144 + 144 + 144 * 36 + 36)
    assert count == expected


# ------------------------------------------------------ Table 1 reasoner variants


def _paper_parameter_counts(model: ALOE, inputs) -> dict[str, int]:
    """Parameters per top-level name of `model` at the CLEVRER size (shapes only)."""
    shapes = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, inputs, jnp.zeros((1, 20), jnp.int32),
        jnp.zeros((1, 4, 12), jnp.int32), deterministic=True))["params"]
    return {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
            for name, tree in shapes.items()}


def _resnet_parameters(d: int, stages=(2, 2, 2, 2), widths=(32, 64, 128, 128),
                       strides=(1, 2, 2, 2), stem=32) -> int:
    """ResNetEntities' parameters counted by hand (GroupNorm, no conv biases)."""
    count, channels = 3 * 3 * 3 * stem + 2 * stem, stem           # stem conv + norm
    for size, width, stride in zip(stages, widths, strides):
        for block in range(size):
            count += 9 * channels * width + 9 * width * width + 4 * width  # 2 convs + 2 norms
            if (stride if block == 0 else 1) != 1 or channels != width:
                count += channels * width + 2 * width             # shortcut conv + norm
            channels = width
    return count + (channels + 2) * d + d                          # entity projection


def test_variant_parameter_counts_at_clevrer_size():
    width, token, mlp, hidden = 180, 18, 1024, 128
    layer = 4 * width + 5 * width * width + 2 * width + width * mlp + mlp + mlp * width + width
    shared = (82 * 14 + token                                      # words, CLS
              + (width * hidden + hidden + hidden * 21 + 21)       # descriptive head
              + (width * hidden + hidden + hidden + 1))            # choice head
    projection = token * width + width
    latents = jnp.zeros((1, 25, 8, 16))
    base = dict(vocab_size=82, num_answers=21)

    transformer = _paper_parameter_counts(build_aloe(**base), latents)
    assert sum(transformer.values()) == shared + projection + 28 * layer == 14_975_632

    mlp_counts = _paper_parameter_counts(build_aloe(reasoner=MLP, **base), latents)
    assert "token_projection" not in mlp_counts  # The MLP reads the raw d + 2 tokens.
    first = 233 * token * 2048 + 2048
    assert mlp_counts["mlp_reasoner"] == first + 3 * (2048 * 2048 + 2048) + 2048 * width + width
    assert sum(mlp_counts.values()) == 21_599_576  # The paper's "20M vs 15M".

    hierarchical = _paper_parameter_counts(
        build_aloe(reasoner={"name": "hierarchical"}, num_layers=26, **base), latents)
    frame_vector = (32 + 8) * width
    reasoner = 26 * layer + 2 * frame_vector + frame_vector * width + width
    assert hierarchical["hierarchical_reasoner"] == reasoner
    assert sum(hierarchical.values()) == shared + projection + reasoner == 15_220_364

    frames = jnp.zeros((1, 25, 64, 64, 3), jnp.uint8)
    resnet = _paper_parameter_counts(build_aloe(entities={"name": "resnet"}, **base), frames)
    assert resnet["resnet_entities"] == _resnet_parameters(16) == 1_304_912
    assert sum(resnet.values()) == 14_975_632 + 1_304_912
    assert build_aloe(entities={"name": "resnet"}, **base).entities_per_frame((64, 64, 3)) == 16


def test_variant_errors_are_clear():
    latents, question, choices = tiny_inputs()
    init = lambda model, *args: jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, *args, deterministic=True))
    with pytest.raises(ValueError, match="reasoner.name must be one of"):
        init(tiny_model(reasoner={"name": "lstm"}), latents, question, choices)
    with pytest.raises(ValueError, match="'mlp' has no object outputs"):
        init(tiny_model(reasoner=MLP, auxiliary=True), latents, question, choices)
    # A fixed-size reasoner cannot take descriptive and choice sequences of different lengths.
    with pytest.raises(ValueError, match="same layout"):
        init(tiny_model(reasoner=MLP, descriptive_choice_len=LC + 1), latents, question, choices)
    with pytest.raises(ValueError, match="frames"):
        init(tiny_model(entities={"name": "resnet"}), latents, question, choices)
    with pytest.raises(ValueError, match="latents must be"):
        tiny_model().entities_per_frame((64, 64, 3))


@pytest.mark.parametrize("variant", ["mlp", "hierarchical"])
def test_variant_combined_pass_equals_separate_methods(variant):
    latents, question, choices = tiny_inputs(5)
    reasoner = {"name": "mlp", "hidden_dim": 16, "hidden_layers": 1} if variant == "mlp" else {
        "name": "hierarchical"}
    model = tiny_model(reasoner=reasoner)  # Two blocks: 1 + 1 for the hierarchical one.
    params = jax.jit(lambda key: model.init({"params": key}, latents, question, choices,
                                            deterministic=True))(jax.random.key(0))["params"]
    desc, mc = model.apply({"params": params}, latents, question, latents[::-1], question[::-1],
                           choices, deterministic=True,
                           method=ALOE.descriptive_and_multiple_choice)
    np.testing.assert_allclose(desc, run(model, params, ALOE.descriptive, latents, question),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mc, run(model, params, ALOE.multiple_choice, latents[::-1],
                                       question[::-1], choices), rtol=1e-5, atol=1e-5)
    # Padding words reach no output (word_padding_mask is on).
    changed = jax.tree.map(lambda x: x, params)
    changed["word_embedding"]["embedding"] = params["word_embedding"]["embedding"].at[0].set(3.0)
    np.testing.assert_allclose(run(model, changed, ALOE.descriptive, latents, question),
                               run(model, params, ALOE.descriptive, latents, question),
                               rtol=1e-5, atol=1e-5)


def test_hierarchical_latent_predictions_come_from_their_own_frame():
    model = tiny_model(reasoner={"name": "hierarchical"}, auxiliary=True)  # 1 + 1 blocks.
    latents, question, choices = tiny_inputs(6)
    params = model.init({"params": jax.random.key(0)}, latents, question, choices,
                        deterministic=True)["params"]
    visible = jnp.ones((BATCH, FRAMES, SLOTS), bool).at[:, :, 0].set(False)
    predict = lambda x: run(model, params, ALOE.predict_latents, x, question, visible)
    before = predict(latents)
    after = predict(latents.at[:, 1].add(2.0))  # Every object of frame 1 moves.
    assert before.shape == (BATCH, FRAMES, SLOTS, D)
    np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(after[:, 1] - before[:, 1]).max() > 1e-4
    # They are f of the stage-1 object outputs (an independent route to them).
    _, stage_one = model.apply({"params": params}, latents, question,
                               jnp.zeros((BATCH, LC), jnp.int32), question_flag=(0.0, 1.0),
                               visible=visible, deterministic=True, method=ALOE.encode)
    kernel, bias = params["latent_prediction"]["kernel"], params["latent_prediction"]["bias"]
    np.testing.assert_allclose(before, np.asarray(stage_one) @ kernel + bias, rtol=1e-4,
                               atol=1e-5)


def test_resnet_variant_reads_frames_and_returns_its_entities_as_targets():
    from aloe.models.entities import ResNetEntities  # pylint: disable=g-import-not-at-top
    resnet_options = dict(name="resnet", stage_sizes=(1, 1), widths=(4, 8), stage_strides=(2, 2),
                          stem_width=4, num_groups=2)
    model = tiny_model(entities=resnet_options, auxiliary=True)
    rng = np.random.default_rng(7)
    frames = jnp.asarray(rng.integers(0, 256, size=(BATCH, FRAMES, 16, 16, 3)), jnp.uint8)
    _, question, choices = tiny_inputs(7)
    entities = model.entities_per_frame((16, 16, 3))
    assert entities == 4  # 16 / (2 * 2 * 2) = 2 -> 2 x 2 cells.
    params = model.init({"params": jax.random.key(0)}, frames, question, choices,
                        deterministic=True)["params"]
    visible = jnp.ones((BATCH, FRAMES, entities), bool).at[:, 0, 1].set(False)
    desc, mc, predicted, targets = model.apply(
        {"params": params}, frames, question, frames, question, choices, deterministic=True,
        aux=(frames, question, visible), return_targets=True,
        method=ALOE.descriptive_and_multiple_choice)
    assert desc.shape == (BATCH, ANSWERS) and mc.shape == (BATCH, CHOICES)
    assert predicted.shape == targets.shape == (BATCH, FRAMES, entities, D)
    resnet = ResNetEntities(output_dim=D, stage_sizes=(1, 1), widths=(4, 8), stage_strides=(2, 2),
                            stem_width=4, num_groups=2)
    expected = resnet.apply({"params": params["resnet_entities"]}, frames)
    np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(desc, run(model, params, ALOE.descriptive, frames, question),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["mlp", "hierarchical", "resnet"])
def test_cater_model_variants(variant):
    options = {"resnet": dict(entities=dict(name="resnet", stage_sizes=(1,), widths=(4,),
                                            stage_strides=(2,), stem_width=4, num_groups=2)),
               "mlp": dict(reasoner=dict(name="mlp", hidden_dim=8, hidden_layers=1)),
               "hierarchical": dict(reasoner=dict(name="hierarchical"))}[variant]
    model = build_aloe_cater(latent_dim=D, num_heads=HEADS, num_layers=1, mlp_dim=16,
                             head_hidden_dim=8, auxiliary=variant != "mlp", **options)
    inputs = tiny_inputs()[0]
    if variant == "resnet":
        inputs = jnp.zeros((BATCH, FRAMES, 8, 8, 3), jnp.uint8)  # 2 x 2 = 4 entities.
    variables = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, inputs,
                                                  deterministic=True))
    logits = jax.eval_shape(lambda v: model.apply(v, inputs, deterministic=True), variables)
    assert logits.shape == (BATCH, 36)
    if variant != "mlp":
        slots = 4 if variant == "resnet" else SLOTS
        outputs = jax.eval_shape(lambda v: model.apply(
            v, inputs, jnp.ones((BATCH, FRAMES, slots), bool), deterministic=True,
            return_targets=True, method=ALOECater.logits_and_latents), variables)
        assert [o.shape for o in outputs] == [(BATCH, 36)] + [(BATCH, FRAMES, slots, D)] * 2

"""Each reasoner alone through the reasoner interface, and the factory's checks of a config."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from aloe.models import entities
from aloe.models import factory
from aloe.models import reasoners
from aloe.models.tokens import TokenLayout
from aloe.models.transformer import RelativeTransformer

D, HEADS, BATCH, WORDS, FRAMES, SLOTS = 4, 2, 2, 3, 2, 3
TOKEN = D + 2
WIDTH = HEADS * TOKEN
LAYOUT = TokenLayout(WORDS, FRAMES, SLOTS)
NUM_TOKENS = 1 + WORDS + FRAMES * SLOTS


def tokens_and_mask(seed: int = 0):
    rng = np.random.default_rng(seed)
    tokens = jnp.asarray(rng.normal(size=(BATCH, NUM_TOKENS, TOKEN)), jnp.float32)
    mask = np.ones((BATCH, NUM_TOKENS), bool)
    mask[:, WORDS] = False  # The last word is padding.
    return tokens, jnp.asarray(mask)


def build(name: str, **fields):
    sizes = dict(latent_dim=D, num_heads=HEADS, num_layers=2, mlp_dim=8, dropout_rate=0.0)
    return factory.build_reasoner({"name": name, **fields}, **sizes)


def apply(reasoner, tokens, mask, layout=LAYOUT, seed: int = 0):
    params = reasoner.init(jax.random.key(seed), tokens, mask, layout, deterministic=True)
    return params, reasoner.apply(params, tokens, mask, layout, deterministic=True)


@pytest.mark.parametrize("name", ["transformer", "hierarchical"])
def test_attention_reasoners_return_cls_and_object_outputs(name):
    reasoner = build(name)
    tokens, mask = tokens_and_mask()
    params, (cls, objects) = apply(reasoner, tokens, mask)
    assert reasoner.has_object_outputs
    assert cls.shape == (BATCH, WIDTH) and objects.shape == (BATCH, FRAMES, SLOTS, WIDTH)
    assert set(params["params"]) == {"token_projection", {
        "transformer": "transformer", "hierarchical": "hierarchical_reasoner"}[name]}
    # The masked (padding) word reaches no output.
    changed = tokens.at[:, WORDS].set(5.0)
    _, (cls2, objects2) = apply(reasoner, changed, mask)
    np.testing.assert_allclose(cls2, cls, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(objects2, objects, rtol=1e-5, atol=1e-5)


def test_transformer_reasoner_reads_cls_from_position_zero_and_objects_after_the_words():
    reasoner = build("transformer")
    tokens, mask = tokens_and_mask(1)
    params, (cls, objects) = apply(reasoner, tokens, mask)
    # An independent route: the projection and the tower by hand, split at the layout.
    p = params["params"]
    x = jax.nn.relu(tokens @ p["token_projection"]["kernel"] + p["token_projection"]["bias"])
    tower = RelativeTransformer(num_layers=2, num_heads=HEADS, head_dim=TOKEN, mlp_dim=8,
                                dropout_rate=0.0)
    out = tower.apply({"params": p["transformer"]}, x, mask, deterministic=True)
    np.testing.assert_allclose(cls, out[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(objects, out[:, 1 + WORDS:].reshape(objects.shape), rtol=1e-5,
                               atol=1e-5)


def test_hierarchical_reasoner_splits_the_layer_count():
    assert reasoners.hierarchical_layers(26) == (13, 13)
    assert reasoners.hierarchical_layers(5) == (2, 3)
    assert reasoners.hierarchical_layers(1) == (1, 1)
    tokens, mask = tokens_and_mask(2)
    params, _ = apply(build("hierarchical"), tokens, mask)
    stages = params["params"]["hierarchical_reasoner"]
    blocks = lambda name: len([k for k in stages[name] if k.startswith("layer_")])
    assert (blocks("frame_transformer"), blocks("video_transformer")) == (1, 1)
    deeper = build("hierarchical").clone(num_layers=5)
    stages = deeper.init(jax.random.key(0), tokens, mask, LAYOUT,
                         deterministic=True)["params"]["hierarchical_reasoner"]
    assert (blocks("frame_transformer"), blocks("video_transformer")) == (2, 3)


def test_hierarchical_object_outputs_see_only_their_frame():
    reasoner = build("hierarchical")
    tokens, mask = tokens_and_mask(3)
    params, (_, objects) = apply(reasoner, tokens, mask)
    frame_one = slice(1 + WORDS + SLOTS, 1 + WORDS + 2 * SLOTS)
    moved = tokens.at[:, frame_one].add(1.0)
    objects2 = reasoner.apply(params, moved, mask, LAYOUT, deterministic=True)[1]
    np.testing.assert_allclose(objects2[:, 0], objects[:, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(objects2[:, 1] - objects[:, 1]).max() > 1e-4


def test_mlp_reasoner_returns_one_vector_and_no_object_outputs():
    reasoner = build("mlp", hidden_dim=16, hidden_layers=2)
    tokens, mask = tokens_and_mask(4)
    params, (vector, objects) = apply(reasoner, tokens, mask)
    assert not reasoner.has_object_outputs and reasoner.needs_one_layout()
    assert vector.shape == (BATCH, WIDTH) and objects is None
    # Its value, from the flattened tokens (the padding word zeroed) by hand.
    p = params["params"]["mlp_reasoner"]
    x = jnp.where(mask[..., None], tokens, 0.0).reshape(BATCH, -1)
    for layer in range(2):
        x = jax.nn.relu(x @ p[f"hidden_{layer}"]["kernel"] + p[f"hidden_{layer}"]["bias"])
    np.testing.assert_allclose(vector, x @ p["output"]["kernel"] + p["output"]["bias"],
                               rtol=1e-5, atol=1e-5)


def test_reasoners_check_the_layout():
    tokens, mask = tokens_and_mask()
    with pytest.raises(ValueError, match=r"tokens must be \[batch, 11, token_dim\]"):
        apply(build("transformer"), tokens, mask, TokenLayout(WORDS + 1, FRAMES, SLOTS))


def test_factory_rejects_a_field_the_reasoner_does_not_have():
    sizes = dict(latent_dim=D, num_heads=HEADS, num_layers=2, mlp_dim=8, dropout_rate=0.0)
    with pytest.raises(ValueError, match=r"config.model.reasoner: 'mlp' has no field "
                                         r"'frame_summary'; its fields: hidden_dim, hidden_layers"):
        factory.build_reasoner({"name": "mlp", "frame_summary": "objects"}, **sizes)
    with pytest.raises(ValueError, match=r"'hierarchical' has no field 'layer_norm_epsilon'"):
        factory.build_reasoner(ml_collections.ConfigDict(
            {"name": "hierarchical", "layer_norm_epsilon": 1e-5}), **sizes)
    with pytest.raises(ValueError, match=r"config.model.reasoner.name must be one of"):
        factory.build_reasoner({"name": "lstm"}, **sizes)
    with pytest.raises(ValueError, match=r"config.model.entities: 'latents' has no field "
                                         r"'widths'"):
        factory.build_entity_encoder({"name": "latents", "widths": (4,)}, latent_dim=D)
    with pytest.raises(ValueError, match=r"config.model has no field 'frame_num_layers'"):
        factory.build_aloe(vocab_size=9, num_answers=5, frame_num_layers=1)


def test_factory_builds_the_parts_of_a_config():
    config = ml_collections.ConfigDict({
        "latent_dim": D, "num_heads": HEADS, "num_layers": 3, "mlp_dim": 8,
        "head_hidden_dim": 8, "dropout_rate": 0.2,
        "reasoner": {"name": "hierarchical", "frame_summary": "objects"},
        "entities": {"name": "resnet", "widths": (4, 8, 8, 8), "stem_width": 4,
                     "num_groups": 2}})
    model = factory.build_aloe(vocab_size=9, num_answers=5, **config)
    assert isinstance(model.reasoner, reasoners.HierarchicalTransformerReasoner)
    assert (model.reasoner.num_layers, model.reasoner.head_dim, model.reasoner.dropout_rate,
            model.reasoner.frame_summary) == (3, D + 2, 0.2, "objects")
    assert isinstance(model.entity_encoder, entities.ResNetHyperpixels)
    assert model.entity_encoder.widths == (4, 8, 8, 8)
    assert model.input_kind() == entities.FRAMES
    assert model.entities_per_frame((64, 64, 3)) == 16


@pytest.mark.parametrize("name", ["transformer", "hierarchical"])
def test_attention_reasoners_compute_in_bfloat16_close_to_float32(name):
    sizes = dict(latent_dim=D, num_heads=HEADS, num_layers=2, mlp_dim=8, dropout_rate=0.0)
    f32 = factory.build_reasoner({"name": name}, **sizes, dtype="float32")
    bf16 = factory.build_reasoner({"name": name}, **sizes, dtype="bfloat16")
    tokens, mask = tokens_and_mask(2)
    params, (cls32, objects32) = apply(f32, tokens, mask)
    cls16, objects16 = bf16.apply(params, tokens, mask, LAYOUT, deterministic=True)
    jaxpr = str(jax.make_jaxpr(lambda p: bf16.apply(p, tokens, mask, LAYOUT,
                                                    deterministic=True))(params))
    assert "bf16[" in jaxpr  # The transformers' matmuls take bfloat16 operands.
    for exact, approx in ((cls32, cls16), (objects32, objects16)):
        assert approx.dtype == jnp.float32
        # bfloat16's 8 significand bits, through two blocks: a few percent of the scale.
        assert np.max(np.abs(approx - exact)) < 0.05 * np.max(np.abs(exact))
    with pytest.raises(ValueError, match=r"'mlp' reasoner computes in float32 only"):
        factory.build_reasoner({"name": "mlp"}, **sizes, dtype="bfloat16")

"""The release's model options of ALOE: parameter count, answer head, mask vector, dropout, init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe.models import ALOE
from aloe.models import build_aloe
from configs import release as release_config

D, HEADS, FRAMES, SLOTS, LQ, LC, CHOICES, BATCH = 4, 2, 3, 4, 5, 3, 2, 3
VOCAB, ANSWERS = 9, 5
# The options of the transformer reasoner (config.model.reasoner).
REASONER_FIELDS = ("attention_output_bias", "layer_norm_epsilon", "attention_dropout_rate",
                   "position_dropout_rate", "input_dropout_rate")
RELEASE_OPTIONS = dict(answer_logit_offset=1, attention_output_bias=True, full_token_mask=True,
                       layer_norm_epsilon=1e-5, initialization="release",
                       attention_dropout_rate=0.1, position_dropout_rate=0.1,
                       input_dropout_rate=0.1, word_padding_mask=False)


def tiny_release_model(**overrides) -> ALOE:
    config = dict(vocab_size=VOCAB, num_answers=ANSWERS, latent_dim=D, num_heads=HEADS,
                  num_layers=2, mlp_dim=16, head_hidden_dim=8, descriptive_choice_len=LC,
                  **RELEASE_OPTIONS)
    config = {**config, **overrides}
    reasoner = {"name": "transformer", **{k: config.pop(k) for k in REASONER_FIELDS if k in config}}
    return build_aloe(reasoner=reasoner, **config)


def tiny_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    latents = jnp.asarray(rng.normal(size=(BATCH, FRAMES, SLOTS, D)), jnp.float32)
    question = jnp.asarray(rng.integers(1, VOCAB, size=(BATCH, LQ)), jnp.int32)
    choices = jnp.asarray(rng.integers(1, VOCAB, size=(BATCH, CHOICES, LC)), jnp.int32)
    return latents, question, choices


def init(model: ALOE, seed: int = 0):
    latents, question, choices = tiny_inputs()
    return jax.jit(lambda key: model.init({"params": key}, latents, question, choices,
                                          deterministic=True))(jax.random.key(seed))["params"]


def parameter_count(model: ALOE) -> int:
    shapes = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 25, 8, 16)), jnp.zeros((1, 20), jnp.int32),
        jnp.zeros((1, 4, 12), jnp.int32), deterministic=True))["params"]
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


def test_release_configuration_parameter_count():
    config = release_config.get_config()
    model = build_aloe(vocab_size=82, num_answers=21, **config.model)
    # Ours without the release options (14,975,632) + the attention output biases,
    # the 22nd answer logit and the [d + 2] mask vector.
    assert parameter_count(model) == 14_975_632 + 28 * 180 + (128 + 1) + 18 == 14_980_819


def test_answer_head_has_an_unused_leading_logit():
    model = tiny_release_model(attention_dropout_rate=0.0)
    params = init(model)
    assert params["descriptive_output"]["kernel"].shape == (8, ANSWERS + 1)
    latents, question, _ = tiny_inputs(1)
    logits, state = model.apply({"params": params}, latents, question, deterministic=True,
                                method=ALOE.descriptive, capture_intermediates=True)
    head = np.asarray(state["intermediates"]["descriptive_output"]["__call__"][0])
    assert head.shape == (BATCH, ANSWERS + 1) and logits.shape == (BATCH, ANSWERS)
    np.testing.assert_array_equal(np.asarray(logits), head[:, 1:])  # class c = logit c + 1


def test_full_token_mask_vector_replaces_whole_tokens():
    model = tiny_release_model()
    params = init(model)
    assert params["mask_embedding"].shape == (D + 2,)  # Exists without the auxiliary loss.
    assert not np.any(params["mask_embedding"])          # Zero-initialised, as the release's.
    assert "latent_prediction" not in params
    params["mask_embedding"] = jnp.arange(D + 2, dtype=jnp.float32) + 1.0
    latents, question, _ = tiny_inputs(2)
    visible = jnp.asarray(np.random.default_rng(3).random((BATCH, FRAMES, SLOTS)) > 0.5)
    _, state = model.apply({"params": params}, latents, question, question_flag=(1.0, 0.0),
                           deterministic=True, visible=visible, method=ALOE.encode,
                           capture_intermediates=True)
    projected = np.asarray(state["intermediates"]["token_projection"]["__call__"][0])
    kernel = np.asarray(params["token_projection"]["kernel"])
    bias = np.asarray(params["token_projection"]["bias"])
    objects = projected[:, 1 + LQ:].reshape(BATCH, FRAMES, SLOTS, -1)
    tokens = np.concatenate([np.asarray(latents),
                             np.broadcast_to([0.0, 1.0], latents.shape[:3] + (2,))], -1)
    tokens = np.where(np.asarray(visible)[..., None], tokens, np.arange(D + 2) + 1.0)
    np.testing.assert_allclose(objects, tokens @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_input_dropout_acts_on_the_projection_before_its_relu():
    model = tiny_release_model(attention_dropout_rate=0.0, position_dropout_rate=0.0,
                               dropout_rate=0.0)
    params = init(model)
    latents = jnp.asarray(np.random.default_rng(4).normal(size=(8, 20, 8, D)), jnp.float32)
    question = jnp.ones((8, LQ), jnp.int32)
    _, state = model.apply({"params": params}, latents, question, deterministic=False,
                           rngs={"dropout": jax.random.key(5)}, method=ALOE.descriptive,
                           capture_intermediates=True)
    projected = np.asarray(state["intermediates"]["token_projection"]["__call__"][0])
    dropped = np.asarray(state["intermediates"]["input_dropout"]["__call__"][0])
    zero = dropped == 0
    # 8 x 169 tokens x 12 units: the standard error of the drop fraction is ~0.0027.
    assert abs(zero.mean() - 0.1) < 0.012
    np.testing.assert_allclose(dropped[~zero], projected[~zero] / 0.9, rtol=1e-5)
    assert (projected[zero] < 0).any()  # Dropped before the ReLU: negatives are dropped too.
    det = model.apply({"params": params}, latents, question, deterministic=True,
                      method=ALOE.descriptive)
    np.testing.assert_array_equal(det, model.apply({"params": params}, latents, question,
                                                   deterministic=True, method=ALOE.descriptive))


@pytest.mark.parametrize("option", ["attention_dropout_rate", "position_dropout_rate",
                                    "input_dropout_rate"])
def test_each_release_dropout_changes_training_outputs_only(option):
    rates = dict(dropout_rate=0.0, attention_dropout_rate=0.0, position_dropout_rate=0.0,
                 input_dropout_rate=0.0)
    model = tiny_release_model(**{**rates, option: 0.3})
    params = init(model)
    latents, question, _ = tiny_inputs(6)
    apply = lambda **kw: np.asarray(model.apply({"params": params}, latents, question,
                                                method=ALOE.descriptive, **kw))
    without = tiny_release_model(**rates)
    det = np.asarray(without.apply({"params": params}, latents, question, deterministic=True,
                                   method=ALOE.descriptive))
    np.testing.assert_allclose(apply(deterministic=True), det, rtol=1e-6)
    trained = apply(deterministic=False, rngs={"dropout": jax.random.key(7)})
    assert not np.allclose(trained, det, atol=1e-4)


def test_release_initialisation_statistics():
    config = release_config.get_config()
    config.model.num_layers = 2  # The tower's own statistics: tests/test_transformer.py.
    model = build_aloe(vocab_size=82, num_answers=21, **config.model)
    params = jax.jit(lambda key: model.init(
        {"params": key}, jnp.zeros((1, 2, 8, 16)), jnp.zeros((1, 20), jnp.int32),
        jnp.zeros((1, 4, 12), jnp.int32), deterministic=True))(jax.random.key(8))["params"]
    p = jax.tree.map(np.asarray, params)
    embedding = p["word_embedding"]["embedding"]               # [82, 14] standard normal
    assert abs(embedding.std() - 1.0) < 0.08 and np.abs(embedding).max() > 2.5
    projection = p["token_projection"]["kernel"]               # [18, 180] He, truncated
    assert abs(projection.std() / np.sqrt(2 / 18) - 1) < 0.06
    assert np.abs(projection).max() <= 2 * np.sqrt(2 / 18) / 0.8796 + 1e-6
    for name, fan_in in (("descriptive_hidden", 180), ("descriptive_output", 128),
                         ("choice_hidden", 180)):               # Sonnet Linear default
        kernel = p[name]["kernel"]
        assert abs(kernel.std() / (0.8796 / np.sqrt(fan_in)) - 1) < 0.1, name
        assert np.abs(kernel).max() <= 2 / np.sqrt(fan_in) + 1e-6, name
        assert not np.any(p[name]["bias"])
    assert not np.any(p["cls_token"]) and not np.any(p["mask_embedding"])
    query = p["transformer"]["layer_0"]["attention"]["query"]  # 2 / sqrt(layers) scaling
    assert abs(query.std() / np.sqrt(2 / np.sqrt(2) / 180) - 1) < 0.03


def test_unset_release_dropouts_follow_dropout_rate():
    config = release_config.get_config()
    assert config.model.reasoner.attention_dropout_rate is None  # The release's one rate.
    off = tiny_release_model(dropout_rate=0.0, attention_dropout_rate=None,
                             position_dropout_rate=None, input_dropout_rate=None)
    params = init(off)
    latents, question, _ = tiny_inputs(9)
    apply = lambda model, **kw: np.asarray(model.apply({"params": params}, latents, question,
                                                       method=ALOE.descriptive, **kw))
    det = apply(off, deterministic=True)
    np.testing.assert_array_equal(apply(off, deterministic=False,
                                        rngs={"dropout": jax.random.key(10)}), det)
    on = off.clone(reasoner=off.reasoner.clone(dropout_rate=0.1))
    # pylint: disable-next=protected-access
    assert on.reasoner._rate(None) == 0.1 and on.reasoner._rate(0.3) == 0.3
    assert not np.allclose(apply(on, deterministic=False, rngs={"dropout": jax.random.key(10)}),
                           det, atol=1e-4)

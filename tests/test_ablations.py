"""Tests of the Table 1 ablations: the modules (MLP, hierarchical attention, ResNet
entities), the rows of configs/ablations.py, and each row training through the task."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aloe import evaluate
from aloe import parallel
from aloe import tasks
from aloe.data import latents as latents_lib
from aloe.models.ablations import HierarchicalReasoner
from aloe.models.ablations import MLPReasoner
from aloe.models.entities import ResNetEntities
from aloe.models.reasoners import hierarchical_layers
from aloe.models.transformer import RelativeTransformer
from aloe.synthetic import toy_latents
from configs import ablations as ablation_configs
from train_helpers import assert_resnet_trained
from train_helpers import train_on_one_batch

HEADS, HEAD_DIM = 2, 4
WIDTH = HEADS * HEAD_DIM
BATCH, WORDS, FRAMES, SLOTS = 2, 4, 3, 2


def init_key(seed: int = 0) -> jax.Array:
    """A parameter-init key. XLA's CPU compiler takes seconds per threefry draw when a
    program has many of them, so these tests initialise with the 'rbg' generator."""
    return jax.random.key(seed, impl="rbg")


def parameter_count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def transformer_layer_parameters(width: int, heads: int, head_dim: int, mlp: int) -> int:
    """Parameters of one relative transformer block, counted by hand."""
    return (2 * 2 * width                  # two LayerNorms (scale, bias)
            + 5 * width * width            # q, k, v, relative key, output: no bias
            + 2 * heads * head_dim         # content and position biases u, v
            + width * mlp + mlp            # feed-forward in
            + mlp * width + width)         # feed-forward out


def jitted_apply(model: nn.Module):
    """`model.apply`, compiled, with the keyword flags static."""
    return jax.jit(model.apply, static_argnames=("deterministic", "method", "mutable"))


def train_losses(model: nn.Module, params, loss_fn, steps: int, learning_rate: float):
    """Runs `steps` of Adam on `loss_fn(params)`; returns the losses before each step."""
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    return losses


# ---------------------------------------------------------------- MLPReasoner


def test_mlp_output_shape_and_padding_mask():
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.normal(size=(BATCH, 6, 5)), jnp.float32)
    mask = jnp.asarray([[True, True, True, False, False, True]] * BATCH)
    model = MLPReasoner(output_dim=7, hidden_dim=16, num_layers=2)
    params = jax.jit(lambda key: model.init(key, tokens, mask, deterministic=True))(init_key(0))
    apply = jitted_apply(model)
    out = apply(params, tokens, mask, deterministic=True)
    assert out.shape == (BATCH, 7)
    # Masked tokens' contents do not matter; a real token's do.
    padded_changed = tokens.at[:, 3:5].set(100.0)
    np.testing.assert_array_equal(apply(params, padded_changed, mask, deterministic=True), out)
    real_changed = tokens.at[:, 2].add(1.0)
    assert np.abs(apply(params, real_changed, mask, deterministic=True) - out).max() > 1e-3
    # Dropout acts only when not deterministic.
    dropped = apply(params, tokens, mask, deterministic=False,
                    rngs={"dropout": jax.random.key(1)})
    assert np.abs(dropped - out).max() > 1e-4


def test_mlp_parameter_count_at_clevrer_size():
    tokens, token_dim, width, hidden = 1 + 20 + 12 + 25 * 8, 18, 180, 2048
    model = MLPReasoner(output_dim=width)
    shapes = jax.eval_shape(lambda: model.init(
        init_key(0), jnp.zeros((1, tokens, token_dim)), deterministic=True))
    expected_reasoner = (tokens * token_dim * hidden + hidden       # first layer
                         + 3 * (hidden * hidden + hidden)           # three more layers
                         + hidden * width + width)                  # output vector
    assert parameter_count(shapes) == expected_reasoner == 21_549_236
    heads = ((width * 128 + 128) + (128 * 21 + 21)                  # descriptive head
             + (width * 128 + 128) + (128 * 1 + 1))                 # choice head
    word_embedding, cls_token = 82 * 14, token_dim
    whole_model = expected_reasoner + heads + word_embedding + cls_token
    assert whole_model == 21_599_576  # The paper's "20M", against ALOE's 14,975,632.


def test_mlp_trains_on_toy_regression():
    rng = np.random.default_rng(1)
    tokens = jnp.asarray(rng.normal(size=(32, 5, 3)), jnp.float32)
    targets = jnp.tanh(tokens[:, 0, 0] * tokens[:, 4, 1])[:, None]
    model = MLPReasoner(output_dim=1, hidden_dim=32, num_layers=2, dropout_rate=0.0)
    params = jax.jit(lambda key: model.init(key, tokens, deterministic=True))(init_key(0))
    loss_fn = lambda p: jnp.mean((model.apply(p, tokens, deterministic=True) - targets) ** 2)
    losses = train_losses(model, params, loss_fn, steps=40, learning_rate=3e-3)
    assert losses[-1] < 0.1 * losses[0]


def test_mlp_rejects_bad_input():
    model = MLPReasoner(output_dim=3, hidden_dim=4, num_layers=1)
    with pytest.raises(ValueError, match="mask shape"):
        model.init(init_key(0), jnp.zeros((2, 5, 3)), jnp.ones((2, 4), bool),
                   deterministic=True)
    with pytest.raises(ValueError, match="tokens must be"):
        model.init(init_key(0), jnp.zeros((2, 15)), deterministic=True)


# ------------------------------------------------------- HierarchicalReasoner


def tiny_hierarchical(**overrides) -> HierarchicalReasoner:
    config = dict(num_layers_frame=1, num_layers_video=1, num_heads=HEADS, head_dim=HEAD_DIM,
                  mlp_dim=16, dropout_rate=0.0)
    return HierarchicalReasoner(**{**config, **overrides})


def hierarchical_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    words = jnp.asarray(rng.normal(size=(BATCH, WORDS, WIDTH)), jnp.float32)
    word_mask = jnp.asarray([[True, True, False, False], [True, True, True, False]])
    objects = jnp.asarray(rng.normal(size=(BATCH, FRAMES, SLOTS, WIDTH)), jnp.float32)
    cls = jnp.asarray(rng.normal(size=(BATCH, WIDTH)), jnp.float32)
    return words, word_mask, objects, cls


@pytest.fixture(scope="module")
def hierarchical():
    model = tiny_hierarchical()
    params = jax.jit(lambda key, *args: model.init(key, *args, deterministic=True))(
        init_key(0), *hierarchical_inputs())
    return model, params


def test_hierarchical_shapes_and_sown_stage_one(hierarchical):
    model, params = hierarchical
    apply = jitted_apply(model)
    words, word_mask, objects, cls = hierarchical_inputs(1)
    (cls_out, frames_out), state = apply(params, words, word_mask, objects, cls,
                                         deterministic=True, mutable=("intermediates",))
    assert cls_out.shape == (BATCH, WIDTH)
    assert frames_out.shape == (BATCH, FRAMES, WIDTH)
    stage_one = apply(params, words, word_mask, objects, deterministic=True,
                      method=HierarchicalReasoner.encode_frames)
    assert stage_one.shape == (BATCH, FRAMES, WORDS + SLOTS, WIDTH)
    np.testing.assert_array_equal(state["intermediates"]["frame_outputs"][0], stage_one)
    # Padding words' outputs are zero, real words' are not.
    assert np.all(np.asarray(stage_one)[0, :, 2:4] == 0.0)
    assert np.all(np.abs(np.asarray(stage_one)[0, :, :2]).sum(-1) > 0)


def test_hierarchical_stage_one_sees_one_frame(hierarchical):
    model, params = hierarchical
    apply = jitted_apply(model)
    words, word_mask, objects, cls = hierarchical_inputs(2)
    encode = lambda o: np.asarray(apply(params, words, word_mask, o, deterministic=True,
                                        method=HierarchicalReasoner.encode_frames))
    before = encode(objects)
    after = encode(objects.at[:, 1].add(3.0))  # Change every object of frame 1.
    np.testing.assert_array_equal(after[:, 0], before[:, 0])
    np.testing.assert_array_equal(after[:, 2], before[:, 2])
    assert np.abs(after[:, 1] - before[:, 1]).max() > 1e-3
    # Stage 2 mixes the frames: the CLS output does change.
    full = lambda o: np.asarray(apply(params, words, word_mask, o, cls,
                                      deterministic=True)[0])
    assert np.abs(full(objects.at[:, 1].add(3.0)) - full(objects)).max() > 1e-4


def test_hierarchical_ignores_padding_words(hierarchical):
    model, params = hierarchical
    apply = jitted_apply(model)
    words, word_mask, objects, cls = hierarchical_inputs(3)
    out = apply(params, words, word_mask, objects, cls, deterministic=True)[0]
    changed = words.at[0, 2:].set(50.0).at[1, 3].set(-50.0)  # Padding positions only.
    np.testing.assert_allclose(
        apply(params, changed, word_mask, objects, cls, deterministic=True)[0], out,
        atol=1e-6)
    real_changed = words.at[:, 0].add(1.0)
    assert np.abs(apply(params, real_changed, word_mask, objects, cls,
                        deterministic=True)[0] - out).max() > 1e-4


def test_hierarchical_parameter_count_matches_flat_model():
    width, heads, head_dim, mlp = 180, 10, 18, 1024
    words, frames, slots = 32, 25, 8
    layer = transformer_layer_parameters(width, heads, head_dim, mlp)
    model = HierarchicalReasoner()
    shapes = jax.eval_shape(lambda: model.init(
        init_key(0), jnp.zeros((1, words, width)), None,
        jnp.zeros((1, frames, slots, width)), jnp.zeros((1, width)), deterministic=True))
    frame_vector = (words + slots) * width
    expected = 26 * layer + 2 * frame_vector + frame_vector * width + width
    assert parameter_count(shapes) == expected == 15_166_604
    flat = jax.eval_shape(lambda: RelativeTransformer(28, heads, head_dim, mlp).init(
        init_key(0), jnp.zeros((1, 233, width)), deterministic=True))
    assert parameter_count(flat) == 28 * layer == 14_921_872
    assert abs(expected / (28 * layer) - 1) < 0.02


def test_hierarchical_cls_and_summary_options():
    words, word_mask, objects, cls = hierarchical_inputs(4)
    init_shapes = lambda model, *args: jax.eval_shape(
        lambda: model.init(init_key(0), *args, deterministic=True))
    learned = tiny_hierarchical(learned_cls=True, frame_summary="objects")
    params = init_shapes(learned, words, word_mask, objects)
    assert params["params"]["cls_token"].shape == (WIDTH,)
    # The frame projection reads only the K object outputs.
    assert params["params"]["frame_projection"]["kernel"].shape == (SLOTS * WIDTH, WIDTH)
    with pytest.raises(ValueError, match="learned_cls=True"):
        init_shapes(learned, words, word_mask, objects, cls)
    with pytest.raises(ValueError, match="learned_cls=False"):
        init_shapes(tiny_hierarchical(), words, word_mask, objects)
    with pytest.raises(ValueError, match="frame_summary"):
        init_shapes(tiny_hierarchical(frame_summary="frames"), words, word_mask, objects, cls)
    with pytest.raises(ValueError, match="objects must be"):
        init_shapes(tiny_hierarchical(), words, word_mask, objects[..., :3], cls)


def test_hierarchical_trains_on_toy_regression():
    rng = np.random.default_rng(5)
    batch = 16
    words = jnp.asarray(rng.normal(size=(batch, WORDS, WIDTH)), jnp.float32)
    objects = jnp.asarray(rng.normal(size=(batch, FRAMES, SLOTS, WIDTH)), jnp.float32)
    targets = objects[:, -1, 0, 0] - objects[:, 0, 1, 0]  # Needs two frames.
    model = tiny_hierarchical(learned_cls=True)
    params = jax.jit(lambda key: model.init(key, words, None, objects, deterministic=True))(
        init_key(0))
    readout = lambda p: model.apply(p, words, None, objects, deterministic=True)[0][:, 0]
    loss_fn = lambda p: jnp.mean((readout(p) - targets) ** 2)
    losses = train_losses(model, params, loss_fn, steps=40, learning_rate=1e-2)
    assert losses[-1] < 0.1 * losses[0]


# ------------------------------------------------------------- ResNetEntities


def tiny_resnet(**overrides) -> ResNetEntities:
    config = dict(output_dim=5, stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), stem_width=4,
                  num_groups=2)
    return ResNetEntities(**{**config, **overrides})


def test_resnet_entities_shapes_and_frame_independence():
    rng = np.random.default_rng(6)
    frames = jnp.asarray(rng.uniform(size=(BATCH, FRAMES, 64, 64, 3)), jnp.float32)
    model = tiny_resnet()
    variables = jax.jit(model.init)(init_key(0), frames)
    assert set(variables) == {"params"}  # GroupNorm: no batch statistics to carry.
    apply = jax.jit(model.apply)
    entities = np.asarray(apply(variables, frames))
    assert model.total_stride() == 16
    assert entities.shape == (BATCH, FRAMES, 16, 5)  # 4 x 4 hyperpixels per frame.
    changed = np.asarray(apply(variables, frames.at[1, 2].set(0.0)))
    np.testing.assert_allclose(np.delete(changed, 2, axis=1)[1],
                               np.delete(entities, 2, axis=1)[1], atol=1e-6)
    np.testing.assert_allclose(changed[0], entities[0], atol=1e-6)
    assert np.abs(changed[1, 2] - entities[1, 2]).max() > 1e-3
    # uint8 frames are scaled to [0, 1].
    pixels = np.asarray(rng.integers(0, 256, size=frames.shape), np.uint8)
    np.testing.assert_allclose(apply(variables, jnp.asarray(pixels)),
                               apply(variables, jnp.asarray(pixels / 255.0, jnp.float32)),
                               atol=1e-5)
    # Fewer strides: 8 x 8 = 64 entities; no norm: convolutions carry biases.
    dense = tiny_resnet(stage_strides=(1, 1, 2, 2), num_groups=None)
    dense_shapes = jax.eval_shape(dense.init, init_key(0), frames)
    out_shape = jax.eval_shape(dense.apply, dense_shapes, frames).shape
    assert out_shape == (BATCH, FRAMES, 64, 5)
    assert "bias" in dense_shapes["params"]["stem"]


def test_resnet_gradients_reach_every_parameter():
    rng = np.random.default_rng(7)
    frames = jnp.asarray(rng.uniform(size=(BATCH, 2, 32, 32, 3)), jnp.float32)
    model = tiny_resnet()
    params = jax.jit(model.init)(init_key(0), frames)["params"]
    head = jnp.asarray(rng.normal(size=(5,)), jnp.float32)

    def downstream_loss(p):
        entities = model.apply({"params": p}, frames)  # [B, T, E, 5]
        return jnp.mean(jnp.tanh(entities @ head) ** 2)

    grads = jax.jit(jax.grad(downstream_loss))(params)
    norms = {jax.tree_util.keystr(path): float(jnp.linalg.norm(g))
             for path, g in jax.tree_util.tree_leaves_with_path(grads)}
    assert len(norms) == len(jax.tree.leaves(params))
    assert all(n > 0 for n in norms.values()), norms


def test_resnet_trains_on_toy_classification():
    rng = np.random.default_rng(8)
    batch = 16
    labels = rng.integers(0, 2, size=batch)
    frames = rng.uniform(0.0, 0.3, size=(batch, 1, 32, 32, 3))
    for i, label in enumerate(labels):  # A bright square in the left or right half.
        col = rng.integers(0, 8) + 16 * label
        row = rng.integers(0, 24)
        frames[i, 0, row:row + 8, col:col + 8] = 1.0
    frames = jnp.asarray(frames, jnp.float32)
    model = tiny_resnet(stage_strides=(1, 2, 2, 1))
    classifier = nn.Dense(2)
    resnet_params = jax.jit(model.init)(init_key(0), frames)["params"]
    features = jax.eval_shape(model.apply, {"params": resnet_params}, frames)
    features = jnp.zeros((batch, int(np.prod(features.shape[1:]))))
    params = {"resnet": resnet_params,
              "classifier": classifier.init(init_key(1), features)["params"]}

    def loss_fn(p):
        entities = model.apply({"params": p["resnet"]}, frames).reshape(batch, -1)
        logits = classifier.apply({"params": p["classifier"]}, entities)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    losses = train_losses(model, params, loss_fn, steps=30, learning_rate=3e-3)
    assert losses[-1] < 0.1 * losses[0]


def test_resnet_rejects_bad_configuration():
    frames = jnp.zeros((1, 1, 64, 64, 3))
    with pytest.raises(ValueError, match="not divisible"):
        tiny_resnet().init(init_key(0), jnp.zeros((1, 1, 40, 40, 3)))
    with pytest.raises(ValueError, match="does not divide"):
        tiny_resnet(num_groups=3).init(init_key(0), frames)
    with pytest.raises(ValueError, match="same length"):
        tiny_resnet(widths=(4, 4)).init(init_key(0), frames)
    with pytest.raises(ValueError, match=r"\[batch, frames"):
        tiny_resnet().init(init_key(0), frames[0])


# ------------------------------------- Table 1 rows: configs, tasks and training

TOY_COLOURS = np.array([[128, 128, 128], [220, 40, 40], [40, 40, 220], [40, 200, 40],
                        [140, 90, 40], [230, 230, 40], [40, 220, 220], [160, 40, 200]], np.uint8)
FRAME_SIZE = 32


def render_toy_frames(latents: np.ndarray, size: int) -> np.ndarray:
    """uint8 `[T, size, size, 3]` of toy latents `[T, K, 16]`: every present object a
    square of its colour at its position, larger for a later shape index."""
    frames = np.full((latents.shape[0], size, size, 3), 16, np.uint8)
    for t, slots in enumerate(latents):
        for obj in slots:
            if obj[14] < 0.5:  # Background or empty slot.
                continue
            row, col = ((np.clip(obj[[13, 12]], -1, 1) + 1) / 2 * (size - 1)).round().astype(int)
            half = 1 + int(np.argmax(obj[8:11]))
            frames[t, max(row - half, 0):row + half + 1, max(col - half, 0):col + half + 1] = (
                TOY_COLOURS[int(np.argmax(obj[:8]))])
    return frames


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    """`(latent root, frame root)`: a tiny toy store and its rendered 32x32 frames."""
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=16, num_valid=8, seed=0)
    frames_root = str(tmp_path_factory.mktemp("frames"))
    for split in ("train", "valid"):
        source = latents_lib.LatentStore(root, split)
        target = latents_lib.LatentStore(frames_root, split, dtype=np.uint8)
        for scene in source.scenes():
            target.write(scene, render_toy_frames(source.read(scene), FRAME_SIZE))
    return root, frames_root


def row_config(row: str, toy_store, **overrides):
    """A Table 1 row at the test size, one transformer block, on the toy store."""
    config = ablation_configs.get_config(f"{row},test")
    config.data.root, config.data.frames_root = toy_store
    config.data.num_frames = 4
    config.model.num_layers = 1
    config.model.dropout_rate = 0.0
    config.optimizer.warmup_steps = 0
    config.optimizer.learning_rate = 1e-2
    config.auxiliary.batch = 4
    config.update_from_flattened_dict(overrides)
    return config


def test_ablation_config_rows():
    expected = {"full": ("transformer", 0.01), "no_auxiliary": ("transformer", 0.0),
                "mlp": ("mlp", 0.0), "resnet": ("resnet", 0.01),
                "hierarchical": ("hierarchical", 0.01)}
    assert set(expected) == set(ablation_configs.ROWS)
    for row, (variant, weight) in expected.items():
        config = ablation_configs.get_config(row)
        part = config.model.entities.name if row == "resnet" else config.model.reasoner.name
        assert (part, config.auxiliary.weight) == (variant, weight), row
        # Paper size; the hierarchical row spends the flat 28 blocks' budget as 13 + 13.
        assert config.model.num_layers == (26 if row == "hierarchical" else 28), row
        assert config.model.num_heads == 10
        assert config.data.num_slots == (16 if row == "resnet" else 8)
        assert config.train.permute_slots == (row != "resnet")
    hierarchical = ablation_configs.get_config("hierarchical").model
    assert hierarchical_layers(hierarchical.num_layers) == (13, 13)
    assert ablation_configs.get_config("mlp,test").model.reasoner.hidden_dim == 64
    with pytest.raises(ValueError, match="unknown row"):
        ablation_configs.get_config("lstm")
    with pytest.raises(ValueError, match="unknown base"):
        ablation_configs.get_config("mlp,huge")


def test_resnet_row_configuration_errors(toy_store, tmp_path):
    with pytest.raises(ValueError, match="permute_slots=False"):
        tasks.build(row_config("resnet", toy_store, **{"train.permute_slots": True}))
    with pytest.raises(ValueError, match="num_slots=4"):
        tasks.build(row_config("resnet", toy_store, **{"data.num_slots": 8}))
    with pytest.raises(ValueError, match="frames_root"):
        tasks.build(row_config("resnet", toy_store, **{"data.frames_root": ""}))
    # Frames of another size than data.frame_size: the message names the file.
    wrong = row_config("resnet", toy_store, **{"data.frame_size": 64, "data.num_slots": 16})
    with pytest.raises(ValueError, match=r"train/0\.npz: frames must be \[frames, 64, 64, 3\]"):
        tasks.build(wrong).data("train")
    # Latents whose slot count differs from data.num_slots.
    with pytest.raises(ValueError, match="8 slots of size 16, but config.data.num_slots = 4"):
        tasks.build(row_config("full", toy_store, **{"data.num_slots": 4})).data("train")
    with pytest.raises(ValueError, match="no object outputs"):
        task = tasks.build(row_config("mlp", toy_store, **{"auxiliary.weight": 0.01}))
        task.init_params(jax.random.key(0))


@pytest.mark.slow
@pytest.mark.parametrize("row", ["full", "mlp", "hierarchical"])
def test_latent_rows_train_on_four_devices(row, toy_store):
    config = row_config(row, toy_store, **{"train.permute_slots": False})
    _, _, history, _, _ = train_on_one_batch(config, steps=10)
    losses = [float(m["loss"]) for m in history]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert ("auxiliary_loss" in history[0]) == (row != "mlp")


@pytest.mark.slow
def test_resnet_row_learns_from_frames_and_evaluates(toy_store, tmp_path):
    config = row_config("resnet", toy_store)
    task, batch, history, initial, final = train_on_one_batch(config, steps=10)
    frames = batch["descriptive"]["latents"]  # The pixel path: frames under `latents`.
    assert frames.shape == (4, 4, FRAME_SIZE, FRAME_SIZE, 3) and frames.dtype == np.uint8
    losses = [float(m["loss"]) for m in history]
    assert losses[-1] < 0.7 * losses[0], losses
    assert np.isfinite(float(history[-1]["auxiliary_loss"]))
    # The task loss's gradient reaches every ResNet parameter, and training moves them.
    assert_resnet_trained(task, batch, initial, final)
    # Evaluation reads the validation frames.
    params = parallel.replicate(final, parallel.make_mesh())
    results = evaluate.evaluate(config, str(tmp_path), params=params, step=10)
    assert results["num_descriptive"] == len(task.data("valid").questions.descriptive)
    assert 0.0 <= results["descriptive"] <= 1.0
    assert os.path.exists(tmp_path / "eval_valid_10.json")

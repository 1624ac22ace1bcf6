"""Tests of the relative-position transformer against independent NumPy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe.models import transformer

HEADS, HEAD_DIM, TOKENS, BATCH = 2, 4, 7, 3
WIDTH = HEADS * HEAD_DIM


def numpy_relshift(x: np.ndarray) -> np.ndarray:
    """Transformer-XL's shift of a square [..., N, N] array by explicit indices."""
    n = x.shape[-1]
    out = np.zeros_like(x)
    for i in range(n):
        for j in range(n):
            if j <= i:
                out[..., i, j] = x[..., i, n - 1 - i + j]
            elif j >= i + 2:
                out[..., i, j] = x[..., i + 1, j - i - 2]
    return out


def numpy_encodings(n: int, width: int) -> np.ndarray:
    positions = np.arange(n - 1, -1, -1, dtype=np.float64)
    inv_freq = 1.0 / 10000 ** (np.arange(0, width, 2) / width)
    angles = positions[:, None] * inv_freq[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


def numpy_attention(params: dict, x: np.ndarray, mask: np.ndarray | None):
    """Relative attention of [B, N, W] inputs in float64: (output, weights [B,H,N,N])."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    b, n, _ = x.shape
    split = lambda a: a.reshape(*a.shape[:-1], HEADS, HEAD_DIM)
    q = split(x @ p["query"]) / np.sqrt(HEAD_DIM)  # [B, N, H, D]
    k, v = split(x @ p["key"]), split(x @ p["value"])
    r = split(numpy_encodings(n, WIDTH) @ p["relative_key"])  # [N, H, D]
    content = np.einsum("bihd,bjhd->bhij", q + p["content_bias"], k)
    position_queries = q + p["position_bias"]
    if mask is not None:  # A masked token's row of position scores is zero.
        position_queries = position_queries * mask[:, :, None, None]
    position = numpy_relshift(np.einsum("bihd,jhd->bhij", position_queries, r))
    logits = content + position
    if mask is not None:
        logits = np.where(mask[:, None, None, :], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhij,bjhd->bihd", weights, v).reshape(b, n, WIDTH)
    return out @ p["output"], weights


def random_params(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(size=(WIDTH, WIDTH)) / np.sqrt(WIDTH)
              for name in ("query", "key", "value", "relative_key", "output")}
    params["content_bias"] = rng.normal(size=(HEADS, HEAD_DIM))
    params["position_bias"] = rng.normal(size=(HEADS, HEAD_DIM))
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def test_relative_shift_matches_index_arithmetic():
    x = np.random.default_rng(0).normal(size=(2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(transformer.relative_shift(jnp.asarray(x))),
                                  numpy_relshift(x))


def test_sinusoid_encodings_match_numpy():
    np.testing.assert_allclose(np.asarray(transformer.sinusoid_encodings(9, 12)),
                               numpy_encodings(9, 12), atol=1e-6)


@pytest.mark.parametrize("use_mask", [False, True])
def test_attention_matches_numpy(use_mask):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, TOKENS, WIDTH)).astype(np.float32)
    mask = rng.random((BATCH, TOKENS)) > 0.4 if use_mask else None
    if use_mask:
        mask[:, 0] = True
    params = random_params(2)
    module = transformer.RelativeMultiHeadAttention(HEADS, HEAD_DIM)
    out, state = module.apply({"params": params}, jnp.asarray(x),
                              None if mask is None else jnp.asarray(mask),
                              mutable=["intermediates"])
    expected, weights = numpy_attention(params, x, mask)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-5)
    sown = np.asarray(state["intermediates"]["attention"][0])
    assert sown.shape == (BATCH, HEADS, TOKENS, TOKENS)
    np.testing.assert_allclose(sown, weights, rtol=1e-4, atol=1e-6)
    if use_mask:
        assert np.all(sown[np.broadcast_to(~mask[:, None, None, :], sown.shape)] == 0)


def reference_attention(q, k, v, rel, content_bias, position_bias, mask):
    """The formula with plain autodiff-able jnp ops: [B, H, N, D] in, [B, H, N, D] out."""
    content = jnp.einsum("bhid,bhjd->bhij", q + content_bias[:, None], k)
    position_queries = (q + position_bias[:, None]) * mask[:, None, :, None]
    position = transformer.relative_shift(jnp.einsum("bhid,hjd->bhij", position_queries, rel))
    logits = jnp.where(mask[:, None, None, :], content + position, -1e30)
    return jnp.einsum("bhij,bhjd->bhid", jax.nn.softmax(logits, axis=-1), v)


@pytest.mark.parametrize("chains", [0, 1, 2])
def test_relative_attention_gradients_match_autodiff(chains):
    keys = jax.random.split(jax.random.key(3), 7)
    shape = (BATCH, HEADS, TOKENS, HEAD_DIM)
    q, k, v = (jax.random.normal(keys[i], shape) for i in range(3))
    rel = jax.random.normal(keys[3], (HEADS, TOKENS, HEAD_DIM))
    biases = [jax.random.normal(keys[i], (HEADS, HEAD_DIM)) for i in (4, 5)]
    mask = jnp.asarray(np.random.default_rng(4).random((BATCH, TOKENS)) > 0.3).at[:, 0].set(True)
    cotangent = jax.random.normal(keys[6], shape)
    args = (q, k, v, rel, *biases)

    ours_fn = lambda *a: transformer.relative_attention(*a, chains)

    def loss(fn):
        return lambda *a: jnp.sum(fn(*a, mask) * cotangent)

    np.testing.assert_allclose(jax.jit(ours_fn)(*args, mask), reference_attention(*args, mask),
                               rtol=1e-5, atol=1e-5)
    ours = jax.jit(jax.grad(loss(ours_fn), argnums=range(6)))(*args)
    expected = jax.jit(jax.grad(loss(reference_attention), argnums=range(6)))(*args)
    for name, a, b in zip(("q", "k", "v", "rel", "u", "v_bias"), ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)


def test_dropout_statistics_and_keys():
    x = jnp.ones((400, 250))
    key_a, key_b = jax.random.split(jax.random.key(5))
    a = np.asarray(transformer.dropout(x, 0.1, key_a))
    b = np.asarray(transformer.dropout(x, 0.1, key_b))
    dropped_a, dropped_b = a == 0, b == 0
    # 100k draws: the standard error of the drop fraction is ~0.001.
    assert abs(dropped_a.mean() - 0.1) < 0.005
    assert abs((dropped_a & dropped_b).mean() - 0.01) < 0.002  # independent keys
    np.testing.assert_allclose(a[~dropped_a], 1 / 0.9, rtol=1e-6)
    assert abs(a.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(a, np.asarray(transformer.dropout(x, 0.1, key_a)))
    raw = np.asarray(transformer.dropout(x, 0.1, jax.random.key_data(key_a)))
    assert abs((raw == 0).mean() - 0.1) < 0.005
    # Neighbouring elements are not correlated.
    flat = dropped_a.reshape(-1).astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.02
    with pytest.raises(ValueError, match="rate"):
        transformer.dropout(x, 1.0, key_a)


def make_transformer(dropout_rate=0.1):
    return transformer.RelativeTransformer(num_layers=2, num_heads=HEADS, head_dim=HEAD_DIM,
                                           mlp_dim=16, dropout_rate=dropout_rate)


def jitted_apply(model):
    return jax.jit(model.apply, static_argnames=("deterministic",))


def test_transformer_dropout_and_determinism():
    model = make_transformer()
    x = jax.random.normal(jax.random.key(6), (BATCH, TOKENS, WIDTH))
    params = model.init({"params": jax.random.key(7)}, x, deterministic=True)["params"]
    apply = jitted_apply(model)
    det = lambda: apply({"params": params}, x, deterministic=True)
    drop = lambda seed: apply({"params": params}, x, deterministic=False,
                              rngs={"dropout": jax.random.key(seed)})
    np.testing.assert_array_equal(det(), det())
    np.testing.assert_array_equal(drop(1), drop(1))
    assert not np.allclose(drop(1), drop(2))
    assert not np.allclose(drop(1), det())
    assert det().shape == (BATCH, TOKENS, WIDTH)


def test_masked_tokens_are_not_attended():
    model = make_transformer(dropout_rate=0.0)
    x = jax.random.normal(jax.random.key(8), (BATCH, TOKENS, WIDTH))
    mask = jnp.ones((BATCH, TOKENS), bool).at[:, 2].set(False)
    params = model.init({"params": jax.random.key(9)}, x, mask, deterministic=True)["params"]
    changed = x.at[:, 2].set(100.0)
    apply = jitted_apply(model)
    before = np.asarray(apply({"params": params}, x, mask, deterministic=True))
    after = np.asarray(apply({"params": params}, changed, mask, deterministic=True))
    keep = np.arange(TOKENS) != 2
    np.testing.assert_allclose(before[:, keep], after[:, keep], rtol=1e-5, atol=1e-5)
    assert not np.allclose(before[:, 2], after[:, 2])
    unmasked = np.asarray(apply({"params": params}, changed, deterministic=True))
    assert not np.allclose(before[:, keep], unmasked[:, keep])


def test_transformer_rejects_bad_shapes():
    model = make_transformer()
    with pytest.raises(ValueError, match="Expected x of shape"):
        model.init({"params": jax.random.key(0)}, jnp.zeros((1, 3, WIDTH + 1)),
                   deterministic=True)
    with pytest.raises(ValueError, match="mask shape"):
        model.init({"params": jax.random.key(0)}, jnp.zeros((1, 3, WIDTH)),
                   jnp.ones((1, 4), bool), deterministic=True)


def _attention_inputs(seed: int, batch: int, heads: int, tokens: int, head_dim: int):
    keys = jax.random.split(jax.random.key(seed), 6)
    shape = (batch, heads, tokens, head_dim)
    q, k, v = (jax.random.normal(keys[i], shape) for i in range(3))
    rel = jax.random.normal(keys[3], (heads, tokens, head_dim))
    biases = [jax.random.normal(keys[i], (heads, head_dim)) for i in (4, 5)]
    return q, k, v, rel, biases


@pytest.mark.parametrize("chains", [0, 1])
def test_attention_weight_dropout_rate_and_gradients(chains):
    batch, heads, tokens, rate = 8, 4, 32, 0.1
    q, k, _, rel, biases = _attention_inputs(11, batch, heads, tokens, tokens)
    mask = jnp.ones((batch, tokens), bool)
    seeds = transformer.attention_dropout_seeds(jax.random.key(12), batch)
    # Values = identity: each output row is that query's row of dropped-out weights.
    eye = jnp.broadcast_to(jnp.eye(tokens), (batch, heads, tokens, tokens))
    dropped = np.asarray(transformer.relative_attention(q, k, eye, rel, *biases, mask, chains,
                                                        seeds, rate))
    weights = np.asarray(transformer.relative_attention_weights(q, k, rel, *biases, mask))
    zero = dropped == 0
    # 32,768 weights: the standard error of the drop fraction is ~0.0017.
    assert abs(zero.mean() - rate) < 0.01
    np.testing.assert_allclose(dropped[~zero], weights[~zero] / (1 - rate), rtol=1e-4)
    # Sequences and heads draw different masks.
    assert (zero[0] != zero[1]).any() and (zero[:, 0] != zero[:, 1]).any()
    without = transformer.relative_attention(q, k, eye, rel, *biases, mask, chains)
    np.testing.assert_allclose(np.asarray(without), weights, rtol=1e-4, atol=1e-6)

    # Gradients of the hand-written backward pass against autodiff of the formula
    # with the same keep mask.
    keep = jnp.asarray(~zero, jnp.float32) / (1 - rate)
    _, _, v, _, _ = _attention_inputs(13, batch, heads, tokens, tokens)
    cotangent = jax.random.normal(jax.random.key(14), v.shape)

    def reference(q, k, v, rel, u, w):
        logits = (jnp.einsum("bhid,bhjd->bhij", q + u[:, None], k)
                  + transformer.relative_shift(jnp.einsum("bhid,hjd->bhij", q + w[:, None], rel)))
        return jnp.einsum("bhij,bhjd->bhid", jax.nn.softmax(logits, -1) * keep, v)

    ours = lambda *a: transformer.relative_attention(*a, mask, chains, seeds, rate)
    loss = lambda fn: lambda *a: jnp.sum(fn(*a) * cotangent)
    args = (q, k, v, rel, *biases)
    np.testing.assert_allclose(jax.jit(ours)(*args), reference(*args), rtol=1e-4, atol=1e-5)
    got = jax.jit(jax.grad(loss(ours), argnums=range(6)))(*args)
    expected = jax.jit(jax.grad(loss(reference), argnums=range(6)))(*args)
    for name, a, b in zip(("q", "k", "v", "rel", "u", "v_bias"), got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    with pytest.raises(ValueError, match="dropout_seeds"):
        transformer.relative_attention(q, k, v, rel, *biases, mask, chains, None, rate)


def test_position_dropout_one_mask_for_every_layer():
    tokens, rate = 40, 0.1
    model = transformer.RelativeTransformer(num_layers=2, num_heads=HEADS, head_dim=HEAD_DIM,
                                            mlp_dim=16, dropout_rate=0.0,
                                            position_dropout_rate=rate)
    x = jax.random.normal(jax.random.key(15), (BATCH, tokens, WIDTH))
    params = model.init({"params": jax.random.key(16)}, x, deterministic=True)["params"]
    out, state = model.apply({"params": params}, x, deterministic=False,
                             rngs={"dropout": jax.random.key(17)},
                             capture_intermediates=True)
    dropped = np.asarray(state["intermediates"]["Dropout_0"]["__call__"][0])
    clean = numpy_encodings(tokens, WIDTH)
    zero = (dropped == 0) & (clean != 0)
    assert abs(zero.sum() / (clean != 0).sum() - rate) < 0.06  # 280 encodings
    assert zero.any()
    np.testing.assert_allclose(dropped[~zero], clean[~zero] / (1 - rate), rtol=1e-4, atol=1e-6)
    # Both layers read the same dropped encodings (and nothing else is random).
    y = x
    for layer in range(2):
        block = transformer.RelativeTransformerBlock(HEADS, HEAD_DIM, 16, 0.0)
        y = block.apply({"params": params[f"layer_{layer}"]}, y, None, deterministic=True,
                        encodings=jnp.asarray(dropped))
    np.testing.assert_allclose(np.asarray(out), np.asarray(y), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, model.apply({"params": params}, x, deterministic=True))


def test_output_bias_and_layer_norm_epsilon():
    x = 1e-3 * jax.random.normal(jax.random.key(18), (BATCH, TOKENS, WIDTH))
    model = make_transformer(0.0).clone(output_bias=True, layer_norm_epsilon=1e-5)
    params = model.init({"params": jax.random.key(19)}, x, deterministic=True)["params"]
    attention = params["layer_0"]["attention"]
    assert attention["output_bias"].shape == (WIDTH,)
    assert not np.any(attention["output_bias"])  # Zero-initialised, as Sonnet's.
    params["layer_0"]["attention"]["output_bias"] = jnp.arange(WIDTH, dtype=jnp.float32)
    # The first block by hand: attention on LayerNorm(x) with eps 1e-5 (inputs of std 1e-3,
    # whose variance 1e-6 makes the epsilon matter), plus the bias.
    xs = np.asarray(x, np.float64)
    norm = params["layer_0"]["attention_norm"]
    mean, var = xs.mean(-1, keepdims=True), xs.var(-1, keepdims=True)
    normed = (xs - mean) / np.sqrt(var + 1e-5) * np.asarray(norm["scale"]) + np.asarray(
        norm["bias"])
    attended, _ = numpy_attention({k: v for k, v in attention.items() if k != "output_bias"},
                                  normed, None)
    block = transformer.RelativeTransformerBlock(HEADS, HEAD_DIM, 16, 0.0, output_bias=True,
                                                 layer_norm_epsilon=1e-5)
    _, state = block.apply({"params": params["layer_0"]}, x, None, deterministic=True,
                           capture_intermediates=True)
    got = np.asarray(state["intermediates"]["attention"]["__call__"][0])
    np.testing.assert_allclose(got, attended + np.arange(WIDTH), rtol=1e-4, atol=1e-4)


def test_release_initialisation_statistics():
    layers, heads, head_dim, mlp = 4, 10, 18, 1024
    width = heads * head_dim
    model = transformer.RelativeTransformer(num_layers=layers, num_heads=heads,
                                            head_dim=head_dim, mlp_dim=mlp,
                                            initialization="release")
    params = jax.jit(lambda key: model.init({"params": key}, jnp.zeros((1, 3, width)),
                                            deterministic=True))(jax.random.key(20))["params"]
    scale = 2 / np.sqrt(layers)
    for layer in range(layers):
        p = jax.tree.map(np.asarray, params[f"layer_{layer}"])
        # Truncated-normal variance scaling (fan in): std sqrt(scale / fan_in), and no
        # value beyond two untruncated standard deviations.
        for name, kernel, fan_in in (
                [(n, p["attention"][n], width) for n in ("query", "key", "value",
                                                         "relative_key")]
                + [("mlp_hidden", p["mlp_hidden"]["kernel"], width),
                   ("mlp_output", p["mlp_output"]["kernel"], mlp)]):
            std = np.sqrt(scale / fan_in)
            assert abs(kernel.std() / std - 1) < 0.03, name
            assert np.abs(kernel).max() <= 2 * std / 0.8796 + 1e-6, name
            assert abs(kernel.mean()) < 0.1 * std, name
        # Sonnet's default Linear: truncated normal with std parameter 1 / sqrt(fan_in).
        output = p["attention"]["output"]
        assert abs(output.std() / (0.8796 / np.sqrt(width)) - 1) < 0.03
        assert np.abs(output).max() <= 2 / np.sqrt(width) + 1e-6
        # u and v: Glorot-uniform with the fans of a [1, heads, 1, head_dim] variable.
        limit = np.sqrt(6 / (heads + heads * head_dim))
        for name in ("content_bias", "position_bias"):
            bias = p["attention"][name]
            assert np.abs(bias).max() <= limit and np.abs(bias).max() > 0.9 * limit
            assert abs(bias.std() / (limit / np.sqrt(3)) - 1) < 0.15
        assert not np.any(p["mlp_hidden"]["bias"]) and not np.any(p["mlp_output"]["bias"])
        np.testing.assert_array_equal(p["attention_norm"]["scale"], 1.0)
    # Layers are drawn independently.
    assert not np.allclose(params["layer_0"]["attention"]["query"],
                           params["layer_1"]["attention"]["query"])

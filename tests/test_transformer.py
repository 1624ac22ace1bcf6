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

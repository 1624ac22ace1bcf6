"""The released ALOE model outside this project: a TF1 checkpoint writer and a NumPy forward pass.

Written from DESIGN.md §4 (the release's variable names, token layout and
Transformer-XL attention), not from `aloe.models`, so the tests can check the
converter and the model against it.
"""

import numpy as np


def release_variables(rng: np.random.Generator, *, vocab: int, d: int, heads: int,
                      layers: int, mlp: int, hidden: int, answers: int = 22
                      ) -> dict[str, np.ndarray]:
    """Random values for every variable of the release, by TF name (float32)."""
    token, width = d + 2, heads * (d + 2)
    normal = lambda *shape, scale=1.0: (scale * rng.normal(size=shape)).astype(np.float32)
    v = {"embed/embeddings": normal(vocab, d - 2), "dummy": normal(token, scale=0.5),
         "mask": normal(token, scale=0.5),
         "transformer_tower/mlp/linear_0/w": normal(token, width, scale=np.sqrt(2 / token)),
         "transformer_tower/mlp/linear_0/b": normal(width, scale=0.1)}
    for i in range(layers):
        layer = f"transformer_tower/layer_{i}"
        att = f"{layer}/multihead_attention"
        for name in ("query", "key", "value", "relative_keys"):
            v[f"{att}/{name}/linear/w"] = normal(width, width, scale=1 / np.sqrt(width))
        v[f"{att}/r_w_bias"] = normal(1, heads, 1, token, scale=0.3)
        v[f"{att}/r_r_bias"] = normal(1, heads, 1, token, scale=0.3)
        v[f"{att}/linear/w"] = normal(width, width, scale=0.5 / np.sqrt(width))
        v[f"{att}/linear/b"] = normal(width, scale=0.1)
        for wrapper in ("residual_dropout_wrapper", "residual_dropout_wrapper_1"):
            v[f"{layer}/{wrapper}/layer_norm/gamma"] = 1 + normal(width, scale=0.1)
            v[f"{layer}/{wrapper}/layer_norm/beta"] = normal(width, scale=0.1)
        v[f"{layer}/mlp/linear_0/w"] = normal(width, mlp, scale=1 / np.sqrt(width))
        v[f"{layer}/mlp/linear_0/b"] = normal(mlp, scale=0.1)
        v[f"{layer}/mlp/linear_1/w"] = normal(mlp, width, scale=0.5 / np.sqrt(mlp))
        v[f"{layer}/mlp/linear_1/b"] = normal(width, scale=0.1)
    for name, shape in (("linear", (width, hidden)), ("linear_1", (hidden, 1)),
                        ("linear_2", (width, hidden)), ("linear_3", (hidden, answers))):
        v[f"{name}/w"] = normal(*shape, scale=1 / np.sqrt(shape[0]))
        v[f"{name}/b"] = normal(shape[1], scale=0.1)
    return v


def write_tf1_checkpoint(variables: dict[str, np.ndarray], prefix: str,
                         extra: dict[str, np.ndarray] | None = None) -> str:
    """Saves `variables` (+ `extra`, e.g. optimizer slots) with a TF1 Saver; returns the prefix."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        made = [tf1.get_variable(name, initializer=tf.constant(value), use_resource=False)
                for name, value in {**variables, **(extra or {})}.items()]
        saver = tf1.train.Saver(made)
        with tf1.Session() as session:
            session.run(tf1.variables_initializer(made))
            return saver.save(session, prefix)


def _layer_norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta  # Sonnet's epsilon.


def _rel_shift(x):
    """The release's rel_shift: prepend a zero column, reshape [N+1, N], drop a row."""
    *lead, n, m = x.shape
    padded = np.concatenate([np.zeros((*lead, n, 1)), x], -1).reshape(*lead, m + 1, n)
    return padded[..., 1:, :].reshape(*lead, n, m)


def _transformer(v, x, heads, layers):
    """The release's TransformerTower (inference): x [B, N, 18] -> [B, N, width]."""
    x = np.maximum(x @ v["transformer_tower/mlp/linear_0/w"]
                   + v["transformer_tower/mlp/linear_0/b"], 0)
    b, n, width = x.shape
    size = width // heads
    pos = np.arange(n - 1, -1, -1.0)
    inv_freq = 1 / 10000 ** (np.arange(0, width, 2.0) / width)
    encodings = np.concatenate([np.sin(pos[:, None] * inv_freq), np.cos(pos[:, None] * inv_freq)],
                               -1)
    split = lambda a: a.reshape(*a.shape[:-1], heads, size).swapaxes(-2, -3)  # [.., H, N, D]
    for i in range(layers):
        p = lambda name: v[f"transformer_tower/layer_{i}/{name}"]
        att = lambda name: p(f"multihead_attention/{name}")
        h = _layer_norm(x, p("residual_dropout_wrapper/layer_norm/gamma"),
                        p("residual_dropout_wrapper/layer_norm/beta"))
        q = split(h @ att("query/linear/w")) * size ** -0.5
        k, val = split(h @ att("key/linear/w")), split(h @ att("value/linear/w"))
        r = split(encodings @ att("relative_keys/linear/w"))           # [H, N, D]
        content = (q + att("r_w_bias")) @ k.swapaxes(-1, -2)
        position = _rel_shift((q + att("r_r_bias")) @ r.swapaxes(-1, -2))
        logits = content + position
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ val).swapaxes(1, 2).reshape(b, n, width)
        x = x + attended @ att("linear/w") + att("linear/b")
        h = _layer_norm(x, p("residual_dropout_wrapper_1/layer_norm/gamma"),
                        p("residual_dropout_wrapper_1/layer_norm/beta"))
        hidden = np.maximum(h @ p("mlp/linear_0/w") + p("mlp/linear_0/b"), 0)
        x = x + hidden @ p("mlp/linear_1/w") + p("mlp/linear_1/b")
    return x


def _words(v, ids, flag):
    ids = np.asarray(ids)
    flags = np.broadcast_to(np.asarray(flag + (1.0, 0.0)), ids.shape + (4,))
    return np.concatenate([v["embed/embeddings"][ids], flags], -1)


def _cls(v, words, latents, heads, layers):
    b = latents.shape[0]
    objects = np.concatenate([latents, np.broadcast_to([0.0, 1.0], latents.shape[:3] + (2,))],
                             -1).reshape(b, -1, latents.shape[-1] + 2)
    dummy = np.broadcast_to(v["dummy"], (b, 1, v["dummy"].shape[0]))
    return _transformer(v, np.concatenate([dummy, words, objects], 1), heads, layers)[:, 0]


def descriptive_logits(v, latents, question, *, heads, layers, choice_len=12):
    """The release's `apply_model_descriptive`: [B, 22] logits (float64)."""
    v = {k: np.asarray(x, np.float64) for k, x in v.items()}
    latents = np.asarray(latents, np.float64)
    zeros = np.zeros((latents.shape[0], choice_len), np.int64)
    words = np.concatenate([_words(v, question, (0.0, 1.0)), _words(v, zeros, (0.0, 1.0))], 1)
    cls = _cls(v, words, latents, heads, layers)
    return np.maximum(cls @ v["linear_2/w"] + v["linear_2/b"], 0) @ v["linear_3/w"] + v["linear_3/b"]


def choice_logits(v, latents, question, choices, *, heads, layers):
    """The release's `apply_model_mc`: [B, C] logits (float64), one pass per choice."""
    v = {k: np.asarray(x, np.float64) for k, x in v.items()}
    latents = np.asarray(latents, np.float64)
    out = []
    for c in range(np.asarray(choices).shape[1]):
        words = np.concatenate([_words(v, question, (1.0, 0.0)),
                                _words(v, np.asarray(choices)[:, c], (0.0, 1.0))], 1)
        cls = _cls(v, words, latents, heads, layers)
        out.append((np.maximum(cls @ v["linear/w"] + v["linear/b"], 0) @ v["linear_1/w"]
                    + v["linear_1/b"])[:, 0])
    return np.stack(out, 1)

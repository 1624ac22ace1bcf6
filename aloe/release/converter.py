"""DeepMind's released TF1 ALOE checkpoint -> a workdir of this project (`convert`).

The checkpoint is read with `tf.train.load_checkpoint` (no TF1 graph). Every
variable of the release (`release_shapes`: the names of DESIGN.md §4, i.e. of
the Sonnet scopes of `object_attention_for_reasoning`) must be present with
its shape; a missing, unexpected or wrongly shaped variable is an error that
names it. Optimizer slots (`{variable}/Adam`, `{variable}/Adam_1`, ...,
`beta1_power`, `beta2_power`) and `global_step` are ignored.

The workdir receives a standard training checkpoint (a `TrainState` at step 0
with a fresh optimizer, through `aloe.checkpointing.Checkpointer`), the
config's `config.json` and the release's vocabulary (`vocab.json`), so that

  python -m aloe.main --config=configs/release.py --workdir=$WORKDIR --mode=eval \
      --config.data.root=$LATENTS

evaluates it, and `--config.train.init_from=$WORKDIR` fine-tunes from it.
Parameters the release does not have (the auxiliary loss's latent prediction
f) keep the initialisation training would give them; the config must build
the release's model (`configs/release.py`), else the error names the
parameters that differ.

Mapping (TF kernels are `[in, out]` like Flax's; head h is columns
`h*18:(h+1)*18` in both): `embed/embeddings` -> `word_embedding/embedding`,
`dummy` -> `cls_token`, `mask` -> `mask_embedding`,
`transformer_tower/mlp/linear_0` -> `token_projection`, per layer
`multihead_attention/{query,key,value,relative_keys}/linear/w` ->
`attention/{query,key,value,relative_key}`, `r_w_bias` / `r_r_bias`
`[1, H, 1, D]` -> `content_bias` / `position_bias` `[H, D]`,
`multihead_attention/linear/{w,b}` -> `attention/output`, `output_bias`,
`residual_dropout_wrapper{,_1}/layer_norm/{gamma,beta}` ->
`{attention,mlp}_norm/{scale,bias}`, `mlp/linear_{0,1}` -> `mlp_{hidden,output}`;
heads `linear`, `linear_1` -> `choice_hidden`, `choice_output` and `linear_2`,
`linear_3` -> `descriptive_hidden`, `descriptive_output`.
"""

import os
import re
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

PyTree = Any

# Checkpoint entries that are not model variables.
_BOOKKEEPING = re.compile(r"^(global_step|beta[12]_power(_\d+)?|_CHECKPOINTABLE_OBJECT_GRAPH)$")


class ReleaseCheckpointError(ValueError):
    """A TF1 checkpoint that is not the released ALOE model of the expected size."""


def release_shapes(config: ml_collections.ConfigDict, vocab_size: int,
                   num_answers: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """TF variable name -> (our parameter path "a/b/c", TF shape) of the release's model.

    Args:
      config: an experiment config whose `model` is the release's (configs/release.py).
      vocab_size: word ids including padding (the release: 82).
      num_answers: answer classes (the release: 21, in a head of 22 outputs).
    """
    m = config.model
    token, heads = m.latent_dim + 2, m.num_heads
    width, answers = heads * token, m.answer_logit_offset + num_answers
    table = {
        "embed/embeddings": ("word_embedding/embedding", (vocab_size, m.latent_dim - 2)),
        "dummy": ("cls_token", (token,)),
        "mask": ("mask_embedding", (token,)),
        "transformer_tower/mlp/linear_0/w": ("token_projection/kernel", (token, width)),
        "transformer_tower/mlp/linear_0/b": ("token_projection/bias", (width,)),
    }
    for ours, hidden, out_name, outputs in (("choice", "linear", "linear_1", 1),
                                            ("descriptive", "linear_2", "linear_3", answers)):
        table[f"{hidden}/w"] = (f"{ours}_hidden/kernel", (width, m.head_hidden_dim))
        table[f"{hidden}/b"] = (f"{ours}_hidden/bias", (m.head_hidden_dim,))
        table[f"{out_name}/w"] = (f"{ours}_output/kernel", (m.head_hidden_dim, outputs))
        table[f"{out_name}/b"] = (f"{ours}_output/bias", (outputs,))
    for i in range(m.num_layers):
        tf_layer, layer = f"transformer_tower/layer_{i}", f"transformer/layer_{i}"
        attention = f"{tf_layer}/multihead_attention"
        for tf_name, name in (("query", "query"), ("key", "key"), ("value", "value"),
                              ("relative_keys", "relative_key")):
            table[f"{attention}/{tf_name}/linear/w"] = (f"{layer}/attention/{name}",
                                                        (width, width))
        table[f"{attention}/r_w_bias"] = (f"{layer}/attention/content_bias",
                                          (1, heads, 1, token))
        table[f"{attention}/r_r_bias"] = (f"{layer}/attention/position_bias",
                                          (1, heads, 1, token))
        table[f"{attention}/linear/w"] = (f"{layer}/attention/output", (width, width))
        table[f"{attention}/linear/b"] = (f"{layer}/attention/output_bias", (width,))
        for wrapper, norm in (("residual_dropout_wrapper", "attention_norm"),
                              ("residual_dropout_wrapper_1", "mlp_norm")):
            table[f"{tf_layer}/{wrapper}/layer_norm/gamma"] = (f"{layer}/{norm}/scale", (width,))
            table[f"{tf_layer}/{wrapper}/layer_norm/beta"] = (f"{layer}/{norm}/bias", (width,))
        for tf_name, name, shape in (("linear_0", "mlp_hidden", (width, m.mlp_dim)),
                                     ("linear_1", "mlp_output", (m.mlp_dim, width))):
            table[f"{tf_layer}/mlp/{tf_name}/w"] = (f"{layer}/{name}/kernel", shape)
            table[f"{tf_layer}/mlp/{tf_name}/b"] = (f"{layer}/{name}/bias", shape[1:])
    return table


def read_release(prefix: str, expected: Mapping[str, tuple[str, tuple[int, ...]]]
                 ) -> dict[str, np.ndarray]:
    """The release's variables of the TF1 checkpoint `prefix`, checked by name and shape.

    Args:
      prefix: the checkpoint prefix (`.../model.ckpt-N`, the path without
        `.index` / `.data-*`), or a directory holding a `checkpoint` file.
      expected: `release_shapes(...)`.

    Returns:
      TF variable name -> float32 array, for every name of `expected`.

    Raises:
      ReleaseCheckpointError: naming every missing, unexpected or wrongly shaped variable.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top (only the converter needs it)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as err:
        raise ReleaseCheckpointError(f"{prefix}: not a readable TF checkpoint ({err}).") from None
    stored = reader.get_variable_to_shape_map()
    slot_of_variable = lambda name: any(name.startswith(v + "/") for v in expected)
    unexpected = sorted(n for n in stored if n not in expected and not _BOOKKEEPING.match(n)
                        and not slot_of_variable(n))
    missing = sorted(n for n in expected if n not in stored)
    wrong = sorted(f"{n} {tuple(stored[n])} (expected {expected[n][1]})" for n in expected
                   if n in stored and tuple(stored[n]) != expected[n][1])
    problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
        [f"unexpected: {', '.join(unexpected)}"] if unexpected else []) + (
        [f"wrong shape: {'; '.join(wrong)}"] if wrong else [])
    if problems:
        raise ReleaseCheckpointError(f"{prefix}: not the released ALOE model of this config's "
                                     f"size; " + " | ".join(problems))
    return {name: np.asarray(reader.get_tensor(name), np.float32) for name in expected}


def release_params(variables: Mapping[str, np.ndarray],
                   expected: Mapping[str, tuple[str, tuple[int, ...]]],
                   init: PyTree) -> PyTree:
    """`init` with every parameter the release has replaced by its value.

    Args:
      variables: `read_release(...)`.
      expected: `release_shapes(...)`.
      init: the model's initial parameters (nested dicts of arrays).

    Raises:
      ReleaseCheckpointError: a release variable without its parameter, or of
        another shape (after the u / v reshape), naming them.
    """
    params = jax.tree.map(np.asarray, init)
    problems = []
    for tf_name, (path, _) in expected.items():
        *parents, leaf = path.split("/")
        node = params
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict) or leaf not in node:
            problems.append(f"{tf_name} -> {path}: the model has no such parameter")
            continue
        value = variables[tf_name]
        if value.ndim == 4:  # u / v: [1, H, 1, D] -> [H, D].
            value = value.reshape(value.shape[1], value.shape[3])
        if value.shape != node[leaf].shape:
            problems.append(f"{tf_name} {value.shape} -> {path} {node[leaf].shape}")
            continue
        node[leaf] = value.astype(node[leaf].dtype)
    if problems:
        raise ReleaseCheckpointError("The config's model is not the release's (use "
                                     "configs/release.py): " + "; ".join(problems))
    return jax.tree.map(jnp.asarray, params)


def unconverted(expected: Mapping[str, tuple[str, tuple[int, ...]]], params: PyTree) -> list[str]:
    """Our parameter paths that no release variable fills, e.g. `latent_prediction/kernel`."""
    filled = {path for path, _ in expected.values()}
    paths = ["/".join(str(getattr(k, "key", k)) for k in keys)
             for keys, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return sorted(p for p in paths if p not in filled)


def convert(prefix: str, workdir: str, config: ml_collections.ConfigDict) -> PyTree:
    """Writes the release checkpoint `prefix` into `workdir`; returns the parameters.

    Writes `{workdir}/vocab.json` (the release vocabulary), `config.json` (with
    `data.vocab` that file and, when `config.data.root` is empty, `data.root` the
    workdir) and a step-0 `TrainState` (parameters converted, optimizer state fresh).

    Raises:
      ReleaseCheckpointError: see `read_release` and `release_params`.
      FileExistsError: the workdir already holds checkpoints.
    """
    from aloe import checkpointing  # pylint: disable=g-import-not-at-top
    from aloe import run_config  # pylint: disable=g-import-not-at-top
    from aloe import tasks  # pylint: disable=g-import-not-at-top
    from aloe import train  # pylint: disable=g-import-not-at-top
    from aloe.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top

    vocab = vocab_lib.release_vocab()
    if config.task != "clevrer":
        raise ValueError(f"The release is a CLEVRER model; config.task = {config.task!r}.")
    ckpt = checkpointing.Checkpointer(workdir, every_steps=1, keep=1)
    try:
        if ckpt.all_steps():
            raise FileExistsError(f"{workdir} already holds checkpoints {ckpt.all_steps()}; "
                                  f"convert into an empty workdir.")
        expected = release_shapes(config, vocab.vocab_size, vocab.num_answers)
        variables = read_release(prefix, expected)
        os.makedirs(workdir, exist_ok=True)
        vocab.save(os.path.join(workdir, run_config.VOCAB_FILE))
        # The recorded config: the vocabulary is the workdir's copy of the release's, and
        # without a latent root the workdir stands in for it (the task then reads only the
        # vocabulary; evaluation and training name the latents with --config.data.root).
        build = ml_collections.ConfigDict(config.to_dict())
        build.data.root = build.data.root or os.path.abspath(workdir)
        build.data.vocab = os.path.abspath(os.path.join(workdir, run_config.VOCAB_FILE))
        task = tasks.build(build)
        tx = train.make_optimizer(config.optimizer, config.train.steps)
        fresh = train.init_state(task, tx, config.seed)
        params = release_params(variables, expected, fresh.params)
        left = unconverted(expected, params)
        if left:
            logging.info("Not in the release, initialised as training would: %s", ", ".join(left))
        state = train.TrainState(step=fresh.step, params=params, opt_state=tx.init(params))
        ckpt.save(0, state)
    finally:
        ckpt.close()
    run_config.record(build, workdir, {})
    logging.info("Wrote the release checkpoint %s to %s (step 0, %s parameters).", prefix,
                 workdir, f"{sum(x.size for x in jax.tree.leaves(params)):,}")
    return params

"""The converter of DeepMind's TF1 checkpoint, checked against a NumPy forward pass of the release."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import release_reference as reference

from aloe import checkpointing
from aloe import release
from aloe import train
from aloe.models import ALOE
from aloe.models import build_aloe
from aloe.synthetic import toy_latents
from aloe.tasks import clevrer as clevrer_task
from configs import release as release_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(d=16, heads=2, layers=2, mlp=32, hidden=16)
SLOTS = ("embed/embeddings/Adam", "embed/embeddings/Adam_1",
         "transformer_tower/layer_0/mlp/linear_0/w/Adam")


def small_config():
    """configs/release.py with a small tower (the release's token layout and options)."""
    config = release_config.get_config()
    config.model.num_heads, config.model.num_layers = SMALL["heads"], SMALL["layers"]
    config.model.mlp_dim, config.model.head_hidden_dim = SMALL["mlp"], SMALL["hidden"]
    config.data.num_frames = 4
    config.train.descriptive_batch = config.train.mc_batch = config.auxiliary.batch = 4
    config.optimizer.warmup_steps = 2
    return config


def variables(seed: int, **sizes) -> dict[str, np.ndarray]:
    return reference.release_variables(np.random.default_rng(seed), vocab=82, **sizes)


def write(tmp_path, values, name="release", extra=None) -> str:
    os.makedirs(tmp_path / name, exist_ok=True)
    return reference.write_tf1_checkpoint(values, str(tmp_path / name / "model.ckpt"), extra)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    values = variables(0, **SMALL)
    extra = {name: np.ones(values[name.rsplit("/", 1)[0]].shape, np.float32) for name in SLOTS}
    extra.update({"beta1_power": np.float32(0.9), "beta2_power": np.float32(0.99),
                  "global_step": np.int64(1234)})
    prefix = write(tmp, values, extra=extra)
    workdir = str(tmp / "workdir")
    params = release.convert(prefix, workdir, small_config())
    return values, workdir, params


def test_converted_logits_match_the_numpy_release(converted):
    values, _, params = converted
    config = small_config()
    model = build_aloe(vocab_size=82, num_answers=21, auxiliary=True, **config.model)
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(2, 3, 4, 16)).astype(np.float32)
    question = rng.integers(1, 82, size=(2, 20))
    question[:, 11:] = 0                                   # Padding words, attended to.
    choices = rng.integers(1, 82, size=(2, 3, 12))
    choices[:, :, 5:] = 0
    desc = model.apply({"params": params}, jnp.asarray(latents), jnp.asarray(question),
                       deterministic=True, method=ALOE.descriptive)
    mc = model.apply({"params": params}, jnp.asarray(latents), jnp.asarray(question),
                     jnp.asarray(choices), deterministic=True, method=ALOE.multiple_choice)
    sizes = dict(heads=SMALL["heads"], layers=SMALL["layers"])
    expected = reference.descriptive_logits(values, latents, question, **sizes)
    assert expected.shape == (2, 22)
    np.testing.assert_allclose(np.asarray(desc), expected[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mc),
                               reference.choice_logits(values, latents, question, choices,
                                                       **sizes), rtol=1e-5, atol=1e-5)


def test_workdir_holds_a_step_zero_training_checkpoint(converted):
    values, workdir, params = converted
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "vocab.json"]
    with open(os.path.join(workdir, "vocab.json")) as f:
        vocab = json.load(f)
    with open(os.path.join(REPO, os.pardir, "shared", "data", "clevrer_samples",
                           "aloe_vocab.json")) as f:
        assert vocab == json.load(f)                       # The release's vocabulary.
    ckpt = checkpointing.Checkpointer(workdir, every_steps=0, read_only=True)
    assert ckpt.all_steps() == [0]
    restored, step = ckpt.restore_params(params)
    ckpt.close()
    assert step == 0
    np.testing.assert_array_equal(restored["word_embedding"]["embedding"],
                                  values["embed/embeddings"])
    np.testing.assert_array_equal(restored["transformer"]["layer_1"]["attention"]["content_bias"],
                                  values["transformer_tower/layer_1/multihead_attention/"
                                         "r_w_bias"][0, :, 0])
    np.testing.assert_array_equal(restored["descriptive_output"]["bias"], values["linear_3/b"])


def _broken(values, kind):
    values = dict(values)
    if kind == "missing":
        del values["transformer_tower/layer_1/mlp/linear_1/b"]
    elif kind == "unexpected":
        values["transformer_tower/layer_2/mlp/linear_0/b"] = np.zeros(32, np.float32)
    else:
        values["linear_3/w"] = np.zeros((16, 21), np.float32)
    return values


@pytest.mark.parametrize("kind, named", [
    ("missing", "missing: transformer_tower/layer_1/mlp/linear_1/b"),
    ("unexpected", "unexpected: transformer_tower/layer_2/mlp/linear_0/b"),
    ("shape", "wrong shape: linear_3/w (16, 21) (expected (16, 22))")])
def test_bad_checkpoints_name_the_variable(tmp_path, kind, named):
    prefix = write(tmp_path, _broken(variables(2, **SMALL), kind), name=kind)
    with pytest.raises(release.ReleaseCheckpointError) as err:
        release.convert(prefix, str(tmp_path / f"w_{kind}"), small_config())
    assert named in str(err.value)
    assert not os.path.exists(tmp_path / f"w_{kind}" / "checkpoints" / "0")


def test_fine_tuning_starts_at_step_zero_from_the_converted_values(converted, tmp_path):
    _, workdir, params = converted
    root = str(tmp_path / "toy")
    toy_latents.write_toy_dataset(root, num_train=4, num_valid=1, seed=0)
    config = small_config()
    config.data.root = root
    config.train.init_from = workdir
    config.train.steps = 2
    config.train.log_every = config.train.checkpoint_every = 2
    config.train.eval_every = 0
    config.eval.after_training = False
    from aloe import parallel  # pylint: disable=import-outside-toplevel
    from aloe import tasks  # pylint: disable=import-outside-toplevel
    task = tasks.build(config)
    tx = train.make_optimizer(config.optimizer, config.train.steps)
    new = str(tmp_path / "finetune")
    ckpt = checkpointing.Checkpointer(new, every_steps=2)
    state, _ = train.starting_state(config, task, tx, ckpt, parallel.make_mesh())
    ckpt.close()
    assert int(state.step) == 0
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    final = train.train(config, str(tmp_path / "finetune2"))
    assert int(final.step) == 2
    moved = [float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(final.params),
                                                          jax.tree.leaves(params))]
    assert max(moved) > 0 and np.isfinite(moved).all()


def test_evaluation_shuffle_permutes_slots_per_batch():
    rng = np.random.default_rng(3)
    batches = [{kind: {"latents": rng.normal(size=(2, 3, 8, 4))}
                for kind in ("descriptive", "multiple_choice")} for _ in range(6)]
    copies = [{k: {"latents": v["latents"].copy()} for k, v in b.items()} for b in batches]
    shuffled = list(clevrer_task.shuffled_slots(iter(copies), seed=0))
    perms = set()
    for before, after in zip(batches, shuffled):
        for kind in before:
            x, y = before[kind]["latents"], after[kind]["latents"]
            # One permutation of the slot axis for every row and frame of the sub-batch.
            perm = [int(np.flatnonzero((x[0, 0] == y[0, 0, k]).all(-1))[0]) for k in range(8)]
            np.testing.assert_array_equal(y, x[:, :, perm])
            perms.add(tuple(perm))
    assert len(perms) > 1
    again = list(clevrer_task.shuffled_slots(
        iter([{k: {"latents": v["latents"].copy()} for k, v in b.items()} for b in batches]), 0))
    for a, b in zip(shuffled, again):
        np.testing.assert_array_equal(a["descriptive"]["latents"], b["descriptive"]["latents"])


def _encode(words: dict[str, int], text: str, length: int) -> np.ndarray:
    """The release's encode_sentence: lower-case, drop '?', split, pad with 0."""
    ids = [words[w] for w in text.lower().replace("?", "").split()]
    return np.pad(np.asarray(ids, np.int64), (0, length - len(ids)))


@pytest.mark.slow
def test_command_line_conversion_and_evaluation_at_paper_size(tmp_path):
    values = variables(4, d=16, heads=10, layers=28, mlp=1024, hidden=128)
    prefix = write(tmp_path, values)
    root = str(tmp_path / "latents")
    toy_latents.write_toy_dataset(root, num_train=1, num_valid=1, seed=1)
    with open(os.path.join(root, "valid.json")) as f:
        scenes = json.load(f)
    kept = ([q for q in scenes[0]["questions"] if "choices" not in q][:3]
            + [q for q in scenes[0]["questions"] if "choices" in q][:1])
    scenes[0]["questions"] = kept
    with open(os.path.join(root, "valid.json"), "w") as f:
        json.dump(scenes, f)
    workdir = str(tmp_path / "workdir")
    env = {**os.environ, "PYTHONPATH": REPO}

    def run(*args):
        done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stderr[-4000:]}"
    run("aloe.release", f"--checkpoint={prefix}", f"--workdir={workdir}")
    run("aloe.main", "--config=configs/release.py", f"--workdir={workdir}", "--mode=eval",
        f"--config.data.root={root}", "--config.eval.batch_size=4")
    with open(os.path.join(workdir, "answers_valid_0.json")) as f:
        answers = {a["question_id"]: a for a in json.load(f)}

    with open(os.path.join(root, "vocab.json")) as f:
        vocab = json.load(f)
    words, answer_of = vocab["question_vocab"], {i: a for a, i in vocab["answer_vocab"].items()}
    latents = np.load(os.path.join(root, "valid", f"{scenes[0]['scene_index']}.npz"))
    latents = latents[None, :-3:5]                         # The release's stride 5 of 128.
    sizes = dict(heads=10, layers=28)
    for q in kept:
        question = _encode(words, q["question"], 20)[None]
        got = answers[q["question_id"]]
        if "choices" in q:
            choices = np.stack([_encode(words, c["choice"], 12) for c in q["choices"]])[None]
            logits = reference.choice_logits(values, latents, question, choices, **sizes)[0]
            probs = 1 / (1 + np.exp(-logits))
            np.testing.assert_allclose([c["probability_correct"] for c in got["choices"]],
                                       probs, atol=2e-5)
        else:
            logits = reference.descriptive_logits(values, latents, question, **sizes)[0]
            probs = np.exp(logits[1:] - logits[1:].max())  # Logit 0 is no answer.
            probs /= probs.sum()
            top = np.argsort(-probs)[:5]
            assert got["answer"] == answer_of[int(top[0]) + 1]
            np.testing.assert_allclose(list(got["top5"].values()), probs[top], atol=2e-5)
            assert list(got["top5"]) == [answer_of[int(c) + 1] for c in top]

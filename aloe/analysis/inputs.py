r"""The inputs of the analysis commands: checkpoints, a scene's question and latents, pictures.

`aloe.analysis.attention` and `aloe.analysis.predicted_frames` share these
flags (`define_command_flags`) and read their inputs with `command_inputs`:

- the configs: each workdir's `config.json`, changed only by the command line's
  overrides (`workdir_config`), as `--mode=eval` reads them;
- the ALOE and MONet models and parameters (`restore_model`): checkpoints are
  read with `aloe.checkpointing.restore_params` through the task that `tasks.build`
  makes of each config (the MONet config's task must have the MONet as its
  `model`);
- one question of one scene of a latent store with the latents of the evenly
  spaced evaluation frames (`load_scene`);
- frames and MONet masks for the pictures (`monet_views`): the frames of
  `--frames_npy` (`[video frames or T, H, W, 3]`, H = W = MONet's image size,
  `load_frames`), else those of the tfds dataset named by the MONet config's
  `data.data_dir` (`tfds_video`), segmented by MONet. With neither the commands
  stop with an error saying how to give them (`monet_views` alone can still
  decode the latents instead).
"""

import os
from typing import Any, Optional

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from aloe.data import latents as latents_lib
from aloe.data import questions as questions_lib
from aloe.data import sampling
from aloe.data import vocab as vocab_lib
from aloe.models import monet as monet_lib

PyTree = Any


def restore_model(config: ml_collections.ConfigDict, workdir: str,
                  step: Optional[int] = None) -> tuple[Any, PyTree, int]:
    """`(model, params, step)` of checkpoint `step` (default: latest) of `workdir`.

    The model is the `model` attribute of the task `aloe.tasks.build(config)`
    makes; the parameters are read by `aloe.checkpointing.restore_params` (no
    optimizer) after the vocabulary check, and fetched to the host.
    """
    # pylint: disable-next=g-import-not-at-top
    from aloe import checkpointing, parallel, run_config, tasks
    task = tasks.build(config)
    run_config.check_vocab(task, workdir)
    params, restored = checkpointing.restore_params(workdir, task.init_params,
                                                    parallel.make_mesh(), step, seed=config.seed)
    return task.model, jax.device_get(params), restored


def load_scene(data_config: ml_collections.ConfigDict, vocab: vocab_lib.Vocab, split: str,
               scene: int, question_id: Optional[int] = None,
               choice_id: Optional[int] = None) -> dict[str, Any]:
    """One question of one scene of a latent store, with the evaluation frames' latents.

    Args:
      data_config: the task config's `data` (root, num_frames, lengths, unknown_words).
      vocab: the task's vocabulary.
      split: e.g. 'valid'; reads `{root}/{split}.json` and `{root}/{split}/{scene}.npz`.
      scene: the scene index.
      question_id: the question; None takes the scene's first descriptive question.
      choice_id: for a multiple-choice question, the choice (default its first).

    Returns:
      `latents` float32 `[T, K, d]` of the evenly spaced evaluation frames,
      `frame_indices` `[T]`, `total_frames`, `question` int32 `[Lq]`, `choice`
      int32 `[Lc]` or None, `kind` ('descriptive' / 'multiple_choice'),
      `true_answer` (the answer, or 'correct' / 'wrong' for the choice; None
      when the file has none).

    Raises:
      ValueError: naming the file, scene and question when there is no such
        question (or choice), or asking for a choice of a descriptive question.
    """
    path = os.path.join(data_config.root, f"{split}.json")
    questions = questions_lib.load_questions(
        path, vocab, max_question_len=data_config.max_question_len,
        max_choice_len=data_config.max_choice_len, max_choices=data_config.max_choices,
        unknown=data_config.unknown_words)
    desc, mc = questions.descriptive, questions.multiple_choice
    where = f"{path}: scene_index {scene}, question_id {question_id}"
    in_desc = desc.scene_index == scene
    in_mc = mc.scene_index == scene
    if question_id is not None:
        in_desc, in_mc = in_desc & (desc.question_id == question_id), in_mc & (
            mc.question_id == question_id)
    elif not in_desc.any():
        raise ValueError(f"{path}: scene_index {scene} has no descriptive question.")
    if in_desc.any():
        if choice_id is not None:
            raise ValueError(f"{where}: a descriptive question has no choice {choice_id}.")
        row = int(np.argmax(in_desc))
        kind, question, choice = "descriptive", desc.question[row], None
        label = int(desc.answer[row])
        true_answer = vocab.class_to_answer(label) if label >= 0 else None
    elif in_mc.any():
        row = int(np.argmax(in_mc))
        choices = np.flatnonzero(mc.choice_mask[row])
        if choice_id is not None:
            choices = np.flatnonzero(mc.choice_mask[row] & (mc.choice_ids[row] == choice_id))
        if not choices.size:
            raise ValueError(f"{where}: no choice_id {choice_id}.")
        kind, question, choice = "multiple_choice", mc.question[row], mc.choices[row, choices[0]]
        label = float(mc.choice_labels[row, choices[0]])
        true_answer = None if label < 0 else "correct" if label > 0.5 else "wrong"
    else:
        raise ValueError(f"{where}: no such question in the file.")
    all_latents = latents_lib.LatentStore(data_config.root, split).read(scene)
    frame_indices = sampling.eval_frame_choice(data_config.get("eval_frames", "strided"))(
        all_latents.shape[0], data_config.num_frames)
    return {"latents": all_latents[frame_indices], "frame_indices": frame_indices,
            "total_frames": all_latents.shape[0], "question": question, "choice": choice,
            "kind": kind, "true_answer": true_answer}


def load_frames(path: str, frame_indices: np.ndarray, total_frames: int,
                image_size: int) -> np.ndarray:
    """float32 `[T, H, W, 3]` pixels in [0, 1] from an `.npy` array of a video's frames.

    The file holds `[total_frames or T, image_size, image_size, 3]`, uint8 or
    floats in [0, 1]; with all of the video's frames, `frame_indices` are taken.
    """
    frames = np.load(path, allow_pickle=False)
    expected = f"[{total_frames} or {len(frame_indices)}, {image_size}, {image_size}, 3]"
    if frames.ndim != 4 or frames.shape[1:] != (image_size, image_size, 3) or (
            frames.shape[0] not in (total_frames, len(frame_indices))):
        raise ValueError(f"{path}: frames must be {expected}, got shape {frames.shape}.")
    if frames.shape[0] == total_frames:
        frames = frames[frame_indices]
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    frames = frames.astype(np.float32)
    if not (np.isfinite(frames).all() and frames.min() >= 0.0 and frames.max() <= 1.0):
        raise ValueError(f"{path}: float frames must be finite pixels in [0, 1].")
    return frames


def tfds_video(data: ml_collections.ConfigDict, split: str, scene: int) -> np.ndarray:
    """uint8 `[T, H, W, 3]`: all frames of scene `scene` from the built tfds dataset.

    `data` is a MONet config's `data` section (`dataset`, `data_dir`); `split` a
    latent-store split ('valid' reads tfds 'validation'). Only the matching
    video's frames are decoded.
    """
    # pylint: disable=g-import-not-at-top
    # Imported here, so that the commands set TensorFlow's environment before it loads.
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from aloe.tasks import monet as monet_task
    # pylint: enable=g-import-not-at-top
    builder = monet_task.open_builder(data)
    features = builder.info.features
    examples = builder.as_dataset(
        split=monet_task.tfds_split(split),
        decoders=tfds.decode.PartialDecoding(
            {"video": features["video"], "scene_index": features["scene_index"]},
            decoders={"video": tfds.decode.SkipDecoding()}))
    found = examples.filter(lambda ex: ex["scene_index"] == scene).take(1)
    for example in tfds.as_numpy(found):
        return np.stack([tf.io.decode_png(frame).numpy() for frame in example["video"]])
    raise ValueError(f"Scene {scene} is not in split {split!r} of the tfds dataset "
                     f"{data.dataset!r} in {data.data_dir!r}.")


def monet_views(monet: monet_lib.MONet, monet_params: PyTree, latents: np.ndarray,
                frames: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Frames and slot masks for the pictures.

    Args:
      monet: the `aloe.models.monet.MONet` module.
      monet_params: its parameters.
      latents: `[T, K, d]` latents of the frames.
      frames: `[T, H, W, 3]` pixels, or None.

    Returns:
      `frames` `[T, H, W, 3]` and `masks` `[T, K, H, W]`: the given frames and
      MONet's masks of them; without frames, MONet's decoding of the latents and
      the masks it composes them with. With frames also `latent_gap`, the largest
      absolute difference between MONet's means and `latents` (near 0 when the
      latents were extracted from these frames by this MONet).
    """
    variables = {"params": monet_params}
    if frames is None:
        image, masks, _ = jax.jit(lambda v, z: monet.apply(
            v, z, method=monet_lib.MONet.decode_image))(variables, jnp.asarray(latents))
        return {"frames": np.asarray(image), "masks": np.asarray(masks)[..., 0]}
    outputs = jax.jit(lambda v, x: monet.apply(v, x, deterministic=True))(
        variables, jnp.asarray(frames))
    return {"frames": np.asarray(frames), "masks": np.asarray(outputs.masks)[..., 0],
            "latent_gap": float(np.max(np.abs(np.asarray(outputs.mu) - latents)))}


def command_inputs(config: ml_collections.ConfigDict, workdir: str,
                   monet_config: ml_collections.ConfigDict, monet_workdir: str, split: str,
                   scene: int, question_id: Optional[int], choice_id: Optional[int] = None,
                   frames_npy: Optional[str] = None) -> dict[str, Any]:
    """Everything a command needs: both models and parameters, the scene and its pictures.

    Returns:
      `load_scene`'s entries plus `model`, `params`, `monet`, `monet_params`,
      `frames`, `masks` (`monet_views`), `id_to_word`, `answer_names` (answer
      class -> answer).

    Raises:
      ValueError: when no frames are given (neither `frames_npy` nor the MONet
        config's `data.data_dir`).
    """
    config = workdir_config("config", config, workdir)
    monet_config = workdir_config("monet_config", monet_config, monet_workdir)
    if not frames_npy and not monet_config.data.get("data_dir"):
        raise ValueError(
            "No video frames for the pictures: give --frames_npy=FRAMES.npy or "
            "--monet_config.data.data_dir=DIR (the tfds data directory the video dataset was "
            "built in); the figures show the frames the latents were extracted from.")
    model, params, step = restore_model(config, workdir)
    monet, monet_params, monet_step = restore_model(monet_config, monet_workdir)
    from aloe.tasks import clevrer as clevrer_task  # pylint: disable=g-import-not-at-top
    vocab = clevrer_task.load_vocab(config.data)
    inputs = load_scene(config.data, vocab, split, scene, question_id, choice_id)
    if frames_npy:
        frames = load_frames(frames_npy, inputs["frame_indices"], inputs["total_frames"],
                             monet.image_size)
    else:
        frames = tfds_video(monet_config.data, split, scene)[inputs["frame_indices"]]
        frames = frames.astype(np.float32) / 255.0
    views = monet_views(monet, monet_params, inputs["latents"], frames)
    if "latent_gap" in views:
        logging.info("Largest |MONet mean - stored latent| on these frames: %.4g",
                     views["latent_gap"])
    logging.info("ALOE step %d, MONet step %d, scene %d (%s).", step, monet_step, scene,
                 inputs["kind"])
    return {**inputs, **views, "model": model, "params": params, "monet": monet,
            "monet_params": monet_params,
            "id_to_word": {i: w for w, i in vocab.word_ids.items()},
            "answer_names": [vocab.class_to_answer(c) for c in range(vocab.num_answers)]}


def workdir_config(flag_name: str, config: ml_collections.ConfigDict,
                   workdir: str) -> ml_collections.ConfigDict:
    """The workdir's `config.json`, changed only by this command line's `--{flag_name}.X=`.

    As `--mode=eval` reads configs (`aloe.run_config.for_workdir`); `config`
    itself when the workdir has no `config.json`.
    """
    from aloe import run_config  # pylint: disable=g-import-not-at-top
    overrides = {}
    if flags.FLAGS.is_parsed() and flag_name in flags.FLAGS:
        overrides = config_flags.get_override_values(flags.FLAGS[flag_name])
    return run_config.for_workdir(config, workdir, overrides)


def define_command_flags() -> None:
    """The flags shared by the analysis commands (defined only when one runs)."""
    config_flags.DEFINE_config_file("config", None, "ALOE experiment config file.")
    config_flags.DEFINE_config_file("monet_config", None, "MONet experiment config file.")
    flags.DEFINE_string("workdir", None, "ALOE workdir (checkpoints).")
    flags.DEFINE_string("monet_workdir", None, "MONet workdir (checkpoints).")
    flags.DEFINE_string("split", "valid", "Latent store split.")
    flags.DEFINE_integer("scene", None, "Scene index.")
    flags.DEFINE_integer("question_id", None, "Question id (default: first descriptive one).")
    flags.DEFINE_string("frames_npy", None, "The .npy of the video's frames [T, H, W, 3]; "
                        "without it the frames are read from the tfds dataset in "
                        "--monet_config.data.data_dir (one of the two is required).")
    flags.DEFINE_string("out", None, "Folder for the PNG files.")
    flags.DEFINE_string("logdir", None, "Optional TensorBoard folder for the images.")
    flags.mark_flags_as_required(["config", "monet_config", "workdir", "monet_workdir", "scene",
                                  "out"])

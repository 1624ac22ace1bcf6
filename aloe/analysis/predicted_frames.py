r"""What the transformer predicts (paper Appendix C): frames decoded from predicted latents.

    python -m aloe.analysis.predicted_frames --config=CONFIG --workdir=WORKDIR \
        --monet_config=MONET_CONFIG --monet_workdir=MONET_WORKDIR --split=valid \
        --scene=10000 [--question_id=Q] [--frames_npy=FRAMES.npy] --out=DIR \
        [--logdir=TB_DIR] [--buffer=3] [--target_frames=3]

Scene-prediction masking (scheme 'd' of `aloe.masking`) with the fixed layout of
Appendix C: of T frames, the first `T - buffer - target_frames` are visible
context, the next `buffer` are hidden and unscored, and the last
`target_frames` are the targets. `ALOE.predict_latents` predicts the latents of
every object token from the context (and the question); the target frames'
predicted latents are decoded into images by `MONet.decode_image`.

The picture (a matplotlib figure titled with the question and the layout) has
three rows of T panels, the target frames outlined in red (legend):

  true       the frames (or, without frames, MONet's decoding of the true latents,
             and the row says so);
  input      what the transformer sees: context frames decoded from their true
             latents, hidden frames black;
  predicted  the context as in 'input', the buffer black, and the target frames
             decoded from the predicted latents.

The model must have the auxiliary parameters (`ALOE(auxiliary=True)`, i.e. a
config with `auxiliary.weight > 0`). The command's inputs are read as in
`aloe.analysis.inputs` (checkpoints, latent store, optional `--frames_npy`).
"""

import functools
from typing import Any, Optional, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from matplotlib import patches
import numpy as np

from aloe import masking
from aloe import reporting
from aloe.analysis import figures
from aloe.analysis import inputs as inputs_lib
from aloe.models import aloe as aloe_model
from aloe.models import monet as monet_lib

PyTree = Any
ROW_NAMES = ("true", "input", "predicted")
TARGET_COLOUR = (220, 20, 20)


def appendix_c_masks(frames: int, slots: int, *, buffer: int = 3,
                     target_frames: int = 3) -> masking.Masks:
    """Scheme 'd' with the last `target_frames` frames as targets.

    Args:
      frames: T.
      slots: K.
      buffer: hidden, unscored frames before the targets.
      target_frames: scored frames at the end.

    Returns:
      `Masks(m, tau)`, bool `[T, K]`: frames `0 .. T - buffer - target_frames - 1`
      visible, the last `target_frames` frames targets.

    Raises:
      ValueError: when no context frame is left.
    """
    context = frames - buffer - target_frames
    if context < 1:
        raise ValueError(f"{frames} frames leave no context before buffer={buffer} and "
                         f"target_frames={target_frames}.")
    # With this minimum the context length has a single valid value: the key is irrelevant.
    masks = masking.scene_prediction(jax.random.key(0), frames, slots, buffer=buffer,
                                     target_frames=target_frames, min_context_frames=context)
    return masking.Masks(m=np.asarray(masks.m), tau=np.asarray(masks.tau))


@functools.lru_cache(maxsize=8)
def _prediction_fn(model: aloe_model.ALOE, monet: monet_lib.MONet) -> Any:
    """Compiled `(params, monet_params, latents, question, visible) ->
    (predicted latents, images of the true latents, images of the predicted latents)`."""
    def run(params, monet_params, latents, question, visible):
        predicted = model.apply({"params": params}, latents[None], question[None],
                                visible[None], deterministic=True,
                                method=aloe_model.ALOE.predict_latents)[0]
        decode = lambda z: monet.apply({"params": monet_params}, z,
                                       method=monet_lib.MONet.decode_image)[0]
        return predicted, decode(latents), decode(predicted)
    return jax.jit(run)


def predict_frames(model: aloe_model.ALOE, params: PyTree, monet: monet_lib.MONet,
                   monet_params: PyTree, latents: np.ndarray, question: np.ndarray, *,
                   buffer: int = 3, target_frames: int = 3) -> dict[str, np.ndarray]:
    """Predicts the target frames' latents and decodes them and the context.

    Args:
      model: an ALOE built with `auxiliary=True`.
      params: its parameters.
      monet: the MONet whose latents these are (same `latent_dim`).
      monet_params: its parameters.
      latents: `[T, K, d]` true latents.
      question: `[Lq]` word ids of a question about the video (its answer is unused).
      buffer, target_frames: the layout (`appendix_c_masks`).

    Returns:
      `visible` bool `[T, K]`, `target` bool `[T]` (target frames), `hidden` bool
      `[T]` (frames without a visible token), `predicted_latents` `[T, K, d]`
      (every token's prediction), `true_images` `[T, H, W, 3]` (MONet's decoding
      of the true latents), `input_images` and `predicted_images` `[T, H, W, 3]`
      (rows 'input' and 'predicted' of the module docstring), and the scalars
      `latent_error` (mean squared error per latent entry of the target
      predictions), `copy_latent_error` (the same for copying the last context
      frame's latents, a baseline) and `pixel_error` (mean squared error per
      pixel and channel between the target frames decoded from the predicted and
      from the true latents).
    """
    if not model.auxiliary:
        raise ValueError("predict_frames needs an ALOE with the auxiliary parameters "
                         "(auxiliary=True, i.e. a config with auxiliary.weight > 0).")
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 3 or latents.shape[-1] != model.latent_dim:
        raise ValueError(f"latents must be [frames, slots, {model.latent_dim}], got shape "
                         f"{latents.shape}.")
    if monet.latent_dim != model.latent_dim:
        raise ValueError(f"MONet latent_dim {monet.latent_dim} != ALOE latent_dim "
                         f"{model.latent_dim}.")
    masks = appendix_c_masks(latents.shape[0], latents.shape[1], buffer=buffer,
                             target_frames=target_frames)

    predicted, true_images, decoded = (np.asarray(a) for a in _prediction_fn(model, monet)(
        params, monet_params, jnp.asarray(latents), jnp.asarray(question, jnp.int32),
        jnp.asarray(masks.m)))
    target, hidden = masks.tau.any(axis=1), ~masks.m.any(axis=1)
    input_images = np.where(hidden[:, None, None, None], 0.0, true_images)
    predicted_images = np.where(target[:, None, None, None], decoded, input_images)
    last_context = int(np.flatnonzero(~hidden)[-1])
    error = lambda a, b: float(np.mean(np.square(a[target] - b[target])))
    return {"visible": masks.m, "target": target, "hidden": hidden,
            "predicted_latents": predicted, "true_images": true_images,
            "input_images": input_images.astype(np.float32),
            "predicted_images": predicted_images.astype(np.float32),
            "latent_error": error(predicted, latents),
            "copy_latent_error": error(np.broadcast_to(latents[last_context], latents.shape),
                                       latents),
            "pixel_error": error(decoded, true_images)}


def predicted_frames_figure(true_frames: np.ndarray, input_images: np.ndarray,
                            predicted_images: np.ndarray, target: np.ndarray, *,
                            hidden: Optional[np.ndarray] = None, title: str = "",
                            true_row: str = "true",
                            columns: Optional[Sequence[str]] = None) -> Any:
    """Rows 'true', 'input', 'predicted' of T panels each, target frames outlined.

    Args:
      true_frames: `[T, H, W, 3]` pixels.
      input_images: `[T, H, W, 3]`.
      predicted_images: `[T, H, W, 3]`.
      target: bool `[T]`; target frames get a red outline (see the legend).
      hidden: bool `[T]`, frames hidden from the model (default: the black
        frames of `input_images`).
      title: the figure's title.
      true_row: the first row's name.
      columns: a title per frame (default 'frame t').

    Returns:
      A `matplotlib.figure.Figure` with axes `[3, T]` (`fig.axes`, row-major).
    """
    rows = [true_frames, input_images, predicted_images]
    if len({np.shape(r) for r in rows}) != 1 or np.ndim(true_frames) != 4:
        raise ValueError(f"The three rows must have the same [T, H, W, 3] shape, got "
                         f"{[np.shape(r) for r in rows]}.")
    count = len(true_frames)
    if hidden is None:
        hidden = ~np.asarray(input_images).reshape(count, -1).any(axis=1)
    columns = list(columns) if columns is not None else [f"frame {t}" for t in range(count)]
    fig = figures.new_figure(1.3 * count + 1.5, 4.9)
    axes = np.asarray(fig.subplots(3, count, squeeze=False))
    names = (true_row, "input (seen)", "predicted")
    for r, row in enumerate(rows):
        for t in range(count):
            ax = axes[r, t]
            ax.imshow(figures.to_uint8(row[t]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[t], fontsize=8)
            if r == 2:
                ax.set_xlabel("target" if target[t] else "hidden" if hidden[t] else "context",
                              fontsize=8)
            if t == 0:
                ax.set_ylabel(names[r], fontsize=9)
            if target[t]:
                for spine in ax.spines.values():
                    spine.set_edgecolor(figures.mpl_colour(TARGET_COLOUR))
                    spine.set_linewidth(2.5)
    fig.legend(handles=[
        patches.Patch(fill=False, edgecolor=figures.mpl_colour(TARGET_COLOUR),
                              linewidth=2.5, label="target frame: decoded from ALOE's "
                                                   "predicted latents"),
        patches.Patch(color="black", label="hidden from ALOE (buffer and targets)")],
        loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle(title or "Frames decoded from predicted latents", fontsize=10)
    return fig


def render_predicted_frames(model: aloe_model.ALOE, params: PyTree, monet: monet_lib.MONet,
                            monet_params: PyTree, latents: np.ndarray, question: np.ndarray, *,
                            frames: Optional[np.ndarray] = None, buffer: int = 3,
                            target_frames: int = 3, question_text: str = "",
                            frame_numbers: Optional[Sequence[int]] = None,
                            out_dir: Optional[str] = None, logdir: Optional[str] = None,
                            writer: Any = None, step: int = 0) -> dict[str, Any]:
    """`predict_frames` and its picture, written to `{out_dir}/predicted_frames.png`.

    Args:
      model, params, monet, monet_params, latents, question, buffer,
        target_frames: as `predict_frames`.
      frames: `[T, H, W, 3]` true pixels for the first row; None uses MONet's
        decoding of the true latents (and the row is named so).
      question_text: the question, for the title.
      frame_numbers: each frame's number in the video, for the column titles.
      out_dir: folder of the PNG file, or None.
      logdir: TensorBoard folder (a writer is opened and closed), or
      writer: a `clu.metric_writers` writer; the tag is 'predicted_frames'.
      step: the TensorBoard step.

    Returns:
      `predict_frames`'s entries plus `figure` (`predicted_frames_figure`),
      `image` (its pixels, as in the PNG) and `paths` (name -> PNG path).
    """
    result = predict_frames(model, params, monet, monet_params, latents, question,
                            buffer=buffer, target_frames=target_frames)
    true_frames = result["true_images"] if frames is None else np.asarray(frames)
    context = int((~result["hidden"]).sum())
    title = (f"ALOE's prediction of the last {target_frames} frames from the first {context} "
             f"({buffer} hidden frames between), decoded by MONet\n"
             f"Q: {question_text or '(question ids ' + str(list(np.asarray(question))) + ')'}   "
             f"latent MSE {result['latent_error']:.4f} (copying the last seen frame: "
             f"{result['copy_latent_error']:.4f})")
    columns = None if frame_numbers is None else [
        f"frame {t} (video {n})" for t, n in enumerate(frame_numbers)]
    fig = predicted_frames_figure(
        true_frames, result["input_images"], result["predicted_images"], result["target"],
        hidden=result["hidden"], title=title, columns=columns,
        true_row="true" if frames is not None else "true latents, decoded")
    images, paths = figures.write_figures({"predicted_frames": fig}, out_dir, writer=writer,
                                          logdir=logdir, step=step)
    return {**result, "figure": fig, "image": images["predicted_frames"], "paths": paths}


def main(argv: Sequence[str]) -> None:
    """absl entry point: the predicted-frames picture of one scene."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    reporting.configure_logging()  # Only warnings from orbax and tfds.
    inputs = inputs_lib.command_inputs(f.config, f.workdir, f.monet_config, f.monet_workdir,
                                       f.split, f.scene, f.question_id, None, f.frames_npy)
    if inputs["kind"] != "descriptive":
        raise app.UsageError("--question_id must name a descriptive question (or be left out).")
    result = render_predicted_frames(
        inputs["model"], inputs["params"], inputs["monet"], inputs["monet_params"],
        inputs["latents"], inputs["question"], frames=inputs["frames"], buffer=f.buffer,
        target_frames=f.target_frames, out_dir=f.out, logdir=f.logdir,
        question_text=" ".join(inputs["id_to_word"].get(int(i), f"#{int(i)}")
                               for i in inputs["question"] if i > 0),
        frame_numbers=inputs["frame_indices"])
    print(f"predicted_frames: {result['paths']['predicted_frames']}")
    for name in ("latent_error", "copy_latent_error", "pixel_error"):
        print(f"{name}: {result[name]:.5f}")


if __name__ == "__main__":
    inputs_lib.define_command_flags()
    flags.adopt_module_key_flags(inputs_lib)  # The shared flags show in --help.
    flags.DEFINE_integer("buffer", 3, "Hidden frames before the targets.")
    flags.DEFINE_integer("target_frames", 3, "Target frames at the end.")
    app.run(main)

"""The analysis figures (matplotlib), and how they are written out.

Every figure in `aloe.analysis` is a `matplotlib.figure.Figure` drawn without
pyplot (no global state, no display needed) that says what it shows: a title
(the example's question, predicted and true answer, and which attention), named
axes, a colour bar for shaded values and a legend for every mark.
`figure_image` renders one to uint8 RGB pixels, which go both to the PNG file
and to TensorBoard (`write_figures`).

- `slot_colours`: one distinct colour per MONet slot.
- `mask_boxes`: bounding boxes of the region where a slot's mask exceeds 0.5.
- `cross_modal_figure`, `most_attended_figure`, `slot_alignment_figure`: the
  attention pictures of the paper's Appendix C (`aloe.analysis.attention`).
"""

import colorsys
import os
from typing import Mapping, Optional, Sequence

from matplotlib import figure as mpl_figure
from matplotlib import lines as mpl_lines
from matplotlib import patches
from matplotlib.backends import backend_agg
import numpy as np
from PIL import Image

RGB = tuple[int, int, int]
# Distinct, saturated colours for the first slots; more are spread over the hue circle.
_PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 200, 200), (240, 50, 230), (170, 110, 40), (128, 128, 0), (0, 0, 128),
)
TOP_COLOUR = "#ff8c00"  # Outline of the most attended slots in the slot-alignment grid.
DPI = 100


def slot_colours(num_slots: int) -> list[RGB]:
    """`num_slots` distinct RGB colours; slot k always gets the same colour."""
    if num_slots < 0:
        raise ValueError(f"num_slots must be >= 0, got {num_slots}.")
    colours = list(_PALETTE[:num_slots])
    extra = num_slots - len(colours)
    for i in range(extra):
        r, g, b = colorsys.hsv_to_rgb((i + 0.5) / extra, 0.8, 0.85)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def mpl_colour(colour: RGB) -> tuple[float, float, float]:
    """An RGB colour of 0..255 integers as matplotlib's 0..1 floats."""
    return tuple(c / 255.0 for c in colour)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """RGB uint8 pixels from float pixels in [0, 1] or uint8, RGB or grey.

    Args:
      image: `[..., H, W, 3]`, `[H, W, 1]` or `[H, W]`; floats are clipped to [0, 1].

    Returns:
      uint8 `[..., H, W, 3]`.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an image [..., H, W, 3], [H, W, 1] or [H, W], got shape "
                         f"{image.shape}.")
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def mask_boxes(masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Bounding boxes of the pixels where each mask exceeds `threshold`.

    Args:
      masks: `[K, H, W]` or `[K, H, W, 1]` masks in [0, 1] (e.g. MONet's).
      threshold: a pixel belongs to a slot's region when its mask is above this.

    Returns:
      int64 `[K, 4]` boxes `(top, left, bottom, right)`, bottom / right exclusive;
      `(-1, -1, -1, -1)` for a slot with no pixel above the threshold.
    """
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must be [slots, H, W] or [slots, H, W, 1], got shape "
                         f"{masks.shape}.")
    boxes = np.full((masks.shape[0], 4), -1, np.int64)
    for k, region in enumerate(masks > threshold):
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        if rows.size:
            boxes[k] = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    return boxes


def box_patch(box: Sequence[int], colour: RGB, *, width: float = 2.0,
              style: str = "-", label: Optional[str] = None) -> patches.Rectangle:
    """An unfilled rectangle around the pixels of `box` (top, left, bottom, right) in imshow
    coordinates (pixel centres at integers)."""
    top, left, bottom, right = (int(v) for v in box)
    return patches.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                             edgecolor=mpl_colour(colour), linewidth=width, linestyle=style,
                             label=label)


def new_figure(width: float, height: float) -> mpl_figure.Figure:
    """A figure of `width` x `height` inches on an Agg canvas (no pyplot, no display)."""
    fig = mpl_figure.Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    backend_agg.FigureCanvasAgg(fig)
    return fig


def figure_image(fig: mpl_figure.Figure) -> np.ndarray:
    """uint8 `[H, W, 3]`: the figure rendered at its DPI."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def image_axes(ax, image: np.ndarray, *, xlabel: str = "x (pixels)",
               ylabel: str = "y (pixels)") -> None:
    """Shows an `[H, W, 3]` image on `ax` with named pixel axes."""
    ax.imshow(to_uint8(image), interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def save_png(image: np.ndarray, path: str | os.PathLike) -> str:
    """Writes an image (see `to_uint8`) as a PNG file; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path, format="PNG")
    return path


def write_figures(figures: Mapping[str, mpl_figure.Figure], out_dir: Optional[str | os.PathLike],
                  *, writer=None, logdir: Optional[str | os.PathLike] = None, step: int = 0,
                  tag_prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Renders figures; writes them as `{out_dir}/{name}.png` and, if asked, to TensorBoard.

    Args:
      figures: name -> figure.
      out_dir: folder of the PNG files, or None for no files.
      writer: a `clu.metric_writers` writer to send the images to (not closed here).
      logdir: without `writer`, a TensorBoard folder: a writer is opened on it,
        written to and closed.
      step: the step the images are logged at.
      tag_prefix: prepended to the names to make the TensorBoard tags.

    Returns:
      `(name -> uint8 image [H, W, 3], name -> PNG path)`; no paths without `out_dir`.
    """
    images = {name: figure_image(fig) for name, fig in figures.items()}
    paths = {}
    if out_dir is not None:
        for name, image in images.items():
            paths[name] = save_png(image, os.path.join(os.fspath(out_dir), f"{name}.png"))
    tagged = {tag_prefix + name: image[None] for name, image in images.items()}
    if writer is None and logdir is not None:
        from aloe import reporting  # pylint: disable=g-import-not-at-top
        own = reporting.create_writer(os.fspath(logdir))
        try:
            own.write_images(step, tagged)
            own.flush()
        finally:
            own.close()
    elif writer is not None:
        writer.write_images(step, tagged)
    return images, paths


# The pictures of the paper's Appendix C, from plain arrays.

def check_views(frames: np.ndarray, masks: np.ndarray, num_frames: int,
                num_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames `[T, H, W, 3]` and masks `[T, K, H, W]` (a trailing 1 is dropped), checked."""
    frames, masks = np.asarray(frames), np.asarray(masks)
    if masks.ndim == 5 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != num_frames:
        raise ValueError(f"frames must be [{num_frames}, H, W, 3], got shape {frames.shape}.")
    if masks.shape != (num_frames, num_slots) + frames.shape[1:3]:
        raise ValueError(f"masks must be [{num_frames}, {num_slots}, {frames.shape[1]}, "
                         f"{frames.shape[2]}], got shape {masks.shape}.")
    return frames, masks


def cross_modal_figure(frame: np.ndarray, masks: np.ndarray, words: Sequence[str],
                       word_slots: Sequence[int], *, is_choice: Optional[Sequence[bool]] = None,
                       background_slot: Optional[int] = 0, title: str = "",
                       frame_label: str = "frame") -> mpl_figure.Figure:
    """Words coloured by the slot that attends to them most, beside the boxed frame.

    Every slot with a region (mask > 0.5) gets a box in its colour, except
    `background_slot`; a word whose slot has no box is black. The words are
    listed top to bottom ('Q' question words, then 'C' choice words), each with
    its slot.

    Args:
      frame: `[H, W, 3]` pixels.
      masks: `[K, H, W]` (or `[K, H, W, 1]`) slot masks of the frame.
      words: the words.
      word_slots: the slot of each word.
      is_choice: per word, whether it belongs to the choice.
      background_slot: the slot that gets no box (None: every slot may get one).
      title: the figure's title (what example, which attention).
      frame_label: the frame's name in its panel title.

    Returns:
      The figure: the word list on the left, the frame with its slot boxes and
      their legend on the right.
    """
    boxes = mask_boxes(masks)
    if background_slot is not None:
        boxes[background_slot] = -1
    colours = slot_colours(len(boxes))
    fig = new_figure(8.0, max(4.0, 0.6 + 0.24 * len(words)))
    text_ax, image_ax = fig.subplots(1, 2, width_ratios=[1, 1.3])
    text_ax.axis("off")
    text_ax.set_title("word: slot attending to it most")
    step = 1.0 / max(len(words) + 1, 12)
    for i, (word, slot) in enumerate(zip(words, word_slots)):
        part = "C" if is_choice is not None and is_choice[i] else "Q"
        boxed = boxes[slot, 0] >= 0
        colour = mpl_colour(colours[slot]) if boxed else "black"
        note = f"slot {slot}" if boxed else f"slot {slot} (no box)"
        text_ax.text(0.0, 1.0 - (i + 0.5) * step, f"{part}  {word}", color=colour,
                     fontsize=10, fontweight="bold", transform=text_ax.transAxes, va="center")
        text_ax.text(0.62, 1.0 - (i + 0.5) * step, note, color=colour, fontsize=9,
                     transform=text_ax.transAxes, va="center")
    image_axes(image_ax, frame)
    image_ax.set_title(f"{frame_label}: MONet slots (mask > 0.5)")
    for k in np.flatnonzero(boxes[:, 0] >= 0):
        image_ax.add_patch(box_patch(boxes[k], colours[k], label=f"slot {k}"))
    if (boxes[:, 0] >= 0).any():
        image_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                        title="box colour", title_fontsize=8)
    fig.suptitle(title or "Cross-modal attention", fontsize=10)
    return fig


def most_attended_figure(frames: np.ndarray, masks: np.ndarray, top: np.ndarray, *,
                         title: str = "", frame_labels: Optional[Sequence[str]] = None,
                         columns: int = 8) -> mpl_figure.Figure:
    """Frames with boxes around the given slots of each frame.

    Args:
      frames: `[T, H, W, 3]` pixels.
      masks: `[T, K, H, W]` (or `[..., 1]`) slot masks.
      top: int `[T, c]`, the slots to box in each frame, most attended first; the
        first gets a thick solid outline, the others thin dashed ones, each in
        its slot's colour (the legend says which is which).
      title: the figure's title.
      frame_labels: a title for each frame's panel (default 'frame t').
      columns: panels per row.

    Returns:
      The figure, one panel per frame.
    """
    top = np.asarray(top)
    frames, masks = check_views(frames, masks, top.shape[0], np.asarray(masks).shape[1])
    colours = slot_colours(masks.shape[1])
    count = len(frames)
    cols = min(columns, count)
    rows = -(-count // cols)
    fig = new_figure(1.9 * cols + 1.0, 2.0 * rows + 1.2)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    labels = (list(frame_labels) if frame_labels is not None
              else [f"frame {t}" for t in range(count)])
    for t, ax in enumerate(axes.ravel()):
        if t >= count:
            ax.axis("off")
            continue
        image_axes(ax, frames[t], xlabel="x (pixels)" if t // cols == rows - 1 else "",
                   ylabel="y (pixels)" if t % cols == 0 else "")
        ax.set_title(labels[t], fontsize=9)
        ax.tick_params(labelsize=7)
        boxes = mask_boxes(masks[t])
        for rank, k in enumerate(top[t]):
            if boxes[k, 0] >= 0:
                ax.add_patch(box_patch(boxes[k], colours[k], width=3.0 if rank == 0 else 1.2,
                                       style="-" if rank == 0 else "--"))
    shown = sorted({int(k) for k in top.ravel()})
    handles = [mpl_lines.Line2D([], [], color="black", linewidth=3.0,
                                label="most attended slot")]
    if top.shape[1] > 1:
        handles.append(mpl_lines.Line2D([], [], color="black", linewidth=1.2, linestyle="--",
                                        label=f"next {top.shape[1] - 1} most attended"))
    handles += [patches.Patch(color=mpl_colour(colours[k]), label=f"slot {k}") for k in shown]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               fontsize=8)
    fig.suptitle(title or "Most attended objects (CLS attention)", fontsize=10)
    return fig


def slot_alignment_figure(cls_attention: np.ndarray, top: np.ndarray, *,
                          frames: Optional[np.ndarray] = None,
                          masks: Optional[np.ndarray] = None,
                          title: str = "") -> mpl_figure.Figure:
    """Frame (x) by slot (y) grid of CLS attention with a colour bar; top slots outlined.

    With `frames` and `masks`, each cell also shows the slot's segment (the
    frame's pixels where the mask is > 0.5, cropped around it), so one can follow
    an object as MONet moves it between slots. The slots of `top` get an orange
    outline (legend).

    Args:
      cls_attention: `[T, K]` CLS-to-object weights.
      top: int `[T, c]`, the slots to outline in each frame.
      frames: optional `[T, H, W, 3]` pixels.
      masks: optional `[T, K, H, W]` (or `[..., 1]`) masks, given with `frames`.
      title: the figure's title.

    Returns:
      The figure.
    """
    cls_attention = np.asarray(cls_attention)
    num_frames, num_slots = cls_attention.shape
    if (frames is None) != (masks is None):
        raise ValueError("slot_alignment_figure needs both frames and masks, or neither.")
    if frames is not None:
        frames, masks = check_views(frames, masks, num_frames, num_slots)
        frames = to_uint8(frames)
    fig = new_figure(max(7.5, 0.6 * num_frames + 3.0), max(4.5, 0.6 * num_slots + 2.6))
    ax = fig.subplots()
    shading = ax.imshow(cls_attention.T, cmap="Blues", vmin=0.0, aspect="equal",
                        interpolation="nearest", origin="upper")
    if frames is not None:
        for t in range(num_frames):
            for k in range(num_slots):
                segment = segment_rgba(frames[t], masks[t, k])
                if segment is not None:
                    ax.imshow(segment, extent=(t - 0.3, t + 0.3, k + 0.3, k - 0.3),
                              interpolation="nearest")
    count = np.asarray(top).shape[1]
    for t in range(num_frames):
        for k in np.asarray(top)[t]:
            ax.add_patch(patches.Rectangle((t - 0.5, k - 0.5), 1.0, 1.0, fill=False,
                                           edgecolor=TOP_COLOUR, linewidth=2.0))
    ax.set_xlim(-0.5, num_frames - 0.5)
    ax.set_ylim(num_slots - 0.5, -0.5)
    ax.set_xticks(range(num_frames))
    ax.set_yticks(range(num_slots))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("frame (time)")
    ax.set_ylabel("MONet slot")
    colour_bar = fig.colorbar(shading, ax=ax, shrink=0.9)
    colour_bar.set_label("CLS attention weight")
    handles = [patches.Patch(fill=False, edgecolor=TOP_COLOUR, linewidth=2.0,
                             label=f"{count} most attended slot{'s' if count > 1 else ''} "
                                   f"of the frame")]
    if frames is not None:
        handles.append(patches.Patch(color="grey", label="cell image: the slot's segment"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=2)
    fig.suptitle(title or "Slot alignment: CLS attention over time", fontsize=10)
    return fig


def segment_rgba(frame: np.ndarray, mask: np.ndarray) -> Optional[np.ndarray]:
    """uint8 `[s, s, 4]`: a slot's segment, transparent outside it; None when empty.

    The segment is the frame's pixels where `mask` `[H, W]` is > 0.5, cropped to
    the square around its bounding box.
    """
    top, left, bottom, right = mask_boxes(mask[None])[0]
    if top < 0:
        return None
    side = min(max(bottom - top, right - left), *mask.shape)
    top = int(np.clip((top + bottom - side) // 2, 0, mask.shape[0] - side))
    left = int(np.clip((left + right - side) // 2, 0, mask.shape[1] - side))
    crop = np.s_[top:top + side, left:left + side]
    alpha = np.where(mask[crop] > 0.5, 255, 0).astype(np.uint8)
    return np.concatenate([to_uint8(frame)[crop], alpha[..., None]], axis=-1)


def frames_with_regions(masks: np.ndarray, background_slot: Optional[int] = 0) -> np.ndarray:
    """int64 `[T]`: per frame, how many slots have a region (mask > 0.5), background aside."""
    counts = []
    for frame_masks in np.asarray(masks):
        has_region = mask_boxes(frame_masks)[:, 0] >= 0
        if background_slot is not None:
            has_region[background_slot] = False
        counts.append(int(has_region.sum()))
    return np.asarray(counts, np.int64)

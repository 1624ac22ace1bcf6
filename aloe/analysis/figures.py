"""Drawing helpers shared by the analysis figures (PIL only; images are uint8 arrays).

Every figure in `aloe.analysis` is built as a uint8 RGB array `[H, W, 3]`, so the
same pixels go to a PNG file (`save_png`) and to TensorBoard (`write_images`).

- `slot_colours`: one distinct colour per MONet slot.
- `mask_boxes` / `draw_boxes`: bounding boxes of the region where a slot's mask
  exceeds a threshold (0.5), drawn in the slot's colour.
- `image_grid`: panels in rows and columns with optional row / column labels;
  it also returns where every panel was placed.
- `words_image`: text whose words have individual colours, wrapped to a width.
"""

import colorsys
import os
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
# Distinct, saturated colours for the first slots; more are spread over the hue circle.
_PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 200, 200), (240, 50, 230), (170, 110, 40), (128, 128, 0), (0, 0, 128),
)
FONT_SIZE = 12


def font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font at `size` pixels (no system font needed)."""
    return ImageFont.load_default(size=size)


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


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of `[H, W, C]` by an integer factor."""
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}.")
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


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


def draw_boxes(image: np.ndarray, boxes: np.ndarray, colours: Sequence[RGB], *,
               scale: int = 1, widths: Optional[Sequence[int]] = None) -> np.ndarray:
    """Draws rectangles on a copy of an image.

    Args:
      image: uint8 `[H * scale, W * scale, 3]`.
      boxes: `[n, 4]` `(top, left, bottom, right)` in the unscaled pixel grid,
        bottom / right exclusive; rows with a negative entry are skipped.
      colours: one colour per box.
      scale: the factor by which `image` is larger than the boxes' grid.
      widths: outline width in pixels per box (default 1 each).

    Returns:
      uint8 image, the input with the outlines drawn.
    """
    canvas = Image.fromarray(to_uint8(image))
    draw = ImageDraw.Draw(canvas)
    widths = [1] * len(boxes) if widths is None else list(widths)
    for (top, left, bottom, right), colour, width in zip(np.asarray(boxes), colours, widths):
        if min(top, left, bottom, right) < 0:
            continue
        draw.rectangle([left * scale, top * scale, right * scale - 1, bottom * scale - 1],
                       outline=tuple(colour), width=int(width))
    return np.asarray(canvas)


def text_size(text: str, size: int = FONT_SIZE) -> tuple[int, int]:
    """`(width, height)` in pixels of `text` in `font(size)`."""
    left, top, right, bottom = font(size).getbbox(text or " ")
    return right - left, bottom - min(top, 0)


def image_grid(panels: Sequence[Sequence[np.ndarray]], *, scale: int = 1, gap: int = 2,
               row_labels: Optional[Sequence[str]] = None,
               col_labels: Optional[Sequence[str]] = None,
               background: RGB = WHITE) -> tuple[np.ndarray, np.ndarray]:
    """Panels laid out in rows and columns.

    All panels have the same size `[h, w, 3]` (float in [0, 1] or uint8); each is
    enlarged `scale` times. Row labels go on the left, column labels on top.

    Args:
      panels: `rows` lists of `cols` images each.
      scale: integer enlargement of every panel.
      gap: pixels between panels and around the grid.
      row_labels: `rows` strings, or None.
      col_labels: `cols` strings, or None.
      background: colour between panels.

    Returns:
      `(image uint8 [H, W, 3], boxes int64 [rows, cols, 4])`, each box the
      `(top, left, bottom, right)` of a panel in the image (bottom / right exclusive).
    """
    rows, cols = len(panels), len(panels[0]) if panels else 0
    if rows == 0 or cols == 0 or any(len(row) != cols for row in panels):
        raise ValueError("panels must be a non-empty list of equally long rows.")
    shapes = {np.asarray(p).shape for row in panels for p in row}
    if len(shapes) != 1:
        raise ValueError(f"All panels must have the same shape, got {sorted(shapes)}.")
    for name, labels, count in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{name} has {len(labels)} entries for {count} {name[:3]}s.")
    height, width = to_uint8(panels[0][0]).shape[:2]
    height, width = height * scale, width * scale
    left = gap + (max(text_size(t)[0] for t in row_labels) + gap if row_labels else 0)
    top = gap + (max(text_size(t)[1] for t in col_labels) + gap if col_labels else 0)
    canvas = np.empty((top + rows * (height + gap), left + cols * (width + gap), 3), np.uint8)
    canvas[:] = background
    boxes = np.zeros((rows, cols, 4), np.int64)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            y, x = top + r * (height + gap), left + c * (width + gap)
            canvas[y:y + height, x:x + width] = upscale(to_uint8(panel), scale)
            boxes[r, c] = (y, x, y + height, x + width)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for r, label in enumerate(row_labels or ()):
        y = boxes[r, 0, 0] + (height - text_size(label)[1]) // 2
        draw.text((gap, y), label, fill=BLACK, font=font())
    for c, label in enumerate(col_labels or ()):
        draw.text((boxes[0, c, 1], gap), label, fill=BLACK, font=font())
    return np.asarray(image), boxes


def words_image(words: Sequence[str], colours: Sequence[RGB], width: int, *,
                size: int = FONT_SIZE + 2, margin: int = 6,
                background: RGB = WHITE) -> np.ndarray:
    """Words in their own colours, wrapped into lines of at most `width` pixels.

    A word equal to "\\n" starts a new line.

    Args:
      words: the words, in order.
      colours: one colour per word.
      width: the image width in pixels.
      size: font size in pixels.
      margin: pixels around the text.
      background: the background colour.

    Returns:
      uint8 `[H, width, 3]`, H as tall as the wrapped text needs.
    """
    if len(words) != len(colours):
        raise ValueError(f"{len(words)} words but {len(colours)} colours.")
    space, line_height = text_size(" ", size)[0] + 2, text_size("Hg", size)[1] + 4
    placed, x, y = [], margin, margin
    for word, colour in zip(words, colours):
        if word == "\n":
            x, y = margin, y + line_height
            continue
        word_width = text_size(word, size)[0]
        if x > margin and x + word_width > width - margin:
            x, y = margin, y + line_height
        placed.append(((x, y), word, tuple(colour)))
        x += word_width + space
    image = Image.new("RGB", (width, y + line_height + margin), background)
    draw = ImageDraw.Draw(image)
    for position, word, colour in placed:
        draw.text(position, word, fill=colour, font=font(size))
    return np.asarray(image)


def stack(images: Sequence[np.ndarray], *, axis: int, gap: int = 4,
          background: RGB = WHITE) -> np.ndarray:
    """Images side by side (`axis=1`) or one above the other (`axis=0`), top / left aligned."""
    images = [to_uint8(image) for image in images]
    across = 1 - axis
    size = max(image.shape[across] for image in images)
    length = sum(image.shape[axis] for image in images) + gap * (len(images) - 1)
    shape = (length, size, 3) if axis == 0 else (size, length, 3)
    canvas = np.empty(shape, np.uint8)
    canvas[:] = background
    offset = 0
    for image in images:
        h, w = image.shape[:2]
        if axis == 0:
            canvas[offset:offset + h, :w] = image
        else:
            canvas[:h, offset:offset + w] = image
        offset += image.shape[axis] + gap
    return canvas


def save_png(image: np.ndarray, path: str | os.PathLike) -> str:
    """Writes an image (see `to_uint8`) as a PNG file; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path, format="PNG")
    return path


def write_images(images: Mapping[str, np.ndarray], out_dir: Optional[str | os.PathLike], *,
                 writer=None, logdir: Optional[str | os.PathLike] = None, step: int = 0,
                 tag_prefix: str = "") -> dict[str, str]:
    """Writes figures as `{out_dir}/{name}.png` and, if asked, as TensorBoard images.

    Args:
      images: name -> image (see `to_uint8`).
      out_dir: folder of the PNG files, or None for no files.
      writer: a `clu.metric_writers` writer to send the images to (not closed here).
      logdir: without `writer`, a TensorBoard folder: a writer is opened on it,
        written to and closed.
      step: the step the images are logged at.
      tag_prefix: prepended to the names to make the TensorBoard tags.

    Returns:
      name -> PNG path (empty without `out_dir`).
    """
    paths = {}
    if out_dir is not None:
        for name, image in images.items():
            paths[name] = save_png(image, os.path.join(os.fspath(out_dir), f"{name}.png"))
    tagged = {tag_prefix + name: to_uint8(image)[None] for name, image in images.items()}
    if writer is None and logdir is not None:
        from clu import metric_writers  # pylint: disable=g-import-not-at-top
        own = metric_writers.create_default_writer(os.fspath(logdir), asynchronous=False)
        try:
            own.write_images(step, tagged)
            own.flush()
        finally:
            own.close()
    elif writer is not None:
        writer.write_images(step, tagged)
    return paths


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
                       background_slot: Optional[int] = 0, scale: int = 4,
                       text_width: int = 320) -> np.ndarray:
    """Words coloured by the slot that attends to them most, beside the boxed frame.

    Every slot with a region (mask > 0.5) gets a box in its colour, except
    `background_slot`; a word whose slot has no box is black.

    Args:
      frame: `[H, W, 3]` pixels.
      masks: `[K, H, W]` (or `[K, H, W, 1]`) slot masks of the frame.
      words: the words.
      word_slots: the slot of each word.
      is_choice: per word, whether it belongs to the choice (a new line 'C:'
        starts before the first choice word).
      background_slot: the slot that gets no box (None: every slot may get one).
      scale: enlargement of the frame.
      text_width: width of the text column in pixels.

    Returns:
      uint8 image: the text column (`text_width` wide), 4 pixels, then the
      frame (`W * scale` wide) above a legend of the boxed slots.
    """
    boxes = mask_boxes(masks)
    if background_slot is not None:
        boxes[background_slot] = -1
    colours = slot_colours(len(boxes))
    text, text_colours, in_choice = ["Q:"], [BLACK], False
    for i, (word, slot) in enumerate(zip(words, word_slots)):
        if is_choice is not None and is_choice[i] and not in_choice:
            text += ["\n", "C:"]
            text_colours += [BLACK, BLACK]
            in_choice = True
        text.append(word)
        text_colours.append(colours[slot] if boxes[slot, 0] >= 0 else BLACK)
    picture = draw_boxes(upscale(to_uint8(frame), scale), boxes, colours, scale=scale,
                         widths=[2] * len(boxes))
    boxed = [k for k in range(len(boxes)) if boxes[k, 0] >= 0]
    legend = words_image([f"slot {k}" for k in boxed], [colours[k] for k in boxed],
                         picture.shape[1])
    return stack([words_image(text, text_colours, text_width),
                  stack([picture, legend], axis=0, gap=0)], axis=1)


def most_attended_figure(frames: np.ndarray, masks: np.ndarray, top: np.ndarray, *,
                         scale: int = 2,
                         frame_labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """A strip of frames with boxes around the given slots of each frame.

    Args:
      frames: `[T, H, W, 3]` pixels.
      masks: `[T, K, H, W]` (or `[..., 1]`) slot masks.
      top: int `[T, c]`, the slots to box in each frame, most important first;
        the first gets a 3-pixel outline, the others 1, each in its slot's colour.
      scale: enlargement of every frame.
      frame_labels: a label above each frame (default its index).

    Returns:
      uint8 image: one row of T panels of `H * scale x W * scale` (`image_grid`).
    """
    top = np.asarray(top)
    frames, masks = check_views(frames, masks, top.shape[0], np.asarray(masks).shape[1])
    colours = slot_colours(masks.shape[1])
    panels = []
    for t, frame in enumerate(frames):
        panels.append(draw_boxes(upscale(to_uint8(frame), scale), mask_boxes(masks[t])[top[t]],
                                 [colours[k] for k in top[t]], scale=scale,
                                 widths=[3] + [1] * (top.shape[1] - 1)))
    labels = (list(frame_labels) if frame_labels is not None
              else [str(t) for t in range(len(frames))])
    return image_grid([panels], col_labels=labels)[0]


def slot_alignment_figure(cls_attention: np.ndarray, top: np.ndarray, *,
                          frames: Optional[np.ndarray] = None,
                          masks: Optional[np.ndarray] = None, cell: int = 24) -> np.ndarray:
    """Time (x) by slot (y) grid of CLS attention, the given slots outlined.

    Each cell is shaded from white (no attention) to dark blue (the largest
    weight of the grid). With `frames` and `masks`, the slot's segment (the
    frame's pixels where the mask is > 0.5, `draw_segment`) is drawn over the
    shading inside a 4-pixel border, so one can follow an object as MONet moves
    it between slots. The slots of `top` get a 2-pixel orange outline.

    Args:
      cls_attention: `[T, K]` CLS-to-object weights.
      top: int `[T, c]`, the slots to outline in each frame.
      frames: optional `[T, H, W, 3]` pixels.
      masks: optional `[T, K, H, W]` (or `[..., 1]`) masks, given with `frames`.
      cell: side of a cell in pixels (> 8).

    Returns:
      uint8 image with K rows and T columns of `cell x cell` panels (`image_grid`).
    """
    num_frames, num_slots = cls_attention.shape
    if cell <= 8:
        raise ValueError(f"cell must be more than 8 pixels, got {cell}.")
    if (frames is None) != (masks is None):
        raise ValueError("slot_alignment_figure needs both frames and masks, or neither.")
    if frames is not None:
        frames, masks = check_views(frames, masks, num_frames, num_slots)
        frames = to_uint8(frames)
    shade = cls_attention / max(float(cls_attention.max()), 1e-12)
    light, dark = np.array(WHITE, np.float32), np.array((20, 40, 140), np.float32)
    rows = []
    for k in range(num_slots):
        row = []
        for t in range(num_frames):
            panel = np.empty((cell, cell, 3), np.uint8)
            panel[:] = np.round(light + (dark - light) * shade[t, k]).astype(np.uint8)
            if frames is not None:
                draw_segment(panel[4:cell - 4, 4:cell - 4], frames[t], masks[t, k])
            if k in top[t]:
                for edge in (panel[:2], panel[-2:], panel[:, :2], panel[:, -2:]):
                    edge[:] = (255, 140, 0)
            row.append(panel)
        rows.append(row)
    col_labels = [str(t) if t % 5 == 0 else "" for t in range(num_frames)]
    return image_grid(rows, gap=1, row_labels=[f"slot {k}" for k in range(num_slots)],
                      col_labels=col_labels)[0]


def draw_segment(target: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> None:
    """Draws a slot's segment into `target` `[h, w, 3]` uint8, in place.

    The segment is the frame's pixels where `mask` `[H, W]` is > 0.5, cropped to
    the square around its bounding box and resized to fill `target`; pixels
    outside the region keep `target`'s colour. An empty region draws nothing.
    """
    top, left, bottom, right = mask_boxes(mask[None])[0]
    if top < 0:
        return
    side = min(max(bottom - top, right - left), *mask.shape)
    top = int(np.clip((top + bottom - side) // 2, 0, mask.shape[0] - side))
    left = int(np.clip((left + right - side) // 2, 0, mask.shape[1] - side))
    crop = np.s_[top:top + side, left:left + side]
    size = (target.shape[1], target.shape[0])
    pixels = np.asarray(Image.fromarray(to_uint8(frame)[crop]).resize(size, Image.NEAREST))
    region = np.asarray(Image.fromarray((mask[crop] > 0.5).astype(np.uint8) * 255).resize(
        size, Image.NEAREST)) > 127
    target[region] = pixels[region]


def frames_with_regions(masks: np.ndarray, background_slot: Optional[int] = 0) -> np.ndarray:
    """int64 `[T]`: per frame, how many slots have a region (mask > 0.5), background aside."""
    counts = []
    for frame_masks in np.asarray(masks):
        has_region = mask_boxes(frame_masks)[:, 0] >= 0
        if background_slot is not None:
            has_region[background_slot] = False
        counts.append(int(has_region.sum()))
    return np.asarray(counts, np.int64)

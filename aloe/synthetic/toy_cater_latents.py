r"""A small generated CATER latent dataset: find the snitch's final cell from object latents.

  python -m aloe.synthetic.toy_cater_latents --out /tmp/toy_cater --num_train 300 \
      --num_valid 50 --seed 0

writes, in seconds (~105 MB for these sizes), a latent store in the layout
of `aloe.data.cater_latents`: `{train,valid}_labels.json` and
`{train,valid}/{name}.npy` float32 `[301 frames, 8 slots, 16]`, with
`--num_train` / `--num_valid` videos of EACH camera:
`all_actions/CATER_new_NNNNNN` (static camera) and
`all_actions_cameramotion/CATER_new_NNNNNN` (moving camera); validation
videos are numbered after the training ones. It stands in for MONet latents of CATER
videos so that the CATER task can be trained and evaluated end to end on a
laptop.

Scene. On the floor `[-3, 3)^2` lie a golden snitch, 1-2 cones and 1-3 other
objects (cubes, spheres, cylinders), each in its own slot of a random
permutation of 1..7 (slot 0 is the background, the rest are empty). Every
resting point is a random grid cell's centre plus up to 0.3 in x and y, so a
final position is never within 0.2 of a cell border. All motion is straight
slides that end by frame 200; the rest of the video is still. The snitch
follows one of three stories (probabilities 1/2, 1/4, 1/4):

  visible   it slides to a new point and stays in view;
  covered   it slides to a new point, then a cone slides onto it and hides it
            for the rest of the video (the answer is where it was last seen);
  carried   a cone slides onto it where it stands, hides it, and then slides
            elsewhere carrying it (the answer is where that cone ends).

The other cone and objects each slide once to a random point with probability
0.6. The label is the cell of the snitch's final position
(`aloe.cater.grid.position_to_class`).

Latents of an object in view, per frame:

  dims 0-2    colour code (the snitch's is golden (1, 0.84, 0); others from a
              palette of 7 CLEVR colours without yellow)
  dims 3-7    one-hot shape (order of `SHAPES`)
  dims 8-9    (x, y) position in the camera's frame, divided by 3
  dim  10     present: 1

The background slot has dim 11 set to 1 and the camera's offset (divided by
3) in dims 12-13. A static camera has offset 0; a moving camera glides in a
straight line between two random offsets in `[-1, 1]^2` over the whole video,
and an object at world position p shows at `p - offset`: the final cell needs
the camera offset of the same frame added back. A hidden snitch's slot, like
an empty one, holds noise only. Every entry gets Gaussian noise, std 0.02
(static camera) or 0.04 (moving camera).
"""

import argparse
import dataclasses
import os
from typing import Sequence

import numpy as np

from aloe.cater import grid
from aloe.data import cater_latents

NUM_FRAMES, NUM_SLOTS, LATENT_DIM = 301, 8, 16
COLOR_DIMS, SHAPE_DIMS, POSITION_DIMS = slice(0, 3), slice(3, 8), slice(8, 10)
PRESENT_DIM, BACKGROUND_DIM, CAMERA_DIMS = 10, 11, slice(12, 14)
SHAPES = ("cube", "sphere", "cylinder", "cone", "spl")
OTHER_SHAPES = ("cube", "sphere", "cylinder")
SNITCH_COLOR = (1.0, 0.84, 0.0)
PALETTE = ((0.5, 0.5, 0.5), (0.8, 0.1, 0.1), (0.1, 0.2, 0.9), (0.1, 0.6, 0.2),
           (0.5, 0.3, 0.1), (0.5, 0.1, 0.6), (0.1, 0.8, 0.8))
POSITION_SCALE = 1.0 / 3.0    # Latent position = position / 3, in about [-1, 1].
JITTER = 0.3                  # A resting point lies within this of its cell's centre.
MOTION_END = 200              # Every slide ends by this frame.
CAMERA_RANGE = 1.0            # A moving camera's offset lies in [-1, 1]^2.
NOISE_STD = {False: 0.02, True: 0.04}  # By camera_moving.
STORIES = ("visible", "covered", "carried")
STORY_PROBABILITIES = (0.5, 0.25, 0.25)
VARIANT_FOLDERS = {False: "all_actions", True: "all_actions_cameramotion"}


@dataclasses.dataclass(frozen=True)
class ToyCaterVideo:
    """One toy video's objects and camera (object 0 is the snitch).

    Attributes:
      shapes: each object's shape (from `SHAPES`).
      colors: float `[objects, 3]` colour codes.
      slots: int `[objects]` slots (1..7).
      paths: float `[objects, 301, 2]` world (x, y) positions.
      visible: bool `[objects, 301]` whether each object is in view.
      camera: float `[301, 2]` the camera's offset.
      camera_moving: the moving-camera variant.
      story: how the snitch moves (one of `STORIES`).
    """
    shapes: tuple[str, ...]
    colors: np.ndarray
    slots: np.ndarray
    paths: np.ndarray
    visible: np.ndarray
    camera: np.ndarray
    camera_moving: bool
    story: str

    @property
    def label(self) -> int:
        """The grid cell of the snitch's final position."""
        return int(grid.position_to_class(self.paths[0, -1]))


def _resting_point(rng: np.random.Generator) -> np.ndarray:
    """A random cell's centre plus up to `JITTER` in x and y."""
    return grid.cell_centers(rng.integers(grid.NUM_CELLS)) + rng.uniform(-JITTER, JITTER, 2)


def _window(rng: np.random.Generator, earliest: int, latest: int) -> tuple[int, int]:
    """A slide's (start, end) frames with `earliest <= start < end <= latest`."""
    duration = int(rng.integers(20, 61))
    start = int(rng.integers(earliest, max(earliest, latest - duration) + 1))
    return start, min(start + duration, latest)


def _slide(path: np.ndarray, start: int, end: int, target: np.ndarray) -> None:
    """Moves `path [frames, 2]` in a straight line to `target` over `start..end`, then rests."""
    origin = path[start].copy()
    weight = (np.arange(start, end + 1) - start) / (end - start)
    path[start:end + 1] = origin + weight[:, None] * (target - origin)
    path[end + 1:] = target


def make_video(rng: np.random.Generator, camera_moving: bool) -> ToyCaterVideo:
    """Draws one toy video (see the module docstring)."""
    num_cones = int(rng.integers(1, 3))
    num_others = int(rng.integers(1, 4))
    shapes = ("spl",) + ("cone",) * num_cones + tuple(
        OTHER_SHAPES[i] for i in rng.integers(len(OTHER_SHAPES), size=num_others))
    count = len(shapes)
    colors = np.asarray([SNITCH_COLOR] + [PALETTE[i] for i in
                                          rng.choice(len(PALETTE), count - 1, replace=False)])
    slots = rng.permutation(np.arange(1, NUM_SLOTS))[:count]
    paths = np.empty((count, NUM_FRAMES, 2))
    for i in range(count):
        paths[i] = _resting_point(rng)
    visible = np.ones((count, NUM_FRAMES), bool)
    story = STORIES[int(rng.choice(len(STORIES), p=STORY_PROBABILITIES))]
    snitch, cone = paths[0], paths[1]
    if story == "visible":
        _slide(snitch, *_window(rng, 0, MOTION_END), _resting_point(rng))
    elif story == "covered":
        start, moved = _window(rng, 0, 110)
        _slide(snitch, start, moved, _resting_point(rng))
        start, covered = _window(rng, moved + 5, MOTION_END)
        _slide(cone, start, covered, snitch[-1].copy())
        visible[0, covered:] = False
    else:
        start, covered = _window(rng, 0, 100)
        _slide(cone, start, covered, snitch[0].copy())
        _slide(cone, *_window(rng, covered + 5, MOTION_END), _resting_point(rng))
        snitch[covered:] = cone[covered:]
        visible[0, covered:] = False
    for i in range(2, count):
        if rng.random() < 0.6:
            _slide(paths[i], *_window(rng, 0, MOTION_END), _resting_point(rng))
    camera = np.zeros((NUM_FRAMES, 2))
    if camera_moving:
        start, end = rng.uniform(-CAMERA_RANGE, CAMERA_RANGE, (2, 2))
        camera = start + np.linspace(0.0, 1.0, NUM_FRAMES)[:, None] * (end - start)
    return ToyCaterVideo(shapes, colors, slots, paths, visible, camera, camera_moving, story)


def render_latents(video: ToyCaterVideo, rng: np.random.Generator) -> np.ndarray:
    """float32 `[301, 8, 16]`: the latents of a video (layout in the module docstring)."""
    latents = rng.normal(0.0, NOISE_STD[video.camera_moving],
                         (NUM_FRAMES, NUM_SLOTS, LATENT_DIM))
    latents[:, 0, BACKGROUND_DIM] += 1.0
    latents[:, 0, CAMERA_DIMS] += video.camera * POSITION_SCALE
    for shape, color, slot, path, seen in zip(video.shapes, video.colors, video.slots,
                                              video.paths, video.visible):
        features = np.zeros(LATENT_DIM)
        features[COLOR_DIMS] = color
        features[SHAPE_DIMS.start + SHAPES.index(shape)] = 1.0
        features[PRESENT_DIM] = 1.0
        features = features + np.zeros((NUM_FRAMES, 1))
        features[:, POSITION_DIMS] = (path - video.camera) * POSITION_SCALE
        latents[seen, slot] += features[seen]
    return latents.astype(np.float32)


def video_name(camera_moving: bool, index: int) -> str:
    """The store name of a toy video, e.g. `all_actions/CATER_new_000007`."""
    return f"{VARIANT_FOLDERS[camera_moving]}/CATER_new_{index:06d}"


def write_toy_cater_dataset(out: str | os.PathLike, num_train: int, num_valid: int,
                            seed: int) -> None:
    """Writes a toy CATER latent store (see the module docstring).

    Args:
      out: the store's root folder (created if needed; files of the same
        names are replaced).
      num_train: training videos per camera, at least 1.
      num_valid: validation videos per camera, at least 1.
      seed: seeds everything; each (split, camera, video) has its own stream,
        so a split's videos do not depend on the other split's size.
    """
    if num_train < 1 or num_valid < 1:
        raise ValueError(f"num_train and num_valid must be >= 1, got {num_train}, {num_valid}.")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    out = os.fspath(out)
    for split_id, (split, count, first) in enumerate(
            (("train", num_train, 0), ("valid", num_valid, num_train))):
        store = cater_latents.CaterLatentStore(out, split, (NUM_FRAMES, NUM_SLOTS, LATENT_DIM))
        labels = {}
        for camera_moving in (False, True):
            for i in range(count):
                rng = np.random.default_rng([seed, split_id, int(camera_moving), i])
                video = make_video(rng, camera_moving)
                name = video_name(camera_moving, first + i)
                store.write(name, render_latents(video, rng))
                labels[name] = {"label": video.label,
                                "camera": cater_latents.CAMERAS[int(camera_moving)],
                                "story": video.story}
        cater_latents.write_labels(out, split, labels)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `--out DIR --num_train N --num_valid M --seed S`."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", required=True, help="Output folder (the store's root).")
    parser.add_argument("--num_train", type=int, default=300,
                        help="Training videos per camera.")
    parser.add_argument("--num_valid", type=int, default=50,
                        help="Validation videos per camera.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    args = parser.parse_args(argv)
    write_toy_cater_dataset(args.out, args.num_train, args.num_valid, args.seed)
    print(f"Wrote {args.num_train} train and {args.num_valid} validation videos per camera "
          f"to {args.out}.")


if __name__ == "__main__":
    main()

"""Writing real video files (mp4 / avi) through PyAV's bundled FFmpeg."""

import os
from typing import Sequence

import av
import numpy as np

# Container suffix -> codec. CLEVRER ships H.264 mp4, CATER MPEG-4 Part 2 avi.
_CODECS = {".mp4": "libx264", ".avi": "mpeg4"}


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray],
                fps: int = 25, quality: int = 18) -> None:
    """Encodes RGB frames into a video file whose codec follows the suffix.

    Args:
      path: output file; `.mp4` (H.264) or `.avi` (MPEG-4).
      frames: uint8 `[T, H, W, 3]`; H and W must be even (yuv420p).
      fps: frames per second written into the container.
      quality: H.264 constant rate factor (lower is better); for avi, the
        MPEG-4 quantiser scale is derived from it.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _CODECS:
        raise ValueError(f"{path}: unsupported video suffix {suffix!r}; use one of {sorted(_CODECS)}.")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}.")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: frame size {width}x{height} must be even for yuv420p.")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".partial" + suffix
    with av.open(tmp, mode="w") as container:
        stream = container.add_stream(_CODECS[suffix], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One encoder thread: multithreaded encoding can differ with the machine's
        # load, and a seed must give byte-identical videos. Generators parallelise
        # over videos instead.
        stream.thread_count = 1
        if suffix == ".mp4":
            stream.options = {"crf": str(quality), "preset": "veryfast"}
        else:
            stream.options = {"qscale": str(max(1, quality // 6))}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)  # A video is either complete or absent.

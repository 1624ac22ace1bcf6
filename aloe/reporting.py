"""What a run reports: console log levels, TensorBoard scalars, progress lines.

- `configure_logging`: the one place that sets how chatty the libraries are.
  Their INFO lines (orbax's per-checkpoint lines, tfds's dataset lines, clu's
  metric echoes, TensorFlow's native start-up lines) are dropped unless
  `show_libraries`; their warnings and errors, and every line of this project
  (`aloe`, `configs`, the running script), stay. This module imports
  TensorFlow only when a writer is made, so an entry point can call it first.
- `create_writer`: the metric writer of a workdir. Scalars are stored as classic
  `simple_value` summaries, which `EventAccumulator.Scalars()` returns and which
  TensorBoard's scalar dashboard shows; images as usual. The scalars also go, one
  JSON object per write, to `{logdir}/scalars.jsonl` (`read_scalars` reads it back),
  a small plain-text record of the learning curves that needs no TensorFlow to
  read. No console echo: the loops print their own one line per interval.
- `evaluation_tag`: the `{split}_{step}[_{eval.tag}]` that names an evaluation's
  files (`eval_*.json`, `predictions_*.json`, ...), so one checkpoint can be
  evaluated under several settings in one workdir.
- `Progress`: periodic progress lines with rate and ETA for loops such as
  evaluation, at most one every `every_seconds`.
"""

import functools
import json
import logging as std_logging
import os
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional

from absl import logging

if TYPE_CHECKING:
    from clu import metric_writers

_PROJECT_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
    for name in ("aloe", "configs", "tests", "examples", "benchmarks", "studies"))


class _LibraryInfoFilter(std_logging.Filter):
    """Passes warnings and above, and any line logged from this project's files."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno >= std_logging.WARNING:
            return True
        return os.path.abspath(record.pathname).startswith(_PROJECT_DIRS)


_FILTER = _LibraryInfoFilter()
# absl's logger carries the absl.logging calls of every library (orbax, clu, tfds);
# the others log through the standard module.
_LIBRARY_LOGGERS = ("orbax", "jax", "tensorflow", "tensorflow_datasets", "etils", "absl.flags")


def set_tensorflow_environment(quiet: bool = True) -> None:
    """Sets TensorFlow's environment variables where unset; effective before it is imported.

    TensorFlow's oneDNN kernels are off: this project's use of TensorFlow (tf.data
    decoding, reading TF checkpoints) does not need them, and TensorFlow 2.21
    prints a notice about them at any log level. With `quiet`, its C++ INFO lines
    are hidden too (`TF_CPP_MIN_LOG_LEVEL=2`; its warnings stay).
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_logging(show_libraries: bool = False) -> None:
    """Hides (or with `show_libraries` shows) the libraries' INFO chatter.

    Lines of this project's modules keep absl's verbosity (`--verbosity`), so
    progress stays visible while orbax and tfds are quiet. TensorFlow's native
    lines follow `set_tensorflow_environment`, so they are quiet only when
    TensorFlow is imported after this call, as the entry points do.
    """
    set_tensorflow_environment(quiet=not show_libraries)
    absl_logger = std_logging.getLogger("absl")
    absl_logger.removeFilter(_FILTER)
    if not show_libraries:
        absl_logger.addFilter(_FILTER)
    for name in _LIBRARY_LOGGERS:
        std_logging.getLogger(name).setLevel(
            std_logging.NOTSET if show_libraries else std_logging.WARNING)


@functools.cache
def _scalar_summary_writer() -> type[Any]:
    """clu's TensorFlow summary writer with scalars as classic `simple_value` summaries."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from clu.metric_writers import summary_writer  # pylint: disable=g-import-not-at-top

    class ScalarSummaryWriter(summary_writer.SummaryWriter):

        def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
            values = [tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value))
                      for tag, value in scalars.items()]
            with self._summary_writer.as_default():
                tf.summary.experimental.write_raw_pb(
                    tf.compat.v1.Summary(value=values).SerializeToString(), step=step)

    return ScalarSummaryWriter


SCALARS_FILE = "scalars.jsonl"


@functools.cache
def _json_lines_writer() -> type[Any]:
    """A clu writer that appends each `write_scalars` call to a file as one JSON line."""
    from clu.metric_writers import interface  # pylint: disable=g-import-not-at-top

    class JsonLinesWriter(interface.MetricWriter):
        """Scalars as lines `{"step": S, "tag": value, ...}`; other kinds are not kept."""

        def __init__(self, path: str):
            self._path = path
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

        def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
            line = json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
            with open(self._path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

        def write_summaries(self, step, values, metadata=None) -> None:
            del step, values, metadata

        def write_images(self, step, images) -> None:
            del step, images

        def write_videos(self, step, videos) -> None:
            del step, videos

        def write_audios(self, step, audios, *, sample_rate) -> None:
            del step, audios, sample_rate

        def write_texts(self, step, texts) -> None:
            del step, texts

        def write_histograms(self, step, arrays, num_buckets=None) -> None:
            del step, arrays, num_buckets

        def write_hparams(self, hparams) -> None:
            del hparams

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    return JsonLinesWriter


def read_scalars(path: str) -> dict[int, dict[str, float]]:
    """`{step: {tag: value}}` of a `scalars.jsonl`, steps in order.

    A resumed run appends again the steps logged between its checkpoint and the
    interruption; the later line wins.

    Raises:
      ValueError: a line that is not a JSON object with an integer "step" (named
        by file and line).
    """
    steps: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = record.pop("step")
                if not isinstance(step, int):
                    raise TypeError(step)
                values = {tag: float(value) for tag, value in record.items()}
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError,
                    ValueError) as err:
                raise ValueError(f"{path}, line {number}: expected a JSON object of a 'step' "
                                 f"integer and numbers ({err!r}).") from None
            steps.setdefault(step, {}).update(values)
    return dict(sorted(steps.items()))


def create_writer(logdir: Optional[str], *,
                  enabled: bool = True) -> "metric_writers.MetricWriter":
    """The metric writer of a run: TensorBoard events and `scalars.jsonl` in `logdir`.

    Args:
      logdir: the folder of the event files.
      enabled: False on processes other than 0, which write nothing (as without `logdir`).
    """
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
    if not enabled or logdir is None:
        return metric_writers.MultiWriter([])
    logdir = os.fspath(logdir)
    return metric_writers.MultiWriter([
        _scalar_summary_writer()(logdir),
        _json_lines_writer()(os.path.join(logdir, SCALARS_FILE))])


def evaluation_tag(split: str, step: int | None, tag: str = "") -> str:
    """`{split}_{step}`, with `_{tag}` appended when `tag` (`config.eval.tag`) is set."""
    if tag and not all(c.isalnum() or c in "-_." for c in tag):
        raise ValueError(f"eval.tag must be letters, digits, '-', '_' or '.', got {tag!r}.")
    return f"{split}_{step}" + (f"_{tag}" if tag else "")


def format_duration(seconds: float) -> str:
    """'H:MM:SS'."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress lines of a loop: '{name}: 12/40 batches, 2.1/s, ETA 0:00:13'.

    A line is logged every `every_seconds` while it runs, and by `done()` a
    final one if the loop took that long (a short loop stays silent). Without
    `total` the lines have no ETA.
    """

    def __init__(self, name: str, total: Optional[int] = None, *, unit: str = "batches",
                 every_seconds: float = 10.0):
        self.name, self.total, self.unit, self.every = name, total, unit, every_seconds
        self.count = 0
        self.start = time.time()
        self._last = self.start

    def update(self, count: int = 1) -> None:
        """Counts `count` more items; logs a line when one is due."""
        self.count += count
        now = time.time()
        if now - self._last >= self.every:
            self._last = now
            logging.info("%s", self.line(now))

    def line(self, now: Optional[float] = None, *, eta: bool = True) -> str:
        """The progress line at time `now`."""
        elapsed = max((now or time.time()) - self.start, 1e-9)
        rate = self.count / elapsed
        of = f"/{self.total}" if self.total else ""
        text = f"{self.name}: {self.count}{of} {self.unit}, {rate:.2f}/s"
        if self.total and eta:
            text += f", ETA {format_duration((self.total - self.count) / max(rate, 1e-9))}"
        return text + f", elapsed {format_duration(elapsed)}"

    def done(self) -> None:
        """Logs the final line, if any line was logged before."""
        if self._last > self.start:
            logging.info("%s (done)", self.line(eta=False))

r"""TFDS builder `clevrer`: CLEVRER videos at 64x64 with their questions and annotations.

The manual directory is a CLEVRER root in the official layout (DESIGN.md §6),
the real dataset or the output of `python -m aloe.synthetic.clevrer`:

    videos/{train,validation,test}/video_00000-01000/video_00000.mp4
    annotations/{train,validation,test}/annotation_00000-01000/annotation_00000.json
    questions/{train,validation,test}.json

Build with the stock command (`pip install -e .[tfds-cli]`), or with this
module, which takes the same flags and needs no apache-beam
(`video_frames.tfds_build_main`):

    tfds build aloe/data/clevrer.py --manual_dir=$CLEVRER --data_dir=$TFDS_DATA
    python -m aloe.data.clevrer --manual_dir=$CLEVRER --data_dir=$TFDS_DATA
    # skip bad videos instead of failing, and report them:
    python -m aloe.data.clevrer --manual_dir=$CLEVRER --data_dir=$TFDS_DATA \
        --config='{"name": "frames64_skip_bad", "skip_bad_videos": true}'

or from Python, after `import aloe.data.clevrer`:

    builder = tfds.builder("clevrer", data_dir=TFDS_DATA)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=CLEVRER))

One example per video file, keyed by scene_index (TFDS stores examples in
its own hashed key order); splits `train`, `validation`, `test`. Every frame
is decoded once with PyAV (on `decode_threads` threads) and area-resized,
full frame and no crop, to 64x64 (`aloe.data.video_frames` states and
justifies the policy). A video must hold at least `min_frames` frames (128, as
CLEVRER's and the generator's do); all its frames are kept. A video without
an entry in the question file is kept with no questions.

Each question keeps its raw fields next to its words (`aloe.data.vocab.tokenize`):
answers missing from the file (the test split) are stored as the empty
string, as are a missing `question_subtype` and the question-level answer of
multiple-choice questions. The annotation is stored as its file's JSON text
(empty when the split has no annotations, as CLEVRER's test split).

Errors name the file and, for questions, the scene_index and question_id:
a question file that does not match the schema, an unreadable / truncated /
too short video (unless `skip_bad_videos`: then skipped and listed in
`bad_videos.json` in the dataset directory, also printed), a scene whose
questions have no video, or an annotation that is not JSON.
"""

import dataclasses
import os
import re
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from aloe.clevrer.metrics import MC_TYPES
from aloe.data import video_frames
from aloe.data.vocab import tokenize
from aloe.json_io import read_json

SPLITS = {"train": "train", "validation": "validation", "test": "test"}  # TFDS -> folder
DESCRIPTIVE = "descriptive"
CHOICE_ANSWERS = ("correct", "wrong")
_VIDEO_NAME = re.compile(r"^video_(\d+)\.mp4$")
_ANNOTATION_NAME = re.compile(r"^annotation_(\d+)\.json$")


@dataclasses.dataclass
class ClevrerConfig(tfds.core.BuilderConfig):
    """How CLEVRER videos are turned into examples.

    Attributes:
      resolution: side of the square output frames (64 in the paper).
      min_frames: a video with fewer frames is bad (CLEVRER has 128).
      skip_bad_videos: skip and report bad videos instead of raising.
      decode_threads: videos decoded and resized at once.
    """
    resolution: int = 64
    min_frames: int = 128
    skip_bad_videos: bool = False
    decode_threads: int = 4


def _checked(entry: Any, name: str, kind: type, where: str, default: Any = None) -> Any:
    """entry[name] checked to be `kind` (bools are not ints); `default` when absent and given."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}.")
    if name not in entry:
        if default is not None:
            return default
        raise ValueError(f"{where}: missing field {name!r}.")
    value = entry[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {value!r}.")
    return value


def _program(entry: dict, where: str) -> list[str]:
    """The `program` field: a list of strings."""
    program = _checked(entry, "program", list, where)
    if not all(isinstance(step, str) for step in program):
        raise ValueError(f"{where}: field 'program' must be a list of strings, got {program!r}.")
    return program


def question_features(question: Any, where: str) -> dict[str, Any]:
    """Checks one question of a CLEVRER question file and returns its feature dict.

    Args:
      question: the decoded JSON of one question.
      where: "file: scene_index S" for error messages.

    Returns:
      The `questions` features of one question (see `Clevrer._info`).

    Raises:
      ValueError: naming `where`, the question_id (and choice_id) when a field
        is missing or of the wrong type, the question_type is unknown, a
        multiple-choice question has no choices, a choice answer is not
        'correct' / 'wrong', or a choice_id repeats.
    """
    question_id = _checked(question, "question_id", int, where)
    where = f"{where}, question_id {question_id}"
    text = _checked(question, "question", str, where)
    question_type = _checked(question, "question_type", str, where)
    if question_type != DESCRIPTIVE and question_type not in MC_TYPES:
        raise ValueError(f"{where}: unknown question_type {question_type!r}; expected "
                         f"{DESCRIPTIVE!r} or one of {MC_TYPES}.")
    features = {
        "question_id": question_id, "question": text, "tokens": tokenize(text),
        "question_type": question_type,
        "question_subtype": _checked(question, "question_subtype", str, where, default=""),
        "program": _program(question, where),
        "answer": _checked(question, "answer", str, where, default=""),
        "choices": [],
    }
    if question_type == DESCRIPTIVE:
        return features
    choices = _checked(question, "choices", list, where)
    if not choices:
        raise ValueError(f"{where}: field 'choices' is empty.")
    seen: set[int] = set()
    for slot, choice in enumerate(choices):
        choice_id = _checked(choice, "choice_id", int, f"{where}, choice {slot}")
        choice_where = f"{where}, choice_id {choice_id}"
        if choice_id in seen:
            raise ValueError(f"{choice_where}: choice_id appears twice.")
        seen.add(choice_id)
        choice_text = _checked(choice, "choice", str, choice_where)
        answer = _checked(choice, "answer", str, choice_where, default="")
        if answer and answer not in CHOICE_ANSWERS:
            raise ValueError(f"{choice_where}: field 'answer' must be one of {CHOICE_ANSWERS}, "
                             f"got {answer!r}.")
        features["choices"].append({
            "choice_id": choice_id, "choice": choice_text, "tokens": tokenize(choice_text),
            "program": _program(choice, choice_where), "answer": answer})
    return features


def read_question_file(path: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Reads and checks a CLEVRER question file.

    Args:
      path: `questions/{split}.json`.

    Returns:
      scene_index -> {"video_filename": str, "questions": [question features]}.

    Raises:
      ValueError: naming the file (and scene_index / question_id) when the file
        is not JSON or does not match the schema, or a scene_index or a
        question_id within a scene repeats.
    """
    path = os.fspath(path)
    scenes = read_json(path)
    if not isinstance(scenes, list):
        raise ValueError(f"{path}: expected a JSON list of scenes, got {type(scenes).__name__}.")
    parsed: dict[int, dict[str, Any]] = {}
    for position, scene in enumerate(scenes):
        scene_index = _checked(scene, "scene_index", int, f"{path}: scene entry {position}")
        where = f"{path}: scene_index {scene_index}"
        if scene_index in parsed:
            raise ValueError(f"{where}: the scene appears twice.")
        video_filename = _checked(scene, "video_filename", str, where,
                                  default=f"video_{scene_index:05d}.mp4")
        questions = [question_features(q, where)
                     for q in _checked(scene, "questions", list, where)]
        ids = [q["question_id"] for q in questions]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"{where}: question_id {repeated[0]} appears twice.")
        parsed[scene_index] = {"video_filename": video_filename, "questions": questions}
    return parsed


def find_numbered_files(directory: str | os.PathLike, pattern: re.Pattern,
                        suffix: str) -> dict[int, str]:
    """Scene index -> path of every file under `directory` whose name ends with `suffix`.

    Raises:
      ValueError: naming the file, when a `suffix` file's name does not match
        `pattern` (one group: the number) or two files share a number.
    """
    found: dict[int, str] = {}
    for folder, subfolders, names in os.walk(os.fspath(directory)):
        subfolders.sort()
        for name in sorted(names):
            if not name.endswith(suffix):
                continue
            path = os.path.join(folder, name)
            match = pattern.match(name)
            if not match:
                raise ValueError(f"{path}: file name does not match {pattern.pattern!r}.")
            number = int(match.group(1))
            if number in found:
                raise ValueError(f"{path}: scene_index {number} already has {found[number]}.")
            found[number] = path
    return found


# Run with `python -m`, this file executes as `__main__` and the build command
# then imports it under its real name: only that copy registers the builder.
class Clevrer(video_frames.VideoDatasetBuilder, skip_registration=__name__ == "__main__"):
    """CLEVRER videos (all frames, 64x64), questions and annotations; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "All frames at 64x64 (area resize of the full frame), "
                              "questions with tokens and programs, annotation JSON."}
    BUILDER_CONFIGS = [ClevrerConfig(name="frames64", description="64x64 frames, strict.")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put CLEVRER (or `python -m aloe.synthetic.clevrer` output) in manual_dir: "
        "videos/{split}/video_*/video_NNNNN.mp4, annotations/{split}/annotation_*/"
        "annotation_NNNNN.json (optional), questions/{split}.json for split in train, "
        "validation, test.")

    def _info(self) -> tfds.core.DatasetInfo:
        """The features; the frame size follows the config's resolution."""
        size = self.builder_config.resolution
        text = tfds.features.Text()
        return self.dataset_info_from_configs(
            description="CLEVRER (Yi et al. 2020) video reasoning: frames, questions, annotations.",
            features=tfds.features.FeaturesDict({
                # uint8 [T, 64, 64, 3], each frame stored as PNG.
                "video": tfds.features.Video(shape=(None, size, size, 3)),
                "scene_index": np.int64,
                "video_filename": text,
                # int32 [2]: (height, width) of the source video.
                "source_size": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                # The annotation file's JSON text; "" when there is none.
                "annotation": text,
                "questions": tfds.features.Sequence({
                    "question_id": np.int64,
                    "question": text,
                    "tokens": tfds.features.Sequence(text),
                    "question_type": text,
                    "question_subtype": text,
                    "program": tfds.features.Sequence(text),
                    "answer": text,  # "" for multiple choice and unknown answers.
                    "choices": tfds.features.Sequence({
                        "choice_id": np.int64,
                        "choice": text,
                        "tokens": tfds.features.Sequence(text),
                        "program": tfds.features.Sequence(text),
                        "answer": text,  # "correct", "wrong", "" when unknown.
                    }),
                }),
            }),
            homepage="http://clevrer.csail.mit.edu/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        """Checks every split's question file and file names, then one generator per split."""
        root = os.fspath(dl_manager.manual_dir)
        self.report = video_frames.BadVideoReport(f"{self.name}/{self.builder_config.name}")
        generators = {}
        for split, folder in SPLITS.items():
            # Questions and file lists are checked for every split before any
            # video is decoded, so schema errors surface at once.
            questions = read_question_file(os.path.join(root, "questions", f"{folder}.json"))
            video_dir = os.path.join(root, "videos", folder)
            if not os.path.isdir(video_dir):
                raise ValueError(f"{video_dir}: the {split} videos folder is missing.")
            videos = find_numbered_files(video_dir, _VIDEO_NAME, ".mp4")
            annotations = find_numbered_files(os.path.join(root, "annotations", folder),
                                              _ANNOTATION_NAME, ".json")
            generators[split] = self._generate_examples(split, questions, videos, annotations)
        return generators

    def _generate_examples(self, split: str, questions: dict[int, dict[str, Any]],
                           videos: dict[int, str], annotations: dict[int, str]
                           ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(scene_index, example) per video of `split`; bad videos raise or are reported."""
        config = self.builder_config
        present = []
        for scene_index in sorted(set(videos) | set(questions)):
            entry = questions.get(scene_index, {})
            if scene_index not in videos:
                reason = f"scene_index {scene_index} has questions but no video file"
                if not config.skip_bad_videos:
                    raise ValueError(f"{split}: {reason} (looked for video_{scene_index:05d}.mp4).")
                self.report.skip(split, f"video_{scene_index:05d}.mp4", reason)
                continue
            filename = os.path.basename(videos[scene_index])
            if "video_filename" in entry and entry["video_filename"] != filename:
                raise ValueError(f"{videos[scene_index]}: the question file names scene_index "
                                 f"{scene_index}'s video {entry['video_filename']!r}.")
            present.append(scene_index)
        decoded = video_frames.decode_videos((videos[s] for s in present), config.resolution,
                                             config.min_frames, config.decode_threads)
        written = 0
        for scene_index, (path, frames, source_size) in zip(present, decoded):
            if isinstance(frames, video_frames.VideoError):
                if not config.skip_bad_videos:
                    raise frames
                self.report.skip(split, path, str(frames))
                continue
            written += 1
            yield scene_index, {
                "video": frames, "scene_index": scene_index,
                "video_filename": os.path.basename(path),
                "source_size": np.asarray(source_size, np.int32),
                "annotation": _annotation_text(annotations.get(scene_index), scene_index),
                "questions": questions.get(scene_index, {}).get("questions", [])}
        self.finish_split(split, written)


def _annotation_text(path: str | None, scene_index: int) -> str:
    """An annotation file's text, checked to be JSON for `scene_index`; "" without a file."""
    if path is None:
        return ""
    content = read_json(path)
    if isinstance(content, dict) and content.get("scene_index", scene_index) != scene_index:
        raise ValueError(f"{path}: field 'scene_index' is {content['scene_index']}, expected "
                         f"{scene_index}.")
    with open(path, encoding="utf-8") as f:
        return f.read()


if __name__ == "__main__":
    video_frames.tfds_build_main("clevrer", "aloe.data.clevrer")

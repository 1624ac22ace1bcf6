"""The `clevrer` TFDS builder on mini-CLEVRER files, read back and checked independently."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import av
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from aloe.data import clevrer, video_frames
from aloe.data.vocab import tokenize
from aloe.synthetic import clevrer as clevrer_gen
from aloe.synthetic import physics, render, video

NUM_VIDEOS, SEED, WIDTH, HEIGHT = 5, 0, 96, 64  # splits: train 0-2, validation 3, test 4
SCENES = {"train": [0, 1, 2], "validation": [3], "test": [4]}
CLEVRER_PSNR_DB = 30.0  # H.264 at CRF 18, measured ~34 dB after the resize.


@pytest.fixture(scope="session")
def clevrer_root(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("mini_clevrer")
    clevrer_gen.generate_clevrer(out, NUM_VIDEOS, SEED, width=WIDTH, height=HEIGHT, workers=2,
                                 progress=False)
    return out


@pytest.fixture(scope="session")
def builder(clevrer_root, tmp_path_factory) -> tfds.core.DatasetBuilder:
    built = clevrer.Clevrer(data_dir=tmp_path_factory.mktemp("tfds_clevrer"))
    built.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(clevrer_root)))
    return built


@pytest.fixture(scope="session")
def examples(builder) -> dict[str, dict[int, dict]]:
    """split -> scene_index -> decoded example (ragged question fields as Python lists)."""
    out = {}
    for split in SCENES:
        out[split] = {}
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            out[split][int(example["scene_index"])] = example
    return out


def _text(value) -> str:
    return value.decode("utf-8")


def _as_list(value) -> list:
    """A ragged or dense decoded field as nested Python lists of str / int."""
    value = value.to_list() if hasattr(value, "to_list") else np.asarray(value).tolist()

    def convert(item):
        if isinstance(item, list):
            return [convert(x) for x in item]
        return item.decode("utf-8") if isinstance(item, bytes) else item
    return convert(value)


def _questions_as_json(example: dict) -> list[dict]:
    """The example's questions rebuilt in the official schema (absent fields left out)."""
    q = example["questions"]
    c = q["choices"]
    fields = {name: _as_list(q[name]) for name in ("question_id", "question", "question_type",
                                                  "question_subtype", "program", "answer")}
    choice_fields = {name: _as_list(c[name]) for name in ("choice_id", "choice", "program",
                                                         "answer")}
    rebuilt = []
    for i in range(len(fields["question_id"])):
        question = {"question_id": fields["question_id"][i], "question": fields["question"][i],
                    "question_type": fields["question_type"][i], "program": fields["program"][i]}
        if fields["question_subtype"][i]:
            question["question_subtype"] = fields["question_subtype"][i]
        if fields["answer"][i]:
            question["answer"] = fields["answer"][i]
        if question["question_type"] != "descriptive":
            question["choices"] = []
            for j in range(len(choice_fields["choice_id"][i])):
                choice = {"choice_id": choice_fields["choice_id"][i][j],
                          "choice": choice_fields["choice"][i][j],
                          "program": choice_fields["program"][i][j]}
                if choice_fields["answer"][i][j]:
                    choice["answer"] = choice_fields["answer"][i][j]
                question["choices"].append(choice)
        rebuilt.append(question)
    return rebuilt


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def _area_resize_tf(frames: np.ndarray) -> np.ndarray:
    """TensorFlow's own area resize to 64x64, rounded: an independent implementation."""
    resized = tf.image.resize(frames.astype(np.float32), (64, 64), method="area").numpy()
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def test_splits_shapes_and_ids(builder, examples):
    assert {s: builder.info.splits[s].num_examples for s in SCENES} == {
        s: len(v) for s, v in SCENES.items()}
    for split, scenes in SCENES.items():
        assert sorted(examples[split]) == scenes
        for scene_index, example in examples[split].items():
            assert example["video"].shape == (128, 64, 64, 3) and example["video"].dtype == np.uint8
            assert _text(example["video_filename"]) == f"video_{scene_index:05d}.mp4"
            assert example["source_size"].tolist() == [HEIGHT, WIDTH]


def test_frames_equal_an_independent_decode_and_resize(clevrer_root, examples):
    path = clevrer_gen.scene_paths(clevrer_root, "validation", 3)["video"]
    with av.open(path) as container:
        full = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    expected = _area_resize_tf(full)
    difference = np.abs(examples["validation"][3]["video"].astype(int) - expected.astype(int))
    assert difference.max() <= 1  # float rounding only


def test_frames_match_the_rendered_source(clevrer_root, examples):
    annotation = json.loads(pathlib.Path(
        clevrer_gen.scene_paths(clevrer_root, "train", 2)["annotation"]).read_text())
    rendered, _ = render.render_video(annotation, WIDTH, HEIGHT,
                                      physics.Camera(aspect=WIDTH / HEIGHT))
    reference = _area_resize_tf(rendered)
    frames = examples["train"][2]["video"]
    assert _psnr(frames, reference) > CLEVRER_PSNR_DB
    # The comparison tells frames apart: a 10-frame shift scores far lower.
    assert _psnr(frames[10:], reference[:-10]) < _psnr(frames, reference) - 3.0


def test_questions_round_trip(clevrer_root, examples):
    train_types = {t for e in examples["train"].values()
                   for t in _as_list(e["questions"]["question_type"])}
    assert "descriptive" in train_types and len(train_types) >= 3
    for split in SCENES:
        entries = json.loads((clevrer_root / "questions" / f"{split}.json").read_text())
        assert sorted(e["scene_index"] for e in entries) == SCENES[split]
        for entry in entries:
            example = examples[split][entry["scene_index"]]
            assert _questions_as_json(example) == entry["questions"]
            texts = _as_list(example["questions"]["question"])
            assert _as_list(example["questions"]["tokens"]) == [tokenize(t) for t in texts]
            choice_texts = _as_list(example["questions"]["choices"]["choice"])
            assert _as_list(example["questions"]["choices"]["tokens"]) == [
                [tokenize(t) for t in choices] for choices in choice_texts]
    # The test split has no answers: every answer field is the empty string.
    test_example = examples["test"][4]
    assert set(_as_list(test_example["questions"]["answer"])) == {""}
    assert {a for row in _as_list(test_example["questions"]["choices"]["answer"])
            for a in row} == {""}


def test_annotations_round_trip(clevrer_root, examples):
    for split, scenes in SCENES.items():
        for scene_index in scenes:
            path = clevrer_gen.scene_paths(clevrer_root, split, scene_index)["annotation"]
            stored = json.loads(_text(examples[split][scene_index]["annotation"]))
            assert stored == json.loads(pathlib.Path(path).read_text())


def test_real_question_samples_read_unchanged(clevrer_samples_dir):
    path = clevrer_samples_dir / "validation_explanatory_564.json"
    entries = json.loads(path.read_text())
    parsed = clevrer.read_question_file(path)
    assert len(parsed) == len(entries) == 564
    for entry in entries[:50]:
        question = entry["questions"][0]
        features = parsed[entry["scene_index"]]["questions"][0]
        assert features["question"] == question["question"]
        assert features["program"] == question["program"]
        assert [(c["choice_id"], c["choice"], c["program"], c["answer"])
                for c in features["choices"]] == [
            (c["choice_id"], c["choice"], c["program"], c["answer"]) for c in question["choices"]]


# ---- Bad input.

def _question_file(tmp_path, question) -> pathlib.Path:
    path = tmp_path / "questions.json"
    path.write_text(json.dumps([{"scene_index": 3, "video_filename": "video_00003.mp4",
                                 "questions": [question]}]))
    return path


GOOD_CHOICE = {"choice_id": 0, "choice": "The cube enters", "program": ["events"],
               "answer": "correct"}


@pytest.mark.parametrize("question, message", [
    ({"question_id": 9, "question": "How many?", "question_type": "descriptive"},
     "question_id 9: missing field 'program'"),
    ({"question_id": 9, "question": "How many?", "question_type": "guess", "program": []},
     "question_id 9: unknown question_type 'guess'"),
    ({"question_id": 9, "question": "Why?", "question_type": "explanatory", "program": [],
      "choices": []}, "question_id 9: field 'choices' is empty"),
    ({"question_id": 9, "question": "Why?", "question_type": "explanatory", "program": [],
      "choices": [dict(GOOD_CHOICE, answer="maybe")]}, "choice_id 0: field 'answer' must be"),
    ({"question_id": 9, "question": "Why?", "question_type": "explanatory", "program": [],
      "choices": [GOOD_CHOICE, GOOD_CHOICE]}, "choice_id 0: choice_id appears twice"),
    ({"question_id": "9", "question": "How many?", "question_type": "descriptive",
      "program": []}, "field 'question_id' must be int"),
    ({"question_id": 9, "question": "How many?", "question_type": "descriptive",
      "program": ["count", 3]}, "question_id 9: field 'program' must be a list of strings"),
])
def test_question_file_schema_errors_name_file_scene_and_question(tmp_path, question, message):
    path = _question_file(tmp_path, question)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: scene_index 3.*{message}"):
        clevrer.read_question_file(path)


def _small_copy(root: pathlib.Path, out: pathlib.Path, scenes: dict[str, list[int]]) -> None:
    """A CLEVRER root with only `scenes` (videos, annotations, questions)."""
    for split, indices in scenes.items():
        entries = json.loads((root / "questions" / f"{split}.json").read_text())
        (out / "questions").mkdir(parents=True, exist_ok=True)
        (out / "questions" / f"{split}.json").write_text(
            json.dumps([e for e in entries if e["scene_index"] in indices]))
        for index in indices:
            source = clevrer_gen.scene_paths(root, split, index)
            target = clevrer_gen.scene_paths(out, split, index)
            for kind in ("video", "annotation"):
                os.makedirs(os.path.dirname(target[kind]), exist_ok=True)
                shutil.copy(source[kind], target[kind])


SMALL = {"train": [0, 1], "validation": [3], "test": [4]}


def _build(root, data_dir, **config) -> tfds.core.DatasetBuilder:
    built = clevrer.Clevrer(data_dir=data_dir, config=clevrer.ClevrerConfig(**config)
                            if config else "frames64")
    built.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return built


def test_bad_videos_raise_naming_the_file(tmp_path, clevrer_root):
    good = clevrer_gen.scene_paths(clevrer_root, "train", 0)["video"]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(pathlib.Path(good).read_bytes()[:5000])
    short = tmp_path / "short.mp4"
    video.write_video(short, np.zeros((12, 64, 96, 3), np.uint8))
    for path, reason in ((garbage, "cannot decode"), (truncated, "cannot decode|fewer than"),
                         (short, "decoded 12 frames, fewer than the required 128"),
                         (tmp_path / "absent.mp4", "video file not found")):
        with pytest.raises(video_frames.VideoError, match=f"{re.escape(str(path))}: ({reason})"):
            video_frames.decode_video(path, 64, 128)


def test_decoding_closed_from_one_of_its_own_threads(monkeypatch):
    """An unfinished decoding generator may be finalised on one of its pool's threads."""
    first_taken, tried = threading.Event(), threading.Event()
    closed = []

    def fake_decode(path, size, min_frames):
        del size, min_frames
        if path == "c":  # Runs on a pool thread while the generator waits at a yield.
            assert first_taken.wait(60)
            try:
                decoded.close()
                closed.append(None)
            except Exception as e:  # pylint: disable=broad-except
                closed.append(e)
            tried.set()
        return np.zeros((1, 2, 2, 3), np.uint8), (2, 2)

    monkeypatch.setattr(video_frames, "decode_video", fake_decode)
    decoded = video_frames.decode_videos(["a", "b", "c", "d"], 2, 1, threads=2)
    assert next(decoded)[0] == "a"
    first_taken.set()
    assert tried.wait(60)
    assert closed == [None]
    with pytest.raises(StopIteration):
        next(decoded)


def test_builder_raises_on_a_bad_video_or_skips_and_reports_it(tmp_path, clevrer_root):
    root = tmp_path / "root"
    _small_copy(clevrer_root, root, SMALL)
    bad = clevrer_gen.scene_paths(root, "train", 1)["video"]
    with open(bad, "r+b") as f:
        f.truncate(4000)
    with pytest.raises(ValueError, match=f"{re.escape(bad)}: "):
        _build(root, tmp_path / "strict")
    skipping = _build(root, tmp_path / "skip", name="frames64_skip_bad", skip_bad_videos=True)
    assert skipping.info.splits["train"].num_examples == 1
    report = video_frames.read_report(skipping)
    assert report["skipped_count"] == {"train": 1, "validation": 0, "test": 0}
    assert report["skipped"]["train"][0]["file"] == bad
    assert report["examples"] == {"train": 1, "validation": 1, "test": 1}


def test_builder_raises_on_questions_without_video(tmp_path, clevrer_root):
    root = tmp_path / "root"
    _small_copy(clevrer_root, root, SMALL)
    os.remove(clevrer_gen.scene_paths(root, "validation", 3)["video"])
    with pytest.raises(ValueError, match="validation: scene_index 3 has questions but no video"):
        _build(root, tmp_path / "strict")


def test_builder_raises_on_short_videos_and_bad_question_files(tmp_path, clevrer_root):
    root = tmp_path / "root"
    _small_copy(clevrer_root, root, SMALL)
    first = re.escape(clevrer_gen.scene_paths(root, "train", 0)["video"])
    with pytest.raises(ValueError, match=f"{first}: decoded 128 frames, fewer than the required "
                                         f"129"):
        _build(root, tmp_path / "long", name="frames64_min129", min_frames=129)
    questions = root / "questions" / "validation.json"
    entries = json.loads(questions.read_text())
    del entries[0]["questions"][0]["question_type"]
    questions.write_text(json.dumps(entries))
    question_id = entries[0]["questions"][0]["question_id"]
    with pytest.raises(ValueError, match=f"{re.escape(str(questions))}: scene_index 3, "
                                         f"question_id {question_id}: missing field "
                                         f"'question_type'"):
        _build(root, tmp_path / "questions")


# The stock `tfds build` command (its CLI needs the `tfds-cli` extras) and the module's own.
COMMANDS = {
    "tfds_build": [os.path.join(os.path.dirname(sys.executable), "tfds"), "build",
                   clevrer.__file__],
    "python_module": [sys.executable, "-m", "aloe.data.clevrer"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_line_build(tmp_path, clevrer_root, command):
    root = tmp_path / "root"
    _small_copy(clevrer_root, root, SMALL)
    data_dir = tmp_path / "data"
    result = subprocess.run(
        COMMANDS[command] + [f"--manual_dir={root}", f"--data_dir={data_dir}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    built = tfds.builder("clevrer", data_dir=data_dir)
    assert {s: built.info.splits[s].num_examples for s in SMALL} == {
        s: len(v) for s, v in SMALL.items()}
    example = next(iter(tfds.as_numpy(built.as_dataset(split="validation"))))
    assert example["scene_index"] == 3 and example["video"].shape == (128, 64, 64, 3)

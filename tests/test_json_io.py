"""Reading JSON files: values round-trip, and every failure names the file."""

import json

import pytest

from aloe import json_io


def test_read_json_round_trips_a_written_value(tmp_path):
    value = {"scene_index": 3, "questions": [{"answer": "cube"}], "ratio": 0.25}
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    assert json_io.read_json(path) == value
    assert json_io.read_json(str(path)) == value


def test_read_json_names_a_missing_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(FileNotFoundError, match=f"{path}: no such file"):
        json_io.read_json(path)


@pytest.mark.parametrize("content", [b"[{not json", b"\xff\xfe{}", b""])
def test_read_json_names_a_file_that_is_not_utf8_json(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        json_io.read_json(path)

"""The run's scalar record: `scalars.jsonl` beside the TensorBoard events, read back."""

import glob
import os

import numpy as np
import pytest

from aloe import reporting


def test_writer_records_scalars_as_json_lines_that_read_back(tmp_path):
    logdir = tmp_path / "run"
    writer = reporting.create_writer(str(logdir))
    writer.write_scalars(100, {"train/loss": 2.5, "train/accuracy": 0.25})
    writer.write_scalars(200, {"train/loss": 1.5})
    writer.write_images(200, {"picture": np.zeros((1, 4, 4, 3))})
    writer.write_scalars(200, {"valid/descriptive": 0.5})
    writer.flush()
    assert glob.glob(str(logdir / "events.out.tfevents.*"))  # TensorBoard's file as before.
    assert reporting.read_scalars(str(logdir / reporting.SCALARS_FILE)) == {
        100: {"train/loss": 2.5, "train/accuracy": 0.25},
        200: {"train/loss": 1.5, "valid/descriptive": 0.5}}
    # A resumed run logs step 200 again (after its checkpoint at 100): the later line wins.
    reporting.create_writer(str(logdir)).write_scalars(200, {"train/loss": 1.25})
    assert reporting.read_scalars(str(logdir / reporting.SCALARS_FILE))[200] == {
        "train/loss": 1.25, "valid/descriptive": 0.5}
    # Processes other than 0 write nothing.
    reporting.create_writer(str(tmp_path / "other"), enabled=False).write_scalars(1, {"a": 1})
    assert not os.path.exists(tmp_path / "other")


@pytest.mark.parametrize("line", ['{"loss": 1.0}', '{"step": "3", "loss": 1.0}',
                                  '{"step": 3, "loss": "high"}', '[3, 1.0]', '{"step": 3,'])
def test_a_bad_line_is_named_by_file_and_number(tmp_path, line):
    path = tmp_path / reporting.SCALARS_FILE
    path.write_text('{"step": 1, "loss": 2.0}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 2: expected a JSON object"):
        reporting.read_scalars(str(path))

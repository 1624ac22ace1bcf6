"""The CATER answer prior against a count by hand, and its errors on bad labels files."""

import json

import pytest

from aloe import answer_prior


def _labels(path, entries):
    path.write_text(json.dumps(entries))


def test_cater_prior_scores_the_most_common_training_cell(tmp_path):
    # Training: cell 7 three times, cell 2 twice; validation: 7, 7, 8 (a neighbour), 30.
    cells = [7, 7, 7, 2, 2]
    _labels(tmp_path / "train_labels.json",
            {f"t{i}": {"label": cell, "camera": "static"} for i, cell in enumerate(cells)})
    _labels(tmp_path / "valid_labels.json", {
        "v0": {"label": 7, "camera": "static", "hidden": True},
        "v1": {"label": 7, "camera": "moving"},
        "v2": {"label": 8, "camera": "static", "hidden": True},
        "v3": {"label": 30, "camera": "moving"}})
    prior = answer_prior.cater_prior(str(tmp_path), fields=["hidden"])
    assert prior["top1"] == pytest.approx(0.5)
    for group in ("static", "moving", "hidden", "not_hidden"):
        assert prior[f"top1_{group}"] == pytest.approx(0.5)
    # L1 in grid cells (6 x 6, row-major): 7 -> 8 is one column, 7 -> 30 four rows and 1 column.
    assert prior["l1"] == pytest.approx((0 + 0 + 1 + 5) / 4)


def test_a_bad_label_names_the_file_and_the_video(tmp_path):
    _labels(tmp_path / "train_labels.json", {"t0": {"label": 7, "camera": "static"}})
    _labels(tmp_path / "valid_labels.json", {"v0": {"label": 36, "camera": "static"}})
    with pytest.raises(ValueError, match=r"valid_labels.json: video 'v0': field 'label'"):
        answer_prior.cater_prior(str(tmp_path))
    _labels(tmp_path / "valid_labels.json", {"v0": {"label": 3}})
    with pytest.raises(ValueError, match=r"valid_labels.json: video 'v0': field 'camera'"):
        answer_prior.cater_prior(str(tmp_path))

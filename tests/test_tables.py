"""The README's result tables come from the studies' results files."""

import json

import pytest

from studies import tables


def _write(path, runs):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"columns": [], "runs": runs}))


def _run(name, seeds, values):
    metrics = {"descriptive": {"mean": sum(values) / len(values),
                               "std": None if len(values) == 1 else 0.1, "values": values}}
    return {"name": name, "seeds": seeds, "finished_seeds": seeds[:len(values)],
            "metrics": metrics}


def test_tables_follow_the_results_files_and_fill_the_readme(tmp_path):
    _write(tmp_path / "demo" / "fraction_0.5", [_run("b", [0], [0.25])])
    _write(tmp_path / "demo" / "fraction_1.0", [
        {"name": "answer prior", "seeds": [], "finished_seeds": [],
         "metrics": {"descriptive": {"mean": 0.4, "std": None}}},
        _run("a", [0, 1, 2], [0.5, 0.7]),
        {"name": "unrun", "seeds": [0], "finished_seeds": [], "metrics": {}}])
    lines = tables.table("demo", str(tmp_path)).splitlines()
    # Reading order (all labels first), the prior after its part's runs, unrun rows left out.
    assert lines[2].startswith("| fraction_1.0 | a | 2/3 | 0.600 ± 0.100 | – |")
    assert lines[3].startswith("| fraction_1.0 | answer prior | – | 0.400 | – |")
    assert lines[4].startswith("| fraction_0.5 | b | 1/1 | 0.250 | – |")
    assert len(lines) == 5
    # The training column appears once a run has it, "–" for the others.
    trained = _run("t", [0], [0.5])
    trained["metrics"]["train/descriptive_accuracy"] = {"mean": 0.875, "std": None}
    _write(tmp_path / "demo" / "fraction_0.25", [trained])
    with_training = tables.table("demo", str(tmp_path)).splitlines()
    assert with_training[0].startswith("| part | run | seeds | descriptive | descriptive, "
                                       "training | explanatory / option |")
    assert with_training[2].startswith("| fraction_1.0 | a | 2/3 | 0.600 ± 0.100 | – | – |")
    assert with_training[5].startswith("| fraction_0.25 | t | 1/1 | 0.500 | 0.875 | – |")
    (tmp_path / "demo" / "fraction_0.25" / "results.json").unlink()
    (tmp_path / "demo" / "fraction_0.25").rmdir()
    readme = tmp_path / "README.md"
    begin, end = tables.markers("demo")
    readme.write_text(f"intro\n{begin}\nold numbers\n{end}\nafter\n")
    tables.main(["--readme", str(readme)], root=str(tmp_path))
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "\n".join(lines) in text


def test_cater_parts_and_other_parts_get_tables_of_their_own(tmp_path):
    _write(tmp_path / "demo" / "fraction_1.0", [_run("a", [0], [0.5])])
    for part, metrics in (("cater", {"top1": 0.75, "l1": 1.5}), ("other", {"speed": 2.0})):
        (tmp_path / "demo" / part).mkdir(parents=True)
        (tmp_path / "demo" / part / "results.json").write_text(json.dumps({
            "columns": sorted(metrics), "runs": [
                {"name": "full", "seeds": [0, 1], "finished_seeds": [0],
                 "metrics": {k: {"mean": v, "std": None} for k, v in metrics.items()}},
                {"name": "answer prior", "seeds": [], "finished_seeds": [],
                 "metrics": {min(metrics): {"mean": 0.125, "std": None}}}]}))
    split = {"counterfactual_per_option": 0.5, "counterfactual_hard_share": 0.25,
             "counterfactual_hard_per_option": 0.375, "descriptive": 0.75}
    (tmp_path / "demo" / "counterfactual").mkdir()
    (tmp_path / "demo" / "counterfactual" / "results.json").write_text(json.dumps({
        "columns": sorted(split), "runs": [{"name": "full", "seeds": [0], "finished_seeds": [0],
                                            "metrics": {k: {"mean": v, "std": None}
                                                        for k, v in split.items()}}]}))
    clevrer, difficulty, cater, other = tables.table(
        "demo", str(tmp_path)).rstrip("\n").split("\n\n")
    # The difficulty split's part has a table of its own, after the question types'.
    assert difficulty.splitlines()[0].startswith("| part | run | seeds | counterfactual / "
                                                 "option | no collision: share |")
    assert difficulty.splitlines()[2] == ("| counterfactual | full | 1/1 | 0.500 | – | – | – "
                                          "| – | 0.250 | 0.375 | – |")
    assert clevrer.splitlines()[2].startswith("| fraction_1.0 | a | 1/1 | 0.500 |")
    assert len(clevrer.splitlines()) == 3
    cater = cater.splitlines()
    assert cater[0].startswith("| part | run | seeds | top-1 | top-5 | L1 | top-1, snitch")
    assert cater[2] == "| cater | full | 1/2 | 0.750 | – | 1.500 | – | – | – | – |"
    assert cater[3] == "| cater | answer prior | – | – | – | 0.125 | – | – | – | – |"
    assert other.splitlines()[0] == "| part | run | seeds | speed |"
    assert other.splitlines()[2] == "| other | full | 1/2 | 2.000 |"


def test_runs_that_validated_during_training_get_a_learning_curve_table(tmp_path):
    run = _run("full", [0], [0.5])
    run["curve"] = [{"step": step, "metrics": {
        "train/descriptive_accuracy": {"mean": train, "std": None},
        "valid/descriptive": {"mean": valid, "std": None}}}
        for step, train, valid in ((100, 0.5, 0.25), (200, 0.75, 0.5))]
    _write(tmp_path / "demo" / "long", [run, _run("short", [0], [0.25])])
    text = tables.table("demo", str(tmp_path))
    clevrer, curves = text.split("\n\n")
    assert "| long | short | 1/1 | 0.250 |" in clevrer
    assert curves.splitlines() == [
        "| part | run | step | seeds | descriptive, training | descriptive |",
        "|---|---|---|---|---|---|",
        "| long | full | 100 | 1 | 0.500 | 0.250 |",
        "| long | full | 200 | 1 | 0.750 | 0.500 |"]


def test_a_malformed_results_file_is_named(tmp_path):
    _write(tmp_path / "demo" / "fraction_1.0", [{"name": "a"}])
    with pytest.raises(ValueError, match=r"fraction_1.0/results.json: field 'metrics'"):
        tables.table("demo", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such study"):
        tables.table("none", str(tmp_path))


def _sampled_states(num_frames, choice, last, pairs, executor):
    return {"num_frames": num_frames, "eval_frames": choice, "frames": [0, last],
            "collision_pairs": dict(zip(("accuracy", "recall", "specificity"), pairs)),
            "executor": {"descriptive": {"sampled": executor[0], "annotation": 1.0},
                         "explanatory": {"sampled": executor[1], "annotation": 1.0}}}


def test_sampled_states_reports_get_a_last_table_fewest_frames_first(tmp_path):
    _write(tmp_path / "demo" / "fraction_1.0", [_run("a", [0], [0.5])])
    reports = {"25_strided": (25, "strided", 120, (0.5, 0.25, 0.75), (0.875, 0.5)),
               "12_spanning": (12, "spanning", 127, (0.25, 0.5, 0.75), (0.75, 0.625)),
               "12_strided": (12, "strided", 110, (0.125, 0.25, 0.5), (0.5, 0.25))}
    for name, fields in reports.items():
        (tmp_path / "demo" / f"sampled_states_{name}.json").write_text(
            json.dumps(_sampled_states(*fields)))
    text = tables.table("demo", str(tmp_path))
    assert text.split("\n\n")[-1].splitlines()[2:] == [
        "| 12 strided | 110 | 0.125 | 0.250 | 0.500 | 0.500 | 0.250 |",
        "| 12 spanning | 127 | 0.250 | 0.500 | 0.750 | 0.750 | 0.625 |",
        "| 25 strided | 120 | 0.500 | 0.250 | 0.750 | 0.875 | 0.500 |"]
    (tmp_path / "demo" / "sampled_states_bad.json").write_text(json.dumps({"num_frames": 4}))
    with pytest.raises(ValueError, match=r"sampled_states_bad.json: field 'frames'"):
        tables.table("demo", str(tmp_path))

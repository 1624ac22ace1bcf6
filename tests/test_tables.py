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
    readme = tmp_path / "README.md"
    begin, end = tables.markers("demo")
    readme.write_text(f"intro\n{begin}\nold numbers\n{end}\nafter\n")
    tables.main(["--readme", str(readme)], root=str(tmp_path))
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "\n".join(lines) in text


def test_a_part_without_clevrer_metrics_gets_a_table_of_its_own_columns(tmp_path):
    _write(tmp_path / "demo" / "fraction_1.0", [_run("a", [0], [0.5])])
    cater = tmp_path / "demo" / "cater"
    cater.mkdir(parents=True)
    (cater / "results.json").write_text(json.dumps({"columns": ["top1", "l1"], "runs": [
        {"name": "full", "seeds": [0, 1], "finished_seeds": [0],
         "metrics": {"top1": {"mean": 0.75, "std": None}, "l1": {"mean": 1.5, "std": None}}},
        {"name": "answer prior", "seeds": [], "finished_seeds": [],
         "metrics": {"top1": {"mean": 0.125, "std": None}}}]}))
    clevrer, other = tables.table("demo", str(tmp_path)).rstrip("\n").split("\n\n")
    assert clevrer.splitlines()[2].startswith("| fraction_1.0 | a | 1/1 | 0.500 |")
    assert len(clevrer.splitlines()) == 3
    assert other.splitlines() == ["| part | run | seeds | top1 | l1 |", "|---|---|---|---|---|",
                                  "| cater | full | 1/2 | 0.750 | 1.500 |",
                                  "| cater | answer prior | – | 0.125 | – |"]


def test_a_malformed_results_file_is_named(tmp_path):
    _write(tmp_path / "demo" / "fraction_1.0", [{"name": "a"}])
    with pytest.raises(ValueError, match=r"fraction_1.0/results.json: field 'metrics'"):
        tables.table("demo", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such study"):
        tables.table("none", str(tmp_path))

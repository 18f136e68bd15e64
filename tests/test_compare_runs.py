"""scripts/compare_runs.py on results.json files written here: table columns, glob filter, latest run per experiment."""
import json
import os
from pathlib import Path

from conftest import load_script

compare_runs = load_script("compare_runs")


def write_run(root: Path, experiment: str, stamp: str, mtime: float, **metrics) -> Path:
    folder = root / experiment / stamp
    folder.mkdir(parents=True)
    results = {"experiment": experiment, "model": "linear", "data": "digits_features", "loss": "hinge",
               "train_time_s": 1.234, "epochs": 3, **metrics}
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    os.utime(path, (mtime, mtime))
    return folder


def make_runs(root: Path) -> None:
    write_run(root, "svm_features_digits", "old", 1000.0, **{"test/acc": 0.9, "test/macro_f1": 0.89})
    write_run(root, "svm_features_digits", "new", 2000.0, **{"test/acc": 0.95, "test/macro_f1": 0.94})
    write_run(root, "svm_patches_roads", "a", 1500.0, **{"test/acc": 0.8, "test/macro_f1": 0.7, "test/f1": 0.55,
                                                          "test/iou": 0.38})
    write_run(root / "multirun", "lenet5_digits", "0_x", 1200.0, **{"test/acc": 0.99})
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{not json")


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]


def test_table_has_every_run_and_blank_missing_metrics(tmp_path, capsys):
    make_runs(tmp_path)
    assert compare_runs.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    rows = table_rows(out)
    head = rows[0]
    assert head[:8] == ["experiment", "model", "data", "loss", "test acc", "test macro-F1", "test F1", "test IoU"]
    assert set(rows[1]) == {"---"} and len(rows) == 2 + 4 and "broken" in err  # unreadable file: skipped, said so
    by_name = {}
    for r in rows[2:]:
        by_name.setdefault(r[0], []).append(dict(zip(head, r)))
    roads = by_name["svm_patches_roads"][0]
    assert roads["test F1"] == "0.5500" and roads["test IoU"] == "0.3800" and roads["train time (s)"] == "1.2"
    assert by_name["lenet5_digits"][0]["test F1"] == ""  # absent for 10 classes: blank, not 0
    assert [r["test acc"] for r in by_name["svm_features_digits"]] == ["0.9000", "0.9500"]  # oldest first


def test_filter_and_latest(tmp_path, capsys):
    make_runs(tmp_path)
    assert compare_runs.main([str(tmp_path), "--filter", "svm_*", "--latest", "--anchors", "--no-folders"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows[2:]] == ["svm_features_digits", "svm_patches_roads"]
    assert rows[2][4] == "0.9500"  # the newer of the two digits runs
    assert rows[0][-1] == "published anchor" and "0.73" in rows[3][-1]


def test_no_runs_is_an_error(tmp_path, capsys):
    assert compare_runs.main([str(tmp_path)]) == 1
    assert compare_runs.main([str(tmp_path / "missing")]) == 2
    assert "paths.output_dir" in capsys.readouterr().err

"""cnnlab-compare on runs the test makes: one table sorted by the monitored metric, md/csv/text formats, the
validation curves from the event files, filters; a failed run is listed as failed."""
import csv
import io
import json

import pytest
from PIL import Image

from cnnlab import compare
from conftest import run_train

QUICK = ["data=synthetic", "data.num_samples=32", "trainer.batch_size=8", "trainer.pictures_every=0",
         "trainer.epochs=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_train(root / "a", [*QUICK, "optim.lr=1e-5"], run_dir=root / "out" / "slow")  # barely learns
    run_train(root / "b", [*QUICK, "optim.lr=3e-3"], run_dir=root / "out" / "fast")
    failed = root / "out" / "broken"
    failed.mkdir()
    (failed / "failed.json").write_text(json.dumps({"status": "failed", "error": "error: trainer.batch_size=0"}))
    return root / "out"


def test_table_is_sorted_by_the_monitored_metric_in_every_format(runs, capsys):
    assert compare.main([str(runs), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    head = rows[0]
    assert head[:3] == ["experiment", "overrides", "monitored"] and "test/acc" in head and "test/top5" in head
    overrides = [r[1] for r in rows[1:]]
    values = {json.loads((runs / name / "results.json").read_text())["val/acc"]: name for name in ("slow", "fast")}
    best, worst = values[max(values)], values[min(values)]
    assert [r[-1].rsplit("/", 1)[-1] for r in rows[1:]] == [best, worst, "broken"]  # best first, failed last
    assert "optim.lr=" in overrides[0] and rows[3][head.index("status")].startswith("failed: error:")
    assert compare.main([str(runs), "--format", "md", "--no-folders"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| experiment | overrides | monitored |") and set(md[1].replace("|", "").split()) == {"---"}


def test_plot_draws_the_validation_curves(runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert compare.main([str(runs), "--plot", str(out), "--metric", "val/acc"]) == 0
    with Image.open(out) as img:
        assert img.size[0] > 400 and img.size[1] > 360
    xs, ys = compare.curves(runs / "fast", "val/acc")
    assert xs == [1.0, 2.0] and len(ys) == 2  # on the epoch axis
    for bad, says in ((tmp_path, "is a folder: give a file, e.g."), (out / "x.png", "is a file, not a folder")):
        assert compare.main([str(runs), "--plot", str(bad)]) == 2  # before the table: one line
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --plot {bad}") and says in err and "\n" not in err


def test_filters_latest_and_errors(runs, tmp_path, capsys):
    assert compare.main([str(runs), "--filter", "nothing_*"]) == 1
    assert compare.main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert compare.main([str(runs), "--latest", "--anchors", "--format", "md"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split("|")[-3].strip() == "published anchor"


def test_latest_is_the_newest_finished_run_of_each_experiment():
    runs = [{"experiment": "a", "status": "ok", "_mtime": 1.0}, {"experiment": "a", "status": "failed", "_mtime": 3.0},
            {"experiment": "a", "status": "ok", "_mtime": 2.0}, {"experiment": "b", "status": "failed", "_mtime": 1.0},
            {"experiment": "b", "status": "failed", "_mtime": 2.0}]
    chosen = {r["experiment"]: (r["status"], r["_mtime"]) for r in compare.select(runs, latest=True)}
    assert chosen == {"a": ("ok", 2.0), "b": ("failed", 2.0)}  # a failed newest does not hide a finished run


def test_the_plot_draws_one_curve_per_run_with_labels_that_tell_them_apart(runs, tmp_path, capsys):
    """Runs of the same command in two folders were one legend entry (the series were keyed by their label, so one
    curve was lost), and every label was cut to the same `<experiment> <first override>..`."""
    import shutil

    from cnnlab.viz.draw import LINE, PAD, font
    from cnnlab.viz.plots import LEGEND_WIDTH, PALETTE

    folder = tmp_path / "three"
    for name, source in (("a", "fast"), ("b", "fast"), ("c", "slow")):  # a and b: the same overrides
        shutil.copytree(runs / source, folder / name)
    table_runs = compare.sort_runs(compare.load_runs([folder]), None)
    series = compare.curve_series(table_runs, "val/acc")
    label = {"a": "optim.lr=3e-3 a", "b": "optim.lr=3e-3 b", "c": "optim.lr=1e-5"}
    assert list(series) == [label[r["run_dir"][-1]] for r in table_runs]  # one per row, in the table's order
    assert series[label["a"]] == series[label["b"]] == compare.curves(runs / "fast", "val/acc")
    assert series[label["c"]] == compare.curves(runs / "slow", "val/acc")
    out = tmp_path / "curves.png"
    assert compare.main([str(folder), "--plot", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"curves of val/acc: {out}")
    with Image.open(out) as img:
        legend = img.convert("RGB").crop((3 * PAD + LINE + 360 + PAD, 0, *img.size))  # right of the 360 px plot
        colours = {c for _, c in legend.getcolors(1 << 16)}
    assert set(PALETTE[:3]) <= colours and PALETTE[3] not in colours  # three legend entries, in three colours
    assert all(font().getlength(label) < LEGEND_WIDTH for label in series)  # written whole


def test_curve_labels_name_what_differs_between_runs():
    def run(experiment, overrides, folder):
        return {"experiment": experiment, "overrides": overrides, "run_dir": folder}

    # other experiments: named; an override every run shares: left out
    assert compare.curve_labels([run("lenet5_digits", ["trainer.epochs=2"], "/o/x/1"),
                                 run("mlp_digits", ["trainer.epochs=2", "seed=1"], "/o/y/1")]) == [
        "lenet5_digits", "mlp_digits seed=1"]
    # the same job in two sweeps: the folder parts that differ; the one run without overrides: its experiment
    assert compare.curve_labels([run("e", ["seed=0"], "/o/multirun/e/s1/0_seed=0"),
                                 run("e", ["seed=0"], "/o/multirun/e/s2/0_seed=0"),
                                 run("e", [], "/o/e/t3")]) == ["seed=0 s1/0_seed=0", "seed=0 s2/0_seed=0", "e"]

"""cnnlab-compare on runs the test makes: one table sorted by the monitored metric, md/csv/text formats, the
validation curves from the event files (PNG at slide size, SVG, PDF; a legend that fits), filters; a failed run is
listed as failed."""
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


def test_plot_draws_the_validation_curves_as_png_svg_or_pdf(runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert compare.main([str(runs), "--plot", str(out), "--metric", "val/acc"]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] >= 1000 and img.size[1] >= 500  # slide-sized
    assert compare.main([str(runs), "--plot", str(tmp_path / "curves.svg")]) == 0
    svg = (tmp_path / "curves.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert compare.main([str(runs), "--plot", str(tmp_path / "curves.PDF")]) == 0
    assert (tmp_path / "curves.PDF").read_bytes().startswith(b"%PDF")
    xs, ys = compare.curves(runs / "fast", "val/acc")
    assert xs == [1.0, 2.0] and len(ys) == 2  # on the epoch axis
    capsys.readouterr()
    for bad, says in ((tmp_path, "is a folder: give a file, e.g."), (out / "x.png", "is a file, not a folder"),
                      (tmp_path / "curves.jpg", "names no figure format: end it in .png, .svg or .pdf")):
        assert compare.main([str(runs), "--plot", str(bad)]) == 2  # before the table: one line
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --plot {bad}") and says in err and "\n" not in err


def test_per_step_scalars_such_as_the_learning_rate_sit_at_fractions_of_their_epoch(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "tb")) as writer:  # 4 steps an epoch, as the loop logs them
        for step in range(1, 9):
            writer.add_scalar("train/lr", 0.1 / step, step)
        for epoch, step in ((1, 4), (2, 8)):
            writer.add_scalar("epoch", epoch, step)
        writer.add_scalar("train/lr", 0.5, 10)  # a stopped run's partial third epoch: no epoch to place it in
    xs, ys = compare.curves(tmp_path, "train/lr")
    assert xs == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert ys == pytest.approx([0.1 / s for s in range(1, 9)])


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

    from cnnlab.viz.plots import lines_figure

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
    fig = lines_figure(series, "val/acc by epoch", "epoch", "val/acc")
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(series)  # every label whole
    assert len({line.get_color() for line in fig.axes[0].get_lines()}) == 3  # three lines, three colours
    assert_inside(fig, legend)


def assert_inside(fig, legend):
    """The legend lies within the figure and beside (or below) the axes, not over the curves."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    box, axes, page = legend.get_window_extent(renderer), fig.axes[0].get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 + 0.5 and page.y0 <= box.y0 and box.y1 <= page.y1 + 0.5
    assert not box.overlaps(axes)
    assert axes.width >= 0.5 * page.width  # the legend did not squeeze the plot away


def test_a_legend_of_many_long_labels_goes_below_the_plot_and_fits():
    from cnnlab.viz.plots import lines_figure

    series = {f"experiment=lenet5_digits optim.lr={10 ** -k:g} trainer.batch_size={2 ** k} seed={k}":
              ([1, 2, 3], [0.5, 0.6 + k / 100, 0.7]) for k in range(12)}
    fig = lines_figure(series, "val/acc by epoch", "epoch", "val/acc")
    (legend,) = fig.legends
    assert [t.get_text().replace("\n", " ") for t in legend.get_texts()] == list(series)  # wrapped, never cut
    assert_inside(fig, legend)
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).y1 <= fig.axes[0].get_window_extent(renderer).y0  # below


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

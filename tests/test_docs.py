"""The README's numbers come from docs/results.md, and scripts/reproduce.py reads and writes that file's rows
without losing any (no training here)."""
import re
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
# a metric (0.993, 0.88) or a figure with its unit (99.05 %, 7.3 min, 17 s)
NUMBER = re.compile(r"(?<![\w.-])(?:0\.\d{2,}|\d+(?:\.\d+)?\s?(?:%|s|min|h)(?![\w]))")


def prose(markdown: str) -> str:
    """The text a reader sees as prose and tables: no fenced code, inline code or link targets."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def numbers(text: str) -> list[str]:
    """The metric and time figures in `text`, with their units, spaces normalised ('7.3 min', '82.7 %')."""
    return [re.sub(r"(\d)\s?(%|s|min|h)$", r"\1 \2", m.group(0)) for m in NUMBER.finditer(prose(text))]


def test_the_number_finder_sees_metrics_and_times_but_not_code_or_versions():
    text = "acc **0.9926** in 7.3 min (99.05 %; 17 s), FCN-8s, Python ≥ 3.10, `seed=0.55`, 2 CPU cores\n```\n0.5 s\n```"
    assert numbers(text) == ["0.9926", "7.3 min", "99.05 %", "17 s"]


def test_every_number_in_the_readme_has_a_row_in_results_md():
    found = numbers(README)
    assert len(found) >= 20, "the menu table's figures were not found"
    results = prose(RESULTS).replace("\u00a0", " ")
    missing = [n for n in found
               if not re.search(r"(?<![\d.])" + re.escape(n).replace(r"\ ", r"\s?") + r"(?![\d])", results)]
    assert not missing, f"README figures without a row in docs/results.md: {missing}"


def test_the_readme_menu_lists_every_shipped_experiment():
    shipped = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
    menu = set(re.findall(r"^\| `([a-z0-9_]+)` \|", README, flags=re.M))
    assert [name for name in shipped if name not in menu] == []


def test_every_headline_experiment_has_a_row():
    reproduce = load_script("reproduce")
    rows = {r["experiment"] for r in reproduce.parse_rows(RESULTS)}
    assert set(reproduce.RECIPES) <= rows


def test_rows_round_trip_and_a_new_row_replaces_only_its_own():
    reproduce = load_script("reproduce")
    doc = f"# Results\n\nintro\n\n{reproduce.BEGIN}\n{reproduce.render_rows([])}\n{reproduce.END}\n\n## after\n"
    first = {c: f"{c} 1" for c in reproduce.COLUMNS} | {"experiment": "mlp_digits",
                                                        "command": "cnnlab-train experiment=mlp_digits seed=0"}
    second = {c: "" for c in reproduce.COLUMNS} | {"experiment": "lenet5_digits", "val": "acc 0.9963 | odd",
                                                   "command": "cnnlab-train seed=<s>"}
    doc = reproduce.with_row(reproduce.with_row(doc, first), second)
    assert reproduce.parse_rows(doc) == [second, first]  # in the order of RECIPES, whatever the order written
    assert doc.startswith("# Results\n\nintro\n") and doc.endswith("## after\n")
    again = first | {"test": "acc 0.5"}
    assert reproduce.parse_rows(reproduce.with_row(doc, again)) == [second, again]
    assert "`cnnlab-train seed=<s>`" in doc and "acc 0.9963 \\| odd" in doc  # code cells, escaped bars


def test_a_reproduction_row_says_how_it_was_made(monkeypatch):
    reproduce = load_script("reproduce")
    recipe = reproduce.RECIPES["lenet5_mnist"]
    assert reproduce.command(recipe, [0]) == ["experiment=lenet5_mnist", "data.root=<folder>", "seed=0"]
    results = [{"val/acc": 0.99, "test/acc": 0.9912, "train_time_s": 17.04},
               {"val/acc": 0.98, "test/acc": 0.9930, "train_time_s": 18.96}]
    env = {"device": "x86_64", "threads": 2, "torch": "2.5.1"}
    monkeypatch.setattr(reproduce, "cpu_model", lambda: "Some CPU")
    row = reproduce.make_row("lenet5_mnist", recipe, [0, 1], results, [env, env], [21.0, 23.0], load=0.5)
    assert row["val"] == "acc 0.9900 / 0.9800 (mean 0.9850)"
    assert row["test"] == "acc 0.9912 / 0.9930 (mean 0.9921)"
    assert (row["train"], row["wall"], row["seeds"]) == ("18 s each", "22 s each", "0 1")
    assert (row["machine"], row["threads"], row["torch"]) == ("Some CPU", "2", "2.5.1")
    assert row["made"] == "reproduce.py (load 0.5)"
    assert row["command"] == "cnnlab-train experiment=lenet5_mnist data.root=<folder> seed=<s>"


@pytest.mark.parametrize("value, text", [(3.21, "3.2 s"), (95.4, "95 s"), (438.0, "7.3 min")])
def test_times_read_as_people_write_them(value, text):
    assert load_script("reproduce").seconds(value) == text

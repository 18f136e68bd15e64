"""Continuing a finished run for longer: every schedule is rebuilt for the new length and goes on from the current
step, so its learning rate is what a run planned for the new length from the start has at that step."""
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.errors import ConfigError
from conftest import run_train

BASE = ["data=synthetic", "data.num_samples=32", "trainer.batch_size=8", "trainer.log_every=1",
        "trainer.pictures_every=0", "optim=sgd"]  # 4 steps per epoch
SCHEDULES = {"none": ["sched=none"], "step": ["sched=step", "sched.step_epochs=1", "sched.gamma=0.5"],
             "cosine": ["sched=cosine", "sched.warmup_epochs=1"], "onecycle": ["sched=onecycle"]}


def lrs(run_dir):
    """{step: lr after that step} from the run's TensorBoard events."""
    acc = EventAccumulator(str(run_dir / "tb")).Reload()
    return {e.step: e.value for e in acc.Scalars("train/lr")}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_continuing_for_longer_follows_the_longer_plan(tmp_path, name):
    short, _ = run_train(tmp_path / "short", [*BASE, *SCHEDULES[name], "trainer.epochs=2"])
    planned, _ = run_train(tmp_path / "planned", [*BASE, *SCHEDULES[name], "trainer.epochs=4"])
    longer, _ = run_train(tmp_path / "longer", [f"ckpt_path={short / 'checkpoints' / 'last.pt'}",
                                                "trainer.epochs=4"])
    got, want = lrs(longer), lrs(planned)
    assert sorted(got) == list(range(9, 17))  # steps 9..16: epochs 3 and 4, nothing written twice
    assert [got[s] for s in range(9, 17)] == pytest.approx([want[s] for s in range(9, 17)], rel=1e-6, abs=1e-12)
    results = json.loads((longer / "results.json").read_text())
    assert results["epochs"] == 4 and results["steps"] == 16



@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_continuing_with_another_learning_rate_follows_the_plan_with_that_rate(tmp_path, name):
    """The rebuilt schedule takes its base (cosine) or peak (one-cycle) from the new optim.lr, not from the rate
    the checkpoint's schedule recorded."""
    short, _ = run_train(tmp_path / "short", [*BASE, *SCHEDULES[name], "trainer.epochs=2"])
    planned, _ = run_train(tmp_path / "planned", [*BASE, *SCHEDULES[name], "trainer.epochs=4", "optim.lr=0.037"])
    longer, _ = run_train(tmp_path / "longer", [f"ckpt_path={short / 'checkpoints' / 'last.pt'}",
                                                "trainer.epochs=4", "optim.lr=0.037"])
    got, want = lrs(longer), lrs(planned)
    assert [got[s] for s in range(9, 17)] == pytest.approx([want[s] for s in range(9, 17)], rel=1e-6, abs=1e-12)
    assert max(want.values()) == pytest.approx(0.037, rel=0.05)  # the new rate shapes the plan (cosine's warm-up top)


def test_a_checkpoint_that_already_trained_the_planned_epochs_is_refused_unless_its_run_is_finished_in_place(
        tmp_path):
    """`ckpt_path=<finished 2-epoch run> trainer.epochs=1` trained nothing and only tested the checkpoint again, as a
    new run in a new folder, without a word."""
    from cnnlab.errors import ConfigError
    from conftest import QUICK, command, one_error_line

    run, _ = run_train(tmp_path / "a", [*QUICK, "trainer.epochs=2"])
    last = run / "checkpoints" / "last.pt"
    out = command("cnnlab-train", f"ckpt_path={last}", "trainer.epochs=1", f"paths.output_dir={tmp_path / 'out'}",
                  cwd=tmp_path)
    assert one_error_line(out) == (
        f"error: checkpoint {last} already trained 2 epochs, so trainer.epochs=1 trains nothing: pass a larger "
        f"trainer.epochs to continue it (e.g. trainer.epochs=4), or test it with cnnlab-eval ckpt_path={last}")
    assert not list((tmp_path / "out").rglob("*.json"))  # no new run
    with pytest.raises(ConfigError, match="already trained 2 epochs, so trainer.epochs=2 trains nothing"):
        run_train(tmp_path / "b", [f"ckpt_path={last}"])  # its own 2 epochs, into another folder
    results = (run / "results.json").read_text()
    with pytest.raises(ConfigError, match="already trained 2 epochs, so trainer.epochs=1 trains nothing"):
        run_train(tmp_path / "a", ["resume=true", "trainer.epochs=1"], run_dir=run)  # in place, shortened
    assert (run / "results.json").read_text() == results
    run_train(tmp_path / "a", ["resume=true"], run_dir=run)  # in place: finishing it (e.g. a requeued job) tests it
    assert json.loads((run / "results.json").read_text())["epochs"] == 2
    longer, _ = run_train(tmp_path / "c", [f"ckpt_path={last}", "trainer.epochs=3"])
    assert json.loads((longer / "results.json").read_text())["epochs"] == 3


def test_a_finished_checkpoint_cut_by_the_budget_is_told_to_raise_the_budget():
    from types import SimpleNamespace

    from cnnlab.commands.training import check_epochs_left

    t = SimpleNamespace(epochs=240, budget_min=19.0)  # the budget let 120 of the 240 epochs fit
    with pytest.raises(ConfigError, match=r"already trained 120 epochs, so trainer.budget_min=19, which leaves 120 of "
                                          r"trainer.epochs=240, trains nothing: pass a larger trainer.budget_min "
                                          r"\(or trainer.budget_min=null\) to continue it"):
        check_epochs_left({"epoch": 120}, Path("last.pt"), 120, t, in_place=False)
    check_epochs_left({"epoch": 120}, Path("last.pt"), 240, t, in_place=False)  # more epochs fit: it continues

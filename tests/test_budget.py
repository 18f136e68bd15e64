"""trainer.budget_min: after epoch 1 the epochs are cut to what fits the budget at that epoch's pace, the schedule is
planned for the cut, and a stopped run resumes to the same end without measuring again."""
import json
import logging
import os
import signal
import time

import pytest
import torch

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from cnnlab.commands import training
from cnnlab.errors import ConfigError
from conftest import run_train, sigterm_after_step

COMMON = ["data=digits", "trainer.batch_size=64", "optim=sgd", "sched=cosine", "trainer.pictures_every=0",
          "trainer.tensorboard=false"]


def test_the_epochs_that_fit_a_budget():
    assert training.budget_epochs(240, 8.0, 20) == 150          # 1200 s / 8 s
    assert training.budget_epochs(240, 1.8, 20) == 240          # 666 would fit: never more than asked
    assert training.budget_epochs(10, 1000.0, 1) == 1           # at least the epoch already trained
    assert training.budget_epochs(50, 29.0, 29) == 50 and training.budget_epochs(50, 35.0, 29) == 49


def test_a_budget_that_fits_all_epochs_changes_nothing(tmp_path, caplog):
    plain, _ = run_train(tmp_path / "a", [*COMMON, "trainer.epochs=2"])
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        budgeted, _ = run_train(tmp_path / "b", [*COMMON, "trainer.epochs=2", "trainer.budget_min=1000"])
    assert any("trainer.budget_min=1000: an epoch takes" in m and "all 2 epochs fit" in m for m in caplog.messages)
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (plain, budgeted))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["plan"]["epochs"] == 2 and b["plan"]["epoch_s"] > 0
    assert b["plan"]["total_steps"] == a["plan"]["total_steps"]


def test_a_cut_plans_the_schedule_for_the_cut_and_resumes_to_the_same_end(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(training, "budget_epochs", lambda asked, epoch_s, budget_min: 3)  # whatever the pace
    asked3, _ = run_train(tmp_path / "three", [*COMMON, "trainer.epochs=3"])
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        cut, _ = run_train(tmp_path / "cut", [*COMMON, "trainer.epochs=6", "trainer.budget_min=1"])
    assert any("3 of the 6 epochs fit" in m for m in caplog.messages)
    ref, got = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (asked3, cut))
    assert got["epoch"] == 3 and got["step"] == ref["step"]
    # the cut run ends where a 3-epoch schedule ends (cosine: its last learning rate), not halfway down a 6-epoch one
    assert got["optimizer"]["param_groups"][0]["lr"] == pytest.approx(ref["optimizer"]["param_groups"][0]["lr"])
    assert {k: got["plan"][k] for k in ("epochs", "budget_min")} == {"epochs": 3, "budget_min": 1}
    results = json.loads((cut / "results.json").read_text())
    assert (results["epochs"], results["budget_epochs"], results["budget_min"]) == (3, 3, 1)
    assert "budget_epochs" not in json.loads((asked3 / "results.json").read_text())

    real_step = sigterm_after_step(monkeypatch, 25)  # epoch 2 (20 batches an epoch), batch 5
    with pytest.raises(engine.TrainingStopped):
        run_train(tmp_path / "stopped", [*COMMON, "trainer.epochs=6", "trainer.budget_min=1"])
    monkeypatch.setattr(engine, "_backward_step", real_step)
    stopped = tmp_path / "stopped" / "run"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        run_train(tmp_path / "stopped", ["resume=true"], run_dir=stopped)
    # the cut was made once, before the stop: the resumed run takes it from the checkpoint, without measuring
    assert not any("an epoch takes" in m and "from the checkpoint" not in m for m in caplog.messages)
    assert any("3 of the 6 epochs fit" in m and "from the checkpoint" in m for m in caplog.messages)
    resumed = load_checkpoint(stopped / "checkpoints" / "last.pt")
    assert resumed["epoch"] == 3 and all(torch.equal(resumed["model"][k], got["model"][k]) for k in got["model"])


def test_a_budget_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.budget_min=0(\.0)? is not valid: give minutes > 0, or null"):
        run_train(tmp_path, [*COMMON, "trainer.budget_min=0"])


def _lrs_per_step(monkeypatch) -> list[float]:
    """The learning rate after every optimisation step of the runs that follow (engine._backward_step wrapped)."""
    seen, real_step = [], engine._backward_step

    def step(state, loss, settings):
        real_step(state, loss, settings)
        seen.append(state.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(engine, "_backward_step", step)
    return seen


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_a_cut_one_cycle_schedule_keeps_its_peak(tmp_path, monkeypatch, optim):
    # one-cycle lowers the optimizer's lr to its start (peak / div_factor) and takes its peak from the lr: a rebuild
    # from the scheduled optimizer peaked 25x too low. After epoch 1 the cut run follows the 3-epoch schedule.
    monkeypatch.setattr(training, "budget_epochs", lambda asked, epoch_s, budget_min: 3)
    common = ["data=synthetic", "data.num_samples=64", "trainer.batch_size=16", f"optim={optim}", "sched=onecycle",
              "trainer.pictures_every=0", "trainer.tensorboard=false"]
    seen = _lrs_per_step(monkeypatch)
    run_train(tmp_path / "three", [*common, "trainer.epochs=3"])
    want = list(seen)
    seen.clear()
    run_train(tmp_path / "cut", [*common, "trainer.epochs=6", "trainer.budget_min=1"])
    assert len(seen) == len(want) == 12
    assert seen[4:] == pytest.approx(want[4:], rel=1e-9)  # epochs 2 and 3 (4 steps an epoch)


def test_a_resumed_run_says_that_the_budget_cut_its_epochs(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(training, "budget_epochs", lambda asked, epoch_s, budget_min: 2)
    common = ["data=synthetic", "data.num_samples=32", "trainer.batch_size=16", "trainer.pictures_every=0",
              "trainer.tensorboard=false"]
    run, _ = run_train(tmp_path, [*common, "trainer.epochs=4", "trainer.budget_min=1"])
    with caplog.at_level(logging.INFO, logger="cnnlab"):  # asked for more: the stored cut holds, and the log says so
        run_train(tmp_path, ["resume=true", "trainer.epochs=8"], run_dir=run)
    assert any("2 of the 8 epochs fit" in m and "from the checkpoint" in m for m in caplog.messages)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2


def test_an_endless_budget_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.budget_min=inf is not valid"):
        run_train(tmp_path, [*COMMON, "trainer.budget_min=inf"])


def test_epoch_1_resumed_at_its_last_batch_keeps_the_pace_measured_before_the_stop(tmp_path, monkeypatch):
    # 4 steps an epoch, stopped after step 3: the resumed process takes one step, which pays the one-off costs; the
    # pace comes from steps 2-3 (before the stop), not from that step times 4
    common = ["data=synthetic", "data.num_samples=64", "trainer.batch_size=16", "trainer.pictures_every=0",
              "trainer.tensorboard=false", "trainer.epochs=2", "trainer.budget_min=1"]
    real_step, calls, measured = engine._backward_step, {"n": 0}, []

    def step(state, loss, settings):
        real_step(state, loss, settings)
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        elif calls["n"] == 4:  # the resumed process's first (and only) step of epoch 1: slow, as first steps are
            time.sleep(2.0)

    monkeypatch.setattr(engine, "_backward_step", step)
    with pytest.raises(engine.TrainingStopped):
        run_train(tmp_path, common)
    run = tmp_path / "run"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch_pace"][1] == 2  # steps 2 and 3
    real_replan = training.budget_replan

    def replan(*args, **kwargs):
        inner = real_replan(*args, **kwargs)
        return lambda epoch_s: (measured.append(epoch_s), inner(epoch_s))

    monkeypatch.setattr(training, "budget_replan", replan)
    run_train(tmp_path, ["resume=true"], run_dir=run)
    assert len(measured) == 1 and measured[0] < 2.0


def test_null_lifts_the_budget_when_continuing(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "budget_epochs", lambda asked, epoch_s, budget_min: 2)
    cut, _ = run_train(tmp_path / "cut", [*COMMON, "trainer.epochs=4", "trainer.budget_min=1"])
    assert load_checkpoint(cut / "checkpoints" / "last.pt")["epoch"] == 2
    more, _ = run_train(tmp_path / "more", [f"ckpt_path={cut / 'checkpoints' / 'last.pt'}", "trainer.budget_min=null"])
    assert load_checkpoint(more / "checkpoints" / "last.pt")["epoch"] == 4  # key=null replaces the saved value

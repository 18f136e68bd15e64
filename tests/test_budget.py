"""trainer.budget_min: after epoch 1 the epochs are cut to what fits the budget at that epoch's pace, the schedule is
planned for the cut, and a stopped run resumes to the same end without measuring again."""
import logging
import os
import signal

import pytest
import torch

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from cnnlab.commands import training
from cnnlab.errors import ConfigError
from conftest import run_train

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

    real_step, calls = engine._backward_step, {"n": 0}

    def step_then_term(state, loss, settings):
        real_step(state, loss, settings)
        calls["n"] += 1
        if calls["n"] == 25:  # epoch 2 (20 batches an epoch), batch 5
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(engine, "_backward_step", step_then_term)
    with pytest.raises(engine.TrainingStopped):
        run_train(tmp_path / "stopped", [*COMMON, "trainer.epochs=6", "trainer.budget_min=1"])
    monkeypatch.setattr(engine, "_backward_step", real_step)
    stopped = tmp_path / "stopped" / "run"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        run_train(tmp_path / "stopped", ["resume=true"], run_dir=stopped)
    assert not any("an epoch takes" in m for m in caplog.messages)  # the cut was made once, before the stop
    resumed = load_checkpoint(stopped / "checkpoints" / "last.pt")
    assert resumed["epoch"] == 3 and all(torch.equal(resumed["model"][k], got["model"][k]) for k in got["model"])


def test_a_budget_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.budget_min=0 is not valid: give minutes > 0, or null"):
        run_train(tmp_path, [*COMMON, "trainer.budget_min=0"])

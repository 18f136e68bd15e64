"""SIGTERM (what a cluster sends before a kill) stops a run at the next step with a checkpoint that resumes it
exactly; temp files that a kill during a write leaves behind are removed on resume."""
import os
import signal
import subprocess
import time

import pytest
import torch

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from conftest import BIN, run_train

COMMON = ["data=digits", "data.shift=2", "trainer.epochs=2", "trainer.batch_size=64", "optim=sgd", "sched=onecycle",
          "model.dropout=0.3", "trainer.pictures_every=1", "trainer.log_every=5"]


def test_sigterm_mid_epoch_checkpoints_and_resumes_bit_identical(tmp_path, monkeypatch):
    straight, _ = run_train(tmp_path / "a", COMMON)
    real_step = engine._backward_step
    calls = {"n": 0}

    def step_then_term(state, loss, settings):
        real_step(state, loss, settings)
        calls["n"] += 1
        if calls["n"] == 27:  # epoch 2 (20 batches an epoch), batch 7
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(engine, "_backward_step", step_then_term)
    with pytest.raises(engine.TrainingStopped) as stopped:
        run_train(tmp_path / "b", COMMON)
    monkeypatch.undo()
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.step == 27
    killed = tmp_path / "b" / "run"
    ckpt = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]) == (1, 7, 27)
    (killed / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"half a file")  # a kill during a write
    resumed, _ = run_train(tmp_path / "b", ["resume=true"], run_dir=killed)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((killed / "checkpoints").glob(".*.tmp"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run


def test_sigterm_to_the_command_prints_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "cnnlab-train"), "trainer.epochs=200", f"hydra.run.dir={run_dir}",
                             "trainer.progress=false", "trainer.pictures_every=0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM" in err and f"cnnlab-train resume=true hydra.run.dir={run_dir}" in err
    assert "Traceback" not in err
    assert "stopped by SIGTERM" in (run_dir / "train.log").read_text()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] > 0

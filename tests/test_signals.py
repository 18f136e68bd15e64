"""SIGTERM (what a cluster sends before a kill) stops a run at the next step with a checkpoint that resumes it
exactly; temp files that a kill during a write leaves behind are removed on resume."""
import json
import logging
import os
import shlex
import signal
import subprocess
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from conftest import BIN, command, process_env, run_train, sigterm_after_step

COMMON = ["data=digits", "data.shift=2", "trainer.epochs=2", "trainer.batch_size=64", "optim=sgd", "sched=onecycle",
          "model.dropout=0.3", "trainer.pictures_every=1", "trainer.log_every=5"]
TINY = ["data=synthetic", "data.num_samples=64", "trainer.batch_size=16", "trainer.pictures_every=0",
        "trainer.tensorboard=false"]


@pytest.mark.parametrize("extra", [[], ["trainer.ema=0.9"]], ids=["plain", "weight-average"])
def test_sigterm_mid_epoch_checkpoints_and_resumes_bit_identical(tmp_path, monkeypatch, caplog, extra):
    straight, _ = run_train(tmp_path / "a", COMMON + extra)
    sigterm_after_step(monkeypatch, 27)  # epoch 2 (20 batches an epoch), batch 7
    with pytest.raises(engine.TrainingStopped) as stopped:
        run_train(tmp_path / "b", COMMON + extra)
    monkeypatch.undo()
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.step == 27
    killed = tmp_path / "b" / "run"
    ckpt = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]) == (1, 7, 27)
    where = "in epoch 2 (1 completed), after its batch 7 (step 27)"  # the stop and the resume say the same
    assert stopped.value.where == where
    (killed / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"half a file")  # a kill during a write
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        resumed, _ = run_train(tmp_path / "b", ["resume=true"], run_dir=killed)
    assert f"resuming {where}" in caplog.messages
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (straight, resumed))
    for weights in ("model", "train_model") if extra else ("model",):  # with trainer.ema: the average and the weights
        assert all(torch.equal(a[weights][k], b[weights][k]) for k in a[weights])
    assert ("train_model" in a) == bool(extra)
    # the TensorBoard loss curve is the straight run's too: the same steps, the same means (no extra point at 27)
    curve = {}
    for run in (straight, resumed):
        acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0}).Reload()
        curve[run] = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert sorted(curve[resumed]) == sorted(curve[straight]) and 27 not in curve[resumed]
    assert [curve[resumed][k] for k in sorted(curve[straight])] == pytest.approx(
        [curve[straight][k] for k in sorted(curve[straight])], abs=1e-6)
    assert not list((killed / "checkpoints").glob(".*.tmp"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run


@pytest.mark.slow
def test_sigterm_to_the_command_prints_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "cnnlab-train"), "trainer.epochs=200", *TINY, f"hydra.run.dir={run_dir}",
                             "trainer.progress=false"], cwd=tmp_path, env=process_env(),
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


def test_the_printed_resume_command_of_a_sweep_job_runs_as_printed(tmp_path, monkeypatch):
    """A job folder's name holds `=` and `,` (`0_seed=0,trainer.epochs=2`): the hint printed it bare, and Hydra
    refused the pasted line (`mismatched input '=' expecting <EOF>`). The printed line, split into words as a shell
    splits it, resumes the job and finishes it."""
    sweep = tmp_path / "sw"
    sigterm_after_step(monkeypatch, 3)
    out = command("cnnlab-train", "-m", "seed=0", "trainer.epochs=2", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    monkeypatch.undo()
    assert out.returncode == 128 + signal.SIGTERM, out.stderr[-2000:]
    [job] = [p for p in sweep.iterdir() if p.is_dir()]
    assert "=" in job.name and "," in job.name
    [hint] = [line.split("continue with: ", 1)[1] for line in out.stderr.splitlines() if "continue with: " in line]
    assert hint == f"cnnlab-train resume=true 'hydra.run.dir=\"{job}\"'"
    name, *args = shlex.split(hint)
    resumed = command(name, *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in (job / "train.log").read_text() and (job / "results.json").is_file()


def test_a_suggested_override_is_one_shell_word_that_hydra_reads_as_the_value():
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnlab.errors import typed_override

    assert typed_override("hydra.run.dir", "/out/lenet5_digits/2026-01-01_10-00-00") == \
        "hydra.run.dir=/out/lenet5_digits/2026-01-01_10-00-00"  # a plain path stays bare
    parser = OverridesParser.create()
    for path in ("/sw/0_seed=0,trainer.epochs=15", "/a b/it's", '/q"uote\\', "/back\\slash", "/$HOME;x", "/é"):
        [word] = shlex.split(typed_override("hydra.run.dir", path))
        assert parser.parse_override(word).value() == path, path


def test_preemption_signal_checkpoints_and_a_requeued_job_resumes(tmp_path, monkeypatch):
    """SLURM's SIGUSR1 before the time limit: checkpoint at the next step; the requeued job (SLURM_RESTART_COUNT
    set, same folder, no resume flag) continues from it."""
    run_dir = tmp_path / "run"
    args = ["trainer.epochs=3", *TINY, f"hydra.run.dir={run_dir}"]
    sigterm_after_step(monkeypatch, 5, signal.SIGUSR1)
    out = command("cnnlab-train", *args, cwd=tmp_path)
    monkeypatch.undo()
    assert out.returncode == 128 + signal.SIGUSR1, out.stderr[-2000:]
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    done, batch, step = ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]
    where = (f"in epoch {done + 1} ({done} completed), after its batch {batch} (step {step})" if batch else
             f"after epoch {done} ({done} completed), at step {step}")  # what the checkpoint holds, in words
    assert step == 5 and f"stopped by SIGUSR1 {where}; continue with" in out.stderr
    out = command("cnnlab-train", *args, env={"SLURM_RESTART_COUNT": "1"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    log = (run_dir / "train.log").read_text()
    assert f"stopped by SIGUSR1 {where}" in log and f"resuming {where}" in log
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 3


def test_the_stop_is_passed_on_to_the_handler_that_was_there_before():
    """On SLURM, submitit's SIGUSR1 handler (which requeues the job) runs after cnnlab's checkpoint."""
    calls = []
    stop = engine.StopRequest()
    stop.previous = {signal.SIGUSR1: lambda signum, frame: calls.append(signum)}
    stop.signal_name = "SIGUSR1"
    stop.forward()
    assert calls == [signal.SIGUSR1]
    stop.signal_name = "SIGTERM"  # no handler was chained for it: nothing happens
    stop.forward()
    assert calls == [signal.SIGUSR1]


def test_a_run_from_disk_without_workers_resumes_mid_epoch_bit_identical(tmp_path, monkeypatch):
    # on-disk images, transforms (random crop and flip) in the main process: the batches skipped on resume must not
    # use up the random state the checkpoint restored
    from fakes import write_tree

    write_tree(tmp_path / "tree", per_class=8, corrupt=False)
    common = ["model=alexnet_small", "data=imagefolder", f"data.root={tmp_path / 'tree'}", "data.image_size=32",
              "data.in_memory=false", "data.val_fraction=0.25", "trainer.num_workers=0", "trainer.batch_size=4",
              "trainer.epochs=2", "optim=sgd", "trainer.pictures_every=0", "trainer.tensorboard=false"]
    straight, _ = run_train(tmp_path / "a", common)
    sigterm_after_step(monkeypatch, 7)  # epoch 2 (5 batches of 18 images an epoch), batch 2
    with pytest.raises(engine.TrainingStopped):
        run_train(tmp_path / "b", common)
    monkeypatch.undo()
    killed = tmp_path / "b" / "run"
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["batch_in_epoch"] == 2
    resumed, _ = run_train(tmp_path / "b", ["resume=true"], run_dir=killed)
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt")["model"] for run in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_stop_while_the_trained_model_is_tested_ends_at_once_and_resuming_tests_it(tmp_path, monkeypatch, caplog):
    """After the last epoch there is no step boundary to wait for: the stop ends the command with the training's
    checkpoints in place (it once said "stopping at the next step boundary", then tested on and exited 0)."""
    from cnnlab.commands import training

    quick = ["data=digits", "trainer.epochs=1", "trainer.batch_size=128", "trainer.pictures_every=0"]
    real = training.evaluate

    def term_then_evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, before the evaluation starts
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", term_then_evaluate)
    with caplog.at_level(logging.WARNING, logger="cnnlab"), pytest.raises(engine.TrainingStopped) as stopped:
        run_train(tmp_path / "a", quick)
    monkeypatch.undo()
    run_dir = tmp_path / "a" / "run"
    steps = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert stopped.value.step == steps and stopped.value.where == f"after epoch 1 (1 completed), at step {steps}"
    assert "SIGTERM received while the trained model is tested: stopping now" in caplog.text
    assert not (run_dir / "results.json").exists()
    resumed, _ = run_train(tmp_path / "a", ["resume=true"], run_dir=run_dir)
    results = json.loads((resumed / "results.json").read_text())
    assert results["steps"] == steps and "test/acc" in results  # tested, not trained further
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

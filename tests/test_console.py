"""What a person reads on the console: whole error sentences, the progress bar, the feature cache's place and size,
the resolved loss and overall throughput in results.json."""
import io
import json
import logging
import sys

import pytest
import torch

from cnnlab.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.data.featureset import build_feature_data
from cnnlab.data.mnist import build_digits
from cnnlab.errors import ConfigError
from cnnlab.tblog import Progress
from conftest import ENTRY_POINTS, command, load_script, run_train


def test_the_truncated_checkpoint_message_is_a_whole_sentence(tmp_path):
    path = save_checkpoint({"model": {"w": torch.randn(1000)}}, tmp_path / "last.pt")
    path.write_bytes(path.read_bytes()[:3000])
    try:
        load_checkpoint(path)
    except ConfigError as e:
        text = str(e)
    assert text.endswith("use another checkpoint, e.g. best.pt or last.pt from the same run") and "\n" not in text


def test_script_help_is_not_cut_mid_sentence(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_augment.py", "--help"])
    with pytest.raises(SystemExit):
        load_script("bench_augment").main()
    out = capsys.readouterr().out
    assert "cnnlab's on-device batched augmentation vs a\ntorchvision-transforms DataLoader with workers." in out


def test_the_progress_bar_shows_the_total_the_time_left_and_the_loss(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = Progress(40, "epoch 3/30", enabled=True, interval=0.0)  # trainer.progress=true: drawn even in a pipe
    for i in range(1, 41):
        bar.update(i, 0.5 if i == 20 else None)
    line = err.getvalue().split("\r")[-1]
    assert line.startswith("epoch 3/30") and "40/40" in line and "<00:00" in line and "loss 0.5000" in line
    bar.close()
    assert err.getvalue().endswith("\r")  # the line is cleared: the next log line starts clean


def test_the_progress_bar_is_quiet_in_a_pipe_and_off_when_asked(monkeypatch):
    err = io.StringIO()  # not a terminal (isatty() is False), as in `cnnlab-train ... | tee log` or a notebook
    monkeypatch.setattr(sys, "stderr", err)
    for enabled in (None, False):  # trainer.progress=null (the default) and false
        bar = Progress(10, "epoch 1/1", enabled=enabled)
        assert bar.bar.disable  # not drawn
        bar.update(5, 0.1)
        bar.close()
    assert err.getvalue() == ""


def test_the_progress_bar_fits_the_terminal_it_is_drawn_on(monkeypatch):
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))  # a terminal 50 columns wide
    with os.fdopen(slave, "w") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        bar = Progress(40, "epoch 3/30", interval=0.0)  # trainer.progress=null: on, since stderr is a terminal
        assert not bar.bar.disable  # drawn
        for i in range(1, 41):
            bar.update(i, 0.5)
        bar.close()
        tty.flush()
        monkeypatch.undo()
        chunks = []
        while select.select([master], [], [], 0.5)[0]:  # the kernel hands a pty's output over in pieces
            chunks.append(os.read(master, 1 << 16))
    os.close(master)
    drawn = b"".join(chunks).decode()
    lines = drawn.split("\r")
    assert any(line.startswith("epoch 3/30") and "40/40" in line for line in lines)
    assert max(map(len, lines)) < 50 and lines[-2].strip() == ""  # each redraw fits; the last one is cleared


def test_feature_cache_says_where_and_how_large(tmp_path, caplog):
    source = lambda **kw: build_digits(size=32)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        build_feature_data(source, cache_dir=str(tmp_path / "cache"))
        build_feature_data(source, cache_dir=str(tmp_path / "cache"))
    said = caplog.text
    assert f"features cached in {tmp_path / 'cache'}" in said and " MB" in said
    assert "features read from the cache" in said


def test_results_state_the_resolved_loss_and_overall_samples_per_second(tmp_path):
    run_dir, _ = run_train(tmp_path, ["data=synthetic", "data.num_samples=32", "trainer.epochs=2",
                                      "trainer.batch_size=8", "trainer.pictures_every=0", "loss=cross_entropy"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["loss"] == "cross_entropy" and results["loss_resolved"].startswith("CrossEntropy(")
    history = load_checkpoint(run_dir / "checkpoints" / "last.pt")["history"]
    seconds = sum(h["train/epoch_time_s"] for h in history)
    assert results["train_samples_per_s"] == 64 / seconds  # all samples over all epoch time


@pytest.mark.slow
def test_the_installed_console_scripts_run(tmp_path):
    """Every script pyproject.toml declares runs as installed (the other tests call the same entry points in this
    process; cnnlab-train runs as a process in the signal and folder-race tests): eval, viz and predict on a
    checkpoint, compare on its folder."""
    import numpy as np
    from PIL import Image

    run_dir, _ = run_train(tmp_path, ["data=synthetic", "data.num_samples=16", "trainer.epochs=1",
                                      "trainer.batch_size=8", "trainer.tensorboard=false"])
    ckpt = f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "x.png")
    ran = {"cnnlab-train"}
    for name, args, made in [("cnnlab-eval", [ckpt, f"out_dir={tmp_path / 'eval'}"], "eval/results.json"),
                             ("cnnlab-viz", [ckpt, f"out_dir={tmp_path / 'viz'}"], "viz/confusion_test.png"),
                             ("cnnlab-predict", [ckpt, f"input={tmp_path / 'x.png'}", f"output={tmp_path / 'p.csv'}"],
                              "p.csv")]:
        out = command(name, *args, cwd=tmp_path, process=True)
        assert out.returncode == 0 and (tmp_path / made).is_file(), (name, out.stderr[-2000:])
        ran.add(name)
    out = command("cnnlab-compare", str(run_dir), "--format", "csv", cwd=tmp_path, process=True)
    assert out.returncode == 0 and str(run_dir) in out.stdout, out.stderr[-2000:]
    assert ran | {"cnnlab-compare"} == set(ENTRY_POINTS)

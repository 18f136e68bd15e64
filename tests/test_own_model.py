"""Bring your own model: one .py and one model/<name>.yaml in a --config-dir train, evaluate, predict and load
(the README's recipe, run as written)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnlab
from conftest import command, one_error_line

TINY = '''
from torch import nn


class TinyNet(nn.Module):
    """A conv, a global average pool and a linear layer."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.net(x)


class NoChannels(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.head = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.head(x.flatten(1))
'''


def _own_configs(root: Path) -> Path:
    conf = root / "myconf"
    (conf / "model").mkdir(parents=True)
    (conf / "tiny.py").write_text(TINY)
    (conf / "model" / "tiny.yaml").write_text("_target_: tiny.TinyNet\nwidth: 6\n")
    (conf / "model" / "nochannels.yaml").write_text("_target_: tiny.NoChannels\n")
    return conf


def test_own_model_trains_evaluates_predicts_and_loads(tmp_path):
    conf = _own_configs(tmp_path)
    out = tmp_path / "out"
    trained = command("cnnlab-train", "--config-dir", str(conf), "model=tiny", "trainer.epochs=2",
                      f"paths.output_dir={out}", "trainer.tensorboard=false", "trainer.pictures_every=0", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = next((out / "tiny_digits").iterdir())
    best = run / "checkpoints" / "best.pt"
    results = json.loads((run / "results.json").read_text())

    evaluated = command("cnnlab-eval", "--config-dir", str(conf), f"ckpt_path={best}", f"out_dir={tmp_path / 'ev'}",
                        f"paths.output_dir={out}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    measured = json.loads(next((tmp_path / "ev").glob("*.json")).read_text())
    assert abs(measured["test/acc"] - results["test/acc"]) < 1e-6

    picture = tmp_path / "digit.png"
    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8)).save(picture)
    predicted = command("cnnlab-predict", "--config-dir", str(conf), f"ckpt_path={best}", f"input={picture}",
                        f"output={tmp_path / 'p.csv'}", f"paths.output_dir={out}", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 1 and rows[0]["label"] in [str(i) for i in range(10)]

    model = cnnlab.load_model(best, config_dirs=[str(conf)])
    assert type(model).__name__ == "TinyNet" and not model.training
    assert model.data_state["class_names"] == [str(i) for i in range(10)]
    weights = torch.load(best, weights_only=True)["model"]
    x = torch.randn(3, 1, 32, 32)
    reference = type(model)(10, 1, width=6)
    reference.load_state_dict(weights)
    torch.testing.assert_close(model(x), reference.eval()(x))


def test_own_model_is_refused_without_its_config_dir(tmp_path):
    """The checkpoint names tiny.TinyNet: only a --config-dir that names it lets it be built (the trust rule)."""
    conf = _own_configs(tmp_path)
    out = tmp_path / "out"
    assert command("cnnlab-train", "--config-dir", str(conf), "model=tiny", "trainer.epochs=1",
                   f"paths.output_dir={out}", "trainer.tensorboard=false", "trainer.pictures_every=0",
                   cwd=tmp_path).returncode == 0
    best = next((out / "tiny_digits").iterdir()) / "checkpoints" / "best.pt"
    line = one_error_line(command("cnnlab-eval", f"ckpt_path={best}", f"paths.output_dir={out}", cwd=tmp_path))
    assert "model._target_=tiny.TinyNet" in line and "--config-dir" in line


def test_own_model_that_does_not_take_a_data_value_is_told_how(tmp_path):
    conf = _own_configs(tmp_path)
    line = one_error_line(command("cnnlab-train", "--config-dir", str(conf), "model=nochannels",
                                  f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path))
    assert "in_channels=1" in line and "tiny.NoChannels" in line and "add a `in_channels` parameter" in line


STRIPES = '''
import torch

from cnnlab.data.common import DataBundle, TensorSplit
from cnnlab.data.imageio import image_state


def build_stripes(num_samples: int = 64, size: int = 16, root=None):
    """Two classes: horizontal or vertical stripes, with noise."""
    gen = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.randint(0, 2, (n,), generator=gen)
        rows = (torch.arange(size) % 4 < 2).float()
        pattern = torch.stack([rows[:, None].expand(size, size), rows[None, :].expand(size, size)])
        return TensorSplit(pattern[y][:, None] + 0.3 * torch.randn(n, 1, size, size, generator=gen), y)

    return DataBundle(split(num_samples), split(32), split(32), num_classes=2, class_names=["across", "down"],
                      model_kwargs={"in_channels": 1}, mean=(0.5,), std=(0.5,), name="stripes",
                      state=image_state(1, (size, size), resize=True))
'''


def test_own_dataset_trains_and_evaluates_from_its_config_dir(tmp_path):
    conf = _own_configs(tmp_path)
    (conf / "data").mkdir()
    (conf / "stripes.py").write_text(STRIPES)
    (conf / "data" / "stripes.yaml").write_text("_target_: stripes.build_stripes\nnum_samples: 96\n")
    out = tmp_path / "out"
    trained = command("cnnlab-train", "--config-dir", str(conf), "model=tiny", "data=stripes", "trainer.epochs=3",
                      "optim.lr=0.01", f"paths.output_dir={out}", "trainer.tensorboard=false",
                      "trainer.pictures_every=0", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = next((out / "tiny_stripes").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert results["per_class_test_acc"].keys() == {"across", "down"}
    evaluated = command("cnnlab-eval", "--config-dir", str(conf), f"ckpt_path={run / 'checkpoints' / 'best.pt'}",
                        f"out_dir={tmp_path / 'ev'}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["test/acc"] == results["test/acc"]
    refused = command("cnnlab-eval", f"ckpt_path={run / 'checkpoints' / 'best.pt'}", cwd=tmp_path)
    line = one_error_line(refused)  # the trust rule: without its --config-dir nothing the file names is built
    assert "_target_=" in line and "pass --config-dir" in line

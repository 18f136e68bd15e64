"""trainer.ema: an exponential moving average of the weights is what is validated, tested and saved."""
import json

import pytest
import torch
from torch import nn

from cnnlab.checkpoint import load_checkpoint
from cnnlab.engine import WeightAverage
from cnnlab.errors import ConfigError
from conftest import command, run_train

QUICK = ["data=digits", "trainer.epochs=2", "trainer.batch_size=64", "trainer.tensorboard=false",
         "trainer.pictures_every=0"]


def test_the_average_follows_the_formula_by_hand():
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    nn.init.zeros_(model[0].weight)
    avg = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].running_mean.fill_(5.0)
    avg.update(model)  # 1st update: d = min(0.9, 2/11)
    d1 = 2 / 11
    assert torch.allclose(avg.module[0].weight, torch.full((1, 2), (1 - d1) * 1.0))
    assert avg.module[1].running_mean.item() == 5.0  # buffers are copied, not averaged
    with torch.no_grad():
        model[0].weight.fill_(2.0)
    avg.update(model)  # 2nd: d = min(0.9, 3/12)
    expected = 0.25 * (1 - d1) + 0.75 * 2.0
    assert torch.allclose(avg.module[0].weight, torch.full((1, 2), expected))
    for _ in range(200):
        avg.update(model)
    assert abs(avg.module[0].weight[0, 0].item() - 2.0) < 1e-6  # d reaches 0.9 and the average the weights
    assert not any(p.requires_grad for p in avg.module.parameters())


def test_the_saved_model_is_the_average_and_reproduces_the_reported_test_accuracy(tmp_path):
    run_dir, _ = run_train(tmp_path, [*QUICK, "trainer.ema=0.99"])
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert set(best) >= {"model", "train_model", "ema_updates"}
    assert best["ema_updates"] == best["step"]
    differs = [k for k in best["model"] if not torch.equal(best["model"][k], best["train_model"][k])]
    assert differs  # the average is not the last weights
    results = json.loads((run_dir / "results.json").read_text())
    out = command("cnnlab-eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"out_dir={tmp_path / 'e'}",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "e" / "results.json").read_text())["test/acc"] == results["test/acc"]


@pytest.mark.parametrize("value", ["1.0", "-0.5"])
def test_a_decay_outside_0_1_is_named(tmp_path, value):
    with pytest.raises(ConfigError, match=f"trainer.ema={value}"):
        run_train(tmp_path, [*QUICK, f"trainer.ema={value}"])

"""Trainer options a user sets on the command line: each works on CPU, and a bad value fails before training."""
import json

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models.lenet import LeNet5
from cnnlab.run import build_optimizer
from conftest import compose_cfg, run_train

QUICK = ["data=synthetic", "data.num_samples=32", "trainer.epochs=1", "trainer.batch_size=8",
         "trainer.tensorboard=false", "trainer.pictures_every=0"]


@pytest.mark.parametrize("options", [
    ["trainer.channels_last=true"], ["trainer.amp=bf16"], ["init=xavier"], ["init=kaiming"],
    ["trainer.clip_grad=0.5"], ["trainer.deterministic=true"], ["optim=sgd", "sched=step"],
    ["optim=adamw", "sched=cosine", "sched.warmup_epochs=0.5"], ["trainer.monitor=val/loss", "trainer.mode=min"],
])
def test_option_trains_on_cpu(tmp_path, options):
    run_dir, _ = run_train(tmp_path, [*QUICK, *options])
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 4


def test_amp_on_cpu_is_ignored_with_a_notice(tmp_path, caplog):
    with caplog.at_level("INFO", logger="cnnlab"):
        run_train(tmp_path, [*QUICK, "trainer.amp=fp16"])
    assert any("trainer.amp=fp16 ignored" in r.message for r in caplog.records)


@pytest.mark.parametrize("override, named", [
    ("trainer.amp=fp32", "trainer.amp=fp32"), ("trainer.mode=Max", "trainer.mode=Max"),
    ("trainer.batch_size=0", "trainer.batch_size"), ("init=he", "init=he"),
    ("trainer.monitor=val/f1", "val/f1 is not reported for 10 classes"),
    ("optimized_metric=val/iou", "optimized_metric=val/iou"), ("trainer.device=gpu", "trainer.device=gpu"),
])
def test_bad_trainer_values_fail_before_training(tmp_path, override, named):
    with pytest.raises(ConfigError, match=named.replace("/", "/")):
        run_train(tmp_path, [*QUICK, override])
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_weight_decay_applies_to_weights_only():
    cfg = compose_cfg(["optim=sgd", "optim.weight_decay=0.01"])
    model = LeNet5()
    decay, no_decay = build_optimizer(cfg.optim, model).param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters() if p.ndim >= 2}
    assert {id(p) for p in no_decay["params"]} == {id(m.bias) for m in model.modules() if hasattr(m, "bias")
                                                   and isinstance(m.bias, torch.nn.Parameter)}

"""Issue 4 end to end: the AlexNet experiments through train() and the installed commands, on files written here."""
import json
import logging

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.data.common import DataBundle
from cnnlab.errors import ConfigError
from cnnlab.build import build_model
from conftest import command, compose_cfg, one_error_line, run_train
from fakes import write_cifar, write_tree

PICTURES = {"filters_first_layer.png", "saliency_val.png", "confusion_val.png", "errors_most_confident_val.png"}
SMALL = ["trainer.epochs=1", "trainer.batch_size=16", "trainer.eval_batch_size=16", "trainer.pictures_every=1",
         "trainer.num_workers=0"]


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """experiment=alexnet_small_cifar10 for one epoch on 60 + 12 CIFAR images written as the official pickles."""
    tmp = tmp_path_factory.mktemp("cifar")
    write_cifar(tmp / "data", per_batch=12)
    run_dir, value = run_train(tmp, ["experiment=alexnet_small_cifar10", f"data.root={tmp / 'data'}",
                                     "data.val_size=20", *SMALL])
    return tmp, run_dir, value


def test_cifar_experiment_writes_results_checkpoint_and_pictures(cifar_run):
    _, run_dir, value = cifar_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["experiment"] == "alexnet_small_cifar10" and results["model"] == "alexnet_small"
    assert 0.0 <= results["test/top5"] <= 1.0 and results["test/acc"] <= results["test/top5"]
    assert list(results["per_class_test_acc"])[:2] == ["airplane", "automobile"]
    assert len(results["per_class_test_acc"]) == 10 and value == results["val/acc"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert best["model"]["features.0.weight"].shape == (64, 3, 5, 5)  # norm=bn: conv, BN, ReLU, ...
    assert PICTURES <= {p.name for p in (run_dir / "pictures").glob("*.png")}
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = set(events.Tags()["images"])
    assert {"filters/first_layer", "saliency/val", "confusion/val", "errors/most_confident_val"} <= tags
    assert len(events.Images("filters/first_layer")) == 1  # one epoch: drawn once, at the end, not twice


def test_viz_command_writes_pngs_for_a_checkpoint(cifar_run):
    tmp, run_dir, _ = cifar_run
    out = command("cnnlab-viz", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"out_dir={tmp / 'viz'}",
                  "num_images=4", f"paths.output_dir={tmp}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-2000:]  # drawn from split=test (the default): named so
    assert {p.replace("_val.", "_test.") for p in PICTURES} == {p.name for p in (tmp / "viz").glob("*.png")}


def test_imagefolder_experiment_skips_and_names_a_corrupt_file(tmp_path, caplog):
    write_tree(tmp_path / "imgs")  # 3 classes x 6 images, plus dog/broken.png
    with caplog.at_level(logging.WARNING):
        run_dir, _ = run_train(tmp_path, ["experiment=alexnet_imagefolder", f"data.root={tmp_path / 'imgs'}",
                                          "model=alexnet_small", "data.image_size=32", "data.val_fraction=0.34",
                                          *SMALL])
    assert "broken.png" in caplog.text
    results = json.loads((run_dir / "results.json").read_text())
    assert sorted(results["per_class_test_acc"]) == ["cat", "dog", "fox"] and "test/acc" in results


def test_imagefolder_bad_file_policy_error_stops_naming_the_file(tmp_path):
    write_tree(tmp_path / "imgs")
    out = command("cnnlab-train", "experiment=alexnet_imagefolder", f"data.root={tmp_path / 'imgs'}",
                  "data.on_bad_file=error", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    line = one_error_line(out)
    assert "broken.png" in line and "data.on_bad_file=skip" in line


def test_alexnet_on_1_channel_32px_digits_fails_before_training(tmp_path):
    out = command("cnnlab-train", "model=alexnet", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    line = one_error_line(out)
    assert "model=alexnet" in line and "model=alexnet_small" in line
    assert not list(tmp_path.rglob("*.pt"))  # failed before the first epoch


@pytest.mark.parametrize("model, expected", [("alexnet", "model=alexnet_small"),
                                             ("torchvision_alexnet", "model=torchvision_alexnet")])
def test_224_models_refuse_32px_cifar_before_training(cifar_run, model, expected):
    tmp = cifar_run[0]
    with pytest.raises(ConfigError, match=expected) as err:
        run_train(tmp / model, ["experiment=alexnet_small_cifar10", f"model={model}", f"data.root={tmp / 'data'}",
                                "data.val_size=20", *SMALL])
    assert "\n" not in str(err.value) and "32" in str(err.value)
    assert not (tmp / model / "run" / "checkpoints").exists()


@pytest.mark.parametrize("overrides, cls, first", [
    (["experiment=alexnet_small_cifar10"], "AlexNetSmall", (64, 3, 5, 5)),
    (["experiment=alexnet_imagefolder"], "AlexNet", (96, 3, 11, 11)),
    (["experiment=alexnet_imagefolder", "model=torchvision_alexnet"], "TorchvisionClassifier", (64, 3, 11, 11)),
])
def test_experiments_compose_and_build_their_model(overrides, cls, first):
    cfg = compose_cfg(overrides)
    assert cfg.data.root.startswith(cfg.paths.data_dir)
    bundle = DataBundle(None, None, None, num_classes=7, class_names=list("abcdefg"), model_kwargs={"in_channels": 3})
    model = build_model(cfg.model, bundle.num_classes, bundle.model_kwargs, ("m", "d"))
    assert f"{type(model).__module__}.{type(model).__name__}".endswith(cls)
    assert next(model.parameters()).shape == first and list(model.parameters())[-1].shape == (7,)

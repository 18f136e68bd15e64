"""The whole pipeline in-process: every config composes, every model trains, a killed run resumes exactly."""
import json
from pathlib import Path

import pytest
import torch

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from cnnlab.cli import CONFIG_DIR
from cnnlab.build import build_data, build_loss, build_model, build_optimizer, build_scheduler
from cnnlab.commands import check_compatible
from cnnlab.data.common import head
from cnnlab.engine import LoopSettings
from conftest import compose_cfg, fake_data, run_train

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
INPUT_SIZE = {"alexnet": 224, "torchvision_alexnet": 224}  # everything else takes 32x32
THREE_CHANNEL = {"alexnet", "alexnet_small", "torchvision_alexnet"}
SEGMENTATION = ["data=roads_synthetic", "data.num_images=10", "data.size=32", "data.augment.crop=16",
                "trainer.monitor=val/iou", "optimized_metric=val/iou"]
DATA_FOR = {  # models that take other inputs than labelled images
    "sentence_cnn": ["data=sentiment_synthetic", "data.num_train=8", "data.num_val=4", "data.num_test=4",
                     "model.embed_dim=16", "model.num_maps=4"],
    "unet": [*SEGMENTATION, "model.base=4", "model.depth=2"],
    "fcn": [*SEGMENTATION, "model.widths=[4,4,8]", "model.convs=[1,1,1]", "model.fc_width=8"],
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_builds_its_data_and_model_and_takes_a_step(tmp_path, experiment):
    """Compose the experiment, build its data from files in the real format and its model, take one step: a
    misspelt key, a missing builder argument or a model that does not fit the data fails here."""
    choice = compose_cfg([f"experiment={experiment}"]).hydra.runtime.choices.data
    cfg = compose_cfg([f"experiment={experiment}", *fake_data(choice, tmp_path)])
    names = (cfg.hydra.runtime.choices.model, choice)
    bundle = build_data(cfg.data)
    model = build_model(cfg.model, bundle.num_classes, bundle.model_kwargs, names, pretrained=False)  # offline
    loop = LoopSettings(epochs=1, device=torch.device("cpu"))
    check_compatible(model, bundle, names, loop)
    opt = build_optimizer(cfg.optim, model)
    sched = build_scheduler(cfg.sched, opt, total_steps=10, steps_per_epoch=5)
    loss_fn = build_loss(cfg.loss, model, bundle)
    if names[0] == "lenet5_classic":
        assert type(loss_fn).__name__ == "RBFLoss"
    x, y = head(bundle.train, 4)
    loss = loss_fn(model.train()(x), y)
    loss.backward()
    opt.step()
    sched.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("model", MODELS)
def test_two_step_smoke_run_per_model(tmp_path, model):
    size = INPUT_SIZE.get(model, 32)
    channels = 3 if model in THREE_CHANNEL else 1
    data = DATA_FOR.get(model, ["data=synthetic", "data.num_samples=8", f"data.size={size}",
                                f"data.channels={channels}", f"data.flat={model == 'linear'}"])
    run_dir, value = run_train(tmp_path, [f"model={model}", *data, "trainer.epochs=1", "trainer.batch_size=4",
                                          "trainer.tensorboard=false", "trainer.pictures_every=0"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 2 and 0.0 <= value <= 1.0
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def _weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_killed_run_resumes_bit_identical(tmp_path, monkeypatch):
    # digits with on-device augmentation (random shifts) and dropout: every random stream is exercised,
    # and the pictures drawn between epochs must not disturb them
    common = ["data=digits", "data.shift=2", "trainer.epochs=3", "trainer.batch_size=64", "optim=sgd",
              "sched=onecycle", "model.dropout=0.3", "trainer.pictures_every=1"]
    straight, _ = run_train(tmp_path / "a", common)

    real_epoch = engine.train_one_epoch

    class Killed(BaseException):
        pass

    def die_in_epoch_2(state, loader, loss_fn, settings, logger, epoch):
        if epoch == 2:
            next(iter(loader))  # half-way into the epoch's data...
            raise Killed        # ...the process dies; epoch 1's checkpoints are on disk
        return real_epoch(state, loader, loss_fn, settings, logger, epoch)

    monkeypatch.setattr(engine, "train_one_epoch", die_in_epoch_2)
    with pytest.raises(Killed):
        run_train(tmp_path / "b", common)
    monkeypatch.undo()
    killed_dir = tmp_path / "b" / "run"
    assert load_checkpoint(killed_dir / "checkpoints" / "last.pt")["epoch"] == 1
    at_kill = tmp_path / "at_kill.pt"  # the resume below overwrites last.pt and best.pt
    at_kill.write_bytes((killed_dir / "checkpoints" / "last.pt").read_bytes())
    # resume=true alone: the run's own config comes from its checkpoint (SGD, one-cycle, shifts, dropout)
    resumed, _ = run_train(tmp_path / "b", ["resume=true"], run_dir=killed_dir)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist_a = json.loads((straight / "results.json").read_text())
    hist_b = json.loads((resumed / "results.json").read_text())
    assert hist_a["test/loss"] == hist_b["test/loss"] and hist_b["epochs"] == 3
    assert hist_b["overrides"] == common and hist_b["model"] == "lenet5"  # the run keeps its own identity
    # continuing from an explicit checkpoint into a new folder works the same way (the finished run's best.pt, once
    # used here, trained no further: it is refused, see test_continue.py)
    other, _ = run_train(tmp_path / "c", [*common, f"ckpt_path={at_kill}"])
    assert json.loads((other / "results.json").read_text())["epochs"] == 3
    c = _weights(other)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_default_run_trains_lenet5_on_digits(tmp_path):
    """`cnnlab-train` with no arguments: >= 97 % test accuracy, TensorBoard scalars, pictures, results."""
    run_dir, value = run_train(tmp_path, [])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test/acc"] >= 0.97, results["test/acc"]
    assert results["model"] == "lenet5" and results["data"] == "digits" and value == results["val/acc"]
    assert len(results["per_class_test_acc"]) == 10
    for name in ("config.yaml", "env.json", "checkpoints/best.pt", "pictures/filters_first_layer.png"):
        assert (run_dir / name).is_file(), name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb")).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "train/lr", "train/epoch_time_s", "train/samples_per_s"} <= tags
    assert "filters/first_layer" in acc.Tags()["images"]
    env = json.loads((run_dir / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["git_commit"]


def test_eval_command_reproduces_test_metrics(tmp_path):
    from cnnlab.commands import evaluate_checkpoint
    from cnnlab.report import RunInfo

    run_dir, _ = run_train(tmp_path, ["data=synthetic", "trainer.epochs=2", "trainer.tensorboard=false"])
    ckpt = run_dir / "checkpoints" / "best.pt"
    cfg = compose_cfg([f"ckpt_path={ckpt}"], config_name="eval")
    out = evaluate_checkpoint(cfg, RunInfo(tmp_path / "eval", overrides=[f"ckpt_path={ckpt}"]))
    results = json.loads((run_dir / "results.json").read_text())
    assert out["test/acc"] == pytest.approx(results["test/acc"])
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["split"] == "test"

"""The whole pipeline in-process: every config composes, every model trains, a killed run resumes exactly."""
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import get_object, instantiate

from cnnlab import engine
from cnnlab.checkpoint import load_checkpoint
from cnnlab.cli import CONFIG_DIR
from cnnlab.data.sentiment import build_sentiment_synthetic
from cnnlab.data.synthetic import build_synthetic
from cnnlab.run import build_loss, build_model, build_optimizer
from conftest import compose_cfg, run_train

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
INPUT_SIZE = {"alexnet": 224, "torchvision_alexnet": 224}  # everything else takes 32x32
THREE_CHANNEL = {"alexnet", "alexnet_small", "torchvision_alexnet"}
TEXT = {"sentence_cnn"}  # token-id models: the procedural sentiment corpus instead of images


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert callable(get_object(cfg.data._target_))  # the data builder exists (its files may not, here)
    name = cfg.hydra.runtime.choices.model
    size, channels = INPUT_SIZE.get(name, 32), 3 if name in THREE_CHANNEL else 1
    bundle = build_sentiment_synthetic(8, 4, 4) if name in TEXT else \
        build_synthetic(8, channels=channels, size=size, num_classes=2)  # 2 suits class-weighted losses too
    model = build_model(cfg.model, bundle)
    opt = build_optimizer(cfg.optim, model)
    sched = instantiate(cfg.sched)(opt, total_steps=10, steps_per_epoch=5)
    loss = build_loss(cfg.loss, model)
    if cfg.hydra.runtime.choices.model == "lenet5_classic":
        assert type(loss).__name__ == "RBFLoss"
    x, y = bundle.train.batch(slice(0, 2))
    out = model(x)
    assert out.shape == (2, 2)
    loss(out, y).backward()
    opt.step()
    sched.step()


@pytest.mark.parametrize("model", MODELS)
def test_two_step_smoke_run_per_model(tmp_path, model):
    size = INPUT_SIZE.get(model, 32)
    channels = 3 if model in THREE_CHANNEL else 1
    data = ["data=sentiment_synthetic", "data.num_train=8", "data.num_val=4", "data.num_test=4"] if model in TEXT \
        else ["data=synthetic", "data.num_samples=8", f"data.size={size}", f"data.channels={channels}"]
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
    # resume=true alone: the run's own config comes from its checkpoint (SGD, one-cycle, shifts, dropout)
    resumed, _ = run_train(tmp_path / "b", ["resume=true"], run_dir=killed_dir)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist_a = json.loads((straight / "results.json").read_text())
    hist_b = json.loads((resumed / "results.json").read_text())
    assert hist_a["test/loss"] == hist_b["test/loss"] and hist_b["epochs"] == 3
    assert hist_b["overrides"] == common and hist_b["model"] == "lenet5"  # the run keeps its own identity
    # continuing from an explicit checkpoint into a new folder works the same way
    other, _ = run_train(tmp_path / "c", [*common, f"ckpt_path={killed_dir / 'checkpoints' / 'best.pt'}"])
    assert json.loads((other / "results.json").read_text())["epochs"] == 3


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
    from cnnlab.evaluation import evaluate_checkpoint
    from cnnlab.runinfo import RunInfo

    run_dir, _ = run_train(tmp_path, ["data=synthetic", "trainer.epochs=2", "trainer.tensorboard=false"])
    ckpt = run_dir / "checkpoints" / "best.pt"
    cfg = compose_cfg([f"ckpt_path={ckpt}"], config_name="eval")
    out = evaluate_checkpoint(cfg, RunInfo(tmp_path / "eval", overrides=[f"ckpt_path={ckpt}"]))
    results = json.loads((run_dir / "results.json").read_text())
    assert out["test/acc"] == pytest.approx(results["test/acc"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["split"] == "test"

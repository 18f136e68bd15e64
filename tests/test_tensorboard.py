"""What a researcher reads in TensorBoard, read back with TensorBoard's own event reader: an epoch axis, no step
twice after a resume, HParams rows with the effective settings and one metric set per task, test/* metrics as
scalars, the config as text, histograms behind one switch."""
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cnnlab import engine
from conftest import run_train

QUICK = ["data=synthetic", "data.num_samples=32", "trainer.batch_size=8", "trainer.pictures_every=0",
         "trainer.log_every=1"]


def events(run_dir):
    return EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "histograms": 0}).Reload()


def hparams_of(acc) -> dict:
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: (v.string_value or v.number_value) for k, v in info.hparams.items()}


def test_hparams_hold_the_effective_settings_and_the_tasks_metrics(tmp_path):
    a, _ = run_train(tmp_path / "a", [*QUICK, "trainer.epochs=2"])
    b, _ = run_train(tmp_path / "b", [*QUICK, "trainer.epochs=2", "optim=sgd", "optim.lr=0.01",
                                      "data.root=/somewhere"])
    ha, hb = hparams_of(events(a)), hparams_of(events(b))
    assert ha["optim"] == "adam" and ha["optim.lr"] == pytest.approx(3e-3) and ha["trainer.batch_size"] == 8
    assert hb["optim"] == "sgd" and hb["optim.lr"] == pytest.approx(0.01) and hb["sched"] == "cosine"
    assert ha["loss"] == "CrossEntropyLoss()" and ha["trainer.epochs"] == 2 and ha["seed"] == 0
    assert not any("root" in k or k.startswith("paths") for k in hb)  # paths are not hyperparameters
    assert set(ha) == set(hb)  # complete columns across runs
    tags_a = {t for t in events(a).Tags()["scalars"] if t.startswith("hparam/")}
    tags_b = {t for t in events(b).Tags()["scalars"] if t.startswith("hparam/")}
    assert tags_a == tags_b and {"hparam/val/acc", "hparam/test/acc", "hparam/test/top5"} <= tags_a


def test_test_metrics_are_scalars_too_with_the_values_of_results_json(tmp_path):
    import json

    run_dir, _ = run_train(tmp_path, [*QUICK, "trainer.epochs=2"])
    results = json.loads((run_dir / "results.json").read_text())
    acc = events(run_dir)
    test_tags = {t for t in acc.Tags()["scalars"] if t.startswith("test/")}
    assert test_tags == {k for k in results if k.startswith("test/")} and {"test/acc", "test/loss"} <= test_tags
    for tag in test_tags:
        (point,) = acc.Scalars(tag)  # one point, at the run's last step (epoch 2 ends at step 8)
        assert point.step == 8 and point.value == pytest.approx(results[tag], rel=1e-6)


def test_epoch_axis_config_text_and_histograms(tmp_path):
    run_dir, _ = run_train(tmp_path, [*QUICK, "trainer.epochs=2", "trainer.histograms_every=1"])
    acc = events(run_dir)
    assert [(e.step, e.value) for e in acc.Scalars("epoch")] == [(4, 1.0), (8, 2.0)]  # 4 steps an epoch
    assert {"train/loss", "train/epoch_loss", "train/lr", "val/acc"} <= set(acc.Tags()["scalars"])
    assert "config/text_summary" in acc.Tags()["tensors"]
    assert any(t.startswith("weights/") for t in acc.Tags()["histograms"])
    assert any(t.startswith("gradients/") for t in acc.Tags()["histograms"])
    off, _ = run_train(tmp_path / "off", [*QUICK, "trainer.epochs=1"])
    assert not events(off).Tags()["histograms"]  # off by default


def test_no_step_is_written_twice_after_a_kill_and_resume(tmp_path, monkeypatch):
    real = engine.train_one_epoch

    class Killed(BaseException):
        pass

    def die_late(state, loader, loss_fn, settings, logger, epoch):
        if epoch == 2:  # logs a few steps of epoch 2, then dies before its checkpoint
            for i, _ in enumerate(loader):
                logger.scalars({"train/loss": 1.0}, state.step + i + 1)
            logger.writer.flush()
            raise Killed
        return real(state, loader, loss_fn, settings, logger, epoch)

    monkeypatch.setattr(engine, "train_one_epoch", die_late)
    with pytest.raises(Killed):
        run_train(tmp_path, [*QUICK, "trainer.epochs=3"])
    monkeypatch.undo()
    run_dir, _ = run_train(tmp_path, ["resume=true"], run_dir=tmp_path / "run")
    steps = [e.step for e in events(run_dir).Scalars("train/loss")]
    assert steps == sorted(set(steps)) == list(range(1, 13))

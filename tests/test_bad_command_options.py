"""cnnlab-viz / -eval / -predict and resumed training on a checkpoint: a model changed on top of it, a bad
command option and an output that cannot be written are each one line before the work."""
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import ConfigError
from conftest import QUICK, command, compose_cfg, hydra_refused, one_error_line, run_train


@pytest.fixture(scope="module")
def lenet_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lenet")
    run_dir, _ = run_train(tmp, [*QUICK, "model=lenet5"])
    return run_dir / "checkpoints" / "best.pt"


def inspect(tmp_path, ckpt, overrides, command_name="viz"):
    """cnnlab-viz / -eval / -predict in-process on `ckpt` with `overrides`."""
    from cnnlab.commands import evaluate_checkpoint, predict, visualise_checkpoint
    from cnnlab.report import RunInfo

    fn = {"viz": visualise_checkpoint, "eval": evaluate_checkpoint, "predict": predict}[command_name]
    items = [f"ckpt_path={ckpt}", *overrides]
    cfg = compose_cfg(items, config_name="predict" if command_name == "predict" else "eval")
    (tmp_path / "cmd").mkdir(exist_ok=True)
    return fn(cfg, RunInfo(tmp_path / "cmd", overrides=items))


def assert_names_the_misfit(line, ckpt, override):
    """The line names the checkpoint, the parameters that do not fit (read from the file) and the override."""
    assert f"checkpoint {ckpt} does not fit" in line and f"drop {override} " in line, line
    if override.startswith("model.channels"):  # the first conv's 6 filters against the 8 asked for
        shape = list(torch.load(ckpt, weights_only=True)["model"]["features.0.weight"].shape)
        assert f"features.0.weight is {shape} there but {[8, *shape[1:]]} here" in line, line
    else:  # an MLP has none of LeNet-5's parameters
        assert "the model has no features.0.weight" in line, line


@pytest.mark.parametrize("cmd, override", [("cnnlab-train", "model.channels=[8,16]"), ("cnnlab-predict", "model=mlp")])
def test_a_model_changed_on_top_of_a_checkpoint_exits_2_and_leaves_no_folder(lenet_ckpt, tmp_path, cmd, override):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "x.png")
    extra = [f"input={tmp_path / 'x.png'}"] if cmd == "cnnlab-predict" else []
    out = command(cmd, f"ckpt_path={lenet_ckpt}", override, *extra, f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    assert_names_the_misfit(one_error_line(out), lenet_ckpt, override)
    assert not any((tmp_path / "outputs").rglob("*"))


@pytest.mark.parametrize("command_name, override", [("train", "model=mlp"), ("eval", "model.channels=[8,16]"),
                                                    ("viz", "model=mlp"), ("predict", "model.channels=[8,16]")])
def test_a_model_changed_on_top_of_a_checkpoint_names_what_does_not_fit(lenet_ckpt, tmp_path, command_name,
                                                                         override):
    with pytest.raises(ConfigError) as err:
        if command_name == "train":
            run_train(tmp_path, [*QUICK, f"ckpt_path={lenet_ckpt}", override])
        else:
            inspect(tmp_path, lenet_ckpt, [override, *([f"input={tmp_path}"] if command_name == "predict" else [])],
                    command_name)
    assert_names_the_misfit(str(err.value), lenet_ckpt, override)


def test_a_model_setting_that_keeps_the_shapes_continues_from_the_checkpoint(lenet_ckpt, tmp_path):
    run_dir, _ = run_train(tmp_path, [*QUICK, f"ckpt_path={lenet_ckpt}", "model.dropout=0.1", "trainer.epochs=2"])
    assert (run_dir / "results.json").is_file()


# ---------------------------------------------------------------- cnnlab-viz and cnnlab-predict options

@pytest.mark.parametrize("override, message", [
    ("num_images=0", "num_images=0 is not valid: it must be >= 1"),
    ("num_images=-3", "num_images=-3 is not valid: it must be >= 1"),
    ("top=0", "top=0 is not valid: it must be >= 1"),
    ("channels=0", "channels=0 is not valid: it must be >= 1"),
    ("layer_images=-1", "layer_images=-1 is not valid: it must be >= 1"),
])
def test_a_bad_viz_option_names_the_key_before_anything_is_drawn(lenet_ckpt, tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        inspect(tmp_path, lenet_ckpt, ["layer=features.0", override])
    assert str(err.value) == message
    assert not list((tmp_path / "cmd").iterdir())


@pytest.mark.parametrize("override, message", [
    ("batch_size=0", "batch_size=0 is not valid: it must be >= 1"),
    ("device=abc", "device=abc is not usable here"),
])
def test_a_bad_predict_option_names_the_key(lenet_ckpt, tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        inspect(tmp_path, lenet_ckpt, [f"input={tmp_path}", override], "predict")


@pytest.mark.parametrize("config, override", [
    ("eval", "num_images=abc"), ("eval", "num_images=2.5"), ("eval", "top=abc"), ("eval", "channels=[1,2]"),
    ("eval", "layer_images=1.5"), ("eval", "maximise=abc"), ("eval", "split=tset"), ("predict", "batch_size=abc"),
    ("predict", "batch_size=2.5"), ("predict", "overlays=abc"), ("predict", "ovrlays=true"),
])
def test_a_command_option_of_the_wrong_type_is_refused_while_composing(config, override):
    with pytest.raises(Exception) as err:  # Hydra's ConfigCompositionException or OmegaConf's error
        compose_cfg(["ckpt_path=x.pt", override], config)
    key = override.split("=")[0]
    assert f"full_key: {key}" in f"{err.value} {err.value.__cause__}", f"{err.value} {err.value.__cause__}"


@pytest.mark.parametrize("cmd, override, key", [("cnnlab-viz", "channels=0", "channels"),
                                                ("cnnlab-predict", "batch_size=abc", "batch_size")])
def test_a_bad_command_option_exits_with_a_message_naming_it(lenet_ckpt, tmp_path, cmd, override, key):
    extra = [f"input={tmp_path}"] if cmd == "cnnlab-predict" else []
    out = command(cmd, f"ckpt_path={lenet_ckpt}", override, *extra, f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    if override.endswith("abc"):
        hydra_refused(out, f"full_key: {key}")
    else:
        assert one_error_line(out).startswith(f"error: {key}=")
    assert not any((tmp_path / "outputs").rglob("*"))


# ---------------------------------------------------------------- outputs that cannot be written

@pytest.mark.parametrize("cmd, key", [("cnnlab-predict", "output"), ("cnnlab-viz", "out_dir")])
def test_an_output_below_a_file_is_one_line_naming_it(lenet_ckpt, tmp_path, cmd, key):
    # a path below a regular file cannot be made, also by root
    (tmp_path / "afile").write_text("not a folder")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "x.png")
    target = tmp_path / "afile" / "sub" / ("x.csv" if key == "output" else "")
    extra = [f"input={tmp_path / 'x.png'}"] if cmd == "cnnlab-predict" else []
    out = command(cmd, f"ckpt_path={lenet_ckpt}", *extra, f"{key}={target}", f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    assert one_error_line(out) == (f"error: {key}={target} cannot be written: {tmp_path / 'afile'} is a file, not a "
                                   f"folder; choose another path")
    assert not any((tmp_path / "outputs").rglob("*")) and (tmp_path / "afile").read_text() == "not a folder"


def test_an_eval_out_dir_that_is_a_file_is_refused_before_the_checkpoint_is_read(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match=re.escape(f"out_dir={tmp_path / 'afile'} cannot be written: "
                                                    f"{tmp_path / 'afile'} is a file, not a folder")):
        inspect(tmp_path, tmp_path / "no_such.pt", [f"out_dir={tmp_path / 'afile'}"], "eval")


def test_a_read_only_folder_is_refused_before_the_work(lenet_ckpt, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: the kernel's refusal (EACCES) is made here instead
            import tempfile

            from cnnlab.commands import predict_io

            real = tempfile.TemporaryFile

            def refuse(*args, dir=None, **kwargs):
                if dir is not None and Path(dir) == folder:
                    raise PermissionError(13, "Permission denied", str(folder))
                return real(*args, dir=dir, **kwargs)

            monkeypatch.setattr(predict_io.tempfile, "TemporaryFile", refuse)
        with pytest.raises(ConfigError, match=re.escape(f"out_dir={folder / 'viz'} cannot be written: no file can "
                                                        f"be made in {folder}")):
            inspect(tmp_path, lenet_ckpt, [f"out_dir={folder / 'viz'}"])
    finally:
        folder.chmod(0o700)


def test_a_virtual_file_system_is_refused(lenet_ckpt, tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(ConfigError, match=re.escape("output=/proc/x.csv cannot be written: no file can be made in "
                                                    "/proc")):
        inspect(tmp_path, lenet_ckpt, [f"input={tmp_path}", "output=/proc/x.csv"], "predict")


def test_mask_text_and_submission_outputs_are_checked_when_their_writer_starts(tmp_path):
    from omegaconf import OmegaConf

    from cnnlab.commands.predict_masks import MaskWriter
    from cnnlab.commands.predict_text import TextTsvWriter

    (tmp_path / "afile").write_text("")
    below = tmp_path / "afile" / "sub"
    options = {"output": None, "overlays": False, "submission": None, "text": None}
    with pytest.raises(ConfigError, match=re.escape(f"output={below} cannot be written")):
        MaskWriter({"num_classes": 2}, OmegaConf.create({**options, "output": str(below)}), tmp_path)
    with pytest.raises(ConfigError, match=re.escape(f"submission={below}/s.csv cannot be written")):
        MaskWriter({"num_classes": 2, "patch": 16}, OmegaConf.create({**options, "submission": f"{below}/s.csv"}),
                   tmp_path)
    with pytest.raises(ConfigError, match=re.escape(f"output={below}/p.tsv cannot be written")):
        TextTsvWriter({"class_names": ["a", "b"]}, OmegaConf.create({**options, "output": f"{below}/p.tsv"}), tmp_path)
    MaskWriter({"num_classes": 2}, OmegaConf.create({**options, "output": str(tmp_path / "new" / "masks")}), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # checking made nothing

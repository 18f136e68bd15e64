"""Every bad value a user can type ends in one line naming the key at fault (and how to fix it), before training."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cnnlab.checkpoint import RunFolderLock
from cnnlab.data.fakes import write_mnist, write_tree
from cnnlab.errors import ConfigError
from conftest import CONFIG_DIR, command, compose_cfg, one_error_line, run_train

QUICK = ["data=synthetic", "data.num_samples=16", "trainer.epochs=1", "trainer.batch_size=8",
         "trainer.tensorboard=false", "trainer.pictures_every=0"]


@pytest.mark.parametrize("override, message", [
    ("trainer.batch_size=abc", "trainer.batch_size='abc' is not valid: it must be a whole number"),
    ("trainer.eval_batch_size=abc", "trainer.eval_batch_size='abc' is not valid"),
    ("trainer.clip_grad=abc", "trainer.clip_grad='abc' is not valid: it must be a number"),
    ("trainer.clip_grad=-1", "trainer.clip_grad=-1 is not valid: it must be >= 0"),
    ("trainer.log_every=0", "trainer.log_every=0 is not valid: it must be >= 1"),
    ("trainer.num_workers=-1", "trainer.num_workers=-1 is not valid: it must be >= 0"),
    ("trainer.epochs=0", "trainer.epochs=0 is not valid: it must be >= 1"),
    ("trainer.epochs=abc", "trainer.epochs='abc' is not valid"),
    ("seed=abc", "seed='abc' is not valid"),
    ("+trainer.foo=1", "trainer.foo is not a setting of cnnlab.confcheck.TrainerSettings: valid keys are epochs"),
    ("+foo=1", "foo is not a cnnlab setting"),
    ("optim.lr=abc", "optim.lr='abc' is not valid: it must be a number"),
    ("+optim.lrr=0.1", "optim.lrr is not a setting of torch.optim.Adam: valid keys are lr, betas"),
    ("+model.widht=3", "model.widht is not a setting of cnnlab.models.lenet.LeNet5"),
    ("model.dropout=2.0", "model config: dropout probability has to be between 0 and 1"),
    ("sched.name=linear", "sched.name=linear is not known"),
])
def test_bad_value_is_one_line_naming_only_the_key_at_fault(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path, [*QUICK, override])
    text = str(err.value)
    assert message in text and "\n" not in text, text
    if override == "trainer.epochs=abc":
        assert "seed" not in text
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("overrides, message", [
    (["model=linear", "data=digits"], "data=digits offers in_channels=1, which model=linear"),
    (["model=linear", "data=digits"], "use a features data config (e.g. data=digits_features)"),
    (["model=lenet5", "data=digits_features"], "model=lenet5 (cnnlab.models.lenet.LeNet5) does not take"),
])
def test_model_and_data_that_do_not_fit_name_both(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_train(tmp_path, [*overrides, f"paths.data_dir={tmp_path}", "trainer.epochs=1"])


def test_one_class_image_folder_is_refused(tmp_path):
    write_tree(tmp_path / "imgs")
    for d in ("dog", "fox"):
        for f in (tmp_path / "imgs" / d).iterdir():
            f.unlink()
        (tmp_path / "imgs" / d).rmdir()
    with pytest.raises(ConfigError, match="needs at least two"):
        run_train(tmp_path, ["experiment=alexnet_imagefolder", f"data.root={tmp_path / 'imgs'}", "model=alexnet_small",
                             "data.image_size=32"])


@pytest.mark.parametrize("garbage", [b"not gzip at all", "truncated"])
def test_broken_mnist_gz_names_the_file(tmp_path, garbage):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if garbage == "truncated" else garbage)
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.gz") as err:
        run_train(tmp_path, ["data=mnist", f"data.root={tmp_path}", "data.val_size=10", "trainer.epochs=1"])
    assert "data.download=true" in str(err.value)


def test_second_run_in_a_busy_or_used_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    lock = RunFolderLock(run_dir)
    with pytest.raises(ConfigError, match="in use by another cnnlab command"):
        run_train(tmp_path, QUICK, run_dir=run_dir)
    lock.release()
    run_train(tmp_path, QUICK, run_dir=run_dir)
    with pytest.raises(ConfigError, match="already holds a run: continue it with resume=true"):
        run_train(tmp_path, QUICK, run_dir=run_dir)


def test_nan_loss_is_one_line_in_console_and_log_and_the_folder_says_it_failed(tmp_path):
    out = command("cnnlab-train", "data=synthetic", "optim=sgd", "optim.lr=1e30", "trainer.log_every=1",
                  "trainer.epochs=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    line = one_error_line(out)
    assert "training loss is" in line and "at step" in line and "lower optim.lr" in line
    assert line in (tmp_path / "run" / "train.log").read_text()
    assert json.loads((tmp_path / "run" / "failed.json").read_text())["error"] == line


def test_a_command_that_fails_before_training_leaves_no_folder(tmp_path):
    out = command("cnnlab-train", "trainer.batch_size=abc", f"paths.output_dir={tmp_path / 'outputs'}", cwd=tmp_path)
    assert "trainer.batch_size" in one_error_line(out)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))


def test_a_broken_type_hint_is_a_traceback_in_cnnlab_code_and_ignored_in_third_party_code():
    from cnnlab.confcheck import _signature

    def ours(x: "NoSuchType") -> None:  # noqa: F821 - the broken forward reference is the point
        pass

    def theirs(x: "NoSuchType") -> None:  # noqa: F821
        pass

    ours.__module__, theirs.__module__ = "cnnlab.models.fake", "somelib.layers"
    with pytest.raises(NameError, match="NoSuchType"):
        _signature(ours)
    params, hints, takes_any = _signature(theirs)
    assert list(params) == ["x"] and hints == {} and takes_any is False


def test_a_refused_command_leaves_the_other_runs_folder_as_it_was(tmp_path):
    # a live run still building its data holds only start-up files: the refused command must not clean them away;
    # a finished run must not be marked failed by the command that was refused its folder
    busy = tmp_path / "busy"
    lock = RunFolderLock(busy)
    (busy / "train.log").write_text("the other run's log\n")
    out = command("cnnlab-train", "data=synthetic", "trainer.epochs=1", f"hydra.run.dir={busy}", cwd=tmp_path)
    assert "in use by another cnnlab command" in one_error_line(out)
    assert (busy / ".cnnlab.lock").is_file() and (busy / "train.log").read_text().startswith("the other run's log")
    lock.release()
    done = tmp_path / "done"
    first = command("cnnlab-train", "data=synthetic", "trainer.epochs=1", f"hydra.run.dir={done}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = command("cnnlab-train", "data=synthetic", "trainer.epochs=1", f"hydra.run.dir={done}", cwd=tmp_path)
    assert "already holds a run" in one_error_line(out)
    assert (done / "results.json").is_file() and not (done / "failed.json").exists()


def test_a_failed_run_resumed_to_its_end_is_listed_as_finished(tmp_path):
    from cnnlab import compare

    run = tmp_path / "run"
    base = ["data=synthetic", "optim=sgd", "trainer.tensorboard=false", f"hydra.run.dir={run}"]
    assert command("cnnlab-train", *base, "trainer.epochs=1", cwd=tmp_path).returncode == 0
    out = command("cnnlab-train", *base, "resume=true", "trainer.epochs=2", "optim.lr=1e30", cwd=tmp_path)
    assert "training loss is" in one_error_line(out) and (run / "failed.json").is_file()
    out = command("cnnlab-train", *base, "resume=true", "trainer.epochs=2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "results.json").is_file() and not (run / "failed.json").exists()
    (run / "failed.json").write_text(json.dumps({"status": "failed", "error": "a stale record"}))  # older cnnlab
    assert [(r["status"], r["run_dir"]) for r in compare.load_runs([tmp_path])] == [("ok", str(run))]


def _keys_named_in_error_messages() -> dict[str, str]:
    """{`group.key` a ConfigError message in src/cnnlab names: where} (keys of the config groups only)."""
    import ast
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "cnnlab"
    key = re.compile(r"(?<![\w.])((?:data|model|trainer|loss|optim|sched)(?:\.[a-z_][a-z_0-9]*)+)(?![\w(])")
    found = {}
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith(("Error", "Refused")):
                text = " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
                                and isinstance(n.value, str))
                found.update({k: f"{path.name}:{node.lineno}" for k in key.findall(text)})
    return found


def test_every_key_an_error_message_names_exists_in_a_config_of_its_group():
    # a message that says `data.crop` where the config has `data.augment.crop` sends the user to a key Hydra refuses
    from omegaconf import OmegaConf

    from cnnlab.cli import CONFIG_DIR

    named = _keys_named_in_error_messages()
    assert "data.augment.crop" in named and "trainer.batch_size" in named  # the search sees the messages
    configs = {group: [compose_cfg([f"{group}={p.stem}"]) for p in sorted(Path(CONFIG_DIR, group).glob("*.yaml"))]
               for group in ("data", "model", "trainer", "loss", "optim", "sched")}
    gone = object()
    missing = {k: where for k, where in named.items() if k != "model.num_classes"  # "remove it": only users add it
               and all(OmegaConf.select(c, k, default=gone, throw_on_resolution_failure=False) is gone
                      for c in configs[k.split(".")[0]])}
    assert not missing, missing


# ---------------------------------------------------------------- optimizer values

BAD_OPTIM = {"lr": ("-1", "> 0"), "weight_decay": ("-1", ">= 0"), "momentum": ("-0.5", "in [0, 1)"),
             "betas": ("[2,3]", "in [0, 1)"), "eps": ("0", "> 0"), "rho": ("1.5", "in [0, 1]")}
OPTIM_CASES = [(p.stem, key) for p in sorted((Path(CONFIG_DIR) / "optim").glob("*.yaml"))
               for key, value in yaml.safe_load(p.read_text()).items() if not isinstance(value, (str, bool))]


def test_every_number_of_every_optimizer_config_has_a_bad_value_case():
    assert {p.stem for p in (Path(CONFIG_DIR) / "optim").glob("*.yaml")} == {o for o, _ in OPTIM_CASES}
    assert {key for _, key in OPTIM_CASES} <= set(BAD_OPTIM)  # a new key needs its range (OPTIM_RANGES) and a case


@pytest.mark.parametrize("optim, key", OPTIM_CASES)
def test_an_optimizer_value_out_of_range_names_the_key_and_the_range(tmp_path, optim, key):
    value, valid = BAD_OPTIM[key]
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path, [*QUICK, f"optim={optim}", f"optim.{key}={value}"])
    text = str(err.value)
    assert text.startswith(f"optim.{key}=") and valid in text and "\n" not in text, text
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("override, message", [
    ("+optim.eps=-1e-8", "optim.eps=-1e-08 is not valid: it must be > 0"),
    ("optim.betas=[0.9,1.0]", "optim.betas=[0.9, 1.0] is not valid"),
    ("optim.lr=0", "optim.lr=0 is not valid: it must be > 0"),
])
def test_adam_values_that_torch_would_refuse_or_that_train_nothing(tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_train(tmp_path, [*QUICK, override])


def test_nesterov_without_momentum_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"optim.nesterov=true needs optim.momentum > 0"):
        run_train(tmp_path, [*QUICK, "optim=sgd", "optim.momentum=0"])


def test_another_torch_optimizers_own_check_is_one_line(tmp_path):
    # RMSprop's alpha is not in OPTIM_RANGES: torch's ValueError becomes one line naming the optim group
    with pytest.raises(ConfigError, match=r"optim config: Invalid alpha value: -1.0: check the optim.\* values"):
        run_train(tmp_path, [*QUICK, "optim=sgd", "optim._target_=torch.optim.RMSprop", "~optim.nesterov",
                             "+optim.alpha=-1.0"])


def test_a_bad_optimizer_value_exits_2_with_one_line_and_leaves_no_folder(tmp_path):
    out = command("cnnlab-train", "data=synthetic", "optim.betas=[2,3]", f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    assert one_error_line(out).startswith("error: optim.betas=[2, 3] is not valid: it must be two numbers in [0, 1)")
    assert not any((tmp_path / "outputs").rglob("*"))


# ---------------------------------------------------------------- a checkpoint and a changed model

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
    ("num_images=abc", "num_images='abc' is not valid: it must be a whole number"),
    ("num_images=2.5", "num_images=2.5 is not valid: it must be a whole number"),
    ("top=0", "top=0 is not valid: it must be >= 1"),
    ("top=abc", "top='abc' is not valid: it must be a whole number"),
    ("channels=0", "channels=0 is not valid: it must be >= 1"),
    ("channels=[1,2]", "channels=[1, 2] is not valid: it must be a whole number"),
    ("layer_images=-1", "layer_images=-1 is not valid: it must be >= 1"),
    ("layer_images=1.5", "layer_images=1.5 is not valid: it must be a whole number"),
    ("maximise=abc", "maximise='abc' is not valid: it must be true or false"),
])
def test_a_bad_viz_option_names_the_key_before_anything_is_drawn(lenet_ckpt, tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        inspect(tmp_path, lenet_ckpt, ["layer=features.0", override])
    assert str(err.value) == message
    assert not list((tmp_path / "cmd").iterdir())


@pytest.mark.parametrize("override, message", [
    ("batch_size=abc", "batch_size='abc' is not valid: it must be a whole number"),
    ("batch_size=0", "batch_size=0 is not valid: it must be >= 1"),
    ("batch_size=2.5", "batch_size=2.5 is not valid: it must be a whole number"),
    ("overlays=abc", "overlays='abc' is not valid: it must be true or false"),
    ("device=abc", "device=abc is not usable here"),
])
def test_a_bad_predict_option_names_the_key(lenet_ckpt, tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        inspect(tmp_path, lenet_ckpt, [f"input={tmp_path}", override], "predict")


@pytest.mark.parametrize("cmd, override, key", [("cnnlab-viz", "channels=0", "channels"),
                                                ("cnnlab-predict", "batch_size=abc", "batch_size")])
def test_a_bad_command_option_exits_2_with_one_line(lenet_ckpt, tmp_path, cmd, override, key):
    extra = [f"input={tmp_path}"] if cmd == "cnnlab-predict" else []
    out = command(cmd, f"ckpt_path={lenet_ckpt}", override, *extra, f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
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


def test_a_read_only_folder_is_refused_before_the_work(lenet_ckpt, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
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

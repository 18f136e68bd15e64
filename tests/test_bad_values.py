"""Every bad value a user can type ends in one line naming the key at fault (and how to fix it), before training."""
import json
from pathlib import Path

import pytest

from cnnlab.checkpoint import RunFolderLock
from cnnlab.errors import ConfigError
from conftest import QUICK, command, compose_cfg, one_error_line, run_train
from fakes import write_mnist, write_tree


@pytest.mark.parametrize("override, key", [
    ("trainer.batch_size=abc", "trainer.batch_size"), ("trainer.eval_batch_size=abc", "trainer.eval_batch_size"),
    ("trainer.clip_grad=abc", "trainer.clip_grad"), ("trainer.epochs=abc", "trainer.epochs"), ("seed=abc", "seed"),
    ("trainer.amp=fp32", "trainer.amp"), ("trainer.foo=1", "trainer.foo"), ("foo=1", "foo"),
])
def test_a_wrong_type_or_unknown_key_is_refused_while_composing_naming_the_key(override, key):
    with pytest.raises(Exception) as err:  # Hydra's ConfigCompositionException or OmegaConf's error
        compose_cfg([override])
    text = f"{err.value} {getattr(err.value, '__cause__', '')}"
    assert f"full_key: {key}" in text or f"'{key}'" in text, text


@pytest.mark.parametrize("override, message", [
    ("trainer.clip_grad=-1", "trainer.clip_grad=-1.0 is not valid: it must be >= 0"),
    ("trainer.log_every=0", "trainer.log_every=0 is not valid: it must be >= 1"),
    ("trainer.num_workers=-1", "trainer.num_workers=-1 is not valid: it must be >= 0"),
    ("trainer.epochs=0", "trainer.epochs=0 is not valid: it must be >= 1"),
    ("+trainer.foo=1", "trainer.foo is not a trainer setting: valid keys are epochs, budget_min"),
    ("optim.lr=abc", "optim.lr: Value 'abc' of type 'str' could not be converted to Float (torch.optim.Adam takes"),
    ("+optim.lrr=0.1", "optim.lrr: Key 'lrr' not in 'Adam'|(torch.optim.Adam takes params, lr, betas"),
    ("+model.widht=3", "model.widht: Key 'widht' not in 'LeNet5'|(cnnlab.models.lenet.LeNet5 takes num_classes"),
    ("model.dropout=2.0", "model config: dropout probability has to be between 0 and 1"),
    ("model.channels=[6]", "model.channels=[6], model.hidden=[120, 84]: LeNet-5 takes two of each"),
    ("model.channels=[a,16]", "model.channels[0]: Value 'a' of type 'str' could not be converted to Integer"),
    ("sched.name=linear", "sched.name=linear is not known"),
])
def test_bad_value_is_one_line_naming_only_the_key_at_fault(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path, [*QUICK, override])
    text = str(err.value)  # OmegaConf 2.4 adds "Did you mean ...?" between the parts
    assert all(part in text for part in message.split("|")) and "\n" not in text, text
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_class_weights_of_the_wrong_length_are_one_line_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"loss.weight gives 2 class weight\(s\), and data=synthetic has 10 "
                                          r"classes: give one weight per class \(0, 1, 2"):
        run_train(tmp_path, [*QUICK, "loss=cross_entropy", "loss.weight=[1,2]"])


def test_a_negative_patch_context_is_one_line(tmp_path):
    from fakes import write_roads

    root = write_roads(tmp_path / "roads")
    with pytest.raises(ConfigError, match=r"data.context=-3 is not valid: it must be >= 0"):
        run_train(tmp_path, ["experiment=logreg_patches_roads", f"data.root={root}", "data.cache_dir=null",
                             "data.context=-3", "trainer.epochs=1"])


@pytest.mark.parametrize("overrides, message", [
    (["model=linear", "data=digits"], "data=digits offers in_channels=1, which model=linear"),
    (["model=linear", "data=digits"], "use a features data config (e.g. data=digits_features)"),
    (["model=lenet5", "data=digits_features"], "model=lenet5 (cnnlab.models.lenet.LeNet5) does not take"),
    (["model=unet", "data=digits", "model.base=4", "model.depth=2"], "model=unet outputs a label per pixel (shape "
     "(2, 10, 32, 32)) but data=digits is a classification task with one label per sample: choose a classifier"),
    (["model=mlp", "data=roads_synthetic", "data.num_images=6", "data.size=32", "data.augment.crop=null"],
     "model=mlp outputs one label per sample (shape (1, 2)) but data=roads_synthetic is a segmentation task with a "
     "mask per image: choose a segmenter (model=unet or fcn)"),
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


@pytest.mark.parametrize("override, message", [
    ("trainer.epochs=0", "trainer.epochs=0"),
    ("loss.weight=[1,2]", "loss.weight gives 2 class weight(s)"),  # found after the data is read and tb/ is made
])
def test_a_command_that_fails_before_training_leaves_no_folder(tmp_path, override, message):
    out = command("cnnlab-train", "data=synthetic", "loss=cross_entropy", override,
                  f"paths.output_dir={tmp_path / 'outputs'}", cwd=tmp_path)
    assert message in one_error_line(out)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))


def test_a_broken_type_hint_is_a_traceback_in_cnnlab_code_and_ignored_in_third_party_code():
    from cnnlab.build import signature_schema

    def ours(x: "NoSuchType") -> None:  # noqa: F821 - the broken forward reference is the point
        pass

    def theirs(x: "NoSuchType") -> None:  # noqa: F821
        pass

    ours.__module__, theirs.__module__ = "cnnlab.models.fake", "somelib.layers"
    with pytest.raises(NameError, match="NoSuchType"):
        signature_schema(ours)
    assert list(signature_schema(theirs).__dataclass_fields__) == ["x"]  # its values go unchecked (Any)


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

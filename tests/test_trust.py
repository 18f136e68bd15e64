"""A checkpoint from someone else is as safe to open as a weights file: its saved config may only name the code
cnnlab's own configs name, on every path that reads it (eval, viz, predict, resume, continue)."""

import pytest
import yaml

from cnnlab.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.trust import check_saved_targets, is_safe_target, trusted_targets
from cnnlab.errors import ConfigError
from conftest import QUICK, command, one_error_line, run_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trusted")
    run_dir, _ = run_train(tmp, QUICK)
    return run_dir


def tampered(run_dir, tmp_path, marker, where=("data",)):
    """A copy of the run's last.pt whose saved config would run `touch marker` when instantiated."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    cfg = yaml.safe_load(ckpt["config"])
    node = cfg
    for key in where:
        node = node.setdefault(key, {})
    node.clear()
    node.update({"_target_": "os.system", "_args_": [f"touch {marker}"]})
    ckpt["config"] = yaml.safe_dump(cfg)
    path = tmp_path / "evil" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, path)
    return path


@pytest.mark.parametrize("cmd, extra", [
    ("cnnlab-eval", []), ("cnnlab-viz", []), ("cnnlab-predict", ["input=nothing.png"]), ("cnnlab-train", []),
])
def test_every_command_refuses_a_saved_config_that_names_foreign_code(trained, tmp_path, cmd, extra):
    marker = tmp_path / "pwned"
    ckpt = tampered(trained, tmp_path, marker)
    out = command(cmd, f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'out'}", *extra, cwd=tmp_path)
    line = one_error_line(out)
    assert "data._target_=os.system" in line and "refused" in line
    assert not marker.exists()


def test_resume_in_place_refuses_too_and_nested_targets_are_checked(trained, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tampered(trained, tmp_path, marker, where=("data", "source"))
    out = command("cnnlab-train", "resume=true", f"hydra.run.dir={ckpt.parent.parent}", cwd=tmp_path)
    assert "data.source._target_=os.system" in one_error_line(out)
    assert not marker.exists()


def test_the_command_line_may_name_the_users_own_class(trained, tmp_path):
    """A target given on the command line is the user's choice on their own machine: accepted."""
    ckpt = load_checkpoint(trained / "checkpoints" / "last.pt")
    cfg = yaml.safe_load(ckpt["config"])
    cfg["model"]["_target_"] = "mylab.models.Net"  # e.g. a checkpoint of a run with the user's own model
    ckpt["config"] = yaml.safe_dump(cfg)
    path = save_checkpoint(ckpt, tmp_path / "own.pt")
    with pytest.raises(ConfigError, match="model._target_=mylab.models.Net"):
        run_train(tmp_path / "a", [f"ckpt_path={path}"])
    run_dir, _ = run_train(tmp_path / "b", [f"ckpt_path={path}", "model._target_=cnnlab.models.lenet.LeNet5",
                                            "trainer.epochs=2"])
    assert (run_dir / "results.json").is_file()


def test_allow_list_is_what_the_configs_name():
    names = trusted_targets([])  # cnnlab's own configs, no --config-dir
    assert "cnnlab.models.lenet.LeNet5" in names and "cnnlab.data.mnist.build_mnist" in names
    assert is_safe_target("torch.optim.RMSprop", names)  # numerics only
    for bad in ("os.system", "subprocess.call", "builtins.eval", "cnnlab.checkpoint.atomic_write",
                "torch.optim._private", "torch.load"):
        assert not is_safe_target(bad, names), bad
    with pytest.raises(ConfigError, match=r"optim._target_=torch.load"):
        check_saved_targets({"optim": {"_target_": "torch.load"}}, set(), "checkpoint x", names)
    check_saved_targets({"optim": {"_target_": "torch.load"}}, {"optim"}, "checkpoint x", names)


def test_interpolated_target_is_refused():
    with pytest.raises(ConfigError, match="refused"):
        check_saved_targets({"model": {"_target_": "${oc.env:EVIL}"}}, set(), "checkpoint x", trusted_targets([]))


@pytest.mark.parametrize("cmd, where, extra", [
    ("cnnlab-eval", ("data",), []), ("cnnlab-train", ("loss",), []),
    ("cnnlab-predict", ("model", "in_channels"), ["input=nothing.png"]),
])
def test_a_string_that_decodes_into_foreign_code_is_refused(trained, tmp_path, cmd, where, extra):
    """OmegaConf's own resolvers turn a plain string into a node when the config is used:
    `${oc.decode:'{_target_: os.system, ...}'}` carries no `_target_` key for a check to see. Refused, the command
    never ran."""
    marker = tmp_path / "pwned"
    ckpt = load_checkpoint(trained / "checkpoints" / "last.pt")
    cfg = yaml.safe_load(ckpt["config"])
    node = cfg
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "${oc.decode:'{_target_: os.system, _args_: [touch " + str(marker) + "]}'}"
    ckpt["config"] = yaml.safe_dump(cfg)
    path = save_checkpoint(ckpt, tmp_path / "evil" / "checkpoints" / "last.pt")
    out = command(cmd, f"ckpt_path={path}", f"paths.output_dir={tmp_path / 'out'}", *extra, cwd=tmp_path)
    line = one_error_line(out)
    assert f"interpolation at {'.'.join(where)}" in line and "refused" in line
    assert not marker.exists()

"""What a user sees on the command line: Hydra's messages for bad overrides, one clear line for bad data."""
import subprocess
from pathlib import Path

import pytest

from cnnlab.cli import CONFIG_DIR

from conftest import command, one_error_line


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return command("cnnlab-train", *args, cwd=cwd)


def test_unknown_group_option_is_one_line_listing_the_choices(tmp_path):
    line = one_error_line(cli("model=lenet6", cwd=tmp_path))
    choices = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))  # what exists on disk
    assert line == (f"error: model=lenet6 is not one of the model configs: choose one of {', '.join(choices)} "
                    f"(or write model/lenet6.yaml in a --config-dir)")
    line = one_error_line(cli("-m", "data=digits,digitz", cwd=tmp_path))  # a sweep's values one by one
    assert line.startswith("error: data=digitz is not one of the data configs: choose one of ")
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


def test_an_option_from_a_users_config_dir_is_not_refused(tmp_path):
    (tmp_path / "cfg" / "experiment").mkdir(parents=True)
    (tmp_path / "cfg" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: synthetic\nname: mine\ntrainer:\n  epochs: 1\n")
    out = cli("--config-dir", str(tmp_path / "cfg"), "experiment=mine", "trainer.epochz=1",
              f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert one_error_line(out).startswith("error: trainer.epochz is not a key of trainer: valid keys are epochs")


def test_a_misspelt_key_names_the_valid_keys_of_its_group(tmp_path):
    out = cli("optim.lrr=0.1", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    line = one_error_line(out)
    assert line.startswith("error: optim.lrr is not a key of optim: valid keys are lr, betas, weight_decay")
    assert out.stderr.strip() == line  # Hydra's own message ("Key 'lrr' is not in struct") is not printed too
    out = cli("experiment=lenet5_mnist", "trainer.epochz=3", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    assert "error: trainer.epochz is not a key of trainer: valid keys are epochs" in one_error_line(out)
    out = cli("resum=true", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # a top-level key: the config's keys
    assert one_error_line(out).startswith("error: resum is not a key of cnnlab's train config: valid keys are "
                                          "model, data") and "resume" in out.stderr
    out = cli("trainr.epochs=3", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # the group itself misspelt
    assert one_error_line(out).startswith("error: trainr is not a key of cnnlab's train config: valid keys are ")
    out = cli("-m", "trainer.epochz=1,2", f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)  # a sweep
    assert one_error_line(out).startswith("error: trainer.epochz is not a key of trainer")
    assert not (tmp_path / "out" / "multirun").exists()  # Hydra's sweep folder, made before it refused, is gone
    out = cli("model=unet", "model.bse=3", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # the chosen model's keys
    assert one_error_line(out) == ("error: model.bse is not a key of model: valid keys are base, depth, norm, up, "
                                   "dropout, downsample (+model.bse=3 adds a new key)")


def test_hydras_other_messages_still_reach_the_console(tmp_path):
    out = cli("trainer.epochs=${nope}", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # not a missing key
    assert out.returncode != 0 and "nope" in out.stderr
    out = cli("--cfg", "job", "data=synthetic", cwd=tmp_path)
    assert out.returncode == 0 and "synthetic" in out.stdout


@pytest.mark.parametrize("name", ["../..", "..", "runs/a", "ok,../x"])
def test_a_run_name_that_is_not_a_plain_folder_name_is_refused_before_anything_is_written(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    line = one_error_line(cli(f"name={name}", f"paths.output_dir={work / 'outputs'}", "data=synthetic", cwd=work))
    assert line.startswith(f"error: name={name} is not a plain folder name") and "name=my_run" in line
    assert list(tmp_path.rglob("*")) == [work]  # no run folder, inside paths.output_dir or out of it


def test_a_run_name_set_in_an_experiment_config_is_checked_too(tmp_path):
    """The name= check once read the command line only: an experiment's `name: ../escaped` put the run folder
    outside paths.output_dir."""
    (tmp_path / "cfg" / "experiment").mkdir(parents=True)
    (tmp_path / "cfg" / "experiment" / "escape.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: synthetic\nname: ../escaped\n")
    work = tmp_path / "work"
    work.mkdir()
    line = one_error_line(cli("--config-dir", str(tmp_path / "cfg"), "experiment=escape",
                              f"paths.output_dir={work / 'outputs'}", cwd=work))
    assert line.startswith("error: name=../escaped is not a plain folder name")
    assert list(work.rglob("*")) == [] and not (tmp_path / "escaped").exists()


def test_options_from_a_search_path_or_another_config_path_are_not_refused(tmp_path):
    """The group options of hydra.searchpath= or --config-path are Hydra's to find: model=mine there was refused as
    'not one of the model configs' before Hydra ran (--config-path), or that line stood in for Hydra's message about
    another key (hydra.searchpath=)."""
    import shutil

    primary = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, primary)
    shutil.copy(primary / "model" / "mlp.yaml", primary / "model" / "mine.yaml")
    out = cli("--cfg", "job", "--config-path", str(primary), "model=mine", cwd=tmp_path)
    assert out.returncode == 0 and "cnnlab.models.mlp.MLP" in out.stdout, out.stderr[-2000:]
    (tmp_path / "sp" / "experiment").mkdir(parents=True)
    (tmp_path / "sp" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: mlp\nname: mine\n")
    out = cli(f"hydra.searchpath=[file://{tmp_path / 'sp'}]", "experiment=mine", "trainer.epochz=1",
              f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert out.returncode != 0 and "not one of the experiment configs" not in out.stderr
    assert "epochz" in out.stderr  # Hydra's message names the key that is wrong


def test_a_refused_sweep_leaves_a_folder_that_was_there_before(tmp_path):
    """Only the sweep folder that Hydra made for the refused multirun goes: hydra.sweep.dir=<a folder the user
    made> (or `.`, the working folder) was removed with it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    out = cli("-m", "hydra.sweep.dir=.", "trainer.epochz=1,2", cwd=mine)
    assert one_error_line(out).startswith("error: trainer.epochz is not a key of trainer")
    assert mine.is_dir()
    out = cli("-m", f"hydra.sweep.dir={tmp_path / 'new'}", "trainer.epochz=1,2", cwd=tmp_path)
    assert one_error_line(out).startswith("error: trainer.epochz is not a key of trainer")
    assert not (tmp_path / "new").exists()  # made by this command: removed


def test_checkpoint_choices_go_next_to_the_overrides_and_leave_a_search_and_chosen_groups_alone(monkeypatch):
    """A command on a checkpoint gets the checkpoint's run's group choices (cmdline.add_checkpoint_choices): not its
    hparams_search (choosing it again starts the Optuna search: cnnlab-eval on a trial's checkpoint ran 12 trials),
    not its experiment when the command line chooses a group (the experiment's optim.lr went into optim=sgd), and
    before a trailing option (after `--cfg job` or `--config-dir d` argparse refused them: 'unrecognized
    arguments')."""
    from cnnlab import cmdline

    choices = {"hparams_search": "lenet5_digits", "experiment": "mlp_digits", "model": "mlp", "data": "digits",
               "optim": "adam"}
    monkeypatch.setattr(cmdline, "checkpoint_run_info", lambda name: {"choices": choices})
    monkeypatch.setattr("sys.argv", ["cnnlab-eval", "ckpt_path=x.pt", "split=val", "--cfg", "job"])
    cmdline.add_checkpoint_choices("eval")
    assert __import__("sys").argv == ["cnnlab-eval", "ckpt_path=x.pt", "split=val", "experiment=mlp_digits",
                                      "model=mlp", "data=digits", "optim=adam", "--cfg", "job"]
    monkeypatch.setattr("sys.argv", ["cnnlab-train", "-cd", "a=b", "ckpt_path=x.pt", "optim=sgd", "--config-dir",
                                     "d=e"])
    cmdline.add_checkpoint_choices("train")
    assert __import__("sys").argv == ["cnnlab-train", "-cd", "a=b", "ckpt_path=x.pt", "optim=sgd", "model=mlp",
                                      "data=digits", "--config-dir", "d=e"]


def test_a_search_without_m_on_a_checkpoint_gets_no_checkpoint_choices(monkeypatch):
    """hparams_search=<name> is a multirun without -m: the checkpoint's choices added to it were in every job's
    folder name and in the summary table (0_data=digits,loss=auto,...,trainer=default)."""
    from cnnlab import cmdline

    monkeypatch.setattr(cmdline, "checkpoint_run_info", lambda name: {"name": "mine", "choices": {"model": "mlp"}})
    argv = ["cnnlab-train", "hparams_search=lenet5_digits", "ckpt_path=x.pt"]
    monkeypatch.setattr("sys.argv", list(argv))
    cmdline.add_checkpoint_choices("train")
    assert __import__("sys").argv == argv and cmdline.continued_name() is None
    monkeypatch.setattr("sys.argv", ["cnnlab-train", "hparams_search=null", "ckpt_path=x.pt"])
    cmdline.add_checkpoint_choices("train")
    assert __import__("sys").argv[-1] == "model=mlp" and cmdline.continued_name() == "mine"


def test_a_users_primary_config_keys_are_not_called_misspelt(tmp_path):
    """With --config-name (-cn) the keys are that config's: a key it adds (extra=2) was named as the misspelt one,
    'not a key of cnnlab's train config', instead of the key Hydra refused."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "mine.yaml").write_text("defaults:\n  - train\n  - _self_\nextra: 1\n")
    out = cli("-cd", str(tmp_path / "cfg"), "-cn", "mine", "extra=2", "trainer.epochz=1",
              f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert out.returncode != 0 and "extra is not a key" not in out.stderr and "epochz" in out.stderr

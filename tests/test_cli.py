"""What a user sees on the command line: Hydra's messages for bad overrides, one clear line for bad data."""
import subprocess
from pathlib import Path

import pytest

from cnnlab.cli import CONFIG_DIR

from conftest import command, hydra_refused


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return command("cnnlab-train", *args, cwd=cwd)


def test_an_unknown_group_option_is_hydras_message_listing_the_choices(tmp_path):
    choices = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))  # what exists on disk
    hydra_refused(cli("model=lenet6", cwd=tmp_path), "Could not find 'model/lenet6'", *choices)
    hydra_refused(cli("-m", "data=digits,digitz", f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path),
                  "Could not find 'data/digitz'")  # a sweep's values, one by one
    assert not [p for p in tmp_path.glob("out/multirun/*/*/*") if p.is_dir()]  # no job ran


def test_an_option_from_a_users_config_dir_is_not_refused(tmp_path):
    (tmp_path / "cfg" / "experiment").mkdir(parents=True)
    (tmp_path / "cfg" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: synthetic\nname: mine\ntrainer:\n  epochs: 1\n")
    out = cli("--config-dir", str(tmp_path / "cfg"), "experiment=mine", "trainer.epochz=1",
              f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    hydra_refused(out, "trainer.epochz")  # the experiment was found; the misspelt key is what Hydra names


def test_a_misspelt_key_is_refused_while_the_config_is_composed_naming_the_key(tmp_path):
    for args, named in ((["optim.lrr=0.1"], "optim.lrr"), (["experiment=lenet5_mnist", "trainer.epochz=3"],
                        "trainer.epochz"), (["resum=true"], "resum"), (["trainr.epochs=3"], "trainr"),
                        (["model=unet", "model.bse=3"], "model.bse"), (["--cfg", "job", "trainer.epochz=3"],
                        "trainer.epochz")):
        hydra_refused(cli(*args, f"paths.output_dir={tmp_path}", cwd=tmp_path), named)
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made
    out = cli("-m", "trainer.epochz=1,2", f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)  # a sweep
    hydra_refused(out, "trainer.epochz")
    assert not [p for p in tmp_path.glob("out/multirun/*/*/*") if p.is_dir()]  # no job folder


def test_hydras_other_messages_still_reach_the_console(tmp_path):
    out = cli("trainer.epochs=${nope}", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # not a missing key
    assert out.returncode != 0 and "nope" in out.stderr
    out = cli("--cfg", "job", "data=synthetic", cwd=tmp_path)
    assert out.returncode == 0 and "synthetic" in out.stdout


@pytest.mark.parametrize("name, folder", [("../..", ".._.."), ("..", "_"), ("runs/a", "runs_a"),
                                          ("ok,../x", "ok,.._x"), ("", "_")])
def test_a_run_name_is_one_folder_inside_the_output_folder(name, folder):
    from cnnlab.rundir import folder_name

    assert folder_name(name) == folder


def test_a_run_name_set_in_an_experiment_config_stays_inside_the_output_folder(tmp_path):
    """An experiment's `name: ../escaped` once put the run folder outside paths.output_dir."""
    (tmp_path / "cfg" / "experiment").mkdir(parents=True)
    (tmp_path / "cfg" / "experiment" / "escape.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: synthetic\nname: ../escaped\n")
    work = tmp_path / "work"
    work.mkdir()
    out = cli("--config-dir", str(tmp_path / "cfg"), "experiment=escape", "trainer.epochs=1",
              f"paths.output_dir={work / 'outputs'}", cwd=work)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [p.name for p in (work / "outputs").iterdir()] == [".._escaped"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg", "work"]


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
    """hydra.sweep.dir=<a folder the user made> (or `.`, the working folder) was once removed with a refused sweep."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    hydra_refused(cli("-m", "hydra.sweep.dir=.", "trainer.epochz=1,2", cwd=mine), "trainer.epochz")
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_users_primary_config_may_add_keys_and_its_trainer_stays_typed(tmp_path):
    """With --config-name (-cn) a config of the user's own adds keys by leaving out the top-level schema; the trainer
    group keeps its own schema (trainer/schema), so its misspelt keys are still refused while composing."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "mine.yaml").write_text("defaults:\n  - train\n  - override schema: null\n  - _self_\n"
                                                "extra: 1\n")
    out = cli("--cfg", "job", "-cd", str(tmp_path / "cfg"), "-cn", "mine", "extra=2", cwd=tmp_path)
    assert out.returncode == 0 and "extra: 2" in out.stdout, out.stderr[-2000:]
    hydra_refused(cli("--cfg", "job", "-cd", str(tmp_path / "cfg"), "-cn", "mine", "trainer.epochz=1", cwd=tmp_path),
                  "trainer.epochz", "TrainerConfig")
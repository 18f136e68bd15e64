"""What a user sees on the command line: Hydra's messages for bad overrides, one clear line for bad data."""
import subprocess

import pytest

from conftest import command, one_error_line


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return command("cnnlab-train", *args, cwd=cwd)


def test_unknown_group_option_lists_the_choices(tmp_path):
    out = cli("model=lenet6", cwd=tmp_path)
    assert out.returncode != 0
    assert "Could not find 'model/lenet6'" in out.stderr
    assert "lenet5" in out.stderr and "lenet5_classic" in out.stderr  # Hydra lists what exists


def test_unknown_key_is_rejected_by_name(tmp_path):
    out = cli("trainer.epochz=3", cwd=tmp_path)
    assert out.returncode != 0 and "epochz" in out.stderr


@pytest.mark.parametrize("data", ["mnist", "fashion_mnist"])
def test_missing_data_folder_is_one_line_with_the_fix(tmp_path, data):
    out = cli(f"data={data}", f"data.root={tmp_path / 'nowhere'}", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    line = one_error_line(out)
    assert "data.download=true" in line and "train-images-idx3-ubyte" in line


def test_requesting_cuda_without_a_gpu_is_explained(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = cli("trainer.device=cuda", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2 and "trainer.device=auto" in out.stderr


def test_a_misspelt_key_names_the_valid_keys_of_its_group(tmp_path):
    out = cli("optim.lrr=0.1", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2
    line = [x for x in out.stderr.splitlines() if x.startswith("error:")][-1]
    assert line.startswith("error: optim.lrr is not a key of optim: valid keys are lr, betas, weight_decay")
    out = cli("experiment=lenet5_mnist", "trainer.epochz=3", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    assert "error: trainer.epochz is not a key of trainer: valid keys are epochs" in out.stderr
    out = cli("resum=true", f"paths.output_dir={tmp_path}", cwd=tmp_path)  # a top-level key: the config's keys
    assert out.returncode == 2 and "error: resum is not a key of cnnlab's train config: valid keys are model, " \
        "data" in out.stderr and "resume" in out.stderr.splitlines()[-1]


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

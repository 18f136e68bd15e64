"""A value torch.optim refuses is its own message in one line naming the optim group, before training."""
import re
from pathlib import Path

import pytest
import yaml

from cnnlab.errors import ConfigError
from conftest import CONFIG_DIR, QUICK, command, one_error_line, run_train

BAD_OPTIM = {"lr": "-1", "weight_decay": "-1", "momentum": "-0.5", "betas": "[2,3]", "eps": "-1", "rho": "1.5"}
OPTIM_CASES = [(p.stem, key) for p in sorted((Path(CONFIG_DIR) / "optim").glob("*.yaml"))
               for key, value in yaml.safe_load(p.read_text()).items()
               if not isinstance(value, (str, bool)) and key != "backbone_lr_mult"]  # cnnlab's own key: below


def test_every_number_of_every_optimizer_config_has_a_bad_value_case():
    assert {p.stem for p in (Path(CONFIG_DIR) / "optim").glob("*.yaml")} == {o for o, _ in OPTIM_CASES}
    assert {key for _, key in OPTIM_CASES} <= set(BAD_OPTIM)  # a new key needs a value torch refuses, here


@pytest.mark.parametrize("optim, key", OPTIM_CASES)
def test_an_optimizer_value_out_of_range_is_torchs_message_in_one_line(tmp_path, optim, key):
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path, [*QUICK, f"optim={optim}", f"optim.{key}={BAD_OPTIM[key]}"])
    text = str(err.value)  # torch.optim's own check, e.g. "Invalid beta parameter at index 0: 2.0"
    assert text.startswith("optim config: Invalid ") and text.endswith("check the optim.* values"), text
    assert "\n" not in text and f": {BAD_OPTIM[key].strip('[]').split(',')[0]}" in text, text  # the value
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("override, message", [
    ("+optim.eps=-1e-8", "Invalid epsilon value: -1e-08"),
    ("optim.betas=[0.9,1.0]", "Invalid beta parameter at index 1: 1.0"),
    ("optim.lr=abc", "optim.lr: Value 'abc' of type 'str' could not be converted to Float"),
])
def test_adam_values_that_torch_would_refuse(tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_train(tmp_path, [*QUICK, override])


@pytest.mark.parametrize("optim", sorted(p.stem for p in (Path(CONFIG_DIR) / "optim").glob("*.yaml")))
def test_a_negative_backbone_learning_rate_factor_is_one_line(tmp_path, optim):
    with pytest.raises(ConfigError, match=re.escape("optim.backbone_lr_mult=-1 is not valid: give a factor >= 0")):
        run_train(tmp_path, [*QUICK, f"optim={optim}", "optim.backbone_lr_mult=-1"])


def test_nesterov_without_momentum_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"optim config: Nesterov momentum requires a momentum"):
        run_train(tmp_path, [*QUICK, "optim=sgd", "optim.momentum=0"])


def test_another_torch_optimizers_own_check_is_one_line(tmp_path):
    # an optimizer no config of cnnlab's names: torch's ValueError is one line naming the optim group too
    with pytest.raises(ConfigError, match=r"optim config: Invalid alpha value: -1.0: check the optim.\* values"):
        run_train(tmp_path, [*QUICK, "optim=sgd", "optim._target_=torch.optim.RMSprop", "~optim.nesterov",
                             "+optim.alpha=-1.0"])


def test_a_bad_optimizer_value_exits_2_with_one_line_and_leaves_no_folder(tmp_path):
    out = command("cnnlab-train", "data=synthetic", "optim.betas=[2,3]", f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    assert one_error_line(out).startswith("error: optim config: Invalid beta parameter at index 0: 2")
    assert not any((tmp_path / "outputs").rglob("*"))

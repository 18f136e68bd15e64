"""Every number of every optimizer config has a range: a value outside it is one line naming the key and the
range, before anything is built."""
import re
from pathlib import Path

import pytest
import yaml

from cnnlab.errors import ConfigError
from conftest import CONFIG_DIR, QUICK, command, one_error_line, run_train

BAD_OPTIM = {"lr": ("-1", "> 0"), "weight_decay": ("-1", ">= 0"), "momentum": ("-0.5", "in [0, 1)"),
             "betas": ("[2,3]", "in [0, 1)"), "eps": ("0", "> 0"), "rho": ("1.5", "in [0, 1]"),
             "backbone_lr_mult": ("-1", ">= 0")}
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

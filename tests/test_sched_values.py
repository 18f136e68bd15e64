"""A schedule setting out of its range is one line naming the key and the range, for every shipped schedule."""
import re
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.errors import ConfigError
from cnnlab.sched import build_scheduler
from conftest import CONFIG_DIR, run_train

BAD = {"warmup_epochs": (-1, ">= 0"), "step_epochs": (0, "a whole number >= 1"), "gamma": (0, "> 0"),
       "min_lr_ratio": (1.5, "in [0, 1]"), "pct_start": (1.0, "in (0, 1)"), "div_factor": (0, "> 0"),
       "final_div_factor": (-1, "> 0")}
CASES = [(p.stem, key) for p in sorted((Path(CONFIG_DIR) / "sched").glob("*.yaml"))
         for key, value in yaml.safe_load(p.read_text()).items() if not isinstance(value, (str, bool))]


def test_every_number_of_every_schedule_config_has_a_bad_value_case():
    assert {key for _, key in CASES} == set(BAD)


@pytest.mark.parametrize("sched, key", CASES)
def test_a_schedule_value_out_of_range_names_the_key_and_the_range(sched, key):
    value, valid = BAD[key]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match=re.escape(f"sched.{key}={value} is not valid: it must be {valid}")):
        build_scheduler(opt, total_steps=10, steps_per_epoch=2, name=sched, **{key: value})


def test_through_the_command_before_any_checkpoint_is_written(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("sched.pct_start=2 is not valid: it must be in (0, 1)")):
        run_train(tmp_path, ["data=synthetic", "data.num_samples=16", "trainer.epochs=1", "sched=onecycle",
                             "sched.pct_start=2", "trainer.tensorboard=false"])
    assert not (tmp_path / "run" / "checkpoints").exists()


def _lrs(name, steps=10, **kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, total_steps=steps, steps_per_epoch=2, name=name, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_values_at_the_edges_of_their_ranges_are_accepted_and_do_what_they_say():
    # no warm-up and a floor of the whole learning rate: cosine stays at lr; gamma 2 doubles it every epoch (2 steps)
    assert _lrs("cosine", warmup_epochs=0, min_lr_ratio=1.0) == pytest.approx([0.1] * 10)
    assert _lrs("step", step_epochs=1, gamma=2.0) == pytest.approx([0.1 * 2 ** (k // 2) for k in range(10)])

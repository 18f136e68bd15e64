"""Loop pieces: the on-device loader, schedules, and the NaN guard."""
import math

import pytest
import torch
from torch import nn

from cnnlab.data.common import TensorLoader, TensorSplit
from cnnlab.engine import LoopSettings, NonFiniteLoss, TrainState, train_one_epoch
from cnnlab.sched import build_scheduler
from cnnlab.tblog import RunLogger


def test_tensor_loader_visits_every_sample_once_per_epoch():
    split = TensorSplit(torch.arange(10.0).view(10, 1), torch.arange(10))
    loader = TensorLoader(split, 3, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([y for _, y in loader])
    assert len(loader) == 4 and sorted(seen.tolist()) == list(range(10))
    assert not torch.equal(seen, torch.arange(10))  # shuffled
    assert all(torch.equal(x.view(-1), y.float()) for x, y in loader)  # pairs stay together
    assert len(TensorLoader(split, 3, drop_last=True)) == 3


def test_cosine_schedule_with_warmup_matches_the_formula():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, total_steps=20, steps_per_epoch=5, name="cosine", warmup_epochs=1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 15)))


def test_step_schedule_and_onecycle_peak():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, total_steps=40, steps_per_epoch=2, name="step", step_epochs=5, gamma=0.1)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5, momentum=0.9)
    sched = build_scheduler(opt, total_steps=100, steps_per_epoch=10, name="onecycle", pct_start=0.3)
    peak = 0.0
    for _ in range(99):
        opt.step()
        sched.step()
        peak = max(peak, opt.param_groups[0]["lr"])
    assert peak == pytest.approx(0.5, rel=1e-3) and opt.param_groups[0]["lr"] < 1e-3


def test_nan_loss_stops_the_run_naming_the_step():
    model = nn.Linear(4, 2)
    x = torch.randn(40, 4)
    x[25] = float("nan")  # batch 7 (of size 4) holds sample 25
    loader = TensorLoader(TensorSplit(x, torch.zeros(40, dtype=torch.long)), 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, opt, build_scheduler(opt, 10, 10), step=100)
    settings = LoopSettings(epochs=1, device=torch.device("cpu"), log_every=3, progress=False)
    with pytest.raises(NonFiniteLoss, match=r"at step 107 \(epoch 1, batch 7\)"):
        train_one_epoch(state, loader, nn.functional.cross_entropy, settings, RunLogger(".", enabled=False), 1)

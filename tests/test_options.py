"""Trainer options a user sets on the command line: each works on CPU, and a bad value fails before training."""
import json

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models.lenet import LeNet5
from cnnlab.build import build_optimizer
from cnnlab.schema import trainer_settings
from conftest import compose_cfg, run_train

QUICK = ["data=synthetic", "data.num_samples=32", "trainer.epochs=1", "trainer.batch_size=8",
         "trainer.tensorboard=false", "trainer.pictures_every=0"]


@pytest.mark.parametrize("options", [
    ["trainer.channels_last=true"], ["trainer.amp=bf16"], ["init=xavier"], ["init=kaiming"],
    ["trainer.clip_grad=0.5"], ["trainer.deterministic=true"], ["optim=sgd", "sched=step"],
    ["optim=adamw", "sched=cosine", "sched.warmup_epochs=0.5"], ["trainer.monitor=val/loss", "trainer.mode=min"],
])
def test_option_trains_on_cpu(tmp_path, options):
    run_dir, _ = run_train(tmp_path, [*QUICK, *options])
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 4


def test_amp_on_cpu_is_ignored_with_a_notice(tmp_path, caplog):
    with caplog.at_level("INFO", logger="cnnlab"):
        run_train(tmp_path, [*QUICK, "trainer.amp=fp16"])
    assert any("trainer.amp=fp16 ignored" in r.message for r in caplog.records)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_autocasts_where_the_cpu_has_bfloat16_units(monkeypatch, caplog, native):
    from cnnlab import build, engine
    monkeypatch.setattr(build, "cpu_has_native_bf16", lambda: native)
    t = trainer_settings(compose_cfg(["trainer.amp=bf16"]).trainer)
    with caplog.at_level("INFO", logger="cnnlab"):
        loop = build.loop_settings(t, torch.device("cpu"), None)
    conv = torch.nn.Conv2d(1, 2, 3)
    with engine._autocast(loop):
        out = conv(torch.randn(1, 1, 5, 5))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    assert loop.amp_dtype == (torch.bfloat16 if native else None)
    assert any(("ignored" in r.message) != native for r in caplog.records if "trainer.amp=bf16" in r.message)



@pytest.mark.parametrize("major, expected", [(7, torch.float16), (8, torch.bfloat16), (9, torch.bfloat16)])
def test_bf16_on_a_gpu_without_bfloat16_units_becomes_fp16(monkeypatch, caplog, major, expected):
    # a V100/T4 (compute capability 7.x) only emulates bfloat16, which torch.cuda.is_bf16_supported() accepts by
    # default: torch's own checks run here on a fake device of that capability, on which a bf16 tensor can be made
    from types import SimpleNamespace

    from cnnlab import build
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(major=major, minor=0))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)  # emulation works
    monkeypatch.setattr(torch.version, "hip", None)
    t = trainer_settings(compose_cfg(["trainer.amp=bf16"]).trainer)
    with caplog.at_level("INFO", logger="cnnlab"):
        loop = build.loop_settings(t, torch.device("cuda", 0), None)
    assert loop.amp_dtype == expected
    assert any("fp16 with a gradient scaler" in r.message for r in caplog.records) == (expected == torch.float16)

def test_the_cpu_bf16_check_reads_the_cpu_flags(monkeypatch, tmp_path):
    from cnnlab import build
    real_path = build.Path
    for flags, expected in [("fpu avx2 avx512f amx_bf16 amx_tile", True), ("fpu avx512_bf16", True),
                            ("fpu avx2 avx512f", False)]:
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(build, "Path", lambda p, info=info: info if p == "/proc/cpuinfo" else real_path(p))
        assert build.cpu_has_native_bf16() is expected


@pytest.mark.parametrize("override, named", [
    ("trainer.amp=fp32", "Invalid value 'fp32', expected one of [bf16, fp16]"),
    ("trainer.mode=Max", "Invalid value 'Max', expected one of [max, min]"),
    ("init=he", "Invalid value 'he', expected one of [default, xavier, kaiming]"),
])
def test_a_value_outside_its_choices_is_refused_while_composing_listing_them(override, named):
    with pytest.raises(Exception) as err:  # Hydra's ConfigCompositionException, from OmegaConf's ValidationError
        compose_cfg([override])
    text = str(err.value.__cause__)
    assert named in text and f"full_key: {override.split('=')[0]}" in text, text


@pytest.mark.parametrize("override, named", [
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.monitor=val/f1", "val/f1 is not reported for classification with 10 classes"),
    ("optimized_metric=val/iou", "optimized_metric=val/iou"), ("trainer.device=gpu", "trainer.device=gpu"),
])
def test_bad_trainer_values_fail_before_training(tmp_path, override, named):
    with pytest.raises(ConfigError, match=named.replace("/", "/")):
        run_train(tmp_path, [*QUICK, override])
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_weight_decay_applies_to_weights_only():
    cfg = compose_cfg(["optim=sgd", "optim.weight_decay=0.01"])
    model = LeNet5()
    decay, no_decay = build_optimizer(cfg.optim, model).param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters() if p.ndim >= 2}
    assert {id(p) for p in no_decay["params"]} == {id(m.bias) for m in model.modules() if hasattr(m, "bias")
                                                   and isinstance(m.bias, torch.nn.Parameter)}


def test_compile_runs_compiled_code(tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    run_train(tmp_path, [*QUICK, "trainer.compile=aot_eager"])  # a backend that needs no C compiler: fast
    assert counters["stats"]["unique_graphs"] > 0
    torch._dynamo.reset()


def test_compile_without_a_compiler_falls_back_with_a_notice(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("cnnlab.commands.training.shutil.which", lambda name: None)
    with caplog.at_level("INFO", logger="cnnlab"):
        run_dir, _ = run_train(tmp_path, [*QUICK, "trainer.compile=true", "trainer.device=cpu"])
    assert any("trainer.compile ignored" in r.message for r in caplog.records)
    assert (run_dir / "results.json").is_file()


def test_clip_grad_bounds_the_gradient_norm():
    from torch import nn

    from cnnlab.engine import LoopSettings, TrainState, _backward_step
    from cnnlab.sched import build_scheduler

    def grad_norm(clip):
        torch.manual_seed(0)
        model = nn.Linear(10, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        state = TrainState(model, opt, build_scheduler(opt, 10, 10))
        loss = (model(torch.randn(8, 10) * 100) ** 2).sum()
        _backward_step(state, loss, LoopSettings(epochs=1, device=torch.device("cpu"), clip_grad=clip))
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()

    assert grad_norm(0.0) > 100 and grad_norm(0.5) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("on", [True, False])
def test_channels_last_gives_nhwc_batches(tmp_path, monkeypatch, on):
    seen = []
    real = LeNet5.forward

    def spy(self, x):
        if self.training:
            seen.append(x.is_contiguous(memory_format=torch.channels_last))
        return real(self, x)

    monkeypatch.setattr(LeNet5, "forward", spy)
    run_train(tmp_path, [*QUICK, "data.channels=3", f"trainer.channels_last={on}"])  # 3 channels: NCHW != NHWC
    assert seen and all(s == on for s in seen)


def test_a_cuda_index_past_the_machines_gpus_says_how_many_there_are(monkeypatch):
    from cnnlab.device import select_device
    from cnnlab.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with two GPUs, as torch reports it
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"^trainer.device=cuda:2 but this machine has 2 CUDA devices \(cuda:0 to "
                                          r"cuda:1\): use trainer.device=cuda:N with N < 2, or auto$"):
        select_device("cuda:2")

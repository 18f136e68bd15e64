"""Pretrained torchvision classifiers through torchvision's weights API (its download patched to a local file),
state-dict files, the backbone's learning rate and its freezing across a resume."""

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import models

from cnnlab.build import build_optimizer
from cnnlab.checkpoint import load_checkpoint
from cnnlab.errors import ConfigError
from cnnlab.models.torchvision_models import TorchvisionClassifier
from conftest import command, one_error_line, sigterm_after_step
import fakes

RESNET = ["model=torchvision_alexnet", "model.arch=resnet18", "model.options=null"]
QUIET = ["trainer.tensorboard=false", "trainer.pictures_every=0", "trainer.batch_size=8"]
RGB = ["data=synthetic", "data.channels=3", "data.num_samples=40", "data.size=32", "data.num_classes=3"]


def published(arch):
    """A state dict of torchvision's `arch` with 1000 classes, as a download would bring (random, fixed seed)."""
    torch.manual_seed(1)
    return models.get_model(arch, weights=None).state_dict()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch.hub's download writes the test's state dicts (by file name of the URL); an empty cache in tmp_path.
    `hub.urls`: the URLs asked for; `hub.offline()` makes any download fail."""
    asked, states = SimpleNamespace(urls=[]), {}
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def download(url, dst, hash_prefix=None, progress=True):
        asked.urls.append(url)
        arch = "resnet18" if "resnet18" in url else "resnet34" if "resnet34" in url else "vgg16_bn"
        torch.save(states.setdefault(arch, published(arch)), dst)

    def offline(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    asked.offline = lambda: monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return asked


def test_weights_api_loads_everything_but_a_new_head(hub):
    model = TorchvisionClassifier("resnet18", num_classes=5, weights="IMAGENET1K_V1")
    assert hub.urls == [models.ResNet18_Weights.IMAGENET1K_V1.url]
    file, got = published("resnet18"), model.net.state_dict()
    assert all(torch.equal(got[k], v) for k, v in file.items() if not k.startswith("fc."))
    assert got["fc.weight"].shape == (5, 512)
    again = TorchvisionClassifier("resnet18", num_classes=5, weights="DEFAULT")  # from the hub cache now
    assert len(hub.urls) == 1 and torch.equal(again.net.conv1.weight, file["conv1.weight"])


def test_bad_weights_names_and_files_say_what_fits(tmp_path, hub):
    with pytest.raises(ConfigError, match="model.weights=IMAGENET22K is not a weights name torchvision has for "
                                          "resnet18: use DEFAULT or one of IMAGENET1K_V1 "):
        TorchvisionClassifier("resnet18", num_classes=5, weights="IMAGENET22K")
    torch.save(published("resnet34"), tmp_path / "r34.pt")
    with pytest.raises(ConfigError, match=r"r34.pt does not fit: it has layer1.2.conv1.weight \[64, 64, 3, 3\], "
                                          r"which this model lacks"):
        TorchvisionClassifier("resnet18", num_classes=5, weights=str(tmp_path / "r34.pt"))
    state = published("resnet18")
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"layer2.0.conv1.weight is \[128, 64, 5, 5\] there but \[128, 64, 3, 3\] "
                                          r"here"):
        TorchvisionClassifier("resnet18", num_classes=5, weights=str(tmp_path / "bad.pt"))


def test_a_pretrained_run_takes_the_weights_normalisation_and_evaluates_offline(tmp_path, hub):
    fakes.write_tree(tmp_path / "imgs")
    data = ["data=imagefolder", f"data.root={tmp_path / 'imgs'}", "data.val_fraction=0.34", "data.image_size=32"]
    run = tmp_path / "run"
    out = command("cnnlab-train", *RESNET, "model.weights=IMAGENET1K_V1", *data, *QUIET, "trainer.epochs=1",
                  f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    state = load_checkpoint(run / "checkpoints" / "best.pt")["data_state"]
    meta = models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert state["mean"] == pytest.approx(meta.mean) and state["std"] == pytest.approx(meta.std)
    hub.offline()
    (tmp_path / "torch_home").rename(tmp_path / "cache_gone")
    again = command("cnnlab-eval", f"ckpt_path={run / 'checkpoints' / 'best.pt'}", f"hydra.run.dir={tmp_path / 'ev'}",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]


def test_backbone_learning_rate_groups(hub):
    model = TorchvisionClassifier("resnet18", num_classes=3)
    cfg = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "weight_decay": 1e-4,
                            "backbone_lr_mult": 0.01})
    groups = build_optimizer(cfg, model).param_groups
    head = {id(model.net.fc.weight), id(model.net.fc.bias)}
    fast = {id(p) for g in groups if g["lr"] == 0.1 for p in g["params"]}
    slow = {id(p) for g in groups if g["lr"] == pytest.approx(0.1 * 0.01) for p in g["params"]}
    assert fast == head and slow == {id(p) for p in model.parameters()} - head
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert {g["weight_decay"] for g in groups if id(g["params"][0]) == id(model.net.fc.bias)} == {0.0}


def test_freezing_the_backbone_is_exact_across_a_resume(tmp_path, monkeypatch):
    args = [*RESNET, *RGB, *QUIET, "sched=none", "trainer.epochs=3", "trainer.freeze_backbone_epochs=1",
            "optim.backbone_lr_mult=0.5"]
    straight = command("cnnlab-train", *args, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    real = sigterm_after_step(monkeypatch, 6)  # 3 steps an epoch (24 training samples): stopped in epoch 2
    stopped = command("cnnlab-train", *args, f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["step"] == 6, stopped.stderr[-2000:]
    monkeypatch.setattr("cnnlab.engine._backward_step", real)
    resumed = command("cnnlab-train", "resume=true", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt")["model"] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # one frozen epoch from a weights file: every backbone parameter is the file's, the head learnt
    torch.save(published("resnet18"), tmp_path / "r18.pt")
    one = command("cnnlab-train", *args, "trainer.epochs=1", f"model.weights={tmp_path / 'r18.pt'}",
                  f"hydra.run.dir={tmp_path / 'c'}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    got, file = load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["model"], published("resnet18")
    params = {n for n, _ in TorchvisionClassifier("resnet18", 3).named_parameters()}
    assert all(torch.equal(got[n], file[n[len("net."):]]) for n in params if not n.startswith("net.fc."))
    assert not torch.equal(got["net.fc.bias"], torch.zeros(3))
    log = (tmp_path / "a" / "train.log").read_text()
    assert "epoch 1: the backbone is frozen" in log and "epoch 2: the backbone is trained from here on" in log


def test_a_model_without_a_backbone_refuses_the_fine_tuning_keys(tmp_path):
    out = command("cnnlab-train", "trainer.freeze_backbone_epochs=2", *QUIET, "data=digits", cwd=tmp_path)
    assert "trainer.freeze_backbone_epochs=2: model LeNet5 has no pretrained part" in one_error_line(out)


def test_a_failed_download_is_one_line_naming_the_ways_out(tmp_path, monkeypatch):
    import urllib.error

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    out = command("cnnlab-train", "experiment=unet_resnet34_roads", "data=roads_synthetic", "data.num_images=10",
                  "data.augment.crop=64",
                  cwd=tmp_path)
    assert ("model.encoder_weights=IMAGENET1K_V1: torchvision's download of https://download.pytorch.org/models/"
            "resnet34-b627a593.pth failed (<urlopen error [Errno -3] Temporary failure in name resolution>): run once "
            "with internet") in one_error_line(out)

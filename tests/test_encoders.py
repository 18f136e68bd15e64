"""U-Net with a torchvision encoder: weights from a state-dict file or torchvision's weights API (download patched),
the summed greyscale stem, and a self-contained checkpoint."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.models.unet import UNet
from conftest import command, one_error_line
from test_pretrained import hub, published  # noqa: F401 (the fixture)

# torchvision's ResNet module names -> the encoder's stages (models/encoders.py)
RESNET_STAGES = {"conv1.": "stages.0.0.", "bn1.": "stages.0.1.", "layer1.": "stages.1.1.", "layer2.": "stages.2.",
                 "layer3.": "stages.3.", "layer4.": "stages.4."}


def _renamed(state):
    return {new + k[len(old):]: v for k, v in state.items() for old, new in RESNET_STAGES.items()
            if k.startswith(old)}


def test_the_encoder_holds_the_files_tensors(tmp_path):
    torch.save(published("resnet18"), tmp_path / "r18.pt")
    model = UNet(num_classes=2, in_channels=3, base=8, encoder="resnet18", encoder_weights=str(tmp_path / "r18.pt"))
    expected, got = _renamed(published("resnet18")), model.encoder.state_dict()
    assert got.keys() == expected.keys() and all(torch.equal(got[k], v) for k, v in expected.items())
    assert model(torch.randn(1, 3, 50, 37)).shape == (1, 2, 50, 37)  # any size in, the same size out


def test_torchvisions_weights_api_and_the_greyscale_stem(hub):  # noqa: F811
    model = UNet(num_classes=2, in_channels=1, base=8, encoder="resnet34", encoder_weights="IMAGENET1K_V1")
    assert len(hub.urls) == 1 and "resnet34" in hub.urls[0]
    rgb = published("resnet34")["conv1.weight"]
    grey = model.encoder.stages[0][0].weight
    assert grey.shape == (64, 1, 7, 7)
    # by hand: a grey image seen as (g, g, g) by the RGB stem gives what the summed stem gives g
    g = torch.rand(1, 1, 20, 20)
    assert torch.allclose(F.conv2d(g, grey, stride=2, padding=3), F.conv2d(g.repeat(1, 3, 1, 1), rgb, stride=2,
                                                                          padding=3), atol=1e-5)
    assert torch.equal(model.encoder.stages[4][0].conv1.weight, published("resnet34")["layer4.0.conv1.weight"])


def test_bad_encoder_options_say_what_fits(tmp_path, hub):  # noqa: F811
    with pytest.raises(ConfigError, match="model.encoder=densenet121 is not a torchvision encoder cnnlab can take: "
                                          "use one of .*resnet18"):
        UNet(2, 3, encoder="densenet121")
    with pytest.raises(ConfigError, match="model.encoder_weights: pretrained weights take 3 \\(RGB\\) or 1 "
                                          "\\(greyscale\\) input channels, the data has 4: drop model.encoder_weights"):
        UNet(2, 4, encoder="resnet18", encoder_weights="DEFAULT")
    torch.save(published("vgg16_bn"), tmp_path / "vgg.pt")
    with pytest.raises(ConfigError, match=r"vgg.pt does not fit: it has no conv1.weight \(\[64, 3, 7, 7\] here\)"):
        UNet(2, 3, encoder="resnet18", encoder_weights=str(tmp_path / "vgg.pt"))
    assert UNet(2, 4, encoder="vgg16_bn")(torch.randn(1, 4, 40, 40)).shape == (1, 2, 40, 40)  # from scratch: any


def test_a_pretrained_unet_run_is_self_contained(tmp_path):
    torch.save(published("resnet18"), tmp_path / "r18.pt")
    data = ["data=mito_synthetic", "data.num_slices=10", "data.height=32", "data.width=32", "data.augment.crop=32"]
    args = ["model=unet", "model.base=4", "model.encoder=resnet18", f"model.encoder_weights={tmp_path / 'r18.pt'}",
            *data, "trainer.epochs=1", "trainer.batch_size=4", "trainer.tensorboard=false", "trainer.pictures_every=0",
            "trainer.monitor=val/f1", "optimized_metric=val/f1", f"hydra.run.dir={tmp_path / 'run'}"]
    out = command("cnnlab-train", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "the pretrained stem conv1.weight summed over its RGB kernels" in log
    (tmp_path / "r18.pt").unlink()  # the checkpoint needs neither the file nor a download
    again = command("cnnlab-eval", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.pt'}",
                    f"hydra.run.dir={tmp_path / 'ev'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    missing = command("cnnlab-train", *args[:3], "model.encoder_weights=nowhere.pt", *data, cwd=tmp_path)
    assert "model.encoder_weights=nowhere.pt: no such file" in one_error_line(missing)


def test_fcn_vgg16_as_published(tmp_path):
    from cnnlab.models.fcn import FCN

    file = published("vgg16")
    torch.save(file, tmp_path / "vgg16.pt")
    model = FCN(num_classes=3, in_channels=3, variant="8s", backbone="vgg16",
                backbone_weights=str(tmp_path / "vgg16.pt")).eval()
    convs = [m for stage in model.stages for m in stage if isinstance(m, torch.nn.Conv2d)]
    theirs = [k[:-len(".weight")] for k in file if k.startswith("features.") and k.endswith(".weight")]
    assert len(convs) == len(theirs) == 13
    assert all(torch.equal(c.weight, file[f"{t}.weight"]) and torch.equal(c.bias, file[f"{t}.bias"])
               for c, t in zip(convs, theirs))
    fc6, fc7 = model.fc[0], model.fc[3]
    assert (fc6.kernel_size, fc6.out_channels, fc7.kernel_size) == ((7, 7), 4096, (1, 1))
    # by hand: fc6 as a convolution, centred on a 7x7 map, is VGG16's first fully connected layer on that map
    pool5 = torch.randn(1, 512, 7, 7)
    dense = F.linear(pool5.flatten(1), file["classifier.0.weight"], file["classifier.0.bias"])
    assert torch.allclose(fc6(pool5)[0, :, 3, 3], dense[0], atol=1e-4)
    assert torch.equal(fc7.weight.flatten(1), file["classifier.3.weight"])
    assert all(not layer.weight.any() for layer in [model.score, *model.skip_scores])  # the paper's zero start
    assert model(torch.randn(1, 3, 40, 56)).shape == (1, 3, 40, 56)
    assert len(model.skip_scores) == 2  # 8s: the pool4 and pool3 scores

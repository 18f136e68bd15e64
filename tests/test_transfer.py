"""init_from=<checkpoint>: another run's matching weights start a new run (another dataset, other classes)."""

import torch
from torch import nn

from cnnlab.checkpoint import load_checkpoint, transfer_weights
from cnnlab.models.unet import UNet
from conftest import command, one_error_line

TINY = ["model=unet", "model.base=4", "model.depth=2", "trainer.epochs=1", "trainer.batch_size=4",
        "trainer.tensorboard=false", "trainer.pictures_every=0", "trainer.monitor=val/f1", "optimized_metric=val/f1"]
MITO = ["data=mito_synthetic", "data.num_slices=10", "data.height=32", "data.width=32", "data.augment.crop=32"]
ROADS = ["data=roads_synthetic", "data.num_images=10", "data.size=32", "data.augment.crop=32"]


def _train(tmp_path, name, *args):
    out = command("cnnlab-train", *TINY, *args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / name / "checkpoints" / "best.pt", out


def test_a_greyscale_run_starts_an_rgb_run_all_but_its_first_conv(tmp_path):
    mito, _ = _train(tmp_path, "mito", *MITO)
    roads, out = _train(tmp_path, "roads", *ROADS, f"init_from={mito}")
    log = out.stdout + out.stderr
    saved = load_checkpoint(mito)["model"]
    assert f"init_from={mito}: loaded {len(saved) - 1} tensors" in log
    assert "skipped 1 of other names or shapes (down.0.0.weight)" in log and "left new 1 (down.0.0.weight)" in log
    assert load_checkpoint(roads)["epoch"] == 1  # a fresh schedule: one epoch of its own, not the other run's + 1
    # the same transfer by hand: every shared tensor is the file's, the RGB stem keeps its own start
    model = UNet(num_classes=2, in_channels=3, base=4, depth=2)
    stem = model.down[0][0].weight.detach().clone()
    transfer_weights(model, mito)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in saved.items() if k != "down.0.0.weight")
    assert torch.equal(got["down.0.0.weight"], stem) and saved["down.0.0.weight"].shape[1] == 1


def test_init_from_refuses_files_that_are_not_cnnlab_checkpoints(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled object
    torch.save(UNet(2, 3, base=4, depth=2).state_dict(), tmp_path / "plain.pt")  # a bare state dict
    torch.save({"model": nn.Linear(3, 2).state_dict()}, tmp_path / "other.pt")  # another model's weights
    expected = {"notes.txt": "is not a PyTorch checkpoint (not a torch.save archive): pass init_from=",
                "module.pt": "holds objects other than tensors and plain data, refused for safety",
                "plain.pt": "is not a cnnlab checkpoint (no 'model' entry)",
                "other.pt": "none of its 2 tensors fits the model configured now (no tensor name is shared): choose "
                            "the same model"}
    for name, message in expected.items():
        out = command("cnnlab-train", *TINY, *ROADS, f"init_from={tmp_path / name}", cwd=tmp_path)
        assert message in one_error_line(out), name

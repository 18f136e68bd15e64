"""cnnlab-predict for segmenters and patch classifiers: a mask per image (any size), TIFF stacks in and out,
overlays, and the roads submission CSV."""
import json

import numpy as np
import torch
from PIL import Image

from cnnlab.checkpoint import load_checkpoint
from conftest import command, one_error_line, run_train


def test_predict_masks_tiff_stacks_overlays_and_the_roads_submission(tmp_path):
    from cnnlab.data.patches import patch_labels

    run_dir, _ = run_train(tmp_path, ["model=unet", "data=roads_synthetic", "data.num_images=12", "data.size=48",
                                      "data.augment.crop=32", "model.base=4", "model.depth=2", "trainer.epochs=2",
                                      "trainer.batch_size=8", "trainer.monitor=val/patch_f1",
                                      "optimized_metric=val/patch_f1", "trainer.pictures_every=0"])
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")["data_state"]
    assert 0.0 < state["threshold"] < 1.0 and state["patch"] == 16  # chosen on validation, stored
    pics = tmp_path / "test_set_images"
    rng = np.random.default_rng(0)
    for n, size in ((3, (64, 48)), (12, (40, 40))):  # any size, the last number of the name is the image id
        (pics / f"test_{n}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(pics / f"test_{n}" / f"test_{n}.png")
    frames = [Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={pics}",
                  f"output={tmp_path / 'masks'}", "overlays=true", f"submission={tmp_path / 'sub.csv'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for n, size in ((3, (64, 48)), (12, (40, 40))):
        mask = np.asarray(Image.open(tmp_path / "masks" / f"test_{n}.png"))
        assert mask.shape == size and set(np.unique(mask)) <= {0, 255}
        assert (tmp_path / "masks" / "overlays" / f"test_{n}.png").is_file()
    rows = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows[0] == "id,prediction" and len(rows) == 1 + 4 * 3 + 2 * 2  # 64x48 -> 4x3 patches, 40x40 -> 2x2
    first = torch.from_numpy(np.asarray(Image.open(tmp_path / "masks" / "test_3.png")) > 0).long()
    want = patch_labels(first[None, :64, :48], 16, "mean", 0.25)[0]  # the 0.25 rule on the written mask
    got = {r.split(",")[0]: int(r.split(",")[1]) for r in rows[1:]}
    assert all(got[f"003_{16 * c}_{16 * r}"] == int(want[r, c]) for r in range(4) for c in range(3))
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}",
                  f"input={tmp_path / 'stack.tif'}", f"output={tmp_path / 'stack_out'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with Image.open(tmp_path / "stack_out" / "stack.tif") as tif:
        assert tif.n_frames == 3 and tif.size == (48, 32)
    same = tmp_path / "same"  # slices of the same name in two folders: each keeps its folder, none is lost
    for sub in ("a", "b"):
        (same / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(same / sub / "slice.png")
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={same}",
                  f"output={tmp_path / 'same_out'}", "overlays=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {str(p.relative_to(tmp_path / "same_out")) for p in (tmp_path / "same_out").rglob("*.png")} == {
        "a/slice.png", "b/slice.png", "overlays/a/slice.png", "overlays/b/slice.png"}
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(same / "a" / "slice.jpg")
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={same}",
                  f"output={tmp_path / 'clash'}", cwd=tmp_path)
    assert "would both be written as a/slice" in one_error_line(out) and not (tmp_path / "clash").exists()
    # nothing the user gave is overwritten: masks into the images' own folder, a stack onto itself
    before = {p: p.read_bytes() for p in [pics / "test_3" / "test_3.png", tmp_path / "stack.tif"]}
    ckpt = f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}"
    line = one_error_line(command("cnnlab-predict", ckpt, f"input={pics / 'test_3'}", f"output={pics / 'test_3'}",
                                  cwd=tmp_path))
    image = pics / "test_3" / "test_3.png"
    assert line.startswith(f"error: output={pics / 'test_3'} would overwrite the input {image}")
    line = one_error_line(command("cnnlab-predict", ckpt, "input=stack.tif", "output=.", cwd=tmp_path))
    assert line.startswith("error: output=. would overwrite the input stack.tif")
    line = one_error_line(command("cnnlab-predict", ckpt, f"input={pics}", f"output={tmp_path / 'm2'}",
                                  f"submission={pics / 'test_3' / 'test_3.png'}", cwd=tmp_path))
    assert "would overwrite the input" in line and not (tmp_path / "m2").exists()
    assert all(p.read_bytes() == data for p, data in before.items())
    # a submission has one row per patch of each image: a TIFF stack's pages are refused, not merged into one
    line = one_error_line(command("cnnlab-predict", ckpt, f"input={tmp_path / 'stack.tif'}",
                                  f"output={tmp_path / 'm3'}", f"submission={tmp_path / 'stack.csv'}", cwd=tmp_path))
    assert "is a multi-page TIFF stack: give the images as PNG/JPEG files" in line
    assert not (tmp_path / "stack.csv").exists()


def test_a_patch_classifier_predicts_masks_and_the_roads_submission(tmp_path):
    # the old pipeline's logistic regression on road-patch features writes masks as a segmenter does: each 16x16
    # patch one label, the pixels past the last whole patch background; checked against the ground truth's patch
    # labels (the fake roads are a bright band at columns 8..15, which the model separates perfectly)
    from fakes import write_roads
    from cnnlab.data.patches import patch_labels

    root = write_roads(tmp_path / "roads")
    run_dir, _ = run_train(tmp_path, ["experiment=logreg_patches_roads", f"data.root={root}", "data.cache_dir=null",
                                      "trainer.epochs=30", "trainer.tensorboard=false", "trainer.pictures_every=0"])
    assert json.loads((run_dir / "results.json").read_text())["test/acc"] == 1.0
    ckpt = run_dir / "checkpoints" / "best.pt"
    images = root / "training" / "images"
    first = np.asarray(Image.open(images / "satImage_001.png"))
    odd = np.zeros((40, 37, 3), np.uint8)  # 2 x 2 whole patches and a remainder of 8 rows and 5 columns
    odd[:32, :32] = first
    Image.fromarray(odd).save(tmp_path / "odd.png")
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={images}", f"output={tmp_path / 'masks'}",
                  f"submission={tmp_path / 'sub.csv'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in sorted(p.name for p in images.iterdir()):
        mask = torch.from_numpy(np.asarray(Image.open(tmp_path / "masks" / name)) // 255)
        truth = torch.from_numpy(np.asarray(Image.open(root / "training" / "groundtruth" / name)) > 127)
        full, any_road = (patch_labels(mask[None], 16, "mean", t)[0] for t in (0.99, 0.0))
        assert torch.equal(full, any_road) and torch.equal(full, patch_labels(truth[None], 16, "mean", 0.25)[0])
    rows = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows[0] == "id,prediction" and {"001_0_0,1", "001_0_16,1", "001_16_0,0", "001_16_16,0"} <= set(rows)
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tmp_path / 'odd.png'}",
                  f"output={tmp_path / 'odd'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    mask = np.asarray(Image.open(tmp_path / "odd" / "odd.png"))
    assert mask.shape == (40, 37) and not mask[32:].any() and not mask[:, 32:].any()
    assert (mask[:32, :16] == 255).all() and not mask[:32, 16:32].any()
    tiny = tmp_path / "tiny"  # an image smaller than a patch: its mask, and no rows in the submission
    tiny.mkdir()
    Image.fromarray(odd[:10, :10]).save(tiny / "test_5.png")
    Image.fromarray(odd[:32, :32]).save(tiny / "test_6.png")
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tiny}", f"output={tmp_path / 'tiny_masks'}",
                  f"submission={tmp_path / 'tiny.csv'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 image(s) smaller than a 16x16 patch have no rows in the submission: test_5.png" in out.stdout
    assert (tmp_path / "tiny_masks" / "test_5.png").is_file()
    assert {r.split("_")[0] for r in (tmp_path / "tiny.csv").read_text().splitlines()[1:]} == {"006"}
    Image.fromarray(odd[:32, :32]).save(tiny / "sat_6.png")  # two inputs with the number 6: refused before any mask
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tiny}",
                                  f"output={tmp_path / 'clash'}", f"submission={tmp_path / 'clash.csv'}", cwd=tmp_path))
    assert "both have the number 6" in line and not (tmp_path / "clash").exists()
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={images}",
                                  f"submission={tmp_path}", cwd=tmp_path))
    assert f"submission={tmp_path} is a folder: give a file, e.g. {tmp_path / 'submission.csv'}" in line
    ckpt_dict = load_checkpoint(ckpt)  # a checkpoint from before patch prediction: one line saying what to do
    del ckpt_dict["data_state"]["features"]
    torch.save(ckpt_dict, tmp_path / "old.pt")
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={tmp_path / 'old.pt'}", f"input={images}",
                                  cwd=tmp_path))
    assert "does not record how its patch features were computed" in line and "train it again" in line


def _logits_for(prob: torch.Tensor) -> torch.Tensor:
    """[1,2,H,W] two-class logits whose softmax foreground probability is `prob` [H,W]."""
    return torch.stack([torch.zeros_like(prob), torch.log(prob / (1 - prob))]).unsqueeze(0)


def test_submission_rows_from_hand_made_masks_follow_the_quarter_rule_and_the_last_number(tmp_path):
    # Without a trained model: MaskWriter gets logits whose masks are known pixel by pixel. The mask is foreground
    # where p > the checkpoint's threshold (0.3 here, not 0.5); a 16x16 patch is road when more than a quarter of
    # it is (65/256: road, 64/256: not, 100/256: road, though not by a half); the image id is the last number of
    # the file name (sat2_test_7 -> 007, not 002); rows go column by column, x = the patch's column in pixels.
    import pytest
    from omegaconf import OmegaConf

    from cnnlab.commands.predict_masks import MaskWriter, image_number
    from cnnlab.errors import ConfigError

    fg = torch.zeros(32, 48, dtype=torch.bool)  # 2 patch rows x 3 patch columns
    for (r, c), n in {(0, 0): 65, (0, 1): 64, (0, 2): 100, (1, 1): 256, (1, 2): 129}.items():  # (1, 0) empty
        fg[16 * r:16 * r + 16, 16 * c:16 * c + 16] = (torch.arange(256) < n).view(16, 16)  # n road pixels
    # patch labels by hand: 65/256 > 0.25 -> 1; 64/256 = 0.25, not more -> 0; 100/256 -> 1; 256 -> 1; 129 -> 1
    prob = torch.where(fg, torch.tensor(0.4), torch.tensor(0.1))
    state = {"num_classes": 2, "patch": 16, "patch_threshold": 0.25, "threshold": 0.3, "in_channels": 3,
             "mean": [0.0] * 3, "std": [1.0] * 3}
    cfg = OmegaConf.create({"output": str(tmp_path / "masks"), "overlays": False,
                            "submission": str(tmp_path / "sub.csv"), "text": None})
    items = [(tmp_path / "sat2_test_7.png", None), (tmp_path / "sat2_test_12.png", None)]
    writer = MaskWriter(state, cfg, tmp_path)
    writer.check(items)
    writer.add(items, torch.tensor([0]), _logits_for(prob))
    writer.add(items, torch.tensor([1]), _logits_for(torch.full((16, 16), 0.4)))  # one patch, all road
    writer.close()
    written = np.asarray(Image.open(tmp_path / "masks" / "sat2_test_7.png"))
    assert np.array_equal(written, fg.numpy().astype(np.uint8) * 255)
    rows = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows == ["id,prediction", "007_0_0,1", "007_0_16,0", "007_16_0,0", "007_16_16,1", "007_32_0,1",
                    "007_32_16,1", "012_0_0,1"]  # images by number (7 before 12), not by name
    assert image_number(tmp_path / "satImage_007.png") == 7 and image_number(tmp_path / "x1y2_0033.tif") == 33
    with pytest.raises(ConfigError, match="no_digits.png has no number in its name"):
        image_number(tmp_path / "no_digits.png")

"""scripts/roads_per_image.py scores each image by the task's patch rule; checked on masks with hand-counted
patches, and end to end from a checkpoint's data state."""

import numpy as np
from conftest import load_script
from PIL import Image

from cnnlab.checkpoint import save_checkpoint

per_image = load_script("roads_per_image")


def _png(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 237).astype(np.uint8)).save(path)  # roads are ~237 in the task's masks


def _write(tmp_path):
    """Two 32x32 images (2x2 patches). a: truth road in patch (0,0); prediction in (0,0) and (0,1): tp 1, fp 1.
    b: truth has 65 road pixels in patch (1,1) (> 25 %: road) and 64 in (0,0) (= 25 %: not road); prediction
    empty: fn 1."""
    ta, pa = np.zeros((32, 32)), np.zeros((32, 32))
    ta[:16, :16] = 1
    pa[:16, :] = 1
    tb = np.zeros((32, 32))
    tb[16:, 16:].flat[:65] = 1
    tb[:16, :16].flat[:64] = 1
    _png(tmp_path / "truth" / "a.png", ta)
    _png(tmp_path / "truth" / "b.png", tb)
    _png(tmp_path / "masks" / "a.png", pa)
    _png(tmp_path / "masks" / "b.png", np.zeros((32, 32)))


def test_patch_counts_follow_the_quarter_rule(tmp_path):
    _write(tmp_path)
    rows = per_image.scores(["a.png", "b.png"], tmp_path / "masks", tmp_path / "truth", 127)
    assert [r[0] for r in rows] == ["a.png", "b.png"]
    assert rows[0][1] == (1, 1, 0) and rows[1][1] == (0, 0, 1)
    assert rows[0][2] == 0.25 and rows[1][2] == 0.25
    assert per_image.f1(*rows[0][1]) == 2 / 3 and per_image.f1(*rows[1][1]) == 0.0


def test_main_reads_the_split_from_the_checkpoint(tmp_path, monkeypatch, capsys):
    _write(tmp_path)
    state = {"task": "segmentation", "patch": 16, "mask_threshold": 127,
             "files": {"train": [], "val": ["a.png", "b.png"], "test": ["a.png"]}}
    save_checkpoint({"model": {}, "data_state": state}, tmp_path / "best.pt")
    monkeypatch.setattr("sys.argv", ["roads_per_image", "--ckpt", str(tmp_path / "best.pt"), "--masks",
                                     str(tmp_path / "masks"), "--truth", str(tmp_path / "truth"), "--drop", "1"])
    per_image.main()
    out = capsys.readouterr().out
    # val pooled: tp 1, fp 1, fn 1 -> F1 2/4; without the worst (b): 2/3; test: a alone, 2/3
    assert "val: pooled patch F1 0.5000 over 2 images" in out
    assert "without the 1 worst: pooled patch F1 0.6667" in out
    assert "test: pooled patch F1 0.6667 over 1 images" in out
    assert out.index("b.png") < out.index("a.png", out.index("val:"))  # worst first


def test_a_missing_checkpoint_is_one_line_naming_the_scripts_own_flag(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setattr("sys.argv", ["roads_per_image", "--ckpt", str(tmp_path / "nope.pt"), "--masks", "m",
                                     "--truth", "t"])
    with pytest.raises(SystemExit) as err:
        per_image.main()
    line = str(err.value)
    assert "\n" not in line and "nope.pt does not exist" in line and "pass --ckpt <run folder>" in line

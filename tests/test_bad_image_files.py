"""Damaged image files a user supplies (training data, prediction inputs): one line naming the file, no traceback;
an error in cnnlab's own code around them keeps its traceback."""
import logging

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from conftest import command, one_error_line
from cnnlab.commands.predict_images import ImageReader
from cnnlab.commands.predict_masks import SegImageReader
from cnnlab.data import imageio
from cnnlab.data.imagefolder import build_imagefolder
from cnnlab.data.imageio import BadImageFile, image_state
from cnnlab.data.mito import build_mito
from cnnlab.data.roads import build_roads
from cnnlab.errors import ConfigError
from fakes import write_mito, write_mito_png, write_roads, write_tiff, write_tree


def cut(path, keep: float = 0.5) -> None:
    """Truncate the file at `path` to a fraction of its bytes, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def noisy_png(path, size=(24, 24)) -> None:
    """A PNG that compresses badly, so that half of its bytes stop in the middle of the pixel data."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and isinstance(exc_info.value, BadImageFile)
    return msg


@pytest.mark.parametrize("broken, partner, reason", [
    ("images/satImage_004.png", "groundtruth/satImage_004.png", "not an image PIL can identify"),  # text file
    ("images/satImage_007.png", "groundtruth/satImage_007.png", "image file is truncated"),
    ("groundtruth/satImage_002.png", "images/satImage_002.png", "image file is truncated"),
])
def test_roads_unreadable_image_or_mask_names_it_and_its_partner(tmp_path, broken, partner, reason):
    write_roads(tmp_path)
    target = tmp_path / "training" / broken
    if "truncated" in reason:
        cut(target)
    else:
        target.write_text("garbage")
    with pytest.raises(ConfigError) as err:
        build_roads(str(tmp_path))
    assert one_line(err) == (f"{target} is not a readable PNG image ({reason}): replace it, or remove it and its "
                             f"{'mask' if 'images' in broken else 'image'} {tmp_path / 'training' / partner}")


@pytest.mark.parametrize("name", ["training.tif", "training_groundtruth.tif", "testing.tif"])
def test_mito_truncated_tiff_stack_names_it(tmp_path, name):
    write_mito(tmp_path)
    cut(tmp_path / name, 0.6)  # PIL writes each page's directory after its pixels: the stack's structure is cut
    with pytest.raises(ConfigError) as err:
        build_mito(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    msg = one_line(err)
    assert msg.startswith(f"{tmp_path / name} is not a readable TIFF image (damaged or truncated: ")
    assert msg.endswith("): replace it with an intact copy (download the stack again)")


def test_mito_damaged_page_names_the_page(tmp_path):
    """Page 3 of 5 replaced by bytes that do not inflate: the page directories are intact, its pixels are not."""
    rng = np.random.default_rng(0)
    write_tiff(tmp_path / "s.tif", list(rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)))
    with Image.open(tmp_path / "s.tif") as im:
        im.seek(3)
        offset, length = im.tag_v2[273][0], im.tag_v2[279][0]  # StripOffsets, StripByteCounts
    data = bytearray((tmp_path / "s.tif").read_bytes())
    data[offset:offset + length] = b"\xff" * length
    (tmp_path / "s.tif").write_bytes(bytes(data))
    from cnnlab.data.segmentation import read_tiff_stack

    assert read_tiff_stack(tmp_path / "s.tif", [0, 1, 2]).shape == (3, 16, 16)  # the other pages still read
    with pytest.raises(ConfigError) as err:
        read_tiff_stack(tmp_path / "s.tif")
    assert one_line(err).startswith(f"{tmp_path / 's.tif'} is not a readable TIFF image (page 3: ")


def test_mito_png_slices_unreadable_slice_names_it(tmp_path):
    write_mito_png(tmp_path, slices=8, testing=True)
    target = tmp_path / "testing/groundtruth/slice_5.png"
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a PNG signature, then nothing a PNG holds
    with pytest.raises(ConfigError) as err:
        build_mito(str(tmp_path))
    msg = one_line(err)
    assert msg.startswith(f"{target} is not a readable PNG image (")
    assert msg.endswith(f"remove it and its image {tmp_path / 'testing/images/slice_5.png'}")


def test_imagefolder_truncated_file_follows_the_on_bad_file_policy(tmp_path, caplog):
    write_tree(tmp_path, corrupt=False)
    noisy_png(tmp_path / "fox" / "cut.png")
    cut(tmp_path / "fox" / "cut.png")
    with pytest.raises(ConfigError) as err:
        build_imagefolder(str(tmp_path), image_size=8, on_bad_file="error")
    assert one_line(err) == (f"{tmp_path / 'fox' / 'cut.png'} is not a readable PNG image (image file is "
                             f"truncated): remove the file or set data.on_bad_file=skip")
    with caplog.at_level(logging.WARNING):
        b = build_imagefolder(str(tmp_path), image_size=8, val_fraction=0.34)
    assert len(b.train) + len(b.val) == 18  # the 18 intact images, not the cut one
    assert f"skipping unreadable image {tmp_path / 'fox' / 'cut.png'} (image file is truncated)" in caplog.text


def _inputs(folder):
    folder.mkdir()
    noisy_png(folder / "good.png", (16, 16))
    noisy_png(folder / "cut.png", (16, 16))
    cut(folder / "cut.png")
    (folder / "text.jpg").write_text("not a picture")
    rng = np.random.default_rng(1)
    write_tiff(folder / "stack.tif", list(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)))
    write_tiff(folder / "cut.tif", list(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)))
    cut(folder / "cut.tif", 0.6)  # the directories of pages 2 and 3 are cut off; page 1 is whole
    return OmegaConf.create({"input": str(folder)})


def test_predict_readers_skip_unreadable_inputs_and_count_them(tmp_path):
    cfg = _inputs(tmp_path / "in")
    seg = SegImageReader({"in_channels": 1, "mean": [0.5], "std": [0.25]}, cfg)
    read = [(x.shape, idx.tolist()) for x, idx in seg.batches(8)]
    names = [(p.name, page) for p, page in seg.items]
    assert [names[i] for _, idx in read for i in idx] == [("good.png", None), ("stack.tif", 0), ("stack.tif", 1),
                                                          ("stack.tif", 2)]
    assert sorted(p.name for p in seg.bad) == ["cut.png", "cut.tif", "text.jpg"]
    state = {**image_state(3, (16, 16), shorter_side=16), "mean": [0.5] * 3, "std": [0.25] * 3}
    cls = ImageReader(state, cfg)
    read = [i for _, idx in cls.batches(8) for i in idx.tolist()]
    assert sorted(cls.items[i].name for i in read) == ["cut.tif", "good.png", "stack.tif"]  # first pages: intact
    assert sorted(p.name for p in cls.bad) == ["cut.png", "text.jpg"]


def test_a_bug_next_to_image_reading_is_not_called_a_bad_file(tmp_path, monkeypatch):
    cfg = _inputs(tmp_path / "in")

    def broken_fit(img, state):
        raise ValueError("a bug in cnnlab")

    monkeypatch.setattr(imageio, "_fit", broken_fit)
    state = {**image_state(3, (16, 16), shorter_side=16), "mean": [0.5] * 3, "std": [0.25] * 3}
    with pytest.raises(ValueError, match="a bug in cnnlab"):
        list(ImageReader(state, cfg).batches(8))


def test_train_on_a_corrupt_road_image_is_one_line_and_leaves_no_folder(tmp_path):
    write_roads(tmp_path / "roads", numbers=tuple(range(1, 11)))
    (tmp_path / "roads/training/images/satImage_003.png").write_text("garbage")
    out = command("cnnlab-train", "experiment=unet_roads", f"data.root={tmp_path / 'roads'}", "model.base=8",
                  "trainer.epochs=1", "trainer.budget_min=null", f"paths.output_dir={tmp_path / 'outputs'}",
                  cwd=tmp_path)
    line = one_error_line(out)
    assert line.startswith(f"error: {tmp_path / 'roads/training/images/satImage_003.png'} is not a readable PNG "
                           f"image (not an image PIL can identify): replace it")
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))

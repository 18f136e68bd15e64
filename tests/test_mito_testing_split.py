"""Which test split the mitochondria builders use: the testing stack only as a labelled pair, never half of one
silently; the log says which it was."""
import logging

import numpy as np
import pytest
import torch

from cnnlab.data.featureset import build_mito_patches
from cnnlab.data.mito import build_mito
from fakes import write_mito, write_mito_png, write_tiff


def test_testing_tif_without_its_ground_truth_is_ignored_with_a_warning(tmp_path, caplog):
    images, _ = write_mito(tmp_path, slices=10, testing=False)
    write_tiff(tmp_path / "testing.tif", np.full((4, 32, 48), 7, np.uint8))  # no testing_groundtruth.tif
    with caplog.at_level(logging.INFO):
        b = build_mito(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert torch.equal(b.test.inputs[:, 0], torch.from_numpy(images[8:10]))  # the last block, not testing.tif
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{tmp_path / 'testing.tif'} ignored: {tmp_path / 'testing_groundtruth.tif'} is missing (a "
                        f"testing split needs both); the test split is the last block of training slices"]
    assert "mito test split: the last 2 of the 10 training slices kept (no testing stack" in caplog.text


def test_the_log_names_the_testing_stack_when_it_is_used(tmp_path, caplog):
    write_mito(tmp_path, slices=10, testing=True)
    with caplog.at_level(logging.INFO):
        b = build_mito(str(tmp_path), val_fraction=0.2, slice_step=2)
    assert len(b.test) == 5
    assert f"mito test split: {tmp_path / 'testing.tif'} + testing_groundtruth.tif (5 slices, data.slice_step=2)" \
        in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_lone_ground_truth_and_png_testing_images_are_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "tiff").mkdir()
    write_mito(tmp_path / "tiff", slices=10, testing=True)
    (tmp_path / "tiff" / "testing.tif").unlink()
    with caplog.at_level(logging.WARNING):
        build_mito_patches(str(tmp_path / "tiff"), slice_step=1, cache_dir=None)
    assert f"{tmp_path / 'tiff' / 'testing_groundtruth.tif'} ignored: {tmp_path / 'tiff' / 'testing.tif'} is " \
           f"missing" in caplog.text
    caplog.clear()
    images, _ = write_mito_png(tmp_path / "png", slices=12, testing=True)
    for f in (tmp_path / "png" / "testing" / "groundtruth").iterdir():
        f.unlink()
    (tmp_path / "png" / "testing" / "groundtruth").rmdir()
    with caplog.at_level(logging.INFO):
        b = build_mito(str(tmp_path / "png"), val_fraction=0.25, test_fraction=0.25)
    assert b.test.inputs[:, 0, 0, 1].tolist() == [10, 11, 12]  # slice_k holds k: the last training block
    assert f"{tmp_path / 'png' / 'testing' / 'images'} ignored: {tmp_path / 'png' / 'testing' / 'groundtruth'} is " \
           f"missing" in caplog.text
    assert "mito test split: the last 3 of the 12 training slices kept" in caplog.text


@pytest.mark.parametrize("slice_step", [1, 3])
def test_png_testing_pair_is_the_test_split(tmp_path, caplog, slice_step):
    write_mito_png(tmp_path, slices=12, testing=True)
    with caplog.at_level(logging.INFO):
        b = build_mito(str(tmp_path), slice_step=slice_step)
    n = len(range(0, 12, slice_step))  # every slice_step-th testing slice, as for a testing stack
    assert b.test.inputs[:, 0, 0, 1].tolist() == list(range(1, 13, slice_step))
    assert f"mito test split: {tmp_path / 'testing'}/images + groundtruth ({n} slices" in caplog.text

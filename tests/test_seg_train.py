"""The segmentation configs wire into the existing loop: synthetic data + U-Net/FCN train end to end; the real-data
configs build from files written in the real layouts; the benchmark's sliding window assembles patches right."""
import json
import logging

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from conftest import compose_cfg, load_script, run_train
from fakes import write_mito, write_roads

TINY = ["model.base=4", "model.depth=2", "trainer.epochs=2", "trainer.batch_size=8", "trainer.monitor=val/iou",
        "optimized_metric=val/iou", "trainer.pictures_every=0", "trainer.tensorboard=false"]


@pytest.mark.parametrize("overrides", [
    ["model=unet", "data=roads_synthetic", "data.num_images=12", "data.size=48", "data.augment.crop=32",
     "loss=cross_entropy_dice", *TINY],
    ["model=fcn", "data=mito_synthetic", "data.num_slices=10", "data.height=32", "data.width=48",
     "data.augment.crop=32", "model.widths=[4,4,8]", "model.convs=[1,1,1]", "model.fc_width=8", "loss=cross_entropy",
     *[t for t in TINY if not t.startswith("model.")]],
])
def test_segmenters_train_end_to_end(tmp_path, overrides):
    run_dir, value = run_train(tmp_path, overrides)
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= value <= 1.0 and "test/iou" in results and (run_dir / "checkpoints" / "best.pt").is_file()


def test_real_data_configs_build_from_files_in_the_real_layouts(tmp_path):
    write_roads(tmp_path / "roads", numbers=range(1, 11))
    (tmp_path / "mito").mkdir()
    write_mito(tmp_path / "mito", slices=10, testing=False)
    roads = instantiate(compose_cfg(["data=roads", f"data.root={tmp_path / 'roads'}", "data.augment.crop=16"]).data)
    mito = instantiate(compose_cfg(["data=mito", f"data.root={tmp_path / 'mito'}", "data.augment.crop=16"]).data)
    assert (len(roads.train), len(roads.val), len(roads.test)) == (7, 2, 1)
    assert (len(mito.train), len(mito.val), len(mito.test)) == (6, 2, 2)
    assert roads.train_augment.crop == 16 and mito.state["mask_threshold"] is None
    for name in ("unet", "fcn"):
        cfg = compose_cfg([f"model={name}"])
        assert instantiate(cfg.model, num_classes=2, in_channels=1).eval()(torch.zeros(1, 1, 40, 24)).shape == \
            (1, 2, 40, 24)


def test_benchmark_sliding_window_puts_each_centre_patch_back_in_place():
    bench = load_script("bench_segment")
    net = nn.Conv2d(3, 2, 1)  # pointwise: each pixel's logits do not depend on the window around it
    x = torch.randn(2, 3, 48, 32)
    assert torch.allclose(bench.sliding_window(net, x, patch=16, context=8, batch=5), bench.whole_image(net, x),
                          atol=1e-6)


def test_the_threshold_log_names_the_metric_that_chose_it(tmp_path, caplog):
    # trainer.monitor=val/acc cannot choose a threshold: f1 does, and the log shows f1's value at the chosen one,
    # the validation f1 of the final results
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        run_dir, _ = run_train(tmp_path, ["model=unet", "data=roads_synthetic", "data.num_images=12", "data.size=48",
                                          "data.augment.crop=32", "trainer.monitor=val/acc", "optimized_metric=val/acc",
                                          *[t for t in TINY if "monitor" not in t and "optimized" not in t]])
    results = json.loads((run_dir / "results.json").read_text())
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("decision threshold"))
    assert line == (f"decision threshold {results['threshold']:.2f} chosen on validation by f1 "
                    f"(f1 {results['val/f1']:.4f})")

"""cnnlab-eval needs only the checkpoint and the split it measures, for SST-2, roads and mitochondria too: the same
metrics from a folder holding that split's files alone as from the whole data folder."""
import json
import shutil

import pytest

from conftest import compose_cfg, fake_data, run_train
from cnnlab.checkpoint import load_checkpoint
from cnnlab.errors import ConfigError

TINY = ["trainer.epochs=1", "trainer.budget_min=null", "trainer.tensorboard=false", "trainer.pictures_every=0"]


def evaluate(tmp_path, ckpt, *overrides) -> dict:
    """cnnlab-eval in-process; the metrics it wrote."""
    from cnnlab.commands import evaluate_checkpoint
    from cnnlab.report import RunInfo

    out = tmp_path / f"eval{len(list(tmp_path.glob('eval*')))}"
    items = [f"ckpt_path={ckpt}", f"out_dir={out}", *overrides]
    evaluate_checkpoint(compose_cfg(items, config_name="eval"), RunInfo(out, overrides=items))
    return json.loads((out / "results.json").read_text())


def trained(tmp_path, experiment, choice, *extra):
    overrides = fake_data(choice, tmp_path / "data")
    run_dir, _ = run_train(tmp_path, [f"experiment={experiment}", *overrides, *TINY, *extra])
    root = next(o.split("=", 1)[1] for o in overrides if o.startswith("data.root="))
    return run_dir / "checkpoints" / "best.pt", root


def copy(src, dst, names):
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, dst / name)


def test_sst2_test_split_from_dev_tsv_alone(tmp_path):
    ckpt, root = trained(tmp_path, "sentence_cnn_sst2", "sst2", "model.embed_dim=16", "model.num_maps=4")
    whole = evaluate(tmp_path, ckpt, f"data.root={root}")
    copy(tmp_path / "data" / "sst2", tmp_path / "dev_only", ["dev.tsv"])
    alone = evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'dev_only'}")
    assert alone["test/acc"] == whole["test/acc"] and alone["test_confusion"] == whole["test_confusion"]
    assert sum(map(sum, alone["test_confusion"])) == len((tmp_path / "dev_only/dev.tsv").read_text().splitlines()) - 1
    with pytest.raises(ConfigError, match=r"SST-2 not found: expected .*dev_only/train.tsv and dev.tsv"):
        evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'dev_only'}", "split=val")  # val comes from train.tsv
    with pytest.raises(ConfigError, match=r"SST-2 not found: expected .*nothing/dev.tsv \(the test split\)"):
        evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'nothing'}")


def test_roads_split_from_its_own_images_alone(tmp_path):
    ckpt, root = trained(tmp_path, "unet_roads", "roads", "model.base=8")
    files = load_checkpoint(ckpt)["data_state"]["files"]  # plain data: loads with weights_only=True
    whole = evaluate(tmp_path, ckpt, f"data.root={root}")
    names = [f"training/{kind}/{n}" for n in files["test"] for kind in ("images", "groundtruth")]
    copy(tmp_path / "data" / "roads", tmp_path / "test_only", names)
    alone = evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'test_only'}")
    assert alone["test_confusion"] == whole["test_confusion"] and alone["test/patch_f1"] == whole["test/patch_f1"]
    (tmp_path / "test_only" / names[0]).unlink()
    with pytest.raises(ConfigError, match=f"{tmp_path / 'test_only' / names[0]} not found: the checkpoint's test "
                                          f"split holds it"):
        evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'test_only'}")


def test_mito_test_split_from_the_testing_stack_alone(tmp_path):
    ckpt, root = trained(tmp_path, "unet_mito", "mito", "model.base=8")
    whole = evaluate(tmp_path, ckpt, f"data.root={root}")
    copy(tmp_path / "data" / "mito", tmp_path / "testing_only", ["testing.tif", "testing_groundtruth.tif"])
    alone = evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'testing_only'}")
    assert alone["test_confusion"] == whole["test_confusion"] and alone["test/iou"] == whole["test/iou"]
    assert sum(map(sum, alone["test_confusion"])) == 10 * 32 * 48  # the 10 testing pages of 32x48 pixels
    with pytest.raises(ConfigError, match="no mitochondria data in"):  # val is a block of the training stack
        evaluate(tmp_path, ckpt, f"data.root={tmp_path / 'testing_only'}", "split=val")

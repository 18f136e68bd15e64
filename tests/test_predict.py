"""The checkpoint alone applies a model to new files (`cnnlab-predict`); eval/viz/predict need no training data;
the data state is plain data that loads with weights_only=True."""
import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data.imageio import load_image
from cnnlab.errors import ConfigError
from cnnlab.data.common import normalise
from cnnlab.models.lenet import LeNet5
from conftest import command, compose_cfg, fake_data, hydra_refused, one_error_line, run_train
from fakes import write_cifar, write_mnist

SMALL = ["trainer.epochs=2", "trainer.batch_size=16", "trainer.tensorboard=false", "trainer.pictures_every=0"]


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mnist")
    data = write_mnist(tmp / "data")
    run_dir, _ = run_train(tmp, ["experiment=lenet5_mnist", f"data.root={tmp / 'data'}", "data.val_size=20", *SMALL])
    return tmp, run_dir, data


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_data_state_is_plain_data_in_the_checkpoint(mnist_run):
    _, run_dir, _ = mnist_run
    ckpt = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    state = ckpt["data_state"]
    assert state["task"] == "classification" and state["class_names"] == [str(d) for d in range(10)]
    assert state["channels"] == 1 and state["size"] == [32, 32] and state["pad"] == 2
    assert state["model_kwargs"] == {"in_channels": 1} and len(state["mean"]) == len(state["std"]) == 1


def test_predict_lenet_on_pngs_matches_the_model_on_the_same_pixels(mnist_run):
    tmp, run_dir, data = mnist_run
    pics = tmp / "pics"
    pics.mkdir(exist_ok=True)
    images = data["t10k"][0][:5]
    for i, img in enumerate(images):
        Image.fromarray(img).save(pics / f"digit_{i}.png")           # 28x28 grey, as MNIST
    Image.fromarray(np.stack([images[0]] * 3, -1)).resize((56, 56)).save(pics / "rgb_big.jpg")  # RGB, larger
    (pics / "broken.png").write_bytes(b"not an image")
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={pics}",
                  f"output={tmp / 'pred.csv'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    said = out.stdout + out.stderr
    assert "1 input(s) could not be read" in said and "broken.png" in said
    rows = read_csv(tmp / "pred.csv")
    header = rows[0]
    assert header[:3] == ["path", "label", "probability"] and header[3:5] == ["label_2", "probability_2"]
    assert len(header) == 11 and [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])  # stable order
    assert len(rows) == 7 and all(r[1] in [str(d) for d in range(10)] for r in rows[1:])
    # independent check: the model on the same pixels, padded and normalised by hand from the data state
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    model = LeNet5()
    model.load_state_dict(ckpt["model"])
    state = ckpt["data_state"]
    x = torch.from_numpy(images[:5]).float().div(255).unsqueeze(1)
    x = normalise(torch.nn.functional.pad(x, (2, 2, 2, 2)), tuple(state["mean"]), tuple(state["std"]))
    with torch.no_grad():
        probs, labels = model.eval()(x).softmax(1).max(1)
    by_name = {r[0].rsplit("/", 1)[-1]: r for r in rows[1:]}
    for i in range(5):
        row = by_name[f"digit_{i}.png"]
        assert row[1] == str(int(labels[i])) and float(row[2]) == pytest.approx(float(probs[i]), abs=1e-5)
    assert load_image(pics / "rgb_big.jpg", state).shape == (1, 32, 32)  # converted as the training data was
    frames = [Image.fromarray(img) for img in images[:3]]  # a stack: one label (its first page), said in the log
    frames[0].save(tmp / "stack.tif", save_all=True, append_images=frames[1:])
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={tmp / 'stack.tif'}",
                  f"output={tmp / 'stack.csv'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 input(s) are multi-page TIFF stacks, and a classifier labels one image per file: only their first " \
           "page is labelled" in out.stdout + out.stderr
    assert read_csv(tmp / "stack.csv")[1][1] == by_name["digit_0.png"][1]  # page 1 is digit 0's pixels


def test_eval_viz_predict_without_the_training_files(mnist_run, tmp_path):
    tmp, run_dir, _ = mnist_run
    data = tmp_path / "only_test" / "MNIST" / "raw"
    data.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(tmp / "data" / "MNIST" / "raw" / name, data / name)
    ckpt = run_dir / "checkpoints" / "best.pt"
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", f"data.root={tmp_path / 'only_test'}",
                  f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "eval" / "results.json").is_file()
    out = command("cnnlab-viz", f"ckpt_path={ckpt}", f"data.root={tmp_path / 'only_test'}", "split=test",
                  f"out_dir={tmp_path / 'viz'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    drawn = {p.name for p in (tmp_path / "viz").glob("*.png")}
    assert {"filters_first_layer.png", "saliency_test.png", "confusion_test.png"} <= drawn
    assert not [name for name in drawn if "_val" in name]  # named by the split they show


def test_predict_alexnet_small_with_its_data_folder_gone(tmp_path):
    write_cifar(tmp_path / "data", per_batch=12)
    run_dir, _ = run_train(tmp_path, ["experiment=alexnet_small_cifar10", f"data.root={tmp_path / 'data'}",
                                      "data.val_size=20", "trainer.epochs=1", "trainer.batch_size=16",
                                      "trainer.pictures_every=0", "trainer.tensorboard=false"])
    shutil.rmtree(tmp_path / "data")
    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(pics / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(pics / "b_grey.png")
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={pics}/*",
                  f"output={tmp_path / 'out.csv'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 3 and rows[1][0].endswith("a.jpg") and rows[2][1] in {"airplane", "automobile", "bird",
        "cat", "deer", "dog", "frog", "horse", "ship", "truck"}


def test_predict_refuses_an_empty_input(mnist_run, tmp_path):
    _, run_dir, _ = mnist_run
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={tmp_path}/*.png",
                  cwd=tmp_path)
    assert out.returncode == 2 and "no png/jpg" in out.stderr.replace("/jpeg", "")


def test_a_bug_in_a_model_constructor_shows_its_traceback(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "helpers"))  # the user's code: tests/helpers/planted.py
    out = command("cnnlab-train", "model=linear", "data=synthetic", "data.flat=true", "~model.bias",
                  "model._target_=planted.PlantedBug", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 1 and "error:" not in out.stderr
    assert "planted bug: 10 classes" in out.stderr and "Traceback" in (tmp_path / "run" / "train.log").read_text()


def test_eval_on_data_with_other_classes_is_refused_in_one_line(mnist_run, tmp_path):
    _, run_dir, _ = mnist_run
    write_mnist(tmp_path, variant="FashionMNIST")
    out = command("cnnlab-eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", "data=fashion_mnist",
                  f"data.root={tmp_path}", "data.val_size=20", cwd=tmp_path)
    line = one_error_line(out)
    assert "differ from the checkpoint's" in line and "T-shirt/top" in line


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    """A tiny sentence CNN on the procedural corpus: (its folder, best.pt)."""
    tmp = tmp_path_factory.mktemp("sentiment")
    run_dir, _ = run_train(tmp, ["model=sentence_cnn", "data=sentiment_synthetic", "data.num_train=400",
                                 "data.num_val=100", "data.num_test=100", "loss=cross_entropy", "trainer.epochs=3",
                                 "trainer.batch_size=50", "model.num_maps=20", "model.embed_dim=32",
                                 "trainer.tensorboard=true", "trainer.pictures_every=0"])
    return run_dir, run_dir / "checkpoints" / "best.pt"


def test_predict_sentiment_from_a_file_stdin_and_one_sentence(sentiment_run, tmp_path):
    run_dir, ckpt = sentiment_run
    assert any((run_dir / "tb").rglob("projector_config.pbtxt"))  # the embedding projector
    lines = tmp_path / "sentences.txt"
    lines.write_text("a truly wonderful film .\n\nthe plot was not good at all .\nfine\n")
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={lines}", f"output={tmp_path / 'out.tsv'}",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [r.split("\t") for r in (tmp_path / "out.tsv").read_text().splitlines()]
    assert [r[2] for r in rows] == ["a truly wonderful film .", "the plot was not good at all .", "fine"]
    assert all(r[0] in ("negative", "positive") and 0.5 <= float(r[1]) <= 1 for r in rows)
    assert "1 input(s) were empty and were skipped: line 2" in out.stdout + out.stderr
    one = command("cnnlab-predict", f"ckpt_path={ckpt}", "text=a truly wonderful film .", cwd=tmp_path)
    assert one.returncode == 0 and one.stdout.splitlines()[0].split("\t")[2] == "a truly wonderful film ."
    piped = command("cnnlab-predict", f"ckpt_path={ckpt}", "input=-", f"output={tmp_path / 'new_folder'}/",
                    input="fine\n", cwd=tmp_path)  # a folder not there yet, named with a trailing slash
    assert piped.returncode == 0 and (tmp_path / "new_folder" / "predictions.tsv").read_text().endswith("\tfine\n")


def test_predict_refuses_to_overwrite_its_inputs_and_to_read_a_table_as_sentences(sentiment_run, mnist_run,
                                                                                    tmp_path):
    _, ckpt = sentiment_run
    lines = tmp_path / "sentences.txt"
    lines.write_text("a truly wonderful film .\n")
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={lines}", f"output={lines}",
                                  cwd=tmp_path))
    assert line.startswith(f"error: output={lines} would overwrite the input {lines}")
    assert lines.read_text() == "a truly wonderful film .\n"
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\n\"great fun, loved it\",pos\n")
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={table}", cwd=tmp_path))
    assert f"input={table} is a CSV table" in line and "save the text column as a .txt file" in line
    _, run_dir, _ = mnist_run
    image = tmp_path / "d0.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    data = image.read_bytes()
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}",
                                  f"input={image}", f"output={image}", cwd=tmp_path))
    assert "would overwrite the input" in line and image.read_bytes() == data


def hydra_quoted(sentence: str) -> str:
    """`sentence` as one quoted value of Hydra's override grammar: its quotes and `${` escaped (docs/commands.md)."""
    return '"' + sentence.replace('"', '\\"').replace("${", "\\${") + '"'


def test_text_takes_any_sentence_quoted_as_hydra_reads_it(sentiment_run, tmp_path):
    # a quoted sentence reaches the model unchanged: echoed as typed and scored as the same line of a file is
    _, ckpt = sentiment_run
    sentences = ["it's great, really!", 'a [truly] = "wonderful" film (no: really) ~ *best* ${x}',
                 "naïve, très émouvant — 映画 ☺"]
    (tmp_path / "s.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tmp_path / 's.txt'}",
                  f"output={tmp_path / 's.tsv'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    from_file = (tmp_path / "s.tsv").read_text(encoding="utf-8").splitlines()
    for sentence, row in zip(sentences, from_file, strict=True):
        one = command("cnnlab-predict", f"ckpt_path={ckpt}", f"text={hydra_quoted(sentence)}", cwd=tmp_path)
        assert one.returncode == 0, one.stderr[-2000:]
        label, p, text = one.stdout.splitlines()[0].split("\t")
        file_label, file_p, file_text = row.split("\t")
        assert text == file_text == sentence and label == file_label and float(p) == pytest.approx(float(file_p),
                                                                                                  abs=1e-4)


def test_predict_says_which_input_each_kind_of_model_takes(sentiment_run, mnist_run, tmp_path):
    _, sentence_ckpt = sentiment_run
    _, run_dir, _ = mnist_run
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digit.png")
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}",
                                  "text=a fine film", cwd=tmp_path))
    assert "text= is for sentence models" in line and "input=<image file" in line
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={sentence_ckpt}", f"input={tmp_path / 'digit.png'}",
                                  cwd=tmp_path))
    assert "is an image" in line and "sentence model" in line and "text=" in line
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={sentence_ckpt}", f"input={tmp_path}", cwd=tmp_path))
    assert f"input={tmp_path} is a folder" in line and "sentence model" in line and "<text file" in line
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}",
                                  f"input={tmp_path / 'digit.png'}", f"submission={tmp_path / 's.csv'}", cwd=tmp_path))
    assert "submission= and overlays=true are for segmentation models" in line


def test_predict_fails_when_no_input_could_be_read(mnist_run, tmp_path):
    _, run_dir, _ = mnist_run
    for name in ("a.png", "b.jpg"):
        (tmp_path / "in" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"not an image")
    out = command("cnnlab-predict", f"ckpt_path={run_dir / 'checkpoints' / 'best.pt'}", f"input={tmp_path / 'in'}",
                  f"output={tmp_path / 'pred.csv'}", cwd=tmp_path)
    line = one_error_line(out)
    assert "all 2 input(s) could not be read" in line and "a.png" in line and "b.jpg" in line
    assert not (tmp_path / "pred.csv").exists()


def test_eval_and_viz_on_a_sentence_checkpoint(tmp_path):
    from text_fakes import write_sst2

    root = write_sst2(tmp_path / "sst2", n_train=300, n_dev=60)
    run_dir, _ = run_train(tmp_path, ["model=sentence_cnn", "data=sst2", f"data.root={root}", "data.val_size=40",
                                      "model.num_maps=8", "model.embed_dim=16", "trainer.epochs=2", *SMALL[1:]])
    ckpt = run_dir / "checkpoints" / "best.pt"
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "results.json").read_text())
    trained = json.loads((run_dir / "results.json").read_text())
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"])  # dev.tsv scored as training scored it
    out = command("cnnlab-viz", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'viz'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "viz" / "confusion_test.png").is_file()  # split=test, the default


@pytest.mark.parametrize("experiment, extra", [("lsq_poly1d", []), ("svm_features_digits", ["data.cache_dir=null"]),
                                               ("mlp_moons", [])])
def test_eval_and_viz_on_regression_and_feature_checkpoints(tmp_path, experiment, extra):
    # every task's checkpoint evaluates: regression has no class confusion; the digits feature source has no `only`;
    # cnnlab-predict, which reads files, says for points and numbers what it applies to and points to cnnlab-eval
    run_dir, _ = run_train(tmp_path, [f"experiment={experiment}", "trainer.epochs=1", "trainer.tensorboard=false",
                                      "trainer.pictures_every=0", *extra])
    ckpt = run_dir / "checkpoints" / "best.pt"
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "results.json").read_text())
    trained = json.loads((run_dir / "results.json").read_text())
    shared = [k for k in metrics if k.startswith("test/")]
    assert shared and all(metrics[k] == pytest.approx(trained[k], rel=1e-5, abs=1e-6) for k in shared)
    out = command("cnnlab-viz", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'viz'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    if experiment == "svm_features_digits":  # predict reads image files (tested below)
        return
    line = one_error_line(command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tmp_path}", cwd=tmp_path))
    assert "image classifiers, segmenters and sentence classifiers" in line and f"cnnlab-eval ckpt_path={ckpt}" in line


def test_eval_weighs_its_loss_with_the_training_class_counts_without_the_training_files(tmp_path):
    # loss.weight=balanced: the weights come from the training labels, which the checkpoint's data state keeps;
    # evaluating on test_batch alone (the training batches gone) gives the training run's test loss
    write_cifar(tmp_path / "data", per_batch=12)
    run_dir, _ = run_train(tmp_path, ["experiment=alexnet_small_cifar10", f"data.root={tmp_path / 'data'}",
                                      "data.val_size=20", "loss=cross_entropy", "loss.weight=balanced", *SMALL[:1],
                                      "trainer.batch_size=16", "trainer.pictures_every=0", "trainer.tensorboard=false"])
    ckpt = run_dir / "checkpoints" / "best.pt"
    counts = load_checkpoint(ckpt)["data_state"]["class_counts"]
    from cnnlab.data.cifar import build_cifar10

    train = build_cifar10(str(tmp_path / "data"), val_size=20).train
    assert counts == torch.bincount(train.targets, minlength=10).tolist()  # the training labels, per class
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"):
        next((tmp_path / "data").rglob(name)).unlink()
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "results.json").read_text())
    trained = json.loads((run_dir / "results.json").read_text())
    assert metrics["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-5)


def test_eval_viz_predict_on_an_image_folder_feature_checkpoint(tmp_path):
    # the features' source is an image folder: the checkpoint rebuilds it with its classes (data state), and
    # cnnlab-predict turns image files into the features the model was trained on
    from cnnlab.data.common import DataBundle, TensorSplit
    from cnnlab.data.featureset import build_feature_data
    from cnnlab.data.imagefolder import decode_all
    from cnnlab.data.imageio import EXTENSIONS, prepare_images

    run_dir, _ = run_train(tmp_path, ["data=imagefolder_features", "model=linear",
                                      *fake_data("imagefolder_features", tmp_path), *SMALL])
    ckpt = run_dir / "checkpoints" / "best.pt"
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "results.json").read_text())
    trained = json.loads((run_dir / "results.json").read_text())
    assert metrics["per_class_test_acc"].keys() == {"cat", "dog", "fox"}
    assert all(metrics[k] == pytest.approx(trained[k], rel=1e-5, abs=1e-6) for k in metrics if k.startswith("test/"))
    out = command("cnnlab-viz", f"ckpt_path={ckpt}", f"out_dir={tmp_path / 'viz'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "viz" / "confusion_test.png").is_file()  # split=test, the default
    out = command("cnnlab-predict", f"ckpt_path={ckpt}", f"input={tmp_path / 'imgs'}", f"output={tmp_path / 'p.csv'}",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {Path(r[0]): r for r in read_csv(tmp_path / "p.csv")[1:]}
    # independent: the training code's own decoding and features of the same files, through the saved weights
    ckpt_data = load_checkpoint(ckpt)
    state, image = ckpt_data["data_state"], ckpt_data["data_state"]["image"]
    files = sorted(p for p in (tmp_path / "imgs").rglob("*") if p.suffix in EXTENSIONS and p.name != "broken.png")
    x, y = decode_all([(p, 0) for p in files], image["size"][0], "error")
    split = TensorSplit(x, y, prepare_images(image["mean"], image["std"]))
    source = DataBundle(split, split, split, 3, state["class_names"], mean=tuple(image["mean"]),
                        std=tuple(image["std"]))
    spec = state["features"]
    features = build_feature_data(source, spec["names"], spec["hist_bins"], spec["value_range"], spec["cell"],
                                  spec["block"], spec["orientations"], state=state).test.inputs
    w, b = ckpt_data["model"]["linear.weight"], ckpt_data["model"]["linear.bias"]
    probs, labels = (features @ w.T + b).softmax(1).max(1)
    assert sorted(rows) == files
    for f, p, c in zip(files, probs.tolist(), labels.tolist()):
        assert rows[f][1] == state["class_names"][c] and float(rows[f][2]) == pytest.approx(p, abs=1e-5)


@pytest.mark.parametrize("given, message", [
    ({"text": "fine", "output": "p.tsv"}, "text= prints its prediction on the console and writes no file"),
    ({"text": "fine", "input": "s.txt"}, "both input= and text= are given"),
    ({"text": "  "}, "text= is empty"),
    ({}, "nothing to predict"),
])
def test_the_inputs_of_a_sentence_model_are_one_of_input_and_text(given, message):
    from omegaconf import OmegaConf

    from cnnlab.commands.prediction import check_inputs

    cfg = OmegaConf.create({"input": None, "output": None, **given})
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_inputs(cfg, "text", given.get("text"))
    if "output" in given:  # without output= the same sentence is accepted
        check_inputs(OmegaConf.merge(cfg, {"output": None}), "text", given["text"])


@pytest.mark.parametrize("typed", ['text="a, b=c [d]"', "text='a, b=c [d]'", '++text="a, b=c [d]"'])
def test_the_sentence_is_one_quoted_value_in_every_form_hydra_accepts(typed):
    assert compose_cfg(["ckpt_path=x.pt", typed, "input=my_text.txt"], "predict").text == "a, b=c [d]"


def test_an_unquoted_sentence_that_hydra_cannot_read_is_its_message_naming_it(tmp_path):
    out = command("cnnlab-predict", "ckpt_path=x.pt", "text=it's great, really!", cwd=tmp_path)
    hydra_refused(out, "text=it's great, really!", "override_grammar")

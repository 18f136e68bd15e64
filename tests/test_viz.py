"""viz: what a person reads in the pictures (sizes, captions, scales), saliency against a hand-computed gradient,
and torchvision's make_grid / save_image behind the layout."""
import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnlab.viz import draw
from cnnlab.models.alexnet import AlexNetSmall
from cnnlab.models.lenet import LeNet5

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def in_unit_range(img):
    return img.dim() == 3 and img.shape[0] == 3 and img.min() >= 0 and img.max() <= 1


def test_first_layer_filters_are_large_numbered_and_on_one_scale():
    model = LeNet5()
    assert draw.first_conv(model) is model.features[0] and draw.first_conv(nn.Linear(2, 2)) is None
    w = torch.zeros(6, 1, 5, 5)
    w[0, 0, 0, 0], w[1, 0, 0, 0] = 2.0, -1.0
    tiles, peak = draw.filter_tiles(w)
    assert peak == 2.0 and tiles.shape == (6, 3, 65, 65)  # 5x5 enlarged 13x: at least 64 px
    assert tiles[0, 0, 0, 0] == 1.0 and tiles[1, 0, 0, 0] == 0.25 and tiles[2, 0, 0, 0] == 0.5  # shared scale
    img = draw.filter_figure(model.features[0].weight)  # LeNet-5's 6 filters of 5x5 in one row, plus a colour bar
    assert in_unit_range(img) and img.shape[2] >= 6 * 65 and img.shape[1] >= 65 + 40
    big = draw.filter_figure(torch.randn(96, 3, 11, 11))  # AlexNet: 10 columns
    assert big.shape[2] >= 10 * 66


def test_saliency_matches_the_linear_models_weights():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = torch.randn(2, 3, 4, 4)
    target = torch.tensor([1, 3])
    sal = draw.saliency(lin, x, target)
    w = lin[1].weight.detach().view(5, 3, 4, 4)
    torch.testing.assert_close(sal, w[target].abs().amax(1))  # d score_c / d x = w_c for a linear model
    torch.testing.assert_close(draw.saliency(lin, x, target, smooth=5), sal)  # linear: noise changes nothing
    assert all(p.grad is None for p in lin.parameters())


def test_smoothgrad_is_the_mean_over_its_noisy_copies_and_leaves_the_global_rng_alone():
    """SmoothGrad draws its noise from its own generator: a picture drawn during training does not shift the
    training's random stream (a resumed run continues exactly), and the same call gives the same map."""
    torch.manual_seed(3)
    class Square(nn.Module):
        def forward(self, v):
            return v * v

    model = nn.Sequential(Square(), nn.Flatten(), nn.Linear(3 * 2 * 2, 2))  # d score / d x = 2 w x: noise matters
    quad = model[1:]
    x = torch.randn(2, 3, 2, 2)
    before = torch.get_rng_state()
    sal = draw.saliency(model, x, torch.tensor([0, 1]), smooth=3, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(draw.saliency(model, x, torch.tensor([0, 1]), smooth=3, seed=7), sal)
    gen, sigma, w = torch.Generator().manual_seed(7), 0.15 * float(x.max() - x.min()), quad[1].weight.detach()
    copies = [x + sigma * torch.randn(x.shape, generator=gen) for _ in range(3)]  # the same draws, by hand
    want = torch.stack([(2 * w[[0, 1]].view(2, 3, 2, 2) * c).abs() for c in copies]).mean(0).amax(1)
    torch.testing.assert_close(sal, want)


def test_saliency_figure_on_cnn_keeps_mode_and_grads():
    model = AlexNetSmall(norm="bn").train()
    x = torch.randn(3, 3, 32, 32)
    sal = draw.saliency(model, x, smooth=2)
    assert sal.shape == (3, 32, 32) and (sal > 0).any() and (sal >= 0).all()
    assert model.training and all(p.grad is None for p in model.parameters())
    img = draw.saliency_figure(x, sal, ["cat", "dog", "fox"], ["cat", "cat", "fox"], MEAN, STD, pairs_per_row=3)
    assert in_unit_range(img) and img.shape[2] >= 6 * 96 and img.shape[1] >= 96 + 2 * 16


def test_each_saliency_pair_is_labelled_once_with_the_class_and_the_prediction(monkeypatch):
    """An image and its map were two tiles, the map captioned "saliency" every time: one tile per pair now."""
    drawn = {}
    real = draw.figure

    def spy(tiles, captions, ncol, title, **kw):
        drawn.update(tiles=tiles, captions=list(captions), title=title)
        return real(tiles, captions, ncol, title, **kw)

    monkeypatch.setattr(draw, "figure", spy)
    x, sal = torch.rand(2, 1, 28, 28), torch.rand(2, 28, 28)
    draw.saliency_figure(x, sal, ["7", "1"], ["7", "4"], (0.5,), (0.5,))
    assert drawn["captions"] == ["true 7\npredicted 7", "true 1\npredicted 4 (wrong)"]
    assert drawn["tiles"].shape[0] == 2 and drawn["tiles"].shape[-1] > 2 * 96  # image | map, side by side
    assert "saliency" in drawn["title"]


def test_confusion_figure_is_legible_for_two_classes_and_shows_both_views():
    img = draw.confusion_figure(torch.tensor([[40, 10], [5, 45]]), ["background", "road"])
    assert in_unit_range(img) and img.shape[2] >= 2 * 2 * 96 and img.shape[1] >= 2 * 96  # two panels of 96 px cells
    big = draw.confusion_figure(torch.eye(100, dtype=torch.long), [str(i) for i in range(100)])
    assert in_unit_range(big)


def test_mistakes_are_captioned_in_words_and_never_a_bare_tile(monkeypatch):
    x = torch.randn(6, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    preds = torch.tensor([0, 2, 1, 1, 1, 0])  # 4 mistakes
    conf = torch.tensor([0.9, 0.5, 0.8, 0.97, 0.7, 0.6])
    drawn, real = {}, draw.figure

    def spy(tiles, captions, ncol, title, **kw):
        drawn.update(captions=list(captions))
        return real(tiles, captions, ncol, title, **kw)

    monkeypatch.setattr(draw, "figure", spy)
    img = draw.mistakes_figure(x, targets, preds, conf, ["cat", "dog", "fox"], MEAN, STD, total=6, k=1)
    assert drawn["captions"] == ["true cat\npredicted dog 97%"]  # the most confident of the 4
    assert in_unit_range(img) and img.shape[2] >= 112 and img.shape[1] > 112 + 2 * 16  # title and caption


def test_a_pass_without_mistakes_writes_no_mistakes_picture_and_says_so(tmp_path, caplog):
    import logging

    from cnnlab.data.mnist import build_digits
    from cnnlab.tblog import RunLogger
    from cnnlab.viz.pictures import make_pictures

    bundle = build_digits(size=32)
    x, y = bundle.val.batch(slice(0, 4))
    pictures = make_pictures(LeNet5(), bundle, RunLogger(tmp_path, enabled=False), tmp_path, torch.device("cpu"),
                             lambda: 0, num_images=4)
    perfect = {"confusion": torch.diag(torch.full((10,), 27)), "mistakes": (x[:0], y[:0], y[:0], y[:0].float())}
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        pictures(1, perfect, final=True)
    assert (tmp_path / "saliency_val.png").is_file() and not (tmp_path / "errors_most_confident_val.png").exists()
    assert "none of the 270 validation images is misclassified: no errors/most_confident_val to draw" in caplog.text
    wrong = {**perfect, "mistakes": (x[:1], y[:1], (y[:1] + 1) % 10, torch.tensor([0.9]))}
    pictures(1, wrong, final=True)
    assert (tmp_path / "errors_most_confident_val.png").is_file()


def test_overlays_are_in_colour_blind_safe_colours_drawn_by_torchvision():
    """Truth blue and prediction orange (Okabe-Ito), not green and red: the tint is alpha-blended by hand here."""
    image = torch.full((3, 10, 10), 0.5)
    pred = torch.zeros(10, 10, dtype=torch.bool)
    pred[:5] = True
    true = torch.zeros(10, 10, dtype=torch.bool)
    true[2:8, 2:8] = True
    orange, blue = torch.tensor([230, 159, 0]), torch.tensor([0, 114, 178])  # #E69F00, #0072B2
    grey = round(0.5 * 255)
    out = (draw.overlay(image, pred, outline=true) * 255).round()
    assert (out[:, 0, 0] - (0.55 * grey + 0.45 * orange)).abs().max() <= 1  # predicted: orange tint (uint8)
    assert out[:, 2, 2].tolist() == blue.tolist()  # the truth's edge, inside the prediction too
    assert out[:, 6, 2].tolist() == blue.tolist() and out[:, 5, 5].tolist() == [grey] * 3  # edge only; unmarked
    truth = (draw.overlay(image, true, draw.TRUTH) * 255).round()
    assert (truth[:, 4, 4] - (0.55 * grey + 0.45 * blue)).abs().max() <= 1
    examples = [(torch.randn(3, 10, 10), true.long(), pred.long())]
    fig = draw.segmentation_figure(examples, MEAN, STD)
    assert in_unit_range(fig) and fig.shape[2] >= 3 * 160


def test_plots_are_slide_sized_pngs_or_vector_files(tmp_path):
    from cnnlab.viz import plots

    xs = torch.linspace(-1, 1, 50)
    points, targets = torch.rand(12) * 2 - 1, torch.rand(12)
    fit = plots.curves_figure(points, targets, xs, {"degree 1": xs, "degree 9": 30 * xs ** 9}, "fits",
                              truth=torch.sin(xs))
    assert fit.axes[0].get_ylim()[1] < 5  # the wild fit leaves the axes; the data's range is kept
    probs = torch.rand(2, 20, 20).softmax(0)
    regions = plots.decision_boundary_figure(probs, [-1, -1], [1, 1], torch.rand(10, 2), torch.arange(10) % 2,
                                             ["a", "b"], "regions")
    for name, fig in (("fit", fit), ("regions", regions)):
        with Image.open(plots.save_figure(fig, tmp_path / f"{name}.png")) as png:
            assert png.format == "PNG" and png.size[0] >= 1000
        assert tuple(plots.as_image(fig).shape[1:]) == png.size[::-1]  # TensorBoard's image: the same pixels
        svg = plots.save_figure(fig, tmp_path / f"{name}.svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg
        assert plots.save_figure(fig, tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_save_png_is_torchvisions_and_figures_show_their_tiles_pixel_for_pixel(tmp_path):
    img = torch.rand(3, 7, 9)
    path = draw.save_png(img, tmp_path / "sub" / "x.png")
    with Image.open(path) as png:
        back = torch.from_numpy(np.asarray(png).copy()).permute(2, 0, 1).float() / 255
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    tiles = torch.rand(5, 3, 7, 9)
    fig = draw.figure(tiles, [str(i) for i in range(5)], 3, "title")
    top = draw.LINE + draw.PAD  # one title line, then make_grid's padding around tiles with their caption lines
    for i in (0, 4):
        y, x = top + draw.PAD + (i // 3) * (7 + draw.LINE + draw.PAD), draw.PAD + (i % 3) * (9 + draw.PAD)
        assert (fig[:, y:y + 7, x:x + 9] - tiles[i]).abs().max() <= 1 / 255 + 1e-6  # uint8 on the canvas


def test_text_mistakes_table_decodes_sentences_and_escapes_pipes():
    from cnnlab.data.text import decode, encode_tokens
    from cnnlab.viz.pictures import mistakes_table

    vocab = ["<pad>", "<unk>", "not", "good", "a", "|", "film"]
    ids = encode_tokens([["not", "good"], ["a", "|", "film", "zzz"]], vocab, min_len=5)  # padded to 5 columns
    assert ids[0].tolist() == [2, 3, 0, 0, 0] and decode(ids[0], vocab) == "not good"
    assert decode(ids[1], vocab) == "a | film <unk>"  # an unknown word stays visible as <unk>
    table = mistakes_table((ids, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0.91, 0.6])),
                           ["negative", "positive"], vocab, 40, "validation")
    lines = table.splitlines()
    assert lines[0] == "The 2 most confident mistakes (of 40 validation sentences)"
    assert lines[4] == "| 0.910 | negative | positive | not good |"
    assert lines[5] == "| 0.600 | positive | negative | a \\| film <unk> |"

"""What to draw, and when: first-layer filters, saliency, confusion and mistakes (for sentences a table in
TensorBoard's TEXT tab), image | truth | prediction overlays; all but saliency from the loop's validation pass."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from ..data.common import DataBundle, head
from ..data.text import decode
from ..data.toy import FUNCTIONS, poly_features
from ..tblog import RunLogger
from . import draw

log = logging.getLogger("cnnlab")


@torch.no_grad()
def boundary(model: nn.Module, bundle: DataBundle, device: torch.device, split: str, grid: int = 120) -> Tensor:
    """Decision regions of a 2-D classifier over its points' range, with the points of `bundle.val`."""
    x, y = head(bundle.val, 10_000)
    lo, hi = (x.min(0).values - 0.5).tolist(), (x.max(0).values + 0.5).tolist()
    rows, cols = torch.linspace(hi[1], lo[1], grid), torch.linspace(lo[0], hi[0], grid)  # row 0 at the top
    mesh = torch.cartesian_prod(rows, cols).flip(1)  # (x, y) points, row by row
    probs = model.eval()(mesh.to(device)).float().softmax(1).T.reshape(-1, grid, grid).cpu()
    from . import plots  # matplotlib, imported by the two toy tasks' pictures only (not at every command's start)
    return plots.as_image(plots.decision_boundary_figure(probs, lo, hi, x, y, bundle.class_names,
                          f"decision regions of {type(model).__name__} and the {split} points"))


@torch.no_grad()
def fitted_curve(model: nn.Module, bundle: DataBundle, device: torch.device, split: str) -> Tensor:
    """The fitted polynomial over [-1, 1], the true function, and the points of `bundle.val`."""
    x, y = head(bundle.val, 10_000)
    degree, function = int(bundle.state["degree"]), str(bundle.state["function"])
    xs = torch.linspace(-1, 1, 200)
    basis = str(bundle.state.get("basis", "monomial"))
    fit = model.eval()(poly_features(xs, degree, basis).to(device)).float().cpu().flatten()
    from . import plots
    return plots.as_image(plots.curves_figure(x[:, 0], y, xs, {f"degree {degree}": fit},
                                              f"least-squares fit, degree {degree}, on the {split} points",
                                              truth=FUNCTIONS[function](xs)))


def project_words(model: nn.Module, bundle: DataBundle, logger: RunLogger, step: int, top: int = 2000) -> None:
    """The learned embeddings of the `top` most frequent training words, for TensorBoard's embedding projector."""
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    vocab = bundle.state.get("vocab")
    if emb is None or not vocab:
        return
    n = min(top, len(vocab) - 2)  # the vocabulary is [<pad>, <unk>, most frequent first]
    logger.embedding("embeddings/most_frequent_words", emb.weight.detach()[2:2 + n], list(vocab[2:2 + n]), step)


def mistakes_table(mistakes: "tuple[Tensor, ...]", names: list[str], vocab: list[str], total: int,
                   split: str) -> str:
    """The most confidently misclassified sentences as a markdown table (most confident first)."""
    x, y, pred, conf = mistakes
    lines = [f"The {len(y)} most confident mistakes (of {total} {split} sentences)", "",
             "| probability | true | predicted | sentence |", "|---|---|---|---|"]
    for row, t, p, c in zip(x, y.tolist(), pred.tolist(), conf.tolist()):
        sentence = decode(row, vocab).replace("|", "\\|")  # a "|" in the text must not end the cell
        lines.append(f"| {c:.3f} | {names[t]} | {names[p]} | {sentence} |")
    return "\n".join(lines) + "\n"


def any_mistakes(val: dict[str, Any], final: bool, tag: str, what: str) -> bool:
    """Whether the pass kept mistakes to show; a pass without any draws nothing and, when `final`, says so."""
    found = val.get("mistakes") is not None and len(val["mistakes"][1]) > 0
    if final and val.get("mistakes") is not None and not found:
        log.info(f"none of the {int(val['confusion'].sum())} {what} is misclassified: no {tag} to draw")
    return found


def make_pictures(model: nn.Module, bundle: DataBundle, logger: RunLogger, out_dir: Optional[Path],
                  device: torch.device, step: Callable[[], int], num_images: int = 16,
                  smoothgrad: int = 0, split: str = "val") -> Callable[..., None]:
    """`pictures(epoch, val, final=False)` drawing a result `val` on `bundle.val` (PNGs into `out_dir` when final)."""
    # `split` (val, test or train) names bundle.val in tags, file names and captions
    names = [str(n) for n in bundle.class_names]
    words = {"val": "validation", "test": "test", "train": "training"}[split]

    def emit(tag: str, img: Tensor, final: bool) -> None:
        logger.image(tag, img, step())
        if final and out_dir is not None:
            draw.save_png(img, out_dir / f"{tag.replace('/', '_')}.png")

    def classification(val: dict[str, Any], final: bool) -> None:
        x, y = head(bundle.val, num_images)
        tag, total = f"errors/most_confident_{split}", int(val["confusion"].sum())
        if x.dim() == 4:  # images: saliency and mistakes
            x = x.to(device)
            with torch.no_grad():
                pred = model.eval()(x).argmax(1).cpu()
            sal = draw.saliency(model, x, y.to(device), smooth=smoothgrad).cpu()
            emit(f"saliency/{split}", draw.saliency_figure(x.cpu(), sal, [names[int(i)] for i in y],
                                                           [names[int(i)] for i in pred], bundle.mean, bundle.std,
                                                           smooth=smoothgrad), final)
            if any_mistakes(val, final, tag, f"{words} images"):
                emit(tag, draw.mistakes_figure(*val["mistakes"], names, bundle.mean, bundle.std, total, split=words),
                     final)
        elif bundle.state.get("vocab") and any_mistakes(val, final, tag, f"{words} sentences"):  # a table, no picture
            table = mistakes_table(val["mistakes"], names, bundle.state["vocab"], total, words)
            logger.text(tag, table, step())
            if final and out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / f"errors_most_confident_{split}.md").write_text(table, encoding="utf-8")

    def pictures(epoch: int, val: dict[str, Any], final: bool = False) -> None:  # noqa: ARG001 (epoch: callers')
        was_training = model.training
        conv = draw.first_conv(model)
        if conv is not None:
            emit("filters/first_layer", draw.filter_figure(conv.weight), final)
        kind = bundle.state.get("input")
        if kind == "points":
            emit(f"decision_regions/{split}", boundary(model, bundle, device, words), final)
        if kind == "poly1d":
            emit(f"fit/{split}", fitted_curve(model, bundle, device, words), final)
        if bundle.task == "text" and final:
            project_words(model, bundle, logger, step())
        if bundle.task == "segmentation":
            if val.get("examples"):
                emit(f"segmentation/{split}", draw.segmentation_figure(val["examples"], bundle.mean, bundle.std, words),
                     final)
        elif bundle.task != "regression":
            classification(val, final)
        if val["confusion"].numel():
            emit(f"confusion/{split}", draw.confusion_figure(val["confusion"], names, f"{words} confusion matrix"),
                 final)
        model.train(was_training)

    return pictures


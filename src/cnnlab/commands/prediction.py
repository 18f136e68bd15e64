"""`cnnlab-predict ckpt_path=... input=<file | folder | glob> output=<file or folder>`: a trained model applied to
new inputs with nothing but its checkpoint (weights, saved config, data state).

The checkpoint's task decides the reader (files -> model inputs, as the training data were prepared) and the
writer (logits -> CSV / masks / TSV): a new task registers its pair in READERS / WRITERS; the command does not
change.
"""
from __future__ import annotations

import csv
import glob
import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig
from torch import Tensor

from ..build import build_model, loop_settings, saved_config, trainer_settings
from ..checkpoint import atomic_write, load_checkpoint
from ..data.imageio import BAD_IMAGE, EXTENSIONS, load_image, prepare_images
from ..device import select_device
from ..engine import forward_batches
from ..errors import ConfigError
from ..report import RunInfo
from ..tblog import Progress

log = logging.getLogger("cnnlab")
PREDICT_KEYS = ("input", "output", "batch_size", "device", "text", "overlays", "submission")


def input_files(spec: str, extensions: tuple[str, ...]) -> list[Path]:
    """The files `input=` names: one file, every matching file below a folder, or a glob; sorted (stable order)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        where = f"folder {path}"
    else:
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        where = f"pattern {spec}"
    if not files:
        raise ConfigError(f"input={spec}: no {'/'.join(e.lstrip('.') for e in extensions)} files in the {where}: "
                          f"give a file, a folder of files, or a glob such as 'pics/*.png'")
    return files


class ImageReader:
    """Image files -> normalised batches, shaped as the training images were; unreadable files are counted."""

    extensions = EXTENSIONS

    def __init__(self, state: dict, cfg: DictConfig) -> None:
        self.state, self.prepare = state, prepare_images(state["mean"], state["std"])
        self.items = input_files(str(cfg.input), self.extensions)
        self.bad: list[Path] = []

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, indices into `items`) per batch of readable files."""
        for lo in range(0, len(self.items), size):
            xs, idx = [], []
            for i in range(lo, min(lo + size, len(self.items))):
                try:
                    xs.append(load_image(self.items[i], self.state))
                    idx.append(i)
                except BAD_IMAGE:
                    self.bad.append(self.items[i])
            if xs:
                yield self.prepare(torch.stack(xs), torch.tensor(idx))


class ClassCsvWriter:
    """`path,label,probability` (plus the runners-up to the top 5 when there are more than 5 classes), in input
    order, written atomically when done."""

    def __init__(self, state: dict, cfg: DictConfig, run_dir: Path) -> None:
        out = Path(str(cfg.output)) if cfg.get("output") else run_dir / "predictions.csv"
        self.path = out / "predictions.csv" if out.is_dir() or str(cfg.get("output", "")).endswith("/") else out
        self.names, self.rows = list(state["class_names"]), {}
        self.k = min(5, len(self.names)) if len(self.names) > 5 else 1

    def add(self, items: list, index: Tensor, logits: Tensor) -> None:
        probs, labels = logits.float().softmax(1).topk(self.k, dim=1)
        for i, p, c in zip(index.tolist(), probs.tolist(), labels.tolist()):
            row = [str(items[i]), self.names[c[0]], f"{p[0]:.6f}"]
            for j in range(1, self.k):
                row += [self.names[c[j]], f"{p[j]:.6f}"]
            self.rows[i] = row

    def close(self) -> str:
        header = ["path", "label", "probability"] + [f"{w}_{j + 1}" for j in range(1, self.k)
                                                     for w in ("label", "probability")]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(self.rows[i] for i in sorted(self.rows))
        atomic_write(self.path, lambda f: f.write(buf.getvalue().encode()))
        return f"{len(self.rows)} predictions in {self.path.resolve()}"


READERS: dict[str, Callable[[dict, DictConfig], Any]] = {"image": ImageReader}
WRITERS: dict[str, Callable[[dict, DictConfig, Path], Any]] = {"classification": ClassCsvWriter}


def load_predictor(cfg: DictConfig, info: RunInfo):
    """(model in eval mode, data state, loop settings) from the checkpoint alone."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("no checkpoint given: pass ckpt_path=<run folder>/checkpoints/best.pt")
    ckpt = load_checkpoint(cfg.ckpt_path, map_location="cpu")
    run_cfg = saved_config(cfg, info.overrides, ckpt, Path(cfg.ckpt_path), own_keys=PREDICT_KEYS)
    state = ckpt.get("data_state")
    if not state:
        raise ConfigError(f"checkpoint {cfg.ckpt_path} has no data state (written before cnnlab-predict existed): "
                          f"train the model again to predict with it")
    t = trainer_settings(run_cfg)
    loop = loop_settings(t, select_device(str(cfg.device or t.device)), None)
    choices = (ckpt.get("run_info") or {}).get("choices", {})
    names = (choices.get("model", "?"), choices.get("data", "?"))
    model = build_model(run_cfg.model, state["num_classes"], state.get("model_kwargs", {}), names)
    model.load_state_dict(ckpt["model"])
    return model.to(loop.device).eval(), state, loop


def predict(cfg: DictConfig, info: RunInfo) -> str:
    """Read the inputs, run the model over them batch by batch, write what the task writes; returns a summary."""
    model, state, loop = load_predictor(cfg, info)
    kind, task = state.get("input", "image"), state["task"]
    if kind not in READERS or task not in WRITERS:
        raise ConfigError(f"cnnlab-predict cannot read {kind} inputs for the {task} task of this checkpoint")
    if int(cfg.batch_size) < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is not valid: it must be >= 1")
    reader, writer = READERS[kind](state, cfg), WRITERS[task](state, cfg, info.run_dir)
    bar = Progress(-(-len(reader.items) // int(cfg.batch_size)), "predict", loop.progress)
    for n, (_, index, logits) in enumerate(forward_batches(model, reader.batches(int(cfg.batch_size)), loop), 1):
        writer.add(reader.items, index.cpu(), logits.cpu())
        bar.update(n)
    bar.close()
    if reader.bad:
        names = ", ".join(str(p) for p in reader.bad[:5]) + (" ..." if len(reader.bad) > 5 else "")
        log.warning(f"{len(reader.bad)} of {len(reader.items)} inputs could not be read and were skipped: {names}")
    summary = writer.close()
    log.info(summary)
    return summary

"""`cnnlab-predict ckpt_path=... input=<file | folder | glob> output=<file or folder>`: a trained model applied to
new inputs with nothing but its checkpoint. Its input kind picks the reader (files -> model inputs) and its task the
writer (logits -> CSV / masks / TSV): a new task adds its pair (a module beside this one) to `predict`'s tables."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from ..build import build_model, loop_settings, model_overrides
from ..checkpoint import load_checkpoint, load_weights
from ..data.common import offered_from_state
from ..device import select_device
from ..engine import forward_batches
from ..errors import ConfigError
from ..report import RunInfo
from ..schema import PredictConfig, check_at_least, own_keys, trainer_settings
from ..tblog import Progress
from ..trust import saved_config

log = logging.getLogger("cnnlab")
INPUT_WORDS = {"image": "images", "seg_image": "images", "text": "sentences", "points": "2-D points",
               "poly1d": "1-D numbers", "features": "feature vectors computed from images",
               "patches": "feature vectors of image patches", "vectors": "feature vectors"}


def load_predictor(cfg: DictConfig, info: RunInfo):
    """(model in eval mode, data state, loop settings) from the checkpoint alone."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("no checkpoint given: pass ckpt_path=<run folder>/checkpoints/best.pt")
    check_at_least(cfg, {"batch_size": 1})
    ckpt = load_checkpoint(cfg.ckpt_path, map_location="cpu")
    run_cfg = saved_config(cfg, info.overrides, ckpt, Path(cfg.ckpt_path), own_keys=own_keys(PredictConfig))
    state = ckpt.get("data_state")
    if not state:
        raise ConfigError(f"checkpoint {cfg.ckpt_path} has no data state (written before cnnlab-predict existed): "
                          f"train the model again to predict with it")
    t = trainer_settings(run_cfg.trainer)
    device = select_device(str(cfg.device), "device") if cfg.device else select_device(t.device)
    loop = loop_settings(t, device, None)
    choices = (ckpt.get("run_info") or {}).get("choices", {})
    names = (choices.get("model", "?"), choices.get("data", "?"))
    model = build_model(run_cfg.model, state["num_classes"], offered_from_state(state), names, pretrained=False)
    load_weights(model, ckpt["model"], cfg.ckpt_path, model_overrides(info.overrides))
    return model.to(loop.device).eval(), state, loop


def predict(cfg: DictConfig, info: RunInfo) -> str:
    """Read the inputs, run the model over them batch by batch, write what the task writes; returns a summary."""
    from .predict_images import ClassCsvWriter, FeatureReader, ImageReader
    from .predict_masks import MaskWriter, SegImageReader, patches_as_segmenter
    from .predict_text import LineReader, TextTsvWriter

    model, state, loop = load_predictor(cfg, info)
    if state.get("input") == "patches":  # a classifier of image patches writes masks, as a segmenter does
        model, state = patches_as_segmenter(model, state, str(cfg.ckpt_path))
    kind, task = state.get("input", "image"), state["task"]
    readers = {"image": ImageReader, "features": FeatureReader, "text": LineReader, "seg_image": SegImageReader}
    writers = {"classification": ClassCsvWriter, "text": TextTsvWriter, "segmentation": MaskWriter}
    if kind not in readers or task not in writers:
        raise ConfigError(f"cnnlab-predict applies image classifiers, segmenters and sentence classifiers to new "
                          f"files, but this checkpoint's model takes {INPUT_WORDS.get(kind, kind + ' inputs')} "
                          f"(data={state.get('name', '?')}): measure it on its data with cnnlab-eval "
                          f"ckpt_path={cfg.ckpt_path}")
    sentence = cfg.get("text")
    check_inputs(cfg, kind, sentence)
    one = {} if sentence is None else {"text": sentence}
    if task != "segmentation" and (cfg.get("submission") or cfg.get("overlays")):
        raise ConfigError(f"submission= and overlays=true are for segmentation models, and this checkpoint's model "
                          f"is a {task} model: leave them out")
    writer = writers[task](state, cfg, info.run_dir, **one)  # checks that the output can be written
    reader = readers[kind](state, cfg, **one)
    check_no_input_overwritten(cfg, writer.targets(reader.items), reader.items, kind)
    if hasattr(writer, "check"):
        writer.check(reader.items)
    bar = Progress(-(-len(reader.items) // int(cfg.batch_size)), "predict", loop.progress)
    batches = forward_batches(model, reader.batches(int(cfg.batch_size)), loop, dense=task == "segmentation")
    predicted = 0
    for n, (x, index, logits) in enumerate(batches, 1):
        writer.add(reader.items, index.cpu(), logits.cpu(), x.cpu())
        predicted += len(index)
        bar.update(n)
    bar.close()
    if reader.bad:
        names = ", ".join(str(p) for p in reader.bad[:5]) + (" ..." if len(reader.bad) > 5 else "")
        if not predicted:
            raise ConfigError(f"input={cfg.input}: nothing to predict, all {len(reader.bad)} input(s) "
                              f"{reader.bad_reason}: {names}: give files that open as images")
        log.warning(f"{len(reader.bad)} input(s) {reader.bad_reason} and were skipped: {names}")
    summary = writer.close()
    log.info(summary)
    return summary


def check_no_input_overwritten(cfg: DictConfig, outputs: list[Path], items: list, kind: str) -> None:
    """ConfigError before anything is written when an output file would replace an input (output=, submission=)."""
    if kind == "text":
        files = [Path(str(cfg.input))] if cfg.get("input") and str(cfg.input) != "-" else []
    else:
        files = [item[0] if isinstance(item, tuple) else item for item in items]
    inputs = {Path(f).expanduser().resolve() for f in files}
    for out in outputs:
        if Path(out).expanduser().resolve() in inputs:
            raise ConfigError(f"output={cfg.get('output')} would overwrite the input {out}: write the predictions to "
                              f"another file or folder, e.g. output={Path(out).parent / 'predictions'}/")


def check_inputs(cfg: DictConfig, kind: str, sentence: Optional[str]) -> None:
    """ConfigError unless exactly one of input= and text= is given, and text= only to a sentence model."""
    if sentence is not None and kind != "text":
        raise ConfigError(f"text= is for sentence models, and this checkpoint's model takes "
                          f"{INPUT_WORDS.get(kind, kind)}: pass input=<image file | folder | glob> instead")
    if sentence is not None and cfg.get("input"):
        raise ConfigError("both input= and text= are given: pass one (input=<text file> for many sentences)")
    if sentence is not None and cfg.get("output"):
        raise ConfigError("text= prints its prediction on the console and writes no file: for a file, put the "
                          "sentences in a text file and pass input=<that file> output=<file.tsv>")
    if sentence is not None and not sentence.strip():
        raise ConfigError("text= is empty: give a sentence, e.g. text=\"a gripping, beautifully acted film\"")
    if sentence is None and not cfg.get("input"):
        raise ConfigError("nothing to predict: pass input=<file | folder | glob> (sentence models: a text file, or "
                          "- for standard input; or text=\"one sentence\")")

"""The bodies of `cnnlab-eval` (a checkpoint's metrics on a split) and `cnnlab-viz` (its pictures, and with
`layer=` the features of a layer): the model and data are rebuilt from the checkpoint alone, its data state
supplying classes and normalisation, so only the split measured needs to be on disk."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from .. import tasks
from ..build import build_data, build_loss, build_model, loop_settings, model_overrides
from ..checkpoint import load_checkpoint, load_weights
from ..data.common import head, make_loader, offered_from_state
from ..device import select_device
from ..engine import evaluate
from ..errors import ConfigError
from ..metrics import per_class_accuracy
from ..report import RunInfo
from ..schema import EvalConfig, check_at_least, own_keys, trainer_settings
from ..tblog import RunLogger
from ..trust import read_saved_config, saved_config, trusted_targets
from ..viz.draw import save_png
from ..viz.pictures import make_pictures
from .predict_io import check_writable
from .training import check_compatible, meter_for

log = logging.getLogger("cnnlab")


def load_for_inference(cfg: DictConfig, info: RunInfo):
    """(saved config, model, data bundle, the split's loader, loop settings, loss) for `cnnlab-eval` / `cnnlab-viz`."""
    if not cfg.get("ckpt_path"):  # the command's own options first, before the checkpoint is read
        raise ConfigError("no checkpoint given: pass ckpt_path=<run folder>/checkpoints/best.pt")
    check_at_least(cfg, {"num_images": 1, "top": 1, "channels": 1, "layer_images": 1})
    if cfg.get("out_dir"):
        check_writable(cfg.out_dir, f"out_dir={cfg.out_dir}")
    ckpt = load_checkpoint(cfg.ckpt_path, map_location="cpu")
    run_cfg = saved_config(cfg, info.overrides, ckpt, Path(cfg.ckpt_path), own_keys=own_keys(EvalConfig))
    t = trainer_settings(run_cfg.trainer)
    loop = loop_settings(t, select_device(t.device), None)
    state = ckpt.get("data_state") or {}  # classes, normalisation, vocabulary: only the split measured is read
    bundle = build_data(run_cfg.data, state=state or None, only=str(cfg.split))
    saved_names = (ckpt.get("run_info") or {}).get("choices", {})
    names = (saved_names.get("model", info.choice("model")), saved_names.get("data", info.choice("data")))
    if state and list(state.get("class_names", [])) != list(bundle.class_names):
        raise ConfigError(f"the data's classes {bundle.class_names[:5]}... differ from the checkpoint's "
                          f"{state['class_names'][:5]}...: evaluate on data with the classes it was trained on")
    offered = offered_from_state(state) if state else bundle.model_kwargs
    model = build_model(run_cfg.model, bundle.num_classes, offered, names, pretrained=False)
    load_weights(model, ckpt["model"], cfg.ckpt_path, model_overrides(info.overrides))
    model.to(loop.device)
    check_compatible(model, bundle, names, loop)
    loss_fn = build_loss(run_cfg.loss, model, bundle, state.get("class_counts"))
    loader = make_loader(getattr(bundle, str(cfg.split)), run_cfg.trainer.eval_batch_size, False, loop.device,
                         num_workers=run_cfg.trainer.num_workers)
    return run_cfg, model.eval(), bundle, loader, loop, loss_fn


def load_model(ckpt_path: "str | Path", device: "str | torch.device" = "cpu",
               config_dirs: "tuple[str, ...] | list[str]" = ()) -> nn.Module:
    """A checkpoint's model in eval mode on `device`, with `model.data_state`; `config_dirs` as --config-dir."""
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    for folder in config_dirs:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))  # its .py files, as the commands find them
    run_cfg = read_saved_config(ckpt, ckpt_path, trusted_targets([str(d) for d in config_dirs]))
    state = ckpt.get("data_state") or {}
    if not state:
        raise ConfigError(f"checkpoint {ckpt_path} has no data state: it was not written by cnnlab-train")
    choices = (ckpt.get("run_info") or {}).get("choices", {})
    model = build_model(run_cfg.model, state["num_classes"], offered_from_state(state),
                        (choices.get("model", "?"), choices.get("data", "?")), pretrained=False)
    load_weights(model, ckpt["model"], ckpt_path)
    model.data_state = state
    return model.to(device).eval()


def evaluate_checkpoint(cfg: DictConfig, info: RunInfo) -> dict:
    """A checkpoint's metrics on `split`, in results.json with a training run's keys (`test/acc`, `test_confusion`)."""
    run_cfg, model, bundle, loader, loop, loss_fn = load_for_inference(cfg, info)
    result = evaluate(model, loader, loss_fn, meter_for(bundle, loop.device), loop)
    scalars = tasks.metric_names(bundle.task, bundle.num_classes, bundle.state)
    out = {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "split": cfg.split, "task": bundle.task,
           **{f"{cfg.split}/{k}": result[k] for k in scalars if k in result}}
    if bundle.task in tasks.CLASS_TASKS:
        out[f"per_class_{cfg.split}_acc"] = per_class_accuracy(result["confusion"], bundle.class_names)
    out[f"{cfg.split}_confusion"] = result["confusion"].tolist()
    out_dir = Path(cfg.out_dir) if cfg.out_dir else info.run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(out, indent=2))
    shown = " ".join(f"{k} {v:.4f}" for k, v in out.items() if k.startswith(f"{cfg.split}/"))
    log.info(f"{shown}; results in {(out_dir / 'results.json').resolve()}")
    return out


def visualise_checkpoint(cfg: DictConfig, info: RunInfo) -> Path:
    """First-layer filters, saliency maps, confusion matrix and worst mistakes (or overlays) of a checkpoint."""
    run_cfg, model, bundle, loader, loop, loss_fn = load_for_inference(cfg, info)
    split = getattr(bundle, str(cfg.split))
    bundle.val = split  # the pictures are drawn from the chosen split
    out_dir = Path(cfg.out_dir) if cfg.out_dir else info.run_dir
    val = evaluate(model, loader, loss_fn, meter_for(bundle, loop.device, True), loop)
    pictures = make_pictures(model, bundle, RunLogger(out_dir, enabled=False), out_dir, loop.device, lambda: 0,
                             num_images=cfg.num_images, smoothgrad=int(run_cfg.trainer.get("smoothgrad", 0)),
                             split=cfg.split)
    pictures(0, val, final=True)
    if cfg.get("layer"):  # the top patches per channel (and with `maximise=true` the optimised inputs)
        from ..viz import layers

        x, _ = head(split, int(cfg.get("layer_images", 2000)))
        tag = str(cfg.layer).replace(".", "_")
        save_png(layers.patches_figure(model, str(cfg.layer), x, bundle.mean, bundle.std, loop.device, k=int(cfg.top),
                                       channels=int(cfg.channels)), out_dir / f"layer_{tag}_top_patches.png")
        if cfg.get("maximise"):
            save_png(layers.maximised_figure(model, str(cfg.layer), tuple(x.shape[1:]), loop.device,
                                             channels=int(cfg.channels)), out_dir / f"layer_{tag}_maximised.png")
    log.info(f"pictures written to {out_dir.resolve()}: {', '.join(sorted(p.name for p in out_dir.glob('*.png')))}")
    return out_dir

"""`cnnlab-eval` and `cnnlab-viz`: rebuild a checkpoint's model and data from its saved config, then measure/draw."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from .checkpoint import load_checkpoint
from .data.common import DataBundle, make_loader
from .engine import LoopSettings, evaluate
from .errors import ConfigError
from .metrics import per_class_accuracy
from .pictures import make_pictures
from .run import build_loss, build_model, check_compatible, checkpoint_config, select_device
from .runinfo import RunInfo
from .tblog import RunLogger

log = logging.getLogger("cnnlab")
_OWN_KEYS = ("split", "out_dir", "num_images")


def load_for_inference(cfg: DictConfig, info: RunInfo):
    """(config, model with the checkpoint's weights, data bundle, device)."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("no checkpoint given: pass ckpt_path=<run folder>/checkpoints/best.pt")
    if cfg.split not in ("train", "val", "test"):
        raise ConfigError(f"split={cfg.split} is not known: use test, val or train")
    ckpt = load_checkpoint(cfg.ckpt_path, map_location="cpu")
    run_cfg = checkpoint_config(cfg, info.overrides, ckpt, Path(cfg.ckpt_path), own_keys=_OWN_KEYS)
    device = select_device(run_cfg.trainer.device)
    bundle: DataBundle = instantiate(run_cfg.data)
    model = build_model(run_cfg.model, bundle)
    model.load_state_dict(ckpt["model"])
    model.to(device)
    choices = (ckpt.get("run_info") or {}).get("choices", {})
    check_compatible(model, bundle, choices.get("model", "?"), choices.get("data", "?"), device)
    return run_cfg, model.eval(), bundle, device


def evaluate_checkpoint(cfg: DictConfig, info: RunInfo) -> dict:
    """Metrics of a checkpoint on `split` (test by default), written to metrics.json in the eval run folder."""
    run_cfg, model, bundle, device = load_for_inference(cfg, info)
    split = getattr(bundle, cfg.split)
    loader = make_loader(split, run_cfg.trainer.eval_batch_size, False, device,
                         num_workers=run_cfg.trainer.num_workers)
    settings = LoopSettings(epochs=0, device=device)
    result = evaluate(model, loader, build_loss(run_cfg.loss, model, bundle), bundle.num_classes, settings)
    out = {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "split": cfg.split,
           **{f"{cfg.split}/{k}": v for k, v in result.items() if k != "confusion"},
           "per_class_acc": per_class_accuracy(result["confusion"], bundle.class_names),
           "confusion": result["confusion"].tolist()}
    out_dir = Path(cfg.out_dir) if cfg.out_dir else info.run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(out, indent=2))
    log.info(f"{cfg.split}/acc {result['acc']:.4f} {cfg.split}/loss {result['loss']:.4f}; "
             f"metrics in {(out_dir / 'metrics.json').resolve()}")
    return out


def visualise_checkpoint(cfg: DictConfig, info: RunInfo) -> Path:
    """First-layer filters, saliency maps, confusion matrix and worst mistakes of a checkpoint, as PNG files."""
    _, model, bundle, device = load_for_inference(cfg, info)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else info.run_dir
    pictures = make_pictures(model, bundle, RunLogger(out_dir, enabled=False), out_dir, device, lambda: 0,
                             num_images=cfg.num_images)
    with torch.enable_grad():
        pictures(0, final=True)
    log.info(f"pictures written to {out_dir.resolve()}: {', '.join(sorted(p.name for p in out_dir.glob('*.png')))}")
    return out_dir

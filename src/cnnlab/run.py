"""The one module that turns a Hydra config into objects and calls the loop: `cnnlab-train`, `cnnlab-eval`."""
from __future__ import annotations

import inspect
import logging
import os
import random
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .checkpoint import load_checkpoint, set_rng_state
from .data.common import DataBundle, TensorSplit, head, make_loader
from .engine import LoopSettings, TrainState, evaluate, fit
from .device import select_device
from .errors import ConfigError, find_config_error, first_line
from .metrics import metric_names
from .models.init import SCHEMES, init_weights
from .pictures import make_pictures
from .runinfo import RunInfo, is_setting, parse_override, write_results, write_run_metadata
from .tblog import RunLogger

log = logging.getLogger("cnnlab")
AMP_DTYPES = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def validate(cfg: DictConfig, num_classes: int) -> None:
    """Reject bad trainer settings before any training, each with one line naming the key and its choices."""
    t = cfg.trainer
    metrics = metric_names(num_classes)
    checks = [
        (t.amp in AMP_DTYPES, f"trainer.amp={t.amp} is not known: use null, bf16 or fp16"),
        (t.mode in ("max", "min"), f"trainer.mode={t.mode} is not known: use max or min"),
        (t.batch_size >= 1 and t.eval_batch_size >= 1, "trainer.batch_size and trainer.eval_batch_size must be >= 1"),
        (t.epochs >= 0, f"trainer.epochs must be >= 0, got {t.epochs}"),
        (cfg.init in SCHEMES, f"init={cfg.init} is not known: use one of {', '.join(SCHEMES)}"),
        (t.monitor in [f"val/{m}" for m in metrics],
         f"trainer.monitor={t.monitor} is not reported for {num_classes} classes: use one of "
         f"{', '.join('val/' + m for m in metrics)}"),
        (cfg.optimized_metric in [f"{s}/{m}" for s in ("val", "test") for m in metrics],
         f"optimized_metric={cfg.optimized_metric} is not reported for {num_classes} classes: use val/ (or "
         f"test/) with one of {', '.join(metrics)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; `deterministic` also forbids non-deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # set both ways: the flag is process-wide. warn_only: LRN/adaptive pools lack a deterministic CUDA backward
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def built(group: str, make: Callable[[], Any]) -> Any:
    """`make()`, with a failure inside the `group` config's code reported as one line naming that group."""
    try:
        return make()
    except (InstantiationException, TypeError, ValueError, KeyError, RuntimeError, OSError) as e:
        inner = find_config_error(e)
        if inner is not None:
            raise inner from None
        if isinstance(e, InstantiationException) and e.__cause__ is None:  # hydra put the cause in its text
            lines = str(e).strip().splitlines()
            text = lines[1] if len(lines) > 1 else lines[0]
        else:
            cause = e.__cause__ if e.__cause__ is not None else e
            text = f"{type(cause).__name__}: {first_line(cause)}"
        raise ConfigError(f"{group} config could not be built ({text[:200]}): check the {group}=... choice and "
                          f"{group}.* overrides") from None


def build_model(model_cfg: DictConfig, bundle: DataBundle) -> nn.Module:
    """Instantiate the model, passing num_classes and the data's model_kwargs that its constructor accepts.

    A value the model config sets itself (e.g. AlexNet's `in_channels: 3`) wins over the data's.
    """
    target = get_object(model_cfg._target_)
    params = inspect.signature(target).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    offered = {"num_classes": bundle.num_classes, **bundle.model_kwargs}
    kwargs = {k: v for k, v in offered.items() if (takes_all or k in params) and k not in model_cfg}
    return instantiate(model_cfg, **kwargs)


def build_optimizer(optim_cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Weight decay (the l2 penalty) on weight matrices/kernels only, never on biases, norm scales, or the
    parameters a model names in `no_weight_decay()` (e.g. word embeddings)."""
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2 and n not in exempt]
    no_decay = [p for n, p in named if p.ndim < 2 or n in exempt]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return instantiate(optim_cfg)([g for g in groups if g["params"]])


def build_loss(loss_cfg: DictConfig, model: nn.Module, bundle: Optional[DataBundle] = None) -> nn.Module:
    """The configured criterion; `loss=auto` takes the model's own (`criterion` class attribute) or cross-entropy.

    A loss that accepts `class_counts` gets the training labels' counts (for `loss.weight=balanced`).
    """
    if loss_cfg.get("auto"):
        return getattr(model, "criterion", nn.CrossEntropyLoss)()
    needs = getattr(get_object(loss_cfg._target_), "needs_model", None)
    if needs is not None and type(model).__name__ != needs:
        raise ConfigError(f"loss={loss_cfg._target_.rsplit('.', 1)[-1]} needs model {needs} (its outputs are RBF "
                          f"penalties): use model=lenet5_classic, or loss=cross_entropy for {type(model).__name__}")
    params = inspect.signature(get_object(loss_cfg._target_)).parameters
    if bundle is not None and "class_counts" in params and isinstance(bundle.train, TensorSplit):
        counts = torch.bincount(bundle.train.targets.flatten().cpu(), minlength=bundle.num_classes)
        return instantiate(loss_cfg, class_counts=counts[:bundle.num_classes].tolist())
    return instantiate(loss_cfg)


def check_compatible(net: nn.Module, bundle: DataBundle, model_name: str, data_name: str,
                     device: torch.device) -> None:
    """Push two validation samples through the model before training, so a mismatch fails in a second."""
    sample = head(bundle.val, 2)[0]
    net.eval()
    sample = sample.to(device)
    check = getattr(net, "check_input", None)  # a model's own check names the config to change
    if check is not None:
        check(sample)
    try:
        with torch.no_grad():
            out = net(sample)
    except ConfigError:
        raise
    except RuntimeError as e:
        first = first_line(e)
        raise ConfigError(f"model={model_name} cannot take data={data_name} inputs of shape "
                          f"{list(sample.shape[1:])} ({first}): choose a model that fits the data, or resize the "
                          f"data (e.g. data.size=...)") from None
    if out.shape[1] != bundle.num_classes:
        raise ConfigError(f"model={model_name} outputs {out.shape[1]} classes but data={data_name} has "
                          f"{bundle.num_classes}: remove model.num_classes from the model config")


def _settings(cfg: DictConfig, device: torch.device, ckpt_dir: Optional[Path]) -> LoopSettings:
    t = cfg.trainer
    amp = AMP_DTYPES[t.amp]
    if amp is not None and device.type != "cuda":
        log.info(f"trainer.amp={t.amp} ignored: mixed precision is used on CUDA only (device is {device})")
        amp = None
    return LoopSettings(epochs=t.epochs, device=device, amp_dtype=amp, clip_grad=t.clip_grad,
                        log_every=t.log_every, monitor=t.monitor, mode=t.mode, ckpt_dir=ckpt_dir,
                        pictures_every=t.pictures_every, progress=t.progress, channels_last=t.channels_last)


def _resume_path(cfg: DictConfig, run_dir: Path) -> Optional[Path]:
    if cfg.ckpt_path:
        return Path(cfg.ckpt_path)
    if cfg.resume:
        path = run_dir / "checkpoints" / "last.pt"
        if not path.is_file():
            raise ConfigError(f"resume=true but {path} does not exist: pass hydra.run.dir=<the run folder to "
                              f"resume> or ckpt_path=<file.pt>")
        return path
    return None


def checkpoint_config(cfg: DictConfig, overrides: list[str], ckpt: dict[str, Any], path: Path,
                      own_keys: tuple[str, ...] = ()) -> DictConfig:
    """The config saved in a checkpoint, with every key named on this command line taken from `cfg` instead."""
    saved = OmegaConf.create(ckpt.get("config") or "{}")
    if "model" not in saved:
        raise ConfigError(f"checkpoint {path} has no saved config: it was not written by cnnlab-train")
    for item in filter(is_setting, overrides):
        key = parse_override(item)[0]
        if key.split(".")[0] not in own_keys:
            OmegaConf.update(saved, key, OmegaConf.select(cfg, key), force_add=True)
    return saved


def restore(state: TrainState, ckpt: dict[str, Any], loader: Any) -> None:
    """Put model, optimizer, schedule, AMP scaler, counters and every RNG back where the checkpoint left them."""
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.scaler is not None and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.best, state.best_epoch, state.history = ckpt["best"], ckpt["best_epoch"], list(ckpt["history"])
    set_rng_state(ckpt["rng"])
    saved = ckpt.get("loader_rng")
    if saved is not None and saved.numel() == loader.generator.get_state().numel():
        loader.generator.set_state(saved)
    elif saved is not None:
        log.warning("the checkpoint's data-order RNG is for another device type: the shuffle order will differ")


def train(cfg: DictConfig, info: RunInfo) -> float:
    """Build everything from `cfg`, train, test the best checkpoint, write results; returns the optimised metric.

    With `resume=true` or `ckpt_path=...` the run continues with the checkpoint's own config; keys given on this
    command line (e.g. `trainer.epochs=40`) replace its values.
    """
    run_dir = info.run_dir
    resume = _resume_path(cfg, run_dir)
    ckpt = load_checkpoint(resume, map_location="cpu") if resume is not None else None  # RNG states stay on CPU
    if ckpt is not None:
        cfg = checkpoint_config(cfg, info.overrides, ckpt, resume)
        info.continue_from(ckpt.get("run_info"))
    info.name = info.name or str(cfg.get("name") or "")
    t = cfg.trainer
    if not isinstance(cfg.seed, int) or not isinstance(t.epochs, int):
        raise ConfigError(f"seed={cfg.seed} and trainer.epochs={t.epochs} must be whole numbers")
    seed_everything(cfg.seed, t.deterministic)
    device = select_device(t.device)
    log.info(f"run folder: {run_dir.resolve()}  (device {device})")
    bundle: DataBundle = built("data", lambda: instantiate(cfg.data))
    validate(cfg, bundle.num_classes)
    model = init_weights(built("model", lambda: build_model(cfg.model, bundle)), cfg.init).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_compatible(model, bundle, info.choice("model"), info.choice("data"), device)
    net = torch.compile(model) if t.compile else model
    train_loader = make_loader(bundle.train, t.batch_size, True, device, augment=bundle.train_augment,
                               seed=cfg.seed, drop_last=t.drop_last, num_workers=t.num_workers)
    if len(train_loader) == 0:
        raise ConfigError(f"the training split has {len(bundle.train)} samples, fewer than trainer.batch_size="
                          f"{t.batch_size} with trainer.drop_last=true: lower the batch size or set drop_last=false")
    val_loader = make_loader(bundle.val, t.eval_batch_size, False, device, num_workers=t.num_workers)
    optimizer = built("optim", lambda: build_optimizer(cfg.optim, model))
    scheduler = built("sched", lambda: instantiate(cfg.sched)(optimizer, total_steps=t.epochs * len(train_loader),
                                                              steps_per_epoch=len(train_loader)))
    settings = _settings(cfg, device, run_dir / "checkpoints")
    scaler = torch.amp.GradScaler("cuda") if settings.amp_dtype == torch.float16 else None
    state = TrainState(model, optimizer, scheduler, net=net, scaler=scaler)
    if ckpt is not None:
        restore(state, ckpt, train_loader)
        log.info(f"resumed from {resume} at epoch {state.epoch}, step {state.step}")
    loss_fn = built("loss", lambda: build_loss(cfg.loss, model, bundle))
    logger = RunLogger(run_dir / "tb", enabled=t.tensorboard)
    write_run_metadata(cfg, info, model, device)
    pictures = make_pictures(model, bundle, logger, run_dir / "pictures", device, lambda: state.step)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    fit(state, train_loader, val_loader, loss_fn, bundle.num_classes, settings, logger,
        lambda: {"config": config_yaml, "loader_rng": train_loader.generator.get_state(),
                 "run_info": info.as_dict()}, pictures)
    best = settings.ckpt_dir / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best, map_location=device)["model"])
    test_loader = make_loader(bundle.test, t.eval_batch_size, False, device, num_workers=t.num_workers)
    test = evaluate(net, test_loader, loss_fn, bundle.num_classes, settings)
    pictures(state.epoch, final=True)
    results = write_results(run_dir, state, test, bundle, info, logger)
    logger.close()
    log.info(f"test/acc {test['acc']:.4f} (best val epoch {state.best_epoch}); results in {run_dir.resolve()}")
    return float(results[cfg.optimized_metric])

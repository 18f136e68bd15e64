"""The one train/eval loop for every model: plain functions over (inputs, targets) batches and logits."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from .checkpoint import link_atomic, rng_state, save_checkpoint
from .metrics import confusion_matrix, metric_names, metrics_from_confusion, topk_correct
from .tblog import Progress, RunLogger

log = logging.getLogger("cnnlab")


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class LoopSettings:
    """What the loop needs to know, decided once in run.py from the trainer config."""

    epochs: int
    device: torch.device
    amp_dtype: Optional[torch.dtype] = None   # bf16/fp16 autocast on CUDA; None = full precision
    clip_grad: float = 0.0                     # max global grad norm; 0 = off
    log_every: int = 50                        # steps between train/loss points (and NaN checks)
    monitor: str = "val/acc"                   # metric that picks best.pt
    mode: str = "max"
    ckpt_dir: Optional[Path] = None
    pictures_every: int = 0                    # epochs between TensorBoard pictures; 0 = only at the end
    progress: Optional[bool] = None            # None = a bar when stderr is a terminal
    channels_last: bool = False                # NHWC batches for NHWC weights (tensor-core friendly on CUDA)


@dataclass
class TrainState:
    """Everything a checkpoint restores. `net` is what runs forward (maybe compiled); `model` is what is saved."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    net: Optional[Callable[[Tensor], Tensor]] = None
    scaler: Optional[torch.amp.GradScaler] = None
    epoch: int = 0
    step: int = 0
    best: Optional[float] = None
    best_epoch: int = 0
    history: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.net is None:  # not `or`: a compiled module has no truth value of its own
            self.net = self.model
        # a model may re-impose a constraint after every optimisation step (e.g. Kim 2014's max-norm)
        self.after_step: Optional[Callable[[], None]] = getattr(self.model, "after_step", None)


def _autocast(settings: LoopSettings) -> torch.autocast:
    enabled = settings.amp_dtype is not None and settings.device.type == "cuda"
    return torch.autocast(settings.device.type, dtype=settings.amp_dtype or torch.float32, enabled=enabled)


def _to_device(x: Tensor, y: Tensor, settings: LoopSettings) -> tuple[Tensor, Tensor]:
    x, y = x.to(settings.device, non_blocking=True), y.to(settings.device, non_blocking=True)
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _check_finite(losses: Tensor, lo: int, hi: int, step0: int, epoch: int) -> None:
    """Raise, naming the first bad step, if any loss in losses[lo:hi] is not finite (one host sync)."""
    window = losses[lo:hi]
    if not bool(torch.isfinite(window).all()):
        bad = lo + int((~torch.isfinite(window)).nonzero()[0])
        raise NonFiniteLoss(f"training loss is {losses[bad].item()} at step {step0 + bad + 1} (epoch {epoch}, "
                            f"batch {bad + 1}): lower optim.lr, set trainer.clip_grad, or check the inputs")


def _backward_step(state: TrainState, loss: Tensor, settings: LoopSettings) -> None:
    opt = state.optimizer
    opt.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(opt)
    else:
        loss.backward()
    if settings.clip_grad > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), settings.clip_grad)
    if state.scaler is not None:
        state.scaler.step(opt)
        state.scaler.update()
    else:
        opt.step()
    if state.after_step is not None:
        state.after_step()
    state.scheduler.step()


def train_one_epoch(state: TrainState, loader: Iterable, loss_fn: Callable, settings: LoopSettings,
                    logger: RunLogger, epoch: int) -> dict[str, float]:
    """One pass over `loader`; losses stay on the device and are read every `log_every` steps."""
    state.model.train()
    n_batches = len(loader)
    losses = torch.zeros(n_batches, device=settings.device)
    step0, seen, checked = state.step, 0, 0
    bar = Progress(n_batches, f"epoch {epoch}", settings.progress)
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = _to_device(x, y, settings)
        with _autocast(settings):
            loss = loss_fn(state.net(x), y)
        _backward_step(state, loss, settings)
        losses[i] = loss.detach()
        seen += len(y)
        state.step += 1
        if (i + 1) % settings.log_every == 0 or i + 1 == n_batches:
            _check_finite(losses, checked, i + 1, step0, epoch)
            recent = losses[checked:i + 1].mean().item()
            checked = i + 1
            logger.scalars({"train/loss": recent, "train/lr": state.optimizer.param_groups[0]["lr"]}, state.step)
            bar.update(i + 1, recent)
    if settings.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    bar.close()
    return {"loss": losses.mean().item(), "seconds": seconds, "samples_per_s": seen / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate(net: Callable, loader: Iterable, loss_fn: Callable, num_classes: int,
             settings: LoopSettings) -> dict[str, Any]:
    """Mean loss, confusion matrix and its metrics (plus top-5 for many-class classification)."""
    if isinstance(net, nn.Module):
        net.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=settings.device)
    loss_sum = torch.zeros((), device=settings.device)
    top5 = torch.zeros((), dtype=torch.long, device=settings.device)
    want_top5 = "top5" in metric_names(num_classes)
    n = 0
    for x, y in loader:
        x, y = _to_device(x, y, settings)
        with _autocast(settings):
            logits = net(x)
            loss_sum += loss_fn(logits, y).float() * len(y)
        cm += confusion_matrix(logits.argmax(1), y, num_classes)
        if want_top5:
            top5 += topk_correct(logits, y, 5)
        n += len(y)
    out: dict[str, Any] = {"loss": loss_sum.item() / max(n, 1), **metrics_from_confusion(cm.cpu())}
    if want_top5:
        out["top5"] = top5.item() / max(n, 1)
    out["confusion"] = cm.cpu()
    return out


def checkpoint_state(state: TrainState, extra: dict[str, Any]) -> dict[str, Any]:
    """The dict written to last.pt/best.pt: tensors and plain data only (loadable with weights_only=True)."""
    return {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "epoch": state.epoch, "step": state.step, "best": state.best, "best_epoch": state.best_epoch,
        "history": state.history, "rng": rng_state(), **extra,
    }


_SHOWN = ("val/loss", "val/acc", "val/top5", "val/f1", "val/iou")  # the epoch line; TensorBoard gets all


def _improved(value: float, best: Optional[float], mode: str) -> bool:
    return best is None or (value >= best if mode == "max" else value <= best)  # ties: the later epoch


def fit(state: TrainState, train_loader: Iterable, val_loader: Iterable, loss_fn: Callable, num_classes: int,
        settings: LoopSettings, logger: RunLogger, extra_state: Callable[[], dict[str, Any]],
        pictures: Optional[Callable[[int], None]] = None) -> TrainState:
    """Train from `state.epoch + 1` to `settings.epochs`; best.pt by the monitored metric, last.pt every epoch."""
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        train = train_one_epoch(state, train_loader, loss_fn, settings, logger, epoch)
        val = evaluate(state.net, val_loader, loss_fn, num_classes, settings)
        state.epoch = epoch
        row = {"epoch": epoch, "train/loss": train["loss"], "train/epoch_time_s": train["seconds"],
               "train/samples_per_s": train["samples_per_s"],
               **{f"val/{k}": v for k, v in val.items() if k != "confusion"}}
        state.history.append(row)
        logger.scalars({k: v for k, v in row.items() if k not in ("epoch", "train/loss")}, state.step)
        shown = " ".join(f"{k} {row[k]:.4f}" for k in _SHOWN if k in row)
        log.info(f"epoch {epoch}/{settings.epochs} train/loss {train['loss']:.4f} {shown} "
                 f"({train['seconds']:.1f}s, {train['samples_per_s']:.0f} samples/s)")
        is_best = _improved(row[settings.monitor], state.best, settings.mode)
        if is_best:
            state.best, state.best_epoch = row[settings.monitor], epoch
        if settings.ckpt_dir is not None:  # written once; last.pt (the resume point) is always written last
            ckpt, last = checkpoint_state(state, extra_state()), settings.ckpt_dir / "last.pt"
            if is_best:
                link_atomic(save_checkpoint(ckpt, settings.ckpt_dir / "best.pt"), last)
            else:
                save_checkpoint(ckpt, last)
        final_epoch = epoch == settings.epochs  # the caller draws the final pictures after testing
        due = settings.pictures_every and epoch % settings.pictures_every == 0
        if pictures is not None and due and not final_epoch:
            pictures(epoch)
    return state

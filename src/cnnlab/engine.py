"""The one train/eval loop for every model and task: plain functions over (inputs, targets) batches and logits."""
from __future__ import annotations

import copy
import itertools
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import Tensor, nn

from .checkpoint import BEST, LAST, link_atomic, rng_state, save_checkpoint, set_rng_state
from . import distributed
from .distributed import any_rank, mean_over_ranks
from .errors import ConfigError
from .schema import TrainerConfig
from .tblog import Progress, RunLogger
from .tiling import dihedral_mean_probs, tiled_logits

log = logging.getLogger("cnnlab")
_NO_SCALING = torch.amp.GradScaler("cuda", enabled=False)  # fp16 only: otherwise every call passes straight through


class NonFiniteLoss(ConfigError):
    """The training loss became NaN or infinite (a setting to change, reported in one line)."""


def position(epochs_done: int, batch_in_epoch: int, step: int) -> str:
    """Where a run stands, in the words both the stop message and the resumed run print."""
    if batch_in_epoch:
        return f"in epoch {epochs_done + 1} ({epochs_done} completed), after its batch {batch_in_epoch} (step {step})"
    return f"after epoch {epochs_done} ({epochs_done} completed), at step {step}" if epochs_done else "before epoch 1"


class TrainingStopped(BaseException):
    """A stop signal arrived; a checkpoint at the step boundary was written. BaseException: sweeps end too."""

    def __init__(self, signal_name: str, state: "TrainState") -> None:
        self.signal_name, self.step = signal_name, state.step
        self.where = position(state.epoch, state.batch_in_epoch, state.step)  # what the checkpoint holds
        super().__init__(f"{signal_name} {self.where}")


class StopRequest:
    """Set by SIGTERM, SIGINT or SIGUSR1: the loop stops at the next step boundary and checkpoints."""

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self.previous: dict[int, Any] = {}  # the handlers there were before (e.g. submitit's requeue on SIGUSR1)
        self.finishing: Optional["TrainState"] = None  # training is done and the run is testing this state

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def forward(self) -> None:
        """After the checkpoint: pass the signal on to the previous handler (submitit's requeues the job on SLURM)."""
        signum = getattr(signal, self.signal_name or "", None)
        handler = self.previous.get(signum) if signum is not None else None
        if callable(handler):
            handler(signum, None)

    def handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 (signal handler signature)
        if signum == signal.SIGINT and self:  # Ctrl-C pressed twice
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        if self.finishing is not None:  # no step boundary is coming: stop now, the training's checkpoints stand
            log.warning(f"{self.signal_name} received while the trained model is tested: stopping now (resuming "
                        f"runs the final test again)")
            raise TrainingStopped(self.signal_name, self.finishing)
        log.warning(f"{self.signal_name} received: stopping at the next step boundary with a checkpoint")


STOP = StopRequest()


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging), updated after every optimisation step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1  # avg <- d avg + (1 - d) weights; a smaller d early, not to keep the initial weights
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(list(self.module.parameters()), list(model.parameters()), 1.0 - d)
        for mine, theirs in zip(self.module.buffers(), model.buffers()):  # batch-norm statistics: copied
            mine.copy_(theirs)


@dataclass
class LoopSettings(TrainerConfig):
    """The trainer settings, plus the device, autocast dtype and checkpoint folder; a budget may lower `epochs`."""

    device: torch.device = torch.device("cpu")
    amp_dtype: Optional[torch.dtype] = None   # bf16/fp16 autocast (CUDA; bf16 also on CPU); None = full precision
    ckpt_dir: Optional[Path] = None


# what a checkpoint keeps of a TrainState besides the state dicts
COUNTERS = ("epoch", "step", "best", "best_epoch", "history", "batch_in_epoch", "epoch_losses", "epoch_pace")


@dataclass
class TrainState:
    """Everything a checkpoint restores. `net` is what runs forward (maybe compiled); `model` is what is saved."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    net: Optional[Callable[[Tensor], Tensor]] = None       # what trains: maybe compiled, maybe DDP-wrapped
    eval_net: Optional[Callable[[Tensor], Tensor]] = None  # what evaluates: never DDP (no collectives per batch)
    scaler: Optional[torch.amp.GradScaler] = None
    ema: Optional[WeightAverage] = None         # trainer.ema > 0: the averaged weights, evaluated and saved
    epoch: int = 0                              # completed epochs
    step: int = 0                               # optimisation steps taken
    best: Optional[float] = None
    best_epoch: int = 0
    history: list = field(default_factory=list)
    batch_in_epoch: int = 0                     # batches of epoch `epoch + 1` already taken (a mid-epoch stop)
    epoch_losses: Optional[Tensor] = None       # their losses
    epoch_pace: Optional[list] = None           # [seconds, steps] they took after each process's first step

    def __post_init__(self) -> None:
        if self.net is None:  # not `or`: a compiled module has no truth value of its own
            self.net = self.model
        if self.eval_net is None:
            self.eval_net = self.ema.module if self.ema is not None else self.net
        # a model may re-impose a constraint after every optimisation step (e.g. Kim 2014's max-norm)
        self.after_step: Optional[Callable[[], None]] = getattr(self.model, "after_step", None)

    def evaluated_model(self) -> nn.Module:
        """The weights validated, tested and saved as `model`: the average with trainer.ema, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model


def _autocast(settings: LoopSettings) -> torch.autocast:
    enabled = settings.amp_dtype is not None  # loop_settings keeps it only where autocast runs (CUDA, bf16 CPUs)
    return torch.autocast(settings.device.type, dtype=settings.amp_dtype or torch.float32, enabled=enabled)


def _to_device(x: Tensor, settings: LoopSettings) -> Tensor:
    x = x.to(settings.device, non_blocking=True)
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _batches(loader: Iterable, skip: int = 0) -> Iterator:
    """The loader's batches from batch `skip` on, drawn in the same random order as an uninterrupted epoch."""
    if skip and hasattr(loader, "batches"):
        return loader.batches(skip)
    it = iter(loader)
    if skip:  # a DataLoader: its first batches loaded and dropped, without using up the random state they drew from
        saved = rng_state()  # (transforms run in this process with num_workers=0)
        for _ in itertools.islice(it, skip):
            pass
        set_rng_state(saved)
    return it


def dense_forward(net: Callable, x: Tensor, settings: LoopSettings) -> Tensor:
    """A segmenter's logits for whole images: tiled past `eval_tile`; with `tta` averaged over 8 flips/turns."""
    def once(t: Tensor) -> Tensor:
        if settings.eval_tile and max(t.shape[-2:]) > settings.eval_tile:
            return tiled_logits(net, t, settings.eval_tile, settings.eval_overlap)
        return net(t)

    return dihedral_mean_probs(once, x).clamp_min(1e-12).log() if settings.tta else once(x)  # log: softmax undoes it


@torch.no_grad()
def forward_batches(net: Callable, loader: Iterable, settings: LoopSettings,
                    dense: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(inputs, targets, logits) per batch, in eval mode: THE forward path; `dense`: per-pixel (tiles, flips apply)."""
    if isinstance(net, nn.Module):
        net.eval()
    for x, y in loader:
        x = _to_device(x, settings)
        with _autocast(settings):
            logits = dense_forward(net, x, settings) if dense and x.dim() == 4 else net(x)
        yield x, y.to(settings.device, non_blocking=True), logits


def evaluate(net: Callable, loader: Iterable, loss_fn: Callable, meter: Any, settings: LoopSettings) -> dict[str, Any]:
    """The task's metrics (from `meter`) and the mean loss over `loader` (summed over the ranks' shards)."""
    for x, y, logits in forward_batches(net, loader, settings, dense=getattr(meter, "dense", False)):
        if len(y) == 0:  # this rank's share of a last, small batch
            continue
        with _autocast(settings):
            loss = loss_fn(logits, y).float()
        meter.update(x, y, logits.float(), loss)
    if distributed.WORLD.active:
        meter.reduce()
    return meter.compute()


def _check_finite(losses: Tensor, lo: int, hi: int, step0: int, epoch: int) -> None:
    """Raise, naming the first bad step, if any loss in losses[lo:hi] is not finite (one host sync)."""
    window = losses[lo:hi]
    if not bool(torch.isfinite(window).all()):
        bad = lo + int((~torch.isfinite(window)).nonzero()[0])
        raise NonFiniteLoss(f"training loss is {losses[bad].item()} at step {step0 + bad + 1} (epoch {epoch}, "
                            f"batch {bad + 1}): lower optim.lr, set trainer.clip_grad, or check the inputs")


def _backward_step(state: TrainState, loss: Tensor, settings: LoopSettings) -> None:
    opt, scaler = state.optimizer, state.scaler or _NO_SCALING
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if settings.clip_grad > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(state.model.parameters(), settings.clip_grad)
    scaler.step(opt)
    scaler.update()
    if state.after_step is not None:
        state.after_step()
    if state.ema is not None:
        state.ema.update(state.model)
    state.scheduler.step()


def train_one_epoch(state: TrainState, loader: Iterable, loss_fn: Callable, settings: LoopSettings,
                    logger: RunLogger, epoch: int) -> dict[str, Any]:
    """One pass over `loader` from `state.batch_in_epoch` on, to its end or to a stop signal (`stopped`)."""
    state.model.train()
    n_batches, start = len(loader), state.batch_in_epoch
    losses = torch.zeros(n_batches, device=settings.device)  # on the device, read every log_every steps
    if start:
        losses[:start] = state.epoch_losses.to(settings.device)
    # train/loss points average the steps since the last multiple of log_every, as in a run that never stopped
    step0, seen, checked = state.step - start, 0, start - start % settings.log_every
    bar = Progress(n_batches, f"epoch {epoch}/{settings.epochs}", settings.progress, done=start)
    began = first = time.perf_counter()
    for i, (x, y) in enumerate(_batches(loader, start), start=start):
        x, y = _to_device(x, settings), y.to(settings.device, non_blocking=True)
        with _autocast(settings):
            loss = loss_fn(state.net(x), y)
        _backward_step(state, loss, settings)
        losses[i] = loss.detach()
        seen += len(y)
        state.step += 1
        # every rank stops at the same step; the flag goes through gloo on the CPU: no wait for the GPU's queued work
        stop = any_rank(bool(STOP))
        due = (i + 1) % settings.log_every == 0 or i + 1 == n_batches
        if due or stop:  # a stop checks what it saves, and logs nothing the resumed run will log again
            _check_finite(losses, checked, i + 1, step0, epoch)
        recent = None
        if due:
            recent = mean_over_ranks(losses[checked:i + 1].mean().item(), settings.device)
            checked = i + 1
            logger.scalars({"train/loss": recent, "train/lr": state.optimizer.param_groups[0]["lr"]}, state.step)
        bar.update(i + 1, recent)
        if i == start:
            if settings.device.type == "cuda":  # the first step's queued GPU work counts as the first step's
                torch.cuda.synchronize(settings.device)
            first = time.perf_counter()  # the first step pays one-off costs (allocation, compilation)
        if stop and i + 1 < n_batches:
            break
    if settings.device.type == "cuda":
        torch.cuda.synchronize(settings.device)  # the run's GPU (cuda:1 is not the current one unless set)
    end = time.perf_counter()
    bar.close()
    # the time after each process's first step (trainer.budget_min's pace), summed over a stop and its resumption
    before = state.epoch_pace or [0.0, 0]
    paced, steps = before[0] + end - first, before[1] + i - start
    if i + 1 < n_batches:  # stopped
        state.batch_in_epoch, state.epoch_losses, state.epoch_pace = i + 1, losses[:i + 1].cpu(), [paced, steps]
        return {"stopped": True}
    seconds, ran = end - began, n_batches - start
    pace = paced * n_batches / steps if steps > 0 else seconds * n_batches / ran
    state.batch_in_epoch, state.epoch_losses, state.epoch_pace = 0, None, None
    seen *= distributed.WORLD.size  # every rank took an equal share
    return {"stopped": False, "loss": mean_over_ranks(losses.mean().item(), settings.device), "seconds": seconds,
            "samples": seen, "samples_per_s": seen / max(seconds, 1e-9), "epoch_s": pace}


def log_histograms(model: nn.Module, logger: RunLogger, step: int) -> None:
    """Weight and gradient histograms of the first and the last layer with weights (TensorBoard's HISTOGRAMS)."""
    weights = [(n, p) for n, p in model.named_parameters() if n.endswith("weight") and p.ndim >= 2]
    for name, p in (weights[:1] + weights[-1:] if len(weights) > 1 else weights):
        logger.histogram(f"weights/{name}", p.detach(), step)
        if p.grad is not None:
            logger.histogram(f"gradients/{name}", p.grad.detach(), step)


def _save(state: TrainState, extra: dict[str, Any], settings: LoopSettings, is_best: bool) -> None:
    """Write the checkpoint once (tensors and plain data only: weights_only loads); last.pt, the resume point, last."""
    if settings.ckpt_dir is None:
        return
    averaged = {} if state.ema is None else {"train_model": state.model.state_dict(), "ema_updates": state.ema.updates}
    ckpt = {"model": state.evaluated_model().state_dict(), **averaged, "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(), "rng": rng_state(),
            "scaler": state.scaler.state_dict() if state.scaler is not None else None,
            **{k: getattr(state, k) for k in COUNTERS}, **extra}
    last = settings.ckpt_dir / LAST
    if is_best:
        link_atomic(save_checkpoint(ckpt, settings.ckpt_dir / BEST), last)
    else:
        save_checkpoint(ckpt, last)


def _generator_state(loader: Any) -> Optional[Tensor]:
    gen = getattr(loader, "generator", None)
    return gen.get_state() if gen is not None else None


def freeze_backbone(model: nn.Module, frozen: bool, epoch: int) -> None:
    """trainer.freeze_backbone_epochs: `backbone_parameters()` take no gradient while `frozen` (batch norms learn)."""
    params = list(model.backbone_parameters())
    if params and params[0].requires_grad == frozen:
        log.info(f"epoch {epoch}: the backbone is {'frozen' if frozen else 'trained from here on'}")
    for p in params:
        p.requires_grad_(not frozen)


def fit(state: TrainState, train_loader: Iterable, val_loader: Iterable, loss_fn: Callable,
        new_meter: Callable[[], Any], settings: LoopSettings, logger: RunLogger, shown: tuple[str, ...],
        extra: dict[str, Any], pictures: Optional[Callable[[int, dict], None]] = None,
        replan: Optional[Callable[[float], None]] = None) -> TrainState:
    """Train from where `state` stands to `settings.epochs`; best.pt by the monitored metric, last.pt every epoch."""
    epoch = state.epoch
    while epoch < settings.epochs:
        epoch += 1
        sampler = getattr(train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler shuffles by seed and epoch
            sampler.set_epoch(epoch)
        if settings.freeze_backbone_epochs:  # from the epoch counter alone: a resumed run freezes as it did
            freeze_backbone(state.model, epoch <= settings.freeze_backbone_epochs, epoch)
        rng0 = _generator_state(train_loader)  # this epoch's data order, for a mid-epoch checkpoint
        train = train_one_epoch(state, train_loader, loss_fn, settings, logger, epoch)
        if train["stopped"]:
            _save(state, {**extra, "loader_rng": rng0}, settings, is_best=False)
            raise TrainingStopped(STOP.signal_name or "stop", state)
        if replan is not None and epoch == 1:  # trainer.budget_min may lower settings.epochs, before the checkpoint
            replan(mean_over_ranks(train["epoch_s"], settings.device))
        val = evaluate(state.eval_net, val_loader, loss_fn, new_meter(), settings)
        state.epoch = epoch
        row = {"epoch": epoch, "train/epoch_loss": train["loss"], "train/epoch_time_s": train["seconds"],
               "train/samples": train["samples"], "train/samples_per_s": train["samples_per_s"],
               **{f"val/{k}": v for k, v in val.items() if isinstance(v, float)}}
        state.history.append(row)
        logger.scalars(row, state.step)  # at the epoch's last step; `epoch` lines up runs of other batch sizes
        if settings.histograms_every and epoch % settings.histograms_every == 0:
            log_histograms(state.model, logger, state.step)
        line = " ".join(f"{k} {row[k]:.4f}" for k in shown if k in row)
        log.info(f"epoch {epoch}/{settings.epochs} train/epoch_loss {train['loss']:.4f} {line} "
                 f"({train['seconds']:.1f}s, {train['samples_per_s']:.0f} samples/s)")
        value, best = row[settings.monitor], state.best
        is_best = best is None or (value >= best if settings.mode == "max" else value <= best)  # ties: the later epoch
        if is_best:
            state.best, state.best_epoch = value, epoch
        _save(state, {**extra, "loader_rng": _generator_state(train_loader)}, settings, is_best)
        if any_rank(bool(STOP), settings.device):
            raise TrainingStopped(STOP.signal_name or "stop", state)
        due = settings.pictures_every and epoch % settings.pictures_every == 0
        if pictures is not None and due and epoch != settings.epochs:  # the caller draws the final ones
            pictures(epoch, val)
    return state

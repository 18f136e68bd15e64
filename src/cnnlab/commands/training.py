"""The body of `cnnlab-train` (set up, train, choose a threshold, test, report), and what cnnlab-eval shares."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
import logging
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .. import distributed, tasks
from ..build import (backbone_ids, build_data, build_loss, build_model, build_optimizer, build_scheduler, check_optim,
                    loop_settings, loss_takes_class_counts, model_overrides, plain, pretrained_inputs,
                    train_class_counts)
from ..checkpoint import (BEST, CKPT_DIR, LAST, check_weights_fit, claim_run_folder, load_checkpoint, save_checkpoint,
                          set_rng_state, transfer_weights)
from ..schema import TrainerConfig, trainer_settings
from ..data.common import DataBundle, head, make_loader
from ..device import select_device
from ..engine import (COUNTERS, STOP, LoopSettings, TrainingStopped, TrainState, WeightAverage, evaluate, fit,
                      forward_batches, position)
from ..errors import ConfigError, typed_override
from ..models.init import init_weights
from ..report import RunInfo, hparams, write_results, write_run_metadata
from ..sched import fast_forward
from ..tblog import RunLogger
from ..trust import saved_config
from ..viz.pictures import make_pictures

log = logging.getLogger("cnnlab")
NUM_PICTURES = 16  # validation images per picture (saliency, mistakes); segmentation shows 4


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


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM, SIGUSR1 (what clusters send before a kill) and a first Ctrl-C stop the run at a step boundary."""
    STOP.signal_name, STOP.finishing = None, None
    names = [s for s in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, s)]
    previous = {s: signal.signal(getattr(signal, s), STOP.handle) for s in names}
    STOP.previous = {getattr(signal, s): h for s, h in previous.items() if s == "SIGUSR1"}
    try:
        yield
    finally:
        STOP.finishing = None
        for s, handler in previous.items():
            signal.signal(getattr(signal, s), handler)


def check_compatible(model: nn.Module, bundle: DataBundle, names: "tuple[str, str]", loop: LoopSettings) -> None:
    """Push two validation samples through the model before training, so a mismatch fails in a second."""
    x, y = head(bundle.val, 2)
    if hasattr(model, "check_input"):  # a model's own check names the config to change
        model.check_input(x.to(loop.device))
    _, _, out = next(forward_batches(model, [(x, y)], loop))
    dense = bundle.task == "segmentation"
    if bundle.task in tasks.CLASS_TASKS + ("segmentation",) and (out.dim() == 4) != dense:
        raise ConfigError(
            f"model={names[0]} outputs {'a label per pixel' if out.dim() == 4 else 'one label per sample'} "
            f"(shape {tuple(out.shape)}) but data={names[1]} is a {bundle.task} task with "
            f"{'a mask per image' if dense else 'one label per sample'}: choose "
            f"{'a segmenter (model=unet or fcn)' if dense else 'a classifier (e.g. model=lenet5, alexnet_small, mlp)'} "
            f"or other data")
    if out.shape[1] != bundle.num_classes:
        raise ConfigError(f"model={names[0]} outputs {out.shape[1]} classes but data={names[1]} has "
                          f"{bundle.num_classes}: remove model.num_classes from the model config")
    if bundle.task == "segmentation" and out.shape[2:] != x.shape[2:]:
        raise ConfigError(f"model={names[0]} outputs {tuple(out.shape[2:])} maps for {tuple(x.shape[2:])} images: "
                          "a segmenter's output must have the input's size")


def compile_model(model: nn.Module, t: TrainerConfig, device: torch.device) -> Any:
    """`torch.compile(model)` when asked for and possible here; otherwise the model itself, with one notice."""
    if t.compile is False:
        return model
    backend = "inductor" if t.compile is True else str(t.compile)
    if backend == "inductor" and device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        log.info("trainer.compile ignored: the inductor backend needs a C++ compiler on CPU (none found)")
        return model
    return torch.compile(model, backend=backend)


def resume_path(cfg: DictConfig, run_dir: Path) -> Optional[Path]:
    """ckpt_path, or the run folder's last.pt for resume=true, and for resume=auto (or a requeued job) if there."""
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    resume = cfg.get("resume")
    if resume not in (True, False, "auto", None):
        raise ConfigError(f"resume={resume} is not valid: use false, true or auto")
    path = run_dir / CKPT_DIR / LAST
    if resume is True and not path.is_file():
        raise ConfigError(f"resume=true but {path} does not exist: pass hydra.run.dir=<the run folder to "
                          f"resume> or ckpt_path=<file.pt>")
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0  # SLURM requeued the job after preemption
    return path if (resume or requeued) and path.is_file() else None


def restore(state: TrainState, ckpt: dict[str, Any], loader: Any, plan: dict[str, Any],
            rebuild: Callable[[int, Optional[int]], None]) -> None:
    """Put model, optimizer, schedule (rebuilt if its plan changed), scaler, counters and every RNG back."""
    state.model.load_state_dict(ckpt.get("train_model", ckpt["model"]))  # with trainer.ema, "model" is the average
    if state.ema is not None:  # a checkpoint trained without an average: it starts from its weights
        state.ema.module.load_state_dict(ckpt["model"])
        state.ema.updates = ckpt.get("ema_updates", 0)
    state.optimizer.load_state_dict(ckpt["optimizer"])
    saved_plan = ckpt.get("plan")
    if saved_plan is None or saved_plan == plan or plan["total_steps"] < ckpt["step"]:
        state.scheduler.load_state_dict(ckpt["scheduler"])
    else:
        rebuild(plan["total_steps"], ckpt["step"])
        log.info(f"schedule rebuilt for {plan['total_steps']} steps (was {saved_plan['total_steps']}), continuing "
                 f"at step {ckpt['step']} with lr {state.optimizer.param_groups[0]['lr']:.4g}")
    if state.scaler is not None and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    for key in COUNTERS:  # epoch, step, best, history, a mid-epoch stop's batches
        setattr(state, key, ckpt.get(key, getattr(state, key)))
    set_rng_state(ckpt["rng"])
    saved = ckpt.get("loader_rng")
    gen = getattr(loader, "generator", None)
    if saved is not None and gen is not None and saved.numel() == gen.get_state().numel():
        gen.set_state(saved)
    elif saved is not None:
        log.warning("the checkpoint's data-order RNG is for another device type: the shuffle order will differ")


@contextlib.contextmanager
def before_training() -> Iterator[None]:
    """Mark a ConfigError as found before training (cli._forget_or_mark: the run has not failed)."""
    try:
        yield
    except ConfigError as e:
        e.before_training = True
        raise


def train(cfg: DictConfig, info: RunInfo) -> float:
    """Build everything from `cfg`, train, test, write results; returns the optimised metric (run by every rank)."""
    with before_training():  # the folder is claimed before its checkpoint is read
        resume = resume_path(cfg, info.run_dir)
        in_place = resume is not None and resume.resolve().parent.parent == info.run_dir.resolve()  # its own run
        lock = claim_run_folder(info.run_dir, continuing=in_place) if distributed.WORLD.main else None
    try:
        with before_training():
            ckpt = load_checkpoint(resume, map_location="cpu") if resume is not None else None  # RNGs on CPU
            changed = model_overrides(info.overrides)  # this command line's (continue_from adds the checkpoint's)
            if ckpt is not None:
                cfg = saved_config(cfg, info.overrides, ckpt, resume)
                info.continue_from(ckpt.get("run_info"))
        distributed.barrier()
        with stop_signals():
            with before_training():
                run = _setup(cfg, info, ckpt, resume, changed, in_place)
            if STOP:
                raise TrainingStopped(STOP.signal_name, run.state)
            bundle, loop = run.bundle, run.loop
            fit(run.state, run.train_loader, run.val_loader, run.loss_fn, lambda: meter_for(bundle, loop.device, True),
                loop, run.logger, tasks.shown_metrics(bundle.task, bundle.num_classes, bundle.state), run.extra,
                run.pictures, run.replan)
            if STOP:  # it came as the last epoch ended: its checkpoint is written
                raise TrainingStopped(STOP.signal_name, run.state)
            STOP.finishing = run.state  # from here a stop signal ends the command at once (see StopRequest)
            return float(_finish(cfg, info, run)[cfg.optimized_metric])
    finally:
        if lock is not None:
            lock.release()


@dataclass
class Run:
    """Everything a training run built, for `fit` and `_finish`."""

    bundle: DataBundle
    state: TrainState
    train_loader: Any
    val_loader: Any
    loss_fn: Any
    loop: LoopSettings
    logger: RunLogger
    pictures: Any
    extra: dict
    replan: Any = None  # fit calls it after epoch 1 with a trainer.budget_min (see budget_replan)


def _setup(cfg: DictConfig, info: RunInfo, ckpt: Optional[dict], resume: Optional[Path], changed: list[str],
           in_place: bool) -> Run:
    """Build the run: data, model (checked against the data and the checkpoint), loaders, optimiser, state, logger."""
    world, main = distributed.WORLD, distributed.WORLD.main
    info.name = info.name or str(cfg.get("name") or "")
    t = trainer_settings(cfg.trainer)
    check_optim(cfg.optim)
    seed_everything(cfg.seed, t.deterministic)
    device = distributed.device_for(select_device(t.device))
    log.info(f"run folder: {info.run_dir.resolve()}  (device {device}" + (f", {world.size} ranks)" if world.active
                                                                            else ")"))
    if ckpt is None:
        pretrained_inputs(cfg, info.overrides)
    bundle = build_data(cfg.data)
    k, names = bundle.num_classes, (info.choice("model"), info.choice("data"))
    tasks.check_metric(t.monitor, "trainer.monitor", bundle.task, k, bundle.state)
    tasks.check_metric(cfg.optimized_metric, "optimized_metric", bundle.task, k, bundle.state, ("val", "test"))
    model = build_model(cfg.model, k, bundle.model_kwargs, names, pretrained=ckpt is None).to(device)
    loop = loop_settings(t, device, info.run_dir / CKPT_DIR if main else None)
    check_compatible(model, bundle, names, loop)  # before init: a lazy layer learns its input width here
    if ckpt is not None:  # a model changed on the command line must still take the checkpoint's weights
        check_weights_fit(model, ckpt.get("train_model", ckpt["model"]), resume, changed)
    model = init_weights(model, cfg.init)
    if cfg.get("init_from") and ckpt is None:  # a resumed run has its own weights
        transfer_weights(model, cfg.init_from)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, ddp = distributed.wrap(model, t.sync_bn)
    shard = (world.rank, world.size)
    train_loader = make_loader(bundle.train, t.batch_size, True, device, augment=bundle.train_augment,
                               seed=cfg.seed, drop_last=t.drop_last, num_workers=t.num_workers, shard=shard)
    if len(train_loader) == 0:
        raise ConfigError(f"the training split has {len(bundle.train)} samples, fewer than trainer.batch_size="
                          f"{t.batch_size} with trainer.drop_last=true: lower the batch size or set "
                          f"trainer.drop_last=false")
    val_loader = make_loader(bundle.val, t.eval_batch_size, False, device, num_workers=t.num_workers, shard=shard)
    optimizer = build_optimizer(cfg.optim, model)
    if t.freeze_backbone_epochs:
        backbone_ids(model, f"trainer.freeze_backbone_epochs={t.freeze_backbone_epochs}")
        if world.active:  # DDP fixes which parameters take gradients when it wraps the model
            raise ConfigError("trainer.freeze_backbone_epochs is for one process: under torchrun use "
                              "optim.backbone_lr_mult instead")
    epoch_s = first_epoch_seconds(ckpt) if ckpt is not None and t.budget_min else None
    plan = schedule_plan(cfg, t, len(train_loader), epoch_s)
    loop.epochs = plan.get("epochs", t.epochs)
    if loop.epochs < t.epochs:  # a resumed run keeps the cut without measuring again: the log still says why
        log_budget(t, epoch_s, loop.epochs, "epoch 1's pace, from the checkpoint")
    if ckpt is not None:
        check_epochs_left(ckpt, resume, loop.epochs, t, in_place)
    # what a rebuild starts from: the settings before any schedule (one-cycle lowers `lr` and takes its peak from it)
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    scheduler = build_scheduler(cfg.sched, optimizer, plan["total_steps"], len(train_loader))
    scaler = torch.amp.GradScaler("cuda") if loop.amp_dtype == torch.float16 else None
    ema = WeightAverage(model, t.ema) if t.ema > 0 else None
    state = TrainState(model, optimizer, scheduler, net=compile_model(ddp, t, device), scaler=scaler, ema=ema)
    if world.active or ema is not None:  # evaluate what is saved: never the DDP wrapper, the average with trainer.ema
        state.eval_net = compile_model(state.evaluated_model(), t, device)

    def rebuild(total_steps: int, step: Optional[int]) -> None:
        """A new schedule for `total_steps` at `step` (None: the current one), as if planned so from the start."""
        for group, hyper in zip(optimizer.param_groups, fresh):
            group.pop("initial_lr", None)  # a learning rate changed on resuming is the new plan's base
            group.update(hyper)
        state.scheduler = build_scheduler(cfg.sched, optimizer, total_steps, len(train_loader))
        fast_forward(state.scheduler, state.step if step is None else step)

    if ckpt is not None:
        restore(state, ckpt, train_loader, plan, rebuild)
        log.info(f"resuming {position(state.epoch, state.batch_in_epoch, state.step)}")
    logger = RunLogger(info.run_dir / "tb", enabled=t.tensorboard and main, purge_step=state.step + 1 if ckpt else None)
    counts = train_class_counts(bundle) if loss_takes_class_counts(cfg.loss) else None
    loss_fn = build_loss(cfg.loss, model, bundle, counts)
    if counts is not None:  # saved with the data state: cnnlab-eval weighs its loss as training did
        bundle.state["class_counts"] = counts
    extra = {"config": OmegaConf.to_yaml(cfg, resolve=True), "run_info": info.as_dict(), "plan": plan,
             "data_state": bundle.data_state()}
    if main:
        write_run_metadata(cfg, info, model, device)
        logger.text("config", "```yaml\n" + extra["config"] + "```", state.step)
    pictures = make_pictures(state.evaluated_model(), bundle, logger, info.run_dir / "pictures", device,
                             lambda: state.step, NUM_PICTURES, smoothgrad=t.smoothgrad) if main else None
    measure = t.budget_min and epoch_s is None  # the budget's cut is made after epoch 1, once
    replan = budget_replan(cfg, t, loop, extra, len(train_loader), rebuild) if measure else None
    return Run(bundle, state, train_loader, val_loader, loss_fn, loop, logger, pictures, extra, replan)


def schedule_plan(cfg: DictConfig, t: TrainerConfig, steps_per_epoch: int, epoch_s: Optional[float]) -> dict[str, Any]:
    """What the schedule is built for (saved: another plan rebuilds it); with `epoch_s`, the epochs the budget fits."""
    epochs = t.epochs
    extra = {}
    if t.budget_min and epoch_s is not None:
        epochs = budget_epochs(t.epochs, epoch_s, t.budget_min)
        extra = {"epochs": epochs, "budget_min": t.budget_min, "epoch_s": epoch_s}
    return {"total_steps": epochs * steps_per_epoch, "sched": plain(cfg.sched), "optim": plain(cfg.optim), **extra}


def first_epoch_seconds(ckpt: dict) -> Optional[float]:
    """The time of epoch 1 of a checkpoint's run (its budget's measure, else its history), or None before its end."""
    plan, history = ckpt.get("plan") or {}, ckpt.get("history") or []
    if "epoch_s" in plan:
        return float(plan["epoch_s"])
    return float(history[0]["train/epoch_time_s"]) if history else None


def check_epochs_left(ckpt: dict, path: Optional[Path], epochs: int, t: TrainerConfig, in_place: bool) -> None:
    """Refuse a checkpoint that trained the planned `epochs`, into another folder, or past them in its own folder."""
    done, begun = ckpt["epoch"], ckpt["epoch"] + (1 if ckpt.get("batch_in_epoch") else 0)
    # in its own folder a run may finish at its last epoch: one stopped after it gets its results so
    if (begun <= epochs) if in_place else (done < epochs):
        return
    plan = (f"trainer.epochs={epochs}" if epochs == t.epochs else
            f"trainer.budget_min={t.budget_min:g}, which leaves {epochs} of trainer.epochs={t.epochs},")
    trained = f"{done} epoch{'s' if done != 1 else ''}" + (" and part of the next" if begun > done else "")
    more = (f"a larger trainer.epochs to continue it (e.g. trainer.epochs={max(2 * done, done + 1)})"
            if epochs == t.epochs else "a larger trainer.budget_min (or trainer.budget_min=null) to continue it")
    raise ConfigError(f"checkpoint {path} already trained {trained}, so {plan} trains nothing: pass {more}, or test "
                      f"it with cnnlab-eval {typed_override('ckpt_path', path)}")


def log_budget(t: TrainerConfig, epoch_s: float, epochs: int, pace: str) -> None:
    """Log the `epochs` of trainer.epochs that fit trainer.budget_min at `epoch_s` seconds each (`pace`: its source)."""
    said = f"trainer.budget_min={t.budget_min:g}: an epoch takes {epoch_s:.1f}s of training ({pace}), so"
    if epochs == t.epochs:
        log.info(f"{said} all {t.epochs} epochs fit (about {t.epochs * epoch_s / 60:.1f} min)")
        return
    trains = f"{epochs} epoch" if epochs == 1 else f"{epochs} epochs"
    log.warning(f"{said} {epochs} of the {t.epochs} epochs fit: the run trains {trains}, its schedule planned for "
                f"them (raise trainer.budget_min, or set it to null, to train all {t.epochs})")


def budget_epochs(asked: int, epoch_s: float, budget_min: float) -> int:
    """How many of the `asked` epochs fit `budget_min` minutes at `epoch_s` seconds each (at least 1)."""
    return max(1, min(asked, int(budget_min * 60 // max(epoch_s, 1e-9))))


def budget_replan(cfg: DictConfig, t: TrainerConfig, loop: LoopSettings, extra: dict, steps_per_epoch: int,
                  rebuild: Callable[[int, Optional[int]], None]) -> Callable[[float], None]:
    """fit's `replan` after epoch 1: the budget's plan, saved; a cut lowers loop.epochs and rebuilds the schedule."""

    def replan(epoch_s: float) -> None:
        extra["plan"] = plan = schedule_plan(cfg, t, steps_per_epoch, epoch_s)
        log_budget(t, epoch_s, plan["epochs"], "epoch 1's pace")
        if plan["epochs"] != loop.epochs:
            rebuild(plan["total_steps"], None)
            loop.epochs = plan["epochs"]

    return replan


def meter_for(bundle: DataBundle, device: torch.device, collect: bool = False, sweep: bool = False) -> Any:
    """A meter of the bundle's task; `collect`: keep what the pictures show (mistakes, example masks)."""
    collect_n = (4 if bundle.task == "segmentation" else NUM_PICTURES) if collect else 0
    return tasks.new_meter(bundle.task, bundle.num_classes, device, bundle.state, collect=collect_n, sweep=sweep)


def tune_threshold(net: Any, bundle: DataBundle, loader: Any, loss_fn: Any, loop: LoopSettings) -> Optional[float]:
    """Binary segmentation: the threshold that maximises the monitored metric (else f1) on `loader`, kept."""
    if bundle.task != "segmentation" or bundle.num_classes != 2:
        return None
    sweep = evaluate(net, loader, loss_fn, meter_for(bundle, loop.device, sweep=True), loop)["sweep"]
    monitored = loop.monitor.split("/", 1)[1]
    metric = monitored if monitored in ("f1", "iou", "patch_f1") else "f1"
    chosen = tasks.choose_threshold(sweep, metric)
    bundle.state["threshold"] = chosen
    log.info(f"decision threshold {chosen:.2f} chosen on validation by {metric} ({metric} {sweep[chosen][metric]:.4f})")
    return chosen


def _finish(cfg: DictConfig, info: RunInfo, run: Run) -> dict:
    """Best checkpoint back in; threshold chosen on validation; test; final pictures; results.json (rank 0)."""
    state, loop, bundle, main = run.state, run.loop, run.bundle, distributed.WORLD.main
    distributed.barrier()  # rank 0 has written best.pt
    best = info.run_dir / CKPT_DIR / BEST
    if best.is_file():
        state.evaluated_model().load_state_dict(load_checkpoint(best, map_location=loop.device)["model"])
    tuned = tune_threshold(state.eval_net, bundle, run.val_loader, run.loss_fn, loop) is not None
    if tuned and best.is_file() and main:
        ckpt = load_checkpoint(best)
        ckpt["data_state"] = run.extra["data_state"] = bundle.data_state()
        save_checkpoint(ckpt, best)
    val = evaluate(state.eval_net, run.val_loader, run.loss_fn, meter_for(bundle, loop.device, True), loop)
    test_loader = make_loader(bundle.test, loop.eval_batch_size, False, loop.device, num_workers=loop.num_workers,
                              shard=(distributed.WORLD.rank, distributed.WORLD.size))
    test = evaluate(state.eval_net, test_loader, run.loss_fn, meter_for(bundle, loop.device), loop)
    if run.pictures is not None:
        run.pictures(state.epoch, val, final=True)
    results = write_results(info.run_dir, state, test, val, bundle, info, run.logger,
                            hparams(cfg, info, run.loss_fn), (loop.monitor, loop.mode), write=main,
                            plan=run.extra["plan"])
    run.logger.close()
    shown = " ".join(f"{k} {results[k]:.4f}" for k in results if k.startswith("test/") and k != "test/loss")
    log.info(f"{shown} (best val epoch {state.best_epoch}); results in {info.run_dir.resolve()}")
    return results

"""Checkpoints: atomic writes, loads that never unpickle code, and the RNG state that makes a resume exact."""
from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .errors import ConfigError, RunFolderRefused, first_line, typed_override

log = logging.getLogger("cnnlab")
CKPT_DIR, LAST, BEST = "checkpoints", "last.pt", "best.pt"  # <run folder>/checkpoints/{last,best}.pt
LOCK = ".cnnlab.lock"


def atomic_write(path: "str | Path", write: Callable[[BinaryIO], Any]) -> Path:
    """`write(f)` to a temp file beside `path`, renamed over it: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # after the fsync: also a crash or a kill leaves a whole file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # make the rename itself durable
    finally:
        os.close(folder)
    return path


def link_atomic(src: "str | Path", dst: "str | Path") -> Path:
    """Make `dst` the same file as `src`, atomically: a hard link renamed over `dst` (a copy where links fail)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)  # later atomic writes to `src` replace its inode: `dst` keeps these contents
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        with open(src, "rb") as f:
            atomic_write(dst, lambda out: shutil.copyfileobj(f, out))
    return dst


def save_checkpoint(state: dict[str, Any], path: "str | Path") -> Path:
    """Write `state` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: "str | Path", map_location: "str | torch.device" = "cpu",
                    flag: str = "ckpt_path=") -> dict[str, Any]:
    """Load with `weights_only=True`; a missing, damaged or foreign file gives one line (`flag`: its setting)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"checkpoint {path} {what}: pass {flag}<run folder>/checkpoints/last.pt")
    with open(path, "rb") as f:
        zip_start = f.read(4) == b"PK\x03\x04"  # a torch.save archive's first bytes (a cut one keeps them)
    if not zip_start:  # an image, JSON, text, a plain pickle, ...
        raise ConfigError(f"checkpoint {path} is not a PyTorch checkpoint (not a torch.save archive): pass "
                          f"{flag}<run folder>/checkpoints/last.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"checkpoint {path} holds objects other than tensors and plain data, refused for safety "
                          f"(torch.load weights_only=True); only load checkpoints written by cnnlab") from None
    except Exception as e:  # noqa: BLE001 - any other failure to read means a damaged or foreign file
        first = first_line(e)
        raise ConfigError(f"checkpoint {path} is truncated or corrupt ({first}); use another checkpoint, "
                          f"e.g. best.pt or last.pt from the same run") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ConfigError(f"checkpoint {path} is not a cnnlab checkpoint (no 'model' entry)")
    return state


def check_weights_fit(model: nn.Module, weights: dict[str, Any], path: "str | Path",
                      changed: Sequence[str] = ()) -> None:
    """ConfigError naming the parameters whose names or shapes differ between `weights` and `model`, before loading."""
    own = model.state_dict()
    shapes = [f"{k} is {list(weights[k].shape)} there but {list(v.shape)} here" for k, v in own.items()
              if k in weights and not is_lazy(v) and tuple(weights[k].shape) != tuple(v.shape)]
    missing, unexpected = [k for k in own if k not in weights], [k for k in weights if k not in own]

    def few(items: list[str], prefix: str = "") -> list[str]:
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return [prefix + ", ".join(items[:3]) + more] if items else []

    problems = few(shapes) + few(missing, "the checkpoint has no ") + few(unexpected, "the model has no ")
    if not problems:
        return
    hint = (f"drop {' '.join(changed)} to use the checkpoint's own model" if changed else
            "use the model and data settings it was trained with")
    raise ConfigError(f"checkpoint {path} does not fit the model configured now ({'; '.join(problems)}): {hint}")


def load_weights(model: nn.Module, weights: dict[str, Any], path: "str | Path", changed: Sequence[str] = ()) -> None:
    """`model.load_state_dict(weights)` after `check_weights_fit`."""
    check_weights_fit(model, weights, path, changed)
    model.load_state_dict(weights)


def transfer_weights(model: nn.Module, path: "str | Path") -> None:
    """`init_from=`: load the tensors of another run's checkpoint that fit `model` by name and shape; log the rest."""
    weights = load_checkpoint(path, flag="init_from=")["model"]  # with trainer.ema: the average, what was tested
    own = model.state_dict()
    fits = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor) and k in own and not is_lazy(own[k])
            and tuple(v.shape) == tuple(own[k].shape)}
    if not fits:
        first = next((f"{k} is {list(v.shape)} there but {list(own[k].shape)} here" for k, v in weights.items()
                      if k in own and not is_lazy(own[k])), "no tensor name is shared")
        raise ConfigError(f"init_from={path}: none of its {len(weights)} tensors fits the model configured now "
                          f"({first}): choose the same model (model=..., model.*) as the run that wrote it")
    model.load_state_dict(fits, strict=False)

    def few(keys: list[str], what: str = "") -> str:
        return f"{len(keys)}{what}" + (f" ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})" if keys else "")

    log.info(f"init_from={path}: loaded {few(list(fits), ' tensors')}; skipped "
             f"{few([k for k in weights if k not in fits], ' of other names or shapes')}; left new "
             f"{few([k for k in own if k not in fits])}; a fresh schedule")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) generator states, as tensors and plain data only."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
        # only once CUDA is in use: asking would start it (and take GPU memory) in a CPU run on a GPU machine
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # a machine with fewer GPUs than the saving one restores those it has (set_rng_state_all would fail)
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


class RunFolderLock:
    """An exclusive lock on a run folder while a command writes into it (released when the process ends or dies)."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        run_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise RunFolderRefused(f"run folder {run_dir} is in use by another cnnlab command (pid {other}): wait for "
                                   f"it to end, or choose another hydra.run.dir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        """Give the folder back (closing the descriptor drops the lock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim_run_folder(run_dir: Path, continuing: bool) -> RunFolderLock:
    """Lock `run_dir` for this run; refuse a fresh run in a folder that already holds one; clear stale temp files."""
    lock = RunFolderLock(run_dir)
    if not continuing and ((run_dir / CKPT_DIR / LAST).exists() or (run_dir / "results.json").exists()):
        lock.release()
        raise RunFolderRefused(f"run folder {run_dir} already holds a run: continue it with resume=true "
                               f"{typed_override('hydra.run.dir', run_dir)}, or choose another hydra.run.dir")
    for p in (run_dir / CKPT_DIR).glob(".*.*"):  # what a kill during atomic_write/link_atomic leaves
        if p.suffix in (".tmp", ".link") and p.is_file():
            p.unlink(missing_ok=True)
            log.info(f"removed {p.name}, left by a write that was interrupted")
    return lock

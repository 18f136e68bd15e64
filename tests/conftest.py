"""Shared test helpers: compose the real configs, run training and the console commands in-process into a temp
folder (a real process only where the process is the point: `command(..., process=True)`, marked slow)."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import signal
import subprocess
import sys
import tomllib
import traceback
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from cnnlab.cli import CONFIG_DIR

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
# one epoch of a tiny synthetic run, no TensorBoard or pictures: for tests of what happens around training
QUICK = ["data=synthetic", "data.num_samples=16", "trainer.epochs=1", "trainer.batch_size=8",
         "trainer.tensorboard=false", "trainer.pictures_every=0"]


# the console scripts, as pyproject.toml declares them: {"cnnlab-train": "cnnlab.cli:train_cli", ...}
ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
STOP_SIGNALS = [getattr(signal, s) for s in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, s)]


def command(name: str, *args: str, cwd, process: bool = False, env: "dict[str, str] | None" = None,
            input: "str | None" = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a console command (cnnlab-train, cnnlab-eval, ...) as a user would type it: in this process, with its
    exit status and what it printed; `process=True` starts the installed script (for tests marked slow)."""
    if name != "cnnlab-compare" and not any(a.startswith("trainer.progress=") for a in args):
        args = (*args, "trainer.progress=false")
    if process:
        return subprocess.run([str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, input=input,
                              timeout=timeout, env=process_env(env))
    module, func = ENTRY_POINTS[name].split(":")
    entry = getattr(importlib.import_module(module), func)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, _process_state_restored():
        mp.setattr(sys, "argv", [name, *args])
        mp.setattr(sys, "stdin", io.StringIO(input or ""))
        mp.chdir(cwd)
        mp.delenv("HYDRA_FULL_ERROR", raising=False)  # Hydra's short report of a bug, as a user gets it
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _exit_status(entry)
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


def process_env(extra: "dict[str, str] | None" = None) -> "dict[str, str]":
    """The environment for a real process: this one's, with as many torch threads as a test here gets."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), **(extra or {})}


def _exit_status(entry: Callable[[], None]) -> int:
    """Call a console entry point; its exit status as the interpreter would make it (a traceback is status 1)."""
    try:
        entry()
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - what an uncaught exception does to a process: traceback, status 1
        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def _process_state_restored():
    """Put back what one command sets for its whole process: Hydra's global state, the logging handlers (closing
    the run folder's log file), the stop-signal handlers, environment variables and cnnlab's per-process state."""
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    saved = {lg: (lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers}
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    environ = dict(os.environ)
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in list(getattr(lg, "handlers", [])):
                if lg not in saved or handler not in saved[lg][1]:
                    handler.close()
                    lg.removeHandler(handler)
        for lg, (level, kept, propagate, disabled) in saved.items():
            lg.setLevel(level)
            lg.handlers[:] = kept
            lg.propagate, lg.disabled = propagate, disabled
        for s, handler in handlers.items():
            signal.signal(s, handler)
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        stop = getattr(sys.modules.get("cnnlab.engine"), "STOP", None)
        if stop is not None:  # a stop that ended this command is not one for the next
            stop.signal_name = None


def one_error_line(out: subprocess.CompletedProcess) -> str:
    """The run failed with exit status 2 and exactly one `error:` line on stderr, no traceback."""
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    return errors[0]


def hydra_refused(out: subprocess.CompletedProcess, *named: str) -> str:
    """Hydra or OmegaConf refused the command line while composing the config: exit status 1, its own message
    naming each of `named` (the key, the value, the valid options), no Python traceback; returns stderr."""
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and all(n in out.stderr for n in named), out.stderr[-2000:]
    return out.stderr


def sigterm_after_step(monkeypatch, n: int, signum: int = signal.SIGTERM) -> Callable:
    """Make the loop send this process SIGTERM (or `signum`) right after its step `n` (a stop from outside, at a
    known step); returns the real step function, to put back with monkeypatch.setattr(engine, "_backward_step", it)."""
    from cnnlab import engine

    real, calls = engine._backward_step, {"n": 0}

    def step_then_term(state, loss, settings):
        real(state, loss, settings)
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(engine, "_backward_step", step_then_term)
    return real


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _threads() -> int:
    """torch threads for one test: one under pytest-xdist, whose workers already fill the cores (two threads per
    worker on two cores made the tiny models' steps up to 8x slower: OpenMP threads spin waiting for a core), else
    at most the CI machine's two."""
    return 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(torch.get_num_threads(), 2)


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test to its share of the cores (_threads) and restore the thread count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(_threads())
    yield
    torch.set_num_threads(before)


def compose_cfg(overrides: list[str], config_name: str = "train"):
    """The config a user gets from `cnnlab-train <overrides>` (with hydra's runtime fields for resolvers)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def run_train(tmp_path: Path, overrides: list[str], run_dir: Path | None = None):
    """Train in-process like `cnnlab-train`; returns (run folder, returned metric)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cnnlab.commands import train
    from cnnlab.report import RunInfo

    cfg = compose_cfg([f"paths.output_dir={tmp_path}", "trainer.progress=false", *overrides])
    HydraConfig.instance().set_config(cfg)
    choices = {k: str(v) for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    run_dir = run_dir or tmp_path / "run"
    with open_dict(cfg):
        del cfg["hydra"]
    value = train(cfg, RunInfo(run_dir, "", overrides, choices))
    return run_dir, value


def fake_data(choice: str, root: Path) -> list[str]:
    """Write small files in the real on-disk format that `data=<choice>` reads, under `root`; returns the overrides
    that point the data config at them (and keep it small). Add a line here when a data config is added."""
    import fakes

    if choice in ("digits", "digits_features", "synthetic", "moons", "circles", "poly1d", "sentiment_synthetic",
                  "roads_synthetic", "mito_synthetic"):
        return ["data.cache_dir=null"] if choice.endswith("features") else []
    if choice in ("mnist", "fashion_mnist", "mnist_features"):
        fakes.write_mnist(root, variant="FashionMNIST" if choice == "fashion_mnist" else "MNIST")
        val = "data.source.val_size=20" if choice.endswith("features") else "data.val_size=20"
        return [f"data.root={root}", val, *(["data.cache_dir=null"] if choice.endswith("features") else [])]
    if choice in ("cifar10", "cifar10_features"):
        fakes.write_cifar(root, per_batch=12)
        if choice == "cifar10":
            return [f"data.root={root}", "data.val_size=20"]
        return [f"data.root={root}", "data.source.val_size=20", "data.cache_dir=null"]
    if choice in ("imagefolder", "imagefolder_features"):
        fakes.write_tree(root / "imgs")
        extra = ["data.cache_dir=null", "data.source.val_fraction=0.34"] if choice.endswith("features") else \
            ["data.val_fraction=0.34"]
        return [f"data.root={root / 'imgs'}", *extra]
    if choice == "roads_patches":
        fakes.write_roads(root / "roads")
        return [f"data.root={root / 'roads'}", "data.cache_dir=null"]
    if choice == "mito_patches":
        (root / "mito").mkdir(parents=True)
        fakes.write_mito(root / "mito")
        return [f"data.root={root / 'mito'}", "data.cache_dir=null", "data.slice_step=1"]
    if choice == "roads":
        fakes.write_roads(root / "roads", numbers=tuple(range(1, 11)))
        return [f"data.root={root / 'roads'}", "data.augment.crop=16"]
    if choice == "mito":
        (root / "mito").mkdir(parents=True)
        fakes.write_mito(root / "mito")
        return [f"data.root={root / 'mito'}", "data.augment.crop=16"]
    if choice == "sst2":
        from text_fakes import write_sst2

        write_sst2(root / "sst2")
        return [f"data.root={root / 'sst2'}", "data.val_size=20"]
    if choice == "mr":
        from text_fakes import write_mr

        words = ["good", "bad", "film", "plot", "fine", "dull"]
        write_mr(root / "mr", [f"a {w} film number {i}" for i, w in enumerate(words * 10)],
                 [f"the {w} plot , take {i}" for i, w in enumerate(words * 10)])
        return [f"data.root={root / 'mr'}"]
    raise KeyError(f"no fake data for data={choice}: add it to tests/conftest.py:fake_data")

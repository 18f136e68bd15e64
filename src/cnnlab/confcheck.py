"""Config values checked against the code that takes them, before anything is built.

Each check fails with one line that names the key and the fix:
- `check_call`: a config node against its target's signature (unknown keys list the valid ones; a value of the
  wrong type names the expected type), so `optim.lr=abc` or `+model.widht=3` never reach a constructor;
- `check_optim_values`: the optimizer's numbers in their valid ranges (`optim.lr=-1`, `optim.betas=[2,3]`);
- `check_saved_targets`: a checkpoint's saved config may only name the `_target_`s that cnnlab's own configs
  name (a received file must never choose the code that runs);
- `TrainerSettings`: the trainer group, typed and range-checked; `check_options`: a command's own options
  (cnnlab-viz's `num_images`, cnnlab-predict's `batch_size`);
- `check_writable`: a folder the command will write into, before the work that fills it.
"""
from __future__ import annotations

import collections.abc as cabc
import functools
import inspect
import math
import tempfile
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import yaml

from .errors import ConfigError

# Modules whose public classes a config may name without a shipped YAML naming them: optimizers and schedules are
# plain numerics, torchvision's model builders build modules (their weights come from torchvision's own checked
# download). Anything else a saved config names must appear in configs/.
SAFE_MODULES = ("torch.optim", "torch.optim.lr_scheduler", "torchvision.models")


# ---------------------------------------------------------------- types

def _matches(value: Any, hint: Any) -> bool:
    """Whether a plain config value (int, float, bool, str, None, list, dict) fits the annotation `hint`."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list, cabc.Sequence, cabc.Iterable, cabc.MutableSequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(_matches(v, inner) for v in value)
    if origin in (dict, cabc.Mapping) or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):  # e.g. Tensor, Path: a plain config value is never one of these
        return isinstance(value, hint)
    return True  # callables, type variables: not a config value's business to be checked here


def _describe(hint: Any) -> str:
    """'an integer', 'a number or null', 'a list of 2 numbers', ... for error lines."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in args if a is not type(None) and _describe(a)]
        text = " or ".join(dict.fromkeys(names))
        return text + (" or null" if type(None) in args else "")
    simple = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in simple:
        return simple[hint]
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    if origin in (tuple, list, cabc.Sequence, cabc.Iterable) and args:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')} values"
    return ""


@functools.lru_cache(maxsize=None)
def _signature(target: Callable) -> "tuple[dict[str, inspect.Parameter], dict[str, Any], bool]":
    fn = target.__init__ if inspect.isclass(target) else target
    params = dict(inspect.signature(target).parameters)
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError, AttributeError):  # unresolvable forward references in third-party code
        if getattr(fn, "__module__", "").startswith("cnnlab"):
            raise  # in our own code it is a bug: show it
        hints = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return params, hints, takes_any


def accepted(target: Callable) -> "tuple[set[str], bool]":
    """(keyword names `target` takes, whether it takes any keyword)."""
    params, _, takes_any = _signature(target)
    keywords = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return keywords, takes_any


def named_arguments(target: Callable, **values: Any) -> dict[str, Any]:
    """The `values` that are not None and that `target` has a parameter of that name for: a `**kwargs`
    catch-all does not count (it would pass them on to something that does not expect them)."""
    takes, _ = accepted(target)
    return {k: v for k, v in values.items() if v is not None and k in takes}


def target_name(target: Callable) -> str:
    """`torch.optim.SGD` style name of a class or function."""
    return f"{target.__module__}.{target.__qualname__}"


def check_call(group: str, target: Callable, values: Mapping[str, Any]) -> None:
    """ConfigError for a key of `values` that `target` does not take, or a value its annotation rules out.

    Keys starting with '_' (Hydra's `_target_`, `_partial_`) are skipped; a nested dict with a `_target_` is an
    object to build, checked by its own `check_call`, not here.
    """
    params, hints, takes_any = _signature(target)
    valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and n not in ("self", "params", "optimizer")]
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if key not in params:
            if takes_any:
                continue
            name = values.get("_target_") or target_name(target)
            raise ConfigError(f"{group}.{key} is not a setting of {name}: valid keys are "
                              f"{', '.join(valid)}")
        if isinstance(value, dict) and "_target_" in value:
            continue
        hint = hints.get(key, params[key].annotation)
        if not _matches(value, hint):
            what = _describe(hint)
            raise ConfigError(f"{group}.{key}={value!r} is not valid: it must be {what or 'of type ' + str(hint)}")


def check_options(values: Mapping[str, Any], types: Mapping[str, Any], minimum: Mapping[str, int]) -> None:
    """A command's own top-level options: ConfigError naming the key when a value does not fit its annotation in
    `types`, or is below its `minimum`."""
    for key, hint in types.items():
        value = values.get(key)
        if not _matches(value, hint):
            raise ConfigError(f"{key}={value!r} is not valid: it must be {_describe(hint)}")
        if key in minimum and value < minimum[key]:
            raise ConfigError(f"{key}={value} is not valid: it must be >= {minimum[key]}")


# ---------------------------------------------------------------- optimizer ranges

# The settings torch.optim's optimizers share, by name: (valid range in words, test). Types are checked first.
OPTIM_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "lr": ("> 0", lambda v: v > 0),
    "eps": ("> 0", lambda v: v > 0),
    "weight_decay": (">= 0", lambda v: v >= 0),
    "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
    "dampening": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "rho": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "betas": ("two numbers in [0, 1), e.g. [0.9, 0.999]", lambda v: all(0 <= b < 1 for b in v)),
}


def check_optim_values(values: Mapping[str, Any]) -> None:
    """ConfigError naming the optimizer setting outside its valid range (see OPTIM_RANGES)."""
    for key, (valid, ok) in OPTIM_RANGES.items():
        value = values.get(key)
        if value is not None and not ok(value):
            raise ConfigError(f"optim.{key}={value} is not valid: it must be {valid}")
    if values.get("nesterov") and (not values.get("momentum") or values.get("dampening")):
        raise ConfigError(f"optim.nesterov=true needs optim.momentum > 0 and no dampening (momentum is "
                          f"{values.get('momentum', 0)}): set optim.momentum (e.g. 0.9) or optim.nesterov=false")


# ---------------------------------------------------------------- output folders

def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a parent that may not be searched: that parent is then the one checked
        return False


def check_writable(folder: "str | Path", shown: str) -> None:
    """ConfigError naming `shown` (e.g. `output=preds/x.csv`) when nothing can be written into `folder` (made later
    if missing): the nearest of it and its parents that exists must be a folder in which a file can be made. A
    temporary file is tried, so that permissions, read-only disks and /proc all count; nothing is left behind."""
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if _exists(p))
    if not existing.is_dir():
        raise ConfigError(f"{shown} cannot be written: {existing} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ConfigError(f"{shown} cannot be written: no file can be made in {existing} "
                          f"({e.strerror or type(e).__name__}); choose another path") from None


def check_output_file(path: "str | Path", shown: str, example: str) -> None:
    """ConfigError naming `shown` when the file `path` cannot be written: it is a folder (the error suggests the
    file `example` in it), or its folder cannot be made or written (see check_writable)."""
    if Path(path).expanduser().is_dir():
        raise ConfigError(f"{shown} is a folder: give a file, e.g. {Path(path) / example}")
    check_writable(Path(path).expanduser().parent, shown)


# ---------------------------------------------------------------- trusted targets

def _targets(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, target) of every `_target_` in a plain nested dict/list."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_target_":
                yield path, str(value)
            else:
                yield from _targets(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{prefix}[{i}]")


@functools.lru_cache(maxsize=None)
def shipped_targets(config_dir: str) -> frozenset[str]:
    """Every `_target_` that a YAML file under cnnlab's config folder names."""
    found = set()
    for path in Path(config_dir).rglob("*.yaml"):
        found.update(t for _, t in _targets(yaml.safe_load(path.read_text()) or {}))
    return frozenset(found)


def is_safe_target(target: str, config_dir: str) -> bool:
    """A target cnnlab's configs name, or a public class/function directly in one of SAFE_MODULES."""
    if target in shipped_targets(config_dir):
        return True
    module, _, name = target.rpartition(".")
    return module in SAFE_MODULES and name.isidentifier() and not name.startswith("_")


def _interpolations(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) of every key or string value of a plain nested dict/list that holds `${`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = (f"{prefix}[{key}]" if isinstance(node, list) else f"{prefix}.{key}" if prefix else str(key))
        if "${" in str(key) or (isinstance(value, str) and "${" in value):
            yield path, str(value)
        yield from _interpolations(value, path)


def check_saved_targets(saved: dict, replaced: "set[str]", source: str, config_dir: str) -> None:
    """Refuse a saved config that names a `_target_` outside cnnlab's own configs, or that holds any interpolation
    (`${oc.decode:...}` and `${oc.create:...}` turn a string into a node with a `_target_` when the config is used;
    cnnlab saves configs resolved, so a genuine one has none). Keys in `replaced` are the command line's, the
    user's own choice; nothing has been built when this runs."""
    def users(key: str) -> bool:
        return any(key == r or key.startswith((r + ".", r + "[")) for r in replaced)

    for key, text in _interpolations(saved):
        if not users(key):
            raise ConfigError(f"{source}: its saved config holds an interpolation at {key} ({text[:60]}); refused, "
                              f"since cnnlab saves configs resolved and an interpolation can build code when "
                              f"used (set {key} on the command line if the file is yours)")
    for key, target in _targets(saved):
        if users(key):
            continue
        if not is_safe_target(target, config_dir):
            raise ConfigError(f"{source}: its saved config names {key}={target}, which no cnnlab config names; "
                              f"refused, so that a received file cannot choose code to run (for your own class, "
                              f"pass {key}={target} on the command line)")


# ---------------------------------------------------------------- trainer settings

@dataclass
class TrainerSettings:
    """The `trainer` config group, typed; `from_config` checks every value and names the key at fault."""

    epochs: int = 30
    budget_min: Optional[float] = None      # minutes of training: after epoch 1, epochs are cut to what fits
    batch_size: int = 32
    eval_batch_size: int = 1000
    drop_last: bool = False
    device: str = "auto"
    amp: Optional[str] = None
    compile: Union[bool, str] = False       # true = inductor; or a backend name (aot_eager, eager)
    channels_last: bool = False
    sync_bn: bool = False                   # torchrun: SyncBatchNorm (batch statistics over all ranks)
    deterministic: bool = False
    clip_grad: float = 0.0
    ema: float = 0.0                        # decay of an average of the weights (e.g. 0.999) that is evaluated; 0 = off
    log_every: int = 50
    monitor: str = "val/acc"
    mode: str = "max"
    pictures_every: int = 5
    smoothgrad: int = 0                     # saliency: plain gradients (0) or SmoothGrad with this many noisy copies
    histograms_every: int = 0               # epochs between weight/gradient histograms of first/last layer; 0 = off
    eval_tile: int = 0                      # segmentation: whole images larger than this are evaluated in tiles
    eval_overlap: int = 64                  # pixels the tiles overlap (even)
    tta: bool = False                       # segmentation: average the 8 flips/turns at evaluation
    tensorboard: bool = True
    progress: Optional[bool] = None
    num_workers: int = 2

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> "TrainerSettings":
        """Check types (unknown keys named with the valid ones), then ranges; returns the settings."""
        check_call("trainer", cls, values)
        settings = cls(**values)
        ranges = [("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1), ("log_every", 1), ("clip_grad", 0),
                  ("pictures_every", 0), ("num_workers", 0), ("smoothgrad", 0), ("histograms_every", 0),
                  ("eval_tile", 0), ("eval_overlap", 0)]
        for key, low in ranges:
            if getattr(settings, key) < low:
                raise ConfigError(f"trainer.{key}={getattr(settings, key)} is not valid: it must be >= {low}")
        if settings.budget_min is not None and not 0 < settings.budget_min < math.inf:
            raise ConfigError(f"trainer.budget_min={settings.budget_min} is not valid: give minutes > 0, or null "
                              f"for no budget")
        if not 0.0 <= settings.ema < 1.0:
            raise ConfigError(f"trainer.ema={settings.ema} is not valid: use 0 (off) or a decay in (0, 1), "
                              f"e.g. 0.999")
        if settings.mode not in ("max", "min"):
            raise ConfigError(f"trainer.mode={settings.mode} is not known: use max or min")
        if settings.amp not in (None, "none", "bf16", "fp16"):
            raise ConfigError(f"trainer.amp={settings.amp} is not known: use null, bf16 or fp16")
        return settings

    @classmethod
    def keys(cls) -> list[str]:
        """The trainer keys, in order."""
        return [f.name for f in fields(cls)]

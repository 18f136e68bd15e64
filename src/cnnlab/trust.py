"""The trust rule for a checkpoint's saved config: nothing a received file names is built unless cnnlab's configs,
or the --config-dir folders of this command line, name it (or it is a public class of SAFE_MODULES)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterator

import yaml
from omegaconf import DictConfig, OmegaConf

from .build import CONFIG_DIR, is_setting, parse_override
from .errors import ConfigError, first_line

# Modules whose public classes a config may name without a shipped YAML naming them: optimizers and schedules are
# plain numerics, torchvision's model builders build modules (their weights come from torchvision's checked download)
SAFE_MODULES = ("torch.optim", "torch.optim.lr_scheduler", "torchvision.models")


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, key, value) of every entry of a plain nested dict/list, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}[{key}]" if isinstance(node, list) else f"{prefix}.{key}" if prefix else str(key)
        yield path, key, value
        yield from _walk(value, path)


@functools.lru_cache(maxsize=None)
def _folder_targets(config_dir: str) -> frozenset[str]:
    loaded = (yaml.safe_load(p.read_text()) or {} for p in Path(config_dir).rglob("*.yaml"))
    return frozenset(str(value) for node in loaded for _, key, value in _walk(node) if key == "_target_")


def user_config_dirs() -> list[str]:
    """The folders this command line adds with --config-dir (Hydra's record of its config sources)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(s.path) for s in HydraConfig.get().runtime.config_sources
            if s.provider == "command-line" and s.schema == "file"]


def trusted_targets(config_dirs: "list[str] | None" = None) -> frozenset[str]:
    """Every `_target_` that cnnlab's configs, or the --config-dir folders of this command line, name."""
    dirs = [CONFIG_DIR, *(user_config_dirs() if config_dirs is None else config_dirs)]
    return frozenset().union(*(_folder_targets(d) for d in dirs if Path(d).is_dir()))


def is_safe_target(target: str, trusted: frozenset[str]) -> bool:
    """A target a trusted config names, or a public class/function directly in one of SAFE_MODULES."""
    module, _, name = target.rpartition(".")
    return target in trusted or (module in SAFE_MODULES and name.isidentifier() and not name.startswith("_"))


def check_saved_targets(saved: dict, replaced: "set[str]", source: str, trusted: frozenset[str]) -> None:
    """Refuse a saved config that names an untrusted `_target_` or holds an interpolation, but in keys `replaced`."""
    # `${oc.decode:...}` can make a `_target_` node when used (cnnlab saves configs resolved); `replaced`: the keys
    # the user set on this command line
    def users(key: str) -> bool:
        return any(key == r or key.startswith((r + ".", r + "[")) for r in replaced)

    for key, name, value in _walk(saved):
        if ("${" in str(name) or (isinstance(value, str) and "${" in value)) and not users(key):
            raise ConfigError(f"{source}: its saved config holds an interpolation at {key} ({str(value)[:60]}); "
                              f"refused, since cnnlab saves configs resolved and an interpolation can build code when "
                              f"used (set {key} on the command line if the file is yours)")
    for key, name, target in _walk(saved):
        if name == "_target_" and not users(key) and not is_safe_target(str(target), trusted):
            raise ConfigError(f"{source}: its saved config names {key}={target}, which no cnnlab config names; "
                              f"refused, so that a received file cannot choose code to run (for your own class, "
                              f"pass --config-dir <folder with its yaml> (config_dirs=[...] to cnnlab.load_model), or "
                              f"{key}={target} on the command line)")


def read_saved_config(ckpt: dict[str, Any], path: "str | Path", trusted: frozenset[str],
                      replaced: "set[str]" = frozenset()) -> DictConfig:
    """A checkpoint's saved config, its targets checked against the `trusted` ones before anything is built."""
    text = ckpt.get("config")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"checkpoint {path} has no saved config: it was not written by cnnlab-train")
    try:
        saved = OmegaConf.create(text)
    except Exception as e:  # noqa: BLE001 - any YAML/OmegaConf failure means a damaged or foreign file
        raise ConfigError(f"checkpoint {path} holds an unreadable config ({first_line(e)})") from None
    if not isinstance(saved, DictConfig) or "model" not in saved:
        raise ConfigError(f"checkpoint {path} has no saved model config: it was not written by cnnlab-train")
    check_saved_targets(OmegaConf.to_container(saved, resolve=False), set(replaced), f"checkpoint {path}", trusted)
    return saved


def saved_config(cfg: DictConfig, overrides: list[str], ckpt: dict[str, Any], path: Path,
                 own_keys: tuple[str, ...] = ()) -> DictConfig:
    """A checkpoint's saved config (see read_saved_config), with every key named on this command line from `cfg`."""
    choices = (ckpt.get("run_info") or {}).get("choices") or {}
    replaced = set()
    absent = object()  # hydra.* and keys this command's config lacks; `key=null` does replace (budget_min=null)
    for item in overrides:
        key, value = parse_override(item)
        if not is_setting(item) or key.split(".")[0] in own_keys \
                or OmegaConf.select(cfg, key, default=absent) is absent:
            continue
        if "." not in key and str(choices.get(key)) == value:  # the run's own choice (data=mito): nothing replaced
            continue
        replaced.add(key)
    saved = read_saved_config(ckpt, path, trusted_targets(), replaced)
    for key in sorted(replaced):
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), force_add=True, merge=False)
    return saved

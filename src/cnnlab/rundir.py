"""The run-folder policy (docs/commands.md, "Run folders"): the resolvers of configs/train.yaml's `hydra:` section.
Every command gets a new folder (only `resume=true` continues in one); Hydra's record of the first command in a
folder is `.hydra/`, a later command's `.hydra/<date_time>/`."""
from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from . import distributed


def stamp() -> str:
    """`${cnnlab.stamp:}`: the time to the microsecond (under torchrun rank 0's, so that all ranks share a folder)."""
    return distributed.WORLD.stamp or datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def record_dir(output_dir: str) -> Optional[str]:
    """`hydra.output_subdir`: `.hydra`, or `.hydra/<time>` beside an earlier command's record; none but on rank 0."""
    if not distributed.WORLD.main:
        return None
    return f".hydra/{stamp()}" if (Path(output_dir) / ".hydra").exists() else ".hydra"


def folder_name(text: Any) -> str:
    """`text` as one folder name: '/', '\\' and the names '', '.', '..' become '_'; cut to 200 bytes (of 255)."""
    name = str(text).replace("/", "_").replace("\\", "_").encode()[:200].decode(errors="ignore")
    return "_" if name in ("", ".", "..") else name


def run_name(ckpt_path: Any, default: str) -> str:
    """`name`'s default: the name of the run that wrote `ckpt_path` (filed beside it), else `default`."""
    if not ckpt_path or not Path(str(ckpt_path)).expanduser().is_file():
        return default
    try:
        ckpt = torch.load(Path(str(ckpt_path)).expanduser(), map_location="cpu", weights_only=True, mmap=True)
        name = str((ckpt.get("run_info") or {}).get("name") or "")
    except Exception:  # noqa: BLE001 - an unreadable file: the command names the problem when it loads it
        return default
    return name if re.fullmatch(r"[\w.+:@%=,-]+", name) else default


OmegaConf.register_new_resolver("cnnlab.stamp", stamp, replace=True, use_cache=True)  # one per command
OmegaConf.register_new_resolver("cnnlab.record_dir", record_dir, replace=True, use_cache=True)
OmegaConf.register_new_resolver("cnnlab.folder_name", folder_name, replace=True)
OmegaConf.register_new_resolver("cnnlab.run_name", run_name, replace=True)

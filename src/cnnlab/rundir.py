"""Where a command writes: the run-folder policy, in three rules.

1. Every command gets a new folder from Hydra, `paths.output_dir/<name>/<date_time_microseconds>` (a sweep's job:
   `<sweep folder>/<job number>_<overrides>`); under torchrun rank 0's time names it for every rank.
2. Only `cnnlab-train resume=true hydra.run.dir=<run folder>` continues in an existing folder: a fresh run there
   is refused, and so is any command while another one holds the folder's lock (commands/training.py).
3. Hydra's record of the first command in a folder is `.hydra/`; a later command's is `.hydra/<date_time>/`.

The resolvers below are used in configs/train.yaml's `hydra:` section.
"""
from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from . import distributed


def stamp() -> str:
    """`${cnnlab.stamp:}`: the time to the microsecond (two commands started in one second get two folders); under
    torchrun the one rank 0 read, so that every rank names the same folder."""
    if distributed.WORLD.stamp:
        return distributed.WORLD.stamp
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def record_dir(output_dir: str) -> Optional[str]:
    """`hydra.output_subdir`: `.hydra` in a new folder, `.hydra/<time>` in one that holds an earlier command's
    record (which stays as it was); none on the ranks other than 0 (rank 0 writes the record)."""
    if not distributed.WORLD.main:
        return None
    return f".hydra/{stamp()}" if (Path(output_dir) / ".hydra").exists() else ".hydra"


def folder_name(text: Any) -> str:
    """`text` as one folder name: a '/' (a path in a value) would nest folders, so it becomes '_', and so do the
    names '', '.' and '..'; cut to 200 bytes (file systems allow 255)."""
    name = str(text).replace("/", "_").replace("\\", "_").encode()[:200].decode(errors="ignore")
    return "_" if name in ("", ".", "..") else name


def run_name(ckpt_path: Any, default: str) -> str:
    """`name`'s default: for `cnnlab-train ckpt_path=<file>` the name of the run that wrote it (so that the continued
    run is filed beside it), else `default` (`<model>_<data>`). Only tensors are mapped, nothing is built."""
    if not ckpt_path or not Path(str(ckpt_path)).expanduser().is_file():
        return default
    import torch

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

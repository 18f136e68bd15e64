"""The file handling `cnnlab-predict`'s readers and writers share (and cnnlab-eval/-viz/-compare's output checks): which
files `input=` names, where `output=` goes, and whether a folder can be written before the work that fills it."""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from ..checkpoint import atomic_write
from ..data.imageio import BadImageFile, page_count
from ..errors import ConfigError


def input_files(spec: str, extensions: tuple[str, ...]) -> list[Path]:
    """The files `input=` names: one file, every matching file below a folder, or a glob; sorted (stable order)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        where = f"folder {path}"
    else:
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        where = f"pattern {spec}"
    if not files:
        raise ConfigError(f"input={spec}: no {'/'.join(e.lstrip('.') for e in extensions)} files in the {where}: "
                          f"give a file, a folder of files, or a glob such as 'pics/*.png'")
    return files


def tiff_pages(path: Path) -> int:
    """The pages of a TIFF file (1 for other images), 0 when it cannot be read."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    try:
        return page_count(path)
    except BadImageFile:
        return 0


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a parent that may not be searched: that parent is then the one checked
        return False


def check_writable(folder: "str | Path", shown: str) -> None:
    """ConfigError naming `shown` (e.g. `output=preds/x.csv`) when no file can be made in `folder` (made later)."""
    # the nearest existing parent is tried with a temporary file: permissions, read-only disks and /proc all count
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
    """ConfigError naming `shown` when the file `path` is a folder (suggesting `example` in it) or cannot be written."""
    if Path(path).expanduser().is_dir():
        raise ConfigError(f"{shown} is a folder: give a file, e.g. {Path(path) / example}")
    check_writable(Path(path).expanduser().parent, shown)


class FileWriter:
    """The writer of one predictions file (`output=`, else `default` in the command's folder), written atomically."""

    def __init__(self, state: dict, cfg: DictConfig, run_dir: Path, default: str) -> None:
        if not cfg.get("output"):
            self.path = run_dir / default
        else:  # an existing folder, or one written with a trailing slash (`output=preds/`), gets `default` inside
            out = Path(str(cfg.output)).expanduser()
            self.path = out / default if out.is_dir() or str(cfg.output).endswith(("/", os.sep)) else out
            check_writable(self.path.parent, f"output={cfg.output}")
        self.names, self.rows = list(state["class_names"]), {}

    def targets(self, items: list) -> list[Path]:  # noqa: ARG002 - one file whatever the inputs
        """The files this writer will write."""
        return [self.path]

    def write(self, text: str) -> str:
        """Write `text` to the file; the summary line."""
        atomic_write(self.path, lambda f: f.write(text.encode()))
        return f"{len(self.rows)} predictions in {self.path.resolve()}"

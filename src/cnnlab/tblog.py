"""TensorBoard and console output for a run (named tblog, never logging, so the stdlib module stays reachable)."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

from torch import Tensor

log = logging.getLogger("cnnlab")


class RunLogger:
    """Scalars and images to TensorBoard in the run folder; `enabled=False` keeps only the console."""

    def __init__(self, log_dir: "str | Path", enabled: bool = True, purge_step: Optional[int] = None) -> None:
        """`purge_step`: on resume, events an earlier process wrote at this step or later are dropped, so no step
        is shown twice after a kill."""
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One point per tag at `step`."""
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, img: Tensor, step: int) -> None:
        """`img` is [3,H,W] float in [0,1]."""
        if self.writer is not None:
            self.writer.add_image(tag, img, step)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        """A histogram of `values` at `step`."""
        if self.writer is not None:
            self.writer.add_histogram(tag, values.float().cpu(), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text (e.g. the resolved config) in TensorBoard's TEXT tab."""
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def embedding(self, tag: str, vectors: Tensor, words: list[str], step: int = 0) -> None:
        """Rows of `vectors` labelled by `words`, for TensorBoard's PROJECTOR tab."""
        if self.writer is not None:
            self.writer.add_embedding(vectors.float().cpu(), metadata=words, tag=tag, global_step=step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """One HParams-tab row in this run's own folder, so a sweep's runs line up side by side."""
        if self.writer is not None:
            clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
            self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A one-line progress bar on a terminal (nothing when output is redirected, so logs stay clean): steps done of
    the total, rate, time left, and the last loss read; redrawn at most every `interval` seconds."""

    def __init__(self, total: int, label: str, enabled: Optional[bool] = None, done: int = 0,
                 interval: float = 0.1) -> None:
        self.total, self.label, self.start, self.first = max(total, 1), label, time.perf_counter(), done
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.interval, self.drawn, self.loss = interval, 0.0, None

    def update(self, done: int, loss: Optional[float] = None) -> None:
        """`done` of `total` steps; `loss` when it was read (kept for the next redraws)."""
        if loss is not None:
            self.loss = loss
        now = time.perf_counter()
        if not self.enabled or (now - self.drawn < self.interval and done < self.total):
            return
        self.drawn = now
        frac = done / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        rate = (done - self.first) / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else 0.0
        extra = f" loss {self.loss:.4f}" if self.loss is not None else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total} {rate:.1f} it/s "
                         f"ETA {int(left // 60):d}:{int(left % 60):02d}{extra}   ")
        sys.stderr.flush()

    def close(self) -> None:
        """Clear the bar's line."""
        if self.enabled:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()

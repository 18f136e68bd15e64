"""TensorBoard and console output for a run (named tblog, never logging, so the stdlib module stays reachable)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from torch import Tensor


class RunLogger:
    """Scalars and images to TensorBoard in the run folder; `enabled=False` keeps only the console."""

    def __init__(self, log_dir: "str | Path", enabled: bool = True, purge_step: Optional[int] = None) -> None:
        self.writer = None
        if enabled:  # purge_step: on resume, an earlier process's events from that step on are dropped
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
    """tqdm's progress bar (`tqdm.auto`): steps done, rate, time left and the last loss read, cleared at the end."""
    # enabled=None: shown only when stderr is a terminal (quiet in pipes and log files); True/False force it

    def __init__(self, total: int, label: str, enabled: Optional[bool] = None, done: int = 0,
                 interval: float = 0.1) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=max(total, 1), initial=done, desc=label, dynamic_ncols=True,
                        mininterval=interval, leave=False, disable=None if enabled is None else not enabled)

    def update(self, done: int, loss: Optional[float] = None) -> None:
        """`done` of `total` steps; `loss` when it was read (kept for the next redraws)."""
        if loss is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Clear the bar's line."""
        self.bar.close()

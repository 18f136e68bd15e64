"""cnnlab-predict for text classifiers: sentences in (a text file, one a line; `-` for standard input; or
text="..."), encoded with the checkpoint's vocabulary and tokenizer; `label<TAB>probability<TAB>text` out."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Optional

import torch
from omegaconf import DictConfig
from torch import Tensor

from ..data.imageio import EXTENSIONS
from ..data.text import TrimPrepare, encode
from ..errors import ConfigError
from .predict_io import FileWriter

TABLES = (".csv", ".tsv", ".jsonl", ".json")  # what data=text_files and data=sst2 read: not one sentence a line


def read_sentences(spec: str) -> list[str]:
    """The lines of a text file (or of standard input for '-'), without their line ends."""
    if spec == "-":
        return sys.stdin.read().split("\n")
    path = Path(spec).expanduser()
    if path.suffix.lower() in TABLES and path.is_file():
        raise ConfigError(f"input={spec} is a {path.suffix.lower()[1:].upper()} table, and cnnlab-predict reads "
                          f"plain text, one sentence a line (each line of a table, its header and labels included, "
                          f"would be classified as a sentence): save the text column as a .txt file and pass that")
    if path.suffix.lower() in EXTENSIONS or not path.is_file():
        what = ("is an image" if path.suffix.lower() in EXTENSIONS else
                "is a folder" if path.is_dir() else "does not exist")
        raise ConfigError(f"input={spec} {what}, and this checkpoint is a sentence model: pass input=<text file, "
                          f"one sentence a line> (or - for standard input), or text=\"...\"")
    try:
        return path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line} is not valid utf-8 ({e.reason}): save it as utf-8") from None


class LineReader:
    """Sentences (the lines of `input=`, or the one sentence `text`) -> int64 token-id batches; empty lines counted."""

    def __init__(self, state: dict, cfg: DictConfig, text: Optional[str] = None) -> None:
        lines = [text] if text is not None else read_sentences(str(cfg.input))
        if lines and lines[-1] == "":
            lines = lines[:-1]  # the file's final newline
        self.items = [s for s in lines if s.strip()]
        self.bad, self.bad_reason = [f"line {i + 1}" for i, s in enumerate(lines) if not s.strip()], "were empty"
        if not self.items:
            raise ConfigError(f"input={cfg.get('input')}: no sentence to predict (every line is empty)")
        self.state, self.prepare = state, TrimPrepare(int(state.get("min_len", 1)))

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(token ids, indices into `items`) per batch of sentences."""
        for lo in range(0, len(self.items), size):
            idx = torch.arange(lo, min(lo + size, len(self.items)))
            yield self.prepare(encode(self.state, self.items[lo:lo + size]), idx)


class TextTsvWriter(FileWriter):
    """`label<TAB>probability<TAB>text` per sentence in input order (for one sentence `text`: on the console)."""

    def __init__(self, state: dict, cfg: DictConfig, run_dir: Path, text: Optional[str] = None) -> None:
        super().__init__(state, cfg, run_dir, "predictions.tsv")  # text= with output= was refused by check_inputs
        self.console = text is not None

    def targets(self, items: list) -> list[Path]:  # noqa: ARG002 - one file whatever the inputs
        """The files this writer will write (none for one sentence: it prints)."""
        return [] if self.console else [self.path]

    def add(self, items: list, index: Tensor, logits: Tensor, inputs: Optional[Tensor] = None) -> None:
        probs, labels = logits.float().softmax(1).max(1)
        for i, p, c in zip(index.tolist(), probs.tolist(), labels.tolist()):
            self.rows[i] = (self.names[c], p, items[i].replace("\t", " "))

    def close(self) -> str:
        if self.console:
            label, p, text = self.rows[0]
            print(f"{label}\t{p:.4f}\t{text}")
            return f"{text!r}: {label} ({p:.1%})"
        rows = (self.rows[i] for i in sorted(self.rows))
        return self.write("".join(f"{label}\t{p:.6f}\t{text}\n" for label, p, text in rows))

"""Readers of labelled sentence files: one sentence per line (MR), TSV with a header (GLUE SST-2), CSV and JSONL.
A bad line (empty, undecodable, a missing field, an unknown label) stops the run with one line naming the file, the
line number and the fix, or, with `on_bad_line="skip"`, is left out and counted in one warning per file."""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from ..errors import ConfigError

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
Column = Union[str, int]


@dataclass
class Records:
    """Sentences and their labels (as written in the file) from one file."""

    texts: list[str]
    labels: list[str]


class BadLines:
    """Raise a one-line ConfigError for a bad line, or (policy "skip") count it and warn once at the end."""

    def __init__(self, path: Path, policy: str) -> None:
        if policy not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_line={policy} is not known: use error or skip")
        self.path, self.policy, self.count, self.first = path, policy, 0, ""

    def __call__(self, line: int, problem: str, fix: str) -> None:
        where = f"{self.path}:{line}: {problem}"
        if self.policy == "error":
            raise ConfigError(f"{where}: {fix}, or set data.on_bad_line=skip to leave such lines out")
        self.count += 1
        self.first = self.first or where

    def report(self) -> None:
        if self.count:
            log.warning(f"skipped {self.count} bad line(s) of {self.path} (data.on_bad_line=skip); first: {self.first}")


def decoded_lines(path: Path, encoding: str, bad: BadLines) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line break) per line; undecodable lines go to `bad`."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: point data.root (and the data.*_file names) at the data folder")
    # split on b"\n" only, each line decoded alone: str.splitlines also breaks at U+0085 (MR's latin-1 byte 0x85)
    pieces = path.read_bytes().split(b"\n")
    if pieces and pieces[-1] == b"":  # the final newline ends the last line; it does not start another
        pieces.pop()
    for number, raw in enumerate(pieces, 1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            bad(number, f"byte {raw[e.start:e.start + 1]!r} at column {e.start + 1} is not valid {encoding}",
                "set data.encoding to the file's encoding (e.g. latin-1)")
            continue
        yield number, text[1:] if number == 1 and text.startswith("\ufeff") else text  # drop a UTF-8 BOM


def read_lines(path: Path, encoding: str = "utf-8", on_bad_line: str = "error") -> list[str]:
    """One sentence per line (MR's rt-polarity.pos/.neg); empty lines are bad lines."""
    bad, out = BadLines(path, on_bad_line), []
    for number, text in decoded_lines(path, encoding, bad):
        if text.strip():
            out.append(text)
        else:
            bad(number, "empty line", "remove it")
    bad.report()
    return out


def _column(spec: Column, header: Optional[list[str]], path: Path, key: str) -> int:
    if isinstance(spec, int):
        return spec
    if header is None:
        raise ConfigError(f"data.{key}={spec!r} must be a column number (0-based) with data.header=false")
    names = [h.strip() for h in header]
    if spec not in names:
        raise ConfigError(f"{path} has no column {spec!r} (its header: {', '.join(names)}): set data.{key}")
    return names.index(spec)


def _delimited(path: Path, fmt: str, text_column: Column, label_column: Column, header: bool, encoding: str,
               bad: BadLines) -> Iterator[tuple[int, str, str]]:
    """(line number, text, label) per record of a CSV (RFC 4180 quoting) or TSV (no quoting: GLUE's) file."""
    lines, numbers, names = decoded_lines(path, encoding, bad), [], None

    def feed() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text + "\n"

    if fmt == "tsv":
        rows = ((number, text.split("\t")) for number, text in lines)
    else:  # a quoted field may span lines: the number is the record's last line
        rows = ((numbers[-1], row) for row in csv.reader(feed()))
    if header:
        first = next(rows, None)
        if first is None:
            raise ConfigError(f"{path} is empty: it needs a header line naming its columns")
        names = first[1]
    t, y = _column(text_column, names, path, "text_column"), _column(label_column, names, path, "label_column")
    for number, fields in rows:
        if not any(f.strip() for f in fields):
            bad(number, "empty line", "remove it")
        elif len(fields) <= max(t, y):
            bad(number, f"{len(fields)} field(s), the text and label columns need {max(t, y) + 1}",
                "give the line its missing fields")
        else:
            yield number, fields[t], fields[y]


def _jsonl(path: Path, text_column: Column, label_column: Column, encoding: str,
           bad: BadLines) -> Iterator[tuple[int, str, str]]:
    """(line number, text, label) per object of a JSONL file; a label that is no string is read as its JSON."""
    for number, line in decoded_lines(path, encoding, bad):
        if not line.strip():
            bad(number, "empty line", "remove it")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            bad(number, f"not valid JSON ({e.msg})", "write one JSON object per line")
            continue
        if not isinstance(obj, dict) or text_column not in obj or label_column not in obj:
            bad(number, f"no {text_column!r} and {label_column!r} keys",
                "set data.text_column and data.label_column to the keys the file uses")
        elif not isinstance(obj[text_column], str):
            bad(number, f"{text_column!r} is not a string", "write the sentence as a JSON string")
        else:
            label = obj[label_column]
            yield number, obj[text_column], label if isinstance(label, str) else json.dumps(label)


def read_table(path: Path, text_column: Column = "text", label_column: Column = "label", file_format: str = "auto",
               header: bool = True, allowed: Optional[list[str]] = None, encoding: str = "utf-8",
               on_bad_line: str = "error") -> Records:
    """Labelled sentences from a CSV / TSV or JSONL file; labels outside `allowed` (None: any) are bad lines."""
    bad = BadLines(path, on_bad_line)
    fmt = FORMATS.get(path.suffix.lower()) if file_format == "auto" else file_format
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {path} from its suffix: set data.file_format=csv, tsv or jsonl")
    if fmt not in FORMATS.values():
        raise ConfigError(f"data.file_format={file_format} is not known: use auto, csv, tsv or jsonl")
    if fmt == "jsonl":
        records = _jsonl(path, text_column, label_column, encoding, bad)
    else:
        records = _delimited(path, fmt, text_column, label_column, header, encoding, bad)
    out = Records([], [])
    for number, text, label in records:
        if not text.strip():
            bad(number, "empty sentence", "remove the line or fill in its text")
        elif not label.strip():
            bad(number, "empty label", "give every line a label")
        elif allowed is not None and label.strip() not in allowed:
            bad(number, f"label {label.strip()!r} is not one of {', '.join(allowed)}",
                "fix the label, or list it in data.class_names")
        else:
            out.texts.append(text)
            out.labels.append(label.strip())
    bad.report()
    if not out.texts:
        raise ConfigError(f"{path} holds no usable labelled sentences: check the file and data.text_column / "
                          f"data.label_column")
    return out


def has_column(path: Path, name: str, encoding: str = "utf-8") -> bool:
    """Whether the header line of a TSV file names the column `name` (e.g. whether a test.tsv has labels)."""
    first = next(decoded_lines(path, encoding, BadLines(path, "error")), (1, ""))[1]
    return name in [h.strip() for h in first.split("\t")]

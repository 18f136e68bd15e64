"""Pretrained word vectors for a vocabulary: GloVe text (Pennington et al. 2014), word2vec text and binary files
(Mikolov et al. 2013). Only the vectors of vocabulary words are kept, so a 3.6 GB GoogleNews file needs no more
memory than the vocabulary."""
from __future__ import annotations

import itertools
import logging
import mmap
import re
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .text import PAD_ID, UNK_ID

log = logging.getLogger(__name__)

FORMATS = ("auto", "glove", "word2vec_text", "word2vec_binary")
_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s*")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.IGNORECASE)


class Found:
    """Vectors of vocabulary words (`rows[i]` is vocabulary id `ids[i]`'s); an exact match beats a lower-case one."""

    def __init__(self, vocab: Sequence[str], dim: int) -> None:
        self.index = {w: i for i, w in enumerate(vocab) if i not in (PAD_ID, UNK_ID)}
        self.found: dict[int, tuple[bool, np.ndarray]] = {}  # id -> (exact, vector)
        self.dim = dim

    def offer(self, word: str) -> Optional[tuple[int, bool]]:
        """(id, exact) when `word`'s vector should be stored, else None."""
        # the first of a kind wins: word2vec files list frequent words first
        i = self.index.get(word)
        if i is not None:
            return None if self.found.get(i, (False,))[0] else (i, True)
        i = self.index.get(word.lower())
        return None if i is None or i in self.found else (i, False)

    def store(self, target: tuple[int, bool], vector: np.ndarray) -> None:
        self.found[target[0]] = (target[1], vector)

    @property
    def ids(self) -> list[int]:
        return sorted(self.found)

    @property
    def rows(self) -> list[np.ndarray]:
        return [self.found[i][1] for i in self.ids]

    @property
    def by_lower_case(self) -> int:
        """Words matched through the lower-cased vector word (e.g. "Good" for "good")."""
        return sum(not exact for exact, _ in self.found.values())


def _is_number(field: bytes) -> bool:
    return _NUMBER.fullmatch(field.decode("latin-1")) is not None


def detect_format(path: Path) -> str:
    """glove, word2vec_text or word2vec_binary, from the first line and the line after it."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    first, _, rest = head.partition(b"\n")
    header = _HEADER.fullmatch(first)
    if header is None:
        return "glove"
    dim = int(header.group(2))
    fields = rest.partition(b"\n")[0].rstrip().split(b" ")  # binary floats almost never parse as D numbers
    text = len(fields) > dim and all(_is_number(v) for v in fields[-dim:])
    return "word2vec_text" if text else "word2vec_binary"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its line break) for each non-empty line, split on b"\\n" only."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def _decode(raw: bytes, where: str, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: byte {raw[e.start:e.start + 1]!r} is not valid {encoding}: set "
                          f"data.vectors_encoding to the file's encoding") from None


def _read_text(path: Path, vocab: Sequence[str], header: bool, encoding: str) -> Found:
    """GloVe / word2vec text (`word v1 ... vD` lines): the dimension is the header's, else read off the first lines."""
    lines = _lines(path)
    if header:
        match = _HEADER.fullmatch(next(lines, (1, b""))[1])
        if match is None:
            raise ConfigError(f"{path}:1 is not a word2vec header `count dim`: set data.vectors_format=glove")
        dim = int(match.group(2))
    else:  # GloVe: the commonest field count of the first lines (a word may hold spaces; ties: the fewest)
        first = list(itertools.islice(lines, 100))
        counts = Counter(len(line.rstrip().split(b" ")) - 1 for _, line in first)
        dim = min(counts, key=lambda d: (-counts[d], d)) if counts else 0
        if dim < 1:
            raise ConfigError(f"{path} holds no vectors: point data.vectors at a GloVe or word2vec file")
        lines = itertools.chain(first, lines)
    found = Found(vocab, dim)
    for number, line in lines:
        fields = line.rstrip().split(b" ")
        where = f"{path}:{number}"
        if len(fields) < dim + 1 or (len(fields) > dim + 1 and _is_number(fields[-dim - 1])):
            raise ConfigError(f"{where} has {len(fields) - 1} values after the word, expected {dim} (the file's "
                              f"dimension): the file is broken or mixes dimensions; re-download it")
        target = found.offer(_decode(b" ".join(fields[:-dim]), where, encoding))  # glove.840B's words hold spaces
        if target is not None:
            try:
                found.store(target, np.array(fields[-dim:], dtype=np.float32))
            except ValueError:
                raise ConfigError(f"{where} holds a value that is not a number: the file is broken; "
                                  f"re-download it") from None
    return found


def _read_binary(path: Path, vocab: Sequence[str], encoding: str) -> Found:
    """word2vec binary (header, then per word: bytes, a space, D little-endian float32), read through a memory map."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        end = buf.find(b"\n")
        header = _HEADER.fullmatch(buf[:max(end, 0)])
        if header is None:
            raise ConfigError(f"{path} has no word2vec header `count dim`: set data.vectors_format=glove or "
                              f"word2vec_text")
        count, dim = int(header.group(1)), int(header.group(2))
        found, pos, size = Found(vocab, dim), end + 1, len(buf)
        for k in range(count):
            while pos < size and buf[pos] in b"\n\r":
                pos += 1
            space = buf.find(b" ", pos, pos + 1000)  # a word longer than 1,000 bytes means a broken file
            if space < 0 or space + 1 + 4 * dim > size:
                raise ConfigError(f"{path}: vector {k + 1} of {count} (byte {pos}) is truncated or broken; the "
                                  f"header says {count} vectors of dimension {dim}: re-download the file")
            target = found.offer(_decode(buf[pos:space], f"{path} (vector {k + 1}, byte {pos})", encoding))
            if target is not None:
                found.store(target, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1).copy())
            pos = space + 1 + 4 * dim
        if buf[pos:].strip():
            raise ConfigError(f"{path}: {size - pos} bytes follow the {count} vectors the header announces: the "
                              f"header's count or dimension ({dim}) is wrong; re-download the file")
    return found


def read_vectors(path: "str | Path", vocab: Sequence[str], fmt: str = "auto", encoding: str = "utf-8") -> Found:
    """The vectors of `vocab`'s words found in the file at `path` (format `fmt`, or detected)."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise ConfigError(f"data.vectors_format={fmt} is not known: use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ConfigError(f"vectors file {path} not found: set data.vectors=<GloVe or word2vec file> or null")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "word2vec_binary":
        return _read_binary(path, vocab, encoding)
    return _read_text(path, vocab, fmt == "word2vec_text", encoding)


def embedding_matrix(path: "str | Path", vocab: Sequence[str], fmt: str = "auto", encoding: str = "utf-8",
                     seed: int = 0) -> Tensor:
    """float32 [len(vocab), D]: pretrained rows where found, others U[-a, a] (Kim 2014), the padding row 0 zero."""
    found = read_vectors(path, vocab, fmt, encoding)
    words = len(vocab) - 2  # without <pad> and <unk>
    if not found.ids:
        raise ConfigError(f"none of the {words} vocabulary words is in {path}: wrong vectors file, or its words are "
                          f"cased differently (data.lower)")
    known = torch.from_numpy(np.stack(found.rows))
    a = float(torch.sqrt(3 * known.var()))  # the found vectors' variance
    gen = torch.Generator().manual_seed(seed)
    matrix = (torch.rand(len(vocab), found.dim, generator=gen) * 2 - 1) * a
    matrix[torch.tensor(found.ids)] = known
    matrix[PAD_ID] = 0.0
    log.info(f"vectors {Path(path).name}: {len(found.ids):,} of {words:,} vocabulary words found "
             f"(coverage {len(found.ids) / max(words, 1):.1%}; {found.by_lower_case:,} by lower-case match), "
             f"dimension {found.dim}; the others drawn from U[-{a:.3f}, {a:.3f}]")
    return matrix

"""Small sentence and word-vector files in the real on-disk formats (GLUE SST-2 TSV, MR latin-1 lines, GloVe and
word2vec text/binary), for the tests and the benchmark. Sentences come from the procedural sentiment corpus."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cnnlab.data.sentiment import corpus

CONTRACTION = "n't"  # SST-2 is tokenised as the Penn Treebank: "was n't"


def write_sst2(root: Path, n_train: int = 200, n_dev: int = 40, test: str = "none", seed: int = 0) -> Path:
    """GLUE's SST-2 layout: `sentence<TAB>label` header, a space before each tab (as the real files), labels 0/1.

    `test`: "none" (no test.tsv), "glue" (GLUE's unlabelled `index<TAB>sentence`), or "labelled".
    """
    root.mkdir(parents=True, exist_ok=True)
    texts, labels = corpus(n_train + 2 * n_dev, seed)
    parts = {"train.tsv": slice(0, n_train), "dev.tsv": slice(n_train, n_train + n_dev)}
    if test == "labelled":
        parts["test.tsv"] = slice(n_train + n_dev, None)
    for name, part in parts.items():
        rows = [f"{t.replace(CONTRACTION, ' ' + CONTRACTION)} \t{y}\n" for t, y in zip(texts[part], labels[part])]
        (root / name).write_text("sentence\tlabel\n" + "".join(rows), encoding="utf-8")
    if test == "glue":
        rows = [f"{i}\t{t}\n" for i, t in enumerate(texts[n_train + n_dev:])]
        (root / "test.tsv").write_text("index\tsentence\n" + "".join(rows), encoding="utf-8")
    return root


def write_mr(root: Path, pos: Sequence[str], neg: Sequence[str]) -> Path:
    """rt-polarity.pos / .neg: one sentence a line, latin-1, a final newline. Put "\\x85" (byte 0x85, which
    str.splitlines would take for a line break) into a sentence to test the reader."""
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in (("rt-polarity.pos", pos), ("rt-polarity.neg", neg)):
        (root / name).write_bytes("".join(f"{s} \n" for s in lines).encode("latin-1"))
    return root


def write_glove(path: Path, vectors: Mapping[str, Sequence[float]]) -> Path:
    """GloVe text: `word v1 ... vD` per line, no header."""
    path.write_text("".join(f"{w} {' '.join(f'{v:.6f}' for v in vec)}\n" for w, vec in vectors.items()),
                    encoding="utf-8")
    return path


def write_word2vec_text(path: Path, vectors: Mapping[str, Sequence[float]]) -> Path:
    """word2vec text: a `count dim` header line, then lines as GloVe's."""
    dim = len(next(iter(vectors.values())))
    body = "".join(f"{w} {' '.join(f'{v:.6f}' for v in vec)}\n" for w, vec in vectors.items())
    path.write_text(f"{len(vectors)} {dim}\n" + body, encoding="utf-8")
    return path


def write_word2vec_binary(path: Path, vectors: Mapping[str, Sequence[float]]) -> Path:
    """word2vec binary, as the original C tool writes it: header, then `word<SPACE>` + D little-endian float32 +
    a newline per word."""
    dim = len(next(iter(vectors.values())))
    out = [f"{len(vectors)} {dim}\n".encode()]
    for w, vec in vectors.items():
        out.append(w.encode("utf-8") + b" " + struct.pack(f"<{dim}f", *np.asarray(vec, dtype=np.float32)) + b"\n")
    path.write_bytes(b"".join(out))
    return path

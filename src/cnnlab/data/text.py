"""Text to token ids: the tokenizer, a vocabulary of the training sentences, compact int32 encoding, the per-batch
`prepare`, and the plain-data `state` with which a checkpoint alone encodes new sentences (`encode`)."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 in every vocabulary
PAD_ID, UNK_ID = 0, 1
TOKENIZER_VERSION = 1  # bump when the rules below change: a checkpoint records the version it was trained with

# Tokenizer rules, in order: NFKC ("…" -> "..."), curly quotes and U+02BC -> ' and "; lower-case (`lower`); Penn
# Treebank contractions (as in SST-2) split off the word before them ("doesn't" -> "does n't", "can't" -> "ca n't");
# tokens: a contraction, a word (\w+ joined by single inner - ' . as in "well-worn", "3.5"; no trailing period), or
# another non-space character with its immediate repeats ("...", "!!"). Tokenised text (SST-2, MR) keeps its tokens.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_CONTRACTION = re.compile(r"(?<=\w)(n't|'(?:s|re|ve|ll|d|m))\b", re.IGNORECASE)
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-'.]\w+)*|([^\w\s])\1*", re.IGNORECASE)


def tokenize(text: str, lower: bool = True) -> list[str]:
    """The tokens of `text` by the rules above."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    if lower:
        text = text.lower()
    text = _CONTRACTION.sub(r" \1", text)
    return [m.group(0) for m in _TOKEN.finditer(text)]


def build_vocab(token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: Optional[int] = None) -> list[str]:
    """[PAD, UNK, words...]: at most `max_size` words seen >= `min_freq` times, most frequent (then a-z) first."""
    if min_freq < 1 or (max_size is not None and max_size < 1):
        raise ConfigError(f"data.min_freq={min_freq} must be >= 1 and data.max_vocab={max_size} >= 1 (or null)")
    counts = Counter(tok for tokens in token_lists for tok in tokens)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, UNK] + words[:max_size]


def encode_tokens(token_lists: Sequence[Sequence[str]], vocab: Sequence[str], min_len: int = 1,
                  max_len: Optional[int] = None) -> Tensor:
    """int32 [N, L] ids (unknown words 1), padded with 0 on the right; L = max(longest, `min_len`), cut to `max_len`."""
    index = {w: i for i, w in enumerate(vocab)}
    longest = max((len(t) for t in token_lists), default=0)
    width = max(min(longest, max_len) if max_len else longest, min_len, 1)
    ids = torch.zeros(len(token_lists), width, dtype=torch.int32)
    for row, tokens in enumerate(token_lists):  # once per split at load time, not in the training loop
        row_ids = [index.get(t, UNK_ID) for t in tokens[:width]]
        ids[row, :len(row_ids)] = torch.tensor(row_ids, dtype=torch.int32)
    return ids


def lengths(ids: Tensor) -> Tensor:
    """Tokens per row of right-padded ids (id 0 never occurs inside a sentence)."""
    return (ids != PAD_ID).sum(1)


@dataclass
class TrimPrepare:
    """A TensorSplit `prepare`: int32 batch -> int64, cut to its longest sentence (at least `min_len` columns)."""

    min_len: int

    def __call__(self, x: Tensor, y: Tensor) -> "tuple[Tensor, Tensor]":
        width = max(int(lengths(x).max()), self.min_len) if len(x) else x.shape[1]  # one host sync per batch
        return x[:, :width].long(), y


class UnknownWordDropout:
    """A training-batch augmentation: each word becomes <unk> with probability `p`, so that <unk> is learned."""

    def __init__(self, p: float) -> None:
        if not 0 < p < 1:
            raise ConfigError(f"data.word_dropout={p} must be in [0, 1) (0 = off)")
        self.p = p

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator) -> "tuple[Tensor, Tensor]":
        drop = (torch.rand(x.shape, generator=generator, device=x.device) < self.p) & (x != PAD_ID)
        return x.masked_fill(drop, UNK_ID), y


def text_state(vocab: list[str], class_names: list[str], lower: bool = True, min_len: int = 1,
               max_len: Optional[int] = None, vectors_dim: Optional[int] = None) -> dict:
    """The bundle's `state`: plain data from which `encode` turns raw sentences into model input."""
    return {"task": "text", "input": "text", "class_names": list(class_names), "vocab": list(vocab),
            "tokenizer": {"lower": bool(lower), "version": TOKENIZER_VERSION}, "min_len": int(min_len),
            "max_len": None if max_len is None else int(max_len),
            "vectors_dim": None if vectors_dim is None else int(vectors_dim)}


def decode(ids: Tensor, vocab: Sequence[str]) -> str:
    """One row of token ids back to its (tokenised) sentence, padding dropped."""
    return " ".join(vocab[i] for i in ids.tolist() if i != PAD_ID)


def encode(state: dict, sentences: Sequence[str]) -> Tensor:
    """Raw sentences -> int32 [N, L] token ids with the vocabulary and tokenizer settings saved in `state`."""
    tok = state["tokenizer"]
    if tok.get("version", 1) != TOKENIZER_VERSION:
        raise ConfigError(f"the checkpoint's tokenizer is version {tok.get('version')}, this cnnlab has "
                          f"{TOKENIZER_VERSION}: predict with the cnnlab version that trained it")
    tokens = [tokenize(s, tok["lower"]) for s in sentences]
    return encode_tokens(tokens, state["vocab"], state["min_len"], state["max_len"])

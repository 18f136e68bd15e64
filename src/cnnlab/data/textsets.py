"""Sentence classification data as DataBundles: GLUE SST-2, MR (Pang & Lee 2005, 10-fold CV as Kim 2014), and
generic CSV / TSV / JSONL files. Every builder takes `TextOptions` as keyword arguments."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import torch

from ..errors import ConfigError
from .common import DataBundle, TensorSplit
from .options import check_count
from .splits import stratified_split
from .sentences import Column, Records, has_column, read_lines, read_table
from .text import UNK_ID, TrimPrepare, UnknownWordDropout, build_vocab, encode_tokens, text_state, tokenize
from .vectors import embedding_matrix

log = logging.getLogger(__name__)
BINARY = ["negative", "positive"]


@dataclass
class TextOptions:
    """How sentences become ids: see this module's docstring."""

    lower: bool = True
    min_freq: int = 1                 # the vocabulary: from the training split only
    max_vocab: Optional[int] = None
    min_len: int = 5                  # tokens: the widest filter of model=sentence_cnn (kernel_sizes 3, 4, 5)
    max_len: Optional[int] = None     # tokens; null = the longest sentence
    vectors: Optional[str] = None     # GloVe / word2vec file; null = no pretrained vectors
    vectors_format: str = "auto"      # auto | glove | word2vec_text | word2vec_binary
    vectors_encoding: str = "utf-8"
    word_dropout: float = 0.0         # training batches: each word -> <unk> with this probability (0 = off)


class Part(NamedTuple):
    """One split before encoding: token lists and class ids."""

    tokens: list[list[str]]
    labels: list[int]

    def take(self, index: Sequence[int]) -> "Part":
        return Part([self.tokens[i] for i in index], [self.labels[i] for i in index])


def text_options(options: dict, state: Optional[dict] = None) -> TextOptions:
    """The builders' TextOptions; a checkpoint's `state` gives the tokenizer case and lengths, and reads no vectors."""
    opts = TextOptions(**options)
    check_count("min_len", opts.min_len)
    check_count("max_len", opts.max_len, nullable=True, meaning="keep every token")
    if state:
        opts.lower, opts.min_len, opts.max_len = state["tokenizer"]["lower"], state["min_len"], state["max_len"]
        opts.vectors = None
    return opts


def tokenized(records: Records, class_names: Sequence[str], lower: bool) -> Part:
    """Tokenise the sentences of `records` and map each label (a value in `class_names`) to its class id."""
    ids = {c: i for i, c in enumerate(class_names)}
    return Part([tokenize(t, lower) for t in records.texts], [ids[y] for y in records.labels])


def text_bundle(name: str, class_names: list[str], train: Part, val: Part, test: Part, opts: TextOptions,
                seed: int = 0, state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """Vocabulary from `train` (or a checkpoint's `state`), int32 id splits, optional vectors and the data state."""
    for key, part in (("training", train), ("validation", val), ("test", test)):
        if not part.tokens:
            raise ConfigError(f"data={name}: the {key} split is empty: give it sentences (or a larger fraction)")
    vocab = list(state["vocab"]) if state else build_vocab(train.tokens, opts.min_freq, opts.max_vocab)
    alone = bool(state and only)  # the three parts are that one split, encoded once, standing in for the others
    parts = {"test": test} if alone else {"train": train, "val": val, "test": test}
    prepare = TrimPrepare(opts.min_len)
    splits = {k: TensorSplit(encode_tokens(p.tokens, vocab, opts.min_len, opts.max_len),
                             torch.tensor(p.labels, dtype=torch.long), prepare) for k, p in parts.items()}
    if alone:
        splits["train"] = splits["val"] = splits["test"]
    if opts.max_len:
        cut = sum(len(t) > opts.max_len for p in parts.values() for t in p.tokens)
        log.info(f"data.max_len={opts.max_len}: {cut} sentence(s) cut to their first {opts.max_len} tokens")
    val_ids = splits["val"].inputs
    source = "the checkpoint's" if state else f"data.min_freq={opts.min_freq}, data.max_vocab={opts.max_vocab}"
    unknown = (val_ids == UNK_ID).sum().item() / max((val_ids != 0).sum().item(), 1)
    counts = f"{len(test.tokens):,} {only} sentences" if alone else \
        f"{len(train.tokens):,} train / {len(val.tokens):,} val / {len(test.tokens):,} test sentences"
    log.info(f"{name}: {counts}; vocabulary {len(vocab) - 2:,} words ({source}); {unknown:.1%} of "
             f"{only if alone else 'validation'} tokens unknown")
    emb = None if not opts.vectors else embedding_matrix(opts.vectors, vocab, opts.vectors_format,
                                                          opts.vectors_encoding, seed)
    if not state:
        state = text_state(vocab, class_names, opts.lower, opts.min_len, opts.max_len,
                           None if emb is None else emb.shape[1])
    augment = UnknownWordDropout(opts.word_dropout) if opts.word_dropout != 0 else None
    return DataBundle(splits["train"], splits["val"], splits["test"], num_classes=len(class_names),
                      class_names=list(class_names), model_kwargs={"vocab_size": len(vocab), "embeddings": emb},
                      train_augment=augment, task="text", name=name, state=state)


def _spans(item: tuple) -> "set[tuple]":
    """Every contiguous part of a token tuple, itself included."""
    n = len(item)
    return {item[a:b] for a in range(n) for b in range(a + 1, n + 1)}


def whole_sentences(items: Sequence[tuple]) -> list[int]:
    """Indices of the items that are no contiguous part of another (first of copies): SST's whole sentences."""
    present, inside, first = set(items), set(), {}
    for item in present:
        inside.update((_spans(item) - {item}) & present)
    for i, item in enumerate(items):
        first.setdefault(item, i)
    return [i for item, i in first.items() if item not in inside]


def sentence_holdout(tokens: Sequence[Sequence[str]], val_size: int, seed: int) -> "tuple[list[int], list[int]]":
    """(train, val) indices of a phrase-level training file: val = `val_size` seeded whole sentences."""
    # their phrases leave training too, unless a remaining training sentence also contains them (no leak by phrases)
    items = [tuple(t) for t in tokens]
    roots = whole_sentences(items)
    if not 0 < val_size < len(roots):
        raise ConfigError(f"data.val_size={val_size} must be in [1, {len(roots)}): the training file holds "
                          f"{len(roots)} whole sentences")
    pick = torch.randperm(len(roots), generator=torch.Generator().manual_seed(seed))[:val_size]
    val = sorted(roots[i] for i in pick.tolist())
    val_items = {items[i] for i in val}
    val_spans = set().union(*(_spans(items[i]) for i in val))
    shared = {s for r in roots if items[r] not in val_items for s in _spans(items[r]) if s in val_spans}
    train = [i for i, it in enumerate(items) if it not in val_items and (it not in val_spans or it in shared)]
    left_out = len(items) - len(train) - len(val)
    log.info(f"validation: {len(val)} whole training sentences (data.split_seed={seed}); {left_out:,} other lines "
             f"(their phrases, or copies) left out of training, {len(shared):,} shared phrases kept")
    return train, val


def build_sst2(root: str, val_size: int = 1000, split_seed: int = 0, encoding: str = "utf-8",
               on_bad_line: str = "error", state: Optional[dict] = None, only: Optional[str] = None,
               **options: Any) -> DataBundle:
    """GLUE SST-2 (train.tsv, dev.tsv, test.tsv if labelled); `only` (with `state`): a split's own file alone."""
    # no labelled test.tsv (GLUE's has none): val = `val_size` whole sentences of train.tsv, test = dev.tsv (the
    # figure papers report); with one: val = dev.tsv, test = test.tsv
    opts, folder = text_options(options, state), Path(root).expanduser()
    test_file = folder / "test.tsv"
    labelled_test = test_file.is_file() and has_column(test_file, "label", encoding)
    own_file = {"test": "test.tsv", "val": "dev.tsv"} if labelled_test else {"test": "dev.tsv"}
    alone = own_file.get(only) if state else None
    for file in [alone] if alone else ["train.tsv", "dev.tsv"]:
        if not (folder / file).is_file():
            wanted = f"{file} (the {only} split)" if alone else "train.tsv and dev.tsv"
            raise ConfigError(f"SST-2 not found: expected {folder}/{wanted} (GLUE's SST-2 folder): set "
                              f"data.root=<that folder>")

    def read(file: str) -> Part:
        records = read_table(folder / file, "sentence", "label", "tsv", True, ["0", "1"], encoding, on_bad_line)
        return tokenized(records, ["0", "1"], opts.lower)

    if alone:
        log.info(f"sst2: only the {only} split is read ({alone}), with the checkpoint's vocabulary")
        part = read(alone)
        return text_bundle("sst2", BINARY, part, part, part, opts, split_seed, state, only=only)
    train, dev = read("train.tsv"), read("dev.tsv")
    if labelled_test:
        log.info("sst2: test.tsv has labels: val = dev.tsv, test = test.tsv")
        return text_bundle("sst2", BINARY, train, dev, read("test.tsv"), opts, split_seed, state)
    if test_file.is_file():
        log.info("sst2: test.tsv has no label column (GLUE's hidden test set): not used; test = dev.tsv")
    tr, va = sentence_holdout(train.tokens, val_size, split_seed)
    return text_bundle("sst2", BINARY, train.take(tr), train.take(va), dev, opts, split_seed, state)


def kfold(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Fold number of each sample: per class a seeded permutation dealt round-robin (fold sizes differ by <= 1)."""
    gen = torch.Generator().manual_seed(seed)
    fold, dealt = torch.empty(len(labels), dtype=torch.long), 0
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        fold[idx] = (torch.arange(len(idx)) + dealt) % folds
        dealt += len(idx)
    return fold


def _mr_file(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / "rt-polaritydata" / name):  # the archive unpacks into rt-polaritydata/
        if cand.is_file():
            return cand
    raise ConfigError(f"MR not found: expected {folder}/{name} (or {folder}/rt-polaritydata/{name}): set "
                      f"data.root=<folder with rt-polarity.pos and rt-polarity.neg>")


def build_mr(root: str, fold: int = 0, folds: int = 10, split_seed: int = 0, val_fraction: float = 0.1,
             encoding: str = "latin-1", on_bad_line: str = "error", state: Optional[dict] = None,
             **options: Any) -> DataBundle:
    """MR polarity: test = fold `fold` of a stratified partition by `split_seed`, val = `val_fraction` of the rest."""
    opts, folder = text_options(options, state), Path(root).expanduser()
    if not (folds >= 2 and 0 <= fold < folds and 0 < val_fraction < 1):
        raise ConfigError(f"data.fold={fold} must be in [0, data.folds={folds}) with folds >= 2, and "
                          f"data.val_fraction={val_fraction} in (0, 1)")
    neg, pos = (read_lines(_mr_file(folder, f"rt-polarity.{s}"), encoding, on_bad_line) for s in ("neg", "pos"))
    data = tokenized(Records(neg + pos, ["0"] * len(neg) + ["1"] * len(pos)), ["0", "1"], opts.lower)
    labels = torch.tensor(data.labels)
    parts = kfold(labels, folds, split_seed)
    rest = torch.nonzero(parts != fold).flatten()
    tr, va = stratified_split(labels[rest], (1 - val_fraction, val_fraction), split_seed)
    return text_bundle(f"mr_fold{fold}", BINARY, data.take(rest[tr].tolist()), data.take(rest[va].tolist()),
                       data.take(torch.nonzero(parts == fold).flatten().tolist()), opts, split_seed, state)


def build_text_files(root: str, train_file: str = "train.csv", val_file: Optional[str] = None,
                     test_file: Optional[str] = None, file_format: str = "auto", text_column: Column = "text",
                     label_column: Column = "label", header: bool = True, class_names: Optional[list] = None,
                     val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0,
                     encoding: str = "utf-8", on_bad_line: str = "error", state: Optional[dict] = None,
                     **options: Any) -> DataBundle:
    """Labelled sentences from CSV / TSV / JSONL files, any number of classes; a missing val/test file is a fraction."""
    opts, folder = text_options(options, state), Path(root).expanduser()
    given = None if class_names is None else [str(c) for c in class_names]

    def read(file: str, allowed: Optional[list[str]]):
        return read_table(folder / file, text_column, label_column, file_format, header, allowed, encoding,
                          on_bad_line)

    train_rec = read(train_file, given)
    distinct = set(train_rec.labels)  # sorted numerically when all are integers ("2" before "10")
    names = given or sorted(distinct, key=int if all(v.lstrip("-").isdigit() for v in distinct) else None)
    if len(names) < 2:
        raise ConfigError(f"{folder / train_file} holds one label value ({names[0]}): a classifier needs two or more")
    data = tokenized(train_rec, names, opts.lower)
    fractions = (val_fraction if val_file is None else 0.0, test_fraction if test_file is None else 0.0)
    if any(f <= 0 for f, file in zip(fractions, (val_file, test_file)) if file is None) or sum(fractions) >= 1:
        raise ConfigError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be > 0 "
                          f"(for a split without its own file) and sum to less than 1")
    tr, va, te = stratified_split(torch.tensor(data.labels), (1 - sum(fractions), *fractions), split_seed)
    parts = {"val": data.take(va.tolist()), "test": data.take(te.tolist())}
    for key, file in (("val", val_file), ("test", test_file)):
        if file is not None:
            parts[key] = tokenized(read(file, names), names, opts.lower)
    return text_bundle("text_files", names, data.take(tr.tolist()), parts["val"], parts["test"], opts, split_seed,
                       state)

"""Tokenizer, vocabulary, int32 encoding, per-batch trimming, and the plain-data state that encodes new text."""

import io

import pytest
import torch

from cnnlab.data.common import DataBundle, offered_from_state
from cnnlab.data.sentiment import corpus
from cnnlab.data.text import (PAD, UNK, TrimPrepare, UnknownWordDropout, build_vocab, encode, encode_tokens,
                              text_state, tokenize)
from cnnlab.errors import ConfigError


@pytest.mark.parametrize("text, tokens", [
    ("Doesn't it's the FILM's best -- really...",
     ["does", "n't", "it", "'s", "the", "film", "'s", "best", "--", "really", "..."]),
    ("can't won't I'm we're you've they'll she'd", ["ca", "n't", "wo", "n't", "i", "'m", "we", "'re", "you", "'ve",
                                                    "they", "'ll", "she", "'d"]),
    ("well-worn o'fallon 3.5 u.s. end.", ["well-worn", "o'fallon", "3.5", "u.s", ".", "end", "."]),
    ("\u201cGreat\u201d movie\u2019s ending!!!?", ['"', "great", '"', "movie", "'s", "ending", "!!!", "?"]),
    ("I\u2019m here\u2026", ["i", "'m", "here", "..."]),        # NFKC: the ellipsis character becomes "..."
    ("a\x85b\tc\u00a0d", ["a", "b", "c", "d"]),                  # U+0085, tabs, no-break spaces separate
    ("caf\u00e9 na\u00efve", ["caf\u00e9", "na\u00efve"]),
    ("$5 (really) ``quoted''", ["$", "5", "(", "really", ")", "``", "quoted", "''"]),
    ("  ", []),
])
def test_tokenizer_rules(text, tokens):
    assert tokenize(text) == tokens


def test_tokenizer_keeps_case_when_asked():
    assert tokenize("The FILM DOESN'T", lower=False) == ["The", "FILM", "DOES", "N'T"]


def test_tokenizer_keeps_penn_treebank_tokens():
    # SST-2 and MR are tokenised already: their tokens are the whitespace-separated fields, lower-cased
    texts, _ = corpus(300, seed=5)
    sst_style = [t.replace("n't", " n't") for t in texts]
    assert all(tokenize(t) == t.lower().split() for t in sst_style)
    assert any("n't" in t for t in sst_style)
    # and the raw forms ("wasn't") give the same tokens as the treebank forms ("was n't")
    assert [tokenize(t) for t in texts] == [tokenize(t) for t in sst_style]


def test_vocabulary_counts_min_freq_max_size_and_ties():
    tokens = [["a", "b", "a"], ["b", "c"], ["a"], ["z", "y"]]  # a:3 b:2 c:1 y:1 z:1
    assert build_vocab(tokens) == [PAD, UNK, "a", "b", "c", "y", "z"]  # ties alphabetical
    assert build_vocab(tokens, min_freq=2) == [PAD, UNK, "a", "b"]
    assert build_vocab(tokens, max_size=1) == [PAD, UNK, "a"]
    assert build_vocab(tokens, min_freq=4) == [PAD, UNK]
    with pytest.raises(ConfigError, match="min_freq"):
        build_vocab(tokens, min_freq=0)


def test_encoding_is_int32_right_padded_with_unknown_id_1():
    vocab = [PAD, UNK, "a", "b", "c"]
    ids = encode_tokens([["a", "b"], ["c", "x"], []], vocab, min_len=5)
    assert ids.dtype == torch.int32
    assert ids.tolist() == [[2, 3, 0, 0, 0], [4, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    long = [["a"] * 9, ["b"] * 2]
    assert encode_tokens(long, vocab, min_len=1).shape == (2, 9)
    assert encode_tokens(long, vocab, min_len=1, max_len=4).tolist() == [[2] * 4, [3, 3, 0, 0]]


def test_prepare_trims_each_batch_to_its_longest_sentence_but_not_below_min_len():
    stored = torch.zeros(4, 12, dtype=torch.int32)
    for row, n in enumerate([1, 3, 2, 7]):
        stored[row, :n] = torch.arange(2, 2 + n, dtype=torch.int32)
    prepare = TrimPrepare(min_len=5)
    y = torch.tensor([0, 1, 0, 1])
    x, y_out = prepare(stored[:3], y[:3])
    assert x.dtype == torch.int64 and x.shape == (3, 5) and torch.equal(y_out, y[:3])  # longest 3 < min_len 5
    x, _ = prepare(stored, y)
    assert x.shape == (4, 7) and torch.equal(x, stored[:, :7].long())


def test_word_dropout_replaces_words_by_unknown_at_the_given_rate_and_keeps_padding():
    x = torch.randint(2, 100, (400, 30))
    x[:, 20:] = 0
    y = torch.arange(400)
    out, y_out = UnknownWordDropout(0.2)(x, y, torch.Generator().manual_seed(0))
    changed = out != x
    assert torch.equal(y_out, y) and not changed[:, 20:].any()
    assert torch.equal(out[changed], torch.ones(int(changed.sum()), dtype=torch.long))  # all become <unk> (id 1)
    assert abs(changed[:, :20].float().mean().item() - 0.2) < 0.01  # 8,000 words: binomial sd 0.0045
    again, _ = UnknownWordDropout(0.2)(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # all randomness from the loader's generator: resume stays exact
    with pytest.raises(ConfigError, match="word_dropout=1"):
        UnknownWordDropout(1.0)


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_state_is_plain_data_that_encodes_new_sentences_alone():
    texts = ["The film wasn't good.", "A dull, dull plot!"]
    tokens = [tokenize(t) for t in texts]
    vocab = build_vocab(tokens)
    state = text_state(vocab, ["negative", "positive"], lower=True, min_len=5, max_len=None, vectors_dim=50)
    assert _plain(state) and state["class_names"] == ["negative", "positive"] and state["vocab"][:2] == [PAD, UNK]
    buffer = io.BytesIO()
    torch.save({"data_state": state}, buffer)  # what a checkpoint holds; loadable with weights_only=True
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["data_state"]
    ids = encode(loaded, texts + ["an unseen word"])
    assert ids.dtype == torch.int32
    assert torch.equal(ids[:2], encode_tokens(tokens, vocab, min_len=5))
    assert ids[2, :3].tolist() == [1, 1, 1]  # "an", "unseen", "word": not in the training vocabulary
    bundle_state = DataBundle(None, None, None, 2, ["negative", "positive"], task="text", state=loaded,
                              model_kwargs={"vocab_size": len(vocab), "embeddings": torch.ones(len(vocab), 50)})
    kwargs = offered_from_state(bundle_state.data_state())  # what eval/predict rebuild the model with
    assert kwargs["vocab_size"] == len(vocab) and kwargs["embeddings"].shape == (len(vocab), 50)


def test_state_with_a_newer_tokenizer_version_is_refused():
    state = text_state([PAD, UNK], ["a", "b"])
    state["tokenizer"]["version"] = 99
    with pytest.raises(ConfigError, match="tokenizer is version 99"):
        encode(state, ["x"])

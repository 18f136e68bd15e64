"""Pretrained vectors: GloVe text, word2vec text and word2vec binary files written here; coverage; broken files."""

import logging
import math

import numpy as np
import pytest
import torch

from cnnlab.data.text import PAD, UNK
from cnnlab.data.textsets import build_text_files
from cnnlab.data.vectors import detect_format, embedding_matrix, read_vectors
from cnnlab.errors import ConfigError
from text_fakes import write_glove, write_word2vec_binary, write_word2vec_text

VOCAB = [PAD, UNK, "good", "film", "dull", "zyzzyva"]
RNG = np.random.default_rng(0)
VECTORS = {w: RNG.normal(size=4).round(6).tolist() for w in ("the", "film", "good", "plot", "dull", "café")}
WRITERS = {"glove": write_glove, "word2vec_text": write_word2vec_text, "word2vec_binary": write_word2vec_binary}


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_is_detected_and_read_exactly(tmp_path, fmt):
    path = WRITERS[fmt](tmp_path / f"v.{fmt}", VECTORS)
    assert detect_format(path) == fmt
    found = read_vectors(path, VOCAB)
    assert found.dim == 4 and found.ids == [2, 3, 4]  # good, film, dull; zyzzyva is not in the file
    for i, row in zip(found.ids, found.rows):
        np.testing.assert_allclose(row, VECTORS[VOCAB[i]], atol=1e-6)
    assert read_vectors(path, VOCAB, fmt=fmt).ids == found.ids


def test_embedding_matrix_fills_missing_words_like_kim_and_reports_coverage(tmp_path, caplog):
    path = write_glove(tmp_path / "glove.txt", VECTORS)
    with caplog.at_level(logging.INFO):
        emb = embedding_matrix(path, VOCAB, seed=1)
    assert emb.shape == (6, 4) and emb.dtype == torch.float32
    assert "3 of 4 vocabulary words found (coverage 75.0%" in caplog.text
    assert torch.equal(emb[0], torch.zeros(4))  # padding
    known = torch.tensor([VECTORS[w] for w in ("good", "film", "dull")])
    assert torch.allclose(emb[2:5], known, atol=1e-6)
    a = math.sqrt(3 * known.var().item())  # U[-a, a] has the found vectors' variance
    assert emb[[1, 5]].abs().max() <= a and not torch.equal(emb[1], emb[5])
    assert torch.equal(emb, embedding_matrix(path, VOCAB, seed=1))


def test_exact_case_wins_over_a_lower_case_match(tmp_path):
    vecs = {"Good": [1.0, 0.0], "good": [0.0, 1.0], "Film": [2.0, 2.0]}
    for order in (vecs, dict(reversed(list(vecs.items())))):
        found = read_vectors(write_word2vec_text(tmp_path / "w.txt", order), VOCAB)
        rows = dict(zip(found.ids, (r.tolist() for r in found.rows)))
        assert rows == {2: [0.0, 1.0], 3: [2.0, 2.0]} and found.by_lower_case == 1


def test_glove_words_with_spaces_and_a_unicode_word(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text(". . . 0.5 0.25\ncafé 1 2\n", encoding="utf-8")
    found = read_vectors(path, [PAD, UNK, ". . .", "café"])
    assert found.ids == [2, 3] and found.rows[0].tolist() == [0.5, 0.25]


def test_broken_vector_files(tmp_path):
    good = write_glove(tmp_path / "ok.txt", VECTORS).read_text().splitlines()
    (tmp_path / "short.txt").write_text("\n".join(good[:3] + ["plot 0.1 0.2"] + good[3:]) + "\n")
    assert "short.txt:4 has 2 values after the word, expected 4" in one_line_error(
        read_vectors, tmp_path / "short.txt", VOCAB)
    (tmp_path / "mixed.txt").write_text("\n".join(good + ["bad 1 2 3 4 5 6 7 8"]) + "\n")
    assert "mixed.txt:7 has 8 values" in one_line_error(read_vectors, tmp_path / "mixed.txt", VOCAB)
    (tmp_path / "nan.txt").write_text("good 0.1 x 0.3 0.4\n")
    assert "nan.txt:1 holds a value that is not a number" in one_line_error(read_vectors, tmp_path / "nan.txt", VOCAB)
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 1 2 3 4\n".encode("latin-1"))
    assert "latin.txt:1: byte b'\\xe9' is not valid utf-8" in one_line_error(
        read_vectors, tmp_path / "latin.txt", VOCAB)
    assert read_vectors(tmp_path / "latin.txt", [PAD, UNK, "café"], encoding="latin-1").ids == [2]
    binary = write_word2vec_binary(tmp_path / "v.bin", VECTORS).read_bytes()
    (tmp_path / "cut.bin").write_bytes(binary[:-10])
    assert "vector 6 of 6" in one_line_error(read_vectors, tmp_path / "cut.bin", VOCAB)
    (tmp_path / "extra.bin").write_bytes(binary.replace(b"6 4\n", b"5 4\n", 1))
    assert "follow the 5 vectors" in one_line_error(read_vectors, tmp_path / "extra.bin", VOCAB)
    assert "none of the 4 vocabulary words" in one_line_error(
        embedding_matrix, tmp_path / "ok.txt", [PAD, UNK, "x", "y", "z", "w"])
    assert "not found" in one_line_error(read_vectors, tmp_path / "missing.txt", VOCAB)
    assert "vectors_format=fasttext" in one_line_error(read_vectors, tmp_path / "ok.txt", VOCAB, fmt="fasttext")


def test_builder_offers_vectors_for_its_vocabulary(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "the good film,1\nthe dull plot,0\n" * 5)
    path = write_word2vec_binary(tmp_path / "v.bin", VECTORS)
    b = build_text_files(str(tmp_path), val_fraction=0.2, test_fraction=0.2, vectors=str(path))
    emb = b.model_kwargs["embeddings"]
    assert emb.shape == (b.model_kwargs["vocab_size"], 4) and b.state["vectors_dim"] == 4
    for word in ("good", "dull", "plot"):
        i = b.state["vocab"].index(word)
        assert torch.allclose(emb[i], torch.tensor(VECTORS[word]), atol=1e-6)

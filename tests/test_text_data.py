"""The sentence readers and builders on files written here in the real formats, and their bad-input errors."""

import json
import logging

import pytest
import torch

from cnnlab.data.sentiment import build_sentiment_synthetic, corpus
from cnnlab.data.sentences import read_lines, read_table
from cnnlab.data.text import UNK_ID, encode, tokenize
from cnnlab.data.textsets import build_mr, build_sst2, build_text_files, kfold, sentence_holdout, whole_sentences
from cnnlab.errors import ConfigError
from text_fakes import write_mr, write_sst2


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def rows(split) -> list[list[int]]:
    """Each stored sentence's ids without padding."""
    return [r[r != 0].tolist() for r in split.inputs]


# ---------------------------------------------------------------- SST-2

PHRASES = [  # a miniature SST: whole sentences and their phrases, as GLUE's train.tsv lists them
    ("the film is good .", 1), ("the film", 1), ("is good", 1), ("good", 1),
    ("the film is bad .", 0), ("is bad", 0), ("bad", 0),
    ("a dull plot", 0), ("dull plot", 0), ("dull", 0),
    ("what a good film", 1), ("a good film", 1),
]


def test_whole_sentences_and_the_phrase_free_holdout():
    tokens = [t.split() for t, _ in PHRASES]
    assert [PHRASES[i][0] for i in whole_sentences([tuple(t) for t in tokens])] == \
        ["the film is good .", "the film is bad .", "a dull plot", "what a good film"]
    for seed in range(6):
        train, val = sentence_holdout(tokens, 1, seed)
        held = PHRASES[val[0]][0]
        assert held in {"the film is good .", "the film is bad .", "a dull plot", "what a good film"}
        kept = [PHRASES[i][0] for i in train]
        others = [s for s in ("the film is good .", "the film is bad .", "a dull plot", "what a good film")
                  if s != held]
        assert set(others) <= set(kept)
        for phrase in kept:  # a training line inside the held-out sentence is also inside a training sentence
            if f" {phrase} " in f" {held} ":
                assert any(f" {phrase} " in f" {s} " for s in others), (held, phrase)
        dropped = set(p for p, _ in PHRASES) - set(kept) - {held}
        assert all(f" {p} " in f" {held} " for p in dropped)
    train, val = sentence_holdout(tokens, 1, 0)
    with pytest.raises(ConfigError, match="val_size=4 must be in"):
        sentence_holdout(tokens, 4, 0)


def test_sst2_reads_glue_tsv_with_the_space_before_the_tab(tmp_path):
    root = write_sst2(tmp_path / "sst2", n_train=120, n_dev=30)
    raw = (root / "dev.tsv").read_text().splitlines()
    assert raw[0] == "sentence\tlabel" and raw[1].split("\t")[0].endswith(" ")
    b = build_sst2(str(root), val_size=20)
    assert b.task == "text" and b.class_names == ["negative", "positive"] and b.num_classes == 2
    assert (len(b.train), len(b.val), len(b.test)) == (100, 20, 30)  # every line is a whole sentence here
    assert b.train.inputs.dtype == torch.int32 and b.train.targets.dtype == torch.int64
    dev = [line.rsplit("\t", 1) for line in raw[1:]]
    assert b.test.targets.tolist() == [int(y) for _, y in dev]
    assert torch.equal(b.test.inputs, encode(b.state, [s for s, _ in dev]))  # test = dev.tsv, as the state encodes
    assert b.model_kwargs["vocab_size"] == len(b.state["vocab"]) and b.model_kwargs["embeddings"] is None


def test_sst2_vocabulary_comes_from_the_training_split_only(tmp_path):
    root = write_sst2(tmp_path, n_train=60, n_dev=10)
    with open(root / "dev.tsv", "a") as f:
        f.write("an utterly zyzzyvan film \t1\n")
    b = build_sst2(str(root), val_size=10)
    assert "zyzzyvan" not in b.state["vocab"]
    assert UNK_ID in b.test.inputs[-1].tolist()
    train_words = {w for r in rows(b.train) for w in r}
    val_only = {w for r in rows(b.val) for w in r} - train_words
    assert val_only <= {UNK_ID}


def test_sst2_test_tsv_labelled_or_glue_unlabelled(tmp_path, caplog):
    labelled = write_sst2(tmp_path / "a", n_train=50, n_dev=12, test="labelled")
    b = build_sst2(str(labelled), val_size=5)
    assert (len(b.train), len(b.val), len(b.test)) == (50, 12, 12)  # val = dev, test = test.tsv
    glue = write_sst2(tmp_path / "b", n_train=50, n_dev=12, test="glue")
    with caplog.at_level(logging.INFO):
        b = build_sst2(str(glue), val_size=5)
    assert (len(b.train), len(b.val), len(b.test)) == (45, 5, 12) and "no label column" in caplog.text


def test_sst2_bad_inputs(tmp_path):
    assert "train.tsv and dev.tsv" in one_line_error(build_sst2, str(tmp_path / "nothing"))
    root = write_sst2(tmp_path / "s", n_train=40, n_dev=10)
    lines = (root / "train.tsv").read_text().splitlines(keepends=True)
    (root / "train.tsv").write_text("".join(lines[:5] + ["\n", "a fine film \t2\n"] + lines[5:]))
    msg = one_line_error(build_sst2, str(root), val_size=5)
    assert "train.tsv:6: empty line" in msg and "on_bad_line=skip" in msg
    b = build_sst2(str(root), val_size=5, on_bad_line="skip")  # the empty line and the label 2 are left out
    assert len(b.train) + len(b.val) == 40
    (root / "train.tsv").write_text("text\tlabel\nfine \t1\n")
    assert "no column 'sentence' (its header: text, label)" in one_line_error(build_sst2, str(root))


# ---------------------------------------------------------------- MR

def test_mr_reads_latin1_and_splits_on_newline_only(tmp_path):
    pos = ["a gripping , moving film", "caf\u00e9 culture \x85 done right", "simply wonderful"]
    neg = ["dull", "the plot is a mess \x85 and a long one"]
    root = write_mr(tmp_path, pos, neg)
    assert b"\x85" in (root / "rt-polarity.neg").read_bytes()
    assert len((root / "rt-polarity.neg").read_bytes().decode("latin-1").splitlines()) == 3  # str would split it
    lines = read_lines(root / "rt-polarity.neg", "latin-1")
    assert len(lines) == 2 and tokenize(lines[1]) == ["the", "plot", "is", "a", "mess", "and", "a", "long", "one"]
    assert tokenize(read_lines(root / "rt-polarity.pos", "latin-1")[1])[0] == "caf\u00e9"
    msg = one_line_error(read_lines, root / "rt-polarity.pos", "utf-8")
    assert "rt-polarity.pos:2: byte b'\\xe9' at column 4 is not valid utf-8" in msg and "latin-1" in msg
    assert len(read_lines(root / "rt-polarity.pos", "utf-8", on_bad_line="skip")) == 2


def test_mr_ten_folds_partition_the_corpus(tmp_path):
    texts, labels = corpus(203, seed=3)
    pos = [t for t, y in zip(texts, labels) if y == 1]
    neg = [t for t, y in zip(texts, labels) if y == 0]
    root = write_mr(tmp_path / "rt-polaritydata", pos, neg).parent  # the archive's folder is found too
    seen = []
    for fold in range(10):
        b = build_mr(str(root), fold=fold, val_fraction=0.1)
        test, train, val = rows(b.test), rows(b.train), rows(b.val)
        assert len(test) + len(train) + len(val) == 203
        assert 20 <= len(test) <= 21 and abs(len(val) - 18) <= 1
        seen += [(tuple(tokenize(t)), y) for t, y in zip(encode_back(b), b.test.targets.tolist())]
    assert sorted(seen) == sorted((tuple(tokenize(t)), y) for t, y in zip(neg + pos, [0] * len(neg) + [1] * len(pos)))
    msg = one_line_error(build_mr, str(root), fold=10)
    assert "data.fold=10" in msg


def encode_back(b) -> list[str]:
    """The test sentences of a bundle, decoded with its vocabulary (every test word is known in this corpus)."""
    vocab = b.state["vocab"]
    return [" ".join(vocab[i] for i in r) for r in rows(b.test)]


def test_kfold_is_stratified_seeded_and_balanced():
    labels = torch.tensor([0] * 37 + [1] * 23)
    folds = kfold(labels, 10, seed=1)
    sizes = torch.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= 1
    for c in (0, 1):
        per = torch.bincount(folds[labels == c], minlength=10)
        assert per.max() - per.min() <= 1
    assert torch.equal(folds, kfold(labels, 10, seed=1)) and not torch.equal(folds, kfold(labels, 10, seed=2))


# ---------------------------------------------------------------- CSV / TSV / JSONL

SENTENCES = [("a fine, \"quoted\" film", "pos"), ("flat\nand long", "neg"), ("so-so", "neutral"),
             ("great fun", "pos"), ("tedious", "neg"), ("it is okay", "neutral")] * 4


def write_csv(path, items, header="text,label"):
    quoted = ['"' + t.replace('"', '""') + '",' + y for t, y in items]
    path.write_text(header + "\n" + "\n".join(quoted) + "\n", encoding="utf-8")
    return path


def test_csv_tsv_jsonl_readers_agree(tmp_path):
    write_csv(tmp_path / "a.csv", SENTENCES)
    (tmp_path / "a.tsv").write_text("label\tid\ttext\n" + "".join(
        f"{y}\t{i}\t{t.replace(chr(10), ' ')}\n" for i, (t, y) in enumerate(SENTENCES)))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in SENTENCES))
    csv_rec = read_table(tmp_path / "a.csv")
    assert csv_rec.texts[0] == 'a fine, "quoted" film' and csv_rec.texts[1] == "flat\nand long"
    for name in ("a.tsv", "a.jsonl"):
        rec = read_table(tmp_path / name)
        assert [tokenize(t) for t in rec.texts] == [tokenize(t) for t in csv_rec.texts]
        assert rec.labels == csv_rec.labels == [y for _, y in SENTENCES]
    rec = read_table(tmp_path / "a.tsv", text_column=2, label_column=0, header=False)  # columns by number
    assert (rec.texts[0], rec.labels[0]) == ("text", "label")  # without a header the first line is a record
    assert rec.labels[1:] == csv_rec.labels


def test_text_files_builder_any_number_of_classes(tmp_path):
    write_csv(tmp_path / "train.csv", SENTENCES)
    write_csv(tmp_path / "test.csv", [("great", "pos"), ("awful", "neg")])
    b = build_text_files(str(tmp_path), test_file="test.csv", val_fraction=0.25)
    assert b.class_names == ["neg", "neutral", "pos"] and b.num_classes == 3
    assert len(b.train) == 18 and len(b.val) == 6 and len(b.test) == 2
    assert torch.bincount(b.val.targets).tolist() == [2, 2, 2]  # stratified
    assert b.test.targets.tolist() == [2, 0]
    b = build_text_files(str(tmp_path), class_names=["pos", "neg", "neutral"], val_fraction=0.25,
                         test_fraction=0.25)
    assert b.class_names == ["pos", "neg", "neutral"] and len(b.test) == 6
    numeric = [(t, str(i % 3 * 5)) for i, (t, _) in enumerate(SENTENCES)]  # labels 0, 5, 10
    write_csv(tmp_path / "n.csv", numeric)
    assert build_text_files(str(tmp_path), train_file="n.csv").class_names == ["0", "5", "10"]


def test_text_files_bad_inputs(tmp_path):
    write_csv(tmp_path / "train.csv", SENTENCES)
    write_csv(tmp_path / "val.csv", [("great", "pos"), ("what is this", "sarcastic")])
    msg = one_line_error(build_text_files, str(tmp_path), val_file="val.csv")
    assert "val.csv:3: label 'sarcastic' is not one of neg, neutral, pos" in msg
    b = build_text_files(str(tmp_path), val_file="val.csv", on_bad_line="skip")
    assert len(b.val) == 1
    write_csv(tmp_path / "nolabel.csv", SENTENCES, header="text,stars")
    msg = one_line_error(build_text_files, str(tmp_path), train_file="nolabel.csv")
    assert "no column 'label' (its header: text, stars): set data.label_column" in msg
    (tmp_path / "short.tsv").write_text("text\tlabel\ngood\tpos\nbad\n\t neg\nfine\tpos\nmeh\tneg\n")
    msg = one_line_error(read_table, tmp_path / "short.tsv")
    assert "short.tsv:3: 1 field(s)" in msg
    (tmp_path / "e.jsonl").write_text('{"text": "ok", "label": 1}\n{"text": "", "label": 0}\n')
    assert "e.jsonl:2: empty sentence" in one_line_error(read_table, tmp_path / "e.jsonl")
    (tmp_path / "f.jsonl").write_text('{"text": "ok", "label": 1}\n{"text": "x", "label": 0\n')
    assert "f.jsonl:2: not valid JSON" in one_line_error(read_table, tmp_path / "f.jsonl")
    assert "data.file_format" in one_line_error(read_table, tmp_path / "data.txt")
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\n")
    assert "one label value" in one_line_error(build_text_files, str(tmp_path), train_file="one.csv")


def test_synthetic_corpus_is_deterministic_and_balanced():
    a, b = build_sentiment_synthetic(200, 50, 50, seed=1), build_sentiment_synthetic(200, 50, 50, seed=1)
    assert torch.equal(a.train.inputs, b.train.inputs) and a.state == b.state
    c = build_sentiment_synthetic(200, 50, 50, seed=2)
    assert not torch.equal(a.train.inputs[:, :5], c.train.inputs[:, :5])
    assert 0.4 < a.train.targets.float().mean() < 0.6
    texts, labels = corpus(400, seed=0)
    negated = [("not" in t.split() or "never" in t.split() or "n't" in t) for t in texts]
    positive_word = [any(w in t.split() for w in ("good", "great", "wonderful", "funny", "moving", "clever",
                                                  "charming", "brilliant", "fresh", "gripping")) for t in texts]
    assert labels == [int(p != n) for p, n in zip(positive_word, negated)]


def test_a_checkpoints_state_encodes_other_data_with_its_own_vocabulary_and_tokenizer(tmp_path):
    # cnnlab-eval / cnnlab-viz rebuild a text checkpoint's data with its state: the saved vocabulary and
    # tokenizer settings, never a vocabulary built from whatever training file the evaluation machine holds
    first = build_sst2(str(write_sst2(tmp_path / "a", n_train=60, n_dev=10)), val_size=10, min_len=7)
    other = write_sst2(tmp_path / "b", n_train=80, n_dev=10, seed=3)
    with open(other / "dev.tsv", "a") as f:
        f.write("The Plot Is Zyzzyvan \t1\n")
    again = build_sst2(str(other), val_size=10, state=first.state, lower=False, min_len=2)
    assert again.state == first.state and again.model_kwargs["vocab_size"] == len(first.state["vocab"])
    last = again.test.inputs[-1].tolist()
    vocab = first.state["vocab"]
    assert last[:4] == [vocab.index("the"), vocab.index("plot"), vocab.index("is"), UNK_ID]  # lower-cased
    assert again.test.inputs.shape[1] >= 7  # the checkpoint's min_len, not the override
    own = build_sst2(str(other), val_size=10)
    assert own.state["vocab"] != vocab  # (the other file does give another vocabulary)

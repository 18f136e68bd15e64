"""scripts/bench_text.py compares like with like: both loops see the same batches and end with the same weights."""

import torch
from conftest import load_script

from cnnlab.data.sentiment import build_sentiment_synthetic
from cnnlab.models.sentence_cnn import SentenceCNN

bench = load_script("bench_text")


def test_cnnlab_and_bare_loops_train_identically(tmp_path):
    split = build_sentiment_synthetic(num_train=230, num_val=10, num_test=10).train
    vocab = int(split.inputs.max()) + 1
    torch.manual_seed(0)
    m1 = SentenceCNN(vocab, embed_dim=16, num_maps=8, dropout=0.0)
    m2 = SentenceCNN(vocab, embed_dim=16, num_maps=8, dropout=0.0)
    m2.load_state_dict(m1.state_dict())
    before = m1.fc.weight.detach().clone()
    o1, o2 = torch.optim.Adam(m1.parameters(), lr=1e-2), torch.optim.Adam(m2.parameters(), lr=1e-2)
    assert bench.cnnlab_epoch(m1, o1, split, 50, torch.device("cpu"), tmp_path) > 0
    assert bench.bare_epoch(m2, o2, split.inputs, split.targets, 50, split.prepare.min_len) > 0
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        assert torch.equal(p1, p2), name
    assert not torch.equal(m1.fc.weight, before)  # and they did train

"""SentenceCNN (Kim 2014): variants, shapes, parameter counts, frozen embeddings, max-norm, short sentences, padding
invariance, no weight decay on embeddings, and training through the real configs."""

import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import compose_cfg, run_train

from cnnlab.errors import ConfigError
from cnnlab.models.sentence_cnn import SentenceCNN
from cnnlab.build import build_optimizer

V, D = 50, 300


def vectors() -> torch.Tensor:
    return torch.randn(V, D, generator=torch.Generator().manual_seed(0))


def ids(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(2, V, (n, length), generator=torch.Generator().manual_seed(seed))


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("variant", ["rand", "static", "non-static", "multichannel"])
def test_variant_shapes_and_trainable_parameters(variant):
    model = SentenceCNN(V, num_classes=3, embeddings=vectors(), variant=variant)
    assert model(ids(4, 12)).shape == (4, 3)
    # Kim's figures: filters of 3, 4, 5 words over 300-d embeddings, 100 maps each; 300 features -> 3 classes
    conv = sum(300 * k * 100 + 100 for k in (3, 4, 5))
    head = 300 * 3 + 3
    embedding = 0 if variant == "static" else V * D
    assert trainable(model) == conv + head + embedding
    assert model.embedding.weight.requires_grad == (variant != "static")
    assert (model.static is not None) == (variant == "multichannel")
    if variant != "rand":
        assert torch.equal(model.embedding.weight[1:], vectors()[1:])
    assert torch.equal(model.embedding.weight[0], torch.zeros(D))  # padding


def test_rand_embeddings_follow_kim_uniform_init():
    w = SentenceCNN(V, embeddings=vectors(), variant="rand").embedding.weight  # vectors are ignored by rand
    assert w[1:].abs().max() <= 0.25 and w[1:].std() > 0.1


def test_frozen_channels_stay_fixed_while_the_rest_learns():
    torch.manual_seed(0)
    for variant in ("static", "multichannel"):
        model = SentenceCNN(V, embeddings=vectors(), variant=variant, dropout=0.0)
        frozen = (model.embedding if variant == "static" else model.static).weight.detach().clone()
        tuned = model.embedding.weight.detach().clone()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        x, y = ids(8, 10), torch.randint(0, 2, (8,))
        F.cross_entropy(model(x), y).backward()
        opt.step()
        assert torch.equal((model.embedding if variant == "static" else model.static).weight, frozen)
        if variant == "multichannel":
            assert not torch.equal(model.embedding.weight, tuned)


def test_multichannel_adds_both_channels_convolutions():
    model = SentenceCNN(V, embeddings=vectors(), variant="multichannel").eval()
    with torch.no_grad():
        model.embedding.weight.add_(0.3)  # make the tuned channel differ from the static one
        x = ids(2, 9)
        conv = model.convs[0]
        a, b = model.embedding(x).transpose(1, 2), model.static(x).transpose(1, 2)
        two_channels = F.conv1d(a, conv.weight, padding=2) + F.conv1d(b, conv.weight, padding=2) + \
            conv.bias.view(1, -1, 1)  # width 3, wide: 2 zero vectors on both sides
        assert torch.allclose(model.features(x)[:, :100], F.relu(two_channels).amax(2), atol=1e-4)


def test_max_norm_rescales_each_class_vector_after_a_step():
    model = SentenceCNN(V, num_classes=3, max_norm=3.0)
    with torch.no_grad():
        model.fc.weight.copy_(torch.zeros(3, 300))
        model.fc.weight[0, :2] = torch.tensor([3.0, 4.0])    # norm 5 -> 3, direction kept
        model.fc.weight[1, 0] = 1.0                          # norm 1: unchanged
        model.fc.weight[2, :] = 0.5                          # norm 0.5 * sqrt(300) = 8.66 -> 3
    model.after_step()
    assert torch.allclose(model.fc.weight[0, :2], torch.tensor([1.8, 2.4]))
    assert model.fc.weight[1, 0] == 1.0
    assert torch.allclose(model.fc.weight.norm(dim=1), torch.tensor([3.0, 1.0, 3.0]))
    SentenceCNN(V, max_norm=None).after_step()  # off: no error


@pytest.mark.parametrize("wide", [False, True])
def test_short_sentences_and_padding_do_not_change_a_sentences_scores(wide):
    model = SentenceCNN(V, embed_dim=16, num_maps=8, wide=wide).eval()
    sentences = [[5], [7, 8], [3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16, 17]]
    with torch.no_grad():
        alone = [model(torch.tensor([s])) for s in sentences]
        batch = torch.zeros(len(sentences), 14, dtype=torch.long)
        for i, s in enumerate(sentences):
            batch[i, :len(s)] = torch.tensor(s)
        together = model(batch)
        for i, s in enumerate(sentences):
            assert torch.allclose(together[i], alone[i][0], atol=1e-5)
            # independently: each filter over the sentence alone; narrow: padded to the filter's width if
            # shorter; wide: k - 1 zero vectors on both sides
            emb = model.embedding(torch.tensor(s)).T.unsqueeze(0)
            feats = []
            for k, conv in zip((3, 4, 5), model.convs):
                padded = F.pad(emb, (k - 1, k - 1) if wide else (0, max(0, k - len(s))))
                feats.append(F.relu(F.conv1d(padded, conv.weight, conv.bias)).amax(2))
            assert torch.allclose(model.fc(torch.cat(feats, 1))[0], together[i], atol=1e-5)


def test_embeddings_are_never_weight_decayed():
    for variant in ("rand", "multichannel"):
        model = SentenceCNN(V, embeddings=vectors(), variant=variant)
        opt = build_optimizer(OmegaConf.create({"_target_": "torch.optim.AdamW", "_partial_": True,
                                                "weight_decay": 0.1}), model)
        decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
        grouped = {id(p) for g in opt.param_groups for p in g["params"]}
        assert id(model.embedding.weight) in grouped and id(model.embedding.weight) not in decay
        assert id(model.convs[0].weight) in decay and id(model.fc.weight) in decay
        if variant == "multichannel":
            assert id(model.static.weight) not in grouped  # frozen: not optimised at all


def test_configuration_mistakes_are_one_line_errors():
    cases = [
        (dict(vocab_size=None), "needs token ids"),
        (dict(vocab_size=V, variant="dynamic"), "model.variant=dynamic is not known"),
        (dict(vocab_size=V, variant="static"), "set data.vectors="),
        (dict(vocab_size=V, variant="non-static", embeddings=torch.zeros(V, 50)),
         "vectors are 50-dimensional but model.embed_dim=300: set model.embed_dim=50"),
    ]
    for kwargs, text in cases:
        with pytest.raises(ConfigError, match=text) as err:
            SentenceCNN(**kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expects \\[N, L\\] token ids"):
        SentenceCNN(V).check_input(torch.zeros(2, 1, 32, 32))


def test_experiment_configs_compose():
    for name, expect in (("sentence_cnn_sst2", "sst2"), ("sentence_cnn_sst2_kim", "sst2"),
                         ("sentence_cnn_mr", "mr")):
        cfg = compose_cfg([f"experiment={name}"])
        assert cfg.model._target_.endswith("SentenceCNN") and cfg.data._target_.endswith(f"build_{expect}")
    kim = compose_cfg(["experiment=sentence_cnn_sst2_kim"])
    assert kim.optim._target_ == "torch.optim.Adadelta" and kim.trainer.batch_size == 50
    assert kim.model.dropout == 0.5 and kim.model.max_norm == 3.0


def test_trains_on_the_synthetic_corpus_through_the_real_configs(tmp_path):
    run_dir, value = run_train(tmp_path, ["model=sentence_cnn", "data=sentiment_synthetic", "loss=cross_entropy",
                                          "model.embed_dim=64", "model.num_maps=32", "optim.lr=1e-2",
                                          "trainer.epochs=3", "trainer.batch_size=50", "trainer.tensorboard=false"])
    results = json.loads((run_dir / "results.json").read_text())
    assert value >= 0.95 and results["test/acc"] >= 0.95  # negation + adjective: beyond a bag of words (58 %)


def test_evaluation_in_several_batches_of_different_widths_keeps_its_mistakes(tmp_path):
    # a validation split larger than trainer.eval_batch_size (MR's folds hold ~1,066 sentences): each batch is
    # padded to its own longest sentence, and the mistakes kept for the pictures come from several batches
    run_dir, _ = run_train(tmp_path, ["model=sentence_cnn", "data=sentiment_synthetic", "data.num_train=200",
                                      "model.embed_dim=16", "model.num_maps=8", "trainer.epochs=1",
                                      "trainer.eval_batch_size=37", "trainer.tensorboard=false"])
    results = json.loads((run_dir / "results.json").read_text())
    rows = (run_dir / "pictures" / "errors_most_confident_val.md").read_text().splitlines()[4:]
    val_mistakes = round((1 - results["val/acc"]) * 500)  # data.num_val=500: 14 batches of up to 37, each padded
    assert len(rows) == min(16, val_mistakes) > 0           # to its own longest sentence
    probs = [float(r.split("|")[1]) for r in rows]
    assert probs == sorted(probs, reverse=True) and min(probs) >= 0.5  # two classes: a wrong argmax has >= 0.5
    assert all("<pad>" not in r for r in rows)


@pytest.mark.parametrize("data", ["sentiment_synthetic", "sst2", "mr"])
def test_a_pretrained_variant_takes_its_vectors_with_the_key_its_error_names(tmp_path, data):
    # model.variant=static without vectors names the key to set, on every text data config; that key reads the file
    # into the frozen embeddings
    import re

    from cnnlab.checkpoint import load_checkpoint
    from text_fakes import write_glove
    from conftest import fake_data

    small = ["model=sentence_cnn", f"data={data}", *fake_data(data, tmp_path / "data"), "model.variant=static",
             "model.embed_dim=4", "model.num_maps=4", "trainer.epochs=1", "trainer.tensorboard=false",
             "trainer.pictures_every=0"]
    with pytest.raises(ConfigError) as err:
        run_train(tmp_path / "a", small)
    key = re.search(r"set (data\.\w+)=", str(err.value)).group(1)
    given = {"good": [1.0, 0.0, 0.0, 0.0], "film": [0.0, 1.0, 0.0, 0.0], "plot": [0.0, 0.0, 1.0, 0.0]}
    run_dir, _ = run_train(tmp_path / "b", [*small, f"{key}={write_glove(tmp_path / 'v.txt', given)}"])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    vocab = ckpt["data_state"]["vocab"]
    for word, vector in given.items():
        assert ckpt["model"]["embedding.weight"][vocab.index(word)].tolist() == vector

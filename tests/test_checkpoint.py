"""Atomic writes, refusal of arbitrary pickles, clear errors for damaged files, RNG round trip."""
import pickle
import random

import pytest
import torch

from cnnlab.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnlab.errors import ConfigError


class Payload:
    """Stands in for an object an attacker pickles into a checkpoint."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_atomic_save_round_trip_leaves_no_temp_files(tmp_path):
    path = save_checkpoint({"model": {"w": torch.arange(3.0)}, "epoch": 2}, tmp_path / "c" / "last.pt")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.arange(3.0))


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint({"model": {}, "epoch": 1}, tmp_path / "last.pt")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {}, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and len(list(tmp_path.iterdir())) == 1


def test_arbitrary_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Payload()}, path)
    with pytest.raises(ConfigError, match="refused for safety"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    path = save_checkpoint({"model": {"w": torch.randn(1000)}}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"model": 1}))  # a plain pickle: not torch.save's zip archive
    with pytest.raises(ConfigError, match=r"plain.pt is not a PyTorch checkpoint \(not a torch.save archive\)"):
        load_checkpoint(tmp_path / "plain.pt")
    (tmp_path / "mask.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a picture passed by mistake
    with pytest.raises(ConfigError, match="mask.png is not a PyTorch checkpoint .not a torch.save archive.: pass"):
        load_checkpoint(tmp_path / "mask.png")
    (tmp_path / "notes.txt").write_text("hello\n")  # torch.load's own error here was a bare KeyError: 101
    with pytest.raises(ConfigError, match=r"notes.txt is not a PyTorch checkpoint \(not a torch.save archive\)"):
        load_checkpoint(tmp_path / "notes.txt")


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1)
    torch.manual_seed(1)
    path = save_checkpoint({"model": {}, "rng": rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), torch.rand(3))
    set_rng_state(load_checkpoint(path)["rng"])
    assert random.random() == expected[0] and torch.equal(torch.rand(3), expected[1])



class FakeCudaGenerator:
    """Stands in for torch.cuda.default_generators[i] on a machine without a GPU."""

    def __init__(self):
        self.state = None

    def set_state(self, state):
        self.state = state


def test_cuda_rng_states_of_more_gpus_than_here_restore_those_present(monkeypatch):
    # a checkpoint written where 4 GPUs were visible, resumed on a machine with one: torch's own set_rng_state
    # code runs (on fake generators) and must not index past the one GPU there is
    saved = rng_state()
    saved["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]
    here = (FakeCudaGenerator(),)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # the model is on the GPU by then
    monkeypatch.setattr(torch.cuda.random, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(here))
    monkeypatch.setattr(torch.cuda.random, "device_count", lambda: len(here))
    monkeypatch.setattr(torch.cuda, "default_generators", here)
    set_rng_state(saved)
    assert torch.equal(here[0].state, saved["cuda"][0])

def test_link_atomic_keeps_the_linked_contents_when_the_source_is_rewritten(tmp_path):
    from cnnlab.checkpoint import link_atomic

    best = save_checkpoint({"model": {}, "epoch": 1}, tmp_path / "best.pt")
    link_atomic(best, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    save_checkpoint({"model": {}, "epoch": 2}, tmp_path / "last.pt")  # the next epoch, not an improvement
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1 and load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]

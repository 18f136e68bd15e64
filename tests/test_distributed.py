"""torchrun with 2 CPU processes (gloo): the loss curve equals a single process with the same global batch (to
1e-5: only the order of float sums differs), only rank 0 writes, and a 2-rank run resumes."""
import json
import os
import subprocess

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import BIN, run_train

COMMON = ["data=synthetic", "data.num_samples=64", "trainer.batch_size=16", "trainer.log_every=1",
          "trainer.pictures_every=0", "trainer.progress=false", "sched=none"]  # 4 steps an epoch; LeNet-5: no dropout


def losses(run_dir):
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in acc.Scalars("train/loss")}


def torchrun(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on two cores
    out = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "cnnlab.train",
                          *COMMON, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun is not installed")
def test_two_ranks_match_one_process_and_resume(tmp_path):
    single, _ = run_train(tmp_path / "single", [*COMMON, "trainer.epochs=2"])
    torchrun("trainer.epochs=2", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    want, got = losses(single), losses(tmp_path / "ddp")
    assert sorted(got) == list(range(1, 9))
    assert [got[s] for s in range(1, 9)] == pytest.approx([want[s] for s in range(1, 9)], abs=1e-5)
    a = json.loads((single / "results.json").read_text())
    b = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert b["val/acc"] == a["val/acc"] and b["test/acc"] == a["test/acc"]  # metrics summed over the ranks' shards
    assert b["test/loss"] == pytest.approx(a["test/loss"], abs=1e-5)
    writers = {p.name.split(".")[-2] for p in (tmp_path / "ddp" / "tb").glob("events.*")}
    assert len(writers) == 1  # one process (rank 0) wrote the event files
    # a 2-rank run stopped after epoch 1 and resumed with 2 ranks goes on exactly as the straight run
    torchrun("trainer.epochs=1", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    torchrun("resume=true", "trainer.epochs=2", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    got = losses(tmp_path / "resumed")
    assert [got[s] for s in range(1, 9)] == pytest.approx([want[s] for s in range(1, 9)], abs=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun is not installed")
def test_two_ranks_cut_a_budget_to_the_same_epochs(tmp_path):
    # 3 epochs asked, a budget no epoch fits: every rank must make the same cut (1 epoch) or the next all-reduce hangs
    out = torchrun("trainer.epochs=3", "trainer.budget_min=1e-6", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert "1 of the 3 epochs fit" in out.stdout + out.stderr
    assert json.loads((tmp_path / "ddp" / "results.json").read_text())["epochs"] == 1

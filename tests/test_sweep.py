"""A multirun survives a bad job: the job's folder says why it failed, the other jobs run, the summary table lists
every job, and the exit status counts the failures."""
import json
import subprocess

from conftest import BIN


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    out = subprocess.run([str(BIN / "cnnlab-train"), "-m", "trainer.batch_size=0,32", "data=synthetic",
                          "data.num_samples=64", "trainer.epochs=1", "trainer.tensorboard=false",
                          "trainer.pictures_every=0", "trainer.progress=false", f"hydra.sweep.dir={sweep}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name.split("_")[0] for j in jobs] == ["0", "1"]
    failed = json.loads((jobs[0] / "failed.json").read_text())
    assert "trainer.batch_size=0 is not valid" in failed["error"]
    assert json.loads((jobs[1] / "results.json").read_text())["steps"] == 2
    summary = (sweep / "summary.md").read_text()
    assert "| 0 | trainer.batch_size=0" in summary and "failed: error: trainer.batch_size=0" in summary
    assert "| 1 | trainer.batch_size=32" in summary and "| ok |" in summary
    assert "1 of 2 jobs failed" in out.stdout + out.stderr

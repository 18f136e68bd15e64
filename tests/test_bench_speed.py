"""scripts/bench_speed.py: the throughput table of the CUDA options (AMP, compile) reads the loop's own log."""
from pathlib import Path
from types import SimpleNamespace

from conftest import command, load_script


def test_samples_per_s_is_the_median_after_the_first_epoch():
    bench = load_script("bench_speed")
    log = "\n".join([
        "[t][cnnlab][INFO] - epoch 1/4 train/epoch_loss 2.3 val/acc 0.1 (9.0s, 100 samples/s)",  # compile, warm-up
        "[t][cnnlab][INFO] - epoch 2/4 train/epoch_loss 2.1 val/acc 0.2 (1.0s, 900 samples/s)",
        "[t][cnnlab][INFO] - epoch 3/4 train/epoch_loss 2.0 val/acc 0.3 (1.0s, 1000 samples/s)",
        "[t][cnnlab][INFO] - epoch 4/4 train/epoch_loss 1.9 val/acc 0.3 (1.0s, 1200 samples/s)",
    ])
    assert bench.samples_per_s(log) == 1000.0
    assert bench.samples_per_s(log.splitlines()[0]) is None  # one epoch: nothing after the warm-up


def test_a_quick_run_fills_its_row_and_amp_on_a_cpu_says_what_it_did(tmp_path, capsys, monkeypatch):
    from cnnlab.build import cpu_has_native_bf16
    bench = load_script("bench_speed")

    def in_process(args, cwd, **kwargs):  # the script's cnnlab-train runs, here in this process
        return command(Path(args[0]).name, *args[1:], cwd=cwd)

    monkeypatch.setattr(bench, "subprocess", SimpleNamespace(run=in_process))
    assert bench.main(["--models", "lenet5", "--modes", "plain", "bf16", "--quick", "--epochs", "2",
                       "--device", "cpu"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    plain, amp = (r.split(" | ") for r in rows)
    assert plain[1] == "plain" and float(plain[2]) > 0 and plain[3] == "1.00x"
    notice = "bfloat16 autocast on the CPU" if cpu_has_native_bf16() else "trainer.amp=bf16 ignored"
    assert amp[1] == "bf16" and float(amp[2]) > 0 and notice in amp[4]

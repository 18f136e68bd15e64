"""A refused command leaves the other run's folder exactly as it was, Hydra's own files included."""

import json
from pathlib import Path

import yaml

from cnnlab.checkpoint import RunFolderLock
from conftest import QUICK, command, hydra_refused, one_error_line


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_busy_folder_keeps_its_hydra_record_and_log(tmp_path):
    busy = tmp_path / "busy"
    lock = RunFolderLock(busy)
    (busy / ".hydra").mkdir()
    (busy / ".hydra" / "config.yaml").write_text("the other run's config\n")
    (busy / "train.log").write_text("the other run's log\n")
    (busy / "checkpoints").mkdir()
    (busy / "checkpoints" / "last.pt").write_bytes(b"the other run's checkpoint, being written")
    before = _snapshot(busy)
    out = command("cnnlab-train", *QUICK, "resume=true", f"hydra.run.dir={busy}", cwd=tmp_path)
    assert out.returncode == 2 and "in use by another cnnlab command" in one_error_line(out)
    after = _snapshot(busy)  # this command's log line is the only trace it leaves
    assert after.pop(Path("train.log")).startswith(before.pop(Path("train.log"))) and after == before
    lock.release()


def test_a_finished_run_keeps_its_config_when_a_fresh_run_is_refused(tmp_path):
    done = tmp_path / "done"
    first = command("cnnlab-train", *QUICK, f"hydra.run.dir={done}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(done)
    out = command("cnnlab-train", *QUICK, "trainer.batch_size=4", f"hydra.run.dir={done}", cwd=tmp_path)
    assert out.returncode == 2 and "already holds a run" in one_error_line(out)
    assert _snapshot(done) == before
    # continuing it is allowed: .hydra/ keeps the record of the launch, .hydra/<time>/ is the continuation's;
    # env.json and config.yaml hold the continued run's settings (its overrides: the launch's, then the new one)
    again = command("cnnlab-train", *QUICK, "resume=true", "trainer.epochs=2", f"hydra.run.dir={done}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    hydra_files = {k: v for k, v in before.items() if k.parts[0] == ".hydra"}
    assert {k: v for k, v in _snapshot(done).items() if len(k.parts) == 2 and k.parts[0] == ".hydra"} == hydra_files
    (record,) = [p for p in (done / ".hydra").iterdir() if p.is_dir()]
    assert "trainer.epochs=2" in yaml.safe_load((record / "overrides.yaml").read_text())
    launch = yaml.safe_load(hydra_files[Path(".hydra/overrides.yaml")])
    assert json.loads((done / "env.json").read_text())["overrides"] == [*launch, "trainer.epochs=2"]
    assert yaml.safe_load((done / "config.yaml").read_text())["trainer"]["epochs"] == 2


def test_a_bad_resume_keeps_the_runs_record_and_a_non_run_folder_stays_untouched(tmp_path):
    done = tmp_path / "done"
    first = command("cnnlab-train", *QUICK, f"hydra.run.dir={done}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(done)
    kept = ("train.log", ".cnnlab.lock")  # the error goes to the log; the lock names the last command's pid
    for bad in ("resume=yes", "trainer.batch_size=0"):  # the finished run is not marked failed, its record stays
        out = command("cnnlab-train", "resume=true", bad, f"hydra.run.dir={done}", cwd=tmp_path)
        assert f"{bad.split('=')[0]}" in one_error_line(out) and not (done / "failed.json").exists()
        after = _snapshot(done)
        assert {k: v for k, v in after.items() if k.name not in kept} == {k: v for k, v in before.items()
                                                                           if k.name not in kept}
    hydra_refused(command("cnnlab-train", "resume=true", "trainer.batch_size=abc", f"hydra.run.dir={done}",
                          cwd=tmp_path), "trainer.batch_size")  # refused while composing: nothing written
    assert _snapshot(done) == after
    checkpoints = done / "checkpoints"  # resuming the checkpoints folder instead of the run: only the error's log
    inside = sorted(p.name for p in checkpoints.iterdir())
    out = command("cnnlab-train", "resume=true", f"hydra.run.dir={checkpoints}", cwd=tmp_path)
    line = one_error_line(out)
    assert "checkpoints/last.pt does not exist: pass hydra.run.dir=<the run folder" in line
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted([*inside, "train.log"])
    assert line in (checkpoints / "train.log").read_text()


def test_another_experiment_cannot_continue_a_run(tmp_path):
    done = tmp_path / "done"
    first = command("cnnlab-train", "experiment=lenet5_digits", "trainer.epochs=1", "trainer.tensorboard=false",
                    "trainer.pictures_every=0", f"hydra.run.dir={done}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(done)
    line = one_error_line(command("cnnlab-train", "resume=true", "experiment=lsq_poly1d", f"hydra.run.dir={done}",
                                  cwd=tmp_path))
    assert "experiment=lsq_poly1d cannot change a continued run (it is experiment=lenet5_digits" in line
    assert not (done / "failed.json").exists() and _snapshot(done)[Path("results.json")] == before[Path("results.json")]


def test_a_continued_run_records_its_overrides_and_the_new_ones_once(tmp_path):
    from cnnlab.report import RunInfo

    saved = {"name": "lenet5_digits", "overrides": ["experiment=lenet5_digits", "paths.output_dir=/o"],
             "choices": {"experiment": "lenet5_digits", "model": "lenet5"}}
    info = RunInfo(tmp_path, overrides=["experiment=lenet5_digits", "paths.output_dir=/o", "trainer.epochs=9",
                                        "model=mlp", "hydra.run.dir=x"])
    info.continue_from(saved)
    assert info.overrides == ["experiment=lenet5_digits", "paths.output_dir=/o", "trainer.epochs=9", "model=mlp"]
    assert info.choices == {"experiment": "lenet5_digits", "model": "mlp"} and info.name == "lenet5_digits"


def test_a_run_continued_from_a_checkpoint_is_filed_under_that_runs_name(tmp_path):
    first = command("cnnlab-train", *QUICK, "model=mlp", f"hydra.run.dir={tmp_path / 'first'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / "first" / "checkpoints" / "last.pt"
    again = command("cnnlab-train", f"ckpt_path={ckpt}", "trainer.epochs=2", f"paths.output_dir={tmp_path / 'out'}",
                    cwd=tmp_path)  # no model= on this command line: its own name would be lenet5_digits
    assert again.returncode == 0, again.stderr[-2000:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mlp_synthetic"]
    named = command("cnnlab-train", f"ckpt_path={ckpt}", "trainer.epochs=2", "name=longer",
                    f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)  # a name given wins
    assert named.returncode == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["longer", "mlp_synthetic"]


def test_commands_on_a_checkpoint_take_the_keys_of_its_runs_config_groups_named_on_the_command_line(tmp_path):
    """Hydra checks the keys of the command line against the composed config: a key only the checkpoint's run's
    groups have (the roads data's data.num_images) needs that group's option named (data=roads_synthetic), which
    then changes nothing else; the run's record of its overrides stays the user's."""
    run = tmp_path / "unet"
    seg = ["model=unet", "data=roads_synthetic", "data.num_images=8", "data.size=48", "data.augment.crop=32",
           "model.base=4", "model.depth=2", "trainer.epochs=1", "trainer.pictures_every=0",
           "trainer.tensorboard=false"]
    first = command("cnnlab-train", *seg, f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    launched = json.loads((run / "env.json").read_text())["overrides"]
    ckpt = run / "checkpoints" / "best.pt"
    hydra_refused(command("cnnlab-eval", f"ckpt_path={ckpt}", "data.num_images=8", cwd=tmp_path),
                  "data.num_images")  # a key of the roads data only: name the run's data option (or add it, +)
    out = command("cnnlab-eval", f"ckpt_path={ckpt}", "data=roads_synthetic", "data.num_images=8", "split=val",
                  f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val/patch_f1" in json.loads((tmp_path / "eval" / "results.json").read_text())
    again = command("cnnlab-train", "resume=true", f"hydra.run.dir={run}", "trainer.epochs=2", "model.dropout=0.0",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "env.json").read_text())["overrides"] == [*launched, "trainer.epochs=2",
                                                                       "model.dropout=0.0"]
    line = one_error_line(command("cnnlab-train", "resume=true", f"hydra.run.dir={run}", "model=unet", "+model.bse=1",
                                  cwd=tmp_path))
    assert line.startswith("error: model.bse: Key 'bse' not in 'UNet'") and "takes num_classes" in line


def test_a_run_whose_name_holds_hydra_syntax_can_be_continued_from_its_checkpoint(tmp_path):
    """The continued run's folder is named after the checkpoint's run in a hydra.run.dir= override: a name with '='
    or a space in it (name='"lr=0.1 run"') made that override, and so the command, unreadable to Hydra."""
    first = command("cnnlab-train", *QUICK, 'name="lr=0.1 run"', f"hydra.run.dir={tmp_path / 'first'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = command("cnnlab-train", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.pt'}", "trainer.epochs=2",
                    f"paths.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((tmp_path / "out").iterdir())) == 1

"""A multirun survives a bad job: the job's folder says why it failed, the other jobs run, the summary table lists
every job, and the exit status counts the failures."""
import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cnnlab.cli import CONFIG_DIR
from conftest import BIN, command, compose_cfg

SMALL = ["data=synthetic", "data.num_samples=64", "trainer.epochs=1", "trainer.tensorboard=false",
         "trainer.pictures_every=0"]


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    out = command("cnnlab-train", "-m", "trainer.batch_size=0,32", "data=synthetic", "data.num_samples=64",
                  "trainer.epochs=1", "trainer.tensorboard=false", "trainer.pictures_every=0",
                  f"hydra.sweep.dir={sweep}", cwd=tmp_path)
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


def test_an_optuna_study_records_failed_trials_and_continues_from_sqlite(tmp_path):
    import optuna

    search = tmp_path / "cfg" / "hparams_search"
    search.mkdir(parents=True)
    db = tmp_path / "study.db"
    (search / "tiny.yaml").write_text(f"""# @package _global_
defaults:
  - override /hydra/sweeper: optuna
optimized_metric: val/acc
hydra:
  mode: MULTIRUN
  sweeper:
    storage: sqlite:///{db}
    study_name: tiny
    direction: maximize
    n_trials: 3
    n_jobs: 1
    max_failure_rate: 1.0
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: ${{cnnlab.study_seed:${{seed}},${{hydra.sweeper.storage}},${{hydra.sweeper.study_name}}}}
      n_startup_trials: 10     # random trials
    params:
      trainer.batch_size: choice(0, 32)
      optim.lr: interval(0.001, 0.01)
""")
    args = ["--config-dir", str(tmp_path / "cfg"), "hparams_search=tiny", "data=synthetic", "data.num_samples=64",
            "trainer.epochs=1", "trainer.tensorboard=false", "trainer.pictures_every=0",
            "seed=1"]  # its 3 random trials include batch size 0
    first = command("cnnlab-train", *args, f"hydra.sweep.dir={tmp_path}/s1", cwd=tmp_path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    states = [t.state.name for t in study.trials]
    failed = sum(s == "FAIL" for s in states)
    assert len(states) == 3 and failed >= 1 and failed == first.returncode, (states, first.stderr[-2000:])
    assert all(t.params["trainer.batch_size"] == 0 for t in study.trials if t.state.name == "FAIL")
    assert "COMPLETE" in states
    command("cnnlab-train", *args, f"hydra.sweep.dir={tmp_path}/s2", cwd=tmp_path)
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
    assert len(trials) == 6  # continued
    # with new trials: the sampler's seed was 1 + 3 stored trials (a fixed seed drew the first three again)
    assert not {t.params["optim.lr"] for t in trials[:3]} & {t.params["optim.lr"] for t in trials[3:]}


def test_an_optuna_search_whose_every_trial_fails_ends_with_the_summary_and_no_traceback(tmp_path):
    """Optuna's sweeper asked the study for its best trial and raised `ValueError: Record does not exist.` (exit
    status 1, no summary) when no trial had finished."""
    import optuna

    out = command("cnnlab-train", "hparams_search=lenet5_digits", "hydra.sweeper.n_trials=2", "trainer.log_every=0",
                  *SMALL[2:], f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/s", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    summary = (tmp_path / "s" / "summary.md").read_text()
    assert summary.count("failed: error: trainer.log_every=0 is not valid") == 2, summary
    assert "2 of 2 jobs failed" in out.stdout + out.stderr
    study = optuna.load_study(study_name="lenet5_digits", storage=f"sqlite:///{tmp_path}/optuna/lenet5_digits.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def test_the_optuna_sweeper_lets_other_value_errors_through():
    """Only a study without a finished trial ends the sweep quietly: once a trial finished, a ValueError has
    another cause and keeps its traceback."""
    import optuna
    from hydra_plugins.cnnlab_optuna import _study_without_finished_trial

    def sweep(study, error):  # stands in for Optuna's sweeper, which holds the study in its sweep()
        raise error

    def caught(study, error):
        try:
            sweep(study, error)
        except ValueError as e:
            return e

    study = optuna.create_study()
    assert _study_without_finished_trial(caught(study, ValueError("Record does not exist."))) is study
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert _study_without_finished_trial(caught(study, ValueError("another cause"))) is None
    assert _study_without_finished_trial(caught(None, ValueError("no study"))) is None


def test_a_grid_is_rows_in_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep = tmp_path / "grid"
    out = command("cnnlab-train", "-m", "seed=0,1", *SMALL[:3], "trainer.pictures_every=0",
                  f"hydra.sweep.dir={sweep}", cwd=tmp_path)  # with TensorBoard
    assert out.returncode == 0, out.stderr[-2000:]
    rows = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(job / "tb")).Reload()
        info = plugin_data_pb2.HParamsPluginData.FromString(
            acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        rows.append({k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()})
    assert [r["seed"] for r in rows] == [0, 1] and rows[0].keys() == rows[1].keys()


@pytest.mark.slow
def test_runs_started_together_never_share_a_folder(tmp_path):
    """Two processes started at the same moment with the default folder pattern: two folders."""
    procs = [subprocess.Popen([str(BIN / "cnnlab-train"), *SMALL, "trainer.progress=false",
                               f"paths.output_dir={tmp_path / 'out'}"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    assert len(list((tmp_path / "out").glob("*/*/results.json"))) == 2


def test_every_optuna_search_composes_and_names_keys_that_exist():
    """Each hparams_search config composes (with the experiment it searches) and every swept key is a key of the
    composed config, so a misspelt parameter fails here and not after hours of trials."""
    searches = sorted(p.stem for p in (Path(CONFIG_DIR) / "hparams_search").glob("*.yaml"))
    assert {"lenet5_digits", "unet_roads", "sentence_cnn_sst2"} <= set(searches)
    for name in searches:
        cfg = compose_cfg([f"hparams_search={name}"])
        params = cfg.hydra.sweeper.params
        assert params and cfg.hydra.sweeper.study_name == name
        for key in params:
            assert OmegaConf.select(cfg, key, throw_on_missing=False) is not None, (name, key)
        assert cfg.optimized_metric == cfg.trainer.monitor, name  # best.pt is what the sweeper optimised
        expected_model = {"unet_roads": "unet", "sentence_cnn_sst2": "sentence_cnn"}.get(name)
        if expected_model:
            assert cfg.hydra.runtime.choices.model == expected_model


def test_the_summary_gives_each_jobs_test_metric_and_the_mean_over_folds(tmp_path):
    """A cross-validation multirun (e.g. MR's 10 folds) ends with the mean and spread of val and test: checked
    against numbers worked out by hand; a failed job is listed but left out of the mean."""
    from cnnlab.sweep import job_folders, job_rows, summary_table

    for n, (val, test) in enumerate([(0.80, 0.70), (0.90, 0.74), (None, None)]):
        job = tmp_path / f"{n}_data.fold={n}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- data.fold={n}\n")
        if val is None:
            (job / "failed.json").write_text(json.dumps({"error": "error: boom"}))
        else:
            (job / "results.json").write_text(json.dumps({"val/acc": val, "test/acc": test}))
    table = summary_table(job_rows(job_folders(tmp_path), "val/acc"), "val/acc").splitlines()
    assert table[0] == "| job | overrides | status | val/acc | test/acc |"
    assert table[2] == "| 0 | data.fold=0 | ok | 0.8000 | 0.7000 |"
    assert table[4].startswith("| 2 | data.fold=2 | failed: error: boom")
    # mean of 0.80, 0.90 = 0.85, sample std = 0.1 / sqrt(2) = 0.0707; test: 0.72 and 0.04 / sqrt(2) = 0.0283
    assert table[5] == "| mean | 2 finished jobs | | 0.8500 ± 0.0707 | 0.7200 ± 0.0283 |"


def test_a_value_with_a_slash_leaves_every_job_in_the_summary(tmp_path):
    """A path (`paths.data_dir=/...`, left out of job folder names; any other '/' in a value becomes '_', see the
    naming test) once nested the job folders, and the summary said "0 jobs" with exit status 0."""
    out_dir = tmp_path / "out"  # given relative to the working folder, as the default outputs/ is
    out = command("cnnlab-train", "-m", "seed=0,1", *SMALL, f"paths.data_dir={tmp_path}/data",
                  "paths.output_dir=out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [sweep] = (out_dir / "multirun" / "lenet5_synthetic").iterdir()
    names = "data.num_samples=64,data=synthetic,seed={},trainer.epochs=1,trainer.pictures_every=0," \
            "trainer.tensorboard=False"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [f"0_{names.format(0)}", f"1_{names.format(1)}"]
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| ok |") == 2 and "| 0 | seed=0 " in summary and "| 1 | seed=1 " in summary
    assert f"sweep of 2 jobs in {sweep.relative_to(tmp_path)}" in out.stdout + out.stderr


def test_a_sweep_over_experiments_is_one_folder_whose_job_names_tell_them_apart(tmp_path):
    """Each job's own model and data once named its sweep folder (one folder per experiment, none of them the one
    the summary read) and the job folders left the experiment out."""
    experiments = tmp_path / "cfg" / "experiment"
    experiments.mkdir(parents=True)
    for name, model in (("tiny_cnn", "lenet5"), ("tiny_mlp", "mlp")):
        (experiments / f"{name}.yaml").write_text(f"# @package _global_\ndefaults:\n  - override /model: {model}\n"
                                                  f"  - override /data: synthetic\nname: {name}\n"
                                                  f"data:\n  num_samples: 64\n")
    out_dir = tmp_path / "out"
    out = command("cnnlab-train", "--config-dir", str(tmp_path / "cfg"), "-m", "experiment=tiny_cnn,tiny_mlp",
                  *SMALL[2:], f"paths.output_dir={out_dir}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [p.name for p in (out_dir / "multirun").iterdir()] == ["tiny_cnn+tiny_mlp"]
    [sweep] = (out_dir / "multirun" / "tiny_cnn+tiny_mlp").iterdir()
    rest = "trainer.epochs=1,trainer.pictures_every=0,trainer.tensorboard=False"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        f"0_experiment=tiny_cnn,{rest}", f"1_experiment=tiny_mlp,{rest}"]
    summary = (sweep / "summary.md").read_text()
    assert "| 0 | experiment=tiny_cnn " in summary and "| 1 | experiment=tiny_mlp " in summary
    assert summary.count("| ok |") == 2


def test_sweep_folder_names():
    from cnnlab.sweep import folder_name, sweep_name

    choices = {"model": "lenet5", "data": "digits", "optim": "adam"}
    assert sweep_name(choices, ["seed=0,1", "optim.lr=0.1"]) == "lenet5_digits"
    assert sweep_name(choices, ["model=lenet5,mlp", "seed=0,1"]) == "lenet5+mlp_digits"
    assert sweep_name(choices, ["data=digits,moons"]) == "lenet5_digits+moons"
    assert sweep_name(choices, ["model=mlp", "experiment=a,b"]) == "a+b"
    assert sweep_name(choices, ["model=glob(lenet5*)"]) == "glob_lenet5___digits"
    optuna_params = {"model": "choice(lenet5, mlp)", "optim.lr": "tag(log, interval(1e-4, 1e-2))"}
    assert sweep_name(choices, ["seed=1"], optuna_params) == "lenet5+mlp_digits"
    assert sweep_name(choices, [], {"data": "choice(digits)", "seed": "range(0, 3)"}) == "lenet5_digits"
    assert folder_name("data.vectors=/v/glove.txt,seed=0") == "data.vectors=_v_glove.txt,seed=0"
    assert folder_name("x" * 300) == "x" * 200


def test_the_summary_finds_job_folders_at_any_depth_and_never_calls_no_jobs_a_success(tmp_path, caplog):
    from cnnlab.sweep import SweepSummary

    sweep, elsewhere = tmp_path / "sweep", tmp_path / "elsewhere" / "job"
    for num, job in [(0, sweep / "0_a" / "x" / "y"), (1, sweep / "1_b"), (2, elsewhere)]:
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={num}\n")
        (job / "results.json").write_text(json.dumps({"val/acc": 0.5 + num / 10}))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "optimized_metric": "val/acc"})
    summary = SweepSummary()
    summary.on_job_end(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(elsewhere)}}}), None)  # ran here
    summary.on_multirun_end(config)
    table = (sweep / "summary.md").read_text().splitlines()
    assert table[2:5] == ["| 0 | seed=0 | ok | 0.5000 |  |", "| 1 | seed=1 | ok | 0.6000 |  |",
                          "| 2 | seed=2 | ok | 0.7000 |  |"]
    assert table[5] == "| mean | 3 finished jobs | | 0.6000 ± 0.1000 |  |"
    assert json.loads((sweep / "summary.json").read_text())["failed"] == []  # and no exit: all jobs finished
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as stop:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(empty)}}}))
    assert stop.value.code == 1 and "error: the sweep's jobs left no folder" in caplog.text
    assert json.loads((empty / "summary.json").read_text())["failed"] == [str(empty)]


def test_the_optuna_sampler_seed_is_seed_plus_the_trials_the_study_holds(tmp_path):
    import optuna

    for name in ("lenet5_digits", "unet_roads", "sentence_cnn_sst2"):
        seeds = [compose_cfg([f"hparams_search={name}", f"paths.output_dir={tmp_path}", f"seed={s}"])
                 .hydra.sweeper.sampler.seed for s in (0, 1)]
        assert seeds == [0, 1], name
    # the study the search stores (its storage and name) gets 3 trials: the search continues with seed 1 + 3
    study = optuna.create_study(study_name="lenet5_digits", storage=f"sqlite:///{tmp_path}/optuna/lenet5_digits.db",
                                load_if_exists=True)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    cfg = compose_cfg(["hparams_search=lenet5_digits", f"paths.output_dir={tmp_path}", "seed=1"])
    assert cfg.hydra.sweeper.sampler.seed == 4

"""cnnlab's Optuna sweeper (`hydra.sweeper._target_` of configs/hparams_search/): Optuna's, except that a search
in which no trial finished ends like any other sweep (summary table, summary.md, exit status = the failed jobs).

Optuna's sweeper asks the study for its best trial after the last one, and a study without a finished trial has
none: it raised `ValueError: Record does not exist.` with a traceback, before cnnlab's summary. Hydra takes a
sweeper only from the `hydra_plugins` package, hence this module's place (installed with cnnlab).
"""
from __future__ import annotations

import logging
import traceback
from typing import Any, List

log = logging.getLogger("cnnlab")

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the sweep extra (hydra-optuna-sweeper) is not installed: nothing to extend
    OptunaSweeper = None

if OptunaSweeper is not None:

    class CnnlabOptunaSweeper(OptunaSweeper):
        """OptunaSweeper; when no trial of the study finished, the sweep ends without a best trial (and without
        optimization_results.yaml) instead of with a traceback."""

        def sweep(self, arguments: List[str]) -> Any:
            try:
                return super().sweep(arguments)
            except ValueError as e:
                study = _study_without_finished_trial(e)
                if study is None:
                    raise
                log.error(f"no trial of the Optuna study {study.study_name} finished, so it has no best trial")
                return None


def _study_without_finished_trial(error: BaseException) -> Any:
    """The Optuna study whose best trial `error` was raised asking for (Optuna's sweeper holds it), when that study
    has no finished (COMPLETE) trial; else None (the error has another cause)."""
    import optuna

    for frame, _ in traceback.walk_tb(error.__traceback__):
        study = frame.f_locals.get("study")
        if frame.f_code.co_name == "sweep" and isinstance(study, optuna.Study):
            finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            return None if finished else study
    return None

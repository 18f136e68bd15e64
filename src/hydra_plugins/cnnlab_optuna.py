"""cnnlab's Optuna sweeper (configs/hparams_search/): a search in which no trial finished ends like any other sweep,
not with Optuna's `ValueError: Record does not exist.` asking for the best trial. Hydra takes sweepers only from the
`hydra_plugins` package, hence this module's place (installed with cnnlab)."""
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
        """OptunaSweeper; a study with no finished trial ends without a best trial (or optimization_results.yaml)."""

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
    """The Optuna study `error` was raised asking the best trial of, if it has no finished trial; else None."""
    import optuna

    for frame, _ in traceback.walk_tb(error.__traceback__):
        study = frame.f_locals.get("study")
        if frame.f_code.co_name == "sweep" and isinstance(study, optuna.Study):
            finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            return None if finished else study
    return None

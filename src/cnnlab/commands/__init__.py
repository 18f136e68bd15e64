"""The command bodies: `training` (cnnlab-train), `inspection` (cnnlab-eval, cnnlab-viz), `prediction`
(cnnlab-predict). The console entry points that call them are in cli.py."""
from .inspection import evaluate_checkpoint, visualise_checkpoint
from .prediction import predict
from .training import check_compatible, train

__all__ = ["check_compatible", "evaluate_checkpoint", "predict", "train", "visualise_checkpoint"]

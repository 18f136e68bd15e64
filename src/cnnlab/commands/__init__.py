"""The command bodies: `training` (cnnlab-train), `inspection` (cnnlab-eval, -viz), `prediction` (cnnlab-predict)."""
from .inspection import evaluate_checkpoint, visualise_checkpoint
from .prediction import predict
from .training import check_compatible, train

__all__ = ["check_compatible", "evaluate_checkpoint", "predict", "train", "visualise_checkpoint"]

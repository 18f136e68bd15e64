"""cnnlab: convolutional networks from the classic lecture, one train/eval loop, Hydra configs."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(ckpt_path: Any, device: Any = "cpu", config_dirs: Any = ()) -> Any:
    """The trained model in a cnnlab checkpoint, in eval mode, with `model.data_state` (see commands.inspection)."""
    from .commands.inspection import load_model as load

    return load(ckpt_path, device, config_dirs)

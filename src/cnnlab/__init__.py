"""cnnlab: convolutional networks from the classic lecture, one train/eval loop, Hydra configs."""

__version__ = "0.1.0"

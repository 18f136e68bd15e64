"""`python -m cnnlab.train <overrides>`: `cnnlab-train`, for `torchrun --nproc_per_node=N -m cnnlab.train`."""
from .cli import train_cli

if __name__ == "__main__":
    train_cli()

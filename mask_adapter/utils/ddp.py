"""DistributedDataParallel helpers."""

from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model

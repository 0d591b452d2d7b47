"""Face-recognition models as native PyTorch modules, and the registry that lists them."""

from facecloak.models.registry import RecogniserSpec, get, names, register

__all__ = ["RecogniserSpec", "get", "names", "register"]

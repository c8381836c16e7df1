"""The torch device a stage runs on, from the config's `device` value (`auto`, `cpu`, `cuda`, `cuda:N`)."""

from __future__ import annotations

from .errors import VisdialLGError


def resolve_device(requested: str | None = "auto"):
    """`auto` (or None): CUDA when torch sees a device, else the CPU. Any other value as
    given; asking for CUDA on a machine without it is one clear error, not a torch trace."""
    import torch  # here, so that the workflow and `--help` need no torch

    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VisdialLGError(f"--device {requested}: CUDA is not available on this machine")
    return device

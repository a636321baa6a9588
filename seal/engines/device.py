"""The one place that turns `--device` and `--dtype` into what torch will run on."""

from __future__ import annotations

from seal.errors import SealError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class DeviceError(SealError):
    """A device or dtype that was asked for but cannot be used here."""


def resolve_device(device: str) -> str:
    """`auto` is CUDA when torch sees a GPU, else MPS when available, else the CPU; an explicit device must exist."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device `{device}`", hint=f"use one of {', '.join(DEVICES)}")
    import torch

    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else ("mps" if has_mps else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU", hint="use --device cpu or auto")
    if device == "mps" and not has_mps:
        raise DeviceError("--device mps was asked for but MPS is not available", hint="use --device cpu or auto")
    return device


def resolve_dtype(dtype: str) -> str:
    """`auto` is float32: exact, and the same on every device (so CPU and GPU runs share a recipe). Pass
    bfloat16/float16 explicitly for large models on a GPU; that is a different recipe."""
    if dtype not in DTYPES:
        raise DeviceError(f"unknown dtype `{dtype}`", hint=f"use one of {', '.join(DTYPES)}")
    return "float32" if dtype == "auto" else dtype

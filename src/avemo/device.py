"""The torch device a name stands for, checked once for training and inference alike.

``auto`` is the first CUDA GPU when torch sees one, else the CPU; any other name is torch's
(``cpu``, ``cuda``, ``cuda:1``, ``mps``...). A name torch does not know, and a CUDA device this
torch cannot use (a CPU build, no GPU, an index past the last GPU), are one-line
:class:`~avemo.errors.ConfigError`\\ s, not torch's RuntimeError or AssertionError from deep inside
the first ``.to(device)``.
"""

from __future__ import annotations

import re

from avemo.errors import ConfigError

#: the device types torch's ``torch.device`` parses (c10's ``parse_type``), each alone or as ``TYPE:N``
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hip", "xla", "mtia", "maia", "hpu", "ipu", "lazy", "vulkan", "meta",
                "privateuseone", "fpga", "ideep", "opengl", "opencl", "ve")
DEVICE_FORMS = "auto (a GPU when there is one), cpu, cuda or cuda:N, or another device type of torch's (mps, xpu)"
_DEVICE_NAME = re.compile(rf"auto|(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?")


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a device name torch would parse, or ``auto``; checked without importing
    torch (the onnx engine runs without it), not whether that device is here."""
    return isinstance(name, str) and _DEVICE_NAME.fullmatch(name) is not None


def check_device_option(name: str, option: str = "--device") -> None:
    """A device name that is none (``--device foo``) refused in one line naming ``option`` and the
    accepted forms, when a command starts: before a model loads, and without importing torch."""
    if not is_device_name(name):
        raise ConfigError(f"{option} must be {DEVICE_FORMS}, got {name!r}")


def torch_device(name: str = "auto"):
    """The ``torch.device`` of ``name`` (see the module docstring)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use {DEVICE_FORMS}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"cannot use device {name!r}: torch ({torch.__version__}, {build}) sees no CUDA GPU "
                              "here; use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"cannot use device {name!r}: torch sees {count} CUDA GPU{'s' if count > 1 else ''} "
                              f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return device

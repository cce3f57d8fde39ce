"""Content digests: the SHA-256 that names a file's (or a text's) content in feature-cache keys.

A foundation module: the cache keys entries by it, and feature wrappers whose output depends on
other files (the babble sources of a degradation channel) put their digests in their cache spec.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from avemo.errors import MediaError

_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path, *, remember: bool = True) -> str:
    """SHA-256 of the file's bytes (memoised per process by path, size and mtime; ``remember=False``:
    not, for files read once, such as a server's uploads, whose memo would only grow)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError("file not found", path) from None
    except OSError as exc:
        raise MediaError(f"cannot read ({exc.strerror})", path) from None
    if path.is_dir():
        raise MediaError("is a directory, not a media file", path)
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _HASH_MEMO.get(memo_key)
    if digest is None:
        try:
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise MediaError(f"cannot read ({exc.strerror})", path) from None
        if remember:
            _HASH_MEMO[memo_key] = digest
    return digest


def text_digest(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes, tagged so that it never equals the digest of a file with
    the same bytes (a text feature and a file's feature never share a cache key)."""
    return hashlib.sha256(b"avemo.text\0" + text.encode("utf-8")).hexdigest()

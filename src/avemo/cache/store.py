"""Content-addressed feature store.

An entry's key is the SHA-256 of (input file content hash, extractor name, extractor version,
extractor config); the entry is one ``.npz`` file at ``ROOT/ab/abcdef....npz``. Writes go to
a temporary file in the same folder and are renamed into place (``os.replace`` is atomic on
POSIX), so a reader sees a complete entry or none, and an interrupted run leaves nothing
half-written. A corrupt entry (bad zip CRC, truncated file, wrong content) is detected on
read, removed and reported as a miss, so it is recomputed.

An entry may carry warnings: what the audio or video decoder said while its features were computed
(a truncated file: the features are of the part that decoded). They are stored in the entry's
metadata, not in its key, so that a later run that reads the entry can say so too; an entry written
without them (also every entry written before they were stored) has none.

There is no index file: a lookup is one ``stat``/``open`` whatever the cache size, and
concurrent writers (process pools, Ray workers on a shared file system) never contend.

Temporary files live in ``ROOT/.tmp/`` (same file system, so the rename stays atomic) and
are named after the writing host and process. A writer killed between writing and renaming
(``SIGKILL``, out of memory, a lost node) leaves one there: :func:`remove_orphan_temp_files`
deletes those of dead processes on this host and those older than an hour from any host,
by listing only ``.tmp/``, never the entries. Batch extraction calls it after every run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import stable_hash
from avemo.errors import CacheError

log = logging.getLogger(__name__)

_META = "__avemo_meta__"
_TMP_DIR = ".tmp"


def default_cache_dir() -> Path:
    """``$AVEMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/avemo/features``, else ``~/.cache/avemo/features``."""
    if os.environ.get("AVEMO_CACHE_DIR"):
        return Path(os.environ["AVEMO_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "avemo" / "features"


class FeatureCache:
    """The on-disk store; ``FeatureCache(None)`` is a disabled cache (every lookup misses)."""

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    def key(self, digest: str, spec: Mapping[str, Any]) -> str:
        return stable_hash({"file": digest, "extractor": dict(spec)})

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss (a corrupt entry is removed: a miss)."""
        entry = self.read(key)
        return None if entry is None else entry[0]

    def read(self, key: str) -> tuple[dict[str, np.ndarray], list[str]] | None:
        """The arrays stored under ``key`` and the warnings stored with them (``[]``: none), or None
        on a miss, as :meth:`get`."""
        if not self.enabled:
            return None
        path = self.entry_path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except FileNotFoundError:
            return None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
            self._discard(path, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        meta = arrays.pop(_META, None)
        info = _decode_meta(meta) if meta is not None else {}
        if info.get("key") != key:
            self._discard(path, "entry does not carry its own key")
            return None
        warnings = info.get("warnings")
        return arrays, [str(w) for w in warnings] if isinstance(warnings, list) else []

    def put(self, key: str, arrays: Mapping[str, np.ndarray], spec: Mapping[str, Any] | None = None,
            warnings: Sequence[str] = ()) -> Path:
        """Store ``arrays`` under ``key`` atomically, with ``warnings`` (what the decoder said while
        they were computed; see the module doc); returns the entry's path."""
        if not self.enabled:
            return self.entry_path(key)
        if _META in arrays:
            raise CacheError(f"array name {_META!r} is reserved")
        path = self.entry_path(key)
        meta = json.dumps({"key": key, "spec": dict(spec or {}), **({"warnings": list(warnings)} if warnings else {})},
                          sort_keys=True)
        payload = {name: np.asarray(a) for name, a in arrays.items()}
        payload[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **payload)
        tmp = self.root / _TMP_DIR / _temp_name(path.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(buf.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise CacheError(f"cannot write cache entry ({exc.strerror or exc})", path) from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def __contains__(self, key: str) -> bool:
        return self.enabled and self.entry_path(key).is_file()

    def _discard(self, path: Path, why: str) -> None:
        log.warning("discarding corrupt feature cache entry %s: %s", path, why)
        try:
            path.unlink()
        except OSError:
            pass


def _temp_name(entry_name: str) -> str:
    """``ENTRY.HOST.PID.RANDOM.tmp``: whose it is, so that orphans can be told from live writes."""
    host = socket.gethostname().replace(".", "_") or "host"
    return f"{entry_name}.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_orphan_temp_files(root: str | Path, *, max_age_s: float = 3600.0) -> list[Path]:
    """Delete temporary files left by killed writers under ``root/.tmp``; returns what was removed.

    A file is an orphan when its writer's process (named in the file name) no longer runs on
    this host, or, whatever its host, when it is older than ``max_age_s`` (a write takes
    milliseconds). Live writes of running processes are left alone.
    """
    folder = Path(root) / _TMP_DIR
    host = socket.gethostname().replace(".", "_") or "host"
    now = time.time()
    removed = []
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".tmp")]
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise CacheError(f"cannot list temporary files ({exc.strerror or exc})", folder) from None
    for name in names:
        path = folder / name
        parts = name.rsplit(".", 4)  # ENTRY(.npz), HOST, PID, RANDOM, tmp
        try:
            orphan = parts[1] == host and parts[2].isdigit() and not _pid_alive(int(parts[2]))
            orphan = orphan or now - path.stat().st_mtime > max_age_s
        except (IndexError, OSError):
            continue  # renamed or removed meanwhile: not ours to judge
        if orphan:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    if removed:
        log.warning("removed %d temporary cache files left by killed writers in %s", len(removed), folder)
    return removed


def said_of_cached(files: Sequence[str], subject: str, media: str, result: str) -> str:
    """The one line a run says when it read cache entries made while the decoder warned (a truncated
    file), instead of a line per file: ``subject`` with ``{n}`` for the number of ``files`` (``"{n}
    transcript(s) from the cache were"``), the ``media`` that was partly decoded, the ``result``
    for what was made of it, and the first three files."""
    shown = ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"{subject.format(n=len(files))} made from partly decoded {media} (the decoder warned when they "
            f"were made; {result}): {shown}")


def _decode_meta(meta: np.ndarray) -> dict[str, Any]:
    try:
        info = json.loads(bytes(meta.astype(np.uint8)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}

"""Where avemo, and the libraries it drives, keep cache files: always a folder that can be written.

Containers, CI runners and system services often run with a home folder that does not exist
or cannot be written (``HOME=/nonexistent``). A cache there must not break prediction, so every
cache folder is chosen by :func:`cache_dir`, in this order:

1. ``$XDG_CACHE_HOME/avemo/...`` (``~/.cache/avemo/...`` when the variable is unset);
2. ``<system temp folder>/avemo-cache-<uid>/...``, a private folder (mode 0700) of this user;
3. none: the caller works without a cache (slower, never wrong); numba then compiles without
   caching (:func:`ensure_numba_cache_dir`).

numba, which librosa uses, picks its own cache folder when a decorated function is defined
and raises if it finds none (``cannot cache function ...: no locator available``);
:func:`ensure_numba_cache_dir` points it to a writable folder before librosa is imported.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache`` (not checked: it may not exist or be writable)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path(os.path.expanduser("~")) / ".cache"


def _usable(folder: Path) -> bool:
    """Create ``folder`` if needed; True if this process can write into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _private_temp_root() -> Path | None:
    """``<temp>/avemo-cache-<uid>``, created 0700; None if it exists but is not this user's private folder
    (another user could have made it to read or plant our cache files)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    try:
        root = Path(tempfile.gettempdir()) / f"avemo-cache-{uid}"  # raises when no temp folder can be written
        root.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(root)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != uid):
        return None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return root


def cache_dir(*parts: str) -> Path | None:
    """A writable cache folder ``avemo/<parts>`` (created), in the order of the module docstring;
    None when no candidate can be written (the caller then works without a cache)."""
    home = user_cache_root() / "avemo"
    if _usable(home.joinpath(*parts)):
        return home.joinpath(*parts)
    temp = _private_temp_root()
    if temp is not None and _usable(temp.joinpath(*parts)):
        return temp.joinpath(*parts)
    return None


def ensure_numba_cache_dir() -> None:
    """Give numba a writable cache folder when its default (``$XDG_CACHE_HOME/numba`` or
    ``~/.cache/numba``; the package's own ``__pycache__`` is read-only for most users) cannot be
    written. Call before importing librosa. A ``NUMBA_CACHE_DIR`` the user set is left alone."""
    if os.environ.get("NUMBA_CACHE_DIR") or _usable(user_cache_root() / "numba"):
        return
    folder = cache_dir("numba")
    if folder is None:
        _numba_caching_off()
        return
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported already: its config read the variable then
        config.CACHE_DIR = str(folder)


def _numba_caching_off() -> None:
    """No folder can be written at all (a read-only file system without a writable temp folder):
    a function that asks numba for caching is compiled without it, where numba would raise (numba
    has no setting that turns caching off)."""
    from numba.core.dispatcher import Dispatcher

    enable = Dispatcher.enable_caching
    if getattr(enable, "avemo_caching_off", False):
        return

    def enable_caching(self) -> None:
        try:
            enable(self)
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise

    enable_caching.avemo_caching_off = True
    Dispatcher.enable_caching = enable_caching

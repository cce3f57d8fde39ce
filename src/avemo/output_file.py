"""An output file that is checked before the work starts and written whole or not at all.

``avemo predict --out FILE`` may run for minutes; a destination that cannot be written (a missing
folder, a read-only one, a name that is a folder, a full disk) must be reported before that
work, as one line, and an interrupted or failed run must not leave half a file. So
:class:`OutputFile`

* checks the destination and creates its temporary file next to it when it is opened (the
  write permission of the folder is tested by doing, not guessed);
* on :meth:`~OutputFile.commit`, writes the temporary file, flushes it to disk and renames it
  over the destination (atomic on POSIX: readers see the old file or the new one);
* on :meth:`~OutputFile.discard` (or an exception inside ``with``), removes the temporary file.

:func:`prepare_folder` does the same check for a folder that a long run fills at its end (a
benchmark's reports, plots).

:func:`removing_new_folders` removes the folders a command created for its outputs again when the
command fails or is interrupted before writing into them: a refused or stopped run leaves no empty
folder behind (a folder that existed before, or that holds anything, is never removed).

A destination that exists and is not a regular file (``/dev/stdout``, a named pipe, ``/dev/full``)
cannot be replaced by a rename: it is opened when the output is opened and written directly. Such a
device cannot be asked whether a write will fit, so ``/dev/full`` is reported (one line) only when
the output is written; a full file system under a regular file is reported when the output is opened.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from avemo.errors import AvemoError


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class OutputFile:
    """``with OutputFile(path) as out: ...work...; out.commit(text)`` (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._tmp: Path | None = None
        target = self.path.resolve() if self.path.is_symlink() else self.path  # write through a link
        try:
            info = os.stat(target)
        except FileNotFoundError:
            info = None
        except OSError as exc:  # e.g. a path under a regular file
            raise AvemoError(f"cannot write the output here ({_reason(exc)})", self.path) from None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise AvemoError("is a folder; give the name of the file to write", self.path)
        if info is not None and not stat.S_ISREG(info.st_mode):
            self._open_special(target)
            return
        folder = target.parent
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise AvemoError(f"cannot write the output: the folder {folder} {what}", self.path)
        self._mode = stat.S_IMODE(info.st_mode) if info is not None else None
        self._target = target
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise AvemoError(f"cannot write the output in {folder} ({_reason(exc)})", self.path) from None
        self._fd, self._tmp = fd, Path(tmp)
        if _no_space_left(folder):  # creating the temporary file needs no free block; writing it does
            self.discard()
            raise AvemoError(f"cannot write the output in {folder} (No space left on device)", self.path)

    def _open_special(self, target: Path) -> None:
        try:
            self._fd = os.open(target, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
        except OSError as exc:
            raise AvemoError(f"cannot write the output ({_reason(exc)})", self.path) from None
        self._target = target

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()

    def commit(self, text: str) -> None:
        """Write ``text`` (UTF-8) and put it in place; one-line AvemoError if it cannot be written
        (nothing is left behind then)."""
        if self._fd is None:
            raise RuntimeError("the output was already committed or discarded")
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(self._fd, data):]
            if self._tmp is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                os.chmod(self._tmp, self._mode if self._mode is not None else 0o666 & ~_umask())
                os.replace(self._tmp, self._target)
                self._tmp = None
        except OSError as exc:
            self.discard()
            raise AvemoError(f"cannot write the output ({_reason(exc)})", self.path) from None
        self.discard()

    def discard(self) -> None:
        """Close and remove the temporary file (nothing was written to the destination)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _no_space_left(folder: Path) -> bool:
    """True when the file system of ``folder`` has no free block left for this user (a full disk is
    found before the work, not when its result is written); False when that cannot be told."""
    try:
        fs = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False
    root = hasattr(os, "geteuid") and os.geteuid() == 0  # root may use the blocks reserved for it
    return fs.f_blocks > 0 and (fs.f_bfree if root else fs.f_bavail) == 0  # f_blocks 0: it does not say


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def removing_new_folders(folder: str | Path | None) -> Iterator[None]:
    """``with removing_new_folders(out): ...create out, work, write into it...``: the folders missing
    now on the way to ``folder`` (it and its missing parents) are removed again, deepest first, if the
    body raises (a refusal, a failure, Ctrl-C) while they are empty. None: nothing to watch."""
    missing = []
    path = Path(folder).absolute() if folder is not None else None
    while path is not None and not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        for path in missing:
            try:
                path.rmdir()  # only an empty folder: one that holds anything stays, and so do its parents
            except FileNotFoundError:  # not created (the work failed before)
                continue
            except OSError:
                break
        raise


def prepare_folder(folder: str | Path) -> Path:
    """Create ``folder`` (with its parents) for files written at the end of a long run, and check
    now, by creating and removing a temporary file in it, that they can be written there; a
    one-line AvemoError naming the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AvemoError("is a file; give the name of a folder", folder) from None
    except OSError as exc:
        raise AvemoError(f"cannot create the output folder ({_reason(exc)})", folder) from None
    try:
        OutputFile(folder / ".avemo-check").discard()
    except AvemoError as exc:  # named after the folder, not the probe
        raise AvemoError(exc.reason, folder) from None
    return folder

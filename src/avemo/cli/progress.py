"""The progress of the commands on stderr: a rich bar on a terminal, otherwise a line every
:data:`PROGRESS_EVERY` seconds (a log file, a job, CI); ``avemo predict``'s per-file progress."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from rich.markup import escape

from avemo.cli.app import console_err

#: seconds between progress lines when stderr is not a terminal (a log file, a service, CI)
PROGRESS_EVERY = 5.0


class _LineProgress:
    """The progress of ``extract``, ``train``, ``evaluate`` and ``benchmark`` when stderr is not a terminal (a log
    file, a job, CI): a line every :data:`PROGRESS_EVERY` seconds, ``avemo: extracting: 120 of 11098
    (1 %), 40 s so far``, for the few calls of a rich ``Progress`` these commands make."""

    def __init__(self, enabled: bool):
        import time

        self.enabled, self.tasks, self.started = enabled, {}, time.monotonic()
        self.last_line = self.started

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        self.tasks[len(self.tasks)] = [description, total, 0.0]
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self.tasks[task][2] + advance)

    def update(self, task: int, *, completed: float, total: float | None = None) -> None:
        import time

        self.tasks[task][2] = completed
        if total is not None:
            self.tasks[task][1] = total
        now = time.monotonic()
        if self.enabled and now - self.last_line >= PROGRESS_EVERY:
            self.last_line = now
            description, total, done = self.tasks[task]
            share = f" ({100 * done / total:.0f} %)" if total else ""
            shown = f"{done:.0f}" if float(done).is_integer() else f"{done:.1f}"  # within an epoch: 2.4 of 40
            print(f"avemo: {description}: {shown} of {total:.0f}{share}, {now - self.started:.0f} s so far",
                  file=sys.stderr, flush=True)


def _progress(total: int, description: str):
    """A progress bar on a terminal, else progress lines (:class:`_LineProgress`); none for one item."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not console_err.is_terminal:
        return _LineProgress(total >= 2)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        transient=True,
        disable=total < 2,
    )


@contextlib.contextmanager
def _extracting(total: int):
    """``gather``'s ``progress(input, done, total)`` for ``avemo train`` and ``evaluate``: a bar (or lines)
    per input being extracted (the features of a corpus not in the cache yet, minutes of work, came
    without a word)."""
    with _progress(total, "extracting") as bar:
        yield _extraction_bar(bar)


@contextlib.contextmanager
def _transcribing(enabled: bool):
    """``progress(done, total)`` for the speech recognition of a corpus's clips (a bar, or lines), or
    None when ``enabled`` is false."""
    if not enabled:
        yield None
        return
    with _progress(2, "transcribing") as bar:
        task = bar.add_task("transcribing", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _extraction_bar(bar):
    """``run_benchmark``'s ``extract_progress`` (a line of ``bar`` per corpus being extracted), or
    ``gather``'s ``progress`` (a line per input)."""
    tasks: dict[str, int] = {}

    def update(corpus: str, done: int, total: int) -> None:
        if corpus not in tasks:
            tasks[corpus] = bar.add_task(f"extracting {corpus}", total=total)
        bar.update(tasks[corpus], completed=done, total=total)

    return update


class _PredictProgress:
    """Progress of ``avemo predict`` on stderr: on a terminal, a bar per file (and one for the batch);
    otherwise a line every :data:`PROGRESS_EVERY` seconds of the batch, so that the log of a long run
    shows that it advances, also through a folder of many short files (each under those seconds; the
    clock used to start again at each file, and such a batch printed nothing until its end). Fed by
    :meth:`Predictor.predict_many`'s callback (from the experts' threads too)."""

    def __init__(self, files: list[Path]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.names = [Path(p).name for p in files]
        self.index = -1
        self.started = 0.0
        self.last_line = 0.0
        self.bar = None
        if console_err.is_terminal:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=console_err,
                                transient=True)
            self.overall = self.bar.add_task(f"{len(files)} files", total=len(files), visible=len(files) > 1)
            self.task = None

    def __enter__(self) -> _PredictProgress:
        import time

        self.last_line = time.monotonic()
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, index: int, _path: str, done: float, total: float) -> None:
        import time

        if index != self.index:  # a new file starts (a grouped batch yields its outcomes only at the end)
            self.finished()
            self.index, self.started = index, time.monotonic()
            if self.bar is not None:
                self.task = self.bar.add_task(escape(self.names[index][:40]), total=None)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total or None)
        elif time.monotonic() - self.last_line >= PROGRESS_EVERY:
            self.last_line = time.monotonic()
            share = f" ({100 * done / total:.0f} %)" if total else ""
            print(f"avemo: [{index + 1}/{len(self.names)}] {self.names[index]}: {done:.0f} of {total:.0f} s "
                  f"analysed{share}, {self.last_line - self.started:.0f} s so far", file=sys.stderr, flush=True)

    def finished(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
            self.bar.advance(self.overall)

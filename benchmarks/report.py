"""Shared by the benchmark scripts: machine/version header and writing a section of docs/benchmarks.

Each script writes its own section ``docs/benchmarks/NAME.md``; ``python benchmarks/report.py``
assembles all sections into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ROOT / "docs" / "benchmarks"
ORDER = ["extract_audio", "face_pipeline", "small_faces", "long_video", "scale_extraction", "predict", "heap_thresholds", "serve",
         "gpu_train"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def versions(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("avemo", "torch", "numpy", *names):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``), in MiB. Not ``ru_maxrss``: Linux keeps that
    across ``execve``, so a child started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def heap_mb() -> tuple[float, float] | None:
    """(in use, free) MiB of glibc's heaps (``mallinfo2``: ``uordblks``, ``fordblks``; blocks mapped on
    their own are not counted), or None without glibc 2.33+. Free heap that stays resident is what
    fragmentation costs."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    info.restype = Info
    m = info()
    return m.uordblks / 2**20, m.fordblks / 2**20


def header(title: str, packages: tuple[str, ...] = ()) -> list[str]:
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    return [
        f"## {title}",
        "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {machine()}",
        f"- Versions: {versions(*packages)}",
        f"- Load average (1/5/15 min) at start: {load()}",
        "",
    ]


def timed_extract(args: list[str], cache: Path) -> tuple[float, dict]:
    """``avemo extract ARGS --cache CACHE`` in a fresh process: its wall time (start-up included) and
    its ``--summary``; a failed run stops the benchmark with the end of its stderr."""
    summary = cache.parent / f"summary-{time.time_ns()}.json"
    cmd = [sys.executable, "-m", "avemo.cli", "extract", *args, "--cache", str(cache), "--summary", str(summary)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"extraction failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, json.loads(summary.read_text())


def write_section(name: str, lines: list[str]) -> Path:
    SECTIONS.mkdir(parents=True, exist_ok=True)
    path = SECTIONS / f"{name}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)
    assemble()
    return path


def assemble() -> Path:
    """Write docs/benchmarks.md (:func:`assembled`)."""
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text(assembled())
    return out


def assembled() -> str:
    """The text of docs/benchmarks.md: every section, in a fixed order, then any others."""
    sections = sorted(SECTIONS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    parts = [
        "# Benchmarks",
        "",
        "Every figure here is written by a script in `benchmarks/` (command, machine, versions and load",
        "average are given with each section). The development and CI machines have 2 cores shared with",
        "other jobs, so wall-clock figures carry the load average they were measured under.",
        "",
    ]
    for section in sections:
        parts.append(section.read_text().rstrip())
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    argparse.ArgumentParser(description="Assemble docs/benchmarks.md from the sections in docs/benchmarks/ "
                                        "(each benchmark script writes its own); takes no options.").parse_args()
    print(assemble())

"""Scale-out benchmark: batch feature extraction with the local executor and with Ray.

What it measures, on this machine:

1. a generated corpus of ``--clips`` short clips (``avemo.media.synth.write_clip``: 320x240
   25 fps H.264 with the portrait that ships with matplotlib pasted at a drifting position,
   AAC audio cycling through a synthetic voice, a tone and noise; every clip different);
2. extraction of the audio features (``--audio``, default ``mfcc,logmel,egemaps``) of every
   clip and of a face feature (``--face``, default ``face_crops``) of the first
   ``--face-clips`` clips, each with the local executor (1 worker = in the calling process,
   2 = a process pool) and with Ray (a private local instance with 1 and 2 CPUs), from a
   cold cache: wall time (start-up included), clips/s, the speed-up of 2 workers over 1,
   the Ray start time, the CPU time the workers used, the peak resident memory (VmHWM) of
   each worker process and of the driver, and the memory of Ray's own processes (raylet,
   GCS, agents);
3. the cost curve: audio extraction of the first 250, 500, 1000 and 2000 clips (2 workers,
   local and Ray, cold cache), with the seconds per clip and a least-squares line, plus a
   warm re-run of the largest size (every file looked up in the cache, nothing computed).

Each measurement runs in a fresh Python process (imports and memory are not shared between
them). The load average is recorded before and after each one: other jobs on the machine
slow down the 2-worker runs most, so before each measurement the script waits (up to
``--max-wait`` seconds) until the 1-minute load average is below ``--max-load`` and other
processes keep less than ``--max-busy`` cores busy over 10 s, and it reports the CPU that
other jobs used during each run.

    python benchmarks/scale_extraction.py [--workdir /tmp/avemo-scale] [--clips 2000] [--face-clips 500]

The result is a Markdown section written to ``docs/benchmarks/scale_extraction.md`` (merged into
``docs/benchmarks.md``) and the raw numbers to ``WORKDIR/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, write_section  # noqa: E402

AUDIO_KINDS = ("voice", "tone", "noise")
RAY_AGENTS = ("DashboardAgent", "RuntimeEnvAgent", "MetricsAgent")


# ----------------------------------------------------------------------------- corpus


def _write_one(args: tuple[str, int, float, tuple[int, int]]) -> str:
    from avemo.media.synth import write_clip

    path, i, duration, size = args
    if not Path(path).exists():
        write_clip(path, duration=duration, size=size, fps=25.0, face=True, audio=AUDIO_KINDS[i % 3],
                   seed=i, pitch=100.0 + 3.0 * (i % 50))
    return path


def make_corpus(folder: Path, n: int, duration: float, size: tuple[int, int]) -> list[str]:
    """``n`` distinct clips in ``folder`` (existing ones are kept: a re-run reuses the corpus)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"clip{i:05d}.mp4"), i, duration, size) for i in range(n)]
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_write_one, jobs, chunksize=25))


# ----------------------------------------------------------------------------- memory sampling


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = (ppid, cmd)
    return table


def _status(pid: int) -> tuple[float, float, float]:
    """(VmHWM MiB, VmRSS MiB, CPU seconds) of a process."""
    hwm = rss = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm, rss, cpu


class MemorySampler(threading.Thread):
    """Polls the descendants of this process: peak RSS and CPU time of each worker, memory and CPU
    of Ray's own processes."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.procs: dict[int, dict] = {}  # pid -> {"kind", "hwm", "cpu", "cmd"}
        self.system_rss_peak = 0.0  # sum of the RSS of Ray's own processes, at its highest
        self.stop_event = threading.Event()

    @staticmethod
    def kind(cmd: str) -> str:
        if ("multiprocessing.spawn" in cmd or cmd.startswith("ray::")) and not any(a in cmd for a in RAY_AGENTS):
            return "worker"
        return "system"  # raylet, GCS, Ray's agents, multiprocessing's resource tracker

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        stack, mine = [os.getpid()], []
        while stack:
            for child in children.get(stack.pop(), []):
                mine.append(child)
                stack.append(child)
        system = 0.0
        for pid in mine:
            try:
                hwm, rss, cpu = _status(pid)
            except (OSError, ValueError, IndexError):
                continue
            p = self.procs.setdefault(pid, {"kind": self.kind(table[pid][1]), "hwm": 0.0, "cpu": 0.0,
                                            "cmd": table[pid][1][:40]})
            p["hwm"], p["cpu"] = max(p["hwm"], hwm), max(p["cpu"], cpu)
            if p["kind"] == "system":
                system += rss
        self.system_rss_peak = max(self.system_rss_peak, system)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.sample()
        self.stop_event.set()
        self.join()

    @property
    def workers(self) -> list[dict]:
        return [p for p in self.procs.values() if p["kind"] == "worker"]

    @property
    def system_cpu(self) -> float:
        return sum(p["cpu"] for p in self.procs.values() if p["kind"] == "system")


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def busy_cores(seconds: float) -> float:
    """How many cores the whole machine kept busy over the next ``seconds``."""
    b0, _ = busy_jiffies()
    time.sleep(seconds)
    b1, _ = busy_jiffies()
    return (b1 - b0) / os.sysconf("SC_CLK_TCK") / seconds


# ----------------------------------------------------------------------------- one measurement


def measure_here(job: dict) -> dict:
    """Runs in a fresh process: one extraction run, from a cold cache unless ``job["warm"]``."""
    from avemo.cache import FeatureCache
    from avemo.extraction import ExtractorSpec, run_extraction

    paths = Path(job["paths"]).read_text().split("\n")[: job["n"]]
    cache_dir = Path(job["cache"])
    if not job.get("warm"):
        shutil.rmtree(cache_dir, ignore_errors=True)
    specs = ExtractorSpec.parse(job["features"])
    sampler = MemorySampler()
    sampler.start()
    load_before = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    busy0, _ = busy_jiffies()
    t0 = time.perf_counter()
    ray_start = None
    if job["executor"] == "ray":
        from avemo.parallel import ray_session

        with ray_session(None, job["workers"]) as ray:
            ray_start = time.perf_counter() - t0
            report = run_extraction(paths, specs, cache=FeatureCache(cache_dir), workers=job["workers"],
                                    executor="ray")
            ray.shutdown()  # inside the timing: part of what a run costs
    else:
        report = run_extraction(paths, specs, cache=FeatureCache(cache_dir), workers=job["workers"],
                                executor="local")
    wall = time.perf_counter() - t0
    busy1, _ = busy_jiffies()
    sampler.stop()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    driver_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    workers = sampler.workers
    busy = [w for w in workers if w["cpu"] > 1.0]  # Ray may start idle spare workers
    ours = driver_cpu + sum(w["cpu"] for w in workers) + sampler.system_cpu
    machine_busy = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    return {
        **{k: job[k] for k in ("label", "features", "executor", "workers", "n")},
        "warm": bool(job.get("warm")),
        "seconds": wall,
        "clips_per_s": job["n"] / wall,
        "ray_start_s": ray_start,
        "computed": report.n_computed,
        "cached": report.n_cached,
        "failed": len(report.failed),
        "first_failure": report.failed[0].errors if report.failed else None,
        "driver_cpu_s": driver_cpu,
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_processes": len(workers),
        "busy_workers": len(busy),
        "worker_cpu_s": sum(w["cpu"] for w in workers),
        "worker_peak_mib": max((w["hwm"] for w in busy), default=None),
        "ray_system_mib": sampler.system_rss_peak if job["executor"] == "ray" else None,
        "ray_system_cpu_s": sampler.system_cpu if job["executor"] == "ray" else None,
        "other_jobs_cores": max(0.0, machine_busy - ours) / wall,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def measure(job: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", json.dumps(job)], capture_output=True,
                          text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    if proc.returncode != 0:
        raise SystemExit(f"measurement {job['label']} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {result['label']}: {result['seconds']:.1f} s, {result['clips_per_s']:.1f} clips/s, "
          f"load {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}, "
          f"other jobs {result['other_jobs_cores']:.2f} cores", flush=True)
    return result


# ----------------------------------------------------------------------------- report


def wait_for_quiet(max_load: float, max_busy: float, max_wait: float) -> None:
    """Wait until the 1-minute load average is below ``max_load`` and other jobs keep less than
    ``max_busy`` cores busy (measured over 10 s), or ``max_wait`` seconds have passed."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        load, busy = os.getloadavg()[0], busy_cores(10)
        if load < max_load and busy < max_busy:
            return
        print(f"load {load:.2f}, {busy:.2f} cores busy: waiting", flush=True)
        time.sleep(20)


def _fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x; returns (a, b, largest relative residual)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    worst = max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True))
    return a, b, worst


def write_report(args, runs: list[dict], curve: list[dict], warm: list[dict]) -> None:
    lines = header("Scaling out: batch extraction, local process pool and Ray", ("ray", "av", "opensmile", "mediapipe"))
    lines += [
        f"- Corpus: {args.clips} generated clips of {args.duration} s, {args.size} at 25 fps, H.264 + AAC "
        "(portrait from matplotlib's sample data; audio cycles voice / tone / noise), each file different.",
        "- Every run starts from a cold cache in a fresh Python process; wall time includes starting the "
        "workers (and Ray), importing avemo in them, and stopping them.",
        "",
    ]
    by = {(r["label"].split("/")[0], r["executor"], r["workers"]): r for r in runs}
    lines += [
        "| features | clips | executor | workers | wall s | clips/s | speed-up vs 1 worker | Ray start s | "
        "worker CPU s | peak RSS per worker MiB | driver peak MiB | Ray's own processes MiB / CPU s | "
        "other jobs, cores | load before / after |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        group = r["label"].split("/")[0]
        one = by.get((group, r["executor"], 1))
        speed = r["clips_per_s"] / one["clips_per_s"] if one and r["workers"] > 1 else None
        worker_cpu = r["worker_cpu_s"] if r["worker_processes"] else r["driver_cpu_s"]
        peak = r["worker_peak_mib"] if r["worker_processes"] else r["driver_peak_mib"]
        lines.append(
            f"| {r['features']} | {r['n']} | {r['executor']} | {r['workers']} | {r['seconds']:.1f} | "
            f"{r['clips_per_s']:.1f} | {_fmt(speed, '.2f')}{'x' if speed else ''} | {_fmt(r['ray_start_s'])} | "
            f"{worker_cpu:.0f} | {_fmt(peak, '.0f')}{'' if r['worker_processes'] else ' (in the driver)'} | "
            f"{r['driver_peak_mib']:.0f} | {_fmt(r['ray_system_mib'], '.0f')} / {_fmt(r['ray_system_cpu_s'], '.0f')} | "
            f"{r['other_jobs_cores']:.2f} | {r['load_before'][0]:.2f} / {r['load_after'][0]:.2f} |"
        )
    lines += ["", "Ray's overhead against the local executor with the same number of workers:", ""]
    lines += ["| features | workers | local s | Ray s | Ray - local s | of which Ray start s | overhead % |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for (group, executor, workers), r in by.items():
        if executor != "ray" or (group, "local", workers) not in by:
            continue
        loc = by[(group, "local", workers)]
        diff = r["seconds"] - loc["seconds"]
        lines.append(f"| {r['features']} | {workers} | {loc['seconds']:.1f} | {r['seconds']:.1f} | {diff:+.1f} | "
                     f"{_fmt(r['ray_start_s'])} | {100 * diff / loc['seconds']:+.1f} |")
    failures = [r for r in runs + curve + warm if r["failed"]]
    if failures:
        lines += ["", "Failures: " + "; ".join(f"{r['label']}: {r['failed']} files ({r['first_failure']})"
                                             for r in failures)]
    if curve:
        lines += ["", f"Cost curve: audio features ({args.audio}), 2 workers, cold cache each time:", "",
                  "| executor | clips | wall s | s per clip | clips/s | other jobs, cores | load before / after |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for r in curve:
            lines.append(f"| {r['executor']} | {r['n']} | {r['seconds']:.1f} | {r['seconds'] / r['n'] * 1000:.1f} ms | "
                         f"{r['clips_per_s']:.1f} | {r['other_jobs_cores']:.2f} | "
                         f"{r['load_before'][0]:.2f} / {r['load_after'][0]:.2f} |")
        lines.append("")
        for executor in dict.fromkeys(r["executor"] for r in curve):
            pts = [r for r in curve if r["executor"] == executor]
            if len(pts) >= 3:
                a, b, worst = fit_line([r["n"] for r in pts], [r["seconds"] for r in pts])
                lines.append(f"- {executor}: least squares wall = {a:.1f} s + {1000 * b:.1f} ms x clips; the largest "
                             f"point is {100 * worst:.1f} % off the line. A constant term is start-up; a per-clip "
                             "cost that grew with the corpus would bend the curve upwards.")
        for r in warm:
            lines.append(f"- Warm re-run of {r['n']} clips ({r['executor']}, every entry already cached): "
                         f"{r['seconds']:.1f} s ({1000 * r['seconds'] / r['n']:.2f} ms per clip: hashing the file "
                         "and opening one cache entry per feature; no worker is started).")
    lines += ["", "How to read it:", "",
              "- *wall s* is what a user waits for, start-up included; *worker CPU s* is the CPU time of the "
              "worker processes (of the driver for 1 local worker, which runs in the calling process).",
              "- *peak RSS* is the VmHWM of each worker process (shared library pages included), the largest "
              "over the workers; *Ray's own processes* is the resident memory of raylet, GCS and agents together.",
              "- Other jobs share these 2 cores. Each run waited until the machine was quiet (1-minute load "
              f"below {args.max_load}, other jobs below {args.max_busy} cores over 10 s); *other jobs, cores* is "
              "the CPU the rest of the machine used during the run (all CPU time minus that of this run's "
              "processes, per second of wall time). A 2-worker run needs the second core free to reach 2x.",
              ""]
    write_section("scale_extraction", lines)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/avemo-scale"))
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--face-clips", type=int, default=500)
    parser.add_argument("--duration", type=float, default=1.5)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--audio", default="mfcc,logmel,egemaps")
    parser.add_argument("--face", default="face_crops")
    parser.add_argument("--curve", default="250,500,1000,2000")
    parser.add_argument("--curve-executors", default="local,ray")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: audio,face,curve")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--max-busy", type=float, default=0.3, help="cores other jobs may keep busy")
    parser.add_argument("--max-wait", type=float, default=3600)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_here(json.loads(args.measure))))
        return
    size = tuple(int(v) for v in args.size.split("x"))
    skip = set(filter(None, args.skip.split(",")))
    print(f"corpus: {args.clips} clips in {args.workdir / 'corpus'}", flush=True)
    t = time.perf_counter()
    paths = make_corpus(args.workdir / "corpus", args.clips, args.duration, size)
    print(f"  ready in {time.perf_counter() - t:.0f} s", flush=True)
    paths_file = args.workdir / "paths.txt"
    paths_file.write_text("\n".join(paths))
    base = {"paths": str(paths_file), "cache": str(args.workdir / "cache")}
    runs: list[dict] = []
    groups = [("audio", args.audio, args.clips), ("face", args.face, min(args.face_clips, args.clips))]
    for group, features, n in groups:
        if group in skip:
            continue
        for executor, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            wait_for_quiet(args.max_load, args.max_busy, args.max_wait)
            runs.append(measure({**base, "label": f"{group}/{executor}{workers}", "features": features,
                                 "executor": executor, "workers": workers, "n": n}))
    curve, warm = [], []
    if "curve" not in skip:
        sizes = [int(v) for v in args.curve.split(",") if int(v) <= args.clips]
        for executor in args.curve_executors.split(","):
            for n in sizes:
                wait_for_quiet(args.max_load, args.max_busy, args.max_wait)
                curve.append(measure({**base, "label": f"curve/{executor}{n}", "features": args.audio,
                                      "executor": executor, "workers": 2, "n": n}))
            if executor == "local" and sizes:  # the cache now holds the largest size: look it all up again
                wait_for_quiet(args.max_load, args.max_busy, args.max_wait)
                warm.append(measure({**base, "label": f"warm/{executor}{sizes[-1]}", "features": args.audio,
                                     "executor": executor, "workers": 2, "n": sizes[-1], "warm": True}))
    (args.workdir / "results.json").write_text(json.dumps({"runs": runs, "curve": curve, "warm": warm}, indent=2))
    write_report(args, runs, curve, warm)
    print("wrote docs/benchmarks/scale_extraction.md", flush=True)


if __name__ == "__main__":
    main()

"""Load benchmark of the prediction service on loopback: N concurrent clients posting a 4 s clip.

For each ``--workers`` value it starts ``avemo serve`` in a subprocess (the real bundled model),
waits for ``/healthz``, sends one warm-up request, then lets ``--clients`` concurrent clients post
the clip until ``--requests`` requests were sent or ``--time-limit`` seconds passed (whichever
comes first). It reports throughput, p50/p95 latency, the status codes and errors, the server's
peak memory, and checks that no upload is left in the server's upload folder, neither while the
server still runs nor after it stopped. The report goes to ``docs/benchmarks/serve.md``.

    python benchmarks/serve_load.py                      # 4 clients, 40 requests, workers 1 and 2
    python benchmarks/serve_load.py --clients 8 --requests 80 --workers 2 --queue 8

Exit status 1 when any request failed or an upload was left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BUSY_BACKOFF = 0.5  # seconds a client waits after a 503
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4"


@dataclass
class Run:
    workers: int
    queue: int
    clients: int
    latencies: list[float] = field(default_factory=list)
    busy_latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    load_seconds: float = 0.0
    warmup: float = 0.0
    peak_rss_mb: float | None = None
    leaked_running: list[str] = field(default_factory=list)
    leaked_after: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def busy(self) -> int:
        return self.statuses.get(503, 0)

    @property
    def failed(self) -> int:
        return sum(self.statuses.values()) - self.ok - self.busy

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        k = (len(data) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def client_loop(http: httpx.AsyncClient, url: str, clip: bytes, name: str, run: Run, budget: dict) -> None:
    while True:
        if budget["left"] <= 0 or time.monotonic() > budget["deadline"]:
            return
        budget["left"] -= 1
        started = time.perf_counter()
        try:
            response = await http.post(url, files={"file": (name, clip, "video/mp4")})
            elapsed = time.perf_counter() - started
            run.statuses[response.status_code] += 1
            if response.status_code == 200:
                run.latencies.append(elapsed)
            elif response.status_code == 503:
                run.busy_latencies.append(elapsed)  # refused at once: the queue was full
                await asyncio.sleep(BUSY_BACKOFF)  # a polite client waits before retrying
            if response.status_code not in (200, 503):
                run.errors.append(f"{response.status_code}: {response.text[:200]}")
        except httpx.HTTPError as exc:
            run.statuses["transport error"] += 1
            run.errors.append(f"{type(exc).__name__}: {exc}")


async def load(url: str, clip_path: Path, run: Run, requests: int, time_limit: float) -> None:
    clip = clip_path.read_bytes()
    limits = httpx.Limits(max_connections=run.clients, max_keepalive_connections=run.clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        started = time.perf_counter()
        response = await http.post(url, files={"file": (clip_path.name, clip, "video/mp4")})
        response.raise_for_status()
        run.warmup = time.perf_counter() - started
        budget = {"left": requests, "deadline": time.monotonic() + time_limit}
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http, url, clip, clip_path.name, run, budget)
                               for _ in range(run.clients)))
        run.wall = time.perf_counter() - started


def bench(workers: int, args) -> Run:
    run = Run(workers=workers, queue=args.queue, clients=args.clients)
    port = free_port()
    upload_dir = Path(tempfile.mkdtemp(prefix="avemo-serve-bench-"))
    command = [sys.executable, "-m", "avemo.cli", "serve", "--port", str(port), "--workers", str(workers),
               "--queue", str(args.queue), "--upload-dir", str(upload_dir)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 180:
                raise SystemExit("the server did not start within 180 s")
            time.sleep(0.2)
        run.load_seconds = time.perf_counter() - started
        asyncio.run(load(base + "/v1/predict", args.clip, run, args.requests, args.time_limit))
        health = httpx.get(base + "/healthz", timeout=10).json()
        if health["queue"]["in_use"]:
            run.errors.append(f"{health['queue']['in_use']} slots still taken after the run")
        run.leaked_running = sorted(p.name for p in upload_dir.iterdir())
        run.peak_rss_mb = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    run.leaked_after = sorted(p.name for p in upload_dir.iterdir())
    if not run.leaked_after:
        upload_dir.rmdir()
    return run


def report(runs: list[Run], args, command: str) -> str:
    import torch

    from avemo.media import probe

    info = probe(args.clip)
    size_mb = args.clip.stat().st_size / 1e6
    lines = [
        "# Prediction service under load",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores, {platform.platform()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} (threads: {torch.get_num_threads()}), no GPU used; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other jobs on the machine share its cores).",
        "",
        f"Clip: `{args.clip.name}` ({info.duration:.1f} s, {size_mb:.1f} MB, "
        f"{info.video.width}x{info.video.height} H.264 + AAC), posted as multipart by {args.clients} concurrent "
        f"clients (httpx, one keep-alive connection each) to `avemo serve` on 127.0.0.1 with the bundled "
        f"model; at most {args.requests} requests or {args.time_limit:g} s per configuration, after one "
        "warm-up request. Latency = from sending the request to the full JSON answer (upload + queue wait "
        "+ prediction).",
        "",
        "| workers | queue | clients | requests | ok | 503 busy | errors | wall (s) | throughput (req/s) | media s per s "
        "| p50 latency (s) | p95 latency (s) | max (s) | warm-up (s) | start-up (s) | server peak RSS (MB) "
        "| uploads left |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        total = sum(r.statuses.values())
        thr = r.ok / r.wall if r.wall else float("nan")
        leaked = len(r.leaked_running) + len(r.leaked_after)
        lines.append(
            f"| {r.workers} | {r.queue} | {r.clients} | {total} | {r.ok} | {r.busy} | {r.failed} | {r.wall:.1f} | "
            f"{thr:.2f} | {thr * info.duration:.2f} | {r.percentile(0.5):.2f} | {r.percentile(0.95):.2f} | "
            f"{max(r.latencies, default=float('nan')):.2f} | {r.warmup:.2f} | {r.load_seconds:.1f} | "
            f"{r.peak_rss_mb or float('nan'):.0f} | {leaked} |"
        )
    problems = [f"- workers={r.workers}: {e}" for r in runs for e in r.errors[:5] if not e.startswith("503")]
    problems += [f"- workers={r.workers}: uploads left: {r.leaked_running + r.leaked_after}"
                 for r in runs if r.leaked_running or r.leaked_after]
    lines += ["", "Errors and leaks:" if problems else "No request failed, and no upload was left in the "
              "server's upload folder, neither during the run nor after the server stopped.", *problems]
    busy = [r for r in runs if r.busy]
    for r in busy:
        lines.append(f"With {r.clients} clients for {r.workers + r.queue} slots (workers={r.workers}), {r.busy} requests "
                     f"were refused with 503 in a median {statistics.median(r.busy_latencies) * 1000:.0f} ms.")
    lines += [
        "",
        "Reading it: the prediction threads share one loaded model; with more clients than workers the "
        "extra requests wait in the bounded queue (capacity = workers + queue), so latency grows with the "
        "queue while throughput is bounded by the CPU cores. Requests beyond the capacity get an "
        "immediate 503 (counted apart from errors; exercised only when clients > capacity).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="the clip to post (default: the 4 s RAVDESS clip)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=40, help="requests per configuration (upper bound)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per configuration (upper bound)")
    parser.add_argument("--workers", default="1,2", help="comma-separated prediction-thread counts to compare")
    parser.add_argument("--queue", type=int, default=4, help="queue size of the server")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "serve.md")
    parser.add_argument("--append", action="store_true", help="add this run's section to --out instead of replacing it")
    args = parser.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: clip not found")
    workers = [int(w) for w in args.workers.split(",")]
    if args.clients > min(workers) + args.queue:
        print(f"note: {args.clients} clients > capacity {min(workers) + args.queue}: expect 503s", file=sys.stderr)

    runs = []
    for w in workers:
        print(f"workers={w}: starting the server and the load...", file=sys.stderr)
        run = bench(w, args)
        print(f"workers={w}: {run.ok} ok, {run.busy} busy, {run.failed} failed, "
              f"p50 {run.percentile(0.5):.2f} s, p95 {run.percentile(0.95):.2f} s, {run.wall:.1f} s", file=sys.stderr)
        runs.append(run)
    command = "python benchmarks/serve_load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = report(runs, args, command.strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.is_file():
        text = args.out.read_text() + "\n" + text.replace("# Prediction service under load", "## Another configuration", 1)
    args.out.write_text(text)
    print(text)
    over = {r.workers: r.clients > r.workers + r.queue for r in runs}
    failed = any(r.failed or r.leaked_running or r.leaked_after or (r.busy and not over[r.workers]) for r in runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

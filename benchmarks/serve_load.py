"""Load benchmark of the prediction service on loopback: concurrent clients, and slow clients (slowloris).

For each ``--workers`` value it starts ``avemo serve`` in a subprocess (the real bundled model),
waits for ``/healthz``, sends one warm-up request, then lets ``--clients`` concurrent clients post
the clip until ``--requests`` requests were sent or ``--time-limit`` seconds passed (whichever
comes first). It reports throughput, p50/p95 latency, the status codes and errors, the server's
peak memory, and checks that no upload is left in the server's upload folder, neither while the
server still runs nor after it stopped.

Then the slow-client scenario, on a server with one worker and the default queue: ``--slow-clients``
clients each start an upload, send its first KiB and stall (as a slowloris attack does). With them
holding their connections, ``--slow-requests`` legitimate requests are sent one after the other;
their latency is compared with the same requests sent before the slow clients came. Legitimate
requests must get 200 within their normal latency, and every stalled upload must be cut off (408)
after the server's ``read_timeout``.

The section goes to ``docs/benchmarks/serve.md`` (through ``benchmarks/report.py``, which
assembles ``docs/benchmarks.md``); ``--out FILE`` writes it elsewhere, e.g. for a smoke run.

    python benchmarks/serve_load.py                      # 4 clients, 40 requests, workers 1 and 2; 5 slow clients
    python benchmarks/serve_load.py --clients 8 --requests 80 --workers 2 --queue 8

Exit status 1 when any request failed, an upload was left behind, or a legitimate request did
not get through the slow clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUSY_BACKOFF = 0.5  # seconds a client waits after a 503
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4"
BOUNDARY = "avemo-bench-boundary"


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
        return percentile(self.latencies, q)


@dataclass
class SlowRun:
    """The slow-client scenario: legitimate requests before and while ``slow`` uploads stall."""

    slow: int
    read_timeout: float
    before: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    uploading: int = 0  # the fewest stalled uploads the server held as a legitimate request started
    cut_off: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds) of stalled uploads answered
    leaked: list[str] = field(default_factory=list)

    @property
    def through(self) -> bool:
        return self.statuses.get(200, 0) == len(self.during) and max(self.during) <= 1.5 * max(self.before) + 0.5


def percentile(data: list[float], q: float) -> float:
    data = sorted(data)
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


@contextlib.contextmanager
def serving(workers: int, queue: int, upload_dir: Path):
    """``avemo serve`` in a subprocess; yields (base URL, process, start-up seconds); stops it with SIGINT."""
    port = free_port()
    command = [sys.executable, "-m", "avemo.cli", "serve", "--port", str(port), "--workers", str(workers),
               "--queue", str(queue), "--upload-dir", str(upload_dir)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.perf_counter() - started > 180:
                raise SystemExit("the server did not start within 180 s")
            time.sleep(0.2)
        yield base, server, time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# ----------------------------------------------------------------------------- concurrent clients
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
    upload_dir = Path(tempfile.mkdtemp(prefix="avemo-serve-bench-"))
    with serving(workers, args.queue, upload_dir) as (base, server, startup):
        run.load_seconds = startup
        asyncio.run(load(base + "/v1/predict", args.clip, run, args.requests, args.time_limit))
        health = httpx.get(base + "/healthz", timeout=10).json()
        if health["queue"]["in_use"]:
            run.errors.append(f"{health['queue']['in_use']} slots still taken after the run")
        run.leaked_running = sorted(p.name for p in upload_dir.iterdir())
        run.peak_rss_mb = peak_rss_mb(server.pid)
    run.leaked_after = sorted(p.name for p in upload_dir.iterdir())
    if not run.leaked_after:
        upload_dir.rmdir()
    return run


# ----------------------------------------------------------------------------- slow clients
async def stalled_upload(url: str, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Start a 100 MB upload, send ``head`` (its first KiB) and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {100 * 1024 * 1024}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode() + head)
    await writer.drain()
    return reader, writer


async def attacker(base: str, head: bytes, run: SlowRun, stop: asyncio.Event) -> None:
    """Keep one stalled upload open until ``stop``: when the server cuts it off, record its answer
    (status, seconds since the upload started) and start another one, as a real attacker would."""
    stopped = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        started = time.perf_counter()
        reader, writer = await stalled_upload(base, head)
        answer = asyncio.ensure_future(reader.readline())
        await asyncio.wait({answer, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            line = answer.result().split()
            run.cut_off.append((int(line[1]) if len(line) > 1 else 0, time.perf_counter() - started))
        else:
            answer.cancel()
        writer.close()


async def slow_scenario(base: str, clip_path: Path, run: SlowRun, requests: int) -> None:
    clip = clip_path.read_bytes()
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + clip[:1024]
    async with httpx.AsyncClient(timeout=600) as http:

        async def uploading() -> int:
            return (await http.get(base + "/healthz")).json()["queue"]["uploading"]

        async def legitimate() -> float:
            started = time.perf_counter()
            response = await http.post(base + "/v1/predict", files={"file": (clip_path.name, clip, "video/mp4")})
            run.statuses[response.status_code] += 1
            return time.perf_counter() - started

        await legitimate()  # warm-up
        run.before = [await legitimate() for _ in range(requests)]
        run.statuses.clear()
        stop = asyncio.Event()
        attackers = [asyncio.ensure_future(attacker(base, head, run, stop)) for _ in range(run.slow)]
        while await uploading() < run.slow:
            await asyncio.sleep(0.05)
        held = []
        for _ in range(requests):
            held.append(await uploading())  # the stalled uploads the server holds as this request starts
            run.during.append(await legitimate())
        run.uploading = min(held)
        await asyncio.sleep(run.read_timeout + 2)  # let the last stalled uploads be cut off once more
        stop.set()
        await asyncio.gather(*attackers)


def bench_slow(args) -> SlowRun:
    upload_dir = Path(tempfile.mkdtemp(prefix="avemo-serve-slow-"))
    with serving(1, args.queue, upload_dir) as (base, _server, _startup):
        run = SlowRun(slow=args.slow_clients, read_timeout=httpx.get(base + "/healthz").json()["limits"]["read_timeout"])
        asyncio.run(slow_scenario(base, args.clip, run, args.slow_requests))
    run.leaked = sorted(p.name for p in upload_dir.iterdir())
    if not run.leaked:
        upload_dir.rmdir()
    return run


# ----------------------------------------------------------------------------- report
def report(runs: list[Run], slow: SlowRun | None, args) -> list[str]:
    import torch

    from avemo.media import probe

    info = probe(args.clip)
    size_mb = args.clip.stat().st_size / 1e6
    lines = header("Prediction service under load", ("fastapi", "uvicorn"))
    lines += [
        f"Clip: `{args.clip.name}` ({info.duration:.1f} s, {size_mb:.1f} MB, "
        f"{info.video.width}x{info.video.height} H.264 + AAC), posted as multipart by {args.clients} concurrent "
        f"clients (httpx, one keep-alive connection each) to `avemo serve` on 127.0.0.1 with the bundled "
        f"model (torch threads: {torch.get_num_threads()}); at most {args.requests} requests or "
        f"{args.time_limit:g} s per configuration, after one warm-up request. Latency = from sending the request "
        "to the full JSON answer (upload + queue wait + prediction).",
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
    for r in (r for r in runs if r.busy):
        lines.append(f"With {r.clients} clients for {r.workers + r.queue} slots (workers={r.workers}), {r.busy} requests "
                     f"were refused with 503 in a median {statistics.median(r.busy_latencies) * 1000:.0f} ms.")
    lines += [
        "",
        "Reading it: the prediction threads share one loaded model; with more clients than workers the "
        "extra requests wait in the bounded queue (capacity = workers + queue), so latency grows with the "
        "queue while throughput is bounded by the CPU cores. Requests beyond the capacity get an "
        "immediate 503 (counted apart from errors; exercised only when clients > capacity).",
    ]
    if slow is not None:
        lines += slow_report(slow, args)
    return lines


def slow_report(slow: SlowRun, args) -> list[str]:
    statuses = Counter(status for status, _ in slow.cut_off)
    cut = [t for status, t in slow.cut_off if status == 408]
    return [
        "",
        f"### Slow clients: {slow.slow} stalled uploads",
        "",
        f"A server with 1 worker and queue {args.queue} (capacity {1 + args.queue}); {slow.slow} clients each start "
        "an upload, send its first KiB and then nothing, and start another one as soon as the server cuts one off "
        f"(slowloris). While the server holds their uploads (at least {slow.uploading} in `/healthz` as each "
        f"request starts), {len(slow.during)} legitimate requests are sent one after the other; the same "
        f"{len(slow.before)} requests sent before the slow clients came give the normal latency.",
        "",
        "| requests | ok | p50 latency (s) | max latency (s) |",
        "|---|---:|---:|---:|",
        f"| before the slow clients | {len(slow.before)} | {percentile(slow.before, 0.5):.2f} | {max(slow.before):.2f} |",
        f"| with {slow.slow} stalled uploads | {slow.statuses.get(200, 0)} | {percentile(slow.during, 0.5):.2f} | "
        f"{max(slow.during):.2f} |",
        "",
        f"Legitimate requests {'got through within their normal latency' if slow.through else 'did NOT get through'} "
        f"(all 200, slowest at most 1.5x the slowest before + 0.5 s). The stalled uploads were answered "
        f"{dict(statuses)} (408 = cut off), after {min(cut, default=float('nan')):.1f}-{max(cut, default=float('nan')):.1f} s "
        f"(the server's read_timeout is {slow.read_timeout:g} s); uploads left behind: {len(slow.leaked)}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="the clip to post (default: the 4 s RAVDESS clip)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=40, help="requests per configuration (upper bound)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per configuration (upper bound)")
    parser.add_argument("--workers", default="1,2", help="comma-separated prediction-thread counts to compare")
    parser.add_argument("--queue", type=int, default=4, help="queue size of the server (slow-client scenario too)")
    parser.add_argument("--slow-clients", type=int, default=5, help="stalled uploads in the slow-client scenario (0: skip)")
    parser.add_argument("--slow-requests", type=int, default=5, help="legitimate requests before and during the stall")
    parser.add_argument("--out", type=Path, default=None, help="write the section here instead of docs/benchmarks/serve.md")
    args = parser.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: clip not found")
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if workers and args.clients > min(workers) + args.queue:
        print(f"note: {args.clients} clients > capacity {min(workers) + args.queue}: expect 503s", file=sys.stderr)

    runs = []
    for w in workers:
        print(f"workers={w}: starting the server and the load...", file=sys.stderr)
        run = bench(w, args)
        print(f"workers={w}: {run.ok} ok, {run.busy} busy, {run.failed} failed, "
              f"p50 {run.percentile(0.5):.2f} s, p95 {run.percentile(0.95):.2f} s, {run.wall:.1f} s", file=sys.stderr)
        runs.append(run)
    slow = None
    if args.slow_clients > 0:
        print(f"slow clients: {args.slow_clients} stalled uploads...", file=sys.stderr)
        slow = bench_slow(args)
        print(f"slow clients: before {max(slow.before):.2f} s, during {max(slow.during):.2f} s, "
              f"statuses {dict(slow.statuses)}, stalled answered {slow.cut_off}", file=sys.stderr)
    lines = report(runs, slow, args)
    if args.out is not None:
        args.out.write_text("\n".join(lines).rstrip() + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(f"wrote {write_section('serve', lines)}", file=sys.stderr)
    over = {r.workers: r.clients > r.workers + r.queue for r in runs}
    failed = any(r.failed or r.leaked_running or r.leaked_after or (r.busy and not over[r.workers]) for r in runs)
    if slow is not None:
        failed = (failed or not slow.through or slow.leaked or not slow.cut_off
                  or any(status != 408 for status, _ in slow.cut_off))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

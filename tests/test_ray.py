"""Scaling out: the Ray executor and the local process pool.

* the Ray executor writes the same cache entries (keys and arrays) as the local executors,
  on real shared clips, and a private Ray instance is stopped afterwards;
* a worker killed in the middle of a run loses no finished work (Ray), or only the file it
  was working on (local pool); no partial entry or temporary file is left; a re-run computes
  only what is missing;
* the cross-validation benchmark gives the same fold results on Ray as locally;
* ``avemo extract --executor ray --address`` attaches to a cluster started with
  ``ray start --head`` (slow), and a wrong address is a one-line error.

Ray runs on loopback with 2 CPUs, started once for the tests that share it (fixture ``ray_cluster``).
Workers find this module's test extractors through ``PYTHONPATH`` (Ray) or the parent's
``sys.path`` (spawned pool processes), the way a user's own extractor module is found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avemo.cache import FeatureCache
from avemo.cache.store import remove_orphan_temp_files
from avemo.errors import CacheError, ConfigError, DatasetError
from avemo.extraction import ExtractorSpec, run_extraction
from avemo.extraction.executors import RayExecutor
from avemo.features.base import VideoExtractor, register_extractor

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SLOW_NAME = "test_ray_slow_rms"


# ----------------------------------------------------------------------------- test extractor


@dataclass(frozen=True)
class _SlowConfig:
    seconds: float = 0.3  # time spent per file, so that a kill lands in the middle of one
    log: str = ""  # append "start PID PATH" / "end PID PATH" lines here
    poison: str = ""  # a file whose name contains this kills its own worker (SIGKILL)
    fill_disk: str = ""  # the disk fills up just before the entry of a file whose name contains this is written


@register_extractor
class _SlowRms(VideoExtractor):
    """RMS of 25 ms frames of the audio, taking ``seconds`` per file and logging its progress.

    A ``VideoExtractor`` only so that ``extract(path)`` sees the path (for the log); it reads audio.
    """

    name = SLOW_NAME
    Config = _SlowConfig
    summary = "test extractor (tests/test_ray.py)"

    def feature_names(self):
        return ["rms"]

    def extract(self, path):
        from avemo.media import load_audio

        _log(self.config.log, "start", path)
        if self.config.poison and self.config.poison in Path(path).name:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.config.fill_disk and self.config.fill_disk in Path(path).name:
            _fill_disk_once()
        y = load_audio(path, sr=16000)
        time.sleep(self.config.seconds)
        n = len(y) // 400
        x = np.sqrt((y[: n * 400].reshape(n, 400) ** 2).mean(axis=1)).astype(np.float32)
        _log(self.config.log, "end", path)
        return {"x": x}


def _fill_disk_once() -> None:
    """The next cache write of this worker process fails with ENOSPC (the disk is full just then)."""
    import errno

    from avemo.cache import store

    real = store.os.fsync

    def full(fd):
        store.os.fsync = real  # once: the worker may be reused by a later test
        raise OSError(errno.ENOSPC, "No space left on device")

    store.os.fsync = full


def _log(log: str, event: str, path) -> None:
    if log:
        with open(log, "a") as fh:  # one small O_APPEND write per line: lines never interleave
            fh.write(f"{event} {os.getpid()} {path}\n")


def _events(log: Path) -> list[tuple[str, int, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().split("\n")[:-1]:  # complete lines only
        event, pid, path = line.split(" ", 2)
        out.append((event, int(pid), path))
    return out


def _kill_when(log: Path, choose, timeout: float = 120.0) -> dict:
    """Start a thread that SIGKILLs the worker ``choose(events)`` returns ((pid, path) or None)."""
    found: dict = {}

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = choose(_events(log))
            if hit is not None:
                found["pid"], found["path"] = hit
                os.kill(hit[0], signal.SIGKILL)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    found["thread"] = thread
    return found


def _busy(events) -> dict[int, str]:
    """pid -> the file it has started and not finished."""
    current: dict[int, str] = {}
    for event, pid, path in events:
        if event == "start":
            current[pid] = path
        else:
            current.pop(pid, None)
    return current


def _clips(make_clip, n: int, prefix: str) -> list[str]:
    return [str(make_clip(f"{prefix}{i:02d}.wav", duration=0.4, seed=1000 + i, pitch=120.0 + 7 * i))
            for i in range(n)]


def _check_cache_clean(root: Path) -> int:
    """Every file under ``root`` is a complete, loadable entry (no partial or temporary file)."""
    cache = FeatureCache(root)
    files = [p for p in root.rglob("*") if p.is_file()]
    for p in files:
        assert p.suffix == ".npz" and not p.name.startswith("."), f"stray file {p}"
        assert cache.get(p.stem) is not None, f"unreadable entry {p}"
    return len(files)


# ----------------------------------------------------------------------------- fixtures


def _ray_children() -> list:
    import psutil  # Ray brings it

    names = ("raylet", "gcs_server", "ray::")
    return [p for p in psutil.Process().children(recursive=True)
            if any(n in " ".join(p.cmdline() or [p.name()]) for n in names)]


def _alive(p) -> bool:
    try:
        return p.is_running() and p.status() != "zombie"
    except Exception:  # gone meanwhile
        return False


def _wait_gone(get, timeout: float = 60.0) -> list:
    """The processes ``get()`` lists that are still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    left = [p for p in get() if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in left if _alive(p)]
    return left


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray (2 CPUs, loopback) for the tests of this module; stopped at the end."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), saved["PYTHONPATH"]]))
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
                 log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if started:
            leftovers = _wait_gone(_ray_children)
            for p in leftovers:  # ours: started by ray.init above
                with contextlib.suppress(Exception):
                    p.kill()
            assert not leftovers, f"Ray processes left behind: {[p.pid for p in leftovers]}"


# ----------------------------------------------------------------------------- same results


def _entries(root: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for p in sorted(root.rglob("*.npz")):
        with np.load(p, allow_pickle=False) as data:
            out[p.relative_to(root).as_posix()] = {k: data[k] for k in data.files}
    return out


@pytest.mark.shared_data
def test_ray_writes_the_same_entries_as_local(shared_data, ravdess_video, crema_videos, tmp_path):
    """First in this file: it starts (and must stop) its own private Ray instance."""
    ray = pytest.importorskip("ray")
    files = sorted((shared_data / "emodb" / "wav").glob("*.wav"))
    files += sorted((shared_data / "ravdess" / "speech_audio" / "Actor_01").glob("*.flac"))[:3]
    files += [ravdess_video, crema_videos[0]]
    specs = ExtractorSpec.parse("mfcc,logmel,egemaps,face_crops")
    fresh = not ray.is_initialized()
    local = run_extraction(files, specs, cache=FeatureCache(tmp_path / "local"))
    remote = run_extraction(files, specs, cache=FeatureCache(tmp_path / "ray"), workers=2, executor="ray")
    assert remote.executor == "ray" and remote.workers == 2
    # face_crops fails on the audio files, the same way for both; everything else is computed
    assert [(o.path, o.computed, o.errors) for o in remote.outcomes] == [
        (o.path, o.computed, o.errors) for o in local.outcomes]
    assert remote.n_computed == 4 * len(files) - (len(files) - 2)
    a, b = _entries(tmp_path / "local"), _entries(tmp_path / "ray")
    assert len(a) == remote.n_computed
    assert list(b) == list(a)  # the same cache keys
    for key, arrays in a.items():
        assert set(b[key]) == set(arrays)
        for name, x in arrays.items():
            np.testing.assert_array_equal(b[key][name], x, err_msg=f"{key}:{name}")
    if fresh:  # the executor stopped the instance it started, and its processes are gone
        assert not ray.is_initialized()
        assert not _wait_gone(_ray_children)


def test_wrong_address_is_a_one_line_config_error(tmp_path, make_clip):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = make_clip("addr.wav", duration=0.3)
    cache = FeatureCache(tmp_path / "c")
    with pytest.raises(ConfigError) as err:
        run_extraction([clip], ExtractorSpec.parse("mfcc"), cache=cache, executor="ray", address=f"127.0.0.1:{port}")
    text = str(err.value)
    assert "\n" not in text and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in text
    assert f"ray start --head --port {port}" in text
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        run_extraction([clip], ExtractorSpec.parse("mfcc"), cache=cache, executor="ray", address="no-port-here")
    # "auto" stands for RAY_ADDRESS, else the cluster last started here: a head killed without `ray stop`
    # leaves its address behind, and Ray retried it for minutes
    with pytest.MonkeyPatch.context() as m:
        m.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        with pytest.raises(ConfigError) as err:
            run_extraction([clip], ExtractorSpec.parse("mfcc"), cache=cache, executor="ray", address="auto")
    text = str(err.value)  # Ray gives a loopback address as this machine's own
    assert text.startswith("cannot reach the Ray cluster at ") and f":{port} (what --address auto finds: RAY_ADDRESS" in text
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.npz"))


class _FakeRay:
    """A ``ray`` module whose ``init`` (unless not ``interrupt``) gets Ctrl-C while it starts a private instance."""

    def __init__(self, then_fails: bool, interrupt: bool = True):
        self.then_fails, self.interrupt, self.up, self.stopped = then_fails, interrupt, False, 0

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **kwargs) -> None:
        if self.interrupt:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group...
            time.sleep(0.05)
        if self.then_fails:  # ...and Ray's own processes: the start fails
            raise RuntimeError("Failed to connect to GCS")
        self.up = True

    def shutdown(self) -> None:
        self.stopped += 1
        self.up = False


@pytest.mark.parametrize("then_fails", [False, True])
def test_ctrl_c_while_the_private_instance_starts_stops_it(monkeypatch, then_fails):
    """Ctrl-C in the middle of ``ray.init`` left the half-started instance's agents running (no raylet
    to serve, no ``ray.shutdown``): Ctrl-C is held until the start ends, which ``ray.shutdown`` then
    undoes, and it stays a KeyboardInterrupt (avemo: interrupted), not a failed start."""
    import avemo.parallel as parallel

    fake = _FakeRay(then_fails)
    monkeypatch.setattr(parallel, "import_ray", lambda: fake)
    with pytest.raises(KeyboardInterrupt), parallel.ray_session(None, 2):
        pytest.fail("the block ran although Ctrl-C came while Ray started")
    assert fake.stopped >= 1 and not fake.up
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


#: what a raylet publishes to the driver when a worker dies (Ray 2.60), which Ray prints to stdout
_WORKER_DIED = ("A worker died or was killed while executing a task by an unexpected system "
                "error. To troubleshoot the problem, check the logs for the dead worker. Lease ID: 0600 Worker ID: "
                "2500 Node ID: c890 Worker IP address: 192.0.2.2 Worker port: 43175 Worker PID: 7672 Worker exit "
                "type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2.\n"
                "End of file. Some common causes include: (1) the process was killed by the OOM killer")


def test_a_dead_worker_is_one_warning_line_not_rays_paragraph(monkeypatch, capsys, caplog):
    """A worker that dies (its task is run again) was a paragraph on stdout, printed by the
    driver's error listener (``ray._private.worker.print_to_stdstream``): it is one warning line."""
    worker = pytest.importorskip("ray._private.worker")
    import avemo.parallel as parallel

    original = worker.print_to_stdstream
    monkeypatch.setattr(parallel, "import_ray", lambda: _FakeRay(then_fails=False, interrupt=False))
    with caplog.at_level("WARNING", logger="avemo.parallel"), parallel.ray_session(None, 2):
        worker.print_to_stdstream({"lines": [_WORKER_DIED], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert worker.print_to_stdstream is original
    out = capsys.readouterr()
    assert "worker died" not in out.out + out.err
    lines = [r.getMessage() for r in caplog.records if "worker died" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and len(lines[0]) <= 210, lines
    assert lines[0].startswith("Ray: A worker died or was killed while executing a task")


def test_an_address_where_something_else_answers_is_a_one_line_config_error(tmp_path, make_clip):
    """A port where a server of another kind listens (the dashboard's 8265 given for the head's 6379)
    is refused at once: Ray itself waited 40 s for a cluster ID there, twenty times, printing a line a
    second."""
    pytest.importorskip("ray")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_http() -> None:  # an HTTP/1 server: it answers anything with a 400
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(64)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    threading.Thread(target=answer_http, daemon=True).start()
    clip = make_clip("addr.wav", duration=0.3)
    cache = FeatureCache(tmp_path / "c")
    try:
        for address, hint in ((f"127.0.0.1:{port}", "8265 is the dashboard's"),
                              (f"ray://127.0.0.1:{port}", "Ray Client server (10001 by default)")):
            with pytest.raises(ConfigError) as err:  # by the probe: Ray itself retried for over ten minutes
                run_extraction([clip], ExtractorSpec.parse("mfcc"), cache=cache, executor="ray", address=address)
            text = str(err.value)
            assert "\n" not in text and f"{address} answers, but is no Ray cluster" in text
            assert "'HTTP/1.1 400 Bad Request'" in text and hint in text
    finally:
        server.close()


def test_a_fully_cached_run_says_ray_was_not_needed(avemo_main, tmp_path, make_clip):
    """A warm re-run with --executor ray has nothing to compute: it succeeds without contacting the
    cluster (a warm re-run needs none), but it said nothing of it, so that a wrong --address went
    unnoticed behind a summary that named ray as the executor."""
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip, cache = make_clip("warm.wav", duration=0.3), tmp_path / "c"
    code, _, err = avemo_main("extract", clip, "-f", "mfcc", "--cache", cache)
    assert code == 0 and "Ray" not in err
    code, out, err = avemo_main("extract", clip, "-f", "mfcc", "--cache", cache, "--executor", "ray",
                                "--address", f"127.0.0.1:{port}")
    assert code == 0 and "0 computed, 1 from cache" in out
    assert (f"every file's features were in the cache: Ray was not needed, the cluster at 127.0.0.1:{port} "
            "was not contacted (nor its address checked)") in err.splitlines()


def test_sending_the_local_token_says_nothing(tmp_path):
    """Every run with --address printed Ray's "Token authentication is enabled for this Ray cluster. Set
    RAY_AUTH_MODE=disabled to opt out." when this machine has a token: said of a cluster it had not
    reached yet (one without authentication accepts the token too), and no news to the user."""
    pytest.importorskip("ray")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0123456789abcdef" * 4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    code = ("import os; from avemo.parallel import _enable_token_auth_if_available as f; f(); "
            "print(os.environ.get('RAY_AUTH_MODE'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**env, "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "token" and "Token authentication" not in res.stderr


# ----------------------------------------------------------------------------- fault tolerance


def test_ray_worker_killed_mid_run_loses_no_finished_work(ray_cluster, make_clip, tmp_path):
    paths = _clips(make_clip, 12, "kill")
    log = tmp_path / "events.log"
    spec = ExtractorSpec.of(SLOW_NAME, seconds=0.3, log=str(log))
    executor = RayExecutor(chunk_size=3, max_retries=3)
    chunk_of = {p: i // 3 for i, p in enumerate(paths)}

    def finished_one_and_busy_with_the_next(events):
        # a worker that has finished file X and started file Y of the same chunk
        last: dict[int, tuple[str, str]] = {}
        prev: dict[int, tuple[str, str]] = {}
        for event, pid, path in events:
            prev[pid], last[pid] = last.get(pid, ("", "")), (event, path)
        for pid, (event, path) in last.items():
            before = prev[pid]
            if event == "start" and before[0] == "end" and chunk_of[before[1]] == chunk_of[path]:
                return pid, path
        return None

    killer = _kill_when(log, finished_one_and_busy_with_the_next)
    report = run_extraction(paths, [spec], cache=FeatureCache(tmp_path / "c"), executor=executor)
    killer["thread"].join(timeout=5)
    assert "pid" in killer, "no worker was caught between two files of a chunk"
    killed_path = killer["path"]
    events = _events(log)
    done_by_dead = [p for e, pid, p in events if e == "end" and pid == killer["pid"]]
    assert done_by_dead, "the killed worker had finished a file"
    # the run completed: Ray re-ran the lost task, which found what the dead worker had finished
    assert not report.failed
    by_path = {o.path: o for o in report.outcomes}
    assert len(by_path) == len(paths)
    assert by_path[killed_path].computed == [SLOW_NAME]
    assert by_path[done_by_dead[-1]].cached == [SLOW_NAME]
    # each file's features were stored once in this run and are complete; no temporary file is left
    assert _check_cache_clean(tmp_path / "c") == len(paths)
    assert sum(1 for e, _, p in events if e == "end" and p == done_by_dead[-1]) == 1
    again = run_extraction(paths, [spec], cache=FeatureCache(tmp_path / "c"), executor=executor)
    assert again.n_computed == 0 and again.n_cached == len(paths)


def test_interrupted_ray_run_then_rerun_computes_only_what_is_missing(ray_cluster, make_clip, tmp_path):
    paths = _clips(make_clip, 12, "stop")
    spec = ExtractorSpec.of(SLOW_NAME, seconds=0.2)
    root = tmp_path / "c"
    run = RayExecutor(chunk_size=2).run(paths, (spec,), str(root))
    first = next(run)  # the first chunk is done...
    run.close()  # ...and the run is interrupted (tasks cancelled; closing waits for them)
    assert first.ok
    cache = FeatureCache(root)
    ex = spec.build()
    from avemo.cache import file_digest

    present = [p for p in paths if cache.get(cache.key(file_digest(p), ex.cache_spec())) is not None]
    assert 2 <= len(present) < len(paths)
    remove_orphan_temp_files(root)
    assert _check_cache_clean(root) == len(present)
    report = run_extraction(paths, [spec], cache=cache, executor="ray")
    assert not report.failed
    assert report.n_cached == len(present) and report.n_computed == len(paths) - len(present)
    assert {o.path for o in report.outcomes if o.cached} == set(present)


def test_ray_brings_back_the_decoders_lines_and_stores_them_with_the_features(ray_cluster, make_clip, tmp_path):
    """A truncated WAV computed on Ray warns as in-process and in a pool (the lines come back with the
    outcome, not in a worker's log), and a rerun that reads its features from the cache says so."""
    whole = make_clip("ray_whole.wav", duration=1.0, seed=90).read_bytes()
    cut, clean = tmp_path / "ray_cut.wav", str(make_clip("ray_clean.wav", duration=1.0, seed=91))
    cut.write_bytes(whole[: len(whole) // 2])
    spec, cache = ExtractorSpec.of(SLOW_NAME, seconds=0.0), FeatureCache(tmp_path / "c")
    first = run_extraction([str(cut), clean], [spec], cache=cache, executor=RayExecutor(chunk_size=1))
    assert first.n_computed == 2 and first.warnings == [
        f"{cut}: truncated or damaged: the header declares 1.00 s of audio, only 0.50 s could be decoded"]
    again = run_extraction([str(cut), clean], [spec], cache=cache, executor="ray")
    assert again.n_cached == 2 and again.warnings == [
        f"1 file(s) have features from the cache that were made from partly decoded audio or video (the decoder "
        f"warned when they were made; the features are of what decoded): {cut}"]


def test_ray_poison_file_fails_alone(ray_cluster, make_clip, tmp_path):
    """A file that kills its worker every time: its chunk is split, the others complete."""
    paths = [str(make_clip(f"{name}.wav", duration=0.3, seed=s)) for s, name in enumerate(("p_a", "p_poison", "p_b"))]
    spec = ExtractorSpec.of(SLOW_NAME, seconds=0.05, poison="poison")
    report = run_extraction(paths, [spec], cache=FeatureCache(tmp_path / "c"),
                            executor=RayExecutor(chunk_size=3, max_retries=0))
    by_name = {Path(o.path).stem.split("_", 1)[1]: o for o in report.outcomes}
    assert [Path(o.path).name.split("_", 1)[1] for o in report.failed] == ["p_poison.wav"]
    assert "Ray task failed" in by_name["p_poison"].errors[SLOW_NAME]
    assert by_name["p_a"].cached == [SLOW_NAME]  # finished before the crash: kept, not redone
    assert by_name["p_b"].computed == [SLOW_NAME]
    assert _check_cache_clean(tmp_path / "c") == 2


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_a_full_disk_stops_the_run_at_once(request, make_clip, tmp_path, executor):
    """A worker that cannot write the cache stops the whole run with the cache's error (every file
    would fail the same way), instead of each file failing on its own; what was written stays whole."""
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    paths = [str(make_clip(f"disk{i}{'_full' * (i == 2)}.wav", duration=0.3, seed=70 + i)) for i in range(8)]
    spec = ExtractorSpec.of(SLOW_NAME, seconds=0.3, fill_disk="_full")
    # Ray: one task for all files, so that no other task is cancelled half-way through its imports
    # (that would break the shared workers for the later tests), and without the fix the chunk would
    # be split and its unfinished files tried one per task
    options = {"workers": 2} if executor == "pool" else {"executor": RayExecutor(chunk_size=8, max_retries=0)}
    with pytest.raises(CacheError, match=r"\.npz: cannot write cache entry \(No space left on device\)$"):
        run_extraction(paths, [spec], cache=FeatureCache(tmp_path / "c"), **options)
    assert 1 <= _check_cache_clean(tmp_path / "c") < len(paths) - 1  # stopped early; what was written is whole


def test_pool_worker_killed_fails_only_its_file(make_clip, tmp_path):
    paths = _clips(make_clip, 10, "pool")
    log = tmp_path / "events.log"
    spec = ExtractorSpec.of(SLOW_NAME, seconds=0.3, log=str(log))
    me = os.getpid()

    def a_busy_worker(events):
        busy = {pid: path for pid, path in _busy(events).items() if pid != me}
        return next(iter(busy.items()), None)

    killer = _kill_when(log, a_busy_worker)
    cache = FeatureCache(tmp_path / "c")
    report = run_extraction(paths, [spec], cache=cache, workers=2)
    killer["thread"].join(timeout=5)
    assert "pid" in killer
    assert [o.path for o in report.failed] == [killer["path"]]
    reason = report.failed[0].errors[SLOW_NAME]
    assert "worker process died while extracting this file (killed by SIGKILL)" == reason
    assert report.n_computed == len(paths) - 1  # a new worker took over the rest
    assert _check_cache_clean(tmp_path / "c") == len(paths) - 1
    again = run_extraction(paths, [spec], cache=cache)  # in this process: no pool to start again
    assert not again.failed and again.n_computed == 1 and again.n_cached == len(paths) - 1
    assert [o.path for o in again.outcomes if o.computed] == [killer["path"]]


def test_orphan_temp_files_are_swept(tmp_path):
    import socket as sk

    cache = FeatureCache(tmp_path / "c")
    entry = cache.put(cache.key("f", {"name": "x"}), {"x": np.ones(3)})
    folder = tmp_path / "c" / ".tmp"
    assert folder.is_dir() and not any(folder.iterdir())  # a completed write leaves nothing
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = sk.gethostname().replace(".", "_")
    names = {
        "dead": f"{entry.name}.{host}.{dead.pid}.0000aaaa.tmp",
        "live": f"{entry.name}.{host}.{os.getpid()}.0000bbbb.tmp",
        "remote_new": f"{entry.name}.elsewhere.{dead.pid}.0000cccc.tmp",
        "remote_old": f"{entry.name}.elsewhere.{dead.pid}.0000dddd.tmp",
    }
    for name in names.values():
        (folder / name).write_bytes(b"half an entry")
    old = time.time() - 7200
    os.utime(folder / names["remote_old"], (old, old))
    removed = {p.name for p in remove_orphan_temp_files(tmp_path / "c")}
    assert removed == {names["dead"], names["remote_old"]}
    assert sorted(p.name for p in folder.iterdir()) == sorted([names["live"], names["remote_new"]])
    assert remove_orphan_temp_files(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- benchmark


@pytest.mark.shared_data
def test_benchmark_folds_are_the_same_on_ray(ray_cluster, ravdess_speech_root, au_table, tmp_path):
    from avemo.datasets.folds import make_plan
    from avemo.evaluation.benchmark import BenchmarkEntry, plan_splits, run_benchmark
    from avemo.training.config import TrainConfig
    from avemo.training.experiment import load_data

    data = load_data("ravdess", ravdess_speech_root, visual_table=au_table, speakers=["01", "02", "04", "05"])
    splits = plan_splits(data, list(make_plan(data.speakers, 2, n_val=1)))
    entries = [BenchmarkEntry("au", "au_mlp", seeds=(0, 1)), BenchmarkEntry("au_small", "au_mlp",
                                                                            train={"lr": 3e-3})]
    kw = dict(cache=FeatureCache(tmp_path / "c"), train_config=TrainConfig(epochs=2), workers=2)
    local = run_benchmark(entries, data, splits, executor="local", **kw)
    remote = run_benchmark(entries, data, splits, executor="ray", **kw)
    assert remote["executor"] == "ray"
    for name in ("au", "au_small"):
        assert remote["models"][name]["fold_accuracy"] == local["models"][name]["fold_accuracy"]
        assert remote["models"][name]["confusion"] == local["models"][name]["confusion"]
        for a, b in zip(local["_folds"][name], remote["_folds"][name], strict=True):
            assert (a.entry, a.fold) == (b.entry, b.fold)
            np.testing.assert_array_equal(a.probabilities, b.probabilities)
            assert a.best_epochs == b.best_epochs and a.history == b.history


def _tenfold_or_fail(x: int) -> int:
    if x == 2:
        raise DatasetError("no labelled takes", "/data/fold2")
    return 10 * x


def test_ray_map_keeps_task_order_and_raises_avemo_errors_as_they_are(ray_cluster):
    from avemo.parallel import ray_map

    seen = []
    assert list(ray_map(_tenfold_or_fail, [(3,), (1,), (4,)], progress=seen.append)) == [30, 10, 40]
    assert sorted(seen) == [10, 30, 40]
    with pytest.raises(DatasetError) as err:
        list(ray_map(_tenfold_or_fail, [(1,), (2,)]))
    assert str(err.value) == "/data/fold2: no labelled takes"  # one line, no remote traceback


# ----------------------------------------------------------------------------- a running cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_attaches_to_a_running_cluster(tmp_path, make_clip):
    """``ray start --head`` in a subprocess, ``avemo extract --executor ray --address`` against it."""
    pytest.importorskip("ray")
    import psutil

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(6):
        shutil.copy(make_clip(f"head{i}.wav", duration=0.5, seed=2000 + i), clips / f"head{i}.wav")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="avemo-ray-", dir="/tmp")  # short: Ray's socket paths are limited
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
         "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", temp_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, "ray start --head exited"
                assert time.monotonic() < deadline, "the Ray head did not open its port"
                time.sleep(0.5)
        summary = tmp_path / "summary.json"
        res = subprocess.run(
            [sys.executable, "-m", "avemo.cli", "extract", str(clips), "--features", "mfcc,logmel",
             "--executor", "ray", "--address", f"127.0.0.1:{port}", "--cache", str(tmp_path / "remote"),
             "--summary", str(summary)],
            capture_output=True, text=True, timeout=400, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        )
        assert res.returncode == 0, res.stderr[-2000:]
        got = json.loads(summary.read_text())
        assert got["executor"] == "ray" and got["workers"] == 2 and got["computed"] == 12 and not got["failed"]
        local = run_extraction(sorted(clips.iterdir()), ExtractorSpec.parse("mfcc,logmel"),
                               cache=FeatureCache(tmp_path / "local"))
        assert local.n_computed == 12
        a, b = _entries(tmp_path / "local"), _entries(tmp_path / "remote")
        assert list(a) == list(b)
        for key in a:
            np.testing.assert_array_equal(a[key]["x"], b[key]["x"])
    finally:  # stop the head and everything it started (workers have their own sessions)
        family = []
        with contextlib.suppress(psutil.NoSuchProcess):
            family = psutil.Process(head.pid).children(recursive=True)
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        for p in _wait_gone(lambda: family, timeout=30):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.shared_data
def test_benchmark_out_of_domain_scores_are_the_same_on_ray(ray_cluster, ravdess_speech_root, au_table, shared_data,
                                                           tmp_path):
    """--test-corpus with --executor ray: each Ray task gets the test corpus and scores its run there."""
    from avemo.datasets.folds import make_plan
    from avemo.evaluation.benchmark import BenchmarkEntry, OodCorpus, plan_splits, run_benchmark
    from avemo.training.config import TrainConfig
    from avemo.training.experiment import load_data

    data = load_data("ravdess", ravdess_speech_root, visual_table=au_table, speakers=["01", "02", "04", "05"])
    data = dataclasses.replace(data, takes=data.takes[::8])
    emodb_root = tmp_path / "emodb"
    emodb_root.mkdir()
    for f in sorted((shared_data / "emodb_dev" / "wav").glob("*.flac"))[:12]:
        (emodb_root / f.name).symlink_to(f)
    ood = [OodCorpus("emodb", load_data("emodb", emodb_root))]
    splits = plan_splits(data, list(make_plan(data.speakers, 2, n_val=1)))
    entries = [BenchmarkEntry("mfcc", "mfcc_cnn1d"), BenchmarkEntry("au", "au_mlp")]
    kw = dict(cache=FeatureCache(tmp_path / "c"), train_config=TrainConfig(epochs=1), workers=2, ood=ood)
    local = run_benchmark(entries, data, splits, executor="local", **kw)
    remote = run_benchmark(entries, data, splits, executor="ray", **kw)
    assert remote["out_of_domain"] == local["out_of_domain"]
    assert remote["models"]["mfcc"]["out_of_domain"] == local["models"]["mfcc"]["out_of_domain"]
    assert remote["models"]["mfcc"]["out_of_domain"]["emodb"]["status"] == "scored"
    assert remote["models"]["au"]["out_of_domain"]["emodb"]["status"] == "n/a"

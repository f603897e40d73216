"""Throughput of ``python -m translators serve`` under a real load tool, on loopback.

The server runs as a subprocess on a free port with no ``CHANNEL_*`` settings, so it serves its
default channels ``slack``, ``teams`` and ``teams-messagecard``, which deliver over HTTP to the
inbox inside the same server. A POST to ``/api/bitrise/slack+teams+teams-messagecard`` is parsed,
translated, rendered three times and delivered three times over loopback before it is answered:
each request the load tool counts is four HTTP exchanges for the server (two with one channel).
One more scenario delivers to a second ``serve`` instead (its inbox, on the same CPUs), so that
the server under test does only its own side of each delivery.

The load tool is ``wrk`` (Debian package ``wrk``; installed with apt-get when it is missing and we
are root). Only when wrk cannot be had does a Python load generator (threads, keep-alive
``http.client``) stand in, and the table says so: it is much slower than wrk and may be the limit.
New TCP connections during each run are counted from the kernel (Linux ``/proc/net/snmp``), to
show whether the load tool's and the deliveries' connections are kept alive.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "post.lua"
APP_SETTING_PREFIXES = ("CHANNEL_", "TEMPLATES_DIR", "WEBHOOK_TOKEN", "MAX_BODY_BYTES", "STATE_", "DELIVERY_")
FAN_OUT = "slack+teams+teams-messagecard"
#: The target for ``serve --workers 2`` on two cores: 1.3x the best of prom2teams under uWSGI
#: measured on this machine (692 requests/s, issue 17).
MIN_RPS = 900.0
TARGET_WORKERS = 2
SELF = "own /inbox"
OTHER = "another serve"
#: A channel rate high enough that pacing never queues the load (the settings' maximum).
UNPACED = "100000"
#: The channel of the server that delivers to another serve (configured, so no inbox channels).
REMOTE_CHANNEL = "remote"


@dataclass
class Result:
    scenario: str
    tool: str
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    checks: list[str] = field(default_factory=list)
    inbox_received: int | None = None
    channels: int = 1
    #: CPU time (user + system) the server process used during the run; -1 where unknown.
    server_cpu_s: float = -1.0
    #: In-process profile of the pipeline delivering to the server: ms per request, shares.
    profile_ms: float = float("nan")
    profile: list[tuple[str, float]] = field(default_factory=list)
    #: Where the deliveries went: the server's own inbox, or another serve's.
    destination: str = SELF
    #: CPU time of that other serve during the run; -1 where unknown or the same process.
    destination_cpu_s: float = -1.0
    #: TCP connections the machine accepted during the run (all of loopback), None where unknown.
    new_connections: int | None = None
    #: ``serve --workers``: processes serving the port.
    workers: int = 1
    #: Requests/s of every round of this scenario, in the order run; this result is the median one.
    rounds_rps: tuple[float, ...] = ()
    #: Resident MiB after the run: the serving process, then each worker (serve --workers).
    rss_mib: tuple[float, ...] = ()

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.seconds if self.server_cpu_s >= 0 else float("nan")

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


# ---------------------------------------------------------------------------------------------
# The load tool


def find_wrk(install: bool = True) -> tuple[str | None, str]:
    """wrk's path (installing the Debian package when root), or None and why not."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk"
    if not install:
        return None, "wrk is not on PATH (--no-install)"
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return None, "wrk is not on PATH and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_wrk = ["apt-get", "install", "-y", "-q", "wrk"]
    subprocess.run(install_wrk, env=env, capture_output=True, timeout=600, check=False)
    if not shutil.which("wrk"):  # a fresh image may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        subprocess.run(install_wrk, env=env, capture_output=True, timeout=600, check=False)
    found = shutil.which("wrk")
    return (found, "wrk (installed now with apt-get)") if found else (None, "apt-get install wrk failed")


def run_wrk(
    wrk: str,
    url: str,
    body_path: Path,
    headers: Mapping[str, str],
    marker: str | None,
    tag: str,
    seconds: float,
    connections: int,
    threads: int,
    cpus: set[int] | None,
) -> dict[str, Any]:
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(body_path),
        marker or "-",
        tag,
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=_affinity(cpus),  # no threads run in this process yet
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{"))
    report: dict[str, Any] = json.loads(line)
    return report


def run_python_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    marker: str | None,
    tag: str,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """The fallback: ``connections`` threads, each one keep-alive connection, for ``seconds``."""
    quoted = json.dumps(marker).encode() if marker else b""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    non_2xx = [0] * connections
    socket_errors = [0] * connections
    send_headers = {"Content-Type": "application/json", **headers}
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        count = 0
        while time.perf_counter() < deadline:
            count += 1
            unique = quoted[:-1] + f"-{tag}-{i}-{count}".encode() + b'"' if quoted else b""
            data = body.replace(quoted, unique) if quoted else body
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=data, headers=send_headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                socket_errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            latencies[i].append(time.perf_counter() - started)
            if not 200 <= response.status < 300:
                non_2xx[i] += 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for per in latencies for x in per)
    q = statistics.quantiles(every, n=100, method="inclusive") if len(every) > 1 else [0.0] * 99
    return {
        "requests": len(every),
        "duration_us": elapsed * 1e6,
        "status": sum(non_2xx),
        "connect": 0,
        "read": sum(socket_errors),
        "write": 0,
        "timeout": 0,
        "p50_us": q[49] * 1e6,
        "p99_us": q[98] * 1e6,
    }


# ---------------------------------------------------------------------------------------------
# The server


def event_marker(sample: Any) -> str | None:
    """The longest string of the sample that its event id is made of, or None.

    Varied per request it makes each request a distinct event; the same body posted again would
    be a redelivery, which memory answers as a duplicate without delivering.
    """
    from translators import sources

    source = sources.get(sample.source)
    payload = json.loads(sample.body())
    result = source.translate(payload, {k.lower(): v for k, v in sample.headers.items()}) if source else None
    event_id = getattr(result, "event_id", None)
    if not event_id:
        return None
    found: list[str] = []
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and len(node) >= 4 and node in event_id:
            found.append(node)
    return max(found, key=len, default=None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _affinity(cpus: set[int] | None) -> Any:
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def serving(
    log_level: str, cpus: set[int] | None, app_settings: Mapping[str, str] | None = None, workers: int = 1
) -> Iterator[tuple[int, int]]:
    """``python -m translators serve`` on a free port: (port, pid).

    With no ``app_settings`` it has its default inbox channels. App settings of the environment are
    left out (a real ``CHANNEL_*_URL`` would receive the load); memory goes to a scratch SQLite
    file, not the project's ``.state``.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTING_PREFIXES)}
    # No pacing: the inbox is not a chat tool with a rate limit, and pacing would queue the load in
    # the outbox instead of delivering it (the answers checked would say "queued").
    env.update({f"CHANNEL_{name}_RATE": UNPACED for name in ("SLACK", "TEAMS", "TEAMS_MESSAGECARD")})
    env.update(app_settings or {})
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        env["STATE_STORE"] = f"sqlite:///{Path(tmp) / 'state.db'}"
        # An empty settings file, so that a local.settings.json in the working directory (which may
        # name real chat channels) is not read.
        settings = Path(tmp) / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        log_path = Path(tmp) / "serve.log"
        argv = [sys.executable, "-m", "translators", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--settings", str(settings), "--log-level", log_level, "--workers", str(workers)]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_affinity(cpus),  # no threads run in this process yet
            )
            try:
                _wait_until_up(port, proc, log_path)
                yield port, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_until_up(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            status, _ = _request(port, "GET", "/api/health")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"serve did not answer /api/health within {timeout:.0f} s")


def _request(
    port: int, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


def check_answers(
    port: int, path: str, body: bytes, headers: Mapping[str, str], marker: str | None, tag: str, n: int = 3
) -> list[str]:
    """POST the sample ``n`` times as distinct events; a problem per answer not 200 delivered everywhere."""
    problems = []
    send = {"Content-Type": "application/json", **headers}
    quoted = json.dumps(marker).encode() if marker else b""
    for i in range(n):
        data = body.replace(quoted, quoted[:-1] + f"-{tag}-{i}".encode() + b'"') if quoted else body
        status, answer = _request(port, "POST", path, data, send)
        channels = answer.get("channels", []) if isinstance(answer, dict) else []
        outcome = answer.get("status") if isinstance(answer, dict) else None
        if status != 200 or outcome != "delivered" or any(c.get("status") != "delivered" for c in channels):
            problems.append(f"{status} {outcome}: {json.dumps(answer)[:300]}")
    return problems


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, its threads and its worker processes (Linux /proc),
    -1 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat
    return own + sum(max(cpu_seconds(child), 0.0) for child in children(pid))


def resident_mib(pid: int) -> list[float]:
    """Resident memory (``VmRSS``) of a process and of each of its worker processes, in MiB
    (Linux /proc); empty elsewhere."""
    sizes = []
    for each in (pid, *children(pid)):
        try:
            lines = Path(f"/proc/{each}/status").read_text().splitlines()
        except OSError:
            continue
        sizes += [int(ln.split()[1]) / 1024 for ln in lines if ln.startswith("VmRSS:")]
    return sizes


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def inbox_received(port: int) -> int | None:
    status, answer = _request(port, "GET", "/inbox")
    if status == 200 and isinstance(answer, dict) and isinstance(answer.get("received"), int):
        received: int = answer["received"]
        return received
    return None


def tcp_passive_opens() -> int | None:
    """TCP connections accepted so far by the whole machine (Linux), None elsewhere."""
    try:
        lines = [
            ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Tcp:")
        ]
        return int(lines[1][lines[0].index("PassiveOpens")])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# One run


def cpu_split() -> tuple[set[int] | None, set[int] | None, str]:
    """Two CPUs for the server, the rest (if any) for the load tool, and a note saying so."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None, "not pinned"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= 2:
        return None, None, f"server and load tool share the machine's {len(cpus)} CPU(s)"
    server, load = set(cpus[:2]), set(cpus[2:])
    return server, load, f"server pinned to CPUs {sorted(server)}, load tool to CPUs {sorted(load)}"


def run(
    seconds: float = 10.0,
    connections: int = 8,
    threads: int = 1,
    scenarios: tuple[str, ...] = (FAN_OUT, "slack"),
    remote: tuple[str, ...] = ("slack",),
    sample_id: str = "bitrise/build-failed",
    log_level: str = "info",
    install: bool = True,
    tool: str = "auto",
    workers: tuple[int, ...] = (1, TARGET_WORKERS),
    rounds: int = 1,
) -> tuple[list[Result], str]:
    """Each of ``scenarios`` (channels) delivers to the server's own inbox; each of ``remote`` (a
    format) is one channel delivering to another serve's inbox.

    ``rounds``: every scenario runs that many times, the rounds one after the other (so that a
    burst of other work on the machine falls on one round of each, not on all rounds of one);
    each scenario's result is its round with the median requests/s.
    """
    from translators import samples

    sample = samples.get(sample_id)
    marker = event_marker(sample)
    wrk, tool_note = find_wrk(install) if tool != "python" else (None, "python chosen with --load-tool")
    server_cpus, load_cpus, cpu_note = cpu_split()
    if wrk is None and tool == "wrk":
        raise RuntimeError(f"--load-tool wrk: {tool_note}")
    tool_name = "wrk" if wrk else "python http.client threads (fallback: slower than wrk, may be the limit)"

    def measure(
        port: int, pid: int, channels: str, formats: str, dest_port: int, dest_pid: int | None, count: int = 1
    ) -> Result:
        """One scenario: POST to ``channels``, which deliver in ``formats`` to the inbox at ``dest_port``."""
        path = f"/api/{sample.source}/{channels}"
        tag = f"load{len(results)}"
        checks = check_answers(port, path, sample.body(), sample.headers, marker, f"before-{tag}")
        received_before = inbox_received(dest_port)
        cpu_before = cpu_seconds(pid)
        dest_before = cpu_seconds(dest_pid) if dest_pid else -1.0
        opens_before = tcp_passive_opens()
        if wrk:
            report = run_wrk(
                wrk,
                f"http://127.0.0.1:{port}{path}",
                sample.path,
                sample.headers,
                marker,
                tag,
                seconds,
                connections,
                threads,
                load_cpus,
            )
        else:
            report = run_python_load(
                "127.0.0.1", port, path, sample.body(), sample.headers, marker, tag, seconds, connections
            )
        cpu_used = cpu_seconds(pid) - cpu_before if cpu_before >= 0 else -1.0
        rss = tuple(resident_mib(pid))
        dest_used = cpu_seconds(dest_pid) - dest_before if dest_pid and dest_before >= 0 else -1.0
        opens_after = tcp_passive_opens()
        time.sleep(0.5)  # let deliveries of requests wrk gave up on at the end land in the inbox
        received_after = inbox_received(dest_port)
        checks += check_answers(port, path, sample.body(), sample.headers, marker, f"after-{tag}")
        profile_ms, profile = profile_pipeline(dest_port, sample, marker, formats)
        elapsed = report["duration_us"] / 1e6
        received = (
            received_after - received_before
            if received_after is not None and received_before is not None
            else None
        )
        return Result(
            scenario=f"{sample.source}/{formats}",
            tool=tool_name,
            seconds=elapsed,
            requests=int(report["requests"]),
            rps=report["requests"] / elapsed,
            p50_ms=report["p50_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            non_2xx=int(report["status"]),
            socket_errors=sum(int(report[k]) for k in ("connect", "read", "write", "timeout")),
            checks=checks,
            inbox_received=received,
            channels=formats.count("+") + 1,
            server_cpu_s=cpu_used,
            profile_ms=profile_ms,
            profile=profile,
            destination=SELF if dest_pid is None else OTHER,
            destination_cpu_s=dest_used,
            new_connections=(
                opens_after - opens_before if opens_after is not None and opens_before is not None else None
            ),
            workers=count,
            rss_mib=rss,
        )

    results: list[Result] = []
    for _ in range(rounds):
        for count in workers:
            with serving(log_level, server_cpus, workers=count) as (port, pid):
                for channels in scenarios:
                    results.append(measure(port, pid, channels, channels, port, None, count))
        for fmt in remote:
            # The other serve is pinned like the server: both sides of each delivery share its CPUs.
            with serving(log_level, server_cpus) as (dest_port, dest_pid):
                settings = {
                    f"CHANNEL_{REMOTE_CHANNEL.upper()}_URL": f"http://127.0.0.1:{dest_port}/inbox/{fmt}",
                    f"CHANNEL_{REMOTE_CHANNEL.upper()}_FORMAT": fmt,
                    f"CHANNEL_{REMOTE_CHANNEL.upper()}_RATE": UNPACED,
                }
                with serving(log_level, server_cpus, settings) as (port, pid):
                    results.append(measure(port, pid, REMOTE_CHANNEL, fmt, dest_port, dest_pid))
    varied = f"{marker!r} varied per request (distinct events)" if marker else "the same body every time"
    results = median_rounds(results)
    note = (
        f"load tool: {tool_note}; {connections} connections; {cpu_note}; serve --log-level {log_level};"
        f" {sample.id}, {varied}"
    )
    return results, note


def median_rounds(results: list[Result]) -> list[Result]:
    """One result per scenario (first-run order): the round with the median requests/s (the lower
    of the two middle ones for an even count), carrying every round's requests/s."""
    groups: dict[tuple[str, int, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.scenario, r.workers, r.destination), []).append(r)
    chosen = []
    for runs in groups.values():
        middle = sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2]
        chosen.append(replace(middle, rounds_rps=tuple(r.rps for r in runs)))
    return chosen


# ---------------------------------------------------------------------------------------------
# Where a request's time goes


#: (bucket, substrings of a profiled function's file or name), first match wins.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("memory (state store)", ("translators/state", "sqlite3", "translators/rules")),
    ("logging + redaction", ("logging/", "translators/logs")),
    ("render (Jinja)", ("jinja2", ".j2", "translators/render")),
    ("fit + validate output", ("translators/formats",)),
    ("validate + normalise", ("pydantic", "translators/sources", "translators/model", "translators/text")),
    (
        "deliverer (claims, deadline, results)",
        ("translators/deliver", "translators/results", "translators/pacing"),
    ),
    ("pipeline (settings, rules, answer)", ("translators/pipeline", "translators/settings", "function_app")),
    (
        "HTTP client (requests, urllib3)",
        ("requests/", "urllib3", "http/client", "socket", "ssl", "email/", "urllib/", "http/cookiejar"),
    ),
    ("JSON", ("json/", "'_json.")),
)


def profile_pipeline(
    port: int, sample: Any, marker: str | None, channels: str, n: int = 100
) -> tuple[float, list[tuple[str, float]]]:
    """Wall ms per request of ``pipeline.handle`` delivering to the running server, and its shares.

    Runs in this process (the client side of each request: parse to answer, deliveries included,
    the server's own handling of them not), with logging at INFO to nowhere, as ``serve`` logs.
    """
    import cProfile
    import logging
    import pstats

    from translators import pipeline, settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTING_PREFIXES)}
    for fmt in ("slack", "teams", "teams-messagecard"):
        key = "CHANNEL_" + fmt.upper().replace("-", "_")
        env[f"{key}_URL"], env[f"{key}_FORMAT"] = f"http://127.0.0.1:{port}/inbox/{fmt}", fmt
        env[f"{key}_RATE"] = UNPACED  # as the server measured: delivered now, not queued for the pace
    quoted = json.dumps(marker).encode() if marker else b""
    body = sample.body()
    root = logging.getLogger()
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - closed below
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        env["STATE_STORE"] = f"sqlite:///{Path(tmp) / 'state.db'}"
        try:
            requests = [
                pipeline.Request(
                    sample.source,
                    channels,
                    body.replace(quoted, quoted[:-1] + f"-profile-{i}".encode() + b'"') if quoted else body,
                    dict(sample.headers),
                )
                for i in range(n + 1)
            ]
            pipeline.handle(requests[0], settings.load(env))  # warm: templates, pools, the store's schema
            started = time.perf_counter()
            profiler.enable()
            for request in requests[1:]:
                pipeline.handle(request, settings.load(env))
            profiler.disable()
            elapsed = time.perf_counter() - started
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = {}

    def bucket_of(filename: str, name: str) -> str:
        where = f"{filename}:{name}"
        return next((b for b, keys in BUCKETS if any(k in where for k in keys)), "other")

    for (filename, _line, name), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        own = bucket_of(filename, name)
        if own == "other" and filename == "~" and callers:
            # A built-in (isinstance, str.join, a lock's wait) is the work of whoever called it.
            for (c_file, _c_line, c_name), caller_stats in callers.items():
                theirs = bucket_of(c_file, c_name)
                totals[theirs] = totals.get(theirs, 0.0) + caller_stats[2]
            continue
        totals[own] = totals.get(own, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    shares = sorted(((b, t / whole) for b, t in totals.items()), key=lambda item: item[1], reverse=True)
    return elapsed / n * 1000, shares

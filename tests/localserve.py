"""Run ``python -m translators`` as a real subprocess: the server (``serve``) and the CLI commands.

Every process gets a clean environment (no app settings inherited from the developer's shell, no
proxies), its own delivery memory in a temporary folder, and runs from a temporary directory so
that a ``local.settings.json`` in the repository is never read unless a test puts one there.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Settings of the app (and of its future additions) that must not leak in from the shell.
APP_SETTING_PREFIXES = (
    "CHANNEL_",
    "TEMPLATES_DIR",
    "WEBHOOK_TOKEN",
    "MAX_BODY_BYTES",
    "STATE_",
    "DELIVERY_",
    "AzureWebJobsStorage",
)
START_TIMEOUT = 30.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(APP_SETTING_PREFIXES) and not k.lower().endswith("_proxy")
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    env["DELIVERY_DEADLINE_SECONDS"] = "5"
    return env | dict(extra or {})


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.raw)


@dataclass
class Served:
    """A running ``serve`` subprocess; ``stop()`` is idempotent and always leaves no process behind."""

    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(
        self, path: str, body: bytes | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Answer:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        return self.request("POST", path, raw, {"Content-Type": "application/json", **dict(headers or {})})

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def banner(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log(), re.MULTILINE)
            if found or time.monotonic() > deadline:
                assert found, f"no log line matching {pattern!r} in:\n{self.log()[-3000:]}"
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_serve(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: Path | None = None,
    *,
    every_worker: bool = True,
) -> Served:
    """Start ``serve --port 0`` (the OS picks a free port), wait until /api/health answers 200.

    The port is read from the banner the server prints once its socket is bound. With
    ``every_worker`` it also waits until every worker has booted (else the first answer will do).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = workdir / "serve.out", workdir / "serve.err"
    settings = dict(env or {})
    if any(k.upper().startswith("CHANNEL_") for k in settings):
        # Memory of its own, never the repository's .state/ (serve gives the inbox a scratch one).
        settings.setdefault("STATE_STORE", f"sqlite:///{workdir / 'state.db'}")
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "translators", "serve", "--host", "127.0.0.1", "--port", "0", *args],
            cwd=cwd or workdir,
            env=clean_env(settings),
            stdout=out,
            stderr=err,
        )
    served = Served(proc, stdout, stderr)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not served.port:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{served.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve printed no address within {START_TIMEOUT} s:\n{served.log()}")
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", served.banner())
            if found:
                served.port = int(found[1])
            else:
                time.sleep(0.05)
        while True:
            try:
                if served.get("/api/health").status == 200 and (not every_worker or _workers_up(served)):
                    return served
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/api/health did not answer 200 within {START_TIMEOUT} s")
            time.sleep(0.05)
    except BaseException:
        served.stop()
        raise


def _workers_up(served: Served) -> bool:
    """Whether every worker the banner promises has booted (gunicorn starts them one by one)."""
    promised = re.search(r"workers: (\d+) processes", served.banner())
    return not promised or len(re.findall(r"Booting worker with pid", served.log())) >= int(promised[1])


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None, stdin: bytes | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "translators", *args],
        cwd=cwd,
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    assert "Traceback" not in err, err
    return Run(proc.returncode, out, err)


def half_sent(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that sent the headers and one byte of a 100-byte body, then stalled."""
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /api/bitrise/fine HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        stalled.append(sock)
    return stalled

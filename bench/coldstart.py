"""Cold start: a fresh interpreter answering one request, against one that only imports the libraries.

Each run is a new ``python bench/_coldchild.py <mode>`` process, timed by the parent from spawn to
exit (interpreter start-up included, on both sides), with its CPU time from ``RUSAGE_CHILDREN``
deltas. The child reports its own peak RSS (``VmHWM``) and its time from its first line.

Bytecode: both sides run once untimed first with ``PYTHONDONTWRITEBYTECODE`` removed, so the
``__pycache__`` of the project and of site-packages is written where it is missing; the timed
runs then use one identical environment for both sides (yours, minus app settings, plus one dry-run
channel and a scratch state store), so a ``PYTHONDONTWRITEBYTECODE=1`` in your shell cannot make
one side compile from source. Runs alternate between the sides so that drift in machine load hits both alike.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_coldchild.py"
#: Settings the app reads; a developer's own are kept out so that both sides see the same thing.
APP_SETTING_PREFIXES = ("CHANNEL_", "TEMPLATES_DIR", "WEBHOOK_TOKEN", "MAX_BODY_BYTES", "STATE_", "DELIVERY_")
MAX_RATIO = 1.25
#: The sides, in the order they run: the app, the target's baseline, and (for reference) the
#: baseline plus first use of the libraries, since ``import pydantic`` alone loads lazily.
MODES: dict[str, str] = {
    "app": "function_app + one dry_run ({sample}, slack)",
    "bare": "import azure.functions, pydantic, jinja2",
    "model": "... + one pydantic model validated",
    "used": "... + one pydantic model, one Jinja template",
    "unbuilt": "the app from a package without its bytecode",
}
#: The files of the deployment package that Python imports (.funcignore keeps these and more).
PACKAGE = ("function_app.py", "host.json", "translators", "templates")


@dataclass(frozen=True)
class Side:
    mode: str
    label: str
    wall_s: list[float]
    reports: list[dict[str, Any]]

    def _median(self, key: str) -> float:
        values = [float(r[key]) for r in self.reports if isinstance(r.get(key), (int, float))]
        return statistics.median(values) * 1000 if values else math.nan

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall_s) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.wall_s) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.wall_s) * 1000

    @property
    def cpu_ms(self) -> float:
        """Median CPU time (user + system) of the child, which other load on the machine inflates less."""
        return self._median("cpu_s")

    @property
    def in_process_ms(self) -> float:
        """Median time from the child's first line to its answer (interpreter start-up excluded)."""
        return self._median("in_process_s")

    @property
    def import_ms(self) -> float:
        return self._median("import_s")

    @property
    def peak_mib(self) -> float:
        return max(int(r["maxrss_kb"]) for r in self.reports) / 1024

    @property
    def answer(self) -> str:
        seen = {f"{r['status_code']} {r['status']}" for r in self.reports if "status_code" in r}
        return ", ".join(sorted(seen)) or "-"


def child_env(state_dir: str) -> dict[str, str]:
    """Your environment without app settings, plus one dry-run channel and a scratch state store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTING_PREFIXES)}
    env["CHANNEL_BENCH_URL"] = "http://127.0.0.1:9/bench-never-contacted"
    env["CHANNEL_BENCH_FORMAT"] = "slack"
    env["STATE_STORE"] = f"sqlite:///{Path(state_dir) / 'state.db'}"
    return env


def _argv(mode: str, sample_id: str, unbuilt: Path | None = None) -> list[str]:
    from translators import samples

    sample = samples.get(sample_id)
    if mode == "unbuilt":  # the app side, from a copy of the package that has no __pycache__
        assert unbuilt is not None
        return [sys.executable, str(CHILD), "app", str(unbuilt), *_request(sample)]
    argv = [sys.executable, str(CHILD), mode, str(ROOT)]
    if mode == "app":
        argv += _request(sample)
    return argv


def _request(sample: Any) -> list[str]:
    return [sample.source, str(sample.path), json.dumps(sample.headers)]


def unbuilt_package(into: Path) -> Path:
    """The package's Python files without bytecode, as a deployment without tools/package-bytecode
    ships them: Azure's read-only mount then makes every start compile them."""
    import shutil

    package = into / "package"
    for name in PACKAGE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, package / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            package.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, package / name)
    return package


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds from spawn to exit, and the child's report plus its CPU seconds (``cpu_s``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["cpu_s"] = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return wall, report


def run(runs: int = 7, sample_id: str = "bitrise/build-failed") -> list[Side]:
    """Each side of MODES, ``runs`` times, alternating."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as state_dir:
        return _run(runs, sample_id, child_env(state_dir), unbuilt_package(Path(state_dir)))


def _run(runs: int, sample_id: str, env: dict[str, str], unbuilt: Path) -> list[Side]:
    warm_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argvs = {mode: _argv(mode, sample_id, unbuilt) for mode in MODES}
    # The unbuilt package never gets bytecode (its own imports compile from source every time).
    envs = {mode: {**env, "PYTHONDONTWRITEBYTECODE": "1"} if mode == "unbuilt" else env for mode in MODES}
    for mode, argv in argvs.items():  # untimed: writes missing bytecode caches, warms the page cache
        _once(argv, envs[mode] if mode == "unbuilt" else warm_env)
    results: dict[str, list[tuple[float, dict[str, Any]]]] = {mode: [] for mode in MODES}
    for _ in range(runs):
        for mode in MODES:
            results[mode].append(_once(argvs[mode], envs[mode]))
    return [
        Side(
            mode,
            MODES[mode].format(sample=sample_id),
            [wall for wall, _ in results[mode]],
            [report for _, report in results[mode]],
        )
        for mode in MODES
    ]


def import_profile(sample_id: str = "bitrise/build-failed", top: int = 8) -> list[tuple[str, float, int]]:
    """What only the app side imports, by top-level package: (package, own import ms, modules).

    From one ``-X importtime`` run of each side; import times are noisy, so this says where the
    time goes rather than exactly how much.
    """
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as state_dir:
        env = child_env(state_dir)
        return _import_profile(sample_id, top, env)


def _import_profile(sample_id: str, top: int, env: dict[str, str]) -> list[tuple[str, float, int]]:
    seen: dict[str, dict[str, float]] = {}
    for mode in ("bare", "app"):
        argv = _argv(mode, sample_id)
        argv[1:1] = ["-X", "importtime"]
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        modules: dict[str, float] = {}
        for line in proc.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if line.startswith("import time:") and len(parts) == 3 and parts[0].strip().isdigit():
                modules[parts[2].strip()] = int(parts[0]) / 1000
        seen[mode] = modules
    groups: dict[str, tuple[float, int]] = {}
    for name, ms in seen["app"].items():
        if name not in seen["bare"]:
            package = name.split(".")[0]
            total, count = groups.get(package, (0.0, 0))
            groups[package] = (total + ms, count + 1)
    ranked = sorted(groups.items(), key=lambda item: item[1][0], reverse=True)[:top]
    return [(package, ms, count) for package, (ms, count) in ranked]


#: ``serve``'s target from spawn to its first answer.
MAX_SERVE_SPAWN_MS = 300.0


def serve_spawn(runs: int = 7, workers: int = 1, sample_id: str = "bitrise/build-failed") -> list[float]:
    """Milliseconds from spawning ``python -m translators serve`` (its embedded defaults: the inbox
    channels) to its first answer of a POST delivered to the inbox, ``runs`` times."""
    import http.client
    import socket

    from translators import samples

    sample = samples.get(sample_id)
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-spawn-") as tmp:
        settings = Path(tmp) / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTING_PREFIXES)}
        for i in range(runs + 1):  # the first run warms the bytecode caches and is not counted
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            argv = [sys.executable, "-m", "translators", "serve", "--port", str(port)]
            argv += ["--settings", str(settings), "--workers", str(workers), "--log-level", "warning"]
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"serve exited with {proc.returncode}")
                    if time.perf_counter() - started > 30:
                        raise RuntimeError("serve did not answer within 30 s")
                    try:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        body = sample.body()
                        conn.request("POST", f"/api/{sample.source}/slack", body=body, headers=sample.headers)
                        status = conn.getresponse().status
                        conn.close()
                    except OSError:
                        time.sleep(0.002)
                        continue
                    if status != 200:
                        raise RuntimeError(f"serve answered {status}")
                    break
                if i:
                    times.append((time.perf_counter() - started) * 1000)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    return times

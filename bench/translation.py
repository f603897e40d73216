"""Translation cost per event, in process, against the JSON floor for the same payload.

What is measured: ``pipeline.handle(Request(..., query={"dry_run": "1"}), env)`` with one channel
of the format (``CHANNEL_BENCH_URL`` pointing at an unused loopback port, never contacted because
of ``dry_run``). That is the whole path a webhook takes before delivery: token and size checks,
settings, parsing and shape check, the source's pydantic validation and normalisation, rendering,
fitting, validating the output, and building the answer. Logging is left unconfigured, as in a bare
interpreter: the per-request INFO line is checked for and skipped (WARNING and above would print).

The floor is what any implementation must pay for the same event: ``json.loads`` of the request
body plus ``json.dumps`` (compact, UTF-8, as delivered) of the rendered body.

Timing: a few warm-up calls (templates compiled, caches filled), then loops calibrated to at
least ``min_time`` seconds, ``repeat`` times; the median of the repeats per call. Garbage
collection stays on (unlike ``timeit``): a real request pays for it too. The clock is the
thread's CPU time by default, so that other work on a shared machine (a test run beside the
benchmark) does not count as ours; the process is pinned to one CPU while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS: tuple[str, ...] = ("slack", "teams", "teams-messagecard")
#: Never contacted (dry_run); port 9 is "discard", closed on almost every machine.
UNUSED_URL = "http://127.0.0.1:9/bench-never-contacted"

#: Targets of issue 7 (reported, not enforced).
MAX_FLOOR_RATIO = 8.0
MIN_EVENTS_PER_SECOND = 5000.0


@dataclass(frozen=True)
class Row:
    sample: str
    fmt: str
    status: str
    seconds: float  # per event, whole in-process path
    floor_seconds: float  # per event, json.loads + json.dumps
    out_bytes: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds if self.floor_seconds else float("inf")

    @property
    def events_per_second(self) -> float:
        return 1.0 / self.seconds


def time_per_call(
    fn: Callable[[], object], min_time: float, repeat: int, warmup: int = 3, clock: str = "cpu"
) -> float:
    """Median seconds per call over ``repeat`` loops of at least ``min_time`` seconds each.

    ``cpu`` counts this thread's CPU time (``time.thread_time``): what one core spends, whatever
    else the machine is running. ``wall`` counts elapsed time (``time.perf_counter``).
    """
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    for _ in range(warmup):
        fn()
    number = 1
    while True:  # calibrate like timeit.Timer.autorange, to the requested loop length
        started = timer()
        for _ in range(number):
            fn()
        elapsed = timer() - started
        if elapsed >= min_time:
            break
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.1))
    results = [elapsed / number]
    for _ in range(repeat - 1):
        started = timer()
        for _ in range(number):
            fn()
        results.append((timer() - started) / number)
    return statistics.median(results)


def pin_to_one_core() -> tuple[set[int] | None, str]:
    """Pin this process to one CPU (Linux); return the previous affinity to restore, and a note."""
    if not hasattr(os, "sched_setaffinity"):
        return None, "not pinned (no sched_setaffinity on this OS)"
    before = os.sched_getaffinity(0)
    cpu = max(before)  # the last one: CPU 0 tends to take more interrupts
    os.sched_setaffinity(0, {cpu})
    return before, f"pinned to CPU {cpu}"


def restore_affinity(before: set[int] | None) -> None:
    if before is not None:
        os.sched_setaffinity(0, before)


def bench_env(fmt: str, state_dir: str) -> dict[str, str]:
    """App settings for one dry-run channel of ``fmt``; memory in a scratch SQLite file, not yours."""
    return {
        "CHANNEL_BENCH_URL": UNUSED_URL,
        "CHANNEL_BENCH_FORMAT": fmt,
        "STATE_STORE": f"sqlite:///{Path(state_dir) / 'state.db'}",
    }


def run(
    sample_filter: str = "",
    formats: Sequence[str] = FORMATS,
    min_time: float = 0.02,
    repeat: int = 5,
    clock: str = "cpu",
) -> tuple[list[Row], str]:
    """Measure every bundled sample x format; the rows, and a note on how it was pinned."""
    from translators import pipeline, samples, settings
    from translators.formats import dumps

    before, note = pin_to_one_core()
    rows: list[Row] = []
    state_dir = tempfile.mkdtemp(prefix="bench-state-")
    try:
        for sample in samples.all_samples():
            if sample_filter and sample_filter not in sample.id:
                continue
            body = sample.body()
            for fmt in formats:
                env = bench_env(fmt, state_dir)
                request = pipeline.Request(
                    source=sample.source,
                    channels="bench",
                    body=body,
                    headers=dict(sample.headers),
                    query=(("dry_run", "1"),),
                )
                answer = pipeline.handle(request, settings.load(env))
                status = str(answer.body.get("status") or answer.body.get("error"))
                rendered: Any = None
                if answer.status == 200 and status == "dry_run":
                    channel = answer.body["channels"][0]
                    rendered = channel["body"]
                    if channel.get("template_error"):
                        status = "dry_run (minimal: template error)"

                def product(req: pipeline.Request = request, env: dict[str, str] = env) -> object:
                    return pipeline.handle(req, settings.load(env))

                def floor(body: bytes = body, rendered: Any = rendered) -> object:
                    json.loads(body)
                    return dumps(rendered) if rendered is not None else b""

                seconds = time_per_call(product, min_time, repeat, clock=clock)
                floor_seconds = time_per_call(floor, min_time, repeat, clock=clock)
                out = len(dumps(rendered)) if rendered is not None else 0
                rows.append(Row(sample.id, fmt, status, seconds, floor_seconds, out))
    finally:
        restore_affinity(before)
        shutil.rmtree(state_dir, ignore_errors=True)
    return rows, note


def table_rows(rows: Sequence[Row]) -> list[list[object]]:
    out: list[list[object]] = []
    for r in rows:
        missed = [
            what
            for what, ok in (
                (f">{MAX_FLOOR_RATIO:g}x", r.ratio <= MAX_FLOOR_RATIO),
                (f"<{MIN_EVENTS_PER_SECOND:,.0f}/s", r.events_per_second >= MIN_EVENTS_PER_SECOND),
            )
            if not ok
        ]
        verdict = "ok" if not missed else "MISS " + " ".join(missed)
        if r.status != "dry_run":
            verdict += f" ({r.status})"
        out.append(
            [
                r.sample,
                r.fmt,
                round(r.seconds * 1e6, 1),
                round(r.events_per_second),
                round(r.floor_seconds * 1e6, 1),
                f"{r.ratio:.1f}x",
                r.out_bytes,
                verdict,
            ]
        )
    return out


HEADERS = ["sample", "format", "µs/event", "events/s", "floor µs", "ratio", "out bytes", "target"]


def mix(rows: Sequence[Row]) -> tuple[float, float]:
    """Events/s and ratio for the whole set taken as one mixed stream (each row once)."""
    total = sum(r.seconds for r in rows)
    floor_total = sum(r.floor_seconds for r in rows)
    return len(rows) / total, total / floor_total


def breakdown(
    sample_id: str, fmt_name: str, min_time: float, repeat: int, clock: str = "cpu"
) -> list[tuple[str, float]]:
    """Seconds per call of each stage of the path for one sample x format, and the rest."""
    from translators import formats, pipeline, render, rules, samples, settings, sources
    from translators.errors import Ignored

    sample = samples.get(sample_id)
    body = sample.body()
    state_dir = tempfile.mkdtemp(prefix="bench-state-")
    env = bench_env(fmt_name, state_dir)
    headers = {k.lower(): v for k, v in sample.headers.items()}
    source = sources.get(sample.source)
    fmt = formats.get(fmt_name)
    assert source is not None and fmt is not None
    payload = pipeline.parse_body(body)
    n = source.translate(payload, headers)
    assert not isinstance(n, Ignored), "breakdown needs a sample that renders"
    renderer = render.renderer_for(fmt, None, None)
    request = pipeline.Request(sample.source, "bench", body, dict(sample.headers), (("dry_run", "1"),))
    loaded = settings.load(env)
    channels = [loaded.channel("bench")]

    stages: list[tuple[str, Callable[[], object]]] = [
        ("settings (settings.load)", lambda: settings.load(env)),
        ("parse + shape check", lambda: pipeline.parse_body(body)),
        ("source: validate + normalise", lambda: source.translate(payload, headers)),
        ("rules (rules.decide)", lambda: rules.decide(n, channels, None, True)),
        ("render (Jinja + json.loads)", lambda: renderer.render(n)),
    ]
    # fit works on a fresh body (it shortens in place): timed together with the render it follows.
    checked = ("fit + validate output", lambda: pipeline.render_checked(renderer, n))
    before, _ = pin_to_one_core()
    try:
        timed = [(label, time_per_call(fn, min_time, repeat, clock=clock)) for label, fn in stages]
        rendered_checked = time_per_call(checked[1], min_time, repeat, clock=clock)
        timed.append((checked[0], max(rendered_checked - timed[-1][1], 0.0)))
        whole = time_per_call(
            lambda: pipeline.handle(request, settings.load(env)), min_time, repeat, clock=clock
        )
    finally:
        restore_affinity(before)
        shutil.rmtree(state_dir, ignore_errors=True)
    return [
        *timed,
        ("the rest (checks, channels, answer)", whole - sum(t for _, t in timed)),
        ("whole", whole),
    ]

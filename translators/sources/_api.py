"""A platform's JSON API as enrichment asks it: one budget per event, never a reason to wait long.

Sources that complete their messages from an API (Bitrise, App Store Connect) share this client.
Every call of one event shares one deadline; a call still running when it passes is left to finish
alone. A 429's ``Retry-After`` is honoured: no call goes to that API until it has passed.
Credentials travel in headers the caller gives; no redirect is followed (they go to the API's host
only), nothing is taken from the environment (no proxy, no netrc), and no reason text holds a
credential: reasons name status codes and failure classes only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import requests
from pydantic import BaseModel, ValidationError

#: One call's connect timeout (the read is bounded by what is left of the budget).
CONNECT_SECONDS = 0.5
#: An API answer larger than this is not what we asked for.
MAX_ANSWER_BYTES = 1024 * 1024
#: Longest pause a Retry-After can ask for.
MAX_PAUSE_SECONDS = 3600.0


class Unavailable(Exception):
    """A call failed; the message is a fixed text naming a status or a failure class."""


class JsonApi:
    """One platform's API, one per process. Thread-safe.

    ``label`` names the API in every reason ("the Bitrise API"); ``credential`` names what it was
    given ("token", "key"); ``unknown`` what a 404 says it does not know.
    """

    def __init__(self, label: str, *, budget: float, credential: str, unknown: str) -> None:
        self.label = label
        self.budget = budget
        self.credential = credential
        self.unknown = unknown
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment for a credentialed call
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="enrichment")
        self._lock = threading.Lock()
        self._paused_until: dict[str, float] = {}

    @property
    def late(self) -> str:
        return f"{self.label} did not answer within {self.budget:g} s"

    def deadline(self) -> float:
        return time.monotonic() + self.budget

    def pause_left(self, base: str) -> float:
        with self._lock:
            return max(self._paused_until.get(base, 0.0) - time.monotonic(), 0.0)

    def paused_reason(self, base: str) -> str | None:
        """Why no call may go to ``base`` now, or None when calls may go."""
        left = self.pause_left(base)
        return f"rate limited by {self.label}; calls resume in {left:.0f} s" if left else None

    def submit[T](self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(fn, *args)

    def collect(self, jobs: Mapping[str, Future[Any]], deadline: float) -> tuple[dict[str, Any], list[str]]:
        """The answers that came within the budget, and a reason for each that did not."""
        if not jobs:
            return {}, []
        wait(jobs.values(), timeout=max(deadline - time.monotonic(), 0))
        answers: dict[str, Any] = {}
        problems: list[str] = []
        for name, job in jobs.items():
            if not job.done():
                problems.append(self.late)
                continue
            try:
                answers[name] = job.result()
            except Unavailable as exc:
                problems.append(str(exc))
        return answers, problems

    def get(self, base: str, url: str, headers: Mapping[str, str], deadline: float) -> Any:
        """The JSON ``url`` answers with 200, or Unavailable saying why not (in fixed words)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(self.late)
        try:
            response = self._session.get(
                url,
                headers={"Accept": "application/json", **headers},
                timeout=(min(CONNECT_SECONDS, left), left),
                stream=True,
                allow_redirects=False,  # the credential goes to the API's host only
            )
        except requests.Timeout:
            raise Unavailable(self.late) from None
        except requests.RequestException as exc:
            raise Unavailable(f"{self.label} is not reachable ({type(exc).__name__})") from None
        with response:
            status = response.status_code
            if status == 429:
                pause = self._pause(base, response.headers.get("Retry-After"))
                raise Unavailable(f"rate limited by {self.label} (429); calls resume in {pause:.0f} s")
            if status in (401, 403):
                raise Unavailable(f"{self.label} refused the {self.credential} ({status})")
            if status == 404:
                raise Unavailable(f"{self.label} does not know {self.unknown} (404)")
            if status != 200:
                raise Unavailable(f"{self.label} answered {status}")
            body = self._read(response, deadline)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Unavailable(f"{self.label}'s answer is not JSON") from None

    def model[M: BaseModel](self, model: type[M], data: Any) -> M:
        """``data`` as ``model``, or Unavailable: an answer that parsed but is not what was asked for."""
        try:
            return model.model_validate(data)
        except ValidationError:
            raise self.unexpected() from None

    def unexpected(self) -> Unavailable:
        return Unavailable(f"{self.label}'s answer is not the expected JSON")

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        """The body, within the budget and a size limit: a server that drips bytes cannot hold us."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(16384):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise Unavailable(f"{self.label}'s answer is too large")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise Unavailable(self.late)
        except requests.RequestException as exc:
            raise Unavailable(f"{self.label}'s answer broke off ({type(exc).__name__})") from None
        return b"".join(chunks)

    def _pause(self, base: str, retry_after: str | None) -> float:
        try:
            seconds = float(retry_after) if retry_after else 60.0
        except ValueError:
            seconds = 60.0
        seconds = min(max(seconds, 1.0), MAX_PAUSE_SECONDS)
        with self._lock:
            self._paused_until[base] = max(self._paused_until.get(base, 0.0), time.monotonic() + seconds)
        return seconds

    def forget(self) -> None:
        """Drop pauses (tests)."""
        with self._lock:
            self._paused_until.clear()


class TimedCache[K, V]:
    """Answers that rarely change (an app's name), kept for ``seconds`` per key. Thread-safe."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> tuple[V] | None:
        """``(value,)`` while it is fresh (the value itself may be None), else None."""
        with self._lock:
            found = self._items.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        return (found[0],)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = (value, time.monotonic() + self.seconds)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def per_process[T](factory: Callable[[], T]) -> Callable[[], T]:
    """A function returning ``factory()``'s one result in this process, made on first use."""
    lock = threading.Lock()
    made: list[T] = []

    def get() -> T:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get

"""``serve --workers N``, and a team's own gunicorn: gunicorn's arbiter over waitress workers.

gunicorn supervises: it forks the workers after the imports, starts another when one dies, and
stops them all on a signal; a worker stops by itself when it is orphaned. ``serve`` hands it the
socket it bound as ``fd://N`` (so a busy port is refused before anything starts). Each worker
serves with waitress on gunicorn's sockets (``Worker``): gunicorn's own workers read a request on a
pool thread (gthread) or in the process (sync), so a client that sends half a request would hold
one; waitress's I/O loop does not. Imported only for more than one process (gunicorn's import is
about 60 ms of a start). A team that self-hosts runs the same with gunicorn's own command
(docs/local.md)::

    gunicorn --workers 2 --worker-class translators.workers.Worker --bind 0.0.0.0:7071 \\
        'translators.workers:wsgi()'
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import waitress.server
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base import Worker as GunicornWorker

from translators import drainer, settings
from translators.host import INBOX_THREADS, STOP_SIGNALS, Stopper, adjustments, serve_in_thread
from translators.pacing import PACER
from translators.server import LocalFunctionApp

log = logging.getLogger("translators.serve")


def drain_when_first(lock: Path, stop: threading.Event) -> threading.Thread:
    """The outbox drainer of one process among several: whichever holds ``lock`` (``flock``).

    Exactly one worker drains, so a channel's queued deliveries go at its whole rate; when that
    worker goes, the kernel releases its lock and a waiting worker takes over. The one that drains
    removes the file when it stops, still holding it: the others open the path afresh on each try
    and take a lock only on the file the path names.
    """

    def lead() -> None:
        held = _take(lock)
        while held is None:
            if stop.wait(0.5):
                return
            held = _take(lock)
        try:
            drainer.Drainer(settings.from_environ).run(stop)
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
            held.close()

    thread = threading.Thread(target=lead, name="outbox-drainer", daemon=True)
    thread.start()
    return thread


def _take(lock: Path) -> IO[str] | None:
    """``lock`` opened and locked, if no other process holds it and it is still the file at that path."""
    held = open(lock, "a")  # noqa: SIM115 -- kept open while this process drains
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(held.fileno()).st_ino == os.stat(lock).st_ino:
            return held
    except OSError:  # held elsewhere, or removed meanwhile
        pass
    held.close()
    return None


@functools.cache
def _unblock_after_each_fork() -> None:
    os.register_at_fork(after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS))


def _hold_stop_signals_over_fork() -> None:
    """Block the stop signals in the arbiter until its next fork returns (the child keeps them blocked)."""
    _unblock_after_each_fork()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class Worker(GunicornWorker):  # type: ignore[misc]
    """A gunicorn worker serving with waitress on gunicorn's listening sockets (see the module)."""

    stopper: Stopper | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Made in the arbiter just before it forks the worker. A stop signal reaching the child
        # before its handlers are set would run the arbiter's handler there and be lost (the
        # arbiter then waits out its whole graceful timeout): the child is forked with the stop
        # signals held, and takes them once its own handlers are in place (init_signals).
        _hold_stop_signals_over_fork()
        super().__init__(*args, **kwargs)

    def init_process(self) -> None:
        os.setpgid(0, 0)  # a Ctrl+C in the terminal reaches the arbiter alone, which stops us
        PACER.share = 1 / max(1, self.cfg.workers)  # requests of all workers pace each channel together
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        for s in STOP_SIGNALS:  # each stops gracefully (Stopper)
            signal.signal(s, self._stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _stop(self, signum: int, frame: Any) -> None:
        self.alive = False
        if self.stopper is not None:
            self.stopper.signal(signum, frame)

    def run(self) -> None:
        app = self.wsgi
        grace = float(self.cfg.graceful_timeout) - 1
        server = waitress.server.create_server(app, sockets=[s.sock for s in self.sockets], **adjustments())
        self.stopper = Stopper(app, server, grace, refuse=False)
        if not self.alive:  # told to stop while it started: nothing was served yet
            server.close()
            return
        stop_draining = threading.Event()
        lock = Path(tempfile.gettempdir(), f"translators-{self.ppid}-drainer.lock")
        draining = drain_when_first(lock, stop_draining)
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        try:
            server.run()
        finally:
            server.close()
            stop_draining.set()
            draining.join(timeout=grace)

    def _heartbeat(self) -> None:
        """Tell the arbiter this worker lives; stop when the arbiter is gone (this worker orphaned)."""
        assert self.stopper is not None
        while not self.stopper.done.is_set():
            self.notify()
            if os.getppid() != self.ppid:
                log.warning("the arbiter is gone; stopping")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(1)


class Arbiter(BaseApplication):  # type: ignore[misc]
    """gunicorn run from here, with settings given in code (no config file, no command line)."""

    def __init__(self, app: Callable[..., Any], options: dict[str, Any]) -> None:
        self.app, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        return self.app


def run_gunicorn(
    app: LocalFunctionApp, sock: socket.socket, inbox: socket.socket, workers: int, grace: float, level: str
) -> int:
    """Serve ``app`` on ``sock`` (and the inbox port) in ``workers`` processes until a signal."""
    arbiter = os.getpid()
    options: dict[str, Any] = {
        "bind": [f"fd://{sock.fileno()}"],
        "workers": workers,
        "worker_class": Worker,
        "graceful_timeout": math.ceil(grace) + 1,  # an int, as gunicorn wants
        "timeout": 30,
        "loglevel": level,
        "control_socket_disable": True,  # no socket file in the user's home
        # Forked with no thread running; each worker serves the inbox port with threads of its own.
        "post_worker_init": lambda worker: serve_in_thread(worker.wsgi, inbox, threads=INBOX_THREADS),
    }
    try:
        Arbiter(app, options).run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if os.getpid() != arbiter:  # a worker, ending: leave the arbiter's cleanup to the arbiter
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def wsgi() -> LocalFunctionApp:
    """The app for gunicorn's own command: the functions with settings from the environment."""
    from translators import host, server

    host.log_to_stderr(logging.INFO, pid=True)  # as serve logs: a line per request and per delivery
    for note in host.dropped_signatures(settings.from_environ().app):
        log.warning(note)
    app, _ = server.create_app(server.load_function_app().get_functions())
    return app

"""How ``serve`` hosts the local app: waitress in one process; gunicorn's arbiter over waitress workers.

waitress serves HTTP in every process: its I/O loop reads requests whole before a thread takes
them, so slow or half-sent requests hold no thread, and its ``channel_timeout`` closes them. With
``--workers N`` gunicorn supervises (binds nothing: it is handed our socket as ``fd://N``; forks,
restarts a worker that dies, stops them all on a signal, and a worker stops when it is orphaned),
and each worker runs waitress on that socket (``Worker`` below). A team that self-hosts runs the
same with gunicorn's own command (docs/local.md)::

    gunicorn --workers 2 --worker-class translators.host.Worker --bind 0.0.0.0:7071 \\
        'translators.host:wsgi()'

Deliveries to the local inbox come in on a loopback port of their own (the inbox channels' URLs): a
call holds its thread while it delivers, so with the inbox on the calls' own threads, as many
concurrent calls as threads would wait for each other until their deliveries timed out.

On SIGTERM or SIGINT (the first one), calls in progress are answered: the app refuses new calls
(503 ``stopping``), one process stops taking connections, and the server stops once nothing is
in flight or the grace period is over; a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import fcntl
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
from typing import Any

import waitress.server
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base import Worker as GunicornWorker

from translators import drainer, settings
from translators.pacing import PACER
from translators.server import MAX_REQUEST_BYTES, LocalFunctionApp

log = logging.getLogger("translators.serve")

#: Threads that run requests in a process. Python runs on one core at a time (the GIL): under
#: load (python -m bench) 2 to 16 threads served as many requests a second, more only lengthened
#: p99. Enough let calls waiting on a slow destination overlap; the deliverer bounds how many wait
#: on one destination (translators/deliverer.py), so health still finds a thread.
THREADS = 10
#: A connection with nothing arriving for this long is closed: an idle keep-alive one, and one
#: that sent part of a request and stalled, so that those cannot pile up.
IDLE_SECONDS = 10
#: Open connections a process takes at most (waitress's default is 100, which 100 half-sent
#: requests would fill until they time out). The open-file limit is raised to fit.
CONNECTION_LIMIT = 2000
#: Each stops a server gracefully; a second one stops it at once.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
#: Threads of the inbox port: a delivery to the inbox waits on nothing outside the process.
INBOX_THREADS = 2
#: On a stop, after the last call is answered, the I/O loop gets this long to send it.
FLUSH_SECONDS = 0.3


def adjustments(idle_seconds: float = IDLE_SECONDS) -> dict[str, Any]:
    """waitress's settings, the same in every process (its documented arguments)."""
    return {
        "threads": THREADS,
        "connection_limit": CONNECTION_LIMIT,
        "channel_timeout": idle_seconds,
        "cleanup_interval": max(1, int(idle_seconds / 2)),
        "asyncore_use_poll": True,  # select() stops at file descriptor 1024
        # As the Functions host does, refuse an oversized body (413) before reading it.
        "max_request_body_size": MAX_REQUEST_BYTES,
        # Headers reach the function as sent, X-Forwarded-* included (no proxy to trust here).
        "clear_untrusted_proxy_headers": False,
        "ident": "translators",
    }


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``OSError`` (``EADDRINUSE``) when the port is in use.

    Bound here, before anything is served: port 0 picks a free port the banner and the inbox
    channels can name, and a busy port is refused rather than shared (no ``SO_REUSEPORT``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def raise_open_files_limit() -> None:
    """Let the process hold ``CONNECTION_LIMIT`` connections (soft limits are often 1024)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = CONNECTION_LIMIT + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class Stopper:
    """Stops one waitress server the way ``serve`` promises (see the module's docstring).

    ``signal`` runs in the main thread, where waitress's loop runs: its first call marks the app
    stopping and starts a thread that waits for the calls in flight; that thread, or a second
    signal, then raises KeyboardInterrupt there, which ends waitress's loop.
    """

    def __init__(self, app: LocalFunctionApp, server: Any, grace: float, *, refuse: bool) -> None:
        self.app, self.server, self.grace, self.refuse = app, server, grace, refuse
        self.done = threading.Event()

    def signal(self, signum: int, frame: Any) -> None:
        if self.app.stopping or self.done.is_set():
            self.done.set()
            raise KeyboardInterrupt
        self.app.stopping = True
        self.server.accepting = False  # waitress no longer polls its listening socket
        threading.Thread(target=self._wait, args=(signum,), name="stopping", daemon=True).start()

    def _wait(self, signum: int) -> None:
        deadline = time.monotonic() + self.grace
        if self.refuse:  # new connections are refused rather than left waiting (one process only:
            # the socket is shared with the other workers). Only once the loop has woken and left
            # the socket out of its poll: a hang-up seen there would close the whole server.
            self.server.pull_trigger()
            time.sleep(0.1)
            with contextlib.suppress(OSError):
                self.server.socket.shutdown(socket.SHUT_RDWR)
        while self.app.in_flight and time.monotonic() < deadline and not self.done.is_set():
            time.sleep(0.05)
        time.sleep(FLUSH_SECONDS)
        if self.app.in_flight:
            log.warning("stopped with %d request(s) unanswered", self.app.in_flight)
        self.done.set()
        os.kill(os.getpid(), signum)


def run_waitress(
    app: LocalFunctionApp, sock: socket.socket, stopper_grace: float, *, refuse: bool
) -> Stopper:
    """Serve ``app`` on ``sock`` in this thread until a signal stops it (see ``Stopper``)."""
    server = waitress.server.create_server(app, sockets=[sock], **adjustments())
    stopper = Stopper(app, server, stopper_grace, refuse=refuse)
    previous = {s: signal.signal(s, stopper.signal) for s in STOP_SIGNALS}
    try:
        server.run()  # returns on KeyboardInterrupt, its threads stopped
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.close()
    return stopper


def serve_in_thread(app: LocalFunctionApp, sock: socket.socket, **overrides: Any) -> Any:
    """Serve ``app`` on ``sock`` from a daemon thread; returns the waitress server.

    The inbox port is served this way (two threads of its own, for the process's life), and so are
    the servers of tests and of tools/screenshots.py, which end with ``stop_in_thread``.
    """
    server = waitress.server.create_server(app, sockets=[sock], **{**adjustments(), **overrides})
    threading.Thread(target=server.run, name="waitress", daemon=True).start()
    return server


def stop_in_thread(server: Any) -> None:
    """Stop what ``serve_in_thread`` started: no new connections, no more threads."""
    server.close()
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)


# ---------------------------------------------------------------------------------------------
# gunicorn: more than one process


def drain_when_first(lock: Path, stop: threading.Event) -> threading.Thread:
    """The outbox drainer of one process among several: whichever holds ``lock`` (``flock``).

    Exactly one worker drains, so a channel's queued deliveries go at its whole rate; when that
    worker goes, the kernel releases its lock and a waiting worker takes over.
    """

    def lead() -> None:
        with open(lock, "a") as held:
            while not stop.is_set():
                try:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    stop.wait(0.5)
            else:
                return
            drainer.Drainer(settings.from_environ).run(stop)

    thread = threading.Thread(target=lead, name="outbox-drainer", daemon=True)
    thread.start()
    return thread


_unblocked_after_fork: list[bool] = []


def _hold_stop_signals_over_fork() -> None:
    """Block the stop signals in the arbiter until its next fork returns (the child keeps them blocked)."""
    if not _unblocked_after_fork:
        os.register_at_fork(after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS))
        _unblocked_after_fork.append(True)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class Worker(GunicornWorker):  # type: ignore[misc]
    """A gunicorn worker serving with waitress on gunicorn's listening sockets.

    gunicorn's own workers read a request on a pool thread (gthread) or in the process (sync), so
    a client that sends half a request holds a worker or thread; waitress's loop does not.
    """

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
    with contextlib.suppress(OSError):
        Path(tempfile.gettempdir(), f"translators-{arbiter}-drainer.lock").unlink()
    return code


def wsgi() -> LocalFunctionApp:
    """The app for gunicorn's own command: the functions with settings from the environment."""
    from translators import server

    # As serve logs: a line per request and per delivery, each saying which process wrote it.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    app, _ = server.create_app(server.load_function_app().get_functions())
    return app

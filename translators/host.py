"""How ``serve`` hosts the local app: waitress, in one process or in each of gunicorn's workers.

waitress serves HTTP in every process: its I/O loop reads requests whole before a thread takes
them, so slow or half-sent requests hold no thread, and its ``channel_timeout`` closes them. With
``--workers N`` gunicorn supervises them (translators/workers.py, imported only then).

Deliveries to the local inbox come in on a loopback port of their own (the inbox channels' URLs): a
call holds its thread while it delivers, so with the inbox on the calls' own threads, as many
concurrent calls as threads would wait for each other until their deliveries timed out.

On SIGTERM or SIGINT (the first one), calls in progress are answered: the app refuses new calls
(503 ``stopping``), one process stops taking connections, and the server stops once nothing is
in flight or the grace period is over; a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import waitress.server

from translators.server import MAX_REQUEST_BYTES, LocalFunctionApp

if TYPE_CHECKING:
    from translators.settings import AppSettings

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


def log_to_stderr(level: str | int, *, pid: bool) -> None:
    """serve's log lines; with more than one process (``pid``) each says which one wrote it."""
    fmt = "%(asctime)s %(levelname)s " + ("[%(process)d] " if pid else "") + "%(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)


def dropped_signatures(app: AppSettings) -> list[str]:
    """Signed sources whose signature header waitress never passes on: it drops every header whose
    name holds "_" (as nginx does by default), so a platform that signs in one is refused."""
    from translators import sources

    found = []
    for source in sources.registry().values():
        how = sources.signing(source)
        if how is not None and "_" in how.header and sources.signing_secret(source, app):
            found.append(
                f"{how.setting} is set, but this server drops the {how.header} header (its name holds"
                f" '_'): {source.label} requests will be refused (401). On Azure it arrives; here,"
                " unset the secret and guard the URL with WEBHOOK_TOKEN"
            )
    return found


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


def run_waitress(app: LocalFunctionApp, sock: socket.socket, grace: float) -> None:
    """Serve ``app`` on ``sock`` in this thread, the only process, until a signal stops it (``Stopper``)."""
    server = waitress.server.create_server(app, sockets=[sock], **adjustments())
    stopper = Stopper(app, server, grace, refuse=True)
    previous = {s: signal.signal(s, stopper.signal) for s in STOP_SIGNALS}
    try:
        server.run()  # returns on KeyboardInterrupt, its threads stopped
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.close()


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

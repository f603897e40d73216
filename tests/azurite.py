"""A real Azure Table Storage for tests: Azurite (npm package ``azurite``), started and stopped here.

``make test`` installs it from package-lock.json into node_modules (``make node``). It runs on
loopback with in-memory persistence and telemetry off, on a free port, once per test session.
Without it the tests that need it skip with the reason, except where ``CI`` is set: there they
fail, because CI must run both state backends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / ("azurite-table.cmd" if os.name == "nt" else "azurite-table")
#: Azurite's one built-in account; the key is public (it is in Microsoft's documentation).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 20.0


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Azurite:
    port: int
    started_in: float

    @property
    def connection(self) -> str:
        return connection_string(self.port)

    def env(self) -> dict[str, str]:
        """Settings for a state store and an outbox on tables of their own (no test sees another's rows)."""
        tag = uuid.uuid4().hex[:20]
        return {
            "STATE_STORE": "tables",
            "STATE_STORAGE_CONNECTION": self.connection,
            "STATE_TABLE": f"t{tag}",
            "OUTBOX_TABLE": f"o{tag}",
        }


def _start(
    workdir: Path, port: int | None = None, location: Path | None = None, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], Azurite, Path]:
    """Azurite on ``port`` (else a free one); in memory, or on disk at ``location`` to outlive a restart.

    ``extra`` are more options (``--oauth basic --cert ... --key ...`` for sign-in by identity).
    """
    for attempt in range(3):  # the free port can be taken between choosing and binding it
        chosen = port or free_port()
        log_path = workdir / f"azurite-{chosen}-{attempt}.log"
        started = time.perf_counter()
        storage = ["--location", str(location)] if location else ["--inMemoryPersistence"]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [
                    str(AZURITE_TABLE),
                    *storage,
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--silent",
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(chosen),
                    *extra,
                ],
                cwd=workdir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = started + START_TIMEOUT
        while time.perf_counter() < deadline and proc.poll() is None:
            if accepts(chosen):
                return proc, Azurite(chosen, time.perf_counter() - started), log_path
            time.sleep(0.05)
        _stop(proc)
    log_text = log_path.read_text(errors="replace")[-2000:]
    pytest.fail(f"Azurite did not start on 127.0.0.1 within {START_TIMEOUT:.0f}s:\n{log_text}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def require_azurite() -> None:
    """Skip without Azurite, with the reason; fail instead where CI is set."""
    if not AZURITE_TABLE.exists():
        reason = f"Azurite is not installed ({AZURITE_TABLE.relative_to(ROOT)}); run `make node` (npm ci)"
        if "CI" in os.environ:
            pytest.fail(f"{reason}: CI must run the Table Storage tests, never skip them")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    require_azurite()
    proc, server, _ = _start(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        from translators import state

        state.close_all()  # table clients hold pooled connections to this Azurite
        _stop(proc)


@pytest.fixture(params=["sqlite", "tables"])
def state_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings for a fresh, empty state store: each test runs once per backend."""
    if request.param == "sqlite":
        return {"STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}"}
    server: Azurite = request.getfixturevalue("azurite")
    return server.env()


class RestartableAzurite:
    """An Azurite of its own whose data is on disk, so that it can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        require_azurite()
        self.workdir = workdir
        self.location = workdir / "data"
        self.location.mkdir(parents=True, exist_ok=True)
        self.proc, self.server, _ = _start(workdir, location=self.location)

    def stop(self) -> None:
        """A graceful stop (SIGINT): Azurite saves its data then. SIGTERM ends it at once, losing the
        last writes, which real Azure Storage never does: that would test Azurite, not us."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _stop(self.proc)

    def start(self) -> None:
        self.proc, self.server, _ = _start(self.workdir, port=self.server.port, location=self.location)


@dataclass(frozen=True)
class SecureAzurite:
    """Azurite over HTTPS that takes OAuth bearer tokens (``--oauth basic``): sign-in by identity."""

    port: int
    certificate: Path

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/{ACCOUNT}"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day (cryptography comes with azure-identity)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    loopback = "127.0.0.1"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, loopback)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(loopback))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def secure_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureAzurite]:
    require_azurite()
    workdir = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed(workdir)
    proc, server, _ = _start(workdir, extra=["--oauth", "basic", "--cert", str(cert), "--key", str(key)])
    try:
        yield SecureAzurite(server.port, cert)
    finally:
        from translators import state

        state.close_all()
        _stop(proc)

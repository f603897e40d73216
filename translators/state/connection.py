"""Which Table Storage memory and the outbox use, and how they sign in to it.

The same rules as the Functions host's own connections (``AzureWebJobsStorage``): a connection
named ``X`` is either the connection string ``X`` or the identity-based settings ``X__*``. Ours are
looked up in this order, the first that is set winning:

1. ``STATE_STORAGE_CONNECTION``: a connection string for memory alone;
2. ``STATE_STORAGE__tableServiceUri`` or ``STATE_STORAGE__accountName``: the same, by identity;
3. ``AzureWebJobsStorage``: the Function App's own connection string;
4. ``AzureWebJobsStorage__tableServiceUri``, ``__accountName`` or ``__blobServiceUri``: the app's
   own storage by identity, as Flex Consumption and the azd templates set it up. With only the
   blob endpoint (all the Functions host itself needs), the table endpoint of the same account is
   used, so that memory does not silently fall back to a file on a read-only disk.

By identity, ``__credential = managedidentity`` signs in with the app's managed identity (the
user-assigned one named by ``__clientId``, else the system-assigned one); with no ``__credential``,
``DefaultAzureCredential`` tries the environment, a managed identity, then the developer's
``az login`` / ``azd auth login`` (the Functions host does the same locally).

``Target.public()`` says which kind of credential is in use and which setting chose it, never a
key, a connection string or an endpoint: ``/api/health`` shows it to anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from pydantic import SecretStr

    from translators.settings import AppSettings

Credential = Literal["connection_string", "development_storage", "managed_identity", "default_credential"]

#: Azurite's documented, public development account (what ``UseDevelopmentStorage=true`` means).
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
#: Public Azure; an account in a sovereign cloud gives its ``__tableServiceUri`` instead.
TABLE_ENDPOINT = "https://{account}.table.core.windows.net"


class NoConnection(Exception):
    """No Table Storage is configured; the message names the settings that would configure one."""


@dataclass(frozen=True)
class Target:
    """One Table Storage account and the way to sign in to it."""

    credential: Credential
    #: The setting (or prefix) that chose it: ``STATE_STORAGE__*``, ``AzureWebJobsStorage`` ...
    source: str
    #: The table service URI when signing in by identity.
    endpoint: str = ""
    #: A user-assigned managed identity's client id (not a secret: it grants nothing alone).
    client_id: str = ""
    #: A connection string: a secret, kept out of repr, equality and every message.
    connection: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> tuple[str, ...]:
        """What tells two targets apart, for the per-process cache of open stores."""
        return (self.credential, self.endpoint, self.client_id, self.connection)

    def public(self) -> dict[str, str]:
        """What ``/api/health`` shows: the credential's kind and where it was configured."""
        out = {"credential": self.credential, "configured_by": self.source}
        if self.credential == "managed_identity":
            out["identity"] = "user-assigned" if self.client_id else "system-assigned"
        return out

    def secrets(self) -> list[str]:
        """The connection string and the values in it that grant access on their own (for the log filter)."""
        if not self.connection or self.credential == "development_storage":
            return []
        found = [self.connection]
        for part in self.connection.split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value.strip():
                found.append(value.strip())
        return found


def is_real_connection(value: str | None) -> bool:
    value = (value or "").strip()
    return bool(value) and value.replace(" ", "").lower() != "usedevelopmentstorage=true"


def configured(app: AppSettings) -> bool:
    """Whether any Table Storage is configured (what ``STATE_STORE`` defaults to when unset)."""
    if is_real_connection(_secret(app.state_storage_connection)):
        return True
    try:
        return resolve(app).credential != "development_storage"
    except NoConnection:
        return False


def resolve(app: AppSettings) -> Target:
    """The storage the settings name, in the order of the module's docs; NoConnection when none."""
    own = _secret(app.state_storage_connection)
    if own:
        return _from_string(own, "STATE_STORAGE_CONNECTION")
    identity = _by_identity(
        "STATE_STORAGE__",
        app.state_storage_table_service_uri or _account(app.state_storage_account_name),
        app.state_storage_credential,
        app.state_storage_client_id,
    )
    if identity is not None:
        return identity
    host = _secret(app.azure_web_jobs_storage)
    if host:
        return _from_string(host, "AzureWebJobsStorage")
    identity = _by_identity(
        "AzureWebJobsStorage__",
        app.azure_web_jobs_storage_table_service_uri
        or _account(app.azure_web_jobs_storage_account_name)
        or table_endpoint_beside(app.azure_web_jobs_storage_blob_service_uri),
        app.azure_web_jobs_storage_credential,
        app.azure_web_jobs_storage_client_id,
    )
    if identity is not None:
        return identity
    raise NoConnection(
        "no Table Storage is configured: set STATE_STORAGE_CONNECTION or STATE_STORAGE__accountName,"
        " or AzureWebJobsStorage or AzureWebJobsStorage__accountName"
    )


def table_endpoint_beside(blob_uri: str | None) -> str:
    """``https://acct.table.core.windows.net`` for ``https://acct.blob.core.windows.net/``; "" otherwise."""
    if not blob_uri:
        return ""
    parts = urlsplit(blob_uri.strip())
    host = parts.hostname or ""
    account, dot, rest = host.partition(".blob.")
    if not (parts.scheme == "https" and account and dot and rest):
        return ""
    return f"https://{account}.table.{rest}"


def table_client(target: Target, table: str, **options: Any) -> TableClient:
    """A client for ``table`` in ``target``, signed in as the target says (azure-identity only if needed)."""
    from azure.data.tables import TableClient

    if target.credential in ("connection_string", "development_storage"):
        return TableClient.from_connection_string(target.connection, table_name=table, **options)
    return TableClient(target.endpoint, table_name=table, credential=credential(target), **options)


def credential(target: Target) -> TokenCredential:
    """The azure-identity credential for a target that signs in by identity."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = target.client_id or None
    if target.credential == "managed_identity":
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def _from_string(connection: str, source: str) -> Target:
    if not is_real_connection(connection):
        return Target("development_storage", source, connection=DEVELOPMENT_STORAGE)
    return Target("connection_string", source, connection=connection)


def _by_identity(prefix: str, endpoint: str | None, kind: str | None, client_id: str | None) -> Target | None:
    if not endpoint:
        return None
    how: Credential = (
        "managed_identity" if (kind or "").lower() == "managedidentity" else "default_credential"
    )
    return Target(how, prefix + "*", endpoint=endpoint.rstrip("/"), client_id=client_id or "")


def _account(name: str | None) -> str:
    return TABLE_ENDPOINT.format(account=name) if name else ""


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""

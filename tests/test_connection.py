"""Which Table Storage memory and the outbox use, and how they sign in (translators/state/connection.py).

The settings are the Functions host's own (``AzureWebJobsStorage__*``) and ours (``STATE_STORAGE*``).
Resolution is tested without Azure; sign-in by identity is tested end to end against Azurite over
HTTPS with OAuth (``--oauth basic``), with a stand-in for the managed identity that hands out a
token, as the real one would from the Functions host's identity endpoint.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.azurite import SecureAzurite, secure_azurite  # noqa: F401 - fixture
from translators import outbox, pipeline, settings, state
from translators.memory import Memory
from translators.state import connection
from translators.state.connection import Target

FLEX = "https://stflex.table.core.windows.net"
HOST = "AzureWebJobsStorage__*"
CLIENT_ID = "0b7a4e2c-9a51-4c77-8d3f-2f1e6b0c9d11"
KEY = "c2VjcmV0LWtleS1ub3QtYS1yZWFsLW9uZQ=="
KEYED = f"DefaultEndpointsProtocol=https;AccountName=keyed;AccountKey={KEY};EndpointSuffix=core.windows.net"


def resolve(env: dict[str, str]) -> Target:
    loaded = settings.load(env)
    assert loaded.errors == {}, loaded.errors
    return connection.resolve(loaded.app)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AzureWebJobsStorage__accountName": "stflex", HOST[:-1] + "credential": "managedidentity"},
            ("managed_identity", HOST, FLEX, ""),
        ),
        (
            {  # what infra/ and the Flex Consumption azd templates set
                "AzureWebJobsStorage__blobServiceUri": "https://stflex.blob.core.windows.net/",
                "AzureWebJobsStorage__tableServiceUri": "https://stflex.table.core.windows.net/",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": CLIENT_ID,
            },
            ("managed_identity", HOST, FLEX, CLIENT_ID),
        ),
        (
            {  # the quickstart's settings: the host needs only blobs; memory uses the same account's tables
                "AzureWebJobsStorage__blobServiceUri": "https://stflex.blob.core.windows.net/",
                "AzureWebJobsStorage__credential": "ManagedIdentity",
                "AzureWebJobsStorage__clientId": CLIENT_ID,
            },
            ("managed_identity", HOST, FLEX, CLIENT_ID),
        ),
        (
            {  # a sovereign cloud: the suffix is kept
                "AzureWebJobsStorage__blobServiceUri": "https://stgov.blob.core.usgovcloudapi.net",
            },
            ("default_credential", HOST, "https://stgov.table.core.usgovcloudapi.net", ""),
        ),
        (
            {"STATE_STORAGE__tableServiceUri": "https://stmem.table.core.windows.net"},
            ("default_credential", "STATE_STORAGE__*", "https://stmem.table.core.windows.net", ""),
        ),
        (
            {"STATE_STORAGE__accountName": "stmem", "STATE_STORAGE__clientId": CLIENT_ID},
            ("default_credential", "STATE_STORAGE__*", "https://stmem.table.core.windows.net", CLIENT_ID),
        ),
        ({"AzureWebJobsStorage": KEYED}, ("connection_string", "AzureWebJobsStorage", "", "")),
        ({"STATE_STORAGE_CONNECTION": KEYED}, ("connection_string", "STATE_STORAGE_CONNECTION", "", "")),
        (
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
            ("development_storage", "AzureWebJobsStorage", "", ""),
        ),
    ],
)
def test_settings_resolve_into_a_target(env: dict[str, str], expected: tuple[str, str, str, str]) -> None:
    target = resolve(env)
    assert (target.credential, target.source, target.endpoint, target.client_id) == expected


def test_memory_settings_come_before_the_function_apps_own() -> None:
    own = {
        "AzureWebJobsStorage": KEYED,
        "AzureWebJobsStorage__accountName": "sthost",
        "AzureWebJobsStorage__credential": "managedidentity",
    }
    assert resolve(own).source == "AzureWebJobsStorage"
    by_identity = own | {"STATE_STORAGE__accountName": "stmem"}
    assert resolve(by_identity).endpoint == "https://stmem.table.core.windows.net"
    assert resolve(by_identity).credential == "default_credential"  # STATE_STORAGE__credential is not set
    keyed = by_identity | {"STATE_STORAGE_CONNECTION": KEYED.replace("keyed", "other")}
    assert resolve(keyed).source == "STATE_STORAGE_CONNECTION"


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({"AzureWebJobsStorage__accountName": "stflex"}, "tables"),
        ({"AzureWebJobsStorage__blobServiceUri": "https://stflex.blob.core.windows.net"}, "tables"),
        ({"STATE_STORAGE__tableServiceUri": "https://stmem.table.core.windows.net"}, "tables"),
        ({"STATE_STORAGE_CONNECTION": KEYED}, "tables"),
        # A custom domain in front of blobs names no table endpoint: nothing is guessed.
        ({"AzureWebJobsStorage__blobServiceUri": "https://files.example.org"}, "sqlite"),
        ({"AzureWebJobsStorage__accountName": "stflex", "STATE_STORE": "sqlite"}, "sqlite"),
    ],
)
def test_identity_settings_choose_table_storage(env: dict[str, str], backend: str) -> None:
    assert state.backend(settings.load(env).app) == backend


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AzureWebJobsStorage__credential", "clientsecret"),
        ("AzureWebJobsStorage__clientId", "my-identity"),
        ("STATE_STORAGE__accountName", "Has_Capitals"),
        ("STATE_STORAGE__tableServiceUri", "stmem.table.core.windows.net"),
    ],
)
def test_a_wrong_identity_setting_is_named(name: str, value: str) -> None:
    loaded = settings.load({name: value})
    assert list(loaded.errors) == [name]
    assert name in loaded.errors[name] and "allowed" in loaded.errors[name]


class Recorder:
    """Stands in for an azure-identity credential class and records how it was made."""

    made: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.made.append((type(self).__name__, kwargs))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    import azure.identity

    made: list[tuple[str, dict[str, Any]]] = []
    for name in ("ManagedIdentityCredential", "DefaultAzureCredential"):
        monkeypatch.setattr(azure.identity, name, type(name, (Recorder,), {"made": made}))
    return made


def test_the_credential_is_the_kind_the_settings_ask_for(recorded: list[tuple[str, dict[str, Any]]]) -> None:
    connection.credential(Target("managed_identity", "x", endpoint=FLEX, client_id=CLIENT_ID))
    connection.credential(Target("managed_identity", "x", endpoint=FLEX))
    connection.credential(Target("default_credential", "x", endpoint=FLEX))
    connection.credential(Target("default_credential", "x", endpoint=FLEX, client_id=CLIENT_ID))
    assert recorded == [
        ("ManagedIdentityCredential", {"client_id": CLIENT_ID}),
        ("ManagedIdentityCredential", {"client_id": None}),  # the system-assigned identity
        ("DefaultAzureCredential", {"managed_identity_client_id": None}),
        ("DefaultAzureCredential", {"managed_identity_client_id": CLIENT_ID}),
    ]


def test_a_connection_string_signs_in_with_its_key() -> None:
    client = connection.table_client(resolve({"AzureWebJobsStorage": KEYED}), "sometable")
    try:
        assert client.url.startswith("https://keyed.table.core.windows.net")
        assert type(client.credential).__name__ == "AzureNamedKeyCredential"
    finally:
        client.close()


def test_the_key_of_a_connection_string_is_a_secret() -> None:
    target = resolve({"STATE_STORAGE_CONNECTION": KEYED})
    assert KEY not in repr(target) and KEY not in json.dumps(target.public())
    assert set(target.secrets()) == {KEYED, KEY}
    assert resolve({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).secrets() == []  # public key


def test_health_names_the_credential_kind_and_nothing_secret() -> None:
    keyed = pipeline.health(settings.load({"AzureWebJobsStorage": KEYED, "STATE_STORE": "tables"}))
    memory = keyed.body["memory"]
    assert memory["backend"] == "tables" and memory["credential"] == "connection_string"
    assert memory["configured_by"] == "AzureWebJobsStorage"
    shown = json.dumps(keyed.body)
    assert KEY not in shown and "keyed" not in shown
    missing = pipeline.health(settings.load({"STATE_STORE": "tables"}))
    assert missing.body["memory"] == {"backend": "tables", "credential": "none", "available": False}
    assert "AzureWebJobsStorage__accountName" in " ".join(missing.body["problems"])


# -- sign-in by identity, end to end against Azurite with OAuth ------------------------------------


def token(audience: str = "https://storage.azure.com") -> str:
    """An unsigned JWT of the shape Entra ID issues; Azurite's basic OAuth checks issuer, audience, time."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "aud": audience,
        "nbf": now - 60,
        "iat": now - 60,
        "exp": now + 3600,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.signature"


class FakeManagedIdentity:
    """What ManagedIdentityCredential does on Azure, without the identity endpoint: a bearer token."""

    made: ClassVar[list[dict[str, Any]]] = []
    audience = "https://storage.azure.com"

    def __init__(self, **kwargs: Any) -> None:
        self.made.append(kwargs)
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(token(self.audience), int(time.time()) + 3600)

    def close(self) -> None:
        pass


@pytest.fixture
def identity_env(
    secure_azurite: SecureAzurite,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """Settings as infra/ sets them on Flex Consumption, pointing at the OAuth Azurite."""
    import azure.identity

    from translators.state import tables

    FakeManagedIdentity.made = []
    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", FakeManagedIdentity)
    # Azurite's certificate is its own; on Azure the system's trusted roots are used.
    monkeypatch.setitem(tables.CLIENT_OPTIONS, "connection_verify", str(secure_azurite.certificate))
    tag = uuid.uuid4().hex[:20]
    yield {
        "AzureWebJobsStorage__tableServiceUri": secure_azurite.endpoint,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "STATE_TABLE": f"t{tag}",
        "OUTBOX_TABLE": f"o{tag}",
    }
    state.close_all()
    outbox.close_all()


def test_memory_and_the_outbox_sign_in_with_the_managed_identity(identity_env: dict[str, str]) -> None:
    loaded = settings.load(identity_env)
    assert loaded.errors == {} and state.backend(loaded.app) == "tables"
    store = state.open_store(loaded.app)
    claim = store.claim("bitrise:app:build/finished:1", "slack", state.now())
    assert claim.token is not None
    store.confirm("bitrise:app:build/finished:1", "slack", claim.token, state.now())
    assert store.claim("bitrise:app:build/finished:1", "slack", state.now()).delivered
    assert outbox.open_outbox(loaded.app).stats().queued == 0
    assert FakeManagedIdentity.made and all(m == {"client_id": CLIENT_ID} for m in FakeManagedIdentity.made)

    answer = pipeline.health(loaded)
    assert answer.body["status"] == "ok", answer.body
    assert answer.body["memory"] == {
        "backend": "tables",
        "credential": "managed_identity",
        "configured_by": "AzureWebJobsStorage__*",
        "identity": "user-assigned",
        "available": True,
    }
    assert CLIENT_ID not in json.dumps(answer.body)


def test_a_token_storage_does_not_accept_is_reported_not_raised(
    identity_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(FakeManagedIdentity, "audience", "https://vault.azure.net")  # a token for elsewhere
    loaded = settings.load(identity_env)
    assert Memory(loaded.app).probe() is not None
    answer = pipeline.health(loaded)
    assert answer.status == 200 and answer.body["status"] == "degraded"
    assert answer.body["memory"]["available"] is False
    (problem,) = answer.body["problems"]
    assert problem.startswith("memory unavailable: ") and "refused" in problem, problem
    shown = json.dumps(answer.body) + caplog.text
    assert "127.0.0.1" not in shown and "eyJ" not in shown  # no endpoint, no token

"""One typed Settings: channels, app-wide settings, and errors that name the setting, never a secret."""

from __future__ import annotations

import ast
import contextlib
import json
import re
from pathlib import Path

import pytest

from tools.docs import write as write_settings_tables
from translators import settings
from translators.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("https://hooks.slack.com/services/fake/fake/fake", "slack"),
        ("https://contoso.webhook.office.com/webhookb2/fake", "teams-messagecard"),
        (
            "https://prod-01.westeurope.logic.azure.com:443/workflows/fake/triggers/manual/paths/invoke",
            "teams",
        ),
        ("https://default0000.00.environment.api.powerplatform.com/powerautomate/fake", "teams"),
        ("https://chat.acme.test/hook", None),
        ("https://evil-hooks.slack.com.acme.test/x", None),
        ("http://[::1/x", None),
    ],
)
def test_format_by_host(url: str, fmt: str | None) -> None:
    assert settings.format_for_host(url) == fmt


def test_channels_from_env(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    loaded = settings.load(
        {
            "CHANNEL_SLACK_URL": "https://hooks.slack.com/services/fake/fake/fake",
            "CHANNEL_Ops_Teams_URL": "https://chat.acme.test/hook",
            "CHANNEL_OPS_TEAMS_FORMAT": "Teams",
            "CHANNEL_OPS_TEAMS_TEMPLATES": str(tmp_path / "ops"),
            "TEMPLATES_DIR": str(tmp_path),
            "UNRELATED": "x",
        }
    )
    assert set(loaded.channels) == {"slack", "ops-teams"}
    assert loaded.channel("OPS_TEAMS").format == "teams"
    assert loaded.channel("ops-teams").templates == str(tmp_path / "ops")
    assert loaded.channel("Slack").format == "slack"
    assert loaded.templates_dir == str(tmp_path)
    assert loaded.channel_errors == {} and loaded.errors == {} and loaded.warnings == {}


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CHANNEL_X_URL": "https://chat.acme.test/SECRETPATH"}, "CHANNEL_X_FORMAT"),
        (
            {"CHANNEL_X_URL": "https://chat.acme.test/SECRETPATH", "CHANNEL_X_FORMAT": "discord"},
            "must be one of slack, teams, teams-messagecard",
        ),
        ({"CHANNEL_X_URL": "ftp://chat.acme.test/SECRETPATH"}, "not an http(s) URL"),
        ({"CHANNEL_X_FORMAT": "slack"}, "CHANNEL_X_URL is not set"),
        ({"CHANNEL_X_URL": "http://[::1/SECRETPATH"}, "CHANNEL_X_URL is not a URL that can be parsed"),
        (
            {"CHANNEL_X_URL": "https://hooks.slack.com:SECRETPATH/x"},
            "CHANNEL_X_URL is not a URL that can be parsed",
        ),
        ({"CHANNEL_X_URL": "https://hooks.slack.com/services/replace-me/SECRETPATH"}, "placeholder"),
        (
            {"CHANNEL_X_URL": "https://hooks.example.com/SECRETPATH", "CHANNEL_X_FORMAT": "slack"},
            "placeholder",
        ),
        ({"CHANNEL_X_URL": "https://hooks.slack.com/services/.../SECRETPATH"}, "placeholder"),
    ],
)
def test_configuration_errors_name_the_channel_not_the_url(env: dict[str, str], words: str) -> None:
    loaded = settings.load(env)
    assert "x" in loaded.channel_errors
    message = loaded.channel_errors["x"]
    assert "'x'" in message and words in message
    assert "SECRETPATH" not in message
    with pytest.raises(ConfigurationError) as err:
        loaded.channel("x")
    assert err.value.status == 503


def test_a_channel_that_does_not_parse_is_an_error_of_that_channel_alone() -> None:
    loaded = settings.load(
        {"CHANNEL_BAD_URL": "http://[::1/x", "CHANNEL_GOOD_URL": "https://hooks.slack.com/services/a/b/c"}
    )
    assert set(loaded.channels) == {"good"} and set(loaded.channel_errors) == {"bad"}


def test_channel_repr_hides_url() -> None:
    loaded = settings.load({"CHANNEL_A_URL": "https://hooks.slack.com/services/fake/SECRET/fake"})
    channel = loaded.channel("a")
    assert "SECRET" not in repr(channel) and "SECRET" not in str(loaded)
    assert "SECRET" not in str(channel.public())


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DELIVERY_DEADLINE_SECONDS", "abc", "seconds, > 0 and <= 60"),
        ("DELIVERY_DEADLINE_SECONDS", "600", "less than or equal to 60"),
        ("DELIVERY_MAX_ATTEMPTS", "0", "1-10"),
        ("MAX_BODY_BYTES", "junk", "bytes, > 0"),
        ("STATE_STORE", "mongodb", "sqlite | sqlite:///path | tables"),
        ("STATE_TABLE", "bad-name", "letters and digits"),
    ],
)
def test_an_invalid_value_is_named_not_silently_replaced(name: str, value: str, words: str) -> None:
    loaded = settings.load({name: value, "CHANNEL_A_URL": "https://hooks.slack.com/services/a/b/c"})
    assert set(loaded.errors) == {name}
    assert loaded.errors[name].startswith(f"{name} is not valid") and words in loaded.errors[name]
    with pytest.raises(ConfigurationError) as err:
        loaded.check()
    assert err.value.status == 503 and name in err.value.message
    assert "a" in loaded.channels, "channels are read all the same"


def test_values_are_typed_with_their_defaults() -> None:
    app = settings.load({}).app
    assert (app.delivery_deadline_seconds, app.delivery_max_attempts, app.max_body_bytes) == (
        15.0,
        4,
        1 << 20,
    )
    app = settings.load({"DELIVERY_DEADLINE_SECONDS": " 7.5 ", "WEBHOOK_TOKEN": "s3cret"}).app
    assert app.delivery_deadline_seconds == 7.5
    assert app.webhook_token is not None and app.webhook_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(app)


def test_secrets_lists_every_secret_the_log_filter_must_hide() -> None:
    loaded = settings.load(
        {
            "CHANNEL_A_URL": "https://hooks.slack.com/services/a/b/c",
            "WEBHOOK_TOKEN": "tok",
            "STATE_STORAGE_CONNECTION": "AccountKey=k",
        }
    )
    assert set(loaded.secrets()) == {"https://hooks.slack.com/services/a/b/c", "tok", "AccountKey=k"}


def test_local_settings_sample_is_a_valid_configuration_with_placeholders_to_replace() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    loaded = settings.load(values)
    assert loaded.errors == {}
    assert set(loaded.channel_errors) == {"slack", "teams", "legacy"}
    assert all("placeholder" in message for message in loaded.channel_errors.values())
    replaced = {k: v.replace("replace-me", "T0000/B0000/abc") for k, v in values.items()}
    assert {name: c.format for name, c in settings.load(replaced).channels.items()} == {
        "slack": "slack",
        "teams": "teams",
        "legacy": "teams-messagecard",
    }


def test_no_module_but_the_settings_loader_reads_the_environment() -> None:
    readers = []
    for path in [ROOT / "function_app.py", *sorted((ROOT / "translators").rglob("*.py"))]:
        if path.name == "settings.py" and path.parent.name == "translators":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # One switch of a library, not a setting of the app: translators/__init__.py turns off
        # pydantic's plugin search (a cold start's cost) unless the environment says otherwise.
        switches = [
            call.func.value
            for call in ast.walk(tree)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "setdefault"
            and [getattr(a, "value", None) for a in call.args] == ["PYDANTIC_DISABLE_PLUGINS", "__all__"]
        ]
        for node in ast.walk(tree):
            reads_environ = isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            if node in switches and path == ROOT / "translators" / "__init__.py":
                continue
            if reads_environ and isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def test_nothing_starts_a_thread_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import threading, function_app, translators.pipeline, translators.memory, translators.state;"
        "print(threading.active_count())"
    )
    env = {
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=b",
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"


def test_the_configuration_docs_are_generated_from_the_model(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    written = tmp_path / "configuration.md"
    written.write_text(docs, encoding="utf-8")
    write_settings_tables(written)  # what `make docs` does
    assert written.read_text(encoding="utf-8") == docs, "run `make docs`"
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    table = docs[docs.index(start) + len(start) : docs.index(end)].strip("\n") + "\n"
    assert table == settings.documentation()
    for name in settings.APP_SETTING_NAMES:
        assert re.search(rf"`{name}`", table)


def test_runtime_requirements_cover_every_import_of_the_app() -> None:
    """A plain `pip install -r requirements.txt` runs serve and every CLI command: nothing the app
    imports may come from requirements-dev.txt alone."""
    import sys
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    def key(name: str) -> str:
        return re.split(r"[<>=!~\[; (]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")

    required: set[str] = set()
    todo = [
        key(line) for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"
    ]
    while todo:  # what they install too (pydantic brings pydantic-core, requests urllib3, ...)
        name = todo.pop()
        if name in required:
            continue
        required.add(name)
        with contextlib.suppress(PackageNotFoundError):
            todo += [key(r) for r in requires(name) or [] if "extra ==" not in r]
    distributions = packages_distributions()
    missing = set()
    for path in [ROOT / "function_app.py", *(ROOT / "translators").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("translators", "function_app", "tests"):
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & required:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert sorted(missing) == []


def test_an_unresolved_key_vault_reference_is_named_not_used() -> None:
    """On Azure a reference that did not resolve stays as its own text: a token nobody can send."""
    reference = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=webhook-token)"
    loaded = settings.load(
        {
            "WEBHOOK_TOKEN": reference,
            "CHANNEL_BUILDS_URL": "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=channel-builds-url)",
            "CHANNEL_OK_URL": "https://hooks.slack.com/services/T0/B0/abc",
        }
    )
    assert loaded.app.webhook_token is None
    assert (
        "Key Vault reference" in loaded.errors["WEBHOOK_TOKEN"]
        and reference not in loaded.errors["WEBHOOK_TOKEN"]
    )
    assert "CHANNEL_BUILDS_URL is a Key Vault reference" in loaded.channel_errors["builds"]
    assert list(loaded.channels) == ["ok"]


# -- template folders: one home, relative to the app, a missing one is an error -----------------


def test_a_relative_template_folder_is_relative_to_the_app_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "custom-templates").mkdir()  # the current directory's is not the one meant
    loaded = settings.load(
        {"CHANNEL_B_URL": "https://hooks.slack.com/services/T/B/x", "CHANNEL_B_TEMPLATES": "custom-templates"}
    )
    assert loaded.channel("b").templates == str(settings.APP_ROOT / "custom-templates")
    assert (settings.APP_ROOT / "function_app.py").is_file()


def test_a_missing_template_folder_is_the_channels_configuration_error() -> None:
    loaded = settings.load(
        {
            "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T/B/x",
            "CHANNEL_BUILDS_TEMPLATES": "nope/",
            "CHANNEL_OTHER_URL": "https://hooks.slack.com/services/T/B/y",
        }
    )
    assert "builds" not in loaded.channels and "other" in loaded.channels
    error = loaded.channel_errors["builds"]
    assert "CHANNEL_BUILDS_TEMPLATES names no folder" in error and "relative to" in error
    assert "custom-templates/" in error


def test_a_missing_templates_dir_is_a_setting_error() -> None:
    loaded = settings.load({"TEMPLATES_DIR": "/no/such/folder"})
    assert "TEMPLATES_DIR names no folder" in loaded.errors["TEMPLATES_DIR"]
    assert loaded.templates_dir is None


# -- names that look like ours but are none -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("CHANNEL_BUILDS_EVENT", "CHANNEL_BUILDS_EVENTS"),
        ("CHANNEL_BUILDS_BUILD_SUCCES", "CHANNEL_BUILDS_BUILD_SUCCESS"),
        ("CHANNELS_BUILDS_URL", "CHANNEL_BUILDS_URL"),
        ("CHANNEL_BUILDS_TEMPLATE", "CHANNEL_BUILDS_TEMPLATES"),
        ("WEBHOOK_TOKN", "WEBHOOK_TOKEN"),
        ("OUTBOX_MAX_AGE_SECOND", "OUTBOX_MAX_AGE_SECONDS"),
    ],
)
def test_a_misspelled_setting_is_a_warning_naming_the_nearest_valid_name(name: str, nearest: str) -> None:
    loaded = settings.load({"CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T/B/x", name: "x"})
    assert loaded.warnings == {
        name: f"{name} is not a setting the app knows, so it is ignored: did you mean {nearest}?"
    }
    assert loaded.errors == {} and loaded.channel_errors == {} and "builds" in loaded.channels


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "WEBSITE_SITE_NAME",
        "FUNCTIONS_WORKER_RUNTIME",
        "AzureWebJobsStorage__queueServiceUri",
        "SLACK_API_TOKEN",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ],
)
def test_names_that_are_not_ours_are_left_alone(name: str) -> None:
    assert settings.load({name: "x"}).warnings == {}


def test_setting_warnings_are_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANNEL_LOGGED_EVENT", "build.failed")
    monkeypatch.setenv("CHANNEL_LOGGED_URL", "https://hooks.slack.com/services/T/B/x")
    with caplog.at_level("WARNING", logger="translators.settings"):
        settings.from_environ()
        settings.from_environ()
    lines = [r.getMessage() for r in caplog.records if "CHANNEL_LOGGED_EVENT" in r.getMessage()]
    assert lines == [
        "setting warning: CHANNEL_LOGGED_EVENT is not a setting the app knows, so it is ignored:"
        " did you mean CHANNEL_LOGGED_EVENTS?"
    ]


# -- plain http ----------------------------------------------------------------------------------


def test_a_chat_services_webhook_must_be_https() -> None:
    loaded = settings.load({"CHANNEL_S_URL": "http://hooks.slack.com/services/T/B/x"})
    assert "CHANNEL_S_URL must start with https://" in loaded.channel_errors["s"]


def test_plain_http_elsewhere_is_a_warning_and_loopback_is_fine() -> None:
    loaded = settings.load(
        {
            "CHANNEL_LAN_URL": "http://chat.acme.test/hook",
            "CHANNEL_LAN_FORMAT": "slack",
            "CHANNEL_HERE_URL": "http://127.0.0.1:7071/inbox/slack",
            "CHANNEL_HERE_FORMAT": "slack",
            "CHANNEL_LOCAL_URL": "http://localhost:8080/hook",
            "CHANNEL_LOCAL_FORMAT": "teams",
        }
    )
    assert set(loaded.channels) == {"lan", "here", "local"}
    assert list(loaded.warnings) == ["CHANNEL_LAN_URL"] and "plain http" in loaded.warnings["CHANNEL_LAN_URL"]

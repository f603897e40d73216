"""Every setting the app reads, as one typed model, loaded once per configuration and passed down.

App settings are environment variables on Azure and ``Values`` of ``local.settings.json`` locally.
``load(env)`` turns them into a frozen ``Settings``. It is the only reader of settings: no other
module looks at the environment, and ``from_environ`` is the one place that reads ``os.environ``.

Nothing here raises for a bad value. Each wrong setting becomes a configuration error naming the
setting and what it accepts:
- a channel's error (``channel_errors``) blocks that channel alone;
- an app-wide error (``errors``) is reported by ``/api/health`` and answered 503 by requests,
  instead of being silently replaced by a default.

A channel is ``CHANNEL_<NAME>_URL`` plus the optional ``CHANNEL_<NAME>_*`` settings in
``CHANNEL_SETTINGS``. Channel URLs, tokens and connection strings are secrets: they are held as
``SecretStr``, no message here includes one, and ``secrets()`` lists them for the log filter.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from translators.errors import ConfigurationError
from translators.formats import FORMAT_NAMES
from translators.model import EVENTS
from translators.pacing import DEFAULT_RATES
from translators.people import MENTION_MODES, Mention, MentionMode, Person, parse_directory, parse_notify

#: When a channel hears of a build outcome (App Center's modes, for every source).
SuccessMode = Literal["always", "after-failure", "never"]
FailureMode = Literal["always", "after-success", "never"]
SUCCESS_MODES: tuple[SuccessMode, ...] = ("always", "after-failure", "never")
FAILURE_MODES: tuple[FailureMode, ...] = ("always", "after-success", "never")

#: ``CHANNEL_<NAME>_<SETTING>``: what each setting of a channel means (the docs are made from this).
CHANNEL_SETTINGS: dict[str, tuple[str, str]] = {
    "URL": (
        "required (or SLACK_CHANNEL), secret",
        "the chat webhook URL of channel `<name>`; never shown in answers or logs",
    ),
    "SLACK_CHANNEL": (
        "a Slack channel id (`C…`, `G…`)",
        "instead of a URL: post with a Slack app's bot token to this channel, one message per build"
        " updated in place as the build goes (docs/slack-app.md)",
    ),
    "SLACK_TOKEN": (
        "a bot token (secret)",
        "this Slack app channel's bot token (`xoxb-…`); default `SLACK_BOT_TOKEN`",
    ),
    "BROADCAST": (
        "comma-separated patterns, or `none`",
        "Slack app channels: events whose update of the build's message also posts a reply in its"
        " thread, shown in the channel, so that people are notified (default `build.failed`)",
    ),
    "FORMAT": (
        " | ".join(FORMAT_NAMES),
        "optional when the URL's host settles it: `hooks.slack.com` -> slack, `*.webhook.office.com` -> "
        "teams-messagecard, `*.logic.azure.com`, `*.powerplatform.com`, `*.powerautomate.com` -> teams",
    ),
    "TEMPLATES": (
        "a folder",
        "a template folder for this channel alone, searched first; a relative folder is relative to the app's"
        " folder (that of function_app.py), where `custom-templates/` is deployed with the app"
        " (docs/templates.md); a folder that does not exist is this channel's configuration error",
    ),
    "EVENTS": (
        "comma-separated patterns",
        "the events this channel takes, e.g. `build.failed,crash.*` (default: every event)",
    ),
    "BRANCHES": (
        "comma-separated patterns",
        "the branches this channel hears of, shell style (`main,release/*`), tags as `tag:<pattern>`"
        " (`tag:v*`; a tag passes only those), `!` before a pattern to leave out (`!main`): an event of"
        " another branch or tag is skipped (`branch_filter`); one that names neither passes (default:"
        " every branch and tag)",
    ),
    "BRANCHES_STRICT": (
        "true | false",
        "with `_BRANCHES`: skip events that name no branch or tag too (a crash, a review)",
    ),
    "APPS": (
        "comma-separated app ids or names",
        "the apps this channel hears of: an app's id as the payload carries it, or its name as the payload"
        " or `APP_NAMES` says it; any case, `*` wildcards, `!` to leave out: an event of another app is"
        " skipped (`app_filter`); one that names no app passes (default: every app)",
    ),
    "APPS_STRICT": ("true | false", "with `_APPS`: skip events that name no app too"),
    "BUILD_SUCCESS": (" | ".join(SUCCESS_MODES), "when a successful build is sent (default `always`)"),
    "BUILD_FAILURE": (" | ".join(FAILURE_MODES), "when a failed build is sent (default `always`)"),
    "MENTION": (
        " | ".join(MENTION_MODES),
        "when this channel mentions the people of an event that `MENTIONS` maps (default `failures`)",
    ),
    "NOTIFY": (
        "comma-separated mentions",
        "who else is mentioned on a failure: Slack user ids (`U…`), a user group (`S…` or"
        " `<!subteam^S…>`), `here`, `channel`, Teams users (UPN or object id), or `MENTIONS` entries",
    ),
    "RATE": (
        "messages a second, > 0",
        "how fast this channel is sent to; more waits in the outbox, in order (default: slack 1,"
        " teams 2, teams-messagecard 1; bursts of twice the rate)",
    ),
}
_CHANNEL_SETTING = re.compile(rf"^CHANNEL_([A-Z0-9_]+?)_({'|'.join(CHANNEL_SETTINGS)})$", re.IGNORECASE)
_SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,20}$")
DEFAULT_BROADCAST = ("build.failed",)
#: fnmatch patterns over event names: letters, digits, . _ - and the wildcards * ? [ ] !
_EVENT_PATTERN = re.compile(r"^[a-z0-9._\-*?\[\]!]+$")
#: What the sample settings and the docs use in place of a real value; a URL holding one is refused.
PLACEHOLDERS = ("REPLACE_ME", "REPLACE-ME", "<", ">", "...", "…", "YOUR_", "your/webhook")
PLACEHOLDER_HOSTS = ("example.com", "example.org", "example.net", "example")

#: Hosts whose webhooks settle the format, checked as exact host or dot-suffix.
FORMAT_BY_HOST: tuple[tuple[str, str], ...] = (
    ("hooks.slack.com", "slack"),
    ("webhook.office.com", "teams-messagecard"),
    ("outlook.office.com", "teams-messagecard"),
    ("outlook.office365.com", "teams-messagecard"),
    ("logic.azure.com", "teams"),
    ("powerplatform.com", "teams"),
    ("powerautomate.com", "teams"),
)


#: The app's folder (that of function_app.py): a relative template folder is relative to it, as
#: deployed, whatever the current directory.
APP_ROOT = Path(__file__).resolve().parent.parent
#: The one home of a team's own templates: at the app's root, deployed with it (.funcignore keeps it).
CUSTOM_TEMPLATES = "custom-templates"

log = logging.getLogger("translators.settings")


def template_folder(value: str) -> Path:
    """A template folder setting as a path: ``~`` expanded, a relative one under ``APP_ROOT``."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else APP_ROOT / path


def _missing_folder(setting: str, value: str) -> str | None:
    """What is wrong with a template folder setting, or None when the folder is there."""
    path = template_folder(value)
    if path.is_dir():
        return None
    where = (
        "" if Path(value).expanduser().is_absolute() else f" (a relative folder is relative to {APP_ROOT})"
    )
    return (
        f"{setting} names no folder: {path} does not exist{where}; templates deployed with the app live"
        f" in {CUSTOM_TEMPLATES}/ (docs/templates.md)"
    )


def channel_key(name: str) -> str:
    """Channel names are case-insensitive and ``_`` and ``-`` are the same (env vars cannot hold ``-``)."""
    return name.strip().lower().replace("_", "-")


def channel_env(name: str) -> str:
    """``CHANNEL_<NAME>``, the prefix of a channel's settings."""
    return "CHANNEL_" + name.upper().replace("-", "_")


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    #: The webhook URL; None for a Slack app channel, which posts through the Web API instead.
    url: SecretStr | None = None
    format: str
    templates: str | None = None
    #: Event-name patterns this channel takes (``build.failed``, ``crash.*``); empty: every event.
    events: tuple[str, ...] = ()
    #: Branch patterns (``main``, ``release/*``) and tag patterns (``tag:v*``); empty: every branch.
    branches: tuple[str, ...] = ()
    branches_strict: bool = False
    #: App ids and names, lower case, with wildcards; empty: every app.
    apps: tuple[str, ...] = ()
    apps_strict: bool = False
    build_success: SuccessMode = "always"
    build_failure: FailureMode = "always"
    #: Messages a second (translators/pacing.py).
    rate: float = 1.0
    mention: MentionMode = "failures"
    notify: tuple[Mention, ...] = ()
    #: A Slack app channel: its channel id, bot token and Web API base URL.
    slack_channel: str | None = None
    slack_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api"
    #: Event patterns whose update also posts a broadcast thread reply (Slack app channels).
    broadcast: tuple[str, ...] = DEFAULT_BROADCAST

    @property
    def slack_app(self) -> bool:
        return self.slack_channel is not None

    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in (self.url, self.slack_token) if s is not None]

    def public(self) -> dict[str, object]:
        """What may be shown to anyone: never the URL."""
        out: dict[str, object] = {
            "name": self.name,
            "format": self.format,
            "custom_templates": bool(self.templates),
        }
        if self.slack_app:
            out["delivery"] = "slack app"  # the channel id stays out of an anonymous health check
        if self.events:
            out["events"] = list(self.events)
        if self.branches:
            out["branches"] = list(self.branches) + (["(strict)"] if self.branches_strict else [])
        if self.apps:
            out["apps"] = list(self.apps) + (["(strict)"] if self.apps_strict else [])
        if (self.build_success, self.build_failure) != ("always", "always"):
            out["build_success"], out["build_failure"] = self.build_success, self.build_failure
        out["rate"] = self.rate
        if self.mention != "failures" or self.notify:
            # Counts only: ids and names of people are not for an anonymous health check.
            out["mention"], out["notify"] = self.mention, len(self.notify)
        return out


_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
_ACCOUNT = r"^[a-z0-9]{3,24}$"
_CREDENTIAL = r"^(?i:managedidentity)$"
_GUID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"


def _setting(name: str, description: str, allowed: str = "", **kw: Any) -> Any:
    """A field read from the app setting ``name``; ``allowed`` is said in errors and in the docs."""
    return Field(alias=name, description=description, json_schema_extra={"allowed": allowed}, **kw)


class AppSettings(BaseModel):
    """The app-wide settings, one field per setting (the alias is the setting's name)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    webhook_token: SecretStr | None = _setting(
        "WEBHOOK_TOKEN",
        "a shared secret every request must carry (`X-Webhook-Token` header or `?token=`); unset: no check",
        "any text (secret)",
        default=None,
    )
    max_body_bytes: int = _setting(
        "MAX_BODY_BYTES",
        "the largest request body accepted (413 above it)",
        "bytes, > 0",
        default=1024 * 1024,
        gt=0,
    )
    templates_dir: str | None = _setting(
        "TEMPLATES_DIR",
        "a template folder for all channels, searched after a channel's own and before the built-in one",
        "a folder",
        default=None,
    )
    app_names: str | None = _setting(
        "APP_NAMES",
        "the names your team uses for apps: `source:app-id=Name` pairs separated by commas"
        " (`bitrise:305da28f92b6b419=Acme iOS,applivery:5e790ce04faa50cac52e4676=Acme Field`), or a"
        " JSON object of the same; `python -m translators samples` shows each sample's app id",
        "pairs or a JSON object",
        default=None,
    )
    mentions: str | None = _setting(
        "MENTIONS",
        "people to mention: a JSON object, or the path of a JSON file holding one, mapping how a"
        " platform names someone (git username or email, Bitrise `triggered_by`) to"
        ' `{"slack": "U012AB3CD", "teams": "dana@contoso.com", "name": "Dana"}`',
        "a JSON object or a file path",
        default=None,
    )
    bitrise_api_token: SecretStr | None = _setting(
        "BITRISE_API_TOKEN",
        "a Bitrise personal access or workspace API token: Bitrise messages are completed from its API"
        " (app title, commit, who triggered it, duration, install pages); unset: the webhook alone",
        "a token (secret)",
        default=None,
    )
    bitrise_api_url: str = _setting(
        "BITRISE_API_URL",
        "the Bitrise API's base URL (a proxy's, or a test server's)",
        "an http(s) URL",
        default="https://api.bitrise.io",
        pattern=_URL,
    )
    appstoreconnect_webhook_secret: SecretStr | None = _setting(
        "APPSTORECONNECT_WEBHOOK_SECRET",
        "the secret set on your App Store Connect webhooks: every `appstoreconnect` request must then"
        " carry a valid `x-apple-signature` (401 otherwise, nothing sent); unset: not checked",
        "any text (secret)",
        default=None,
    )
    github_webhook_secret: SecretStr | None = _setting(
        "GITHUB_WEBHOOK_SECRET",
        "the secret set on your GitHub webhook: every `github` request must then carry a valid"
        " `X-Hub-Signature-256` (401 otherwise, nothing sent); unset: not checked",
        "any text (secret)",
        default=None,
    )
    eas_webhook_secret: SecretStr | None = _setting(
        "EAS_WEBHOOK_SECRET",
        "the secret given to `eas webhook:create`: every `eas` request must then carry a valid"
        " `expo-signature` (401 otherwise, nothing sent); unset: not checked",
        "any text (secret)",
        default=None,
    )
    appcircle_webhook_secret: SecretStr | None = _setting(
        "APPCIRCLE_WEBHOOK_SECRET",
        "the secret set on your Appcircle webhook: every `appcircle` request must then carry a valid"
        " `ac_signature` (401 otherwise, nothing sent); unset: not checked",
        "any text (secret)",
        default=None,
    )
    asc_issuer_id: str | None = _setting(
        "ASC_ISSUER_ID",
        "App Store Connect API: the issuer id shown above the keys (Users and Access -> Integrations);"
        " with `ASC_KEY_ID` and `ASC_PRIVATE_KEY`, App Store Connect messages name the app, version,"
        " build and tester (docs/platforms.md#app-store-connect-api-key)",
        "a UUID",
        default=None,
        pattern=_GUID,
    )
    asc_key_id: str | None = _setting(
        "ASC_KEY_ID",
        "App Store Connect API: the key's id (the `XXXXXXXXXX` of `AuthKey_XXXXXXXXXX.p8`)",
        "letters and digits",
        default=None,
        pattern=r"^[A-Za-z0-9]{6,20}$",
    )
    asc_private_key: SecretStr | None = _setting(
        "ASC_PRIVATE_KEY",
        "App Store Connect API: the key's `.p8` file, as its text (line breaks may be written `\\n`), its"
        " base64, or the path of the file (relative to the app's folder)",
        "PEM text, base64 or a file path (secret)",
        default=None,
    )
    asc_api_url: str = _setting(
        "ASC_API_URL",
        "the App Store Connect API's base URL (a test server's)",
        "an http(s) URL",
        default="https://api.appstoreconnect.apple.com",
        pattern=_URL,
    )
    slack_bot_token: SecretStr | None = _setting(
        "SLACK_BOT_TOKEN",
        "the Slack app's bot token (`xoxb-…`) for every channel with `CHANNEL_<NAME>_SLACK_CHANNEL` and"
        " no token of its own; scope `chat:write`",
        "a token (secret)",
        default=None,
    )
    slack_api_url: str = _setting(
        "SLACK_API_URL",
        "the Slack Web API's base URL (a test server's)",
        "an http(s) URL",
        default="https://slack.com/api",
        pattern=_URL,
    )
    delivery_deadline_seconds: float = _setting(
        "DELIVERY_DEADLINE_SECONDS",
        "how long one delivery may take within a request, retries included",
        "seconds, > 0 and <= 60",
        default=15.0,
        gt=0,
        le=60,
    )
    delivery_max_attempts: int = _setting(
        "DELIVERY_MAX_ATTEMPTS", "attempts per delivery within a request", "1-10", default=4, ge=1, le=10
    )
    state_store: str = _setting(
        "STATE_STORE",
        "where memory (build outcomes, deliveries) lives: `sqlite` (`.state/state.db`), `sqlite:///path.db`,"
        " or `tables` (Azure Table Storage); unset: `tables` when Table Storage is configured below (a"
        " real connection string or identity-based settings), else `sqlite`",
        "sqlite | sqlite:///path | tables",
        default="",
        pattern=r"^(|sqlite|sqlite://.+|tables)$",
    )
    state_storage_connection: SecretStr | None = _setting(
        "STATE_STORAGE_CONNECTION",
        "an Azure Storage connection string for memory and the outbox, ahead of every setting below",
        "a connection string (secret)",
        default=None,
    )
    azure_web_jobs_storage: SecretStr | None = _setting(
        "AzureWebJobsStorage",
        "the Function App's own storage connection string; used for memory when no `STATE_STORAGE_*`"
        " setting is",
        "a connection string (secret)",
        default=None,
    )
    state_storage_table_service_uri: str | None = _setting(
        "STATE_STORAGE__tableServiceUri",
        "memory's Table Storage by identity: the table service URI (no key; see `STATE_STORAGE__credential`)",
        "an https URL",
        default=None,
        pattern=_URL,
    )
    state_storage_account_name: str | None = _setting(
        "STATE_STORAGE__accountName",
        "memory's Table Storage by identity: the account name (public Azure), instead of the URI",
        "3-24 lowercase letters and digits",
        default=None,
        pattern=_ACCOUNT,
    )
    state_storage_credential: str | None = _setting(
        "STATE_STORAGE__credential",
        "`managedidentity`: sign in with the app's managed identity; unset: DefaultAzureCredential"
        " (environment, managed identity, then `az login`)",
        "managedidentity",
        default=None,
        pattern=_CREDENTIAL,
    )
    state_storage_client_id: str | None = _setting(
        "STATE_STORAGE__clientId",
        "the client id of the user-assigned managed identity to sign in with",
        "a GUID",
        default=None,
        pattern=_GUID,
    )
    azure_web_jobs_storage_table_service_uri: str | None = _setting(
        "AzureWebJobsStorage__tableServiceUri",
        "the Function App's own storage by identity (Flex Consumption): its table service URI, used for"
        " memory when nothing above is set",
        "an https URL",
        default=None,
        pattern=_URL,
    )
    azure_web_jobs_storage_blob_service_uri: str | None = _setting(
        "AzureWebJobsStorage__blobServiceUri",
        "the Function App's own storage by identity: with no table URI or account name, memory uses"
        " the table service of the same account",
        "an https URL",
        default=None,
        pattern=_URL,
    )
    azure_web_jobs_storage_account_name: str | None = _setting(
        "AzureWebJobsStorage__accountName",
        "the Function App's own storage by identity: its account name, instead of the URIs",
        "3-24 lowercase letters and digits",
        default=None,
        pattern=_ACCOUNT,
    )
    azure_web_jobs_storage_credential: str | None = _setting(
        "AzureWebJobsStorage__credential",
        "as `STATE_STORAGE__credential`, for the Function App's own storage",
        "managedidentity",
        default=None,
        pattern=_CREDENTIAL,
    )
    azure_web_jobs_storage_client_id: str | None = _setting(
        "AzureWebJobsStorage__clientId",
        "as `STATE_STORAGE__clientId`, for the Function App's own storage",
        "a GUID",
        default=None,
        pattern=_GUID,
    )
    state_table: str = _setting(
        "STATE_TABLE",
        "the table that holds memory (created when missing)",
        "3-63 letters and digits, starting with a letter",
        default="translatorstate",
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$",
    )
    outbox_table: str = _setting(
        "OUTBOX_TABLE",
        "the table that holds the outbox with Table Storage (created when missing); with SQLite it"
        " is a table in the state file",
        "3-63 letters and digits, starting with a letter",
        default="translatoroutbox",
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$",
    )
    outbox_min_delay_seconds: float = _setting(
        "OUTBOX_MIN_DELAY_SECONDS",
        "the first wait before a queued delivery is tried again; it doubles (with jitter) each time",
        "seconds, > 0",
        default=10.0,
        gt=0,
    )
    outbox_max_delay_seconds: float = _setting(
        "OUTBOX_MAX_DELAY_SECONDS",
        "the longest wait between two attempts (a longer Retry-After is still honoured)",
        "seconds, > 0",
        default=900.0,
        gt=0,
    )
    outbox_max_age_seconds: float = _setting(
        "OUTBOX_MAX_AGE_SECONDS",
        "how long a queued delivery is tried before it becomes a dead letter",
        "seconds, > 0",
        default=86400.0,
        gt=0,
    )

    def value_of(self, name: str) -> Any:
        """The setting called ``name`` (its alias: ``APPSTORECONNECT_WEBHOOK_SECRET``)."""
        return getattr(self, _FIELD_BY_NAME[name])

    def secret_values(self) -> list[SecretStr]:
        """Every app-wide secret that is set (tokens, keys, connection strings), for the log filter."""
        return [v for v in (getattr(self, f) for f in _SECRET_FIELDS) if isinstance(v, SecretStr)]


#: The app-wide settings' names, for the cache key and the docs.
APP_SETTING_NAMES: tuple[str, ...] = tuple(f.alias or n for n, f in AppSettings.model_fields.items())
_FIELD_BY_NAME = {f.alias or n: n for n, f in AppSettings.model_fields.items()}
_SECRET_FIELDS = tuple(n for n, f in AppSettings.model_fields.items() if "SecretStr" in str(f.annotation))
#: ASC_ISSUER_ID, ASC_KEY_ID and ASC_PRIVATE_KEY: one credential, all three or none.
ASC_KEY_SETTINGS = ("ASC_ISSUER_ID", "ASC_KEY_ID", "ASC_PRIVATE_KEY")


class Settings(BaseModel):
    """What the app is configured to do: app-wide settings, channels, and what is wrong with them."""

    model_config = ConfigDict(frozen=True)

    app: AppSettings
    channels: dict[str, Channel]
    #: Channels whose settings are wrong, with what is wrong (no URLs).
    channel_errors: dict[str, str]
    #: App-wide settings that are wrong: setting name -> what is wrong and what it accepts.
    errors: dict[str, str] = {}
    #: ``APP_NAMES``: ``source:app-key`` (lower case) -> the name the team uses.
    app_names: dict[str, str] = {}
    #: ``MENTIONS``: how a platform names someone (lower case) -> their chat accounts.
    people: dict[str, Person] = {}
    #: Settings that are taken but look wrong, and unknown names that look like ours (a misspelling):
    #: setting name -> what to do. Nothing is blocked by a warning.
    warnings: dict[str, str] = {}

    def app_name(self, source: str, key: str | None) -> str | None:
        return self.app_names.get(f"{source}:{key}".lower()) if key else None

    @property
    def templates_dir(self) -> str | None:
        return self.app.templates_dir

    def channel(self, name: str) -> Channel:
        key = channel_key(name)
        if key in self.channel_errors:
            raise ConfigurationError(self.channel_errors[key], channel=key)
        return self.channels[key]

    def known(self) -> list[str]:
        return sorted({*self.channels, *self.channel_errors})

    def check(self) -> None:
        """ConfigurationError naming every wrong app-wide setting, if there is one."""
        if self.errors:
            raise ConfigurationError("; ".join(self.errors.values()), settings=sorted(self.errors))

    def secrets(self) -> list[str]:
        found = [value for c in self.channels.values() for value in c.secret_values()]
        found += [s.get_secret_value() for s in self.app.secret_values()]
        return found


def format_for_host(url: str) -> str | None:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    for suffix, fmt in FORMAT_BY_HOST:
        if host == suffix or host.endswith("." + suffix):
            return fmt
    return None


def _relevant(key: str) -> bool:
    return key[:8].upper() == "CHANNEL_" or key in APP_SETTING_NAMES or _looks_like_ours(key)


#: Prefixes of settings that Azure, the Functions host and the OS set: never one of ours misspelled.
_FOREIGN_PREFIXES = ("WEBSITE", "FUNCTIONS_", "AZURE", "APPSETTING_", "APPLICATIONINSIGHTS", "CONTAINER_")


@lru_cache(maxsize=4096)
def _looks_like_ours(key: str) -> bool:
    """An unknown name that is probably one of ours misspelled: ``CHANNELS_…``, or close to an app setting."""
    if key[:9].upper() == "CHANNELS_":
        return True
    if key in APP_SETTING_NAMES or "__" in key or key != key.upper() or key.startswith(_FOREIGN_PREFIXES):
        return False
    return bool(difflib.get_close_matches(key, _PLAIN_APP_SETTINGS, n=1, cutoff=0.85))


_PLAIN_APP_SETTINGS = [name for name in APP_SETTING_NAMES if "__" not in name and name == name.upper()]


def _unknown_settings(keys: Iterable[str], channels: Iterable[str]) -> dict[str, str]:
    """Each name that looks like a setting of ours but is none, with the nearest valid name."""
    known_channels = {channel_env(name) for name in channels}
    found: dict[str, str] = {}
    for key in keys:
        if key in APP_SETTING_NAMES or _CHANNEL_SETTING.match(key):
            continue
        upper = key.upper()
        nearest: str | None
        if upper.startswith("CHANNELS_"):
            nearest = _nearest_channel_setting("CHANNEL_" + upper[9:], known_channels) or (
                "CHANNEL_" + upper[9:]
            )
        elif upper.startswith("CHANNEL_"):
            nearest = _nearest_channel_setting(upper, known_channels)
        elif _looks_like_ours(key):
            nearest = difflib.get_close_matches(key, _PLAIN_APP_SETTINGS, n=1, cutoff=0.85)[0]
        else:
            continue
        if nearest:
            found[key] = f"{key} is not a setting the app knows, so it is ignored: did you mean {nearest}?"
        else:
            found[key] = (
                f"{key} is not a setting the app knows, so it is ignored: a channel's settings are"
                f" CHANNEL_<NAME>_ and one of {', '.join(CHANNEL_SETTINGS)}"
            )
    return found


def _nearest_channel_setting(key: str, known_channels: set[str]) -> str | None:
    """``CHANNEL_BUILDS_EVENT`` -> ``CHANNEL_BUILDS_EVENTS``: the nearest name a channel takes.

    Every split of the rest into a channel name and a setting is tried; a channel that exists wins.
    """
    rest = key[len("CHANNEL_") :]
    best: tuple[bool, float, str] | None = None
    for index, char in enumerate(rest):
        if char != "_" or index == 0:
            continue
        name, given = rest[:index], rest[index + 1 :]
        for setting in difflib.get_close_matches(given, list(CHANNEL_SETTINGS), n=1, cutoff=0.6):
            score = (
                f"CHANNEL_{name}" in known_channels,
                difflib.SequenceMatcher(None, given, setting).ratio(),
            )
            if best is None or score > best[:2]:
                best = (*score, f"CHANNEL_{name}_{setting}")
    return best[2] if best else None


def load(env: Mapping[str, str]) -> Settings:
    """The settings ``env`` holds; anything wrong is listed in ``errors`` / ``channel_errors``."""
    # Every request asks; parsing and validating again would cost more than the request's own
    # lookups, so the result is kept per distinct set of the items it is made from.
    # Only the relevant values are looked up: os.environ decodes every value it hands out.
    return _load(tuple(sorted((k, env[k]) for k in env if _relevant(k))))


def from_environ() -> Settings:
    """The process's settings: the one place that reads ``os.environ``."""
    loaded = load(os.environ)
    if loaded.warnings:
        _log_warnings(tuple(loaded.warnings.values()))
    return loaded


@lru_cache(maxsize=8)
def _log_warnings(warnings: tuple[str, ...]) -> None:
    """Each set of setting warnings is logged once per process (on its first request, at startup)."""
    for warning in warnings:
        log.warning("setting warning: %s", warning)


def environ() -> dict[str, str]:
    """A copy of the process environment (the CLI merges local.settings.json into it)."""
    return dict(os.environ)


def publish(values: Mapping[str, str]) -> None:
    """Make ``values`` the process's settings: the local server's functions read them as on Azure."""
    os.environ.update(values)


@lru_cache(maxsize=32)
def _load(items: tuple[tuple[str, str], ...]) -> Settings:
    values = dict(items)
    app, errors = _app(values)
    app_names: dict[str, str] = {}
    people: dict[str, Person] = {}
    if app.app_names:
        try:
            app_names = parse_app_names(app.app_names)
        except ValueError as exc:
            errors["APP_NAMES"] = f"APP_NAMES {exc}"
    if app.mentions:
        try:
            people = parse_directory(app.mentions, _read_text)
        except ValueError as exc:
            errors["MENTIONS"] = f"MENTIONS {exc}"
    app = _asc_key(app, errors)
    shared = app.templates_dir
    if shared:
        problem = _missing_folder("TEMPLATES_DIR", shared)
        if problem:
            errors["TEMPLATES_DIR"] = problem
            app = app.model_copy(update={"templates_dir": None})
        else:
            app = app.model_copy(update={"templates_dir": str(template_folder(shared))})
    warnings: dict[str, str] = {}
    channels, channel_errors = _channels(items, people, app, warnings)
    warnings.update(_unknown_settings(values, [*channels, *channel_errors]))
    return Settings(
        app=app,
        channels=channels,
        channel_errors=channel_errors,
        errors=errors,
        app_names=app_names,
        people=people,
        warnings=warnings,
    )


def _asc_key(app: AppSettings, errors: dict[str, str]) -> AppSettings:
    """``app`` with ``ASC_PRIVATE_KEY`` as PEM text (read from its file when it names one).

    The three ASC_* settings are one credential: some without the others is an error naming those
    missing. No message here repeats any part of the key's value.
    """
    given = [name for name in ASC_KEY_SETTINGS if app.value_of(name) is not None]
    if given and len(given) < len(ASC_KEY_SETTINGS):
        missing = [name for name in ASC_KEY_SETTINGS if name not in given]
        errors[missing[0]] = (
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but not {' and '.join(missing)}:"
            " the App Store Connect API needs all three (or none)"
        )
        return app
    if app.asc_private_key is None:
        return app
    value = app.asc_private_key.get_secret_value()
    pem = pem_text(value)
    if pem is None:
        try:
            pem = pem_text(_read_text(value))
        except (OSError, UnicodeDecodeError) as exc:
            errors["ASC_PRIVATE_KEY"] = (
                "ASC_PRIVATE_KEY is neither the key's PEM text nor its base64, and no file can be read"
                f" at that path ({type(exc).__name__})"
            )
            return app
        if pem is None:
            errors["ASC_PRIVATE_KEY"] = "ASC_PRIVATE_KEY names a file that holds no PEM private key"
            return app
    return app.model_copy(update={"asc_private_key": SecretStr(pem)})


_PEM = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----(.*?)-----END \1-----", re.DOTALL)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


def pem_text(value: str) -> str | None:
    """A private key's PEM text however a settings field mangled it, or None when it holds none.

    Portals and ``.env`` files turn line breaks into spaces or ``\\n``; some tools want the
    ``.p8`` file as base64. All of these come back as the file's PEM text, lines of 64 characters.
    """
    import base64
    import binascii

    text = value.strip().replace("\\r", "").replace("\\n", "\n")
    found = _PEM.search(text)
    if found is None:
        if len(text) < 64 or not _BASE64.match(text):
            return None
        try:
            decoded = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        if decoded.lstrip().startswith(b"-----BEGIN"):  # the whole file, base64-encoded
            return pem_text(decoded.decode("ascii", "replace"))
        kind, body = "PRIVATE KEY", base64.b64encode(decoded).decode("ascii")  # the body alone
    else:
        kind, body = found[1], "".join(found[2].split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----", ""])


def _read_text(path: str) -> str:
    """A settings file (``MENTIONS=mentions.json``), relative to the app's folder as it runs."""
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        return handle.read()


def parse_app_names(value: str) -> dict[str, str]:
    """``APP_NAMES``: ``source:app-id=Name,...`` or a JSON object; ValueError names the entry."""
    from translators import sources

    text = value.strip()
    if text.startswith("{"):
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(
                'must map "source:app-id" to a name, e.g. {"bitrise:305da28f92b6b419": "Acme iOS"}'
            )
        pairs = [(str(k), v) for k, v in data.items()]
    else:
        pairs = []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            key, eq, name = entry.partition("=")
            if not eq:
                raise ValueError(f"entry {entry[:60]!r} is not source:app-id=Name")
            pairs.append((key, name))
    known = sources.registry()
    names: dict[str, str] = {}
    for key, name in pairs:
        source, colon, app_key = key.strip().partition(":")
        if not colon or not app_key.strip():
            raise ValueError(
                f"entry {key[:60]!r} must start with source:app-id (e.g. bitrise:305da28f92b6b419)"
            )
        if source.strip().lower() not in known:
            raise ValueError(f"entry {key[:60]!r}: unknown source {source!r}; sources are {', '.join(known)}")
        if not name.strip() or len(name.strip()) > 100 or any(ord(c) < 32 for c in name):
            raise ValueError(f"entry {key[:60]!r}: the name must be 1-100 characters on one line")
        names[f"{source.strip()}:{app_key.strip()}".lower()] = name.strip()
    return names


#: What an app setting holds when Azure could not resolve its Key Vault reference (infra/ writes them).
UNRESOLVED = (
    "is a Key Vault reference Azure did not resolve: check that the secret exists and that the app's"
    " identity has the Key Vault Secrets User role (the portal shows the reference's status under"
    " Environment variables)"
)


def unresolved_reference(value: str) -> bool:
    return value.lstrip().startswith("@Microsoft.KeyVault(")


def _app(values: Mapping[str, str]) -> tuple[AppSettings, dict[str, str]]:
    """App-wide settings; a wrong one is named in the errors and its default is used meanwhile."""
    data = {k: v.strip() for k, v in values.items() if k in APP_SETTING_NAMES and v.strip()}
    errors: dict[str, str] = {}
    for name in [k for k, v in data.items() if unresolved_reference(v)]:
        errors[name] = f"{name} {UNRESOLVED}"
        del data[name]
    for _ in range(len(APP_SETTING_NAMES) + 1):  # each pass drops at least one wrong setting
        try:
            return AppSettings.model_validate(data), errors
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                name = str(err["loc"][0]) if err["loc"] else ""
                if name in data:
                    errors[name] = _explain(name, err["msg"])
                    del data[name]
    return AppSettings(), errors


def _explain(name: str, problem: str) -> str:
    field = next(f for n, f in AppSettings.model_fields.items() if (f.alias or n) == name)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    allowed = extra.get("allowed")
    return f"{name} is not valid ({problem[:1].lower()}{problem[1:]})" + (
        f"; allowed: {allowed}" if allowed else ""
    )


def _channels(
    items: Iterable[tuple[str, str]], people: Mapping[str, Person], app: AppSettings, warnings: dict[str, str]
) -> tuple[dict[str, Channel], dict[str, str]]:
    raw: dict[str, dict[str, str]] = {}
    for key, value in items:
        match = _CHANNEL_SETTING.match(key)
        if match:
            raw.setdefault(channel_key(match[1]), {})[match[2].upper()] = value.strip()
    channels: dict[str, Channel] = {}
    errors: dict[str, str] = {}
    for name, values in sorted(raw.items()):
        try:
            channels[name] = _channel(name, values, people, app, warnings)
        except ValueError as exc:
            errors[name] = f"channel '{name}': {exc}"
    return channels, errors


def _channel(
    name: str,
    values: Mapping[str, str],
    people: Mapping[str, Person],
    app: AppSettings,
    warnings: dict[str, str],
) -> Channel:
    """One channel from its settings; ValueError naming the setting when one is wrong."""
    env_name = channel_env(name)
    if values.get("SLACK_CHANNEL"):
        return _slack_app_channel(name, values, people, app)
    for key in ("SLACK_TOKEN", "BROADCAST"):
        if values.get(key):
            raise ValueError(f"{env_name}_{key} is for Slack app channels: set {env_name}_SLACK_CHANNEL too")
    url = values.get("URL", "")
    if not url:
        raise ValueError(f"{env_name}_URL is not set (or {env_name}_SLACK_CHANNEL for a Slack app channel)")
    if unresolved_reference(url):
        raise ValueError(f"{env_name}_URL {UNRESOLVED}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{env_name}_URL is not a URL that can be parsed") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{env_name}_URL is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(host):
        if format_for_host(url):
            raise ValueError(
                f"{env_name}_URL must start with https:// ({host} takes webhooks over https only)"
            )
        warnings[f"{env_name}_URL"] = (
            f"{env_name}_URL is plain http: the messages and the URL itself travel unencrypted; use https"
        )
    if any(p.lower() in url.lower() for p in PLACEHOLDERS) or any(
        host == h or host.endswith("." + h) for h in PLACEHOLDER_HOSTS
    ):
        raise ValueError(
            f"{env_name}_URL is a placeholder, not a webhook URL: paste the URL your chat tool gave you"
        )
    fmt = values.get("FORMAT", "").lower() or format_for_host(url)
    if fmt is None:
        raise ValueError(
            "the URL's host does not say which format it takes; "
            f"set {env_name}_FORMAT to one of {', '.join(FORMAT_NAMES)}"
        )
    if fmt not in FORMAT_NAMES:
        raise ValueError(f"{env_name}_FORMAT must be one of {', '.join(FORMAT_NAMES)}")
    return Channel(name=name, url=SecretStr(url), format=fmt, **_common(values, people, env_name, fmt))


def _slack_app_channel(
    name: str, values: Mapping[str, str], people: Mapping[str, Person], app: AppSettings
) -> Channel:
    env_name = channel_env(name)
    channel_id = values["SLACK_CHANNEL"].strip()
    if values.get("URL"):
        raise ValueError(
            f"set {env_name}_URL (a webhook) or {env_name}_SLACK_CHANNEL (a Slack app), not both"
        )
    if not _SLACK_CHANNEL_ID.match(channel_id):
        raise ValueError(
            f"{env_name}_SLACK_CHANNEL must be a channel id like C0123ABCDEF (in Slack: the channel's name"
            " -> About -> Channel ID), not its name"
        )
    if values.get("FORMAT", "slack").lower() != "slack":
        raise ValueError(f"{env_name}_FORMAT must be slack for a Slack app channel")
    token = values.get("SLACK_TOKEN") or (
        app.slack_bot_token.get_secret_value() if app.slack_bot_token else ""
    )
    if not token:
        raise ValueError(
            f"{env_name}_SLACK_CHANNEL needs a bot token: set SLACK_BOT_TOKEN or {env_name}_SLACK_TOKEN"
        )
    if unresolved_reference(token):
        raise ValueError(f"the bot token of {env_name} {UNRESOLVED}")
    given = values.get("BROADCAST", "")
    if given.strip().lower() == "none":
        broadcast: tuple[str, ...] = ()
    else:
        broadcast = _patterns(given, f"{env_name}_BROADCAST") if given.strip() else DEFAULT_BROADCAST
    return Channel(
        name=name,
        format="slack",
        slack_channel=channel_id,
        slack_token=SecretStr(token),
        slack_api_url=app.slack_api_url.rstrip("/"),
        broadcast=broadcast,
        **_common(values, people, env_name, "slack"),
    )


def _patterns(value: str, setting: str) -> tuple[str, ...]:
    """Event-name patterns (``build.failed,crash.*``); ValueError naming a pattern that matches nothing."""
    patterns = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
    for pattern in patterns:
        if not _EVENT_PATTERN.match(pattern):
            raise ValueError(f"{setting} has an invalid pattern {pattern!r}")
        if not any(fnmatchcase(event, pattern) for event in EVENTS):
            # A typo would silently mute the channel; every event name is known, so say so now.
            raise ValueError(
                f"{setting} pattern {pattern!r} matches no event; events are {', '.join(EVENTS)}"
            )
    return patterns


def _common(
    values: Mapping[str, str], people: Mapping[str, Person], env_name: str, fmt: str
) -> dict[str, Any]:
    """The settings every kind of channel has: templates, rules, pace, mentions."""
    events = _patterns(values.get("EVENTS", ""), f"{env_name}_EVENTS")
    rate = DEFAULT_RATES.get(fmt, 1.0)
    if values.get("RATE"):
        try:
            rate = float(values["RATE"])
        except ValueError:
            rate = 0.0
        if not (0 < rate <= 100_000):  # also NaN
            raise ValueError(f"{env_name}_RATE must be a number of messages a second, > 0")
    return {
        "templates": _templates(values.get("TEMPLATES", ""), f"{env_name}_TEMPLATES"),
        "events": events,
        "branches": _branches(values.get("BRANCHES", ""), f"{env_name}_BRANCHES"),
        "branches_strict": _strict(values, "BRANCHES", env_name),
        "apps": _apps(values.get("APPS", "")),
        "apps_strict": _strict(values, "APPS", env_name),
        "build_success": _mode(values, "BUILD_SUCCESS", SUCCESS_MODES, env_name),
        "build_failure": _mode(values, "BUILD_FAILURE", FAILURE_MODES, env_name),
        "rate": rate,
        "mention": _mode(values, "MENTION", MENTION_MODES, env_name),
        "notify": _notify(values.get("NOTIFY", ""), people, env_name),
    }


def _templates(value: str, setting: str) -> str | None:
    """A channel's template folder as a full path; ValueError when there is no such folder."""
    if not value.strip():
        return None
    problem = _missing_folder(setting, value.strip())
    if problem:
        raise ValueError(problem)
    return str(template_folder(value.strip()))


def _loopback(host: str) -> bool:
    return host.lower() in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost")


#: The prefix that makes a ``_BRANCHES`` pattern one for tags.
TAG_PREFIX = "tag:"


def _items(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


def _branches(value: str, setting: str) -> tuple[str, ...]:
    """Branch patterns, and tag patterns written ``tag:<pattern>``; ValueError naming an empty one."""
    found = []
    for pattern in _items(value):
        negated, rest = ("!", pattern[1:].strip()) if pattern.startswith("!") else ("", pattern)
        if rest.lower().startswith(TAG_PREFIX):
            rest = TAG_PREFIX + rest[len(TAG_PREFIX) :].strip()
        if rest in ("", TAG_PREFIX):
            raise ValueError(f"{setting} has an empty pattern {pattern!r}; write tag:v* for every v-tag")
        found.append(negated + rest)
    return tuple(found)


def _apps(value: str) -> tuple[str, ...]:
    """App ids and names as ``rules`` compares them: lower case."""
    return tuple(dict.fromkeys(p.lower() for p in _items(value)))


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _strict(values: Mapping[str, str], what: str, env_name: str) -> bool:
    """``CHANNEL_<NAME>_<WHAT>_STRICT``; ValueError when it is not a yes or no, or has no list to apply to."""
    given = values.get(f"{what}_STRICT", "").strip().lower()
    if given not in _TRUE + _FALSE:
        raise ValueError(f"{env_name}_{what}_STRICT must be true or false")
    if given in _TRUE and not values.get(what, "").strip():
        raise ValueError(
            f"{env_name}_{what}_STRICT is set, but {env_name}_{what} is not: set both or neither"
        )
    return given in _TRUE


def _notify(value: str, people: Mapping[str, Person], env_name: str) -> tuple[Mention, ...]:
    try:
        return parse_notify(value, people)
    except ValueError as exc:
        raise ValueError(f"{env_name}_NOTIFY: {exc}") from None


def _mode[M: str](values: Mapping[str, str], key: str, modes: tuple[M, ...], env_name: str) -> M:
    given = values.get(key, "").strip().lower().replace("_", "-")
    if not given:
        return modes[0]
    for mode in modes:
        if mode == given:
            return mode
    raise ValueError(f"{env_name}_{key} must be one of {', '.join(modes)}")


def documentation() -> str:
    """The settings tables of docs/configuration.md, made from the model (a test keeps them equal)."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|")  # a pipe inside a cell would end it

    rows = ["| setting | allowed | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in AppSettings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = field.default
        shown = "unset" if default in (None, "") else f"`{default}`"
        allowed = cell(extra.get("allowed", ""))
        rows.append(f"| `{field.alias or name}` | {allowed} | {shown} | {cell(field.description)} |")
    rows += ["", "| channel setting | allowed | meaning |", "| --- | --- | --- |"]
    for key, (allowed, meaning) in CHANNEL_SETTINGS.items():
        rows.append(f"| `CHANNEL_<NAME>_{key}` | {cell(allowed)} | {cell(meaning)} |")
    return "\n".join(rows) + "\n"

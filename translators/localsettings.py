"""``local.settings.json``, read the way Azure Functions Core Tools (``func start``) reads it.

Core Tools loads the file's ``Values`` into the worker's environment and skips every name the
environment already holds ("Skipping 'X' from local settings as it's already defined in current
environment variables"), so an exported variable wins over the file. The local server and the
CLI do the same. https://learn.microsoft.com/azure/azure-functions/functions-develop-local#local-settings-file
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "local.settings.json"


class SettingsFileError(Exception):
    """The file exists but cannot be used; the message names the file and what is wrong."""


def read_values(path: Path) -> dict[str, str]:
    """The ``Values`` of a local.settings.json file, every value as a string (as app settings are)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SettingsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsFileError(f"{path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsFileError(
            f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise SettingsFileError(f'{path} must hold a JSON object with a "Values" object')
    if data.get("IsEncrypted") is True:
        # Core Tools encrypts with a machine key (`func settings decrypt` undoes it); we cannot.
        raise SettingsFileError(f"{path} is encrypted; run `func settings decrypt` first")
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsFileError(f'{path}: "Values" must be an object of setting names to strings')
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise SettingsFileError(
                f'{path}: "Values"."{key}" must be a string, not a JSON {type(value).__name__}'
            )
        # Core Tools accepts numbers and booleans and hands them over as text.
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def find(explicit: str | None, cwd: Path | None = None) -> Path | None:
    """The file to read: the one named (which must exist), else ``local.settings.json`` here if any.

    Like ``func start``, the default is the file in the directory the server is started from.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SettingsFileError(f"no settings file at {path}")
        return path
    default = (cwd or Path.cwd()) / FILE_NAME
    return default if default.is_file() else None


def merged(values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The settings a function would see: the file's values, overridden by the environment."""
    return {**values, **environ}

"""A cold start loads only what its first request needs (bench/README.md, cold start).

Each test runs a fresh interpreter, as Azure does after an idle spell: what an import or a first
request pulls in cannot be seen from this process, where other tests have imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Settings a developer's own environment may hold: kept out, so that every run sees the same app.
APP_SETTING_PREFIXES = ("CHANNEL_", "TEMPLATES_DIR", "WEBHOOK_TOKEN", "MAX_BODY_BYTES", "STATE_", "DELIVERY_")

#: Never needed to import the app or to answer a dry run of one source in one format: every other
#: source and format, the output models (a rendered body passes the plain check first), the HTTP
#: client, Azure Tables, Markdown, the outbox and the admin, drain and serve code paths.
NEVER_ON_A_COLD_DRY_RUN = (
    "translators.sources.appcenter",
    "translators.sources.appcircle",
    "translators.sources.appflow",
    "translators.sources.applivery",
    "translators.sources.appstoreconnect",
    "translators.sources.eas",
    "translators.sources.github",
    "translators.sources.xcodecloud",
    "translators.sources._api",
    "translators.sources._asc_api",
    "translators.sources._bitrise_api",
    "translators.formats.teams",
    "translators.formats.messagecard",
    "translators.formats._adaptivecard",
    "translators.formats._messagecard",
    "translators.formats._blockkit",
    "translators.delivery",
    "translators.outbox",
    "translators.drainer",
    "translators.admin",
    "translators.server",
    "translators.preview",
    "translators.samples",
    "translators.state.tables",
    "markdown_it",
    "requests",
    "urllib3",
    "azure.data",
    "azure.core",
    "waitress",
)

_CHILD = """
import json, sys
import function_app
imported = set(sys.modules)
answer = None
if sys.argv[1] == "request":
    import azure.functions as func
    with open(sys.argv[2], "rb") as fh:
        body = fh.read()
    request = func.HttpRequest(
        method="POST",
        url="http://localhost/api/bitrise/cold?dry_run=1",
        headers=json.loads(sys.argv[3]),
        params={"dry_run": "1"},
        route_params={"source": "bitrise", "channel": "cold"},
        body=body,
    )
    registered = {f.get_function_name(): f for f in function_app.app.get_functions()}
    response = registered["translate"].get_user_function()(request)
    answer = json.loads(response.get_body())["status"]
print(json.dumps({"imported": sorted(imported), "loaded": sorted(sys.modules), "answer": answer}))
"""


def _cold(tmp_path: Path, mode: str) -> dict[str, object]:
    from translators import samples

    sample = samples.get("bitrise/build-failed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTING_PREFIXES)}
    env |= {
        "CHANNEL_COLD_URL": "http://127.0.0.1:9/never-contacted",
        "CHANNEL_COLD_FORMAT": "slack",
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
    }
    argv = [sys.executable, "-c", _CHILD, mode, str(sample.path), json.dumps(sample.headers)]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def _loaded(modules: object, names: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_app_loads_no_source_format_or_client(tmp_path: Path) -> None:
    """The worker imports function_app to index it: no source, format or HTTP client comes with it."""
    report = _cold(tmp_path, "import")
    assert _loaded(report["imported"], NEVER_ON_A_COLD_DRY_RUN) == []
    sources_and_formats = ("translators.sources.bitrise", "translators.formats.slack", "sqlite3")
    assert _loaded(report["imported"], sources_and_formats) == [], "loaded before a request names them"


def test_a_first_request_loads_its_own_source_and_format_only(tmp_path: Path) -> None:
    report = _cold(tmp_path, "request")
    assert report["answer"] == "dry_run"
    assert _loaded(report["loaded"], NEVER_ON_A_COLD_DRY_RUN) == []
    assert "translators.sources.bitrise" in report["loaded"]  # type: ignore[operator]
    assert "translators.formats.slack" in report["loaded"]  # type: ignore[operator]

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
    "gunicorn",
    "translators.host",
    "translators.workers",
)

#: Every module of ours that importing the app loads (the worker imports function_app to index
#: it): the pipeline and what every request needs, no source, format, destination or store.
ON_IMPORT = (
    "function_app",
    "translators",
    "translators.deliverer",
    "translators.destinations",
    "translators.errors",
    "translators.formats",
    "translators.guard",
    "translators.logs",
    "translators.memory",
    "translators.model",
    "translators.pacing",
    "translators.people",
    "translators.pipeline",
    "translators.render",
    "translators.results",
    "translators.rules",
    "translators.settings",
    "translators.sources",
    "translators.state",
    "translators.state.connection",
    "translators.text",
)
#: ... and what a first dry run of a Bitrise build to a Slack webhook channel adds: its source, its
#: format with the plain Block Kit check (not the pydantic output models), its destination, its store.
ON_A_COLD_DRY_RUN = (
    *ON_IMPORT,
    "translators.destinations.webhook",
    "translators.formats._blockcheck",
    "translators.formats.slack",
    "translators.sources.bitrise",
    "translators.state.sqlite",
)


_CHILD = """
import json, sys
import jinja2
compiled = []
_compile = jinja2.Environment.compile
def counting(self, source, name=None, *args, **kwargs):
    compiled.append(name)
    return _compile(self, source, name, *args, **kwargs)
jinja2.Environment.compile = counting
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
import pydantic.plugin._loader as plugins
report = {"imported": sorted(imported), "loaded": sorted(sys.modules), "answer": answer}
report |= {"compiled": compiled, "plugins_searched": plugins._plugins is not None}
print(json.dumps(report))
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


def _ours(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules if m == "function_app" or m.split(".")[0] == "translators")


def test_importing_the_app_loads_no_source_format_or_client(tmp_path: Path) -> None:
    """The worker imports function_app to index it: no source, format or HTTP client comes with it."""
    report = _cold(tmp_path, "import")
    assert _loaded(report["imported"], NEVER_ON_A_COLD_DRY_RUN) == []
    sources_and_formats = ("translators.sources.bitrise", "translators.formats.slack", "sqlite3")
    assert _loaded(report["imported"], sources_and_formats) == [], "loaded before a request names them"
    assert _ours(report["imported"]) == sorted(ON_IMPORT), "a module of ours joined (or left) the import"


def test_a_first_request_loads_its_own_source_and_format_only(tmp_path: Path) -> None:
    report = _cold(tmp_path, "request")
    assert report["answer"] == "dry_run"
    assert _loaded(report["loaded"], NEVER_ON_A_COLD_DRY_RUN) == []
    assert _ours(report["loaded"]) == sorted(ON_A_COLD_DRY_RUN), (
        "a module of ours joined (or left) the request"
    )


def test_a_first_request_loads_its_template_compiled_and_searches_no_plugins(tmp_path: Path) -> None:
    """The package ships compiled templates (tools/package-bytecode): a cold start compiles none,
    and pydantic does not read every installed distribution's metadata looking for plugins."""
    from translators import render

    assert "templates/slack/default.json.j2" in render.precompile()
    report = _cold(tmp_path, "request")
    assert report["answer"] == "dry_run"
    assert report["compiled"] == []
    assert report["plugins_searched"] is False

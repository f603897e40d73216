"""The preview page of ``python -m translators serve``: every sample in every format, drawn.

``GET /preview`` renders every bundled sample through the templates on disk as they are now (a
reload shows an edit) and draws each message the way its chat tool would: Teams cards with
Microsoft's own ``adaptivecards`` renderer, markdown-it and the Teams light host config (npm
packages, loaded by the page from ``node_modules``), Slack and MessageCard with our HTML stand-ins
(``slack_html``, ``messagecard_html``). A template that fails shows its file, line and error in
place of its message. ``POST /preview`` draws a pasted payload the same way, and ``GET /inbox`` in
a browser draws what the local inbox received.

The page's ``data-sample``/``data-format`` attributes and ``data-drawn`` (``ok``/``error``) are
what the browser tests and ``make screenshots`` look for. Only the local server imports this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translators import formats, pipeline, render, samples, sources
from translators import settings as settings_module
from translators.errors import Ignored, TranslatorError
from translators.model import Notification
from translators.preview import messagecard_html, slack_html
from translators.preview.markup import attr, esc, script_json
from translators.render import TemplateFailure, TemplateSet, template_sets
from translators.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC = Path(__file__).resolve().parent / "static"
NODE_MODULES = ROOT / "node_modules"
#: What the page loads from npm packages (package.json), by the name it asks for.
VENDOR: dict[str, Path] = {
    "adaptivecards.js": NODE_MODULES / "adaptivecards" / "dist" / "adaptivecards.min.js",
    "markdown-it.js": NODE_MODULES / "markdown-it" / "dist" / "markdown-it.min.js",
    "microsoft-teams-light.json": NODE_MODULES
    / "adaptivecards-designer"
    / "lib"
    / "hostConfigs"
    / "microsoft-teams-light.json",
    "teams-container-light.css": NODE_MODULES
    / "adaptivecards-designer"
    / "dist"
    / "containers"
    / "teams-container-light.css",
}
FORMAT_LABELS = {"slack": "Slack", "teams": "Teams (Workflows)", "teams-messagecard": "Teams (MessageCard)"}
BLOCK_KIT_BUILDER = "https://app.slack.com/block-kit-builder/#"
PASTED = "pasted"


#: Marks a sample drawn with the example settings of translators/samples/mapped.json.
MAPPED_SUFFIX = " (mapped: example APP_NAMES, MENTIONS and API details)"


def teams_renderer_installed() -> bool:
    return all(path.is_file() for path in VENDOR.values())


@dataclass(frozen=True)
class Drawn:
    """One message to draw: its body, or the template failure that took its place."""

    sample: str
    format: str
    body: dict[str, Any] | None = None
    template: str | None = None
    failure: TemplateFailure | None = None

    @property
    def error(self) -> str | None:
        """The failure as the page shows it: named as answers, logs and check name it."""
        return None if self.failure is None else f"{self.failure.where}: {self.failure.message}"


def renderers(dirs: Sequence[Path]) -> list[render.Renderer]:
    """Fresh renderers, one per format, for one page: an edit on disk shows at the next reload."""
    return [render.Renderer(fmt, dirs, live=True) for fmt in formats.registry().values()]


def draw_notification(n: Notification, sample: str, renderers: Sequence[render.Renderer]) -> list[Drawn]:
    """``n`` rendered in every format; a template failure takes the place of its message."""
    out = []
    for renderer in renderers:
        try:
            _, body = pipeline.render_checked(renderer, n)
        except TemplateFailure as exc:
            out.append(Drawn(sample, renderer.fmt.name, failure=exc))
        else:
            template = renderer.shown(n.source, n.event)
            out.append(Drawn(sample, renderer.fmt.name, body=body, template=template))
    return out


def samples_drawn(dirs: Sequence[Path]) -> list[tuple[str, str, list[Drawn]]]:
    """(sample id, event, drawings) for every bundled sample the sources turn into a message."""
    page_renderers = renderers(dirs)
    rows = []
    for sample in samples.all_samples():
        result = samples.notification(sample)
        if isinstance(result, Notification):
            rows.append((sample.id, result.event, draw_notification(result, sample.id, page_renderers)))
    # The same samples as a configured team sees them: app names, mentions, the API's details.
    example = settings_module.load(samples.mapped_env([r.fmt.name for r in page_renderers]))
    for sample in samples.mapped_samples():
        mapped = samples.notification(sample, example)
        if isinstance(mapped, Notification):
            key = f"{sample.id}{MAPPED_SUFFIX}"
            drawn = [
                # Each format as a channel of that format mentions: its own fixed mentions.
                draw_notification(
                    pipeline.for_channel(example.channel(r.fmt.name), mapped, example), key, [r]
                )[0]
                for r in page_renderers
            ]
            rows.append((key, mapped.event, drawn))
    return rows


@dataclass(frozen=True)
class Pasted:
    """A payload pasted into the page's form."""

    source: str
    headers: str
    payload: str

    def parsed_headers(self) -> dict[str, str]:
        out = {}
        for line in self.headers.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip():
                out[name.strip().lower()] = value.strip()
        return out

    def translate(self) -> tuple[Notification | None, str | None]:
        """The notification, or why there is none (as the function would answer)."""
        try:
            payload = pipeline.parse_body(self.payload.encode("utf-8", errors="replace"))
            headers = self.parsed_headers()
            source = sources.get(self.source)
            if source is None:
                source = sources.detect(payload, headers)
            result = source.translate(payload, headers)
        except TranslatorError as exc:
            details = getattr(exc, "errors", ())
            lines = [_on_the_form(exc.message), *(f"{e.path}: {e.message}" for e in details)]
            return None, "\n".join(lines)
        if isinstance(result, Ignored):
            return None, f"{source.label} ignores this payload: {result.reason}"
        return result, None


def _on_the_form(message: str) -> str:
    """The function's answer as the form's words: here the source is chosen in the Source menu,
    not named in the URL."""
    return message.replace(
        f"{sources.NAME_IT} instead of '{sources.AUTO}'",
        "choose it in the Source menu instead of auto",
    ).replace(f"or {sources.NAME_IT}", "or choose the source in the Source menu")


# ---------------------------------------------------------------------------------------------
# HTML


def slack_names(*settings: Settings) -> dict[str, str]:
    """Slack ids -> the names MENTIONS and NOTIFY give them, for the Slack stand-in's mentions."""
    names: dict[str, str] = {}
    for loaded in settings:
        names |= {p.slack: p.name for p in loaded.people.values() if p.slack}
        for channel in loaded.channels.values():
            names |= {m.slack: m.name for m in channel.notify if m.slack and m.slack_kind != "broadcast"}
    return names


def _figure(
    d: Drawn,
    caption: str | None = None,
    extra: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    attrs = {"data-sample": d.sample, "data-format": d.format, **(extra or {})}
    label = esc(caption or FORMAT_LABELS.get(d.format, d.format))
    tools: list[str] = []
    if d.body is not None:
        tools.append('<button type="button" class="tool" data-copy>Copy JSON</button>')
        if d.format == "slack":
            builder = BLOCK_KIT_BUILDER + json.dumps(d.body, ensure_ascii=False, separators=(",", ":"))
            tools.append(
                f'<a class="tool" href="{attr(_quote_fragment(builder))}" target="_blank" '
                'rel="noopener noreferrer">Open in Block Kit Builder</a>'
            )
    where = f'<span class="template">{esc(d.template)}</span>' if d.template else ""
    head = f'<figcaption><span class="format">{label}</span> {where} {"".join(tools)}</figcaption>'
    if d.error is not None:
        attrs["data-drawn"] = "error"
        inner = f'<pre class="template-error">{esc(d.error)}</pre>'
    elif d.format == "slack":
        attrs["data-drawn"] = "ok"
        inner = slack_html.draw(d.body, names)
    elif d.format == "teams-messagecard":
        attrs["data-drawn"] = "ok"
        inner = messagecard_html.draw(d.body)
    else:  # drawn in the browser by Microsoft's renderer (static/preview.js)
        attrs["data-drawn"] = "pending"
        inner = '<div class="teams-card"></div>'
    body = f'<script type="application/json" class="body">{script_json(d.body)}</script>' if d.body else ""
    attributes = " ".join(f'{k}="{attr(v)}"' for k, v in attrs.items())
    return f'<figure class="message" {attributes}>{head}<div class="drawing">{inner}</div>{body}</figure>'


def _quote_fragment(url: str) -> str:
    from urllib.parse import quote

    base, _, fragment = url.partition("#")
    return f"{base}#{quote(fragment, safe='')}"


def _head(title: str) -> str:
    vendor = ""
    if teams_renderer_installed():
        vendor = (
            '<link rel="stylesheet" href="/preview/vendor/teams-container-light.css">'
            '<script src="/preview/vendor/markdown-it.js"></script>'
            '<script src="/preview/vendor/adaptivecards.js"></script>'
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/preview/static/preview.css">'
        f'{vendor}<script src="/preview/static/preview.js" defer></script></head>'
    )


def _missing_renderer_notice() -> str:
    if teams_renderer_installed():
        return ""
    return (
        '<p class="notice" id="teams-renderer-missing">Teams cards are drawn by Microsoft\'s '
        "<code>adaptivecards</code> renderer, which is not installed: install Node.js and npm, then run "
        "<code>make node</code> (<code>npm ci</code>) and reload. Slack and MessageCard are drawn below; "
        "each Teams card's JSON can still be copied.</p>"
    )


def page(settings: Settings, choice: str = "builtin", pasted: Pasted | None = None) -> tuple[int, str]:
    """The preview page (status, HTML) for one template set, with a pasted payload if any."""
    sets = template_sets(settings)
    chosen = next((s for s in sets if s.key == choice), None)
    status = 200
    notice = ""
    if chosen is None:
        status = 404 if choice != "builtin" else 200
        notice = f'<p class="notice">No template set {esc(choice)!s}; showing the built-in templates.</p>'
        chosen = sets[0]
    options = "".join(
        f'<option value="{attr(s.key)}"{" selected" if s is chosen else ""}>{esc(s.label)}</option>'
        for s in sets
    )
    out = [
        _head("Message preview"),
        "<body><header><h1>Message preview</h1>",
        '<form method="get" action="/preview" class="sets"><label>Templates '
        f'<select name="templates" onchange="this.form.submit()">{options}</select></label>'
        '<noscript><button type="submit">Show</button></noscript></form>',
        '<nav><a href="/inbox">Inbox</a></nav></header>',
        notice,
        _missing_renderer_notice(),
        _paste_form(chosen, pasted),
    ]
    if pasted is not None:
        n, problem = pasted.translate()
        out.append('<section class="row" id="pasted"><h2>Pasted payload</h2>')
        if problem is not None:
            out.append(f'<pre class="payload-error">{esc(problem)}</pre>')
        else:
            assert n is not None
            out.append(f'<p class="event">{esc(n.source_label)} · {esc(n.event)}</p><div class="cells">')
            out += [_figure(d) for d in draw_notification(n, PASTED, renderers(chosen.dirs))]
            out.append("</div>")
        out.append("</section>")
    names = slack_names(settings, settings_module.load(samples.mapped_env(list(formats.FORMAT_NAMES))))
    for sample_id, event, drawn in samples_drawn(chosen.dirs):
        out.append(
            f'<section class="row"><h2>{esc(sample_id)} <small>{esc(event)}</small></h2><div class="cells">'
        )
        out += [_figure(d, names=names) for d in drawn]
        out.append("</div></section>")
    out.append("</body></html>")
    return status, "".join(out)


def _paste_form(chosen: TemplateSet, pasted: Pasted | None) -> str:
    names = ["auto", *sources.registry()]
    current = pasted.source if pasted else "auto"
    options = "".join(
        f'<option value="{attr(n)}"{" selected" if n == current else ""}>{esc(n)}</option>' for n in names
    )
    return (
        f'<details class="paste"{" open" if pasted else ""}><summary>Draw a payload of your own</summary>'
        '<form method="post" action="/preview">'
        f'<input type="hidden" name="templates" value="{attr(chosen.key)}">'
        f'<label>Source <select name="source">{options}</select></label>'
        '<label>Headers, one per line <textarea name="headers" rows="2" '
        'placeholder="Bitrise-Event-Type: build/finished">'
        f"{esc(pasted.headers if pasted else '')}</textarea></label>"
        '<label>Payload (JSON) <textarea name="payload" rows="10" required>'
        f"{esc(pasted.payload if pasted else '')}</textarea></label>"
        '<button type="submit">Draw</button></form></details>'
    )


def inbox_page(messages: Sequence[Mapping[str, Any]]) -> str:
    """What the local inbox received, newest first, drawn like the preview draws samples."""
    out = [
        _head("Inbox"),
        '<body><header><h1>Inbox</h1><nav><a href="/preview">Preview</a></nav></header>',
        _missing_renderer_notice(),
    ]
    if not messages:
        out.append('<p class="empty">Nothing delivered yet: post a sample to <code>/api/…</code>.</p>')
    out.append('<div class="inbox">')
    for m in messages:
        fmt = str(m.get("format", ""))
        body = m.get("body") if isinstance(m.get("body"), dict) else None
        drawn = Drawn(f"inbox/{m.get('id')}", fmt, body=body)
        caption = f"#{m.get('id')} · {m.get('channel')} · {m.get('received_at')}"
        out.append(_figure(drawn, caption, {"data-channel": str(m.get("channel", ""))}))
    out.append("</div></body></html>")
    return "".join(out)

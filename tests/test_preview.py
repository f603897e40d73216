"""The preview page served by ``serve``, without a browser (tests/test_browser.py draws it)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from werkzeug.test import Client

from translators import preview, samples
from translators.preview import messagecard_html, slack_html
from translators.server import Inbox, LocalFunctionApp

FORMATS = ("slack", "teams", "teams-messagecard")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    for key in [k for k in __import__("os").environ if k.startswith(("CHANNEL_", "TEMPLATES_DIR"))]:
        monkeypatch.delenv(key)
    inbox = Inbox()
    inbox.add("slack", "slack", json.loads((GOLDEN / "slack/bitrise/build-failed.json").read_text()), 10)
    return Client(LocalFunctionApp([], "api", inbox))


GOLDEN = Path(__file__).resolve().parent / "golden"
FIGURE = re.compile(r'<figure class="message" data-sample="([^"]+)" data-format="([^"]+)"([^>]*)>')


def figures(page: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for m in FIGURE.finditer(page)]


def message_samples() -> list[str]:
    """The bundled samples that become a message (the others are ignored by their source)."""
    return [s.id for s in samples.all_samples()]


def test_every_sample_in_every_format_is_on_the_page(client: Client) -> None:
    answer = client.get("/preview")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    found = figures(page)
    mapped = {s.id + preview.MAPPED_SUFFIX for s in samples.mapped_samples()}
    assert {(s, f) for s, f, _ in found} == {(s, f) for s in [*message_samples(), *mapped] for f in FORMATS}
    for sample, fmt, rest in found:
        expected = 'data-drawn="pending"' if fmt == "teams" else 'data-drawn="ok"'
        assert expected in rest, (sample, fmt)
    assert "Open in Block Kit Builder" in page and "Copy JSON" in page


def test_a_failing_template_shows_its_file_line_and_error(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "templates"
    (folder / "slack" / "bitrise").mkdir(parents=True)
    (folder / "slack" / "bitrise" / "build.failed.json.j2").write_text('{"text": "{{ n.title }"}\n', "utf-8")
    monkeypatch.setenv("TEMPLATES_DIR", str(folder))
    page = client.get("/preview?templates=shared").get_data(as_text=True)
    broken = [(s, f, rest) for s, f, rest in figures(page) if 'data-drawn="error"' in rest]
    assert [(s, f) for s, f, _ in broken] == [
        ("bitrise/build-failed", "slack"),
        ("bitrise/build-failed" + preview.MAPPED_SUFFIX, "slack"),
    ]
    error = page[page.index('<pre class="template-error">') :].split("</pre>", 1)[0]
    assert "build.failed.json.j2, line 1" in html.unescape(error)


def test_a_reload_shows_a_template_edit_and_each_channel_folder_is_offered(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "legacy"
    template = folder / "teams-messagecard" / "default.json.j2"
    template.parent.mkdir(parents=True)
    body = (
        '{"@type": "MessageCard", "@context": "http://schema.org/extensions", "summary": "%s", "title": "%s"}'
    )
    template.write_text(body % ("first", "{{ n.title }} first"), "utf-8")
    monkeypatch.setenv("CHANNEL_LEGACY_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("CHANNEL_LEGACY_FORMAT", "teams-messagecard")
    monkeypatch.setenv("CHANNEL_LEGACY_TEMPLATES", str(folder))
    page = client.get("/preview").get_data(as_text=True)
    assert 'value="channel:legacy"' in page
    assert "Build #41 failed first" in client.get("/preview?templates=channel:legacy").get_data(as_text=True)
    template.write_text(body % ("second", "{{ n.title }} second"), "utf-8")
    again = client.get("/preview?templates=channel:legacy").get_data(as_text=True)
    assert "Build #41 failed second" in again and "failed first" not in again


def test_an_unknown_template_set_is_404_with_the_built_in_page(client: Client) -> None:
    answer = client.get("/preview?templates=channel:nope")
    assert answer.status_code == 404 and "No template set" in answer.get_data(as_text=True)


def test_a_pasted_payload_is_drawn_in_every_format(client: Client) -> None:
    sample = samples.get("bitrise/build-failed")
    answer = client.post(
        "/preview",
        data={
            "source": "auto",
            "headers": "Bitrise-Event-Type: build/finished",
            "payload": sample.body().decode(),
        },
    )
    page = answer.get_data(as_text=True)
    pasted = [(f, rest) for s, f, rest in figures(page) if s == "pasted"]
    assert [f for f, _ in pasted] == list(FORMATS)
    assert 'name="payload"' in page and "Bitrise-Event-Type: build/finished" in page, (
        "the form keeps the input"
    )


def test_a_pasted_payload_that_is_wrong_says_why(client: Client) -> None:
    page = client.post("/preview", data={"source": "bitrise", "payload": "{not json"}).get_data(as_text=True)
    assert "not valid JSON" in page and 'data-sample="pasted"' not in page
    page = client.post("/preview", data={"source": "auto", "payload": '{"x": 1}'}).get_data(as_text=True)
    assert "did not recognise the sender" in html.unescape(page)


def test_hostile_payload_text_is_never_markup_on_the_page(client: Client) -> None:
    hostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)> <!channel> *b*"
    link = "[x](https://evil.example)"
    payload = {
        "action": "bug_created",
        "organization": {"id": "o", "name": f"{hostile} {link}", "url": "https://dashboard.applivery.io/o"},
        "application": {
            "id": "a",
            "name": f"{hostile} {link}",
            "url": "https://dashboard.applivery.io/o/apps/a",
        },
        # Tester feedback is Markdown: its link is drawn, with where it really goes beside it.
        "report": {
            "message": f"{hostile} [see](https://evil.example/x)",
            "url": "https://dashboard.applivery.io/r",
        },
    }
    page = client.post("/preview", data={"source": "applivery", "payload": json.dumps(payload)}).get_data(
        as_text=True
    )
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert 'href="https://evil.example"' not in page, "a name made a link"
    assert page.count('href="https://evil.example/x"') == page.count("see</a> (evil.example)")
    assert page.count("<script") == page.count("</script>"), "a payload closed a script element early"


def test_inbox_draws_for_a_browser_and_answers_json_to_curl(client: Client) -> None:
    as_json = client.get("/inbox")
    assert as_json.mimetype == "application/json" and as_json.get_json()["count"] == 1
    assert client.get("/inbox", headers={"Accept": "*/*"}).mimetype == "application/json"
    browser = client.get("/inbox", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.mimetype == "text/html"
    found = figures(browser.get_data(as_text=True))
    assert [(s, f) for s, f, _ in found] == [("inbox/1", "slack")]


def test_vendor_files_come_from_npm_packages_or_the_page_says_what_to_install(
    client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(preview, "VENDOR", {name: tmp_path / name for name in preview.VENDOR})
    page = client.get("/preview").get_data(as_text=True)
    assert 'id="teams-renderer-missing"' in page and "make node" in page
    assert "/preview/vendor/adaptivecards.js" not in page
    missing = client.get("/preview/vendor/adaptivecards.js")
    assert missing.status_code == 404 and "make node" in missing.get_json()["message"]
    assert client.get("/preview/static/preview.js").mimetype == "text/javascript"
    assert client.get("/preview/static/../__init__.py").status_code == 404


def test_slack_stand_in_draws_mrkdwn_rich_text_and_mentions() -> None:
    drawn = slack_html.draw(
        {
            "attachments": [
                {
                    "color": "#E01E5A",
                    "fallback": "x",
                    "blocks": [
                        {
                            "type": "section",
                            "text": {
                                "type": "mrkdwn",
                                "text": "*<https://a.example/b?c=1&amp;d=2|Build &lt;1&gt;>* · `x*y*`",
                            },
                        },
                        {
                            "type": "rich_text",
                            "elements": [
                                {
                                    "type": "rich_text_section",
                                    "elements": [{"type": "text", "text": "<b>*raw*</b>"}],
                                }
                            ],
                        },
                        {
                            "type": "context",
                            "elements": [{"type": "mrkdwn", "text": "<!here> <@U1> <javascript:x|no>"}],
                        },
                    ],
                }
            ]
        }
    )
    assert '<b><a href="https://a.example/b?c=1&amp;d=2"' in drawn and "Build &lt;1&gt;</a></b>" in drawn
    assert "<code>x*y*</code>" in drawn, "nothing inside code is formatted"
    assert "&lt;b&gt;*raw*&lt;/b&gt;" in drawn, "rich text is shown as it is"
    assert drawn.count('class="slack-mention') == 2 and 'href="javascript' not in drawn
    assert "border-left-color:#E01E5A" in drawn


def test_messagecard_stand_in_reads_markdown_without_html() -> None:
    drawn = messagecard_html.draw(
        {
            "@type": "MessageCard",
            "themeColor": "E01E5A",
            "title": "**Build** \\*1\\* &lt;at&gt;x&lt;/at&gt;",
            "sections": [
                {"text": "a\n\nb <b>c</b> [l](javascript:x)", "facts": [{"name": "N", "value": "`v`"}]}
            ],
            "potentialAction": [
                {
                    "@type": "OpenUri",
                    "name": "Go",
                    "targets": [{"os": "default", "uri": "https://x.example/"}],
                }
            ],
        }
    )
    assert "<strong>Build</strong> *1* &lt;at&gt;x&lt;/at&gt;" in drawn
    assert "<p>a</p>\n<p>b &lt;b&gt;c&lt;/b&gt;" in drawn and 'href="javascript' not in drawn
    assert 'href="https://x.example/"' in drawn and "border-top-color:#E01E5A" in drawn


def test_the_paste_form_says_what_to_do_on_the_form_not_in_a_url(client: Client) -> None:
    page = html.unescape(
        client.post("/preview", data={"source": "auto", "payload": '{"x": 1}'}).get_data(as_text=True)
    )
    assert "did not recognise the sender" in page and "choose the source in the Source menu" in page
    assert "in the URL" not in page
    assert "choose it in the Source menu instead of auto" in preview._on_the_form(
        "the payload fits A and B; name the source in the URL instead of 'auto'"
    )

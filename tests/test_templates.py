"""Template lookup (chain and folders), errors that name template and line, and the fallback message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from translators import formats, pipeline, render, samples, settings, sources
from translators.model import Fact, Notification

N = Notification(
    source="bitrise",
    source_label="Bitrise",
    event="build.failed",
    outcome="failure",
    title="Build #7 failed",
    summary="app: Bitrise build #7 failed",
    app="app",
    url="https://app.bitrise.io/build/x",
)
SLACK = formats.get("slack")
assert SLACK is not None


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def body(text: str) -> str:
    return (
        '{"text": "' + text + '", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}'
    )


def test_chain_is_most_specific_first() -> None:
    assert render.template_chain("slack", "bitrise", "build.failed") == [
        "slack/bitrise/build.failed.json.j2",
        "slack/bitrise/default.json.j2",
        "slack/default.json.j2",
    ]


def test_builtin_default_is_used_without_user_folders() -> None:
    assert (
        render.Renderer(SLACK, render.search_path()).shown("bitrise", "build.failed")
        == "templates/slack/default.json.j2"
    )


def test_source_default_then_event_template(tmp_path: Path) -> None:
    r = render.Renderer(SLACK, render.search_path(templates_dir=str(tmp_path)))
    write(tmp_path, "slack/bitrise/default.json.j2", body("source default {{ n.title }}"))
    assert r.render(N)[1]["text"] == "source default Build #7 failed"
    write(tmp_path, "slack/bitrise/build.failed.json.j2", body("event {{ n.event }}"))
    assert r.render(N)[1]["text"] == "event build.failed"
    other = N.model_copy(update={"event": "build.succeeded"})
    assert r.render(other)[1]["text"] == "source default Build #7 failed"


def test_channel_folder_before_templates_dir_before_builtin(tmp_path: Path) -> None:
    channel_dir, shared_dir = tmp_path / "channel", tmp_path / "shared"
    write(shared_dir, "slack/default.json.j2", body("shared"))
    r = render.Renderer(SLACK, render.search_path(str(channel_dir), str(shared_dir)))
    assert r.render(N)[1]["text"] == "shared"
    write(channel_dir, "slack/default.json.j2", body("channel"))
    assert r.render(N)[1]["text"] == "channel"


def test_user_folder_can_reuse_builtin_includes(tmp_path: Path) -> None:
    write(tmp_path, "slack/default.json.j2", '{% include "slack/default.json.j2" ignore missing %}')
    # Including itself would recurse; a distinct built-in name is what users include.
    write(tmp_path, "slack/bitrise/default.json.j2", body("{{ n.app }}"))
    r = render.Renderer(SLACK, render.search_path(templates_dir=str(tmp_path)))
    assert r.render(N)[1]["text"] == "app"


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    write(tmp_path, "slack/bitrise/build.failed.json.j2", '{\n "text": "ok",\n "x": "{{ n.title }"\n}')
    r = render.Renderer(SLACK, render.search_path(templates_dir=str(tmp_path)))
    with pytest.raises(render.TemplateFailure) as err:
        r.render(N)
    assert err.value.template == "slack/bitrise/build.failed.json.j2"
    assert err.value.line == 3
    # Named as a file, as answers, logs, check and the preview all name it.
    assert str(err.value).startswith(f"error in '{tmp_path}/slack/bitrise/build.failed.json.j2, line 3'")


def test_undefined_field_names_template_and_line(tmp_path: Path) -> None:
    write(tmp_path, "slack/default.json.j2", '{\n"text": "a",\n\n"b": "{{ n.no_such_field }}"}')
    r = render.Renderer(SLACK, render.search_path(templates_dir=str(tmp_path)))
    with pytest.raises(render.TemplateFailure) as err:
        r.render(N)
    assert (err.value.template, err.value.line) == ("slack/default.json.j2", 4)
    assert "no_such_field" in err.value.message


def test_invalid_json_output_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "slack/default.json.j2", '{"text": "{{ n.title }}",}')
    r = render.Renderer(SLACK, render.search_path(templates_dir=str(tmp_path)))
    with pytest.raises(render.TemplateFailure) as err:
        r.render(N)
    assert "not JSON" in err.value.message and err.value.template == "slack/default.json.j2"


def test_broken_template_still_delivers_minimal_message(tmp_path: Path) -> None:
    write(tmp_path, "slack/default.json.j2", "{{ broken")
    write(tmp_path, "teams/default.json.j2", '{"type": "message", "attachments": []}')
    loaded = settings.load(
        {
            "CHANNEL_S_URL": "http://127.0.0.1:9/s",
            "CHANNEL_S_FORMAT": "slack",
            "CHANNEL_T_URL": "http://127.0.0.1:9/t",
            "CHANNEL_T_FORMAT": "teams",
            "TEMPLATES_DIR": str(tmp_path),
        }
    )
    for name, fmt in (("s", "slack"), ("t", "teams")):
        prepared = pipeline.prepare(loaded.channel(name), N, loaded)
        assert prepared.template == "(built-in minimal)"
        assert prepared.template_error and f"{fmt}/default.json.j2" in prepared.template_error
        assert "Build #7 failed" in json.dumps(prepared.body, ensure_ascii=False)
        assert "https://app.bitrise.io/build/x" in json.dumps(prepared.body)


def test_a_body_fitting_chokes_on_is_the_templates_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a rendered body makes fitting raise is named as the template's failure: render and
    check report it with the file, the preview draws it, and a channel gets the minimal message."""

    def choke(body: dict[str, object]) -> bytes:
        if body.get("text") != "minimal":
            raise KeyError("elements")
        return json.dumps(body).encode()

    monkeypatch.setattr(SLACK, "fit_encoded", choke)
    monkeypatch.setattr(SLACK, "minimal", lambda n: {"text": "minimal"})
    with pytest.raises(render.TemplateFailure) as err:
        pipeline.render_checked(render.Renderer(SLACK, render.search_path()), N)
    assert err.value.where == "templates/slack/default.json.j2"
    assert err.value.message == "KeyError: 'elements'"
    loaded = settings.load({"CHANNEL_S_URL": "http://127.0.0.1:9/s", "CHANNEL_S_FORMAT": "slack"})
    prepared = pipeline.prepare(loaded.channel("s"), N, loaded)
    assert prepared.body == {"text": "minimal"}
    assert prepared.template_error and "KeyError: 'elements'" in prepared.template_error


def test_minimal_messages_are_valid_for_every_format() -> None:
    for fmt in formats.registry().values():
        fmt.validate(fmt.minimal(N))
        fmt.validate(fmt.minimal(N.model_copy(update={"url": None, "app": None})))


def test_facts_except_is_what_the_rejectattr_idiom_gives() -> None:
    """The built-in templates' ``n.facts_except("App")`` stands in for a slower Jinja idiom, exactly."""
    env = render.Renderer(SLACK, render.search_path()).env
    idiom = env.compile_expression('n.key_facts | rejectattr(0, "equalto", "App") | list')
    notifications = [
        N,
        N.model_copy(update={"facts": (Fact("App", "twice"), Fact("Team", "t")), "platform": "iOS"}),
    ]
    for sample in samples.all_samples():
        source = sources.get(sample.source)
        assert source is not None
        result = source.translate(
            json.loads(sample.body()), {k.lower(): v for k, v in sample.headers.items()}
        )
        if isinstance(result, Notification):
            notifications.append(result)
    for n in notifications:
        assert n.facts_except("App") == idiom(n=n)
    assert [(k, str(v)) for k, v in notifications[1].facts_except("App")] == [
        ("Platform", "iOS"),
        ("Team", "t"),
    ]


# -- custom-templates/: the one home of a team's templates, deployed with the app ------------------


def test_custom_templates_is_deployed_by_funcignore(tmp_path: Path) -> None:
    """What the package keeps, by git's own matching of .funcignore (as azd and the workflow read it)."""
    import shutil
    import subprocess

    root = render.APP_ROOT
    assert (root / "custom-templates").is_dir(), "the documented home exists in the repository"
    scratch = tmp_path / "repo"
    scratch.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=scratch, check=True)
    shutil.copy(root / ".funcignore", scratch / ".gitignore")
    for name in (
        "custom-templates/builds/slack/bitrise/build.failed.json.j2",
        "custom-templates/shared/teams/default.json.j2",
        "custom-templates/README.md",
    ):
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / name).write_text("x")
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == [
        "custom-templates/builds/slack/bitrise/build.failed.json.j2",
        "custom-templates/shared/teams/default.json.j2",
    ]


def test_the_docs_name_custom_templates_as_the_home() -> None:
    text = (render.APP_ROOT / "docs" / "templates.md").read_text()
    assert "## Where your templates live" in text and "custom-templates/" in text
    assert "relative to the app's root" in text


def test_health_lists_a_missing_template_folder_as_the_channels_error() -> None:
    loaded = settings.load(
        {
            "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T/B/x",
            "CHANNEL_BUILDS_TEMPLATES": "nope/",
            "STATE_STORE": "sqlite:///:memory:",
        }
    )
    body = pipeline.health(loaded).body
    assert (
        body["status"] == "degraded"
        and "CHANNEL_BUILDS_TEMPLATES names no folder" in body["channel_errors"]["builds"]
    )


def test_an_error_is_named_by_its_file_relative_to_the_app(tmp_path: Path) -> None:
    """One name in answers, logs, check and the preview: the file, relative to the app's folder."""
    r = render.Renderer(SLACK, render.search_path())
    assert (
        render.shown_file(render.BUILTIN_TEMPLATES / "slack" / "default.json.j2")
        == "templates/slack/default.json.j2"
    )
    assert r.shown("bitrise", "build.failed") == "templates/slack/default.json.j2"
    outside = tmp_path / "x.json.j2"
    assert render.shown_file(outside) == str(outside)


def test_a_compiled_template_is_loaded_until_its_text_or_renderer_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start loads the compiled template; an edited template, or one compiled by another
    version of the renderer or the format, is compiled again, never served stale."""
    import jinja2

    app, cache = tmp_path / "app", tmp_path / "cache"
    write(app, "templates/slack/default.json.j2", body("first {{ n.title }}"))
    compiled: list[str] = []
    compile_ = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, name: str | None = None, *a: object) -> object:
        compiled.append(name or "")
        return compile_(self, source, name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "compile", counting)

    def rendered(salt: str | None = None) -> str:
        r = render.Renderer(SLACK, (app / "templates",), live=True)
        store = render.CompiledTemplates(SLACK, cache, root=app, write=True)
        if salt is not None:
            store.salt = salt
        r.env.bytecode_cache = store
        text: str = r.render(N)[1]["text"]
        return text

    assert rendered() == "first Build #7 failed" and compiled == ["slack/default.json.j2"]
    assert len(list(cache.glob("*.jinja"))) == 1
    assert rendered() == "first Build #7 failed" and len(compiled) == 1  # loaded, not compiled
    write(app, "templates/slack/default.json.j2", body("edited {{ n.title }}"))
    assert rendered() == "edited Build #7 failed" and len(compiled) == 2
    assert rendered(salt="another renderer or format") == "edited Build #7 failed" and len(compiled) == 3
    assert rendered() == "edited Build #7 failed" and len(compiled) == 4  # the entry was replaced
    for entry in cache.glob("*.jinja"):
        entry.write_bytes(b"damaged")
    assert rendered() == "edited Build #7 failed" and len(compiled) == 5
    for entry in cache.glob("*.jinja"):
        entry.write_bytes(entry.read_bytes()[: len(jinja2.bccache.bc_magic) + 5])  # cut in the checksum
    assert rendered() == "edited Build #7 failed" and len(compiled) == 6


def test_compiled_templates_cover_the_app_folder_only_and_survive_a_read_only_cache(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    write(outside, "slack/default.json.j2", body("{{ n.title }}"))
    store = render.CompiledTemplates(SLACK, tmp_path / "cache", root=tmp_path / "app", write=True)
    assert store.get_cache_key("slack/default.json.j2", str(outside / "slack/default.json.j2")) == ""
    r = render.Renderer(SLACK, (outside,), live=True)
    r.env.bytecode_cache = store
    assert r.render(N)[1]["text"] == "Build #7 failed" and not (tmp_path / "cache").exists()
    (tmp_path / "cache").write_text("not a folder")  # as unwritable as a read-only package
    inside = render.CompiledTemplates(SLACK, tmp_path / "cache", root=tmp_path, write=True)
    r = render.Renderer(SLACK, (outside,), live=True)
    r.env.bytecode_cache = inside
    assert r.render(N)[1]["text"] == "Build #7 failed"


def test_the_renderer_key_covers_the_renderer_the_format_and_jinja() -> None:
    slack, teams = formats.get("slack"), formats.get("teams")
    assert slack is not None and teams is not None
    assert render.CompiledTemplates(slack).salt != render.CompiledTemplates(teams).salt
    assert render.CompiledTemplates(slack).salt == render._renderer_salt("translators.formats.slack")

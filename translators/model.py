"""The one notification model every source normalises into and every template renders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from translators.people import NONE, Mentions
from translators.text import Doc, Inline, Span, clip, clip_inline, code, from_lines, from_markdown

#: Event names shared by all sources. Templates and channel filters use these strings; each one's
#: meaning is in docs/platforms.md#event-names.
EVENTS: tuple[str, ...] = (
    "build.queued",
    "build.started",
    "build.succeeded",
    "build.failed",
    "build.canceled",
    "build.skipped",
    "build.uploaded",
    "build.ready",
    "build.upload_failed",
    "review.submitted",
    "review.started",
    "review.approved",
    "review.rejected",
    "review.canceled",
    "crash.new_group",
    "crash.reported",
    "release.published",
    "release.updated",
    "feedback.received",
    "bug.reported",
    "certificate.expiring",
    "webhook.ping",
)

#: The layout rule (docs/templates.md#the-layout-rule), the same for every source and format: a
#: heading, one context line, at most ``MAX_FACTS`` facts, free text cut to about ``NOTES_LINES``
#: lines or ``NOTES_CHARS`` characters, at most ``MAX_BUTTONS`` buttons, and a quiet footer.
MAX_FACTS = 4
MAX_BUTTONS = 2
#: Stack frames a crash shows under its exception and location.
MAX_FRAMES = 3
NOTES_LINES = 5
NOTES_CHARS = 300
#: A commit subject in the context line, cut at a word.
SUBJECT_CHARS = 60

#: Longest URL we pass on: Slack rejects button URLs over 3000 characters.
MAX_URL_LENGTH = 3000

#: Events that say something is under way (a build, a review); the event that settles it may
#: replace their message.
PROGRESS_EVENTS: frozenset[str] = frozenset(
    {"build.queued", "build.started", "build.uploaded", "review.submitted", "review.started"}
)

#: Payload times are kept within these, so that no arithmetic, conversion or storage can overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
#: A duration longer than this is not a build's: it comes from a broken clock or payload.
LONGEST_DURATION_SECONDS = 7 * 24 * 3600


def moment(value: datetime) -> datetime:
    """A payload time as aware UTC within [EARLIEST, LATEST]: naive means UTC, extremes are clamped.

    ``9999-12-31T23:59:59-05:00`` is a valid ISO time that no UTC datetime can hold; mixing a naive
    and an aware time makes subtraction raise. Normalised here, once, neither can happen later.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    else:
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            return LATEST if value.year > 5000 else EARLIEST
    return min(max(value, EARLIEST), LATEST)


#: A datetime field of a payload model or the notification: always aware UTC, always in range.
Timestamp = Annotated[datetime, AfterValidator(moment)]

Outcome = Literal["success", "failure", "canceled", "running", "info", "warning"]


class Url(str):
    """A URL that ``safe_url`` accepted: a template writes it as it is, JSON-escaped only.

    Button and link targets are URL fields, not markup, so entity escaping would break them (a
    signed link's ``&`` must stay ``&``, not become ``&amp;``).
    """

    __slots__ = ()


class Link(BaseModel):
    """A button or link: `label` is ours (trusted), `url` came from the payload or was built from it."""

    model_config = ConfigDict(frozen=True)

    label: str
    url: str

    @field_validator("url", mode="after")
    @classmethod
    def _url_type(cls, value: str) -> str:
        return Url(value)


class Fact(NamedTuple):
    """A source's own fact. ``code``: the value is an identifier, shown literally (code style)."""

    label: str
    value: str
    code: bool = False


class Notification(BaseModel):
    """What happened, independent of who sent it.

    Every optional field is None when the source did not say; templates test for it rather than
    printing "None". Free text from the payload (branch names, release notes, crash reasons) is
    kept as it came: escaping for the destination is the renderer's job, never the source's.
    """

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="registry name of the source, e.g. 'bitrise'")
    source_label: str = Field(description="the platform's own name, e.g. 'Bitrise'")
    event: str
    outcome: Outcome
    title: str = Field(description="one line, status and app, e.g. 'Build #42 failed'")
    summary: str = Field(description="plain-text one-liner for notifications and fallbacks")

    app: str | None = None
    app_id: str | None = None
    app_key: str | None = Field(
        default=None,
        description="the identifier APP_NAMES looks the app up by: Bitrise app_slug, App Center app_name"
        " (app_id where there is none), Applivery application.id, Appflow appId",
    )
    app_name: str | None = Field(
        default=None,
        description="the app's name as the team calls it: APP_NAMES, else what an API said (Bitrise's"
        " app title); see app_display",
    )
    platform: str | None = None
    build_number: str | None = None
    build_id: str | None = None
    branch: str | None = None
    target_branch: str | None = None
    pull_request: str | None = None
    tag: str | None = None
    workflow: str | None = None
    commit: str | None = None
    commit_message: str | None = None
    commit_url: str | None = Field(
        default=None, description="the commit's page, where the repository is known"
    )
    pull_request_url: str | None = None
    pull_request_title: str | None = None
    author: str | None = None
    triggered_by: str | None = None
    people: tuple[str, ...] = Field(
        default=(),
        description="how the payload names the people behind the event (git username, name, email;"
        " Bitrise's triggered_by), looked up in MENTIONS",
    )
    mentions: Mentions = Field(
        default=NONE, description="whom this channel mentions, set per channel; each format writes them"
    )
    status_text: str | None = Field(default=None, description="the platform's own word for the status")
    abort_reason: str | None = None
    version: str | None = None
    size_bytes: int | None = None
    environment: str | None = None

    url: str | None = Field(default=None, description="the main thing to open: build, release, crash")
    links: tuple[Link, ...] = ()

    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    sent_at: Timestamp | None = None
    duration_seconds: float | None = None

    error: str | None = Field(
        default=None,
        description="what went wrong in the platform's words: a crash's exception and message, a build's"
        " error message",
    )
    error_location: str | None = Field(default=None, description="where a crash happened: one frame")
    details_title: str | None = None
    details: str | None = None
    details_kind: Literal["text", "markdown", "code"] = Field(
        default="text",
        description="how to read details: plain text whose lines matter, Markdown (release notes,"
        " feedback), or code (a stack trace, shown in a fixed-width font)",
    )
    facts: tuple[Fact, ...] = Field(
        default=(),
        description="source-specific extra facts (label, value[, code]) shown after the common ones",
    )
    days_left: int | None = None
    emoji: str | None = Field(
        default=None, description="shown instead of the outcome's emoji when the event has a fitting one"
    )
    fact_labels: tuple[tuple[str, str], ...] = Field(
        default=(), description="the platform's own word for a common fact, e.g. ('Workflow', 'Automation')"
    )
    event_id: str | None = Field(
        default=None,
        description="stable identity of this event from the payload (e.g. 'bitrise:<slug>:build/finished:2'):"
        " a retry of the same event has the same id, so no channel gets it twice",
    )
    message_key: str | None = Field(
        default=None,
        description="what the event is about, when later events are about it too (a build:"
        " 'bitrise:<build slug>'): a Slack app channel keeps one message per key and updates it",
    )
    opt_in: bool = Field(
        default=False,
        description="sent only to channels whose CHANNEL_<NAME>_EVENTS asks for it (Xcode Cloud's"
        " build.queued): a channel that takes every event leaves it out, and when no channel asks"
        " for it the answer is 200 ignored",
    )
    previous_outcome: Literal["success", "failure"] | None = Field(
        default=None,
        description="the last finished build of the same source, app, branch and workflow before this one;"
        " set by the notification rules for build.succeeded and build.failed when memory knows it",
    )

    @field_validator("url", "commit_url", "pull_request_url", mode="after")
    @classmethod
    def _safe_url(cls, value: str | None) -> str | None:
        return safe_url(value)

    @field_validator("links", mode="after")
    @classmethod
    def _safe_links(cls, value: tuple[Link, ...]) -> tuple[Link, ...]:
        return tuple(link for link in value if safe_url(link.url))

    @property
    def stage(self) -> int:
        """0 while the build is under way (started, uploaded), 1 once an event settled it."""
        return 0 if self.event in PROGRESS_EVENTS else 1

    @property
    def app_display(self) -> str | None:
        """The app as the team calls it: its configured or looked-up name, else the payload's."""
        return self.app_name or self.app

    def named(self, name: str) -> Notification:
        """This notification with the app called ``name``, in the summary too (it starts ``<app>: ``,
        or ``<platform>: `` where the payload named no app)."""
        summary = self.summary
        current = self.app_display or self.source_label
        if summary.startswith(current + ": "):
            summary = f"{name}: {summary[len(current) + 2 :]}"
        return self.model_copy(update={"app_name": name, "summary": summary})

    @property
    def short_commit(self) -> str | None:
        return self.commit[:8] if self.commit else None

    @property
    def duration_text(self) -> str | None:
        """'1h 2m', '3m 12s', '45s'."""
        if self.duration_seconds is None or self.duration_seconds < 0:
            return None
        total = round(self.duration_seconds)
        hours, rest = divmod(total, 3600)
        minutes, seconds = divmod(rest, 60)
        if hours:
            return f"{hours}h {minutes}m"
        if minutes:
            return f"{minutes}m {seconds}s"
        return f"{seconds}s"

    @property
    def size_text(self) -> str | None:
        if self.size_bytes is None or self.size_bytes < 0:
            return None
        size = float(self.size_bytes)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
        raise AssertionError("unreachable")

    @property
    def key_facts(self) -> list[tuple[str, Inline]]:
        """The facts worth a glance, in reading order, only those the source sent.

        Identifiers (branch, tag, workflow, version, commit) are ``code`` runs, which every format
        shows literally. A fact the title already says ("5" days left, the version of a release,
        the platform of an "iOS build") is left out, and so is an empty one.
        """
        facts: list[tuple[str, Inline]] = []
        labels = dict(self.fact_labels)
        title_words = _words(self.title)

        def add(label: str, *parts: str | Span | None) -> None:
            value = Inline.of(*parts)
            text = str(value).strip()
            if text and text not in ("0",) and not _said_in(text, title_words):
                facts.append((labels.get(label, label), value))

        add("App", self.app_display)
        add("Platform", self.platform)
        add("Version", code(self.version) if self.version else None)
        pull = f"PR #{self.pull_request}" if self.pull_request else None
        if self.branch and self.target_branch and self.pull_request:
            add("Branch", code(self.branch), " → ", code(self.target_branch), " · ", pull)
        elif self.branch:
            add("Branch", code(self.branch), " · " if pull else None, pull)
        else:
            add("Pull request", pull)
        add("Tag", code(self.tag) if self.tag else None)
        add("Workflow", code(self.workflow) if self.workflow else None)
        add("Environment", code(self.environment) if self.environment else None)
        if self.short_commit:
            lines = (self.commit_message or "").strip().splitlines()
            add("Commit", code(self.short_commit), f" {lines[0].strip()}" if lines else None)
        add("Author", self.author)
        if self.triggered_by != self.author:
            add("Triggered by", self.triggered_by)
        add("Size", self.size_text)
        add("Duration", self.duration_text)
        add("Abort reason", self.abort_reason)
        for fact in self.facts:
            add(fact.label, code(fact.value) if fact.code else fact.value)
        return facts

    def facts_except(self, *labels: str) -> list[tuple[str, Inline]]:
        """``key_facts`` without those labelled ``labels`` (e.g. "App", when a heading shows it).

        What ``n.key_facts | rejectattr(0, "equalto", "App") | list`` gives a template, for a
        tenth of the cost: Jinja runs its test machinery for every fact.
        """
        return [fact for fact in self.key_facts if fact[0] not in labels]

    @property
    def details_doc(self) -> Doc | None:
        """``details`` read the way ``details_kind`` says, for the ``text`` template filter."""
        if not self.details or not self.details.strip():
            return None
        if self.details_kind == "markdown":
            doc = from_markdown(self.details)
            return doc if doc.blocks else from_lines(self.details)
        return from_lines(self.details, code_block=self.details_kind == "code")

    # -----------------------------------------------------------------------------------------
    # The layout rule: what every built-in template shows, decided here once for every format.

    @property
    def ref(self) -> str | None:
        """The branch, else the tag, the build ran on."""
        return self.branch or self.tag

    @property
    def is_crash(self) -> bool:
        return self.event.startswith("crash.")

    @property
    def lead(self) -> str | None:
        """Who the message is about, first in the heading: the app as the team calls it, else (an
        app known only by an id, as Bitrise's slug) the workflow."""
        return self.app_display or self.workflow

    @property
    def heading(self) -> str:
        """``Fixed: Acme iOS · Build #41 succeeded on main``: outcome, app and ref in one line."""
        title = self.title
        ref = self.ref
        if ref and not _said_in(ref, _words(title)):
            title = f"{title} on {ref}"
        lead = self.lead
        if lead and not _said_in(lead, _words(self.title)):
            title = f"{lead} · {title}"
        return f"{self.transition}: {title}" if self.transition else title

    @property
    def who(self) -> str | None:
        """The person behind it: the commit's author, else whoever started it when that is a
        person (``people`` names them); "manual" or "webhook" name nobody."""
        if self.author:
            return self.author
        trigger = self.triggered_by
        if trigger and self.people and trigger.strip().lower() not in _NOT_PEOPLE:
            return trigger
        return None

    @property
    def context(self) -> Inline:
        """One line under the heading: short commit (linked where the repository is known), its
        subject, who, how long. Empty when the source knows none of them."""
        parts: list[list[Span]] = []
        if self.short_commit:
            commit = [Span(self.short_commit, code=True, url=self.commit_url)]
            lines = (self.commit_message or "").strip().splitlines()
            if lines and lines[0].strip():
                commit.append(Span(" " + _cut(lines[0].strip(), SUBJECT_CHARS)))
            parts.append(commit)
        for value in (self.who, self.duration_text):
            if value:
                parts.append([Span(value)])
        spans: list[Span] = []
        for part in parts:
            if spans:
                spans.append(Span(" · "))
            spans.extend(part)
        return Inline(spans)

    @property
    def top_facts(self) -> list[tuple[str, Inline]]:
        """At most ``MAX_FACTS`` facts that matter for this event, in order of weight; what the
        heading and the context line say is not repeated."""
        facts: list[tuple[str, Inline]] = []
        labels = dict(self.fact_labels)
        said = _words(f"{self.heading} {self.context}")

        def add(label: str, *parts: str | Span | None) -> None:
            value = Inline.of(*parts)
            text = str(value).strip()
            if text and text != "0" and not _said_in(text, said):
                facts.append((labels.get(label, label), clip_inline(value, 160)))

        if self.error and not self.is_crash:
            add("Error", self.error)
        add("Version", code(self.version) if self.version else None)
        if self.pull_request:
            add(
                "PR",
                Span(f"#{self.pull_request}", url=self.pull_request_url),
                " → " if self.target_branch else None,
                code(self.target_branch) if self.target_branch else None,
                f" {self.pull_request_title}" if self.pull_request_title else None,
            )
        if self.branch and self.tag:
            add("Tag", code(self.tag))
        if self.app_display:
            add("Workflow", code(self.workflow) if self.workflow else None)
        add("Environment", code(self.environment) if self.environment else None)
        add("Reason", self.abort_reason)
        for fact in self.facts:
            add(fact.label, code(fact.value) if fact.code else fact.value)
        add("Size", self.size_text)
        add("Platform", self.platform)
        return facts[:MAX_FACTS]

    @property
    def frames(self) -> tuple[str, ...]:
        """A crash's first ``MAX_FRAMES`` stack frames, without the one its location already shows."""
        if not self.is_crash or self.details_kind != "code" or not self.details:
            return ()
        return _frames(self.details, (self.error_location or "").strip())

    @property
    def notes(self) -> Doc | None:
        """The free text (release notes, a tester's report) as a phone shows it at a glance: about
        ``NOTES_LINES`` lines or ``NOTES_CHARS`` characters, structure kept; ``more`` leads on."""
        if self.frames or not self.details or not self.details.strip():
            return None
        return _notes(self.details, self.details_kind)

    @property
    def more(self) -> Link | None:
        """ "Read the full notes" or "Open the report", when ``notes`` left text out and the page is known."""
        notes = self.notes
        if notes is None or not notes.clipped or not self.url:
            return None
        label = "Open the report" if self.event in _REPORT_EVENTS else "Read the full notes"
        return Link(label=label, url=self.url)

    @property
    def buttons(self) -> tuple[Link, ...]:
        """At most ``MAX_BUTTONS`` buttons, the main page first; the commit and the pull request
        are links in the message already."""
        inline = {self.commit_url, self.pull_request_url}
        links = [link for link in self.links if link.url not in inline]
        primary = next((link for link in links if link.url == self.url), None)
        if primary is not None:
            links.remove(primary)
            links.insert(0, primary)
        elif self.url:
            links.insert(0, Link(label="Open", url=self.url))
        return tuple(links[:MAX_BUTTONS])

    @property
    def footer_id(self) -> str | None:
        """The app's id, for the footer, when no name for it is known (a Bitrise slug)."""
        return self.app_id if not self.app_display and self.app_id else None

    @property
    def when(self) -> datetime | None:
        """When it happened, for the footer: finished, else sent, else started."""
        return self.finished_at or self.sent_at or self.started_at

    @property
    def transition(self) -> str | None:
        """'Fixed' (a success after a failure) or 'Still failing' (a failure after a failure)."""
        if self.previous_outcome != "failure":
            return None
        if self.event == "build.succeeded":
            return "Fixed"
        if self.event == "build.failed":
            return "Still failing"
        return None


#: Whitespace (``\s`` is exactly ``str.isspace``), control characters and ``<>"|``; one regex scan
#: instead of a Python loop per character, which was the largest single cost of a translation.
_UNSAFE_URL_CHAR = re.compile(r'[\s\x00-\x1f<>"|]')


def safe_url(value: str | None) -> Url | None:
    """The URL if a chat tool will accept it as a link target, else None.

    Payload URLs are untrusted: ``javascript:`` links, host-less URLs (``https://``), whitespace or
    control characters, or a URL over Slack's limit would make the chat tool reject the whole
    message (Slack answers ``invalid_blocks``), so they are dropped and no button is drawn.
    """
    if not value or len(value) > MAX_URL_LENGTH:
        return None
    if not value[:8].lower().startswith(("https://", "http://")):
        return None
    if _UNSAFE_URL_CHAR.search(value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # "http://[::1/x": an unclosed IPv6 bracket, a bad port
        return None
    if not host or host.strip(".") == "":
        return None
    return value if isinstance(value, Url) else Url(value)


def _words(text: str) -> str:
    """The text padded with spaces, for whole-word containment tests."""
    return f" {_NOT_WORD.sub(' ', text).strip()} "


_NOT_WORD = re.compile(r"[\s,;:()!?]+")


def _said_in(value: str, padded_title: str) -> bool:
    return _words(value) in padded_title


#: What of a free text is read before clipping: far more than ``notes`` keeps, far less than a
#: changelog pasted whole (parsing Markdown is the costliest step of a translation).
_READ_LINES = 4 * NOTES_LINES
_READ_CHARS = 4 * NOTES_CHARS


@lru_cache(maxsize=16)
def _notes(details: str, kind: Literal["text", "markdown", "code"]) -> Doc:
    """``details`` read as ``kind`` and clipped for a phone. Cached: a template asks for it twice
    (``notes``, then ``more``) and an event is drawn once per channel."""
    head = details
    lines = details.split("\n", _READ_LINES)
    if len(lines) > _READ_LINES or len(details) > _READ_CHARS:
        head = "\n".join(lines[:_READ_LINES])[:_READ_CHARS]
    if kind == "markdown":
        doc = from_markdown(head)
        doc = doc if doc.blocks else from_lines(head)
    else:
        doc = from_lines(head, code_block=kind == "code")
    notes = clip(doc, NOTES_LINES, NOTES_CHARS)
    if head is not details and not notes.clipped:  # what was read fits, but there was more
        notes = clip(doc, NOTES_LINES, max(len(doc.plain()) - 1, 1))
    return notes


#: What platforms put in "triggered by" when no person started the build.
_NOT_PEOPLE = frozenset(
    {"webhook", "manual", "schedule", "scheduled", "continuous integration", "api", "push", "trigger", "ci"}
)

#: Events whose free text is a person's report: the link says "Open the report".
_REPORT_EVENTS = frozenset({"feedback.received", "bug.reported", "crash.reported"})


@lru_cache(maxsize=16)
def _frames(trace: str, location: str) -> tuple[str, ...]:
    """Cached: templates ask for the frames several times per message."""
    lines = [line.strip() for line in trace.splitlines()[: MAX_FRAMES + 2] if line.strip()]
    if lines and location and location in lines[0]:
        lines.pop(0)
    return tuple(_cut(_short_frame(line), 120) for line in lines[:MAX_FRAMES])


#: A JVM or .NET frame: ``[at ]package.Class.method (File.kt:88)``; group 1 is the qualified name.
_QUALIFIED_FRAME = re.compile(r"(?:at )?((?:[\w$<>]+\.){2,}[\w$<>]+)(.*)", re.DOTALL)


def _short_frame(line: str) -> str:
    """A stack frame as it fits a phone: ``Class.method (File.kt:88)``, without the package (the
    full trace is a click away), so that it wraps at most once and never mid-name."""
    match = _QUALIFIED_FRAME.fullmatch(line)
    if match is None:
        return " ".join(line.split())
    name = ".".join(match[1].split(".")[-2:])
    return f"{name}{match[2]}"


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word where one ends late enough, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:·-") + "…"


def duration_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    seconds = (moment(end) - moment(start)).total_seconds()
    return seconds if 0 <= seconds <= LONGEST_DURATION_SECONDS else None

"""App Store Connect API: the names an App Store Connect webhook leaves out.

A webhook says "the App Store version ad7e6298-... is now REJECTED"; the API says which app,
which version and which build that is (https://developer.apple.com/documentation/appstoreconnectapi).
Per event, at most two calls, in the JSON:API shapes Apple documents:

- a version: ``GET /v1/appStoreVersions/{id}?include=app,build`` (``versionString``, ``platform``,
  the app's ``name`` and ``bundleId``, the build's ``version``, which is the build number);
- a build upload: ``GET /v1/buildUploads/{id}?include=build`` (``cfBundleShortVersionString``,
  ``cfBundleVersion``, ``platform``, and what Apple said of a failed upload), then the build;
- a TestFlight build: ``GET /v1/buildBetaDetails/{id}?include=build``, then the build;
- feedback: ``GET /v1/betaFeedback{Screenshot,Crash}Submissions/{id}?include=build,tester``
  (the tester's comment, device, OS, screenshots), then the build;
- the build: ``GET /v1/builds/{id}?include=app,preReleaseVersion`` (app, version, build number);
- an app named by id alone: ``GET /v1/apps/{id}`` (kept for an hour).

Every call is signed with a short-lived ES256 JWT (PyJWT): ``kid`` the key id, ``iss`` the issuer
id, ``aud`` ``appstoreconnect-v1``, 15 minutes long (Apple refuses more than 20), reused until 5
minutes are left. All calls of one event share one budget; on any problem the message goes with
what the webhook had and the answer says why (sources/_api.py). The key is in no message, log line
or exception; reasons name status codes and failure classes only.

``look_up`` takes the call as an argument, so that recorded answers (``samples/appstoreconnect/
api/``) replay it without a network for golden files and the preview, and a test server serves them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field

from translators import logs
from translators.formats import clip
from translators.model import Fact, Link, Notification, safe_url
from translators.sources import Enrichment, Loose, platform_name
from translators.sources._api import JsonApi, TimedCache, Unavailable, per_process
from translators.sources._apple import OPEN_ASC, web_url
from translators.sources.appstoreconnect import lookup_target

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

#: All the calls of one event share this budget: a message waits for its details at most this long.
BUDGET_SECONDS = 2.0
#: A token's life; Apple refuses tokens that expire more than 20 minutes after they are made.
TOKEN_SECONDS = 15 * 60
#: A token with less left than this is replaced before the next call.
RENEW_SECONDS = 5 * 60
AUDIENCE = "appstoreconnect-v1"
#: App names rarely change; one lookup an hour per app.
APP_SECONDS = 3600.0
#: Screenshots linked from one piece of feedback (each is a button).
MAX_SCREENSHOTS = 2
#: Feedback pages in App Store Connect's TestFlight section, per submission type.
FEEDBACK_PAGES = {
    "betaFeedbackScreenshotSubmissions": "screenshots",
    "betaFeedbackCrashSubmissions": "crashes",
}
#: Titles start with these words until the API says what they are about.
SUBJECTS = {
    "appStoreVersions": ("App Store version", "Version"),
    "buildUploads": ("Build", "Build"),
    "buildBetaDetails": ("TestFlight build", "TestFlight build"),
    "betaFeedbackScreenshotSubmissions": ("New TestFlight feedback", "New TestFlight feedback on"),
    "betaFeedbackCrashSubmissions": ("New TestFlight crash report", "New TestFlight crash report on"),
}

log = logs.logger("translators.sources.appstoreconnect")


@dataclass(frozen=True)
class Credentials:
    """An App Store Connect API key: issuer id, key id and the ``.p8`` file's PEM text."""

    issuer: str
    key_id: str
    pem: str = field(repr=False)


class Signer:
    """ES256 tokens, one per key, reused until ``RENEW_SECONDS`` before they expire. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[Credentials, tuple[str, float]] = {}

    def token(self, key: Credentials, now: float | None = None) -> str:
        now = time.time() if now is None else now
        with self._lock:
            found = self._tokens.get(key)
        if found is not None and found[1] - now > RENEW_SECONDS:
            return found[0]
        import jwt  # PyJWT with cryptography: imported only where a key is configured

        issued = int(now)
        token = jwt.encode(
            {"iss": key.issuer, "iat": issued, "exp": issued + TOKEN_SECONDS, "aud": AUDIENCE},
            private_key(key.pem),
            algorithm="ES256",
            headers={"kid": key.key_id, "typ": "JWT"},
        )
        with self._lock:
            self._tokens[key] = (token, issued + TOKEN_SECONDS)
        return token

    def forget(self) -> None:
        with self._lock:
            self._tokens.clear()


def private_key(pem: str) -> EllipticCurvePrivateKey:
    """The key of an ``AuthKey_*.p8`` file, or Unavailable saying what is wrong (never what it holds)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode("ascii", "replace"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Unavailable("ASC_PRIVATE_KEY is not a readable private key (the .p8 file's text)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise Unavailable("ASC_PRIVATE_KEY is not an App Store Connect key (ES256, P-256)")
    return key


# -- answers ---------------------------------------------------------------------------------


class Resource(Loose):
    type: str
    id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    relationships: dict[str, Any] = Field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.attributes.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return None
        return str(value).strip() or None

    def related_id(self, name: str) -> str | None:
        relation = self.relationships.get(name)
        data = relation.get("data") if isinstance(relation, dict) else None
        found = data.get("id") if isinstance(data, dict) else None
        return found if isinstance(found, str) and found else None


class Document(Loose):
    data: Resource
    included: list[Resource] = Field(default_factory=list)

    def related(self, name: str) -> Resource | None:
        """The resource ``data`` relates to as ``name``, when the answer included it."""
        wanted = self.data.related_id(name)
        return next((r for r in self.included if r.id == wanted), None) if wanted else None


@dataclass(frozen=True)
class Feedback:
    comment: str | None = None
    tester: str | None = None
    device: str | None = None
    screenshots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Details:
    """What the API said about one event; any part may be missing."""

    app_id: str | None = None
    app_name: str | None = None
    bundle_id: str | None = None
    version: str | None = None
    platform: str | None = None
    build_number: str | None = None
    #: The TestFlight build's id (``builds``), for its page.
    build_id: str | None = None
    #: What Apple said of a build upload that failed.
    upload_errors: tuple[str, ...] = ()
    feedback: Feedback | None = None


class Found:
    """Details as they arrive; a lookup cut off by the budget leaves what it had. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}

    def add(self, **values: Any) -> None:
        """Set each value that is not None and not already known (the first answer wins)."""
        with self._lock:
            for name, value in values.items():
                if value is not None and self._values.get(name) is None:
                    self._values[name] = value

    def details(self) -> Details:
        with self._lock:
            return Details(**self._values)


Call = Callable[[str], Any]


def look_up(
    kind: str, resource: str, call: Call, found: Found, apps: TimedCache[str, Details] | None = None
) -> None:
    """Ask the API about ``resource`` (of type ``kind``), adding what each answer says to ``found``.

    ``call`` takes a path with its query (``/v1/builds/x?include=app``) and returns the JSON
    answer, or raises Unavailable; the answers' shapes are checked here.
    """
    rid = quote(resource, safe="")
    if kind == "apps":
        cached = apps.get(resource) if apps is not None else None
        if cached is not None:
            found.add(**vars(cached[0]))
            return
        app = _document(call(f"/v1/apps/{rid}")).data
        details = Details(app_id=app.id, app_name=app.text("name"), bundle_id=app.text("bundleId"))
        if apps is not None:
            apps.put(resource, details)
        found.add(**vars(details))
        return
    if kind == "appStoreVersions":
        doc = _document(call(f"/v1/appStoreVersions/{rid}?include=app,build"))
        found.add(version=doc.data.text("versionString"), platform=doc.data.text("platform"))
        _add_app(found, doc.related("app"))
        build = doc.related("build")
        if build is not None:
            found.add(build_number=build.text("version"), build_id=build.id)
        return
    if kind == "buildUploads":
        doc = _document(call(f"/v1/buildUploads/{rid}?include=build"))
        found.add(
            version=doc.data.text("cfBundleShortVersionString"),
            build_number=doc.data.text("cfBundleVersion"),
            platform=doc.data.text("platform"),
            upload_errors=_upload_errors(doc.data.attributes.get("state")) or None,
        )
        build_id = doc.data.related_id("build")
    elif kind == "buildBetaDetails":
        build_id = _document(call(f"/v1/buildBetaDetails/{rid}?include=build")).data.related_id("build")
    elif kind in FEEDBACK_PAGES:
        doc = _document(call(f"/v1/{kind}/{rid}?include=build,tester"))
        found.add(feedback=_feedback(doc), platform=doc.data.text("appPlatform"))
        build_id = doc.data.related_id("build")
    else:
        return
    if build_id:
        doc = _document(call(f"/v1/builds/{quote(build_id, safe='')}?include=app,preReleaseVersion"))
        found.add(build_number=doc.data.text("version"), build_id=doc.data.id)
        _add_app(found, doc.related("app"))
        release = doc.related("preReleaseVersion")
        if release is not None:
            found.add(version=release.text("version"), platform=release.text("platform"))


def _document(answer: Any) -> Document:
    try:
        return Document.model_validate(answer)
    except ValueError:
        raise Unavailable("the App Store Connect API's answer is not the expected JSON") from None


def _add_app(found: Found, app: Resource | None) -> None:
    if app is not None:
        found.add(app_id=app.id, app_name=app.text("name"), bundle_id=app.text("bundleId"))


def _upload_errors(state: Any) -> tuple[str, ...]:
    errors = state.get("errors") if isinstance(state, dict) else None
    if not isinstance(errors, list):
        return ()
    said = [e.get("description") or e.get("code") for e in errors if isinstance(e, dict)]
    return tuple(str(text).strip() for text in said if isinstance(text, str) and text.strip())


def _feedback(doc: Document) -> Feedback:
    a = doc.data
    tester = doc.related("tester")
    name = " ".join(p for p in (tester.text("firstName"), tester.text("lastName")) if p) if tester else ""
    email = (tester.text("email") if tester else None) or a.text("email")
    who = f"{name} ({email})" if name and email else name or email
    system = " ".join(p for p in (platform_name(a.text("devicePlatform")), a.text("osVersion")) if p)
    device = " · ".join(p for p in (a.text("deviceModel"), system) if p) or None
    shots = a.attributes.get("screenshots")
    urls = [s.get("url") for s in shots if isinstance(s, dict)] if isinstance(shots, list) else []
    return Feedback(
        comment=a.text("comment"),
        tester=who or None,
        device=device,
        screenshots=tuple(u for u in urls if isinstance(u, str) and safe_url(u))[:MAX_SCREENSHOTS],
    )


# -- the message -----------------------------------------------------------------------------


def apply(n: Notification, details: Details) -> Notification:
    """``n`` completed with what the API said; what the webhook already had is kept."""
    d = details
    target = lookup_target(n)
    kind, resource = target if target is not None else ("", "")
    update: dict[str, Any] = {}
    platform = platform_name(d.platform)
    if d.version and not n.version:
        update["version"] = d.version
    if d.build_number and not n.build_number:
        update["build_number"] = d.build_number
    if platform and not n.platform:
        update["platform"] = platform
    if d.app_id and not n.app_id:
        update["app_id"] = update["app_key"] = d.app_id
    app = n.app or d.app_name
    update["app"] = app
    title = _titled(n.title, kind, d)
    update["title"] = title
    shown = n.app_name or app  # APP_NAMES first, as everywhere
    update["summary"] = f"{clip(shown, 80)}: {title}" if shown else f"{n.source_label}: {title}"
    # The bundle ID is not shown: an identifier that tells nobody anything at a glance.
    facts = list(n.facts)
    app_id = d.app_id or n.app_id
    links: list[Link] = []
    if kind in FEEDBACK_PAGES:
        url = web_url(app_id, "testflight", FEEDBACK_PAGES[kind], resource) if app_id else n.url
        what = "crash" if kind == "betaFeedbackCrashSubmissions" else "feedback"
        links.append(Link(label=f"Open {what}", url=url or web_url(None)))
        if d.feedback is not None:
            _add_feedback(update, facts, links, d.feedback, d)
    elif kind in ("buildUploads", "buildBetaDetails"):
        path = ("testflight", _platform_path(d.platform), d.build_id) if d.build_id else ("testflight",)
        url = web_url(app_id, *path) if app_id else n.url
        links.append(Link(label="Open build", url=url or web_url(None)))
        if d.upload_errors:
            update["details_title"] = "What App Store Connect said"
            update["details"] = "\n".join(d.upload_errors)
    else:
        url = web_url(app_id, "distribution") if app_id else n.url
        # The app's App Store page, which shows the version; short labels fit a phone's buttons.
        label = (
            "Open version" if kind == "appStoreVersions" and app_id else "Open app" if app_id else OPEN_ASC
        )
        links.append(Link(label=label, url=url or web_url(None)))
    # Addresses built from the API's ids are checked like any payload URL (the model's validators
    # do not run on a copy): one too long for a chat tool falls back to the list of apps.
    url = safe_url(url) or web_url(None)
    links = [link if safe_url(link.url) else Link(label=link.label, url=url) for link in links]
    update.update(url=url, links=tuple(links), facts=tuple(facts))
    return n.model_copy(update=update)


def _titled(title: str, kind: str, d: Details) -> str:
    """``App Store version rejected`` -> ``Version 2.4.0 rejected`` once the version is known."""
    generic, named = SUBJECTS.get(kind, ("", ""))
    if not generic or not title.startswith(generic):
        return title
    version = clip(d.version, 40) if d.version else None
    build = clip(d.build_number, 20) if d.build_number else None
    if kind == "appStoreVersions":
        what = version
    elif version and build:
        what = f"{version} ({build})"
    else:
        what = version or build
    return f"{named} {what}{title[len(generic) :]}" if what else title


def _platform_path(platform: str | None) -> str:
    """TestFlight's address for a platform: ``IOS`` -> ``ios``, ``MAC_OS`` -> ``macos``."""
    return (platform or "IOS").strip().lower().replace("_", "") or "ios"


def _add_feedback(
    update: dict[str, Any], facts: list[Fact], links: list[Link], f: Feedback, d: Details
) -> None:
    if f.tester:
        facts.append(Fact("Tester", f.tester))
    if f.device:
        facts.append(Fact("Device", f.device))
    if f.comment:
        update["details_title"] = "Comment"
        update["details"] = f.comment
    shots = [url for url in f.screenshots if safe_url(url)]
    for i, url in enumerate(shots, 1):
        links.append(Link(label="Screenshot" if len(shots) == 1 else f"Screenshot {i}", url=url))
    first = f.comment.strip().splitlines()[0] if f.comment and f.comment.strip() else ""
    if first:
        update["summary"] = f"{update['summary']}: {clip(first, 120)}"


# -- calling the API -------------------------------------------------------------------------


class Client:
    """The API, its tokens and the apps it named. Thread-safe; one per process."""

    def __init__(self) -> None:
        self.api = JsonApi(
            "the App Store Connect API",
            budget=BUDGET_SECONDS,
            credential="key",
            unknown="this app, version, build or feedback",
        )
        self.signer = Signer()
        self.apps: TimedCache[str, Details] = TimedCache(APP_SECONDS)

    def fetch(self, key: Credentials, base: str, kind: str, resource: str) -> tuple[Details, str | None]:
        """What the API says within the budget, and why not all of it (None when it all came)."""
        api = self.api
        paused = api.paused_reason(base)
        if paused:
            return Details(), paused
        token = self.signer.token(key)
        deadline = api.deadline()
        root = base.rstrip("/")

        def call(path: str) -> Any:
            return api.get(base, root + path, {"Authorization": f"Bearer {token}"}, deadline)

        found = Found()
        _, problems = api.collect(
            {"lookup": api.submit(look_up, kind, resource, call, found, self.apps)}, deadline
        )
        return found.details(), problems[0] if problems else None

    def forget(self) -> None:
        """Drop tokens, app names and pauses (tests)."""
        self.signer.forget()
        self.apps.clear()
        self.api.forget()


#: The process's client (its session, pool, caches and pauses are shared by every request).
client = per_process(Client)


def enrich(n: Notification, key: Credentials, base: str) -> Enrichment:
    """``n`` completed from the API within the budget; on any problem, with what came, said so."""
    target = lookup_target(n)
    if target is None:
        return Enrichment(n, "unavailable: the webhook named nothing to look up")
    try:
        details, problem = client().fetch(key, base, *target)
    except Unavailable as exc:  # the key itself
        return Enrichment(n, f"unavailable: {exc}")
    enriched = apply(n, details)
    if problem:
        log.warning("App Store Connect API details incomplete for %s %s: %s", target[0], target[1], problem)
        return Enrichment(enriched, f"unavailable: {problem}")
    return Enrichment(enriched, "complete")


def recorded(n: Notification, answers: Mapping[str, Any]) -> Notification:
    """``n`` completed from recorded answers (``{"/v1/...?include=...": <answer>}``), as ``enrich``
    would: for golden files and the preview, without a network."""
    target = lookup_target(n)
    if target is None:
        return n

    def call(path: str) -> Any:
        if path not in answers:
            raise Unavailable(f"no recorded answer for {path}")
        return answers[path]

    found = Found()
    look_up(*target, call, found)
    return apply(n, found.details())


__all__ = ["BUDGET_SECONDS", "Credentials", "Details", "apply", "client", "enrich", "look_up", "recorded"]

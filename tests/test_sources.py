"""Each source's payload models, event classification and normalisation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sourcetools import SOURCES, notification, plain_facts, translate
from translators import sources
from translators.errors import Ignored, PayloadInvalid
from translators.model import EVENTS
from translators.samples import all_samples

EXPECTED_EVENTS = {
    "bitrise/build-triggered": "build.started",
    "bitrise/build-succeeded": "build.succeeded",
    "bitrise/build-failed": "build.failed",
    "bitrise/build-aborted": "build.canceled",
    "bitrise/build-aborted-success": "build.canceled",
    "bitrise/build-tag": "build.succeeded",
    "appcenter/build-succeeded": "build.succeeded",
    "appcenter/build-failed": "build.failed",
    "appcenter/build-canceled": "build.canceled",
    "appcenter/crash": "crash.new_group",
    "appcenter/crash-with-stack": "crash.new_group",
    "appcenter/distribute": "release.published",
    "appcenter/distribute-long-notes": "release.published",
    "applivery/build-created": "build.uploaded",
    "applivery/build-processed": "build.ready",
    "applivery/build-processed-ios": "build.ready",
    "applivery/feedback": "feedback.received",
    "applivery/bug": "bug.reported",
    "applivery/bug-multiline": "bug.reported",
    "applivery/certificate-1-day": "certificate.expiring",
    "applivery/certificate-5-days": "certificate.expiring",
    "applivery/certificate-30-days": "certificate.expiring",
    "appflow/package-success": "build.succeeded",
    "appflow/package-ios-failed": "build.failed",
    "appflow/package-canceled": "build.canceled",
    "appflow/web-success": "build.succeeded",
    "appflow/web-failed": "build.failed",
    "appstoreconnect/alternative-distribution-available": "release.updated",
    "appstoreconnect/background-asset-failed": "release.updated",
    "appstoreconnect/build-upload-complete": "build.ready",
    "appstoreconnect/build-upload-failed": "build.upload_failed",
    "appstoreconnect/build-upload-processing": "build.uploaded",
    "appstoreconnect/feedback-crash": "crash.reported",
    "appstoreconnect/feedback-screenshot": "feedback.received",
    "appstoreconnect/ping": "webhook.ping",
    "appstoreconnect/testflight-approved": "review.approved",
    "appstoreconnect/testflight-rejected": "review.rejected",
    "appstoreconnect/version-in-review": "review.started",
    "appstoreconnect/version-pending-release": "review.approved",
    "appstoreconnect/version-ready-for-distribution": "release.published",
    "appstoreconnect/version-ready-for-review": "release.updated",
    "appstoreconnect/version-rejected": "review.rejected",
    "appstoreconnect/version-waiting-for-review": "review.submitted",
    "appcircle/build-failed": "build.failed",
    "appcircle/build-start": "build.started",
    "appcircle/build-succeeded": "build.succeeded",
    "appcircle/build-timeout": "build.failed",
    "appcircle/build-warnings": "build.succeeded",
    "appcircle/distribution-shared": "release.published",
    "appcircle/publish-succeeded": "release.published",
    "eas/build-canceled": "build.canceled",
    "eas/build-errored": "build.failed",
    "eas/build-finished": "build.succeeded",
    "eas/submit-errored": "build.upload_failed",
    "eas/submit-finished": "build.uploaded",
    "github/ping": "webhook.ping",
    "github/run-canceled": "build.canceled",
    "github/run-failed": "build.failed",
    "github/run-requested": "build.started",
    "github/run-succeeded-pr": "build.succeeded",
    "xcodecloud/build-canceled-tag": "build.canceled",
    "xcodecloud/build-created": "build.queued",
    "xcodecloud/build-failed": "build.failed",
    "xcodecloud/build-started": "build.started",
    "xcodecloud/build-succeeded-pr": "build.succeeded",
}


def test_registry_finds_every_source_module() -> None:
    assert set(SOURCES) <= set(sources.registry())
    assert sources.get("BITRISE") is sources.get("bitrise")
    assert sources.get("nope") is None


@pytest.mark.parametrize("sample", all_samples(), ids=lambda s: s.id)
def test_every_sample_has_an_expected_event(sample: Any) -> None:
    n = notification(sample.source, json.loads(sample.body()), sample.headers)
    assert n.event == EXPECTED_EVENTS[sample.id]
    assert n.event in EVENTS
    assert n.title and n.summary and n.url


# -- Bitrise ------------------------------------------------------------------------------------

BITRISE = {
    "build_slug": "1234abcd",
    "build_number": 3,
    "app_slug": "abcd1234",
    "build_status": 1,
    "build_triggered_workflow": "deploy",
    "git": {"provider": "github", "src_branch": "feature/x", "dst_branch": "main", "pull_request_id": 32},
}


@pytest.mark.parametrize(
    ("status", "event", "outcome"),
    [
        (1, "build.succeeded", "success"),
        (2, "build.failed", "failure"),
        (3, "build.canceled", "canceled"),
        (4, "build.canceled", "canceled"),
    ],
)
def test_bitrise_finished_statuses(status: int, event: str, outcome: str) -> None:
    n = notification("bitrise", {**BITRISE, "build_status": status}, {"Bitrise-Event-Type": "build/finished"})
    assert (n.event, n.outcome) == (event, outcome)
    assert n.build_number == "3"
    assert n.url == "https://app.bitrise.io/build/1234abcd"


def test_bitrise_triggered_is_started() -> None:
    n = notification("bitrise", {**BITRISE, "build_status": 0}, {"Bitrise-Event-Type": "build/triggered"})
    assert (n.event, n.outcome) == ("build.started", "running")


def test_bitrise_pr_and_workflow_fields() -> None:
    n = notification("bitrise", BITRISE, {"Bitrise-Event-Type": "build/finished"})
    assert (n.branch, n.target_branch, n.pull_request, n.workflow) == ("feature/x", "main", "32", "deploy")
    assert plain_facts(n).get("Branch") == "feature/x → main · PR #32"
    assert "Pull request" not in plain_facts(n), "the pull request is said beside the branches"


def test_bitrise_tag_build_and_zero_pr_id() -> None:
    payload = {
        **BITRISE,
        "git": {"provider": "github", "src_branch": "", "pull_request_id": 0, "tag": "v1.0"},
    }
    n = notification("bitrise", payload, {"Bitrise-Event-Type": "build/finished"})
    assert n.tag == "v1.0"
    assert n.pull_request is None and n.branch is None


def test_bitrise_without_header_uses_status() -> None:
    assert notification("bitrise", {**BITRISE, "build_status": 0}).event == "build.started"
    assert notification("bitrise", {**BITRISE, "build_status": 2}).event == "build.failed"


def test_bitrise_finished_with_status_zero_is_invalid() -> None:
    with pytest.raises(PayloadInvalid) as err:
        translate("bitrise", {**BITRISE, "build_status": 0}, {"Bitrise-Event-Type": "build/finished"})
    assert err.value.errors[0].path == "build_status"


def test_bitrise_unknown_event_type_is_ignored() -> None:
    result = translate("bitrise", BITRISE, {"Bitrise-Event-Type": "app/created"})
    assert isinstance(result, Ignored)
    assert "app/created" in result.reason


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"build_slug": None}, "build_slug"),
        ({"build_number": "three"}, "build_number"),
        ({"build_status": 7}, "build_status"),
        ({"git": {"pull_request_id": "abc"}}, "git.pull_request_id"),
    ],
)
def test_bitrise_invalid_fields_are_named(change: dict[str, Any], path: str) -> None:
    with pytest.raises(PayloadInvalid) as err:
        translate("bitrise", {**BITRISE, **change}, {"Bitrise-Event-Type": "build/finished"})
    assert path in [e.path for e in err.value.errors]


def test_bitrise_missing_field_is_named() -> None:
    payload = {k: v for k, v in BITRISE.items() if k != "app_slug"}
    with pytest.raises(PayloadInvalid) as err:
        translate("bitrise", payload, {"Bitrise-Event-Type": "build/finished"})
    assert [e.path for e in err.value.errors] == ["app_slug"]
    assert "required" in err.value.errors[0].message.lower()


def test_bitrise_slug_is_quoted_in_urls() -> None:
    n = notification(
        "bitrise", {**BITRISE, "build_slug": "a b/../c"}, {"Bitrise-Event-Type": "build/finished"}
    )
    assert n.url == "https://app.bitrise.io/build/a%20b%2F..%2Fc"


def test_bitrise_without_a_title_names_no_app() -> None:
    n = notification("bitrise", BITRISE, {"Bitrise-Event-Type": "build/finished"})
    # The slug is an id, not a name: the heading leads with the workflow, the footer shows the slug.
    assert n.app is None and (n.app_id, n.app_key) == ("abcd1234", "abcd1234")
    assert n.lead == "deploy" and n.footer_id == "abcd1234"
    assert n.summary == "Bitrise: build #3 (deploy) succeeded"
    assert n.named("Acme Android").summary == "Acme Android: build #3 (deploy) succeeded"
    assert "Git provider" not in plain_facts(n)
    titled = notification(
        "bitrise", {**BITRISE, "app_title": "Acme"}, {"Bitrise-Event-Type": "build/finished"}
    )
    assert (titled.app, titled.app_id, titled.footer_id) == ("Acme", "abcd1234", None)
    assert titled.summary.startswith("Acme: Bitrise build #3")


# -- Every source ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", all_samples(), ids=lambda s: s.id)
def test_buttons_are_short_and_the_main_one_is_a_link(sample: Any) -> None:
    """Two buttons side by side on a phone: short labels; the event's own page among the links."""
    n = notification(sample.source, json.loads(sample.body()), sample.headers)
    assert all(len(link.label) <= 14 for link in n.links), [link.label for link in n.links]
    assert n.url in [link.url for link in n.links]
    assert all(len(label) <= 12 for label, *_ in n.facts), [fact.label for fact in n.facts]


@pytest.mark.parametrize(
    ("repo", "commit", "pull"),
    [
        (
            "https://github.com/acme/app",
            "https://github.com/acme/app/commit/9fceb02d",
            "https://github.com/acme/app/pull/7",
        ),
        (
            "https://github.com/acme/app.git",
            "https://github.com/acme/app/commit/9fceb02d",
            "https://github.com/acme/app/pull/7",
        ),
        (
            "git@github.com:acme/app.git",
            "https://github.com/acme/app/commit/9fceb02d",
            "https://github.com/acme/app/pull/7",
        ),
        (
            "ssh://git@gitlab.com/acme/mobile/app.git",
            "https://gitlab.com/acme/mobile/app/-/commit/9fceb02d",
            "https://gitlab.com/acme/mobile/app/-/merge_requests/7",
        ),
        (
            "https://bitbucket.org/acme/app.git",
            "https://bitbucket.org/acme/app/commits/9fceb02d",
            "https://bitbucket.org/acme/app/pull-requests/7",
        ),
        ("https://git.acme.example/acme/app.git", None, None),
        ("https://github.com/acme", None, None),
        ("https://github.com/acme/app/tree/main", None, None),
        ("javascript:alert(1)//github.com/a/b", None, None),
        ("", None, None),
    ],
)
def test_repository_pages(repo: str, commit: str | None, pull: str | None) -> None:
    from translators.sources import _repo

    assert _repo.commit_url(repo, "9fceb02d") == commit
    assert _repo.pull_request_url(repo, "7") == pull
    assert _repo.commit_url(repo, "not a sha") is None and _repo.pull_request_url(repo, "0") is None


# -- App Center ---------------------------------------------------------------------------------

APPCENTER_BUILD = {
    "app_name": "myFirstApp",
    "branch": "main",
    "build_status": "Succeeded",
    "build_id": "33",
    "build_link": "https://appcenter.ms/users/u/apps/a/build/branches/main/builds/33",
    "build_reason": "manual",
    "start_time": "2018-06-14T23:57:03.4379381Z",
    "finish_time": "2018-06-14T23:59:05.2542221Z",
    "source_version": "55820a357ba26831f2eeb3be9973a4ef20618b73",
    "os": "iOS",
}


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("Succeeded", "build.succeeded"),
        ("succeeded", "build.succeeded"),
        ("Failed", "build.failed"),
        ("Canceled", "build.canceled"),
        ("Cancelled", "build.canceled"),
        ("Started", "build.started"),
        ("PartiallySucceeded", "build.succeeded"),
    ],
)
def test_appcenter_build_statuses(status: str, event: str) -> None:
    assert notification("appcenter", {**APPCENTER_BUILD, "build_status": status}).event == event


def test_appcenter_build_fields() -> None:
    n = notification("appcenter", APPCENTER_BUILD)
    assert n.duration_text == "2m 2s"
    assert n.short_commit == "55820a35"
    assert (n.app, n.platform, n.branch, n.build_number) == ("myFirstApp", "iOS", "main", "33")


def test_appcenter_unknown_build_status_is_named() -> None:
    with pytest.raises(PayloadInvalid) as err:
        translate("appcenter", {**APPCENTER_BUILD, "build_status": "Exploded"})
    assert [e.path for e in err.value.errors] == ["build_status"]


def test_appcenter_numeric_ids_are_accepted() -> None:
    assert notification("appcenter", {**APPCENTER_BUILD, "build_id": 33}).build_number == "33"


def test_appcenter_crash_details() -> None:
    sample = json.loads(next(s for s in all_samples() if s.id == "appcenter/crash-with-stack").body())
    n = notification("appcenter", sample)
    assert n.event == "crash.new_group" and n.outcome == "failure" and n.emoji == "💥"
    assert n.title == "New crash group"
    assert n.error == (
        "java.lang.NullPointerException: Attempt to invoke virtual method 'java.lang.String"
        " <T>.getName()' on a null object reference"
    )
    assert n.error_location == "MainActivity.onCreate (MainActivity.kt:88)"
    # The stack stays in details, as code; its first frame is the location, so not repeated.
    assert n.details_kind == "code" and n.details is not None
    assert n.details.startswith("com.example.app.MainActivity.onCreate (MainActivity.kt:88)")
    # The frames after the location, each without its package: a phone's line holds it.
    assert n.frames == (
        "Activity.performCreate (Activity.java:8051)",
        "Instrumentation.callActivityOnCreate (Instrumentation.java:1329)",
    )
    assert plain_facts(n).get("Crashes") == "14" and plain_facts(n).get("Users") == "9"
    # app_platform is the language ("Java"), not the platform.
    assert n.platform is None and "Java" not in plain_facts(n).values()
    assert notification("appcenter", {**sample, "app_os": "Android"}).platform == "Android"
    assert [link.label for link in n.links] == ["Open crash"]


def test_appcenter_crash_without_a_stack() -> None:
    sample = json.loads(next(s for s in all_samples() if s.id == "appcenter/crash").body())
    n = notification("appcenter", sample)
    assert (n.error, n.error_location) == (
        "android.app.SuperNotCalledException",
        "android.app.Activity.performResume (Activity.java:5084)",
    )
    assert n.details is None and n.frames == ()
    assert "Crashes" not in plain_facts(n) and "Users" not in plain_facts(n), "0 says nothing"


def test_appcenter_build_says_no_person_and_links_only_the_build() -> None:
    n = notification(
        "appcenter",
        {
            **APPCENTER_BUILD,
            "build_reason": "continuous integration",
            "notification_settings_link": "https://appcenter.ms/x",
        },
    )
    assert n.who is None and n.people == ()
    assert [link.label for link in n.links] == ["Open build"]


def test_appcenter_distribute_version_and_size() -> None:
    sample = json.loads(next(s for s in all_samples() if s.id == "appcenter/distribute").body())
    n = notification("appcenter", sample)
    assert n.version == "1.7.0 (74)"
    assert n.size_text == "2.5 MB"
    assert n.details_title == "Release notes"
    assert n.links[0].label == "Install"
    assert plain_facts(n).get("Mandatory") == "yes"
    for noise in ("Bundle", "Minimum OS", "Mandatory update"):
        assert noise not in plain_facts(n)
    optional = notification("appcenter", {**sample, "mandatory_update": False})
    assert "Mandatory" not in plain_facts(optional)


def test_appcenter_unrecognised_body_lists_expected_keys() -> None:
    with pytest.raises(PayloadInvalid) as err:
        translate("appcenter", {"hello": "world"})
    assert "build" in err.value.message and "distribute" in err.value.message
    assert any("build_id" in e.message for e in err.value.errors)


def test_appcenter_test_message_is_ignored() -> None:
    assert isinstance(translate("appcenter", {"text": "Hello from App Center"}), Ignored)


def test_unsafe_payload_urls_are_dropped() -> None:
    n = notification("appcenter", {**APPCENTER_BUILD, "build_link": "javascript:alert(1)"})
    assert n.url is None and n.links == ()
    n = notification("appcenter", {**APPCENTER_BUILD, "build_link": "https://x.test/a|<!channel>"})
    assert n.url is None

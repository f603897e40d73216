"""Apple's own documented examples, verbatim (held out: the bundled samples were written apart from
them), each accepted with the right outcome and drawn valid in every format, saying what changed.

Sources: "Configuring and parsing App Store Connect API webhook notifications" and "Understanding
webhook events" (App Store Connect API), "Configuring webhooks in Xcode Cloud" (Xcode), and a
BUILD_STARTED delivery captured from Xcode Cloud (2024), whose keys not known yet are absent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import crosscheck
from tests.sourcetools import plain_facts, translate
from translators import pipeline, settings
from translators.errors import Ignored
from translators.model import Notification

FORMATS = ("slack", "teams", "teams-messagecard")
SETTINGS = settings.load(
    {f"CHANNEL_{f.upper().replace('-', '_')}_URL": "http://127.0.0.1:9/" for f in FORMATS}
    | {f"CHANNEL_{f.upper().replace('-', '_')}_FORMAT": f for f in FORMATS}
)


def envelope(
    type_: str, id_: str, attributes: dict[str, Any], instance: dict[str, Any] | None
) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type_, "id": id_, "version": 1, "attributes": attributes}
    if instance is not None:
        data["relationships"] = {"instance": instance}
    return {"data": data}


APP_STORE_CONNECT = {
    "version": (
        envelope(
            "appStoreVersionAppVersionStateUpdated",
            "7c813492-9516-4c79-903e-224effdd57ac",
            {
                "newValue": "READY_FOR_REVIEW",
                "oldValue": "PREPARE_FOR_SUBMISSION",
                "timestamp": "2025-04-16T05:00:52.745Z",
            },
            {"data": {"type": "appStoreVersions", "id": "ad7e6298-2570-4ca6-b3cc-f81788e40bdc"}},
        ),
        ("release.updated", "info", "Prepare for Submission → Ready for Review"),
    ),
    "beta": (
        envelope(
            "buildBetaDetailExternalBuildStateUpdated",
            "4a9eacca-e53f-4006-85db-aa18c515663a",
            {
                "newExternalBuildState": "READY_FOR_REVIEW",
                "oldExternalBuildState": "PREPARE_FOR_SUBMISSION",
                "timestamp": "2025-04-16T05:00:52.745Z",
            },
            {"data": {"type": "buildBetaDetails", "id": "ad7e6298-2570-4ca6-b3cc-f81788e40bdc"}},
        ),
        ("release.updated", "info", "Prepare for Submission → Ready for Review"),
    ),
    "screenshot": (
        envelope(
            "betaFeedbackScreenshotSubmissionCreated",
            "4a9eacca-e53f-4006-85db-aa18c515663a",
            {"timestamp": "2025-05-08T01:29:36.16Z"},
            {
                "data": {"type": "betaFeedbackScreenshotSubmissions", "id": "AD8JvKbr0BK0Cj9OnM6WO6I"},
                "links": {
                    "self": "https://api.appstoreconnect.apple.com/v1/betaFeedbackScreenshotSubmissions/AD8JvKbr0BK0Cj9OnM6WO6I"
                },
            },
        ),
        ("feedback.received", "info", None),
    ),
    "crash": (
        envelope(
            "betaFeedbackCrashSubmissionCreated",
            "a4319bc8-ed16-460b-8de6-ba9734b55631",
            {"timestamp": "2025-05-16T20:53:20.729Z"},
            {
                "data": {"type": "betaFeedbackCrashSubmissions", "id": "AK7UjG-qL5QxXf3gIOGjbpQ"},
                "links": {
                    "self": "https://api.appstoreconnect.apple.com/v1/betaFeedbackCrashSubmissions/AK7UjG-qL5QxXf3gIOGjbpQ"
                },
            },
        ),
        ("crash.reported", "failure", None),
    ),
    "asset-state": (
        {
            "data": {
                "type": "backgroundAssetVersionStateUpdated",
                "id": "cd7e273b-0514-4bf6-9ccb-30449a7d03e4",
                "attributes": {
                    "timestamp": "2025-12-08T14:30:45Z",
                    "newState": "FAILED",
                    "oldState": "PROCESSING",
                },
                "relationships": {
                    "instance": {
                        "id": "607fea97-a6ba-445d-a9bd",
                        "type": "backgroundAssetVersions",
                        "links": {
                            "self": "https://api.appstoreconnect.apple.com/v1/backgroundAssetVersions/607fea97-a6ba-445d-a9bd"
                        },
                    }
                },
            }
        },
        ("release.updated", "failure", "Processing → Failed"),
    ),
    "asset-internal": (
        {
            "data": {
                "type": "backgroundAssetVersionInternalBetaReleaseCreated",
                "id": "607fea97-a6ba-445d-a9ba",
                "attributes": {"timestamp": "2025-12-05T14:30:45Z"},
                "relationships": {
                    "instance": {
                        "id": "607fea97-a6ba-445d-a9bd",
                        "type": "backgroundAssetVersionInternalBetaReleaseCreated",
                        "links": {
                            "self": "https://api.appstoreconnect.apple.com/v1/backgroundAssetVersionInternalBetaReleaseCreated/607fea97-a6ba-445d-a9bd"
                        },
                    }
                },
            }
        },
        ("release.published", "success", None),
    ),
    "asset-external": (
        {
            "data": {
                "type": "backgroundAssetVersionExternalBetaReleaseStateUpdated",
                "id": "607fea97-a6ba-445d-a9ba",
                "attributes": {
                    "timestamp": "2025-12-05T14:30:45Z",
                    "newState": "REJECTED",
                    "oldState": "IN_REVIEW",
                },
                "relationships": {
                    "instance": {
                        "id": "607fea97-a6ba-445d-a9bd",
                        "type": "backgroundAssetVersionExternalBetaReleases",
                        "links": {
                            "self": "https://api.appstoreconnect.apple.com/v1/backgroundAssetVersionExternalBetaReleases/607fea97-a6ba-445d-a9bd"
                        },
                    }
                },
            }
        },
        ("review.rejected", "failure", "In Review → Rejected"),
    ),
    "asset-app-store": (
        {
            "data": {
                "type": "backgroundAssetVersionAppStoreReleaseStateUpdated",
                "id": "607fea97-a6ba-445d-a9ba",
                "attributes": {
                    "timestamp": "2025-12-05T14:30:45Z",
                    "newState": "REJECTED",
                    "oldState": "IN_REVIEW",
                },
                "relationships": {
                    "instance": {
                        "id": "607fea97-a6ba-445d-a9bd",
                        "type": "backgroundAssetVersionAppStoreReleases",
                        "links": {
                            "self": "/v1/backgroundAssetVersionAppStoreReleases/607fea97-a6ba-445d-a9bd"
                        },
                    }
                },
            }
        },
        ("review.rejected", "failure", "In Review → Rejected"),
    ),
    "package-version": (
        {
            "data": {
                "type": "alternativeDistributionPackageVersionCreated",
                "id": "419ee583-c17e-4b24-84e1-738c24eb47a4",
                "version": 1,
                "attributes": {"appId": "10795428705", "timestamp": "2025-07-10T22:35:02.541411Z"},
                "relationships": {
                    "instance": {
                        "data": {
                            "type": "alternativeDistributionPackageVersions",
                            "id": "8d50a4f6-7653-4ccc-b9e2-b0133eb9b0d3",
                        },
                        "links": {
                            "self": "https://api-appstoreconnect.itunes.apple.com/v1/alternativeDistributionPackageVersions/8d50a4f6-7653-4ccc-b9e2-b0133eb9b0d3"
                        },
                    },
                    "marketplaceApp": {
                        "data": {"type": "apps", "id": "10738627177"},
                        "links": {"self": "https://api-appstoreconnect.itunes.apple.com/v1/apps/10738627177"},
                    },
                },
            }
        },
        ("release.updated", "info", None),
    ),
    "territories": (
        {
            "data": {
                "type": "alternativeDistributionTerritoryAvailabilityUpdated",
                "id": "da44e419-437b-4dbe-894c-2da570ffc4d2",
                "version": 1,
                "attributes": {
                    "available": True,
                    "territories": ["DNK", "IRL", "NLD"],
                    "appId": "10795421620",
                    "timestamp": "2025-07-17T14:55:16.125331Z",
                },
                "relationships": {
                    "marketplaceApp": {
                        "data": {"type": "apps", "id": "10737747186"},
                        "links": {"self": "https://api-appstoreconnect.itunes.apple.com/v1/apps/10737747186"},
                    }
                },
            }
        },
        ("release.updated", "info", None),
    ),
    "ping": (
        {
            "data": {
                "type": "webhookPingCreated",
                "id": "01234567-abcd-8901-dcba-987654321012",
                "version": 1,
                "attributes": {"timestamp": "2025-06-09T10:09:30.123456789Z"},
            }
        },
        ("webhook.ping", "info", None),
    ),
}

XCODE_CLOUD_EXAMPLE: dict[str, Any] = {
    "webhook": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "name": "Issue Tracker",
        "url": "https://issues.example.com/webhooks",
    },
    "metadata": {
        "type": "metadata",
        "attributes": {"createdDate": "2021-06-07T10:00:00.000000-07:00", "eventType": "BUILD_COMPLETED"},
    },
    "app": {"id": "12345678-abcd-1234-5678-a12345bc4567", "type": "apps"},
    "ciWorkflow": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "ciWorkflows",
        "attributes": {
            "name": "Pull Requests",
            "description": "Starts Builds from Pull Requests.",
            "isEnabled": True,
            "isLockedForEditing": False,
        },
    },
    "ciProduct": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "ciProducts",
        "attributes": {
            "name": "Example App",
            "createdDate": "2021-06-07T10:00:00.000000-07:00",
            "productType": "APP",
        },
    },
    "ciBuildRun": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "ciBuildRuns",
        "attributes": {
            "number": 12,
            "createdDate": "2021-06-07T10:00:00.000000-07:00",
            "sourceCommit": {
                "commitSha": "0123456789abcdefghij01234567890abcdefghi",
                "author": {"displayName": "Anne Johnson"},
                "committer": {"displayName": "Anne Johnson"},
                "htmlUrl": "https://example.com/commit/abcdef1234567890",
            },
            "destinationCommit": {
                "commitSha": "abcdefghij01234567890abcdefghi0123456789",
                "author": {"displayName": "Juan Chavez"},
                "committer": {"displayName": "Juan Chavez"},
                "htmlUrl": "https://example.com/commit/abcdef1234567890",
            },
            "isPullRequestBuild": True,
            "executionProgress": "COMPLETE",
            "completionStatus": "SUCCEEDED",
        },
    },
    "ciBuildActions": [
        {
            "id": "12345678-abcd-1234-5678-a12345bc4567",
            "type": "ciBuildActions",
            "attributes": {
                "name": "analyze",
                "actionType": "ANALYZE",
                "issueCounts": {"analyzerWarnings": 10, "errors": 0, "testFailures": 0, "warnings": 0},
                "executionProgress": "COMPLETE",
                "completionStatus": "SUCCEEDED",
                "isRequiredToPass": False,
            },
            "relationships": {},
        },
        {
            "id": "12345678-abcd-1234-5678-a12345bc4567",
            "type": "ciBuildActions",
            "attributes": {
                "name": "build",
                "actionType": "ARCHIVE",
                "issueCounts": {"analyzerWarnings": 0, "errors": 0, "testFailures": 0, "warnings": 3},
                "executionProgress": "COMPLETE",
                "completionStatus": "SUCCEEDED",
                "isRequiredToPass": True,
            },
            "relationships": {
                "builds": {
                    "id": "12345678-abcd-1234-5678-a12345bc4567",
                    "type": "builds",
                    "attributes": {"platform": "IOS"},
                }
            },
        },
    ],
    "scmProvider": {
        "type": "scmProviders",
        "attributes": {
            "scmProviderType": {
                "scmProviderType": "GITHUB_CLOUD",
                "displayName": "GitHub",
                "isOnPremise": False,
            },
            "endpoint": "https://github.com/example/example.git",
        },
    },
    "scmRepository": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "scmRepositories",
        "attributes": {
            "httpCloneUrl": "https://github.com/example/test.git",
            "sshCloneUrl": "ssh://git@github.com/example/test.git",
            "ownerName": "example",
            "repositoryName": "example app",
        },
    },
    "scmPullRequest": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "scmPullRequests",
        "attributes": {
            "title": "Add accessibility labels.",
            "number": 123,
            "htmlUrl": "https://example.com/example/example-app/pull/123",
            "sourceRepositoryOwner": "example",
            "sourceRepositoryName": "example source repository name",
            "sourceBranchName": "annejohnson/new-features",
            "destinationRepositoryOwner": "example",
            "destinationRepositoryName": "example destination repository name",
            "destinationBranchName": "main",
            "isClosed": False,
            "isCrossRepository": False,
        },
    },
    "scmGitReference": {
        "id": "12345678-abcd-1234-5678-a12345bc4567",
        "type": "scmGitReferences",
        "attributes": {
            "name": "annejohnson/new-feature",
            "canonicalName": "refs/heads/annejohnson/new-feature",
            "isDeleted": False,
            "kind": "BRANCH",
        },
    },
}

#: The captured BUILD_STARTED delivery, trimmed to the keys it had (its webhook URL left out).
XCODE_CLOUD_STARTED: dict[str, Any] = {
    "metadata": {
        "type": "metadata",
        "attributes": {"createdDate": "2024-05-28T08:24:09.768203493Z", "eventType": "BUILD_STARTED"},
    },
    "app": {"id": "6474260471", "type": "apps"},
    "ciWorkflow": {
        "id": "2FD68EB8-16E0-431E-B3E1-C8E22C764CBE",
        "type": "ciWorkflows",
        "attributes": {
            "name": "PosePicker",
            "description": "",
            "lastModifiedDate": "2024-05-28T06:44:42.91Z",
            "isEnabled": True,
            "isLockedForEditing": False,
        },
    },
    "ciProduct": {
        "id": "62F2E06F-87CB-4E5B-B810-0116536ECB5D",
        "type": "ciProducts",
        "attributes": {"name": "posepicker", "createdDate": "2024-05-28T06:32:42.758Z", "productType": "APP"},
    },
    "ciBuildRun": {
        "id": "349aca4f-4e7a-4a9a-ae75-13812a2ac372",
        "type": "ciBuildRuns",
        "attributes": {
            "number": 9,
            "createdDate": "2024-05-28T08:23:45.676Z",
            "startedDate": "2024-05-28T08:24:06.708Z",
            "sourceCommit": {
                "commitSha": "10c5e40fcdad562e05ffc87a4c85651670f24161",
                "author": {"displayName": "Parkjju"},
                "committer": {"displayName": "Parkjju"},
                "htmlUrl": "https://github.com/posepicker/PosePicker-iOS/commit/10c5e40fcdad562e05ffc87a4c85651670f24161",
            },
            "isPullRequestBuild": False,
            "executionProgress": "RUNNING",
        },
    },
    "ciBuildActions": [
        {
            "id": "ec00464f-39b5-4a34-adb0-13affbc80de1",
            "type": "ciBuildActions",
            "attributes": {
                "name": "Build - iOS",
                "actionType": "BUILD",
                "startedDate": "2024-05-28T08:24:06.708Z",
                "issueCounts": {"analyzerWarnings": 0, "errors": 0, "testFailures": 0, "warnings": 0},
                "executionProgress": "RUNNING",
                "isRequiredToPass": True,
            },
            "relationships": {},
        }
    ],
    "scmProvider": {
        "type": "scmProviders",
        "attributes": {
            "scmProviderType": {
                "scmProviderType": "GITHUB_CLOUD",
                "displayName": "GitHub",
                "isOnPremise": False,
            },
            "endpoint": "https://github.com",
        },
    },
    "scmRepository": {
        "id": "11cefca4-cec3-4bed-b977-3d0eaad5a596",
        "type": "scmRepositories",
        "attributes": {
            "httpCloneUrl": "https://github.com/posepicker/PosePicker-iOS.git",
            "sshCloneUrl": "ssh://git@github.com/posepicker/PosePicker-iOS.git",
            "ownerName": "posepicker",
            "repositoryName": "PosePicker-iOS",
        },
    },
    "scmGitReference": {
        "id": "209f1c8b-cb6d-4c96-b5c4-e656c590f318",
        "type": "scmGitReferences",
        "attributes": {
            "name": "main",
            "canonicalName": "refs/heads/main",
            "isDeleted": False,
            "kind": "BRANCH",
        },
    },
}


def drawn(n: Notification) -> list[str]:
    out = []
    for fmt in FORMATS:
        prepared = pipeline.prepare(SETTINGS.channel(fmt), n, SETTINGS)
        assert prepared.template_error is None, prepared.template_error
        assert crosscheck.check(fmt, prepared.body) == []
        out.append(json.dumps(prepared.body, ensure_ascii=False))
    return out


@pytest.mark.parametrize("name", sorted(APP_STORE_CONNECT))
def test_app_store_connect_examples(name: str) -> None:
    body, (event, outcome, status) = APP_STORE_CONNECT[name]
    n = translate("appstoreconnect", json.loads(json.dumps(body)))
    assert isinstance(n, Notification)
    assert (n.event, n.outcome) == (event, outcome)
    for text in drawn(n):
        assert n.title in text or n.title.replace("→", "\\u2192") in text
        if status is not None:
            assert status in text, "what changed, in words, old beside new"


def test_apples_build_upload_example_is_acknowledged() -> None:
    # Apple's page shows a placeholder as the state: a state with nothing to tell, not an error.
    body = envelope(
        "buildUploadStateUpdated",
        "7c813492-9516-4c79-903e-224effdd57ac",
        {"newState": "BuildUploadState"},
        {"data": {"type": "buildUploads", "id": "ad7e6298-2570-4ca6-b3cc-f81788e40bdc"}},
    )
    assert isinstance(translate("appstoreconnect", body), Ignored)


@pytest.mark.parametrize(
    ("body", "event", "facts"),
    [
        (
            XCODE_CLOUD_EXAMPLE,
            "build.succeeded",
            {
                "Workflow": "Pull Requests",
                "Branch": "annejohnson/new-features → main · PR #123",
                "Commit": "01234567",
            },
        ),
        (
            XCODE_CLOUD_STARTED,
            "build.started",
            {"Workflow": "PosePicker", "Branch": "main", "Commit": "10c5e40f"},
        ),
    ],
    ids=["apple-example", "captured-started"],
)
def test_xcode_cloud_examples(body: dict[str, Any], event: str, facts: dict[str, str]) -> None:
    n = translate("xcodecloud", body)
    assert isinstance(n, Notification) and n.event == event
    shown = plain_facts(n)
    assert {k: shown.get(k) for k in facts} == facts
    for text in drawn(n):
        assert n.title in text and all(value.split(" ")[0] in text for value in facts.values())

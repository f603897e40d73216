"""What App Store Connect and Xcode Cloud share: Apple's web addresses and its state names in words."""

from __future__ import annotations

from urllib.parse import quote

from translators.formats import clip

#: App Store Connect's web app. Addresses without ``/teams/<id>`` open in the team last used.
WEB = "https://appstoreconnect.apple.com"
#: Where to go when the payload names no app: the list of apps.
APPS_URL = f"{WEB}/apps"
#: The button to that list: short, to fit two buttons side by side on a phone.
OPEN_ASC = "Open in ASC"


def web_url(app_id: str | None, *path: str) -> str:
    """``https://appstoreconnect.apple.com/apps/<app>/<path...>`` (each part quoted), or the app list."""
    if not app_id:
        return APPS_URL
    return "/".join([APPS_URL, *(quote(part, safe="") for part in (app_id, *path))])


#: Apple's state names as App Store Connect shows them. Version states (AppVersionState and the
#: older AppStoreVersionState), TestFlight external build states (ExternalBetaState) and build
#: upload states (BuildUploadState); a name not here is shown by ``words``' fallback.
WORDS: dict[str, str] = {
    "ACCEPTED": "Accepted",
    "APPROVED": "Approved",
    "AWAITING_UPLOAD": "Awaiting Upload",
    "BETA_APPROVED": "Approved",
    "BETA_REJECTED": "Rejected",
    "COMPLETE": "Complete",
    "DEVELOPER_REJECTED": "Developer Rejected",
    "DEVELOPER_REMOVED_FROM_SALE": "Developer Removed from Sale",
    "EXPIRED": "Expired",
    "FAILED": "Failed",
    "IN_BETA_REVIEW": "In Beta Review",
    "IN_BETA_TESTING": "Testing",
    "IN_EXPORT_COMPLIANCE_REVIEW": "In Export Compliance Review",
    "IN_REVIEW": "In Review",
    "INVALID_BINARY": "Invalid Binary",
    "METADATA_REJECTED": "Metadata Rejected",
    "MISSING_EXPORT_COMPLIANCE": "Missing Compliance",
    "NOT_APPLICABLE": "Not Applicable",
    "PENDING_APPLE_RELEASE": "Pending Apple Release",
    "PENDING_CONTRACT": "Pending Contract",
    "PENDING_DEVELOPER_RELEASE": "Pending Developer Release",
    "PREORDER_READY_FOR_DISTRIBUTION": "Pre-Order Ready for Distribution",
    "PREORDER_READY_FOR_SALE": "Pre-Order Ready for Sale",
    "PREPARE_FOR_SUBMISSION": "Prepare for Submission",
    "PROCESSING": "Processing",
    "PROCESSING_EXCEPTION": "Processing Exception",
    "PROCESSING_FOR_APP_STORE": "Processing for App Store",
    "PROCESSING_FOR_DISTRIBUTION": "Processing for Distribution",
    "READY_FOR_BETA_SUBMISSION": "Ready to Submit",
    "READY_FOR_BETA_TESTING": "Ready to Test",
    "READY_FOR_DISTRIBUTION": "Ready for Distribution",
    "READY_FOR_REVIEW": "Ready for Review",
    "READY_FOR_SALE": "Ready for Sale",
    "REJECTED": "Rejected",
    "REMOVED_FROM_SALE": "Removed from Sale",
    "REPLACED_WITH_NEW_VERSION": "Replaced with New Version",
    "UPLOAD_RECEIVED": "Upload Received",
    "WAITING_FOR_BETA_REVIEW": "Waiting for Beta Review",
    "WAITING_FOR_EXPORT_COMPLIANCE": "Waiting for Export Compliance",
    "WAITING_FOR_REVIEW": "Waiting for Review",
    "WAITING_FOR_UPLOAD": "Waiting for Upload",
}

#: A state name longer than this is not Apple's: it is clipped where it is shown.
MAX_STATE_CHARS = 60


def state_key(value: str | None) -> str:
    """``in_review`` or `` IN_REVIEW `` -> ``IN_REVIEW``: how a state is looked up."""
    return (value or "").strip().upper().replace(" ", "_").replace("-", "_")


def words(value: str | None) -> str | None:
    """``PENDING_DEVELOPER_RELEASE`` -> ``Pending Developer Release``; an unknown name in sentence case."""
    key = state_key(value)
    if not key:
        return None
    known = WORDS.get(key)
    if known:
        return known
    return clip(key.replace("_", " ").capitalize(), MAX_STATE_CHARS)

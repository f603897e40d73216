"""A commit's and a pull request's page, from the repository's URL, for the hosts whose page shapes
are known: GitHub, GitLab and Bitbucket (cloud). Any other host (a self-hosted GitLab, Azure
Repos) gives None: a guessed link that 404s is worse than none.

Payloads write the repository as a clone URL, in any of these forms:
``https://github.com/acme/app``, ``https://github.com/acme/app.git``,
``git@github.com:acme/app.git``, ``ssh://git@github.com/acme/app.git``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from translators.model import Url, safe_url

#: host -> (commit path, pull request path), appended to https://host/owner/repo.
_HOSTS: dict[str, tuple[str, str]] = {
    "github.com": ("/commit/{sha}", "/pull/{number}"),
    "gitlab.com": ("/-/commit/{sha}", "/-/merge_requests/{number}"),
    "bitbucket.org": ("/commits/{sha}", "/pull-requests/{number}"),
}

#: ``git@host:owner/repo.git`` (scp-like syntax, no scheme).
_SCP = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):(?P<path>[^\s:]+)$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")


def repository(url: str | None) -> tuple[str, str] | None:
    """``(host, "owner/repo")`` of a known host's repository URL, else None."""
    if not url or not url.strip():
        return None
    url = url.strip()
    scp = _SCP.match(url)
    if scp:
        host, path = scp["host"], scp["path"]
    else:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        if parts.scheme not in ("https", "http", "ssh", "git"):
            return None
        path = parts.path
    host = host.lower().removeprefix("www.")
    if host not in _HOSTS:
        return None
    path = path.strip("/").removesuffix(".git").strip("/")
    segments = path.split("/")
    # GitLab nests groups (group/subgroup/repo); GitHub and Bitbucket are owner/repo.
    if len(segments) < 2 or any(not s or s in (".", "..") for s in segments):
        return None
    if host != "gitlab.com" and len(segments) != 2:
        return None
    return host, "/".join(segments)


def commit_url(repo_url: str | None, sha: str | None) -> Url | None:
    """The commit's page: ``https://github.com/acme/app/commit/<sha>``; None for an unknown host."""
    repo = repository(repo_url)
    if repo is None or not sha or not _SHA.match(sha.strip()):
        return None
    host, path = repo
    return safe_url(f"https://{host}/{quote(path, safe='/')}" + _HOSTS[host][0].format(sha=sha.strip()))


def pull_request_url(repo_url: str | None, number: str | int | None) -> Url | None:
    """The pull (merge) request's page: ``https://github.com/acme/app/pull/12``; None when unknown."""
    repo = repository(repo_url)
    text = str(number).strip() if number is not None else ""
    if repo is None or not _NUMBER.match(text) or text.strip("0") == "":
        return None
    host, path = repo
    return safe_url(f"https://{host}/{quote(path, safe='/')}" + _HOSTS[host][1].format(number=text))


__all__ = ["commit_url", "pull_request_url", "repository"]

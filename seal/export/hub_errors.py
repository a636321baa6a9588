"""Hub failures during `seal publish` as one line with a fix: the repo id, the token, access, the network and a
push cut short. A publish is one commit, so a failure leaves the branch as it was; rerunning completes it (the
files already uploaded are reused, and a push that did go through is found complete)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from seal.errors import HubUnreachable, SealError

RERUN = "rerun the same command: it reuses what was uploaded and completes the push (or finds it complete)"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_WRONG_TYPE = {"models": "model", "spaces": "Space", "kernels": "kernel", "buckets": "bucket"}


class PublishError(SealError):
    """The Hub refused or could not complete a publish."""


def check_repo_id(text: str) -> str:
    """`owner/name` from what the user gave (`owner/name`, `datasets/owner/name` or a dataset URL); a one-line
    error for a malformed id or one naming a model, Space or other non-dataset repo."""
    value = text.strip()
    is_url = "://" in value
    if is_url:
        value = urlsplit(value).path
    parts = [p for p in value.strip("/").split("/") if p]
    if parts and parts[0] in _WRONG_TYPE and len(parts) == 3:
        raise PublishError(
            f"`{text}` names a {_WRONG_TYPE[parts[0]]} repo; seal publishes dataset repos",
            hint="give a dataset repo id, OWNER/NAME (or datasets/OWNER/NAME)",
        )
    if parts and parts[0] == "datasets" and len(parts) == 3:
        parts = parts[1:]
    elif is_url and len(parts) == 2:
        raise PublishError(
            f"`{text}` is the address of a model repo (dataset addresses have /datasets/)",
            hint="give a dataset repo id, OWNER/NAME",
        )
    repo_id = "/".join(parts)
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        raise PublishError(
            f"`{text}` is not a Hub repo id",
            hint="write OWNER/NAME: letters, digits, '-', '_' and '.', at most 96 characters each, "
            "not starting or ending with '-' or '.'",
        )
    return repo_id


def _class_names(err: BaseException) -> set[str]:
    return {c.__name__ for c in type(err).__mro__}


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def translate(err: BaseException, *, repo_id: str, branch: str, endpoint: str, token_source: str) -> SealError | None:
    """The one-line error for a Hub failure, or None when `err` is not one (a bug: let it surface)."""
    names = _class_names(err)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if "OfflineModeIsEnabled" in names:
        return HubUnreachable("cannot publish: offline mode is on", hint="unset HF_HUB_OFFLINE to reach the Hub")
    if names & {"ConnectError", "ConnectTimeout"}:
        return HubUnreachable(
            f"cannot reach the Hub at {endpoint} ({first})",
            hint="check the network, a proxy or HF_ENDPOINT; nothing was pushed",
        )
    if names & {"RemoteProtocolError", "ReadError", "WriteError", "ReadTimeout", "WriteTimeout", "NetworkError"}:
        return PublishError(f"the connection to the Hub dropped during the push to {repo_id} ({first})", hint=RERUN)
    status = _status(err)
    if "RevisionNotFoundError" in names:
        return PublishError(
            f"{repo_id} has no branch `{branch}`", hint="give an existing branch with --revision, or leave it out"
        )
    if status == 401:
        return PublishError(
            f"the Hub refused the token from {token_source} (401 Unauthorized)",
            hint="check that it is a valid, unexpired token (a write token to publish)",
        )
    if status == 403:
        return PublishError(
            f"the token from {token_source} may not write to {repo_id} (403 Forbidden)",
            hint=f"use a token with write access to `{repo_id.split('/')[0]}` (fine-grained tokens need it granted)",
        )
    if "RepositoryNotFoundError" in names:
        return PublishError(
            f"the dataset repo {repo_id} was not found, or the token cannot see it",
            hint=f"check the repo id and that the token from {token_source} can access it",
        )
    if status == 412:
        return PublishError(
            f"{repo_id}@{branch} moved while seal was publishing (someone else committed)",
            hint="rerun: the card is merged again onto the new head",
        )
    if status is not None and status >= 500:
        return PublishError(
            f"the Hub answered {status} during the push to {repo_id}; nothing was committed to `{branch}`", hint=RERUN
        )
    if status is not None:
        return PublishError(f"the Hub answered {status} for {repo_id}: {first}")
    if isinstance(err, ValueError) and "Invalid metadata in README.md" in str(err):
        detail = " ".join(str(err).splitlines()[1:])[:200]
        return PublishError(
            f"the Hub rejected the card's YAML metadata: {detail}", hint="fix the YAML header of the repo's README.md"
        )
    return None

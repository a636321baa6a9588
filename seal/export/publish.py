"""`seal publish`: the `hf` export of the store pushed to a Hugging Face Hub dataset repo in ONE commit.

1. Check the repo id and the token (`--token-env VAR`, else `HF_TOKEN`, else the saved login), then read the
   remote: does the repo exist, the branch's head commit, its files and its README.md.
2. Build the `hf` export in a temporary folder and merge its card into the remote README (seal.export.merge:
   the user's prose and metadata stay; seal's marked sections and its configs' `configs`/`dataset_info` entries
   are replaced).
3. One `HfApi.create_commit` with every data shard, the card (and the optional HTML report) added and the stale
   shards of the configs seal writes deleted, on top of the head read in step 1 (`parent_commit`). A commit is
   atomic: a push cut short leaves the branch as it was, and rerunning completes it. (Writing a card after
   `push_to_hub` can wipe the `configs` it wrote; one commit for data and card cannot.)

`dry_run` stops before step 3 and says what would change: each file (add, update, unchanged, delete) and the
card's diff. The token is only ever sent in request headers: it is never written to a file, card or log.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.errors import HubUnreachable, SealError
from seal.export.core import export
from seal.export.hub_errors import PublishError, check_repo_id, translate
from seal.export.merge import card_diff
from seal.export.writers import DEFAULT_MAX_SHARD_SIZE
from seal.hub import endpoint as hub_endpoint
from seal.store import Store

REPO_TYPE = "dataset"
REPORT_NAME = "report.html"


@dataclass
class Remote:
    """What the repo holds before the push."""

    exists: bool = False
    branch_exists: bool = False
    sha: str | None = None
    private: bool | None = None
    files: dict[str, Any] = field(default_factory=dict)  # path -> RepoFile
    readme: str | None = None


@dataclass
class PublishResult:
    """What a publish pushed (or, with dry_run, would push)."""

    repo_id: str
    revision: str
    endpoint: str
    dry_run: bool
    create_pr: bool
    created_repo: bool
    created_branch: bool
    private: bool | None
    pairs: int
    configs: list[dict[str, Any]]
    files: list[dict[str, Any]]
    deleted: list[str]
    card_diff: str
    changed: bool
    commit_url: str | None = None
    commit_oid: str | None = None
    pull_request_url: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_token(token_env: str | None, required: bool) -> tuple[str | None, str]:
    """(token, where it came from): `--token-env VAR`, else `HF_TOKEN`, else the saved login."""
    if token_env:
        value = (os.environ.get(token_env) or "").strip()
        if not value:
            raise PublishError(
                f"--token-env {token_env}: that environment variable is not set or empty",
                hint=f"set {token_env} to a Hub token with write access",
            )
        return value, token_env
    value = (os.environ.get("HF_TOKEN") or "").strip()
    if value:
        return value, "HF_TOKEN"
    from huggingface_hub import get_token

    saved = get_token()
    if saved:
        return saved, "the saved Hub login"
    if required:
        raise PublishError(
            "no Hugging Face token to publish with",
            hint="set HF_TOKEN (or name another variable with --token-env VAR) to a token with write access, "
            "or log in with `hf auth login`",
        )
    return None, "no token (anonymous)"


def _hub_offline() -> str | None:
    """The variable that puts huggingface_hub offline (`HF_HUB_OFFLINE=1`, `TRANSFORMERS_OFFLINE=1`), if set.
    (`HF_DATASETS_OFFLINE` concerns loading with `datasets`, not pushing.)"""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if (os.environ.get(name) or "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{name}={os.environ[name]}"
    return None


def _remote(api: Any, repo_id: str, branch: str) -> Remote:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.hf_api import RepoFile

    try:
        info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=branch)
        remote = Remote(exists=True, branch_exists=True, sha=info.sha, private=info.private)
    except RevisionNotFoundError:  # a new branch starts from main
        info = api.repo_info(repo_id, repo_type=REPO_TYPE)
        remote = Remote(exists=True, branch_exists=False, sha=info.sha, private=info.private)
    except RepositoryNotFoundError:
        return Remote()
    ref = branch if remote.branch_exists else None
    for entry in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=ref, recursive=True):
        if isinstance(entry, RepoFile):
            remote.files[entry.path] = entry
    if "README.md" in remote.files:
        with tempfile.TemporaryDirectory(prefix="seal-card-") as tmp:
            path = api.hf_hub_download(repo_id, "README.md", repo_type=REPO_TYPE, revision=ref, local_dir=tmp)
            remote.readme = Path(path).read_text(encoding="utf-8")
    return remote


def _action(local: Path, remote: Any | None) -> str:
    """add (new path), unchanged (same content: the LFS sha256, or the git blob id of a regular file) or update."""
    if remote is None:
        return "add"
    lfs = getattr(remote, "lfs", None)
    digest = hashlib.sha256() if lfs is not None else hashlib.sha1(b"blob %d\0" % local.stat().st_size)
    with local.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    same = digest.hexdigest() == (lfs.sha256 if lfs is not None else remote.blob_id)
    return "unchanged" if same else "update"


def publish(
    store: Store,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    config: str | None = None,
    token_env: str | None = None,
    dry_run: bool = False,
    where: str | None = None,
    columns: list[str] | None = None,
    embeddings: bool = True,
    license: str | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    report: str | os.PathLike[str] | None = None,
    message: str | None = None,
) -> PublishResult:
    """Publish the store's pairs (those matching `where`) to dataset repo `repo_id` on branch `revision`
    (default main; created from main when missing) or as a pull request (`create_pr`), in one commit with a
    merged card; `report`: an HTML file uploaded as report.html. Options of the export as `seal export`."""
    t0 = time.perf_counter()
    repo_id = check_repo_id(repo_id)
    offline = _hub_offline()
    if offline:
        raise HubUnreachable(f"cannot publish: {offline} is set", hint="unset it to reach the Hub")
    report_path = Path(report) if report is not None else None
    if report_path is not None and not report_path.is_file():
        raise SealError(f"no report at {report_path}", hint="give the HTML file written by the report command")
    store.require()
    token, token_source = resolve_token(token_env, required=not dry_run)
    branch = revision or "main"
    url = hub_endpoint()
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=token if token else False)
    try:
        if token:
            api.whoami()
        remote = _remote(api, repo_id, branch)
        if create_pr and revision and not remote.branch_exists:
            raise PublishError(
                f"--create-pr opens a pull request against an existing branch, and {repo_id} has no `{branch}`",
                hint="leave --revision out (a pull request against main), or publish to the branch first",
            )
        with tempfile.TemporaryDirectory(prefix="seal-publish-") as tmp:
            folder = Path(tmp) / "export"
            built = export(
                store,
                folder,
                format="hf",
                where=where,
                columns=columns,
                embeddings=embeddings,
                config=config,
                license=license,
                max_shard_size=max_shard_size,
                load_id=repo_id,
                existing_card=remote.readme,
                report_link=REPORT_NAME if report_path is not None else None,
            )
            card = (folder / "README.md").read_text(encoding="utf-8")
            local = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
            if report_path is not None:
                local[REPORT_NAME] = report_path
            owned = tuple(f"data/{c['name']}/" for c in built.configs)
            deleted = sorted(p for p in remote.files if p.startswith(owned) and p not in local)
            files = [
                {"path": p, "bytes": f.stat().st_size, "action": _action(f, remote.files.get(p))}
                for p, f in local.items()
            ]
            changed = bool(deleted) or any(f["action"] != "unchanged" for f in files)
            result = PublishResult(
                repo_id=repo_id,
                revision=branch,
                endpoint=url,
                dry_run=dry_run,
                create_pr=create_pr,
                created_repo=False,
                created_branch=False,
                private=remote.private if remote.exists else private,
                pairs=built.pairs,
                configs=built.configs,
                files=files,
                deleted=deleted,
                card_diff=card_diff(remote.readme, card),
                changed=changed,
            )
            if not dry_run and (changed or not remote.branch_exists):
                _push(api, result, remote, local, deleted, message)
            elif not dry_run:  # the branch already holds exactly this export: no empty commit
                result.commit_oid = remote.sha
    except SealError:
        raise
    except Exception as err:
        translated = translate(err, repo_id=repo_id, branch=branch, endpoint=url, token_source=token_source)
        if translated is None:
            raise
        raise translated from None
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _push(
    api: Any, result: PublishResult, remote: Remote, local: dict[str, Path], deleted: list[str], message: str | None
) -> None:
    """Create the repo or branch when missing, then commit every change at once."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id, branch = result.repo_id, result.revision
    if not remote.exists:
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=result.private, exist_ok=True)
        result.created_repo = True
    elif not remote.branch_exists and not result.create_pr:
        api.create_branch(repo_id, branch=branch, repo_type=REPO_TYPE, exist_ok=True)
        result.created_branch = True
    operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in local.items()]
    operations += [CommitOperationDelete(path_in_repo=p) for p in deleted]
    names = ", ".join(c["name"] for c in result.configs)
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=message or f"seal publish: {result.pairs:,} pairs ({names})",
        commit_description="Data shards and dataset card written by seal in one commit.",
        repo_type=REPO_TYPE,
        revision=branch,
        create_pr=result.create_pr,
        parent_commit=remote.sha if remote.branch_exists and not result.create_pr else None,
    )
    result.commit_url = info.commit_url
    result.commit_oid = info.oid
    result.pull_request_url = info.pr_url
    result.changed = info.oid != remote.sha

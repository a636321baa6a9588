"""A local Hugging Face Hub for offline tests: the part of the Hub's HTTP API that `HfApi` (create_repo, repo_info,
create_commit, list_repo_files, hf_hub_download) and `datasets.load_dataset` (dataset_info, tree, paths-info,
resolve) speak, served by stdlib `http.server` on 127.0.0.1 in a thread.

Point the clients at it with `HF_ENDPOINT=hub.url` (set before huggingface_hub is imported: run them in a
subprocess) and `HF_HUB_DISABLE_XET=1` (uploads then take the LFS path: preupload answers "lfs" for parquet,
the LFS batch endpoint hands out an upload URL here, the commit NDJSON references the object by sha256).

State: dataset and model repos with branches and commits (a commit is the whole tree: path -> blob), blobs on
disk under `root/blobs` (LFS objects there too, by sha256, once uploaded), and each repo's `main` branch
materialised as a plain folder under `root/repos/<type>s/<owner>/<name>` that `load_dataset(folder)` reads.
Every request is logged in `requests` as (method, path).

Tokens: `tokens` maps a token to its role (`write` or `read`); a request with an unknown token gets 401, a write
with a read token 403. Faults (`faults`, name -> how many times, set by the test): `unauthorized` (every request
401 while set), `commit_500` (the next N commits answer 500 after the LFS uploads went through), `drop_commit`
(the next N commits close the connection without an answer), `lfs_500` (the next N LFS uploads answer 500);
`commit_500:OWNER/NAME` and `drop_commit:OWNER/NAME` hit only that repo's commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "seal-tester"
REGULAR_MAX = 10 * 1024 * 1024
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".gz", ".zip", ".npy")


def git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Blob:
    sha256: str
    size: int
    git_oid: str
    lfs: bool


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    message: str


@dataclass
class Repo:
    kind: str  # dataset | model | space
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid (refs/pr/N included)
    commits: dict[str, Commit] = field(default_factory=dict)
    prs: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LocalHub:
    """The server: `start()`, then `url`; `stop()` at the end. Use as a context manager."""

    def __init__(self, root: Path, tokens: dict[str, str] | None = None):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens or {"hf_seal_test_write": "write", "hf_seal_test_read": "read"})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            state = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the hub first"
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- what tests read ----------------------------------------------------------------------------
    def repo(self, repo_id: str, kind: str = "dataset") -> Repo:
        return self.repos[(kind, repo_id)]

    def folder(self, repo_id: str, kind: str = "dataset") -> Path:
        """The materialised `main` branch of a repo."""
        return self.root / "repos" / f"{kind}s" / repo_id

    def files(self, repo_id: str, revision: str = "main", kind: str = "dataset") -> dict[str, bytes]:
        """Path -> content of every file of a revision."""
        repo = self.repo(repo_id, kind)
        commit = repo.commits[repo.branches[revision]]
        return {p: (self.root / "blobs" / b.sha256).read_bytes() for p, b in commit.files.items()}

    def commit_count(self, repo_id: str, kind: str = "dataset") -> int:
        return len(self.repo(repo_id, kind).commits)

    def add_repo(self, repo_id: str, files: dict[str, bytes], kind: str = "dataset", private: bool = False) -> str:
        """Create a repo with one commit of `files` (a user's existing card, say); returns the commit oid."""
        with self.lock:
            repo = self.repos.setdefault((kind, repo_id), Repo(kind, repo_id, private))
            blobs = {path: self._store_blob(content, path) for path, content in files.items()}
            return self._commit(repo, "main", blobs, "initial commit", parent=None)

    def take_fault(self, name: str) -> bool:
        with self.lock:
            left = self.faults.get(name, 0)
            if left <= 0:
                return False
            self.faults[name] = left - 1
            return True

    # -- storage --------------------------------------------------------------------------------------
    def _store_blob(self, content: bytes, path: str) -> Blob:
        sha = hashlib.sha256(content).hexdigest()
        target = self.root / "blobs" / sha
        if not target.exists():
            target.write_bytes(content)
        return Blob(sha, len(content), git_oid(content), lfs=is_lfs(path, len(content)))

    def _commit(self, repo: Repo, branch: str, files: dict[str, Blob], message: str, parent: str | None) -> str:
        oid = hashlib.sha1(
            json.dumps([parent, sorted((p, b.sha256) for p, b in files.items()), message, time.time_ns()]).encode()
        ).hexdigest()
        repo.commits[oid] = Commit(oid, parent, dict(files), message)
        repo.branches[branch] = oid
        if branch == "main":
            self._materialise(repo)
        return oid

    def _materialise(self, repo: Repo) -> None:
        target = self.folder(repo.repo_id, repo.kind)
        staging = target.with_name(target.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path, blob in repo.commits[repo.branches["main"]].files.items():
            dest = staging / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / "blobs" / blob.sha256, dest)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def resolve(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size > REGULAR_MAX


class _Handler(BaseHTTPRequestHandler):
    state: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing -------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segments = [unquote(s) for s in split.path.strip("/").split("/") if s]
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        hub = self.state
        with hub.lock:
            hub.requests.append((method, split.path))
        try:
            if hub.faults.get("unauthorized"):
                raise HubError(401, "Invalid credentials in Authorization header")
            self.role = self._role()
            self._route(method, segments)
        except HubError as err:
            self._json({"error": err.message}, err.status, code=err.code)
        except _Dropped:
            self.close_connection = True

    def _role(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            return None
        token = header[len("Bearer ") :]
        role = self.state.tokens.get(token)
        if role is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return role

    def _json(self, value: Any, status: int = 200, code: str | None = None, headers: dict[str, str] | None = None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
        if status == 401:
            self.send_header("X-Error-Message", value.get("error", ""))
        for key, val in (headers or {}).items():
            self.send_header(key, val)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body_json(self) -> Any:
        return json.loads(self.body or b"{}")

    def _need_write(self) -> None:
        if self.role is None:
            raise HubError(401, "You must be authenticated to write")
        if self.role != "write":
            raise HubError(403, "You don't have the rights to write to this repository (read-only token)")

    def _repo(self, kind: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.state.repos.get((kind, repo_id))
        if repo is None or (repo.private and self.role is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write:
            self._need_write()
        return repo

    # -- routes ---------------------------------------------------------------------------------------
    def _route(self, method: str, s: list[str]) -> None:
        if s[:2] == ["api", "whoami-v2"]:
            if self.role is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": USER, "orgs": [], "auth": {"accessToken": {"role": self.role}}})
        if s[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if s[:2] == ["api", "validate-yaml"]:
            return self._validate_yaml()
        if s[:1] == ["api"] and len(s) >= 4 and s[1] in ("datasets", "models", "spaces"):
            kind, repo_id, rest = s[1][:-1], f"{s[2]}/{s[3]}", s[4:]
            return self._api(method, kind, repo_id, rest)
        if s[:1] == ["lfs-upload"] and method == "PUT":
            return self._lfs_upload(s[1])
        if s[:1] == ["lfs-verify"]:
            return self._json({"ok": True})
        kind = "model"
        if s and s[0] in ("datasets", "spaces"):
            kind, s = s[0][:-1], s[1:]
        if len(s) >= 5 and s[1].endswith(".git") and s[2:] == ["info", "lfs", "objects", "batch"][: len(s) - 2]:
            return self._lfs_batch(kind, f"{s[0]}/{s[1][:-4]}")
        if len(s) >= 5 and s[2] == "resolve":
            return self._resolve(kind, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
        raise HubError(404, f"no route for {method} {self.path}")

    def _api(self, method: str, kind: str, repo_id: str, rest: list[str]) -> None:
        if not rest or rest[0] == "revision":
            repo = self._repo(kind, repo_id)
            commit = self.state.resolve(repo, rest[1] if len(rest) > 1 else "main")
            return self._json(self._info(repo, commit))
        repo = self._repo(kind, repo_id, write=method == "POST" and rest[0] in ("preupload", "commit", "branch"))
        if rest[0] == "tree":
            commit = self.state.resolve(repo, rest[1])
            return self._json(self._tree(commit, "/".join(rest[2:]), self.query.get("recursive") in ("1", "true")))
        if rest[0] == "paths-info":
            return self._paths_info(repo, rest[1])
        if rest[0] == "refs":
            branches = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid}
                for n, oid in repo.branches.items()
                if not n.startswith("refs/")
            ]
            return self._json({"branches": branches, "tags": [], "converts": []})
        if rest[0] == "preupload":
            return self._preupload(repo, rest[1])
        if rest[0] == "commit":
            return self._commit(repo, rest[1])
        if rest[0] == "branch":
            return self._branch(repo, "/".join(rest[1:]))
        raise HubError(404, f"no route for {method} {self.path}")

    # -- repos ----------------------------------------------------------------------------------------
    def _create_repo(self) -> None:
        self._need_write()
        body = self._body_json()
        owner = body.get("organization") or USER
        repo_id = f"{owner}/{body['name']}"
        kind = body.get("type") or "model"
        hub = self.state
        with hub.lock:
            if (kind, repo_id) in hub.repos:
                raise HubError(409, "You already created this repo")
            repo = Repo(kind, repo_id, bool(body.get("private")))
            hub.repos[(kind, repo_id)] = repo
            hub._commit(repo, "main", {}, "initial commit", parent=None)
        prefix = "" if kind == "model" else f"{kind}s/"
        self._json({"url": f"{hub.url}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        content = self._body_json().get("content", "")
        if content.startswith("---"):
            header = content.split("---", 2)[1]
            try:
                meta = yaml.safe_load(header)
            except yaml.YAMLError as err:
                return self._json({"errors": [{"message": f"invalid YAML: {err}"}]}, 400)
            if meta is not None and not isinstance(meta, dict):
                return self._json({"errors": [{"message": "metadata is not a mapping"}]}, 400)
        self._json({"errors": [], "warnings": []})

    def _info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        card = {}
        readme = commit.files.get("README.md")
        if readme is not None:
            text = (self.state.root / "blobs" / readme.sha256).read_text()
            if text.startswith("---"):
                card = yaml.safe_load(text.split("---", 2)[1]) or {}
        return {
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "tags": [],
            "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }

    def _branch(self, repo: Repo, branch: str) -> None:
        hub = self.state
        with hub.lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._body_json().get("startingPoint") or "main"
            repo.branches[branch] = hub.resolve(repo, start).oid
        self._json({})

    # -- files ----------------------------------------------------------------------------------------
    def _entry(self, path: str, blob: Blob) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
        return entry

    def _tree(self, commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        out: dict[str, dict[str, Any]] = {}
        for path, blob in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            parts = rest.split("/")
            if len(parts) == 1 or recursive:
                base = prefix + "/" if prefix else ""
                for i in range(1, len(parts)):  # folders on the way
                    folder = base + "/".join(parts[:i])
                    out.setdefault(
                        folder, {"type": "directory", "oid": git_oid(folder.encode()), "size": 0, "path": folder}
                    )
                out[path] = self._entry(path, blob)
            else:
                folder = (prefix + "/" if prefix else "") + parts[0]
                out.setdefault(
                    folder, {"type": "directory", "oid": git_oid(folder.encode()), "size": 0, "path": folder}
                )
        if prefix and not out and prefix not in commit.files:
            raise HubError(404, f"{prefix} does not exist", "EntryNotFound")
        return list(out.values())

    def _paths_info(self, repo: Repo, revision: str) -> None:
        commit = self.state.resolve(repo, revision)
        ctype = self.headers.get("Content-Type") or ""
        form = "json" not in ctype  # huggingface_hub posts a form; accept JSON too
        paths = parse_qs(self.body.decode()).get("paths", []) if form else self._body_json().get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append({"type": "directory", "oid": git_oid(path.encode()), "size": 0, "path": path})
        self._json(out)

    def _resolve(self, kind: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(kind, repo_id)
        commit = self.state.resolve(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        content = (self.state.root / "blobs" / blob.sha256).read_bytes()
        etag = blob.sha256 if blob.lfs else blob.git_oid
        status, start, end = 200, 0, len(content)
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes="):
            first, _, last = spec[len("bytes=") :].partition("-")
            start = int(first) if first else max(0, len(content) - int(last))
            end = min(len(content), int(last) + 1) if first and last else len(content)
            status = 206
        part = content[start:end]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(part)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", commit.oid)
        self.send_header("Accept-Ranges", "bytes")
        if blob.lfs:
            self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Size", str(blob.size))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(content)}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(part)

    # -- uploads --------------------------------------------------------------------------------------
    def _preupload(self, repo: Repo, revision: str) -> None:
        hub = self.state
        try:
            commit = hub.resolve(repo, revision)
        except HubError:
            commit = hub.resolve(repo, "main")  # a branch the commit will create
        files = []
        for f in self._body_json().get("files", []):
            path, size = f["path"], int(f["size"])
            lfs = is_lfs(path, size)
            existing = commit.files.get(path)
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json({"files": files})

    def _lfs_batch(self, kind: str, repo_id: str) -> None:
        self._repo(kind, repo_id, write=True)
        objects = []
        for obj in self._body_json().get("objects", []):
            oid, size = obj["oid"], obj["size"]
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not (self.state.root / "blobs" / oid).exists():
                entry["actions"] = {
                    "upload": {"href": f"{self.state.url}/lfs-upload/{oid}"},
                    "verify": {"href": f"{self.state.url}/lfs-verify/{oid}"},
                }
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects})

    def _lfs_upload(self, oid: str) -> None:
        if self.state.take_fault("lfs_500"):
            raise HubError(500, "Internal Error (injected)")
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "content does not match its sha256")
        (self.state.root / "blobs" / oid).write_bytes(self.body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _commit(self, repo: Repo, revision: str) -> None:
        hub = self.state
        if hub.take_fault("drop_commit") or hub.take_fault(f"drop_commit:{repo.repo_id}"):
            raise _Dropped()
        if hub.take_fault("commit_500") or hub.take_fault(f"commit_500:{repo.repo_id}"):
            raise HubError(500, "Internal Error (injected)")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = lines[0]["value"]
        with hub.lock:
            create_pr = self.query.get("create_pr") in ("1", "true")
            base = hub.resolve(repo, revision) if revision in repo.branches or revision in repo.commits else None
            if base is None and create_pr:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            if base is None:
                base = hub.resolve(repo, "main")  # a new branch starts from main
            parent = header.get("parentCommit")
            if parent and not create_pr and base is not None and not base.oid.startswith(parent):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files) if base is not None else {}
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file":
                    files[path] = hub._store_blob(base64.b64decode(value["content"]), path)
                elif key == "lfsFile":
                    blob_path = hub.root / "blobs" / value["oid"]
                    if not blob_path.exists():
                        raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded")
                    content = blob_path.read_bytes()
                    files[path] = Blob(value["oid"], len(content), git_oid(content), lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    for p in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                        del files[p]
            message = header.get("summary", "")
            prefix = "" if repo.kind == "model" else f"{repo.kind}s/"
            if create_pr:
                repo.prs += 1
                branch = f"refs/pr/{repo.prs}"
                oid = hub._commit(repo, branch, files, message, base.oid if base else None)
                url = f"{hub.url}/{prefix}{repo.repo_id}"
                pr_url = f"{url}/discussions/{repo.prs}"
                return self._json({"commitUrl": f"{url}/commit/{oid}", "commitOid": oid, "pullRequestUrl": pr_url})
            oid = hub._commit(repo, revision, files, message, base.oid if base else None)
        self._json({"commitUrl": f"{hub.url}/{prefix}{repo.repo_id}/commit/{oid}", "commitOid": oid})


class _Dropped(Exception):
    """Close the connection without answering (a dropped connection)."""

"""Where a store lives: a local folder, or a prefix on an object store (``s3://bucket/prefix``, ``gs://``,
``az://``), and the storage options (endpoint, keys, region) that reach it.

One `storage_options` dict goes to LanceDB, pylance and lance-ray alike. It is made from the environment
(the ``AWS_*`` variables that Lance's S3 client reads, plus ``GOOGLE_*``/``AZURE_*`` for the other clouds)
and then the options given explicitly (``--storage-option KEY=VALUE``), the explicit ones winning. The dict
lives only in memory: it is never written to the store, the runs table, logs or error messages (`redact`
replaces any of its secret values in a message by ``***``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from seal.errors import SealError

REMOTE_SCHEMES = ("s3", "s3+ddb", "gs", "az", "abfs", "abfss", "memory")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Environment variable -> storage option (Lance's object_store names). Unset variables are left out.
ENV_OPTIONS: dict[str, str] = {
    "AWS_ENDPOINT_URL": "aws_endpoint",
    "AWS_ENDPOINT_URL_S3": "aws_endpoint",
    "AWS_ENDPOINT": "aws_endpoint",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "aws_region",
    "AWS_REGION": "aws_region",
    "AWS_ALLOW_HTTP": "allow_http",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "aws_virtual_hosted_style_request",
    "GOOGLE_SERVICE_ACCOUNT": "google_service_account",
    "GOOGLE_APPLICATION_CREDENTIALS": "google_application_credentials",
    "AZURE_STORAGE_ACCOUNT_NAME": "azure_storage_account_name",
    "AZURE_STORAGE_ACCOUNT_KEY": "azure_storage_account_key",
}
# Options whose values never appear in a message (every option not known to be harmless is treated so).
PUBLIC_OPTIONS = frozenset({"aws_endpoint", "aws_region", "allow_http", "aws_virtual_hosted_style_request", "region"})


def scheme_of(path: str | os.PathLike[str]) -> str | None:
    """The URI scheme of `path` (`s3`, `file`, ...), or None for a plain path."""
    match = _SCHEME.match(str(path))
    return match.group(1).lower() if match else None


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a store on an object store (a URI whose scheme Lance reads remotely)."""
    return scheme_of(path) in REMOTE_SCHEMES


class RemotePath(str):
    """The URI of a remote store, with the few `Path` methods that seal uses on a store's path (joining,
    `is_dir`, `resolve`, `name`): `str(store.path)` is the URI, without credentials."""

    def __truediv__(self, other: str) -> RemotePath:
        return RemotePath(self.rstrip("/") + "/" + str(other).lstrip("/"))

    def is_dir(self) -> bool:  # a prefix on an object store always "exists"; tables say whether it holds one
        return True

    def exists(self) -> bool:
        return True

    def resolve(self) -> RemotePath:
        return self

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]


def store_location(path: str | os.PathLike[str]) -> Path | RemotePath:
    """A local `Path` (``file://`` URIs included) or a `RemotePath` for an object-store URI; another scheme
    is a one-line error."""
    text = os.fspath(path)
    scheme = scheme_of(text)
    if scheme is None:
        return Path(text)
    if scheme == "file":
        return Path(text[len("file://") :])
    if scheme in REMOTE_SCHEMES:
        bucket = text.split("://", 1)[1].split("/", 1)[0]
        if not bucket:
            raise SealError(f"the store URI {text} names no bucket", hint="write e.g. s3://bucket/prefix")
        return RemotePath(text.rstrip("/"))
    raise SealError(
        f"seal cannot open a store at `{scheme}://`",
        hint=f"use a local folder, file://, or one of {', '.join(s + '://' for s in REMOTE_SCHEMES[:4])}",
    )


def parse_storage_options(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``KEY=VALUE`` strings (or a mapping) as a dict with lower-case keys; a malformed item is an error."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k).lower(): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SealError(
                f"cannot read storage option `{key.strip() or item}`", hint="write --storage-option KEY=VALUE"
            )
        out[key.strip().lower()] = value
    return out


def storage_options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The storage options the environment sets (see ENV_OPTIONS); the first variable of a pair wins."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for variable, option in ENV_OPTIONS.items():
        value = env.get(variable)
        if value and option not in out:
            out[option] = value
    return out


def storage_options(explicit: Iterable[str] | Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment options overridden by explicit ones; ``allow_http`` is set for an ``http://`` endpoint."""
    options = {**storage_options_from_env(), **parse_storage_options(explicit)}
    endpoint = options.get("aws_endpoint", "")
    if endpoint.startswith("http://") and "allow_http" not in options:
        options["allow_http"] = "true"
    return options


def redact(text: str, options: Mapping[str, str] | None) -> str:
    """`text` with the value of every secret storage option replaced by ``***``."""
    for key, value in (options or {}).items():
        if key not in PUBLIC_OPTIONS and value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def lock_key(uri: str) -> str:
    """A file name for the local writer lock of a remote store (a hash of its URI)."""
    return hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:24] + ".lock"


def lock_dir() -> Path:
    """Where the writer locks of remote stores live on this machine: `$SEAL_LOCK_DIR`, else
    ``$XDG_CACHE_HOME/seal/locks`` (``~/.cache/seal/locks``)."""
    explicit = os.environ.get("SEAL_LOCK_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "seal" / "locks"

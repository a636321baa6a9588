"""Fail fast without the Hugging Face Hub.

`datasets`, `transformers` and `huggingface_hub` retry an unreachable Hub with backoff for 25-30 s before
they fall back to the local cache or fail. seal asks once instead: before the first Hub access of a
process, one request with a short timeout (`$SEAL_HUB_TIMEOUT`, default 4 s) says whether the Hub answers;
with `HF_HUB_OFFLINE=1` (or `HF_DATASETS_OFFLINE=1` / `TRANSFORMERS_OFFLINE=1`) nothing is sent. When the
Hub is unreachable, the libraries run in offline mode (`cache_only`): what is in the local cache loads,
anything else fails at once, and seal says so in one line with a local-path hint (`unreachable_error`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

from seal.errors import HubUnreachable

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 4.0
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
_probed: dict[tuple[str, float], str | None] = {}
# A Hub repo id: `name` or `owner/name` (letters, digits, `-`, `_`, `.`); a path is never one.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def is_repo_id(text: str) -> bool:
    """True when `text` could name a Hub repo (`owner/name`), i.e. is not a path such as `./x` or `/x/y`."""
    return bool(_REPO_ID.match(text)) and ".." not in text


def endpoint() -> str:
    """The Hub the libraries talk to (`$HF_ENDPOINT`, else huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def timeout() -> float:
    """Seconds the probe waits for the Hub (`$SEAL_HUB_TIMEOUT`, default 4)."""
    try:
        value = float(os.environ.get("SEAL_HUB_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def offline_requested() -> str | None:
    """The offline variable that is set (`HF_HUB_OFFLINE=1`), or None."""
    for name in _OFFLINE_VARS:
        if (os.environ.get(name) or "").strip().upper() in _TRUE:
            return f"{name}={os.environ[name]}"
    return None


def probe(url: str, seconds: float) -> str | None:
    """One request to `url` with a `seconds` timeout: None when anything answers (any HTTP status),
    else why not, in a few words."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "seal-hub-probe"})
    try:
        with urllib.request.urlopen(request, timeout=seconds):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"no answer within {seconds:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return "the host name does not resolve"
        return str(reason)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except OSError as err:
        return str(err) or type(err).__name__


def unreachable() -> str | None:
    """Why the Hub cannot be used now (offline mode, or the probe failed), or None when it answers.
    The probe runs once per endpoint and process."""
    offline = offline_requested()
    if offline:
        return f"{offline} is set"
    key = (endpoint(), timeout())
    if key not in _probed:
        failure = probe(key[0], key[1])
        _probed[key] = None if failure is None else f"{key[0]}: {failure}"
    return _probed[key]


@contextlib.contextmanager
def cache_only(active: bool = True) -> Iterator[None]:
    """Run huggingface_hub, transformers and datasets in offline mode (local cache only, no retries)."""
    if not active:
        yield
        return
    import huggingface_hub.constants as hub_constants

    saved = [(hub_constants, "HF_HUB_OFFLINE", hub_constants.HF_HUB_OFFLINE)]
    hub_constants.HF_HUB_OFFLINE = True
    with contextlib.suppress(ImportError):
        import datasets.config as datasets_config

        saved.append((datasets_config, "HF_HUB_OFFLINE", datasets_config.HF_HUB_OFFLINE))
        datasets_config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def unreachable_error(what: str, reason: str, local_hint: str) -> HubUnreachable:
    """The one-line error for `what` (e.g. "dataset `x/y`") when the Hub is unreachable and the local
    cache does not hold it."""
    return HubUnreachable(
        f"cannot load {what}: the Hugging Face Hub is unreachable ({reason}) and it is not in the local cache",
        hint=local_hint,
    )

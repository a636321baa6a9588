"""Dataset cards as YAML metadata + markdown body, and the merge that keeps what a user wrote.

seal owns (and replaces on every export or publish):
- the body's marked sections, each between `<!-- seal:begin NAME -->` and `<!-- seal:end NAME -->`;
- the `configs` and `dataset_info` entries of the configs it writes (other configs stay), and `size_categories`.
Everything else is the user's: prose outside the markers stays byte for byte, YAML keys the user set win over
seal's defaults (license, task_categories, pretty_name, ...), and `tags` keeps the user's tags and adds seal's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from seal.errors import SealError

OWNED_LIST_KEYS = ("configs", "dataset_info")
OWNED_KEYS = ("size_categories",)
MARKER = re.compile(r"<!-- seal:begin ([A-Za-z0-9_-]+) -->\n?(.*?)<!-- seal:end \1 -->", re.DOTALL)


def begin(name: str) -> str:
    return f"<!-- seal:begin {name} -->"


def end(name: str) -> str:
    return f"<!-- seal:end {name} -->"


def section(name: str, text: str) -> str:
    return f"{begin(name)}\n{text.rstrip()}\n{end(name)}"


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(metadata, body) of a card: the YAML between the leading `---` lines, and the rest."""
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"^---[ \t]*\r?\n(.*?)^---[ \t]*\r?\n?", text, re.DOTALL | re.MULTILINE)
    if match is None:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        raise SealError(
            f"the existing README.md has invalid YAML metadata: {str(err).splitlines()[0]}",
            hint="fix the YAML header of the card (between the leading --- lines), then rerun",
        ) from None
    if not isinstance(meta, dict):
        raise SealError("the existing README.md's YAML metadata is not a mapping", hint="fix the card's header")
    return meta, text[match.end() :]


def render_card(meta: Mapping[str, Any], body: str) -> str:
    header = yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True, width=120)
    return f"---\n{header}---\n\n{body.lstrip()}"


def _as_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return [v for v in (value or []) if isinstance(v, dict)]


def merge_metadata(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The user's metadata with seal's owned entries replaced and seal's defaults filling what is missing."""
    merged: dict[str, Any] = dict(old)
    ours = {c.get("config_name") for c in _as_list(new.get("configs"))}
    for key in OWNED_LIST_KEYS:
        kept = [e for e in _as_list(old.get(key)) if e.get("config_name", "default") not in ours]
        entries = [dict(e) for e in _as_list(new.get(key))]
        if key == "configs" and any(e.get("default") for e in kept):
            for e in entries:
                e.pop("default", None)
        if entries or kept:
            merged[key] = entries + kept
    for key, value in new.items():
        if key in OWNED_LIST_KEYS:
            continue
        if key in OWNED_KEYS or key not in old:
            merged[key] = value
        elif key == "tags" and isinstance(old.get(key), list):
            merged[key] = list(old[key]) + [t for t in value if t not in old[key]]
    order = [*old, *(k for k in new if k not in old)]
    return {k: merged[k] for k in order if k in merged}


def merge_body(old: str | None, sections: Sequence[tuple[str, str]], preamble: str) -> str:
    """The old body with each seal section replaced (new ones added after the last seal section, or at the end;
    sections seal no longer writes removed); without an old body, `preamble` then the sections."""
    blocks = {name: section(name, text) for name, text in sections}
    if old is None or not old.strip():
        return preamble.rstrip() + "\n\n" + "\n\n".join(blocks.values()) + "\n"
    placed: set[str] = set()
    last_end = -1

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        placed.add(name)
        return blocks.get(name, "")

    out = []
    pos = 0
    for match in MARKER.finditer(old):
        out.append(old[pos : match.start()])
        out.append(replace(match))
        pos = match.end()
        last_end = len("".join(out))
    out.append(old[pos:])
    body = "".join(out)
    missing = [blocks[name] for name, _ in sections if name not in placed]
    if not missing:
        return body
    addition = "\n\n".join(missing)
    if last_end < 0:
        return body.rstrip() + "\n\n" + addition + "\n"
    return body[:last_end] + "\n\n" + addition + body[last_end:]


def merge_card(
    existing: str | None, meta: Mapping[str, Any], sections: Sequence[tuple[str, str]], preamble: str
) -> str:
    """The card to write: `existing` (a README's text, or None) merged with seal's metadata and sections."""
    if existing is None:
        return render_card(meta, merge_body(None, sections, preamble))
    old_meta, old_body = split_card(existing)
    return render_card(merge_metadata(old_meta, meta), merge_body(old_body, sections, preamble))


def card_diff(old: str | None, new: str, name: str = "README.md") -> str:
    """A unified diff from the old card to the new one ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{name}" if old is not None else "/dev/null",
            tofile=f"b/{name}",
        )
    )

"""`--set KEY=VALUE` overrides of an experiment spec (`seal plan|run|validate`).

KEY is a dotted path into the spec document: mapping keys by name (`dataset.limit`, `report.out`), list items
by index (`reward_models[0].model` or `reward_models.0.model`) or by their name: the item whose `alias`,
`name`, `feature_set`, `method` or `labeler` equals the segment (`reward_models.pre.model`,
`features.seal-taxonomy.base_url`). Missing mappings on the way are created (`report.out=r.html` adds a
`report` section); the spec's schema then judges the result, so a misspelt key is reported with its path,
a "did you mean", and the `--set` it came from.

VALUE is parsed as YAML: `10` is an integer, `0.5` a float, `true` a boolean, `[a, b]` a list, `'10'` a
string; an empty value or `null` removes the key. A relative path given as the value of a path key
(`dataset.source`, `reward_models[*].model`, `embeddings.model`, `features[*].feature_set|file`, `store`,
`analyses.out`, `report.out`) is relative to the current folder, as on any command line (paths written in the
spec file are relative to the spec's folder).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seal.errors import SpecError

# Keys of a list item that can name it in a path, in the order they are tried.
SELECT_KEYS = ("alias", "name", "feature_set", "method", "labeler")
# Paths (indices written as [*]) whose string values are file system paths.
PATH_KEYS = (
    "store",
    "dataset.source",
    "dataset[*].source",
    "reward_models[*].model",
    "embeddings.model",
    "features[*].feature_set",
    "features[*].file",
    "analyses.out",
    "report.out",
)
_SEGMENT = re.compile(r"^([^\[\]]*)((?:\[\d+\])*)$")
# Suffixes that make a spec string a local path even when the file does not exist (yet).
PATH_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".gz", ".yaml", ".yml")


def format_path(parts: Sequence[str | int]) -> str:
    """`["reward_models", 1, "batch_size"]` -> `reward_models[1].batch_size`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def type_name(value: Any) -> str:
    """What a YAML value is, in the words of a spec error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "mapping"


class OverrideError(SpecError):
    """A `--set` that cannot be applied (bad syntax, a path through a value that is not a mapping or list)."""


def parse_key(key: str) -> list[str | int]:
    """`reward_models[0].model` -> ['reward_models', 0, 'model']; `a.1.b` -> ['a', '1', 'b'] (a digit segment
    is an index only where the document holds a list)."""
    tokens: list[str | int] = []
    for part in key.split("."):
        match = _SEGMENT.match(part)
        if match is None or (not match.group(1) and not match.group(2)):
            raise OverrideError(
                f"--set {key}: bad key `{part or '(empty)'}`", hint="write KEY=VALUE, e.g. dataset.limit=100"
            )
        if match.group(1):
            tokens.append(match.group(1))
        tokens.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tokens


def parse_value(raw: str) -> Any:
    """The YAML value of `raw` (None for an empty value)."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OverrideError(
            f"cannot parse the value `{raw}` as YAML: {problem}", hint="quote it: KEY='VALUE'"
        ) from None


def apply_overrides(document: Any, overrides: Sequence[str], where: str = "spec") -> tuple[Any, list[tuple[str, str]]]:
    """A copy of `document` with every override applied in order, and (canonical path, override) for each,
    e.g. ('reward_models[0].model', 'reward_models.pre.model=./m'). A document that is not a mapping is
    returned unchanged (validation reports it)."""
    if not isinstance(document, dict):
        return document, []
    doc = copy.deepcopy(document)
    applied = []
    for given in overrides:
        key, sep, raw = given.partition("=")
        if not sep or not key.strip():
            raise OverrideError(f"--set {given}: expected KEY=VALUE", hint="e.g. --set reward_models.pre.model=./my-rm")
        tokens = parse_key(key.strip())
        value = parse_value(raw)
        path = _assign(doc, tokens, value, given)
        applied.append((path, given))
    return doc, applied


def _label(item: Any) -> list[str]:
    return [str(item[k]) for k in SELECT_KEYS if isinstance(item, dict) and item.get(k) is not None]


def _index(node: list[Any], token: str | int, done: list[str | int], given: str) -> int:
    """The position in list `node` that `token` names (an index or an item's name)."""
    where = format_path(done)
    if isinstance(token, str) and token.isdigit():
        token = int(token)
    if isinstance(token, int):
        if token >= len(node):
            raise OverrideError(f"--set {given}: `{where}` has {len(node)} item(s); no index {token}")
        return token
    found = [i for i, item in enumerate(node) if token in _label(item)]
    if len(found) == 1:
        return found[0]
    names = [", ".join(_label(item)) or str(i) for i, item in enumerate(node)]
    if not found:
        raise OverrideError(
            f"--set {given}: no item `{token}` in `{where}`",
            hint=f"name one of: {'; '.join(names)}, or an index 0-{len(node) - 1}" if node else f"`{where}` is empty",
        )
    raise OverrideError(f"--set {given}: `{token}` names {len(found)} items of `{where}`", hint="use an index")


def _assign(doc: dict[str, Any], tokens: list[str | int], value: Any, given: str) -> str:
    """Set (or, for None, remove) the value at `tokens`; returns the canonical path."""
    node: Any = doc
    done: list[str | int] = []
    for pos, token in enumerate(tokens):
        last = pos == len(tokens) - 1
        if isinstance(node, dict):
            if isinstance(token, int):
                raise OverrideError(f"--set {given}: `{format_path(done)}` is a mapping, not a list")
            done.append(token)
            if last:
                value = _as_path(done, value)
                if value is None:
                    node.pop(token, None)
                else:
                    node[token] = value
                break
            if node.get(token) is None:
                if isinstance(tokens[pos + 1], int):
                    raise OverrideError(f"--set {given}: there is no list `{format_path(done)}` to index")
                node[token] = {}
            node = node[token]
        elif isinstance(node, list):
            index = _index(node, token, done, given)
            done.append(index)
            if last:
                if value is None:
                    node.pop(index)
                else:
                    node[index] = value
                break
            node = node[index]
        else:
            raise OverrideError(
                f"--set {given}: `{format_path(done)}` is a {type_name(node)}, not a mapping or list",
                hint="set the key itself, or a key of a mapping",
            )
    return format_path(done)


def _as_path(done: list[str | int], value: Any) -> Any:
    """A relative path value of a path key, made absolute against the current folder."""
    if not isinstance(value, str) or not value:
        return value
    pattern = "".join("[*]" if isinstance(t, int) else (f".{t}" if i else t) for i, t in enumerate(done))
    if pattern not in PATH_KEYS:
        return value
    expanded = Path(value).expanduser()
    if expanded.is_absolute():
        return str(expanded)
    looks_like_path = (
        value.startswith(("./", "../", ".\\", "..\\"))
        or value in (".", "..")
        or value.lower().endswith(PATH_SUFFIXES)
        or Path(value).exists()
        or pattern in ("store", "analyses.out", "report.out")
    )
    return os.path.normpath(Path.cwd() / value) if looks_like_path else value

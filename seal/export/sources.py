"""Where each exported dataset came from, from its ingest runs: the source, loader options, the revision asked
for and the one resolved (a Hub snapshot's commit), counts, and the source's license when a file beside it says
(a LICENSE/COPYING text or a README's YAML `license:`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seal.errors import SealError

LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "COPYING.txt")
_SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})/")
# (license id on the Hub, phrases that identify its text), first match wins.
_LICENSE_TEXTS = (
    ("mit", ("MIT License", "Permission is hereby granted, free of charge")),
    ("apache-2.0", ("Apache License", "Version 2.0")),
    ("cc-by-nc-sa-4.0", ("Attribution-NonCommercial-ShareAlike 4.0",)),
    ("cc-by-nc-4.0", ("Attribution-NonCommercial 4.0",)),
    ("cc-by-sa-4.0", ("Attribution-ShareAlike 4.0",)),
    ("cc-by-4.0", ("Attribution 4.0 International",)),
    ("cc0-1.0", ("CC0 1.0",)),
    ("odc-by", ("Open Data Commons Attribution License",)),
    ("gpl-3.0", ("GNU GENERAL PUBLIC LICENSE", "Version 3")),
    ("bsd-3-clause", ("Redistribution and use in source and binary forms", "Neither the name")),
    ("bsd-2-clause", ("Redistribution and use in source and binary forms",)),
)


@dataclass
class SourceDoc:
    """One dataset of the store as its (latest) ingest recorded it."""

    dataset: str
    source: str | None
    loader: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # split, subset, data_dir, revision, format, map, ...
    resolved_commit: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    license: str | None = None
    license_from: str | None = None
    run_id: str | None = None
    ingests: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def describe_sources(runs: Sequence[Mapping[str, Any]], datasets: Sequence[str]) -> list[SourceDoc]:
    """A `SourceDoc` per dataset, from its latest `ingest` run (datasets without one get an empty doc)."""
    docs = []
    for name in datasets:
        ingests = [r for r in runs if r["stage"] == "ingest" and r["name"] == name]
        if not ingests:
            docs.append(SourceDoc(name, None))
            continue
        run = ingests[-1]
        params = dict(run["recipe"].get("params", {}))
        files = [str(f) for f in run["provenance"].get("files", [])]
        options = {
            k: params[k]
            for k in (
                "split",
                "subset",
                "data_dir",
                "revision",
                "format",
                "map",
                "label_map",
                "limit",
                "sample",
                "seed",
            )
            if params.get(k) not in (None, {}, [])
        }
        commit = next((m.group(1) for f in files if (m := _SNAPSHOT.search(f))), None)
        license_id, where = detect_license(files)
        docs.append(
            SourceDoc(
                dataset=name,
                source=params.get("source"),
                loader=params.get("loader"),
                options=options,
                resolved_commit=commit,
                counts=dict(run["provenance"].get("counts", {})),
                license=license_id,
                license_from=where,
                run_id=run["run_id"],
                ingests=len(ingests),
            )
        )
    return docs


def license_of_text(text: str) -> str | None:
    """The Hub license id a license text is (MIT, Apache-2.0, CC-BY-4.0, ...), or None when not recognised."""
    head = text[:4000]
    for license_id, phrases in _LICENSE_TEXTS:
        if all(p.lower() in head.lower() for p in phrases):
            return license_id
    return None


def _readme_license(path: Path) -> str | None:
    text = path.read_text(errors="replace")
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1])
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, str) else None


def detect_license(files: Sequence[str]) -> tuple[str | None, str | None]:
    """(license id, the file that says it) for a source's files: a LICENSE-like file or a README with YAML
    `license:` in a file's folder or the folder above it; (None, None) when nothing says."""
    seen: set[Path] = set()
    for file in files:
        folder = Path(file).parent
        for candidate_dir in (folder, folder.parent):
            if candidate_dir in seen or not candidate_dir.is_dir():
                continue
            seen.add(candidate_dir)
            for name in LICENSE_FILES:
                path = candidate_dir / name
                if path.is_file():
                    license_id = license_of_text(path.read_text(errors="replace"))
                    if license_id:
                        return license_id, str(path)
            readme = candidate_dir / "README.md"
            if readme.is_file():
                license_id = _readme_license(readme)
                if license_id:
                    return license_id, str(readme)
    return None, None


def resolve_license(sources: Sequence[SourceDoc], given: str | None, fallback: str | None = None) -> str:
    """The card's license: `given` (--license) when set, else the one license every source's files state, else
    `fallback` (the license an existing card declares); a one-line error when none says, or the sources differ."""
    if given:
        return given.strip()
    unknown = [s.dataset for s in sources if not s.license]
    if unknown and fallback:
        return fallback
    if unknown:
        raise SealError(
            f"the license of {', '.join(f'`{d}`' for d in unknown)} is unknown "
            "(no LICENSE or README beside the source)",
            hint="pass --license ID (e.g. mit, apache-2.0, cc-by-4.0, other) after checking the source's terms",
        )
    found = sorted({s.license for s in sources if s.license})
    if len(found) > 1:
        by = ", ".join(f"{s.dataset}: {s.license}" for s in sources)
        raise SealError(
            f"the exported datasets have different licenses ({by})",
            hint="export them separately with --where \"dataset = '...'\", or pass --license ID (e.g. other)",
        )
    return found[0] if found else "other"

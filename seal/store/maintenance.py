"""Versions, tags and housekeeping of the store: `optimize` (compaction, index updates, old versions),
`versions` (with the Lance operation and seal run behind each) and `tag`."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from seal.errors import SealError, StoreError
from seal.store.base import MAINTENANCE_OPERATIONS, PAIRS, WORK_PREFIX, default_keep_versions, writes
from seal.store.side import SideTables


class Maintenance(SideTables):
    """Housekeeping, version and tag methods of `Store`."""

    @writes
    def optimize(self, keep: timedelta | None = None) -> dict[str, Any]:
        """Compact small data files, bring indexes up to date with new rows, and delete the files of
        versions older than `keep` (default `$SEAL_KEEP_VERSIONS`, else 1 hour). Tagged versions and
        the latest version are always kept. Returns, per table, what was done."""
        keep = default_keep_versions() if keep is None else keep
        report: dict[str, Any] = {}
        for name in self.table_names():
            if name.startswith(WORK_PREFIX):  # checkpoints of a running stage: not ours to rewrite
                continue
            t0 = time.perf_counter()
            ds = self._dataset(name)
            fragments_before = len(ds.get_fragments())
            compaction = ds.optimize.compact_files()
            indexes = ds.list_indices()
            if indexes:
                ds.optimize.optimize_indices()
            cleanup = ds.cleanup_old_versions(older_than=keep, error_if_tagged_old_versions=False)
            report[name] = {
                "fragments_before": fragments_before,
                "fragments_after": len(ds.get_fragments()),
                "fragments_compacted": int(getattr(compaction, "fragments_removed", 0)),
                "indexes_updated": len(indexes),
                "versions_removed": int(getattr(cleanup, "old_versions", 0)),
                "bytes_removed": int(getattr(cleanup, "bytes_removed", 0)),
                "version": int(ds.version),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        return report

    def versions(self) -> list[dict[str, Any]]:
        """Every version of `pairs` with the Lance operation that made it, the seal run and tags."""
        self.require()
        ds = self._dataset(PAIRS)
        versions = ds.versions()
        # get_transactions returns the newest first, one per version after the first.
        transactions = ds.get_transactions(len(versions) + 1)
        operations: dict[int, str] = {}
        latest = int(ds.version)
        for offset, tx in enumerate(transactions):
            if tx is not None:
                operations[latest - offset] = type(tx.operation).__name__
        by_version = {r["pairs_version"]: r for r in self.runs() if r["pairs_version"] is not None}
        tags: dict[int, list[str]] = {}
        for tag_name, info in ds.tags.list().items():
            tags.setdefault(int(info["version"]), []).append(tag_name)
        out = []
        for v in versions:
            number = int(v["version"])
            run = by_version.get(number)
            operation = operations.get(number, "Unknown")
            stage = run["stage"] if run else ("optimize" if operation in MAINTENANCE_OPERATIONS else None)
            out.append(
                {
                    "version": number,
                    "timestamp": v["timestamp"].isoformat(),
                    "operation": operation,
                    "rows": int(v["metadata"].get("total_rows", 0)),
                    "run_id": run["run_id"] if run else None,
                    "stage": stage,
                    "name": run["name"] if run else None,
                    "tags": sorted(tags.get(number, [])),
                }
            )
        return out

    @writes
    def tag(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Tag a version of `pairs` (the current one by default)."""
        self.require()
        ds = self._dataset(PAIRS)
        existing = ds.tags.list()
        if name in existing:
            raise SealError(
                f"tag `{name}` already exists (version {existing[name]['version']})",
                hint="choose another name",
            )
        target = int(ds.version) if version is None else int(version)
        known = {int(v["version"]) for v in ds.versions()}
        if target not in known:
            raise StoreError(f"`pairs` has no version {target}", hint="see `seal versions`")
        ds.tags.create(name, target)
        return {"tag": name, "version": target}

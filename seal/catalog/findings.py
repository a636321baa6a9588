"""The findings of `seal confusing`: the `findings` side table (one row per finding) and the pairs columns
``confusing`` (per-pair flags and partner ids) and ``cluster`` (the cluster label, usable as
`seal resistance --by cluster`). Written by seal.annotate.findings, read by seal.analysis.confusing."""

from __future__ import annotations

import pyarrow as pa

FINDINGS = "findings"
CONFUSING_COLUMN = "confusing"
CLUSTER_COLUMN = "cluster"

FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("finding_id", pa.string()),
        pa.field("kind", pa.string()),  # identical | near_identical | duplicate | contradictory | cluster
        pa.field("pair_id", pa.string()),
        pa.field("other_pair_id", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("score", pa.float64()),
        pa.field("detail", pa.string()),  # JSON
        pa.field("run_id", pa.string()),
        pa.field("pairs_version", pa.int64()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
CONFUSING_TYPE = pa.struct(
    [
        pa.field("identical", pa.bool_()),
        pa.field("near_identical", pa.bool_()),
        pa.field("response_cosine", pa.float32()),
        pa.field("response_edit", pa.float32()),
        pa.field("duplicates", pa.list_(pa.string())),
        pa.field("contradicts", pa.list_(pa.string())),
    ]
)
FINDING_KIND = {
    "identical": "identical",
    "near-identical": "near_identical",
    "duplicates": "duplicate",
    "contradictory": "contradictory",
    "clusters": "cluster",
}

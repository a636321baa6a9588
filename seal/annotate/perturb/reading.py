"""Small readers the perturbation modules share: pair rows (optionally some ids) and conversation messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.store import Store


def read_pairs(store: Store, columns: Sequence[str], ids: Sequence[str] | None = None) -> pa.Table:
    """`columns` of every pair, or of the pairs `ids` (in table order)."""
    where = None if ids is None else pc.field("pair_id").isin(pa.array(list(ids), pa.string()))
    return store.read(list(columns), where)


def messages(value: Any) -> tuple[dict[str, str], ...]:
    """A stored context (list of {role, content}) as plain string messages."""
    return tuple({"role": str(m["role"]), "content": str(m["content"])} for m in (value or []))

"""Nearest pairs and text search over the embedding columns and full-text indexes.

- `similar(store, pair_id)`: the pairs nearest to one pair by cosine similarity of ``emb_<field>``
  (field pair, context, chosen or rejected). Each hit says whether its responses line up with the query's
  the same way round (``orientation`` same) or crossed (flipped: what one pair prefers the other rejects).
- `search(store, text)`: pairs matching a free text by vector similarity (the text embedded with the
  model that made the columns), by BM25 full-text score, or both fused by reciprocal rank (hybrid).

Both return a `SearchResult` (JSON shape in schemas/cli/similar.schema.json and search.schema.json):
hits with pair ids, similarity or score, short snippets, the matched field and, when the store holds
reward-model scores, each RM's chosen/rejected scores and margin (chosen − rejected).

Search is exact below the index threshold (no vector index) and IVF-PQ with exact re-ranking of
`refine_factor` × k candidates above it (see seal.annotate.embeddings.refresh_indexes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.catalog.embeddings import CONTEXT_TEXT, NPROBES, REFINE_FACTOR, emb_column, latest_runs
from seal.catalog.models import SCORE_PREFIX
from seal.engines.encoder import TextEncoder
from seal.errors import SealError, StoreError
from seal.render import table
from seal.sql_guard import check_where
from seal.store import Store

SIMILAR_FIELDS = ("pair", "context", "chosen", "rejected")
SEARCH_FIELDS = ("context", "chosen", "rejected")
MODES = ("vector", "text", "hybrid")
SNIPPET_CHARS = 160
RRF_K = 60  # reciprocal rank fusion constant
TEXT_COLUMN = {"context": CONTEXT_TEXT, "chosen": "chosen", "rejected": "rejected"}
SIDE_LABEL = {"chosen": "preferred", "rejected": "dispreferred", "context": None, "pair": None}
# Lance's index type names (lower case, no underscores) that LanceDB names otherwise.
LANCE_INDEX_NAMES = {"inverted": "fts"}


@dataclass
class Hit:
    rank: int
    pair_id: str
    score: float  # cosine similarity (vector), BM25 (text) or fused reciprocal-rank score (hybrid)
    similarity: float | None  # cosine similarity where a vector comparison was made
    matched: str  # the field that matched: pair | context | chosen | rejected
    label: str | None  # preferred (the matched text is the chosen response) | dispreferred | None
    orientation: str | None  # same | flipped: how the hit's responses line up with the query pair's
    response_similarity: float | None  # cosine of the responses matched the way `orientation` says
    dataset: str | None
    snippet: dict[str, str]
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass
class SearchResult:
    kind: str  # similar | search
    query: dict[str, Any]
    mode: str
    fields: list[str]
    k: int
    where: str | None
    index: dict[str, str]  # searched column -> exact | ivf_pq | fts
    hits: list[Hit]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render_text(self) -> str:
        q = self.query
        if self.kind == "similar":
            head = f"pairs nearest to {q['pair_id']} by {self.fields[0]} ({self.index.get(emb_column(self.fields[0]))})"
        else:
            head = f"{self.mode} search for {q['text']!r} in {', '.join(self.fields)}"
        lines = [head, ""]
        if not self.hits:
            lines.append("(no matches)")
            return "\n".join(lines)
        rows = []
        for h in self.hits:
            row: dict[str, Any] = {"#": h.rank, "pair_id": h.pair_id, "score": round(h.score, 4)}
            if self.kind == "similar":
                row["orient"] = h.orientation
            else:
                row["matched"] = h.matched
            for alias, s in h.scores.items():
                row[f"margin {alias}"] = None if s["margin"] is None else round(s["margin"], 3)
            row["context"] = h.snippet.get("context", "")
            row["chosen"] = h.snippet.get("chosen", "")
            row["rejected"] = h.snippet.get("rejected", "")
            rows.append(row)
        lines.append(table(rows, width=48))
        return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------------------
def score_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if f.name.startswith(SCORE_PREFIX) and pa.types.is_struct(f.type)]


def _shorten(text: str | None, width: int = SNIPPET_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _last_user_turn(context: list[dict[str, str]] | None) -> str:
    for message in reversed(context or []):
        if message.get("role") == "user":
            return message.get("content") or ""
    return (context or [{}])[-1].get("content", "") if context else ""


def _snippet(row: dict[str, Any], width: int) -> dict[str, str]:
    return {
        "context": _shorten(_last_user_turn(row.get("context")), width),
        "chosen": _shorten(row.get("chosen"), width),
        "rejected": _shorten(row.get("rejected"), width),
    }


def _scores(row: dict[str, Any], columns: list[str]) -> dict[str, dict[str, float | None]]:
    out = {}
    for col in columns:
        value = row.get(col) or {}
        c, r = value.get("chosen"), value.get("rejected")
        margin = None if c is None or r is None else float(c) - float(r)
        out[col[len(SCORE_PREFIX) :]] = {"chosen": c, "rejected": r, "margin": margin}
    return out


def _index_kind(info: dict[str, dict[str, str]], column: str) -> str:
    """How `column` is searched: exact (no index), ivf_pq, or the index type as LanceDB names it, lower-cased
    (ivfflat, ivfhnswsq, fts, ...). The store reports Lance's names (IVF_PQ, IVF_HNSW_SQ, Inverted):
    underscores go, and Lance's full-text `inverted` is LanceDB's `fts`."""
    entry = info.get(column)
    if entry is None:
        return "exact"
    kind = entry["type"].lower().replace("_", "")
    kind = LANCE_INDEX_NAMES.get(kind, kind)
    return "ivf_pq" if "pq" in kind else kind


def _check_where(where: str | None) -> str | None:
    return check_where(where)  # one SQL expression, or None (seal.sql_guard)


def _nearest(
    store: Store, column: str, vector: np.ndarray, limit: int, where: str | None, select: list[str], indexed: bool
) -> pa.Table:
    """Nearest rows by dot product (cosine on unit vectors): exact without an index, IVF-PQ probing `NPROBES`
    partitions and re-ranking `REFINE_FACTOR` × limit candidates exactly with one."""
    tuning = {"nprobes": NPROBES, "refine_factor": REFINE_FACTOR} if indexed else {}
    return store.nearest(column, vector.astype(np.float32), limit, where=where, columns=select, **tuning)


def _rows(store: Store, ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    got = store.read(columns, pc.field("pair_id").isin(ids))
    return {r["pair_id"]: r for r in got.to_pylist()}


def _orientation(q: dict[str, np.ndarray], h: dict[str, np.ndarray]) -> tuple[str, float]:
    straight = min(float(q["chosen"] @ h["chosen"]), float(q["rejected"] @ h["rejected"]))
    crossed = min(float(q["chosen"] @ h["rejected"]), float(q["rejected"] @ h["chosen"]))
    return ("same", straight) if straight >= crossed else ("flipped", crossed)


def _vec(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


# -- similar ----------------------------------------------------------------------------------------
def similar(
    store: Store,
    pair_id: str,
    k: int = 10,
    field: str = "pair",
    where: str | None = None,
    snippet_chars: int = SNIPPET_CHARS,
) -> SearchResult:
    """The k pairs nearest to `pair_id` by cosine similarity of ``emb_<field>`` (the pair itself excluded)."""
    t0 = time.perf_counter()
    if field not in SIMILAR_FIELDS:
        raise SealError(f"unknown field `{field}`", hint=f"use one of {', '.join(SIMILAR_FIELDS)}")
    if k < 1:
        raise SealError("k must be a positive integer")
    where = _check_where(where)
    schema = store.schema()
    names = schema.names
    column = emb_column(field)
    if column not in names:
        raise StoreError(f"the store has no `{column}`", hint=f"run `seal embed --fields {field}` first")
    orient_cols = [c for c in (emb_column("chosen"), emb_column("rejected")) if c in names]
    orient = len(orient_cols) == 2
    read = list(dict.fromkeys(["pair_id", column, *orient_cols]))
    quoted = pair_id.replace("'", "''")
    found = store.read(read, f"pair_id = '{quoted}'")  # SQL: uses the B-tree index
    if found.num_rows == 0:
        raise StoreError(f"no pair with id `{pair_id}`", hint="list ids with `seal query --select pair_id`")
    row = found.slice(0, 1).to_pylist()[0]
    if row[column] is None:
        raise StoreError(f"pair `{pair_id}` has no `{column}` yet", hint="run `seal embed` to embed new pairs")
    info = store.index_info()
    indexed = _index_kind(info, column) != "exact"
    scols = score_columns(schema)
    select = list(dict.fromkeys(["pair_id", "dataset", "context", "chosen", "rejected", *scols, *orient_cols]))
    res = _nearest(store, column, np.asarray(row[column], np.float32), k + 1, where, select, indexed)
    query_vecs = {"chosen": _vec(row.get(emb_column("chosen"))), "rejected": _vec(row.get(emb_column("rejected")))}
    hits: list[Hit] = []
    distances = res.column("_distance").to_pylist()
    for rec, dist in zip(res.to_pylist(), distances, strict=True):
        if rec["pair_id"] == pair_id or len(hits) >= k:
            continue
        orientation, resp_sim = None, None
        hv = {"chosen": _vec(rec.get(emb_column("chosen"))), "rejected": _vec(rec.get(emb_column("rejected")))}
        if orient and all(v is not None for v in (*query_vecs.values(), *hv.values())):
            orientation, resp_sim = _orientation(query_vecs, hv)  # type: ignore[arg-type]
        sim = 1.0 - float(dist)
        hits.append(
            Hit(
                rank=len(hits) + 1,
                pair_id=rec["pair_id"],
                score=sim,
                similarity=sim,
                matched=field,
                label=SIDE_LABEL[field],
                orientation=orientation,
                response_similarity=resp_sim,
                dataset=rec.get("dataset"),
                snippet=_snippet(rec, snippet_chars),
                scores=_scores(rec, scols),
            )
        )
    return SearchResult(
        kind="similar",
        query={"pair_id": pair_id, "field": field},
        mode="vector",
        fields=[field],
        k=k,
        where=where,
        index={column: _index_kind(info, column)},
        hits=hits,
        seconds=round(time.perf_counter() - t0, 4),
    )


# -- search -----------------------------------------------------------------------------------------
_ENCODERS: dict[str, TextEncoder] = {}


def query_encoder(store: Store) -> TextEncoder:
    """The encoder that made the store's text embeddings (from the latest `embed` run), loaded once."""
    runs = latest_runs(store)
    run = next((runs[f] for f in SEARCH_FIELDS if f in runs), None)
    if run is None:
        raise StoreError("the store has no text embeddings", hint="run `seal embed` first")
    params = run["recipe"]["params"]
    source = run["provenance"].get("model_path") or params["model"]
    key = f"{source}|{params.get('dtype')}|{params.get('max_seq_length')}"
    if key not in _ENCODERS:
        model = params["model"] if run["provenance"].get("model_source", "").startswith("package:") else source
        enc = TextEncoder(model, dtype=params.get("dtype", "auto"), max_seq_length=params.get("max_seq_length"))
        if params.get("weights") and enc.resolved.weights and enc.resolved.weights != params["weights"]:
            raise StoreError(
                f"the model at {enc.resolved.path} is not the one that made the embeddings",
                hint="re-run `seal embed` with the model you have",
            )
        _ENCODERS[key] = enc
    return _ENCODERS[key]


def search(
    store: Store,
    text: str,
    k: int = 10,
    mode: str = "hybrid",
    fields: tuple[str, ...] | list[str] | None = None,
    where: str | None = None,
    snippet_chars: int = SNIPPET_CHARS,
    encoder: TextEncoder | None = None,
) -> SearchResult:
    """Pairs whose context or responses match `text` (vector, full-text or hybrid)."""
    t0 = time.perf_counter()
    if mode not in MODES:
        raise SealError(f"unknown mode `{mode}`", hint=f"use one of {', '.join(MODES)}")
    if k < 1:
        raise SealError("k must be a positive integer")
    if not text.strip():
        raise SealError("the search text is empty")
    fields = list(fields or SEARCH_FIELDS)
    bad = sorted(set(fields) - set(SEARCH_FIELDS))
    if bad:
        raise SealError(f"unknown field(s) {', '.join(bad)}", hint=f"use {', '.join(SEARCH_FIELDS)}")
    where = _check_where(where)
    schema = store.schema()
    names = set(schema.names)
    info = store.index_info()
    pool = max(k * 3, 20)  # candidates per ranked list before fusion
    ranked: list[tuple[str, str, list[tuple[str, float]]]] = []  # (how, field, [(pair_id, score)])
    index: dict[str, str] = {}
    if mode in ("vector", "hybrid"):
        missing = [emb_column(f) for f in fields if emb_column(f) not in names]
        if missing:
            raise StoreError(f"the store has no {', '.join(missing)}", hint="run `seal embed` first")
        enc = encoder or query_encoder(store)
        qv = enc.encode([text])[0]
        for f in fields:
            col = emb_column(f)
            kind = _index_kind(info, col)
            index[col] = kind
            res = _nearest(store, col, qv, pool, where, ["pair_id"], kind != "exact")
            sims = [1.0 - float(d) for d in res.column("_distance").to_pylist()]
            ranked.append(("vector", f, list(zip(res.column("pair_id").to_pylist(), sims, strict=True))))
    if mode in ("text", "hybrid"):
        for f in fields:
            col = TEXT_COLUMN[f]
            if col not in names or col not in info:
                raise StoreError(f"no full-text index on `{col}`", hint="run `seal embed` (it builds the indexes)")
            index[col] = "fts"
            res = store.text_search(col, text, pool, where=where, columns=["pair_id"])
            ranked.append(
                ("text", f, list(zip(res.column("pair_id").to_pylist(), res.column("_score").to_pylist(), strict=True)))
            )
    # Within a method, a pair's score is its best over the fields (vector: cosine; text: BM25), and the
    # field that gave it is the one that matched. Hybrid fuses the two methods' rankings by reciprocal rank.
    per_method: dict[str, dict[str, tuple[float, str]]] = {}
    for how, f, items in ranked:
        merged = per_method.setdefault(how, {})
        for pid, score in items:
            if pid not in merged or score > merged[pid][0]:
                merged[pid] = (float(score), f)
    best: dict[str, dict[str, Any]] = {}
    for how, merged in per_method.items():
        ordered = sorted(merged.items(), key=lambda kv: -kv[1][0])
        for rank, (pid, (score, f)) in enumerate(ordered):
            entry = best.setdefault(pid, {"score": 0.0, "matched": f, "sim": None, "best": -1.0})
            if how == "vector":
                entry["sim"] = score
            value = 1.0 / (RRF_K + rank + 1) if mode == "hybrid" else score
            if value > entry["best"]:
                entry["best"], entry["matched"] = value, f
            entry["score"] = entry["score"] + value if mode == "hybrid" else value
    order = sorted(best.items(), key=lambda kv: -kv[1]["score"])[:k]
    scols = score_columns(schema)
    rows = _rows(store, [pid for pid, _ in order], ["pair_id", "dataset", "context", "chosen", "rejected", *scols])
    hits = []
    for pid, entry in order:
        rec = rows.get(pid, {"pair_id": pid})
        hits.append(
            Hit(
                rank=len(hits) + 1,
                pair_id=pid,
                score=float(entry["score"]),
                similarity=entry["sim"],
                matched=entry["matched"],
                label=SIDE_LABEL[entry["matched"]],
                orientation=None,
                response_similarity=None,
                dataset=rec.get("dataset"),
                snippet=_snippet(rec, snippet_chars),
                scores=_scores(rec, scols),
            )
        )
    return SearchResult(
        kind="search",
        query={"text": text},
        mode=mode,
        fields=fields,
        k=k,
        where=where,
        index=index,
        hits=hits,
        seconds=round(time.perf_counter() - t0, 4),
    )


__all__ = ["Hit", "SearchResult", "search", "similar"]

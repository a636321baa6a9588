"""Offline estimates for `seal plan` while the store lacks the pairs a stage will work on.

A stage plans from the store; before ingest there is nothing to count, so its plan says "no pairs in the store
yet". This module fills in what `seal run` would then do, without reading the network: how many pairs the
dataset entries would bring (counted in a local file, or the published size of a known Hub dataset), and for
each later stage the texts it would score, label or embed, the LLM requests with estimated tokens and cost
(the labeler's and the rewriter's real prompts, about 4 characters a token, the list price or the spec's
`prices`), and what it would download from the Hub (a dataset or model not in the local Hugging Face cache).

Every figure here is an estimate and says what it rests on (`basis`): the row count of a known dataset is its
published size, the text lengths are those of hh-rlhf (measured on harmless-base test) unless the store holds
pairs to measure, and an LLM request count is an upper bound (identical sides share one request).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

# Sizes (rows) of Hub preference datasets: (repo id, data_dir or None, split) -> (rows, where the figure comes
# from). hh-rlhf: the four subsets' train splits add up to the 160,800 pairs of the SEAL paper.
_PUBLISHED = "published figure, not checked here"
KNOWN_SIZES: dict[tuple[str, str | None, str], tuple[int, str]] = {
    ("anthropic/hh-rlhf", None, "train"): (160_800, "hh-rlhf train, all four subsets (the SEAL paper)"),
    ("anthropic/hh-rlhf", "harmless-base", "test"): (2_312, "hh-rlhf harmless-base test (counted)"),
    **{
        ("anthropic/hh-rlhf", data_dir, split): (rows, f"hh-rlhf {data_dir or 'all subsets'} {split} ({_PUBLISHED})")
        for data_dir, split, rows in (
            (None, "test", 8_552),
            ("harmless-base", "train", 42_537),
            ("helpful-base", "train", 43_835),
            ("helpful-base", "test", 2_354),
            ("helpful-online", "train", 22_007),
            ("helpful-online", "test", 1_137),
            ("helpful-rejection-sampled", "train", 52_421),
            ("helpful-rejection-sampled", "test", 2_749),
        )
    },
}
# Mean characters of a context and of a response in hh-rlhf harmless-base test (2,312 pairs, both sides).
CONTEXT_CHARS, RESPONSE_CHARS = 474, 189
LENGTH_BASIS = "mean lengths of hh-rlhf harmless-base test (474 context, 189 response characters)"


def forecast(spec: Any, store: Any, slots: Sequence[Any], plans: Sequence[Any]) -> list[Any]:
    """`plans` with estimates added where the store lacks the pairs the stage would work on (see the module
    docstring); plans of a store that holds every dataset of the spec are returned unchanged."""
    have = store.count() if store.exists() else 0
    out = list(plans)
    incoming, bases = 0, []
    for i, (slot, plan) in enumerate(zip(slots, plans, strict=True)):
        if plan.stage != "ingest" or plan.status not in ("pending", "stale") or not isinstance(slot.source, dict):
            continue
        estimate = _ingest(spec, slot.source)
        out[i] = _with(plan, estimate)
        if estimate.get("pairs") is not None:
            incoming += estimate["pairs"]
            bases.append(estimate["basis"])
    if not incoming:
        return out
    pairs = have + incoming
    basis = "; ".join(bases) + ("" if not have else f"; plus {have:,} pairs already in the store")
    models = sum(1 for s, p in zip(slots, plans, strict=True) if p.stage == "score" and s.source is not None)
    for i, (slot, plan) in enumerate(zip(slots, out, strict=True)):
        if plan.stage == "ingest" or plan.status not in ("pending", "stale") or plan.rows_todo:
            continue
        stage = _stage_for(slot, pairs)
        extra = _estimate(plan, stage, slot.source, spec, pairs, models)
        if extra is not None:
            out[i] = _with(plan, {"pairs": pairs, "pairs_basis": basis, **extra})
    return out


def _with(plan: Any, estimate: dict[str, Any]) -> Any:
    return replace(plan, estimate={**plan.estimate, **estimate, "estimated": True})


def _stage_for(slot: Any, pairs: int) -> Any:
    """The slot's stage; a percentage-sampled entry's stage built for `pairs` pairs."""
    if getattr(slot, "sized", None) is not None:
        try:
            return slot.sized(pairs)
        except Exception:
            return None
    return slot.stage


# -- hub cache ----------------------------------------------------------------------------------------------
def hub_cached(repo_id: str, kind: str) -> bool:
    """Whether the local Hugging Face cache holds anything of `repo_id` (`kind`: model or dataset)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - a dependency of transformers and datasets
        return False
    folder = Path(HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}"
    return folder.is_dir() and any(folder.glob("snapshots/*"))


def _is_local(spec: Any, value: str) -> tuple[bool, str]:
    resolved = spec.resolve(value)
    return (resolved != value or os.path.exists(resolved) or value.startswith(("/", "./", "../", "~"))), resolved


# -- ingest ------------------------------------------------------------------------------------------------
def _ingest(spec: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """Pairs a dataset entry would bring, and what that rests on; the download it needs, if any."""
    local, source = _is_local(spec, entry["source"])
    cap = min(v for v in (entry.get("limit"), entry.get("sample"), 10**18) if v)
    if local:
        rows = _count_rows(Path(source))
        if rows is None:
            return {"pairs": None, "basis": f"cannot count the rows of {source} without reading it"}
        basis = f"{rows:,} rows counted in {Path(source).name} (about one pair per row)"
        return {"pairs": min(rows, cap), "basis": basis + _capped(rows, cap)}
    repo = entry["source"]
    split, data_dir = entry.get("split"), entry.get("data_dir")
    downloads = [] if hub_cached(repo, "dataset") else [{"dataset": repo, "data_dir": data_dir, "split": split}]
    splits = [split] if split else ["train", "test"]
    sizes = [KNOWN_SIZES.get((repo.lower(), data_dir, s)) for s in splits]
    out: dict[str, Any] = {"downloads": downloads}
    if entry.get("subset") or any(size is None for size in sizes):
        where = "/".join(x for x in (repo, data_dir, split) if x)
        return {**out, "pairs": None, "basis": f"the size of {where} is unknown until it is downloaded"}
    rows = sum(size[0] for size in sizes if size)
    basis = "; ".join(size[1] for size in sizes if size) + ", published size, not downloaded"
    return {**out, "pairs": min(rows, cap), "basis": basis + _capped(rows, cap)}


def _capped(rows: int, cap: int) -> str:
    return f"; limited to {cap:,}" if cap < rows else ""


def _count_rows(path: Path) -> int | None:
    """Rows of a local JSON Lines (optionally gzipped), CSV or Parquet file; None for anything else."""
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".csv", ".csv.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                lines = sum(1 for line in handle if line.strip())
            return lines - 1 if ".csv" in name else lines
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
    except OSError:
        return None
    return None


# -- stages ------------------------------------------------------------------------------------------------
def _estimate(plan: Any, stage: Any, entry: Any, spec: Any, pairs: int, models: int) -> dict[str, Any] | None:
    kind = plan.stage
    if kind == "score":
        model = (entry or {}).get("model", "")
        local, _ = _is_local(spec, model) if model else (True, model)
        downloads = [] if local or hub_cached(model, "model") else [{"model": model}]
        return {"texts": 2 * pairs, "downloads": downloads, "note": "one forward pass per response"}
    if kind == "label":
        return _label(stage, spec, pairs)
    if kind == "embed":
        fields = tuple(getattr(getattr(stage, "options", None), "fields", ()) or ())
        return {"texts": pairs * len(fields), "fields": list(fields), "note": "an upper bound: equal texts share one"}
    if kind == "perturb":
        return _perturb(stage, spec, pairs, models)
    if kind == "findings":
        return {"note": "over every pair"}
    return None


def _sample(stage: Any, pairs: int) -> int:
    sample = getattr(stage, "sample", None)
    if sample is None:
        sample = getattr(getattr(stage, "config", None), "sample", None)
    return min(int(sample), pairs) if isinstance(sample, int) else pairs


def _turns() -> list[dict[str, str]]:
    return [{"role": "user", "content": "x" * CONTEXT_CHARS}, {"role": "assistant", "content": "x" * RESPONSE_CHARS}]


def _priced(model: str, spec: Any, input_tokens: int, output_tokens: int, batch: bool) -> dict[str, Any]:
    from seal.annotate.features.llm_prices import cost_usd, resolve_price

    price, source = resolve_price(model, spec.section("prices"))
    return {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd(price, input_tokens, output_tokens, batch),
        "price_per_million": dict(price) if price is not None else None,
        "price_source": source,
    }


def _label(stage: Any, spec: Any, pairs: int) -> dict[str, Any] | None:
    scope = _sample(stage, pairs)
    config = getattr(stage, "config", None)
    if config is None or not hasattr(stage, "feature_set"):  # heuristics, import: no requests
        return {"texts": 2 * scope, "requests": 0}
    from seal.annotate.features.prompts import build_messages, estimate_request_tokens

    features = stage.feature_set.features
    per_in, per_out = estimate_request_tokens(build_messages(_turns(), features), features)
    requests = 2 * scope
    return {
        "texts": requests,
        "requests": requests,
        **_priced(config.model, spec, per_in * requests, per_out * requests, bool(config.batch_api)),
        "basis": f"{LENGTH_BASIS}; about 4 characters a token; one request per side (identical sides share one)",
    }


def _perturb(stage: Any, spec: Any, pairs: int, models: int) -> dict[str, Any] | None:
    config = getattr(stage, "config", None)
    if config is None:
        return None
    scope = _sample(stage, pairs)
    rewrites = scope * len(config.perturbed_sides())
    out: dict[str, Any] = {"sampled_pairs": scope, "rewrites": rewrites, "rescore_texts": rewrites * models}
    rewriter = getattr(stage, "rewriter", None)
    if getattr(rewriter, "kind", None) != "llm":
        return {**out, "requests": 0}
    from seal.annotate.features.prompts import estimate_tokens
    from seal.annotate.perturb.llm_rewriter import RESPONSE_TEMPLATE, SYSTEM_PROMPT

    text = "x" * RESPONSE_CHARS
    per_in = estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(RESPONSE_TEMPLATE.format(text=text)) + 11
    per_out = estimate_tokens(text) + 1
    priced = _priced(rewriter.config.model, spec, per_in * rewrites, per_out * rewrites, False)
    basis = f"{LENGTH_BASIS}; about 4 characters a token; re-asks of invalid answers not counted"
    return {**out, "requests": rewrites, **priced, "basis": basis}

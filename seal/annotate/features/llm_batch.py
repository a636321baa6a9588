"""OpenAI Batch API mode of the `llm` labeler: submit, poll, collect, with idempotent bookkeeping.

The requests of a run go up as JSONL files (``POST /v1/files``, purpose ``batch``; at most 50,000
requests and ~180 MB per file) and become batches (``POST /v1/batches``, endpoint
``/v1/chat/completions``, window 24h). Each submission is a row of ``llm_batches`` written after the
upload and again after the create, so a rerun resumes polling (``GET /v1/batches/{id}``) instead of
submitting again; a create that reached the server before a crash is found by the submission id in
the batch's metadata. Open submissions block new ones: a rerun collects first, then submits what
is still missing. Finished batches are read (``GET /v1/files/{id}/content``, output and error
files) into the cache and the failures like interactive answers, without re-asks: an invalid answer
is a failure that the next run retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from seal.annotate.features.llm_cache import BatchBook
from seal.annotate.features.llm_sink import LabelSink
from seal.annotate.features.llm_work import TextItem, Work
from seal.annotate.features.prompts import feature_hash, parse_answer
from seal.catalog.featuresets import Feature, InvalidLabel
from seal.engines.llm import ChatClient, ClientStats, LLMRequestError
from seal.store import Store

BATCH_ENDPOINT = "/v1/chat/completions"
BATCH_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 180 * 1024 * 1024


def _features_digest(features: Sequence[Feature]) -> str:
    return hashlib.sha256(",".join(feature_hash(f) for f in features).encode()).hexdigest()[:12]


def _feature_from_dict(d: Mapping[str, Any]) -> Feature:
    return Feature(**{k: v for k, v in d.items() if k in Feature.__dataclass_fields__})


def _batch_chunks(lines: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    chunks: list[list[tuple[str, bytes]]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and (len(chunks[-1]) >= BATCH_MAX_REQUESTS or size + len(line[1]) > BATCH_MAX_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line[1]) + 1
    return [c for c in chunks if c]


async def _batch_submit(client: ChatClient, book: BatchBook, work: Work) -> list[dict[str, Any]]:
    """Upload the requests as JSONL file(s) and create one batch per file, bookkeeping each step."""
    config = work.config
    definitions: dict[str, list[dict[str, Any]]] = {}
    lines = []
    for text in work.todo:
        digest = _features_digest(text.missing)
        definitions.setdefault(digest, [dict(f.__dict__) for f in text.missing])
        line = {
            "custom_id": f"{text.text_hash}-{digest}",
            "method": "POST",
            "url": BATCH_ENDPOINT,
            "body": work.requests_for(text),
        }
        lines.append((text.text_hash, json.dumps(line, ensure_ascii=False).encode()))
    submissions = []
    for chunk in _batch_chunks(lines):
        submission_id = uuid.uuid4().hex
        data = b"\n".join(line for _, line in chunk) + b"\n"
        uploaded = await client.request_json(
            "POST",
            "files",
            files={"file": (f"seal-{submission_id}.jsonl", data, "application/jsonl")},
            data={"purpose": "batch"},
        )
        sub = book.save(
            {
                "submission_id": submission_id,
                "feature_set": work.feature_set.name,
                "model": config.model,
                "prompt_hash": config.prompt_hash,
                "base_url": config.endpoint.base_url,
                "features": json.dumps(definitions, sort_keys=True),
                "n_requests": len(chunk),
                "input_file_id": uploaded["id"],
                "status": "uploaded",
                "collected": False,
            }
        )
        submissions.append(sub)
    return submissions


async def _batch_create(client: ChatClient, book: BatchBook, sub: dict[str, Any]) -> dict[str, Any]:
    """Create the batch of an uploaded file, unless a create that reached the server before a crash
    already did (found by the submission id in the batch's metadata)."""
    if sub.get("batch_id"):
        return sub
    found = None
    listing = await client.request_json("GET", "batches", params={"limit": 100})
    for batch in listing.get("data") or []:
        if (batch.get("metadata") or {}).get("seal_submission") == sub["submission_id"]:
            found = batch
            break
    if found is None:
        found = await client.request_json(
            "POST",
            "batches",
            json={
                "input_file_id": sub["input_file_id"],
                "endpoint": BATCH_ENDPOINT,
                "completion_window": "24h",
                "metadata": {"seal_submission": sub["submission_id"], "seal_feature_set": sub["feature_set"]},
            },
        )
    sub = {**sub, "batch_id": found["id"], "status": found.get("status", "validating")}
    return book.save(sub)


async def _batch_collect(
    client: ChatClient, book: BatchBook, sub: dict[str, Any], work: Work, sink: LabelSink
) -> dict[str, int]:
    """Read a finished batch's output and error files into the cache and the failures."""
    definitions = {k: [_feature_from_dict(d) for d in v] for k, v in json.loads(sub["features"]).items()}
    counts = Counter()
    for file_id in (sub.get("output_file_id"), sub.get("error_file_id")):
        if not file_id:
            continue
        content = await client.request_bytes("GET", f"files/{file_id}/content")
        for raw in content.decode("utf-8", errors="replace").splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                text_hash_, digest = str(record["custom_id"]).rsplit("-", 1)
                features = definitions[digest]
            except (ValueError, KeyError, TypeError):
                counts["unreadable"] += 1
                continue
            text = work.texts.get(text_hash_) or TextItem(text_hash_, None)
            response = record.get("response") or {}
            error = record.get("error")
            status = response.get("status_code")
            if error or status != 200:
                detail = error or (response.get("body") or {}).get("error") or {}
                message = detail.get("message") if isinstance(detail, dict) else str(detail)
                sink.fail(text, features, "batch_error", f"batch request failed (HTTP {status}): {message}", 1)
                counts["failed"] += 1
                continue
            try:
                result = client.parse_completion(response.get("body"))
                labels = parse_answer(result.content, features)
            except (InvalidLabel, LLMRequestError) as err:
                sink.fail(text, features, "invalid", f"invalid answer in the batch output: {err}", 1)
                counts["failed"] += 1
                continue
            sink.label(text, features, labels, result.response_id, result.prompt_tokens, result.completion_tokens)
            counts["labelled"] += 1
    counts["unanswered"] = max(0, int(sub["n_requests"]) - counts["labelled"] - counts["failed"])
    book.save({**sub, "collected": True})
    return dict(counts)


async def run_batch(
    store: Store, work: Work, api_key: str | None, sink: LabelSink
) -> tuple[ClientStats, dict[str, Any]]:
    """Collect the open submissions of the plan, submit the missing texts when none is open, and poll for up
    to `batch_wait` seconds; the client's counters and what happened to each submission."""
    config = work.config
    book = BatchBook(store)
    info: dict[str, Any] = {"submitted": 0, "resumed": 0, "collected": 0, "pending": 0, "submissions": []}
    async with config.endpoint.client(api_key) as client:
        subs = list(work.open_batches)
        info["resumed"] = len(subs)
        if not subs and work.todo:
            subs = await _batch_submit(client, book, work)
            info["submitted"] = sum(int(s["n_requests"]) for s in subs)
        subs = [await _batch_create(client, book, s) for s in subs]
        deadline = time.monotonic() + max(0.0, config.batch_wait)
        while True:
            pending = []
            for i, sub in enumerate(subs):
                if sub["collected"]:
                    continue
                batch = await client.request_json("GET", f"batches/{sub['batch_id']}")
                sub = subs[i] = book.save(
                    {
                        **sub,
                        "status": batch.get("status"),
                        "output_file_id": batch.get("output_file_id"),
                        "error_file_id": batch.get("error_file_id"),
                    }
                )
                if sub["status"] in BATCH_TERMINAL:
                    counts = await _batch_collect(client, book, sub, work, sink)
                    subs[i] = {**sub, "collected": True}
                    info["collected"] += 1
                    info.setdefault("results", Counter()).update(counts)
                else:
                    pending.append(sub)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            await asyncio.sleep(min(config.batch_poll_interval, remaining))
        info["pending"] = len(pending)
        info["results"] = dict(info.get("results", {}))
        info["submissions"] = [
            {k: s.get(k) for k in ("submission_id", "batch_id", "status", "n_requests", "collected")} for s in subs
        ]
        return client.stats, info

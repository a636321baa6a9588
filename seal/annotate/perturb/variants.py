"""Making variants: rewrite the sampled sides of a chunk of pairs, measure each variant's similarity to its
original, and describe them as ``variants_<name>`` entries (see `seal.catalog.perturbations.VARIANT`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from seal.annotate.perturb.jobs import Job, Rewriter
from seal.annotate.perturb.reading import messages, read_pairs
from seal.annotate.perturb.similarity import cosine_similarities, remember, stored_vectors
from seal.catalog.perturbations import FAILED, OK, UNCHANGED
from seal.engines.encoder import TextEncoder
from seal.recipe import canonical_json
from seal.store import Store


def has_failed(variants: Sequence[Mapping[str, Any]] | None) -> bool:
    """Failed rewrites are retried by the next run (they were never cached, so nothing is paid twice)."""
    return any(v["status"] == FAILED for v in variants or [])


def variant_counts(values: Iterable[Sequence[Mapping[str, Any]] | None]) -> dict[str, int]:
    """Variants by status, and how many fell below the similarity threshold."""
    counts = {"total": 0, OK: 0, UNCHANGED: 0, FAILED: 0, "below_min_similarity": 0}
    for vs in values:
        for v in vs or []:
            counts["total"] += 1
            counts[v["status"]] += 1
            counts["below_min_similarity"] += int(bool(v["below_min_similarity"]))
    return counts


def variants_content_hash(ids: Sequence[str], values: Sequence[Any]) -> str:
    """A hash of what the RMs score: every usable variant's pair, side, context and text."""
    digest = hashlib.sha256()
    for pid, vs in zip(ids, values, strict=True):
        for v in vs or []:
            if v["status"] != FAILED:
                digest.update(canonical_json([pid, v["side"], v["context"], v["text"]]).encode())
                digest.update(b"\n")
    return digest.hexdigest()[:16]


def make_variants(
    store: Store,
    ids: Sequence[str],
    *,
    sides: Sequence[str],
    target: str,
    seed: int,
    min_similarity: float | None,
    rewriter: Rewriter,
    encoder: TextEncoder,
) -> dict[str, list[dict[str, Any]]]:
    """{pair_id: its variants} for the pairs `ids`: one rewrite per side in `sides`, with its similarity."""
    from seal.engines.scoring import render_transcript

    tab = read_pairs(store, ["pair_id", "context", "chosen", "rejected"], ids).to_pylist()
    jobs = []
    for row in tab:
        for side in sides:
            jobs.append(Job(row["pair_id"], side, messages(row["context"]), row[side] or "", target, seed))
    outcomes = rewriter.rewrite(jobs)
    originals, variants = [], []
    for job, out in zip(jobs, outcomes, strict=True):
        if out.response is None:
            originals.append("")
            variants.append("")
        elif target == "conversation":
            originals.append(render_transcript([*job.context, {"role": "assistant", "content": job.response}]))
            variants.append(render_transcript([*(out.context or []), {"role": "assistant", "content": out.response}]))
        else:
            originals.append(job.response)
            variants.append(out.response)
    if target == "response":  # the stored response embeddings stand for the originals when they match
        by_pair = {row["pair_id"]: row for row in tab}
        for side in sides:
            known = stored_vectors(store, side, list(by_pair), encoder)
            remember(encoder, {by_pair[pid][side] or "": vec for pid, vec in known.items()})
    sims = cosine_similarities(originals, variants, encoder)
    params_json = canonical_json(rewriter.recipe_params())
    rows: dict[str, list[dict[str, Any]]] = {pid: [] for pid in ids}
    for job, out, orig, var, sim in zip(jobs, outcomes, originals, variants, sims, strict=True):
        failed = out.response is None
        changed = (not failed) and orig != var
        below = (not failed) and min_similarity is not None and float(sim) < float(min_similarity)
        rows[job.pair_id].append(
            {
                "side": job.side,
                "target": job.target,
                "method": rewriter.method,
                "params": params_json,
                "seed": job.seed,
                "status": FAILED if failed else (OK if changed else UNCHANGED),
                "text": out.response,
                "context": out.context if (target == "conversation" and not failed) else None,
                "similarity": None if failed else float(sim),
                "below_min_similarity": bool(below),
                "changed": bool(changed),
                "attempts": int(out.attempts),
                "error": out.error,
            }
        )
    return rows

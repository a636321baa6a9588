"""HTML of the data sections: the dataset overview, the confusing findings with example pairs, and the
recipes of every column. Dataset text (contexts, responses, ids, dataset names, recipe values) is the most
hostile input of the page: it only reaches it through seal.report.escape.text, cut to `max_text`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from seal.report.escape import text
from seal.report.gather import Options, Section
from seal.report.markup import Html, cell, code, definitions, details, join, num, paragraph, pct, table

MAX_TURNS = 3
KIND_TITLES = {
    "contradictory": "Contradictions: near-duplicate pairs with opposite preferences",
    "near_identical": "Near-identical responses",
    "identical": "Identical responses",
    "duplicate": "Duplicate pairs",
}


def overview(section: Section, options: Options) -> Html:
    d = section.data
    from seal.schema import FLAG_NAMES

    quarantined = {name: sum(reasons.values()) for name, reasons in d["quarantine"].items()}
    rows = []
    for name, info in d["datasets"].items():
        rows.append([name, info["pairs"], *(info["flags"][f] for f in FLAG_NAMES), quarantined.get(name, 0)])
    rows.append([Html("<b>all</b>"), d["pairs"], *(d["flags"][f] for f in FLAG_NAMES), sum(quarantined.values())])
    flag_headers = [f.replace("_", " ") for f in FLAG_NAMES]
    parts = [
        Html(
            f"<p>{d['pairs']:,} pairs in {len(d['datasets']):,} dataset(s); store {code(d['store'])} at version "
            f"{d['version']:,}.</p>"
        ),
        table(["dataset", "pairs", *flag_headers, "quarantined rows"], rows, numeric=range(1, len(FLAG_NAMES) + 3)),
        paragraph(
            "Flags: identical responses carry no preference (left out of agreement under the default tie rule); "
            "quarantined rows could not become pairs (seal quarantine lists them)."
        ),
    ]
    q_rows = [[name, reason, count] for name, reasons in d["quarantine"].items() for reason, count in reasons.items()]
    parts.append(Html("<h3>Quarantine by reason</h3>"))
    parts.append(
        table(["dataset", "reason", "rows"], q_rows, numeric=[2]) if q_rows else paragraph("No row quarantined.")
    )
    return join(parts)


# -- confusing ----------------------------------------------------------------------------------------------
def _context(turns: Any, limit: int) -> Html:
    if not turns:
        return Html('<div class="turn muted">(no context)</div>')
    shown = turns[-MAX_TURNS:]
    out = []
    if len(turns) > len(shown):
        out.append(f'<div class="turn muted">… {len(turns) - len(shown):,} earlier turn(s)</div>')
    for turn in shown:
        out.append(f'<div class="turn"><b>{text(turn.get("role"), 40)}</b>: {text(turn.get("content"), limit)}</div>')
    return join(out)


def pair_card(pair: Mapping[str, Any] | None, pair_id: str, options: Options, label: str = "pair") -> Html:
    """One pair: id, dataset, the last context turns, both responses (each cut to `max_text`) and the model's
    scores."""
    if pair is None:
        return Html(f'<div class="pair muted">{text(label)} {code(pair_id)}: no longer in the store</div>')
    limit = options.max_text
    scores = pair.get("scores") or {}
    score_text = ""
    if scores and scores.get("chosen") is not None:
        score_text = f" · {code(pair['model'])}: chosen {num(scores['chosen'])}, rejected {num(scores.get('rejected'))}"
    return Html(
        f'<div class="pair"><div class="meta">{text(label)} {code(pair_id)} · dataset {code(pair["dataset"])}'
        f'{score_text}</div><div class="ctx">{_context(pair.get("context"), limit)}</div>'
        f'<div class="sides"><div class="side chosen"><h4>chosen</h4><div class="t">{text(pair["chosen"], limit)}'
        f'</div></div><div class="side rejected"><h4>rejected</h4><div class="t">{text(pair["rejected"], limit)}'
        "</div></div></div></div>"
    )


def _detail(detail: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in detail.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return ", ".join(f"{k} {num(v) if isinstance(v, float) else v}" for k, v in keep.items())


def _cluster_row(f: Mapping[str, Any], model: str | None, control: str | None) -> list[Any]:
    detail = f["detail"]
    resistance = detail.get("resistance") or {}

    def share(alias: str | None) -> Any:
        r = resistance.get(alias) if alias else None
        if not r or r.get("resistance") is None:
            return None
        return Html(
            f'{pct(r["resistance"])} <span class="ci">[{pct(r["ci_low"])}, {pct(r["ci_high"])}]</span> '
            f'<span class="n">{r["resisting"]:,}/{r["scored"]:,}</span>'
        )

    terms = ", ".join(map(str, detail.get("terms") or []))
    return [
        detail.get("rank"),
        f["cluster"],
        detail.get("size"),
        terms,
        share(model),
        share(control),
        detail.get("excess"),
    ]


def confusing(section: Section, options: Options, model: str | None = None, control: str | None = None) -> Html:
    d = section.data
    counts = ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in d["counts"].items())
    parts = [paragraph(f"Stored findings of seal confusing: {counts}.")]
    if d["found_at_version"] is not None and d["found_at_version"] != d["store_version"]:
        parts.append(
            paragraph(
                f"Found at pairs version {d['found_at_version']:,}; the store is now at {d['store_version']:,} "
                "(rerun seal confusing to refresh).",
                "muted",
            )
        )
    pairs = d["pairs"]
    if d["clusters"]:
        ranking = d["clusters"][0]["detail"].get("resistance") or {}
        model = model if model in ranking else next(iter(ranking), None)
        control = control if control in ranking and control != model else None
        headers = [
            "rank",
            "cluster",
            "pairs",
            "top terms",
            f"resistance {model or ''}",
            f"resistance {control or ''}",
            "excess",
        ]
        parts.append(Html("<h3>Clusters ranked by excess resistance</h3>"))
        parts.append(
            paragraph(
                "Resistance = share of the cluster's pairs the RM gets wrong, with its Wilson interval; excess = "
                "resistance minus the dataset's."
            )
        )
        parts.append(table(headers, [_cluster_row(f, model, control) for f in d["clusters"]], numeric=[0, 1, 2, 6]))
        for cluster, ids in d["cluster_pairs"].items():
            if ids:
                cards = join(pair_card(pairs.get(p), p, options) for p in ids)
                parts.append(details(f"Example pairs of cluster {cluster}", cards))
    shown: set[frozenset[str]] = set()
    for kind, title in KIND_TITLES.items():
        # a contradiction is also a duplicate with the opposite label: show that couple once
        found = [
            f for f in d["findings"].get(kind, []) if frozenset((f["pair_id"], f.get("other_pair_id"))) not in shown
        ]
        shown.update(frozenset((f["pair_id"], f.get("other_pair_id"))) for f in found)
        if not found:
            continue
        parts.append(Html(f"<h3>{text(title)}</h3>"))
        for f in found:
            cards = [pair_card(pairs.get(f["pair_id"]), f["pair_id"], options)]
            if f.get("other_pair_id"):
                cards.append(pair_card(pairs.get(f["other_pair_id"]), f["other_pair_id"], options, "other pair"))
            parts.append(
                Html(f'<div class="finding"><p class="muted">{text(_detail(f["detail"]))}</p>{join(cards)}</div>')
            )
    return join(parts)


# -- recipes ------------------------------------------------------------------------------------------------
def _value(value: Any, limit: int = 300) -> Html:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    return cell(value, limit)


def _nowrap(value: Any) -> Html:
    return Html(f'<span class="nw">{text(value, 64)}</span>')


def recipes(section: Section, options: Options) -> Html:
    d = section.data
    rows = []
    for c in d["columns"]:
        run = c["run"]
        made = f"{run['stage']} {run['name']}" if run else ("ingest" if c["ingest"] else None)
        rows.append(
            [
                c["column"],
                Html(text(c["type"], 120)),
                pct(c["coverage"]),
                made,
                _nowrap(run["fingerprint"]) if run else None,
                _nowrap(run["run_id"]) if run else None,
            ]
        )
    parts = [
        paragraph(
            "Every column of the pairs table, its coverage and the last run that wrote it. A recipe is what "
            "determines a column (its fingerprint is the hash of the recipe); provenance is how it was made."
        ),
        table(["column", "type", "coverage", "made by", "fingerprint", "run"], rows),
        Html(f"<h3>Runs ({len(d['runs']):,} stage/name pairs, {d['runs_total']:,} runs in all)</h3>"),
    ]
    for run in d["runs"]:
        recipe = run["recipe"]
        params = recipe.get("params", recipe) if isinstance(recipe, dict) else {}
        head = (
            f"{run['stage']} · {run['name']} · {run['status']} · {run['rows_written']:,} rows · "
            f"fingerprint {run['fingerprint'] or '–'} · {run['finished_at']}"
        )
        body = definitions({k: _value(v) for k, v in params.items()}) if params else paragraph("(empty recipe)")
        provenance = json.dumps(run["provenance"], sort_keys=True, default=str)
        body += details("provenance", f"<pre>{text(provenance, 4000)}</pre>")
        parts.append(details(head, body))
    return join(parts)

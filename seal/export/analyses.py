"""What the analyses found, summarised with numbers for the dataset card: agreement of every RM with the human
labels and the regimes against a control (Wilson CIs, exact McNemar), the strongest feature imprints (OLS with
cluster-robust CIs), robustness to each perturbation, and the confusing entries with example pair ids.

Each analysis is called through its public function over the whole store; one that cannot run (no scores, no
features, no perturbations) is reported as unavailable with the reason, never as an error of the export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from seal.catalog.findings import FINDING_KIND
from seal.errors import SealError
from seal.store import Store

TOP_IMPRINTS = 5
EXAMPLES = 3
REGIMES = ("stayed_aligned", "got_aligned", "resists", "reversed")


def _unavailable(err: Exception) -> dict[str, Any]:
    return {"available": False, "reason": str(err).splitlines()[0]}


def _share(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: value.get(k) for k in ("count", "n", "share", "ci_low", "ci_high")}


def summarise(store: Store, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The card's analysis summary (JSON-ready): resistance, imprint, robustness and confusing entries."""
    return {
        "pairs": store.count(),
        "pairs_version": store.version(),
        "resistance": _resistance(store, models),
        "imprint": _imprint(store, models),
        "robustness": _robustness(store),
        "confusing": _confusing(store),
    }


def _resistance(store: Store, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from seal.analysis.resistance import resistance

    if not models:
        return {"available": False, "reason": "no reward-model scores in the store"}
    out: dict[str, Any] = {"available": True, "agreement": {}, "regimes": None}
    for alias in models:
        try:
            result = resistance(store, alias, use_control=False).to_json()
        except SealError as err:
            out["agreement"][alias] = _unavailable(err)
            continue
        entry = result["agreement"][alias]
        out["agreement"][alias] = {
            "available": True,
            "role": models[alias].get("role"),
            "scored": entry["scored"],
            "ties": entry["ties"],
            "identical": entry.get("identical", 0),
            "agreement": _share(entry["agreement"]),
        }
    controls = [a for a, info in models.items() if info.get("role") == "control"]
    if controls:
        try:
            result = resistance(store).to_json()
        except SealError as err:
            out["regimes"] = _unavailable(err)
        else:
            regimes = result.get("regimes") or {}
            if result.get("control"):
                out["regimes"] = {
                    "available": True,
                    "model": result["model"]["alias"],
                    "control": result["control"]["alias"],
                    "n": regimes.get("n"),
                    **{name: _share(regimes[name]) for name in REGIMES if name in regimes},
                    "mcnemar": regimes.get("mcnemar"),
                }
    return out


def _imprint(store: Store, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from seal.analysis.imprint import imprint

    if not models:
        return {"available": False, "reason": "no reward-model scores in the store"}
    out: dict[str, Any] = {"available": False, "models": {}}
    for alias in models:
        try:
            result = imprint(store, alias).to_json()
        except SealError as err:
            out["models"][alias] = _unavailable(err)
            continue
        regression = result["regressions"][0]
        terms = [c for c in regression["coefficients"] if c.get("role") != "intercept" and c.get("t") is not None]
        terms.sort(key=lambda c: abs(c["t"]), reverse=True)
        out["available"] = True
        out["models"][alias] = {
            "available": True,
            "outcome": regression["definition"],
            "n": regression["n"],
            "n_pairs": regression.get("n_pairs"),
            "r2": regression.get("r2"),
            "cov": regression.get("cov_detail"),
            "correction": result.get("correction"),
            "top": [
                {k: c.get(k) for k in ("name", "feature_set", "beta", "ci_low", "ci_high", "p", "p_adj", "std_beta")}
                for c in terms[:TOP_IMPRINTS]
            ],
        }
    if not out["available"] and out["models"]:
        out["reason"] = next(iter(out["models"].values()))["reason"]
    return out


def _robustness(store: Store) -> dict[str, Any]:
    from seal.analysis.robustness import robustness

    try:
        result = robustness(store).to_json()
    except SealError as err:
        return _unavailable(err)
    rows = []
    for r in result["results"]:
        agreement, flips = r.get("agreement") or {}, r.get("flips") or {}
        rows.append(
            {
                "model": r["model"],
                "method": r["method"],
                "status": r["status"],
                "note": r.get("note"),
                "included": (r.get("coverage") or {}).get("included"),
                "before": _share((agreement.get("before") or {}).get("agreement") or {}),
                "after": _share((agreement.get("after") or {}).get("agreement") or {}),
                "became_misaligned": flips.get("became_misaligned"),
                "became_aligned": flips.get("became_aligned"),
                "mcnemar_p": (flips.get("mcnemar") or {}).get("pvalue"),
                "sensitivity": r.get("sensitivity"),
            }
        )
    return {"available": bool(rows), "results": rows, **({} if rows else {"reason": "no perturbation results"})}


def _confusing(store: Store) -> dict[str, Any]:
    from seal.analysis.confusing import stored_findings

    findings = stored_findings(store)
    runs = store.runs("confusing")
    if not findings and not runs:
        return {"available": False, "reason": "no stored findings (run `seal confusing`)"}
    checked = runs[-1]["recipe"].get("params", {}).get("kinds", []) if runs else []
    counts = Counter({FINDING_KIND.get(k, k): 0 for k in checked})
    counts.update(f["kind"] for f in findings)
    examples: dict[str, list[Any]] = {}
    for kind in sorted(counts):
        rows = [f for f in findings if f["kind"] == kind]
        rows.sort(key=lambda f: -(f["score"] if f["score"] is not None else float("-inf")))
        if kind == "cluster":
            examples[kind] = [
                {
                    "cluster": f["cluster"],
                    "size": f["detail"].get("size"),
                    "excess_resistance": f["score"],
                    "terms": f["detail"].get("terms", [])[:5],
                }
                for f in rows[:EXAMPLES]
            ]
        else:
            examples[kind] = [
                [f["pair_id"], f["other_pair_id"]] if f["other_pair_id"] else [f["pair_id"]] for f in rows[:EXAMPLES]
            ]
    return {"available": True, "counts": dict(sorted(counts.items())), "examples": examples}


# -- markdown ----------------------------------------------------------------------------------------
def _pct(share: Mapping[str, Any] | None) -> str:
    if not share or share.get("share") is None:
        return "n/a"
    return f"{share['share']:.1%} [{share['ci_low']:.1%}, {share['ci_high']:.1%}] ({share['count']}/{share['n']})"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def render(summary: Mapping[str, Any]) -> list[str]:
    """The analyses as markdown lines."""
    lines = [
        f"Computed by seal over all {summary['pairs']:,} pairs of the store (version {summary['pairs_version']}); "
        "intervals are 95% (Wilson for shares, cluster-robust by pair for imprints).",
        "",
        "### Agreement with the human labels",
        "",
    ]
    res = summary["resistance"]
    if not res.get("available"):
        lines += [f"Not available: {res['reason']}.", ""]
    else:
        lines += [
            "Agreement: the share of decided pairs (neither a tie nor identical responses) where the RM scores the "
            "chosen response higher.",
            "",
            "| RM | role | pairs scored | ties | identical responses | agreement [95% CI] |",
            "|---|---|---:|---:|---:|---|",
        ]
        for alias, a in res["agreement"].items():
            if a.get("available"):
                lines.append(
                    f"| {alias} | {a['role']} | {a['scored']:,} | {a['ties']} | {a['identical']} "
                    f"| {_pct(a['agreement'])} |"
                )
            else:
                lines.append(f"| {alias} | | | | | not available: {a['reason']} |")
        regimes = res.get("regimes")
        if regimes and regimes.get("available"):
            mc = regimes.get("mcnemar") or {}
            lines += [
                "",
                f"Regimes of `{regimes['model']}` against control `{regimes['control']}` over {regimes['n']:,} pairs "
                "(stayed aligned: both prefer chosen; got aligned: only the model; resists: neither; reversed: only "
                "the control):",
                "",
                "| regime | share [95% CI] |",
                "|---|---|",
                *[f"| {name.replace('_', ' ')} | {_pct(regimes.get(name))} |" for name in REGIMES],
                "",
                f"Exact McNemar test on the discordant pairs: b = {mc.get('b')}, c = {mc.get('c')}, "
                f"p = {_num(mc.get('pvalue'))}.",
            ]
        lines.append("")
    lines += ["### Feature imprints", ""]
    imp = summary["imprint"]
    if not imp.get("available"):
        lines += [f"Not available: {imp.get('reason', 'no reward-model scores')}.", ""]
    else:
        for alias, m in imp["models"].items():
            if not m.get("available"):
                lines += [f"`{alias}`: not available: {m['reason']}.", ""]
                continue
            lines += [
                f"`{alias}`: {m['outcome']}, OLS over {m['n']:,} texts ({m['n_pairs']:,} pairs), R² = {_num(m['r2'])}; "
                f"the {len(m['top'])} features with the largest |t| ({m['correction']}-adjusted p):",
                "",
                "| feature | set | β [95% CI] | p (adj.) |",
                "|---|---|---|---|",
            ]
            for c in m["top"]:
                lines.append(
                    f"| {c['name']} | {c['feature_set']} | {_num(c['beta'])} [{_num(c['ci_low'])}, "
                    f"{_num(c['ci_high'])}] | {_num(c['p_adj'] if c['p_adj'] is not None else c['p'])} |"
                )
            lines.append("")
    lines += ["### Robustness to rewrites", ""]
    rob = summary["robustness"]
    if not rob.get("available"):
        lines += [f"Not available: {rob['reason']}.", ""]
    else:
        lines += [
            "| RM | perturbation | pairs | agreement before | agreement after | flips to misaligned / aligned "
            "| McNemar p | sensitivity |",
            "|---|---|---:|---|---|---|---:|---:|",
        ]
        for r in rob["results"]:
            lines.append(
                f"| {r['model']} | {r['method']} | {_num(r['included'])} | {_pct(r['before'])} | {_pct(r['after'])} "
                f"| {_num(r['became_misaligned'])} / {_num(r['became_aligned'])} | {_num(r['mcnemar_p'])} "
                f"| {_num(r['sensitivity'])} |"
            )
        lines.append("")
    lines += ["### Confusing entries", ""]
    conf = summary["confusing"]
    if not conf.get("available"):
        lines += [f"Not available: {conf['reason']}.", ""]
    else:
        lines += ["| kind | findings | examples (pair ids) |", "|---|---:|---|"]
        for kind, count in conf["counts"].items():
            if kind == "cluster":
                shown = "; ".join(
                    f"cluster {e['cluster']} ({e['size']} pairs, excess resistance {_num(e['excess_resistance'])}: "
                    f"{', '.join(e['terms'])})"
                    for e in conf["examples"][kind]
                )
            else:
                shown = "; ".join(" ↔ ".join(f"`{p}`" for p in ids) for ids in conf["examples"][kind]) or "none"
            lines.append(f"| {kind.replace('_', ' ')} | {count} | {shown} |")
        lines.append("")
    return lines

"""How a resistance result reads: the text report of `seal resistance`."""

from __future__ import annotations

from typing import Any

from seal.analysis.stats import Proportion
from seal.render import table


def _pct(p: Proportion) -> str:
    return p.percent()


def _ci(p: Proportion) -> str:
    return p.interval()


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pvalue(p: float) -> str:
    return f"{p:.3g}"


_RULE_TEXT = {
    "exclude": "ties and identical responses are their own categories, never disagreement",
    "disagree": "the paper's strict counting: ties and identical responses count as disagreement",
}


def render_text(result: Any) -> str:
    """The text report of a `ResistanceResult`: coverage, tie rule, agreement, regimes with McNemar, shift,
    quadrants, margins and groups."""
    r = result
    conf = f"{100 * r.confidence:g}%"
    lines = []
    head = f"resistance of `{r.model.alias}` (role {r.model.role}, {r.model.origin})"
    if r.control is not None:
        head += f" against control `{r.control.alias}` (role {r.control.role}, {r.control.origin})"
    lines.append(head + (f" — pairs version {r.pairs_version}" if r.pairs_version is not None else ""))
    cov = r.coverage
    missing = ", ".join(f"{alias} {n:,}" for alias, n in cov.unscored_by_model.items())
    line = f"pairs: {cov.pairs_total:,} total, {cov.pairs_scored:,} scored" + (
        " by both RMs" if r.control is not None else ""
    )
    if cov.pairs_unscored:
        line += f", {cov.pairs_unscored:,} excluded without scores (missing: {missing})"
    lines.append(line)

    lines.append("")
    lines.append(f"tie rule: {r.ties} — {_RULE_TEXT[r.ties]}")
    if r.ties == "disagree":
        lines.append(
            "agreement = chosen > rejected over every scored pair (decided = scored: ties and identical responses "
            "count as disagreement); ties and identical also as shares of scored pairs"
        )
    else:
        lines.append(
            "agreement = chosen > rejected over decided pairs (scored − ties − identical responses); "
            "ties and identical as shares of scored pairs"
        )
    rows = []
    for a in r.agreement.values():
        rows.append(
            {
                "model": a.alias,
                "scored": a.scored,
                "agree": a.agree,
                "disagree": a.disagree,
                "ties": a.ties,
                "identical": a.identical,
                "agreement": _pct(a.agreement),
                f"{conf} CI": _ci(a.agreement),
                "ties %": _pct(a.tie_share),
                "identical %": _pct(a.identical_share),
                "agree/scored": _pct(a.agree_share_of_scored),
            }
        )
    lines.append(table(rows))

    if r.regimes is not None:
        g = r.regimes
        lines.append("")
        if r.ties == "disagree":
            ex = g.counted_as_disagreement
            where, how = "scored pairs", "counted as disagreement"
        else:
            ex = g.excluded
            where, how = "pairs decided by both RMs", "excluded"
        control_name = r.control.alias if r.control else "control"
        lines.append(
            f"regimes over {g.n:,} {where}, tie rule {r.ties} ({how}: {ex['identical']:,} identical, "
            f"{ex['tie_model_only']:,} tied by {r.model.alias} only, {ex['tie_control_only']:,} by "
            f"{control_name} only, {ex['tie_both']:,} by both)"
        )
        rows = [
            {
                "regime": name.replace("_", " "),
                "control": c,
                "model": m,
                "count": p.count,
                "share": _pct(p),
                f"{conf} CI": _ci(p),
            }
            for name, c, m, p in g.items()
        ]
        lines.append(table(rows))
        mc = g.mcnemar
        lines.append(f"McNemar (exact): b = {mc.b:,} reversed, c = {mc.c:,} got aligned, p = {_pvalue(mc.pvalue)}")

    lines.append("")
    lines.append("reward vectors (r_chosen, r_rejected): share of scored pairs per quadrant")
    rows = [
        {
            "model": q.alias,
            "c>0,r>0": _pct(q.chosen_pos_rejected_pos),
            "c<0,r>0": _pct(q.chosen_neg_rejected_pos),
            "c>0,r<0": _pct(q.chosen_pos_rejected_neg),
            "c<0,r<0": _pct(q.chosen_neg_rejected_neg),
            "on an axis": _pct(q.on_axis),
        }
        for q in r.quadrants.values()
    ]
    lines.append(table(rows))
    if r.shift is not None:
        s = r.shift
        st = s.sign_test
        lines.append(
            f"shift angle θ from {s.control}'s reward vector to {s.model}'s in degrees (counter-clockwise "
            "positive in the (chosen, rejected) plane, as the SEAL paper):"
        )
        left_out = s.excluded or {"zero_vectors": s.zero_vectors}
        lines.append(
            f"  n {s.n:,}, mean {_num(s.mean, 2)}, median {_num(s.median, 2)}, sd {_num(s.sd, 2)}; "
            f"θ>0 {st.n_positive:,}, θ<0 {st.n_negative:,}, θ=0 {st.n_zero:,}, sign test p = {_pvalue(st.pvalue)}; "
            f"left out: {left_out.get('identical', 0):,} identical responses, "
            f"{left_out.get('zero_vectors', 0):,} zero vectors"
        )

    lines.append("")
    lines.append("margins (chosen − rejected) over scored pairs")
    rows = []
    for alias, d in r.margins.items():
        row: dict[str, Any] = {"model": alias, "n": d.n, "mean": _num(d.mean), "sd": _num(d.sd)}
        row.update({k: _num(v) for k, v in d.quantiles.items()})
        rows.append(row)
    lines.append(table(rows))

    if r.groups is not None:
        lines.append("")
        lines.append(f"by {r.by} (tie rule {r.ties}; decided and regimes as above, per group)")
        rows = []
        for grp in r.groups:
            row = {r.by: "(null)" if grp.key is None else str(grp.key), "pairs": grp.pairs, "scored": grp.scored}
            for alias, a in grp.agreement.items():
                row[f"{alias} decided"] = a.decided
                row[f"{alias} agreement"] = _pct(a.agreement)
                row[f"{alias} CI"] = _ci(a.agreement)
            if grp.regimes is not None:
                row["stayed"] = _pct(grp.regimes.stayed_aligned)
                row["resists"] = _pct(grp.regimes.resists)
                row["resists CI"] = _ci(grp.regimes.resists)
                row["got aligned"] = _pct(grp.regimes.got_aligned)
                row["reversed"] = _pct(grp.regimes.reversed)
                row["McNemar p"] = _pvalue(grp.regimes.mcnemar.pvalue)
            rows.append(row)
        lines.append(table(rows))
    return "\n".join(lines)

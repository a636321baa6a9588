"""How a robustness result reads: the text report of `seal robustness`."""

from __future__ import annotations

from typing import Any

from seal.analysis.resistance_results import DEFAULT_TIE_RULE
from seal.analysis.stats import Proportion
from seal.render import table

TEXT_TERMS = 12  # robustness-score terms shown in the text rendering (all are in the JSON)


def render_text(result: Any) -> str:
    """The text report of a `RobustnessResult`: agreement before/after, flips, sensitivity ranking and the
    robustness-score regressions (the TEXT_TERMS terms with the smallest p; all are in the JSON)."""
    lines = [f"robustness (pairs version {result.pairs_version})", ""]
    agreement_rows = []
    for r in result.results:
        b, a = r.before, r.after
        agreement_rows.append(
            {
                "model": r.model,
                "method": r.method,
                "pairs": r.coverage.get("included", 0),
                "agree before": _pct(b.agreement) if b else r.status,
                "95% CI before": b.agreement.interval() if b else "",
                "agree after": _pct(a.agreement) if a else "",
                "95% CI after": a.agreement.interval() if a else "",
                "excluded": r.coverage.get("pairs_with_variants", 0) - r.coverage.get("included", 0),
            }
        )
    tie_rule = result.options.get("ties", DEFAULT_TIE_RULE)
    lines += [f"agreement before / after (tie rule {tie_rule})", table(agreement_rows), ""]
    flip_rows = []
    for r in result.results:
        if r.flips is None:
            continue
        flip_rows.append(
            {
                "model": r.model,
                "method": r.method,
                "decided": r.flips["pairs"],
                "became misaligned": r.flips["became_misaligned"],
                "became aligned": r.flips["became_aligned"],
                "McNemar p": r.flips["mcnemar"]["pvalue"],
                "reward r": (r.reward or {}).get("pearson"),
                "mean |Δ|/SD": (r.reward or {}).get("mean_abs_change_sd"),
                "θ mean°": ((r.shift or {}).get("angle_degrees") or {}).get("mean"),
            }
        )
    lines += ["flips (exact McNemar), reward correlation, change and shift", table(flip_rows), ""]
    lines += ["sensitivity: reward change (in SDs) per unit of semantic change (1 - similarity)"]
    lines += [
        table(
            result.sensitivity_table(),
            ["model", "rank", "method", "texts", "mean_abs_change_sd", "mean_semantic_change", "sensitivity"],
        ),
        "",
    ]
    for r in result.results:
        for score in r.robustness_score:
            head = f"robustness score: {r.model} × {r.method}"
            if not score.available:
                lines.append(f"{head}: not computed ({score.reason})")
                continue
            lines.append(
                f"{head} × features_{score.feature_set}: {score.estimator}, {score.cov_type} SEs, "
                f"{score.correction} correction, population {score.population} (tie rule {score.tie_rule}), "
                f"N={score.n}, outcome rate {score.outcome_rate:.3f}, R²={_fmt(score.r2)}"
            )
            if score.formula:
                lines.append(f"  {score.formula}")
            shown = sorted(score.coefficients[1:], key=lambda c: c.pvalue if c.pvalue == c.pvalue else 2.0)
            rows = [score.coefficients[0], *shown[:TEXT_TERMS]]
            cells = [
                {"term": c.term, "rows": c.rows, "coef": c.coef, "se": c.se, "p": c.pvalue, "p adj": c.p_adjusted}
                for c in rows
            ]
            lines.append(table(cells))
            if len(shown) > TEXT_TERMS:
                lines.append(f"({len(shown) - TEXT_TERMS} more terms with larger p in --json)")
            left_out = [
                ("no flips", score.no_flips),
                (f"fewer than {score.min_flips} pairs without it (~ intercept)", score.constant_terms),
                (f"in fewer than {score.min_flips} pairs", score.rare_terms),
                ("collinear with a kept term", score.aliased_terms),
            ]
            for what, terms in left_out:
                if terms:
                    lines.append(f"(left out, {what}: {', '.join(terms)})")
            lines.append("")
    notes = [f"{r.model} × {r.method}: {r.note}" for r in result.results if r.note]
    if notes:
        lines += ["notes", *notes]
    return "\n".join(lines).rstrip()


def _pct(p: Proportion) -> str:
    return p.percent()


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"

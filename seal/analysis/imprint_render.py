"""How an imprint result reads: the text tables of `seal imprint` and the coefficient plot (`--plot`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from seal.render import table


def render_text(result: Any) -> str:
    """The text report of an `ImprintResult`: per regression its formula, fit statistics, dropped
    regressors, coefficient table and high VIFs."""
    lines = []
    minus = f" − {result.minus}" if result.minus else ""
    for reg in result.regressions:
        lines.append(f"== {reg.outcome}: {reg.definition}")
        lines.append(f"formula: {reg.formula}   [{reg.estimator}; {reg.rows}]")
        r2 = "–" if reg.r2 is None else f"{reg.r2:.4f}"
        lines.append(
            f"N = {reg.n:,} ({reg.n_pairs:,} pairs; {reg.n_dropped_missing:,} rows dropped for missing values), "
            f"{reg.r2_kind} R² = {r2}, condition number {reg.condition_number:.3g}"
        )
        lines.append(f"SE: {reg.cov_detail}; inference {reg.inference}; p adjusted: {result.correction}")
        lines.extend(_sample_warnings(result, reg))
        if not reg.converged:
            lines.append("warning: the logit did not converge (separation?)")
        for d in reg.dropped:
            lines.append(f"dropped {d['name']}: {d['reason']}")
        rows = []
        for c in reg.coefficients:
            rows.append(
                {
                    "term": c["name"],
                    "role": c["role"],
                    "beta": c["beta"],
                    "se": c["se"],
                    "t": c["t"],
                    "p": c["p"],
                    "p_adj": c["p_adj"],
                    "ci95": None if c["ci_low"] is None else f"[{c['ci_low']:.4g}, {c['ci_high']:.4g}]",
                    "std_beta": c["std_beta"],
                }
            )
        lines.append(table(rows))
        high = [v for v in reg.vif if v["vif"] is not None and v["vif"] > 10]
        if high:
            lines.append("VIF > 10: " + ", ".join(f"{v['name']} {v['vif']:.1f}" for v in high))
        lines.append("")
    header = f"imprint of {result.model}{minus} ({result.level} level"
    header += f", fixed effects: {result.fe}" if result.fe else ""
    header += ", standardised)" if result.standardize else ")"
    return header + "\n\n" + "\n".join(lines).rstrip()


FEW_ROWS_PER_TERM = 10  # below this many rows per regressor the fit mostly follows noise


def too_few_rows_per_term(n: int, terms: int) -> bool:
    """Whether a fit of `terms` regressors (intercept aside) on `n` rows has fewer than FEW_ROWS_PER_TERM per
    term (`seal imprint`'s text and the HTML report warn then)."""
    return n < FEW_ROWS_PER_TERM * max(terms, 1)


def _sample_warnings(result: Any, reg: Any) -> list[str]:
    """Why this fit may rest on less data than the user expects: feature sets labelling different pairs (only the
    pairs every set labels are kept), or few rows per regressor."""
    out = []
    sets = sorted({f.get("feature_set") for f in result.features if f.get("feature_set")})
    if reg.n_dropped_missing and len(sets) > 1:
        out.append(
            f"note: {reg.n_dropped_missing:,} rows lack a value of some feature; when the sets ({', '.join(sets)}) "
            "label different pairs, only the pairs every set labels are fitted: --features SET fits one set on "
            "every pair it labels"
        )
    terms = sum(1 for c in reg.coefficients if c["role"] != "intercept")
    if terms and too_few_rows_per_term(reg.n, terms):
        out.append(
            f"warning: {reg.n:,} rows for {terms} terms (fewer than {FEW_ROWS_PER_TERM} per term): the estimates "
            "are unstable; label more pairs"
        )
    return out


ROLE_COLOURS = {"target": "#1f77b4", "spoiler": "#d62728", "none": "#7f7f7f"}


def plot_imprint(result: Any, path: str) -> str:
    """Coefficient plot: one panel per regression, β and its CI per term (intercept left out), coloured by
    role. Uses standardised β when the result is standardised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    regs = result.regressions
    height = max(3.0, 0.28 * max(len(r.coefficients) for r in regs) + 1.5)
    fig, axes = plt.subplots(1, len(regs), figsize=(6.5 * len(regs), height), squeeze=False)
    for ax, reg in zip(axes[0], regs, strict=True):
        terms = [c for c in reg.coefficients if c["role"] != "intercept" and c["beta"] is not None]
        ys = np.arange(len(terms))[::-1]
        for y, c in zip(ys, terms, strict=True):
            colour = ROLE_COLOURS.get(c["role"], ROLE_COLOURS["none"])
            lo, hi = c["ci_low"], c["ci_high"]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=colour, lw=2, alpha=0.7)
            ax.plot([c["beta"]], [y], "o", color=colour)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels([c["name"] for c in terms], fontsize=8)
        unit = "standardised β" if result.standardize else "β"
        ax.set_xlabel(f"{unit} with {round(100 * (1 - result.alpha))}% CI")
        ax.set_title(f"{reg.outcome}: {result.model}" + (f" − {result.minus}" if result.minus else ""), fontsize=10)
    handles = [Line2D([0], [0], marker="o", color=c, label=role, lw=2) for role, c in ROLE_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

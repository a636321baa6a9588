"""HTML of the reward-model sections: agreement and regimes, γ × regime, imprint, reward vectors and shift
angle, robustness. Each takes a gathered `Section` (its numbers are the analyses' JSON) and returns safe
HTML; every string from the store goes through seal.report.markup / seal.report.escape."""

from __future__ import annotations

from typing import Any

from seal.analysis.imprint_render import FEW_ROWS_PER_TERM, too_few_rows_per_term
from seal.report import plots
from seal.report.escape import anchor_id, attr, text
from seal.report.gather import Options, Section
from seal.report.markup import Html, code, figure, interval, join, num, paragraph, pct, proportion, table

REGIME_LABELS = {
    "stayed_aligned": ("stayed aligned", "(1, 1)"),
    "got_aligned": ("got aligned", "(0, 1)"),
    "resists": ("resists", "(0, 0)"),
    "reversed": ("reversed", "(1, 0)"),
}
ROLE_ORDER = {"target": 0, "spoiler": 1, "none": 2}


def _level(options: Options) -> str:
    return f"{options.confidence:.0%}"


def agreement(section: Section, options: Options) -> Html:
    r = section.data["result"]
    model, control = r["model"], r["control"]
    cov = r["coverage"]
    vs = Html(f" against control {code(control['alias'])} (role {code(control['role'])})") if control else ""
    parts = [
        Html(
            f"<p>Model {code(model['alias'])} (role {code(model['role'])}, {code(model['origin'])}){vs}. "
            f"{cov['pairs_scored']:,} of {cov['pairs_total']:,} pairs scored by every RM here; tie rule "
            f"{code(r['ties'])}; Wilson {_level(options)} intervals.</p>"
        )
    ]
    rows = []
    for alias, a in r["agreement"].items():
        rows.append(
            [
                alias,
                a["scored"],
                a["agree"],
                a["disagree"],
                a["ties"],
                a["identical"],
                proportion(a["agreement"]),
                proportion(a["agree_share_of_scored"]),
            ]
        )
    parts.append(
        table(
            ["RM", "scored", "agree", "disagree", "ties", "identical", "agreement = agree/decided", "agree/scored"],
            rows,
            numeric=range(1, 6),
        )
    )
    regimes = r["regimes"]
    if regimes:
        rows = [[REGIME_LABELS[name][0], REGIME_LABELS[name][1], proportion(regimes[name])] for name in REGIME_LABELS]
        parts.append(Html("<h3>Regimes (control agrees, model agrees)</h3>"))
        parts.append(table(["regime", "(δ control, δ model)", "share of pairs decided by both"], rows))
        m = regimes["mcnemar"]
        parts.append(
            paragraph(
                f"Exact McNemar test over {regimes['n']:,} pairs: reversed b = {m['b']:,}, got aligned c = {m['c']:,}, "
                f"p = {num(m['pvalue'])}. Left out: {_counts(regimes['excluded'])}."
            )
        )
    else:
        parts.append(paragraph("Regimes need a control RM: score one with seal score --role control.", "muted"))
    parts.append(
        figure(
            plots.agreement_plot(r["agreement"], regimes, options.confidence),
            "agreement of each RM with its confidence interval, and the regime shares",
        )
    )
    return join(parts)


def _counts(values: dict[str, Any]) -> str:
    shown = [f"{k.replace('_', ' ')} {v:,}" for k, v in values.items() if isinstance(v, int)]
    return text(", ".join(shown) or "none")


def gamma(section: Section, options: Options) -> Html:
    g = section.data["result"]
    control = g["control"]
    parts = [
        Html(
            f"<p>γ from {', '.join(str(code(f)) for f in g['features'])} (lexicographic, first most important): "
            f"<b>c</b> the labeler prefers the chosen response, <b>i</b> indifferent, <b>r</b> the rejected one. "
            f"{g['n_pairs']:,} pairs, {g['n_unlabelled']:,} unlabelled, {g['n_unscored']:,} without scores; tie "
            f"rule {code(g['tie_rule'])}.</p>"
        )
    ]
    headers = ["γ", "meaning", "pairs", "share"]
    if control:
        headers += [REGIME_LABELS[name][0] for name in REGIME_LABELS]
    headers += [f"agreement {g['model']}"] + ([f"agreement {control}", "McNemar p"] if control else [])
    rows = []
    for row in g["rows"]:
        line: list[Any] = [row["gamma"], row["meaning"], row["n"], proportion(row["share"]) if row["share"] else None]
        if control:
            line += [proportion(row["regimes"][name]) for name in REGIME_LABELS]
        line.append(proportion(row["agreement_model"]))
        if control:
            line += [proportion(row["agreement_control"]), row["mcnemar"]["pvalue"]]
        rows.append(line)
    parts.append(table(headers, rows, numeric=[2]))
    if control and g["regimes"]:
        sides = [
            f"{REGIME_LABELS[name][0]} {pct(v['labeler_sides_with_human']['share'])}"
            for name, v in g["regimes"].items()
            if v["labeler_sides_with_human"]["n"]
        ]
        if sides:
            parts.append(paragraph("Where the labeler has a view, it sides with the human: " + ", ".join(sides) + "."))
    return join(parts)


def imprint(section: Section, options: Options) -> Html:
    parts = [
        paragraph(
            "Reward of each text regressed on its features (two rows per pair, SEs clustered by pair), both "
            "standardised: β is the change in reward SDs per SD of the feature. Targets are values the data is "
            "meant to teach, spoilers traits an RM may learn by accident. Raw β: seal imprint --model ALIAS."
        )
    ]
    if section.note:
        parts.append(paragraph(section.note, "muted"))
    for alias, result in section.data["models"].items():
        for reg in result["regressions"]:
            terms = [c for c in reg["coefficients"] if c["role"] != "intercept"]
            terms.sort(key=lambda c: (ROLE_ORDER.get(c["role"] or "none", 3), -abs(c["beta"] or 0)))
            rows = [
                [
                    c["name"],
                    _role(c["role"]),
                    c["beta"],
                    interval(c["ci_low"], c["ci_high"]),
                    c["p_adj"],
                    c["direction"],
                ]
                for c in terms
            ]
            r2 = num(reg["r2"])
            on = f" × {code(reg['feature_set'])}" if reg.get("feature_set") else ""
            parts.append(
                Html(
                    f"<h3>{code(alias)}{on}</h3><p>N = {reg['n']:,} texts ({reg['n_pairs']:,} pairs), "
                    f"{len(terms)} terms, R² = {r2}, p adjusted: {code(result['correction'])}.</p>"
                )
            )
            if too_few_rows_per_term(reg["n"], len(terms)):
                parts.append(
                    paragraph(
                        f"Few texts for the terms (fewer than {FEW_ROWS_PER_TERM} per term): the fit follows "
                        "noise and the intervals are wide; label more pairs before reading these βs.",
                        "muted",
                    )
                )
            parts.append(
                table(["term", "role", "std β", f"{_level(options)} CI", "p (adjusted)", "sign"], rows, numeric=[2, 4])
            )
            if reg["dropped"]:
                dropped = ", ".join(f"{d['name']} ({d['reason']})" for d in reg["dropped"])
                parts.append(paragraph("Dropped: " + dropped, "muted"))
            parts.append(
                figure(
                    plots.imprint_plot(terms, f"imprint of {alias}", options.confidence),
                    f"imprint coefficients of {alias}",
                )
            )
    return join(parts)


def _role(role: str | None) -> Html:
    role = role or "none"
    return Html(f'<span class="role {attr(anchor_id(role))}">{text(role)}</span>')


def reward_vectors(section: Section, options: Options) -> Html:
    d = section.data
    parts = [
        paragraph(
            "Each pair's reward vector (r(chosen), r(rejected)). Below the dashed diagonal the RM prefers the "
            "chosen response. Grey rings: the control RM; dots: the model, coloured by regime; grey lines join "
            "the two vectors of a sample of pairs."
        )
    ]
    rows = []
    for alias, q in d["quadrants"].items():
        rows.append(
            [
                alias,
                proportion(q["chosen_pos_rejected_neg"]),
                proportion(q["chosen_pos_rejected_pos"]),
                proportion(q["chosen_neg_rejected_neg"]),
                proportion(q["chosen_neg_rejected_pos"]),
                proportion(q["on_axis"]),
            ]
        )
    parts.append(table(["RM", "chosen +, rejected −", "both +", "both −", "chosen −, rejected +", "on an axis"], rows))
    names = (d["model"], d["control"])
    scatter = plots.reward_scatter(d["model_vectors"], d["control_vectors"], d["regimes"], names)
    parts.append(
        figure(scatter, "scatter of reward vectors", f"{d['pairs']:,} pairs (at most {plots.MAX_POINTS:,} drawn)")
    )
    shift = d["shift"]
    if shift is None:
        parts.append(paragraph(section.note or "no control RM", "muted"))
        return join(parts)
    sign = shift["sign_test"]
    parts.append(
        Html(
            f"<h3>Shift angle θ from {code(d['control'])} to {code(d['model'])}</h3><p>{shift['n']:,} pairs; mean "
            f"{num(shift['mean'])}°, median {num(shift['median'])}°, SD {num(shift['sd'])}°; θ &gt; 0 in "
            f"{proportion(shift['positive'])}; sign test p = {num(sign['pvalue'])}. Left out: "
            f"{_counts(shift['excluded'])}.</p>"
        )
    )
    parts.append(
        figure(
            plots.angle_histogram(d["theta"], shift["mean"], (d["model"], d["control"])), "histogram of shift angles"
        )
    )
    return join(parts)


def robustness(section: Section, options: Options) -> Html:
    value = section.data["result"]
    rows, plotted, notes = [], [], []
    for r in value["results"]:
        label = f"{r['method']} · {r['model']}"
        if r["status"] != "ok":
            notes.append(f"{label}: {r['status']}" + (f" ({r['note']})" if r.get("note") else ""))
            rows.append([r["method_spec"], r["model"], r["status"], None, None, None, None, None, None, None])
            continue
        before, after = r["agreement"]["before"]["agreement"], r["agreement"]["after"]["agreement"]
        flips, reward = r["flips"], r["reward"]
        rows.append(
            [
                r["method_spec"],
                r["model"],
                r["status"],
                r["coverage"]["included"],
                proportion(before),
                proportion(after),
                f"{flips['became_misaligned']:,} / {flips['became_aligned']:,}",
                flips["mcnemar"]["pvalue"],
                reward["pearson"],
                reward["mean_abs_change_sd"],
            ]
        )
        plotted.append((label, before, after))
    headers = [
        "perturbation",
        "RM",
        "status",
        "pairs",
        "agreement before",
        "after",
        "flips →mis / →aligned",
        "McNemar p",
        "reward r",
        "mean |Δ| (SD)",
    ]
    parts = [
        paragraph(
            "Agreement before and after meaning-preserving rewrites of the responses, pairs whose agreement "
            "flipped (exact McNemar), the correlation of rewards before and after, and the mean absolute reward "
            f"change in the RM's reward SDs. Wilson {_level(options)} intervals."
        ),
        table(headers, rows, numeric=[3, 7, 8, 9]),
    ]
    if value["sensitivity"]:
        sens = [
            [s["model"], s["rank"], s["method"], s["mean_abs_change_sd"], s["mean_semantic_change"], s["sensitivity"]]
            for s in value["sensitivity"]
        ]
        parts.append(Html("<h3>Sensitivity (reward change per unit of meaning change)</h3>"))
        parts.append(
            table(
                ["RM", "rank", "perturbation", "mean |Δ| (SD)", "semantic change", "ratio"], sens, numeric=[1, 3, 4, 5]
            )
        )
    if notes:
        parts.append(paragraph("; ".join(notes), "muted"))
    if plotted:
        parts.append(figure(plots.robustness_plot(plotted, options.confidence), "agreement before and after rewrites"))
    return join(parts)


def empty(section: Section) -> Html:
    """The body of a section without data: why, and the command that fills it."""
    why = f"{paragraph(section.note, 'muted')}" if section.note else ""
    return Html(f'<p class="empty">No data for this section yet. Filled by {code(section.hint)}.</p>{why}')

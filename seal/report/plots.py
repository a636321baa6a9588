"""The report's plots: matplotlib (Agg, no pyplot state) rendered to PNG and embedded as data: URIs, so the
page needs no file beside it and no network. Labels never go through mathtext (a `$` in a model alias is
text), and the figures stay small (a scatter draws at most MAX_POINTS points)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_POINTS = 2000
MAX_SEGMENTS = 200
DPI = 100
WIDTH = 7.5  # inches: 750 px, scaled down by CSS below that
ROLE_COLOURS = {"target": "#1f6fb4", "spoiler": "#c9302c", "none": "#7f7f7f"}
REGIME_COLOURS = {
    "stayed_aligned": "#2b8a3e",
    "got_aligned": "#1f6fb4",
    "resists": "#c9302c",
    "reversed": "#e8890c",
    "excluded": "#9e9e9e",
}
_RC = {"text.parse_math": False, "text.usetex": False, "svg.fonttype": "path", "font.size": 9}


def _figure(height: float, width: float = WIDTH, ncols: int = 1) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="tight")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def png_uri(fig: Any) -> str:
    """The figure as a base64 PNG data: URI."""
    import matplotlib
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    # A 256-colour palette: plots on white lose nothing visible and the PNG shrinks about four times.
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small = io.BytesIO()
    image.save(small, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(small.getvalue()).decode("ascii")


def _draw(build: Any, *args: Any, **kwargs: Any) -> str:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = build(*args, **kwargs)
        return png_uri(fig)


def _share_rows(ax: Any, labels: Sequence[str], props: Sequence[Mapping[str, Any]], colours: Sequence[str]) -> None:
    ys = np.arange(len(labels))[::-1]
    for y, p, colour in zip(ys, props, colours, strict=True):
        if not p or not p.get("n"):
            continue
        ax.plot([100 * p["ci_low"], 100 * p["ci_high"]], [y, y], color=colour, lw=3, alpha=0.55)
        ax.plot([100 * p["share"]], [y], "o", color=colour)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)


def agreement_plot(agreement: Mapping[str, Mapping[str, Any]], regimes: Mapping[str, Any] | None, level: float) -> str:
    """Agreement of each RM with its CI, and (with a control) the four regimes' shares with their CIs."""
    return _draw(_agreement_figure, agreement, regimes, level)


def _agreement_figure(agreement: Mapping[str, Any], regimes: Mapping[str, Any] | None, level: float) -> Any:
    rows = max(len(agreement), 4 if regimes else 1)
    fig, axes = _figure(0.4 * rows + 1.0, ncols=2 if regimes else 1)
    aliases = list(agreement)
    _share_rows(axes[0], aliases, [agreement[a]["agreement"] for a in aliases], ["#1f6fb4"] * len(aliases))
    axes[0].axvline(50, color="black", lw=0.8, ls="--")
    axes[0].set_xlabel(f"agreement with the human preference, % ({level:.0%} CI)")
    if regimes:
        names = list(REGIME_COLOURS)[:4]
        _share_rows(axes[1], names, [regimes[n] for n in names], [REGIME_COLOURS[n] for n in names])
        axes[1].set_xlabel(f"share of pairs decided by both RMs, % ({level:.0%} CI)")
    return fig


def imprint_plot(coefficients: Sequence[Mapping[str, Any]], title: str, level: float) -> str:
    """A forest plot of one regression: β with its CI per term, coloured by role (target, spoiler, none)."""
    return _draw(_imprint_figure, coefficients, title, level)


def _imprint_figure(coefficients: Sequence[Mapping[str, Any]], title: str, level: float) -> Any:
    terms = [c for c in coefficients if c.get("role") != "intercept" and c.get("beta") is not None]
    fig, axes = _figure(0.26 * max(len(terms), 1) + 1.2)
    ax = axes[0]
    ys = np.arange(len(terms))[::-1]
    for y, c in zip(ys, terms, strict=True):
        colour = ROLE_COLOURS.get(c.get("role") or "none", ROLE_COLOURS["none"])
        if c.get("ci_low") is not None and c.get("ci_high") is not None:
            ax.plot([c["ci_low"], c["ci_high"]], [y, y], color=colour, lw=2.5, alpha=0.6)
        ax.plot([c["beta"]], [y], "o", color=colour)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([str(c["name"])[:48] for c in terms], fontsize=8)
    ax.set_xlabel(f"standardised β ({level:.0%} CI): reward SDs per feature SD")
    ax.set_title(title[:90], fontsize=9)
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], marker="o", color=c, label=role, lw=2) for role, c in ROLE_COLOURS.items()]
    ax.legend(handles=handles, loc="best", fontsize=8, frameon=False)
    return fig


def reward_scatter(
    model: np.ndarray,
    control: np.ndarray | None,
    regimes: np.ndarray | None,
    names: tuple[str, str | None],
    seed: int = 0,
) -> str:
    """The reward vectors (r_chosen, r_rejected) of the model (coloured by regime) and of the control (grey
    rings), a line from each pair's control vector to its model vector for a sample, and the diagonal
    r_chosen = r_rejected (below it the RM prefers the chosen response)."""
    return _draw(_scatter_figure, model, control, regimes, names, seed)


def _scatter_figure(
    model: np.ndarray, control: np.ndarray | None, regimes: np.ndarray | None, names: tuple[str, str | None], seed: int
) -> Any:
    fig, axes = _figure(5.2, width=6.2)
    ax = axes[0]
    n = len(model)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(n, MAX_POINTS, replace=False)) if n > MAX_POINTS else np.arange(n)
    if control is not None:
        lines = (
            keep[:MAX_SEGMENTS] if len(keep) <= MAX_SEGMENTS else np.sort(rng.choice(keep, MAX_SEGMENTS, replace=False))
        )
        from matplotlib.collections import LineCollection

        segments = np.stack([control[lines], model[lines]], axis=1)
        ax.add_collection(LineCollection(segments, colors="#b0b0b0", linewidths=0.5, alpha=0.6))
        ax.scatter(
            control[keep, 0],
            control[keep, 1],
            s=14,
            facecolors="none",
            edgecolors="#8a8a8a",
            lw=0.7,
            label=f"control: {names[1]}",
        )
    if regimes is not None:
        for regime, colour in REGIME_COLOURS.items():
            mask = regimes[keep] == regime
            if mask.any():
                ax.scatter(
                    model[keep][mask, 0],
                    model[keep][mask, 1],
                    s=12,
                    color=colour,
                    label=f"{names[0]}: {regime.replace('_', ' ')}",
                )
    else:
        agree = model[keep, 0] > model[keep, 1]
        ax.scatter(model[keep][agree, 0], model[keep][agree, 1], s=12, color="#2b8a3e", label=f"{names[0]}: agrees")
        ax.scatter(model[keep][~agree, 0], model[keep][~agree, 1], s=12, color="#c9302c", label=f"{names[0]}: not")
    points = model[keep] if control is None else np.vstack([model[keep], control[keep]])
    lo, hi = float(np.nanmin(points)), float(np.nanmax(points))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=0.8, ls="--")
    ax.set_xlabel("reward of the chosen response")
    ax.set_ylabel("reward of the rejected response")
    ax.legend(fontsize=7, loc="best", frameon=False)
    ax.grid(alpha=0.25)
    return fig


def angle_histogram(theta: np.ndarray, mean: float | None, names: tuple[str, str]) -> str:
    """The shift angles θ (degrees, control → model) in 10° bins, with θ = 0 and the mean marked."""
    return _draw(_angle_figure, theta, mean, names)


def _angle_figure(theta: np.ndarray, mean: float | None, names: tuple[str, str]) -> Any:
    fig, axes = _figure(2.8)
    ax = axes[0]
    ax.hist(theta, bins=np.arange(-180, 181, 10), color="#1f6fb4", alpha=0.8, edgecolor="white")
    ax.axvline(0, color="black", lw=0.8)
    if mean is not None:
        ax.axvline(mean, color="#c9302c", lw=1.2, ls="--", label=f"mean {mean:+.1f}°")
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlim(-180, 180)
    ax.set_xticks(np.arange(-180, 181, 45))
    ax.set_xlabel(f"shift angle θ from {names[1]} to {names[0]}, degrees (counter-clockwise positive)")
    ax.set_ylabel("pairs")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def robustness_plot(rows: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]], level: float) -> str:
    """Agreement before (ring) and after (dot) each rewrite, per (perturbation, RM), with CIs."""
    return _draw(_robustness_figure, rows, level)


def _robustness_figure(rows: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]], level: float) -> Any:
    fig, axes = _figure(0.42 * len(rows) + 1.1)
    ax = axes[0]
    ys = np.arange(len(rows))[::-1]
    for y, (_, before, after) in zip(ys, rows, strict=True):
        for p, offset, style in ((before, 0.12, "none"), (after, -0.12, "#1f6fb4")):
            if p and p.get("n"):
                ax.plot([100 * p["ci_low"], 100 * p["ci_high"]], [y + offset] * 2, color="#1f6fb4", lw=2, alpha=0.5)
                ax.plot([100 * p["share"]], [y + offset], "o", markerfacecolor=style, markeredgecolor="#1f6fb4")
    ax.set_yticks(ys)
    ax.set_yticklabels([label[:60] for label, _, _ in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.axvline(50, color="black", lw=0.8, ls="--")
    ax.set_xlabel(f"agreement before (ring) and after (dot) the rewrite, % ({level:.0%} CI)")
    ax.grid(axis="x", alpha=0.3)
    return fig

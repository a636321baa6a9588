"""Small HTML builders for the report. Safety is the default: a value that is not `Html` is escaped with
seal.report.escape.text, so a dataset string can only reach the page as text. Numbers are formatted here
once (shares as percentages, intervals in brackets)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from seal.report.escape import DEFAULT_LIMIT, attr, text

CELL_LIMIT = 200  # characters of a table cell: an unbroken token widens its table (which scrolls), not the page


class Html(str):
    """A string that is already safe HTML (built from escaped parts)."""


def join(parts: Iterable[str]) -> Html:
    return Html("".join(parts))


def cell(value: Any, limit: int | None = DEFAULT_LIMIT) -> Html:
    """A value as safe HTML: Html as is, numbers formatted, None as an en dash, anything else escaped."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html('<span class="na">–</span>')
    if isinstance(value, bool):
        return Html("yes" if value else "no")
    if isinstance(value, int):
        return Html(f"{value:,}")
    if isinstance(value, float):
        return Html(num(value))
    return Html(text(value, limit))


def num(value: float | None, digits: int = 3) -> str:
    """A number with `digits` significant digits ("–" for None or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if value == 0:
        return "0"
    if abs(value) >= 10 ** (digits + 2) or abs(value) < 1e-4:
        return f"{value:.{digits - 1}e}"
    return f"{value:,.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def pct(share: float | None, digits: int = 1) -> str:
    """A share as a percentage."""
    if share is None or not math.isfinite(share):
        return "–"
    return f"{100 * share:.{digits}f}%"


def proportion(p: Mapping[str, Any] | None) -> Html:
    """A proportion of a result's JSON ({count, n, share, ci_low, ci_high}) as "51.7% [42.8, 60.4] 62/120"."""
    if not p or not p.get("n"):
        return Html('<span class="na">–</span>')
    lo, hi = p.get("ci_low"), p.get("ci_high")
    interval = f' <span class="ci">[{pct(lo)}, {pct(hi)}]</span>' if lo is not None and hi is not None else ""
    return Html(f'{pct(p["share"])}{interval} <span class="n">{p["count"]:,}/{p["n"]:,}</span>')


def interval(low: float | None, high: float | None) -> Html:
    """A confidence interval of a coefficient as "[a, b]"."""
    if low is None or high is None:
        return Html('<span class="na">–</span>')
    return Html(f'<span class="ci">[{num(low)}, {num(high)}]</span>')


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    cls: str = "",
    numeric: Sequence[int] = (),
    limit: int | None = CELL_LIMIT,
) -> Html:
    """A table in its own scrolling container (wide tables scroll, the page does not). `numeric`: indexes
    of right-aligned columns."""
    right = set(numeric)
    head = "".join(f"<th{' class=r' if i in right else ''}>{cell(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f"<td{' class=r' if i in right else ''}>{cell(v, limit)}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{max(len(headers), 1)}" class="na">none</td></tr>')
    klass = f' class="{attr(cls)}"' if cls else ""
    return Html(
        f'<div class="tw"><table{klass}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def definitions(items: Mapping[str, Any], limit: int | None = DEFAULT_LIMIT) -> Html:
    """A definition list of key: value."""
    rows = "".join(f"<dt>{cell(k)}</dt><dd>{cell(v, limit)}</dd>" for k, v in items.items())
    return Html(f'<dl class="kv">{rows}</dl>')


def paragraph(value: Any, cls: str = "") -> Html:
    klass = f' class="{attr(cls)}"' if cls else ""
    return Html(f"<p{klass}>{cell(value)}</p>")


def details(summary: Any, body: str) -> Html:
    """A collapsed block."""
    return Html(f"<details><summary>{cell(summary)}</summary>{body}</details>")


def figure(uri: str, alt: str, caption: Any = None) -> Html:
    """An embedded plot (a data: URI made by seal.report.plots)."""
    if not uri.startswith("data:image/"):
        raise ValueError("the report embeds only data: images")
    cap = f"<figcaption>{cell(caption)}</figcaption>" if caption is not None else ""
    return Html(f'<figure><img src="{attr(uri)}" alt="{attr(alt)}">{cap}</figure>')


def code(value: Any) -> Html:
    return Html(f"<code>{text(value)}</code>")

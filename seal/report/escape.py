"""Every string that reaches the HTML report passes through here: dataset texts, pair ids, dataset names,
model ids, recipe values and error messages are data, and data may be hostile.

`text(value)` HTML-escapes (quotes included, so it is safe in attributes too), cuts long values with a
visible marker, and shows invisible characters instead of obeying them: C0/C1 control characters (NUL, ESC,
...) and the bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE and friends, which can make text read
backwards and spoof what a reader sees) become a small visible ``U+XXXX`` badge. Tabs and newlines stay
(the page shows texts with ``white-space: pre-wrap``).
"""

from __future__ import annotations

import html
import re
from typing import Any

DEFAULT_LIMIT = 600

# C0 controls but tab and newline, DEL and C1 controls, bidi embeddings/overrides/isolates and marks, the
# Arabic letter mark, the BOM / zero-width no-break space, line and paragraph separators.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u2028\u2029]")


def badge(char: str) -> str:
    """The visible stand-in of an invisible character: ``U+202E`` in a marked span."""
    return f'<span class="ctl" title="invisible character">U+{ord(char):04X}</span>'


def _escape_visible(value: str) -> str:
    out = []
    pos = 0
    for match in _HIDDEN.finditer(value):
        out.append(html.escape(value[pos : match.start()], quote=True))
        out.append(badge(match.group()))
        pos = match.end()
    out.append(html.escape(value[pos:], quote=True))
    return "".join(out)


def truncated(value: str, limit: int | None) -> tuple[str, int]:
    """(`value` cut to `limit` characters, how many were cut)."""
    if limit is None or len(value) <= limit:
        return value, 0
    return value[:limit], len(value) - limit


def text(value: Any, limit: int | None = None) -> str:
    """`value` as safe HTML: escaped, invisible characters shown, at most `limit` characters (then a visible
    "… N more characters" marker). None is an empty string."""
    if value is None:
        return ""
    raw = value if isinstance(value, str) else str(value)
    kept, cut = truncated(raw, limit)
    body = _escape_visible(kept)
    if cut:
        body += f'<span class="trunc">… [{cut:,} more characters; {len(raw):,} in all]</span>'
    return body


def attr(value: Any) -> str:
    """`value` for an HTML attribute value (always written in double quotes): escaped, controls dropped."""
    return html.escape(_HIDDEN.sub("", "" if value is None else str(value)), quote=True)


def anchor_id(value: str) -> str:
    """A safe fragment id made of letters, digits, `-` and `_` only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-") or "x"

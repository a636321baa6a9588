"""The page around the sections: one HTML file with its CSS inline, plots as data: URIs, no script and no
external resource (a Content-Security-Policy says so to the browser too, so even a string that escaped
escaping could not run or fetch anything). The layout is fluid: nothing is wider than the viewport, long
unbroken tokens wrap, and wide tables scroll inside their own container."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from seal.report.escape import attr, text
from seal.report.gather import Section
from seal.report.markup import Html, code, join

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1d1d1f;background:#f6f7f9}
header,main,footer{max-width:1120px;margin:0 auto;padding:0 16px}
header{padding-top:12px}
h1{font-size:1.6rem;margin:.4em 0}
h2{font-size:1.25rem;margin:.2em 0 .5em;display:flex;flex-wrap:wrap;gap:.5em;align-items:baseline}
h3{font-size:1.02rem;margin:1.1em 0 .4em}
h4{font-size:.8rem;margin:0 0 .2em;text-transform:uppercase;letter-spacing:.04em;color:#555}
p,dd,dt,li,summary,figcaption,code,pre,.t,.turn,.meta{overflow-wrap:anywhere;word-break:normal}
td,th{overflow-wrap:break-word}
.nw{white-space:nowrap}
section{background:#fff;border:1px solid #dfe2e6;border-radius:8px;padding:12px 18px;margin:16px 0;min-width:0}
nav ol{display:flex;flex-wrap:wrap;gap:4px 14px;list-style:none;padding:0;margin:.5em 0}
nav a{color:#1f5fa0;text-decoration:none}
.badge{font-size:.72rem;font-weight:600;border-radius:10px;padding:1px 8px;background:#e6f4ea;color:#1e6b34}
.badge.empty{background:#f1f1f1;color:#666}
.tw{overflow-x:auto;max-width:100%;margin:.4em 0}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
.ci,.n,.muted,.na{color:#667}
.n{font-size:.85em}
.empty{font-weight:600;color:#555}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f3f5;border-radius:3px;
 padding:0 3px}
pre{white-space:pre-wrap;max-height:24em;overflow:auto;background:#f6f8fa;padding:6px;border-radius:4px}
pre code{background:none;padding:0}
figure{margin:10px 0}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:.85em;color:#667}
details{margin:.3em 0}
summary{cursor:pointer}
dl.kv{display:grid;grid-template-columns:minmax(8em,max-content) minmax(0,1fr);gap:2px 12px;margin:.4em 0;
 font-size:13px}
dl.kv dt{font-weight:600}
dl.kv dd{margin:0}
.role{font-size:.75rem;border-radius:3px;padding:0 4px;background:#eee}
.role.target{background:#dcebf9;color:#164f86}
.role.spoiler{background:#fbe0de;color:#8f231f}
.pair{border:1px solid #e3e6ea;border-radius:6px;padding:8px;margin:8px 0;background:#fcfcfd;min-width:0}
.meta{font-size:.85em;color:#556;margin-bottom:4px}
.ctx{border-left:3px solid #d5d9de;padding-left:8px;margin-bottom:6px;font-size:.92em}
.sides{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}
.side{min-width:0;border-radius:4px;padding:6px}
.side.chosen{background:#eef7f0}
.side.rejected{background:#fbf0ef}
.t,.turn{white-space:pre-wrap;unicode-bidi:plaintext}
.ctl{font:10px/1 ui-monospace,monospace;background:#fde2e1;color:#a00;border-radius:3px;padding:0 2px;
 unicode-bidi:isolate}
.trunc{color:#9a5b00;font-style:italic;unicode-bidi:isolate}
.finding{margin:.6em 0 1em}
@media (max-width:720px){.sides{grid-template-columns:minmax(0,1fr)}section{padding:10px 10px}
 header,main,footer{padding:0 8px}}
"""


def section_html(section: Section, body: str) -> Html:
    badge = "ok" if section.status == "ok" else "empty"
    return Html(
        f'<section id="{attr(section.name)}" data-section="{attr(section.name)}" data-status="{attr(section.status)}">'
        f'<h2>{text(section.title)} <span class="badge {badge}">{"data" if badge == "ok" else "no data yet"}</span>'
        f"</h2>{body}</section>"
    )


def page(
    sections: Sequence[tuple[Section, str]],
    *,
    store: str,
    pairs_version: int | None,
    model: str | None,
    control: str | None,
    version: str,
) -> str:
    """The whole document."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    missing = " <span class=muted>(no data)</span>"
    toc = "".join(
        f'<li><a href="#{attr(s.name)}">{text(s.title)}</a>{"" if s.status == "ok" else missing}</li>'
        for s, _ in sections
    )
    rms = f"model {code(model)}" if model else "no reward model"
    if control:
        rms += f", control {code(control)}"
    version_text = f", pairs version {pairs_version:,}" if pairs_version is not None else ""
    body = join(section_html(s, html) for s, html in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="generator" content="seal {attr(version)}">'
        f"<title>seal report: {text(store, 120)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>seal report</h1><p>Store {code(store)}{version_text}; {rms}. Made by seal "
        f"{text(version)} on {now}.</p><nav><ol>{toc}</ol></nav></header>"
        f"<main>{body}</main>"
        "<footer><p class=muted>One self-contained file: no script, no external resource. Intervals are "
        "Wilson score intervals unless stated; every figure comes from the same analysis as the seal command "
        "named in its section.</p></footer></body></html>\n"
    )

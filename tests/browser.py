"""Render an HTML file in headless Chromium (Debian's `chromium` package) and report what a reader would get:
the DOM after load, every console message, the page's width against the viewport, and a screenshot.

The page is loaded as a copy with one extra inline script at the end of <body> that writes the widths into
a `data-probe` attribute (read back from `--dump-dom`). The copy's Content-Security-Policy admits exactly
that script by its hash, so anything else the page would run or fetch is still blocked and shows up as a
console message (Chromium logs CSP violations to the console).

    page = render(path, width=1280, screenshot=tmp / "shot.png")
    assert not page.console and page.fits
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROBE = (
    "document.body.setAttribute('data-probe',JSON.stringify({scroll:document.documentElement.scrollWidth,"
    "client:document.documentElement.clientWidth,inner:window.innerWidth,"
    "sections:Array.from(document.querySelectorAll('section[data-section]')).map(s=>[s.dataset.section,"
    "s.dataset.status,s.getBoundingClientRect().width])}))"
)
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\]\s*(.*)")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def find_chromium() -> str | None:
    """The Chromium binary: $SEAL_CHROMIUM, else /usr/bin/chromium or chromium / chromium-browser on PATH."""
    for candidate in (os.environ.get("SEAL_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@dataclass
class Rendered:
    """What Chromium made of the page."""

    dom: str
    console: list[str]
    scroll_width: int
    client_width: int
    sections: list[tuple[str, str, float]]  # (name, status, rendered width) per <section data-section>
    screenshot: Path | None
    stderr: str

    @property
    def fits(self) -> bool:
        """No horizontal overflow: the document is no wider than the viewport."""
        return self.scroll_width <= self.client_width


def probe_copy(html: str) -> str:
    """`html` with the probe script appended and admitted by hash in its Content-Security-Policy."""
    digest = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
    policy = re.search(r'(<meta http-equiv="Content-Security-Policy" content=")([^"]*)(")', html)
    if policy is None:
        raise AssertionError("the page has no Content-Security-Policy")
    allowed = policy.group(2) + f"; script-src 'sha256-{digest}'"
    html = html[: policy.start(2)] + allowed + html[policy.end(2) :]
    head, sep, tail = html.rpartition("</body>")
    if not sep:
        raise AssertionError("the page has no </body>")
    return f"{head}<script>{PROBE}</script>{sep}{tail}"


def render(
    path: Path, *, width: int = 1280, height: int = 900, screenshot: Path | None = None, timeout: float = 90
) -> Rendered:
    """Load `path` (through a probe copy) in headless Chromium at `width`×`height`."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary")
    with tempfile.TemporaryDirectory(prefix="seal-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(probe_copy(path.read_text(encoding="utf-8")), encoding="utf-8")
        args = [binary, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}", "--dump-dom"]
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        args.append(page.as_uri())
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    console = [m.group(1) for line in done.stderr.splitlines() if (m := CONSOLE.search(line))]
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    if found is None:
        raise AssertionError(f"the probe script did not run; console: {console}")
    import html as html_lib

    probe = json.loads(html_lib.unescape(found.group(1)))
    return Rendered(
        dom=done.stdout,
        console=console,
        scroll_width=int(probe["scroll"]),
        client_width=int(probe["client"]),
        sections=[(name, status, float(w)) for name, status, w in probe["sections"]],
        screenshot=screenshot if screenshot is not None and screenshot.exists() else None,
        stderr=done.stderr,
    )

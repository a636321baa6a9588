"""`seal report`: the self-contained HTML page on a real store (hh-rlhf pairs, two tiny real RMs, heuristic
and imported target labels, MiniLM embeddings, rule rewrites re-scored, stored confusing findings) salted with
adversarial pairs; its numbers against the analyses and an independent computation; escaping; the empty
store; and the page as headless Chromium renders it (console, sections, width at 1280 and 800 px)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from browser import find_chromium, render
from conftest import REPO, SHARED_DATA
from tiny_models import build_bert_rm

import seal
from seal.cli_schemas import validate_output
from seal.errors import SealError
from seal.report.escape import text

SECTION_NAMES = ["overview", "agreement", "gamma", "imprint", "reward_vectors", "robustness", "confusing", "recipes"]
HARMLESS = "\n\nHuman: {q}\n\nAssistant: {a}"
BIG = "Z" * 3000 + " " + "lorem ipsum dolor " * 58_000  # ~1 MB, an unbroken token first
# Each hostile string sits in a pair that `seal confusing` finds (identical, near-identical or contradictory),
# so the report shows its text among the example pairs.
ODD = "Attributes: \" ' ` = soh\x01 bell\x07 esc\x1b[31m red"
ADVERSARIAL = [
    ("<script>alert(1)</script> what now?", "<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("How do I close a tag?", "Type </div></section></main> done.", "Type </div></section></main> done!"),
    ("Reverse this please", "abc\u202edcba\u202c done.", "abc\u202edcba\u202c done!"),
    ('"><img src=x onerror=alert(1)>', ODD, "'><svg onload=alert(1)>"),
    ('"><img src=x onerror=alert(1)>', "'><svg onload=alert(1)>", ODD),
    ("Tell me a very long story.", BIG, "Once upon a time."),
    ("Tell me a very long story.", "Once upon a time.", BIG),
    ("Which is the capital of France?", "Paris is the capital of France.", "Lyon is the capital of France."),
    ("Which is the capital of France?", "Lyon is the capital of France.", "Paris is the capital of France."),
    ("A NUL byte, please", "nul\x00 inside", "fine"),  # quarantined by ingest (reason nul_byte)
]
FEATURE_SET = """name: targets
features:
  - {name: harmless, type: bool, role: target}
  - {name: helpful, type: bool, role: target}
"""


def _write_pairs(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w") as handle:
        for q, chosen, rejected in rows:
            line = {"chosen": HARMLESS.format(q=q, a=chosen), "rejected": HARMLESS.format(q=q, a=rejected)}
            handle.write(json.dumps(line) + "\n")
    return path


def _import_targets(store, folder: Path) -> None:
    """Target labels (harmless, helpful) from a simple, deterministic rule over the texts: `import-features`."""
    (folder / "targets.yaml").write_text(FEATURE_SET)
    rows = store.read(["pair_id", "chosen", "rejected"]).to_pylist()
    with (folder / "targets.jsonl").open("w") as handle:
        for r in rows:
            for side in ("chosen", "rejected"):
                t = r[side].lower()
                harmless = not any(w in t for w in ("kill", "steal", "drug", "gun", "hurt", "script"))
                handle.write(
                    json.dumps({"pair_id": r["pair_id"], "side": side, "harmless": harmless, "helpful": len(t) > 60})
                    + "\n"
                )
    seal.import_features(store, str(folder / "targets.jsonl"), str(folder / "targets.yaml"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A store with every kind of column the report reads, and its report."""
    store = build_store(tmp_path_factory.mktemp("report"))
    result = seal.report(store, store.path.parent / "report.html", examples=8)
    return store, result, Path(result["path"]).read_text(encoding="utf-8")


def build_store(folder: Path):
    """Real pairs and the adversarial ones; two RMs, heuristic and target labels, embeddings, a rewrite
    re-scored by both RMs, stored confusing findings."""
    store = seal.open_store(folder / "store")
    real = SHARED_DATA / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if real.exists():
        seal.ingest(store, str(real), limit=24)
    else:
        seal.ingest(store, str(REPO / "examples" / "tiny-hh.jsonl"))
    seal.ingest(
        store,
        str(_write_pairs(folder / "adversarial.jsonl", ADVERSARIAL)),
        name='evil<b>"ds"</b>\u202e',
        max_row_bytes=4_000_000,
    )
    for alias, role, seed in (("pre", "control", 0), ("post", "aligned", 1)):
        seal.score(store, str(build_bert_rm(folder / alias, seed=seed)), alias=alias, role=role, max_length=64)
    seal.label(store)
    _import_targets(store, folder)
    seal.embed(store, max_seq_length=48)
    seal.perturb(store, "punctuation:mode=exclaim", sample=8, seed=1)
    seal.confusing(store, save=True)
    return store


class Structure(HTMLParser):
    """Every start tag with its attributes, and the section elements with their nesting depth."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.sections: list[tuple[str | None, str | None, int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section":
            self.sections.append((attributes.get("data-section"), attributes.get("data-status"), len(self.stack)))
        if tag not in ("meta", "img", "br", "hr", "input", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    parser.close()
    return parser


def test_every_section_has_real_numbers(full):
    store, result, html = full
    validate_output("report", result)
    assert [s["name"] for s in result["sections"]] == SECTION_NAMES
    assert {s["status"] for s in result["sections"]} == {"ok"}, result["sections"]
    assert result["model"] == "post" and result["control"] == "pre" and result["plots"] >= 6
    page = parse(html)
    assert [(n, s) for n, s, _ in page.sections] == [(n, "ok") for n in SECTION_NAMES]
    assert {depth for *_, depth in page.sections} == {page.sections[0][2]}  # siblings: nothing broke out

    # agreement of each RM, recomputed from the stored scores (tie rule exclude: identical pairs and ties apart)
    cols = store.read(["score_post", "score_pre", "flags"]).to_pylist()
    identical = np.array([r["flags"]["identical_responses"] for r in cols])
    shown = "".join(page.text)
    for alias in ("post", "pre"):
        c = np.array([r[f"score_{alias}"]["chosen"] for r in cols])
        r = np.array([r[f"score_{alias}"]["rejected"] for r in cols])
        decided = ~identical & (c != r)
        agree = int(((c > r) & decided).sum())
        assert f"{100 * agree / decided.sum():.1f}% [" in shown and f"{agree}/{int(decided.sum())}" in shown
    res = seal.resistance(store).to_json()
    regimes = res["regimes"]
    for name in ("stayed_aligned", "got_aligned", "resists", "reversed"):
        p = regimes[name]
        assert (
            f"{100 * p['share']:.1f}% [{100 * p['ci_low']:.1f}%, {100 * p['ci_high']:.1f}%] {p['count']}/{p['n']}"
            in shown
        )
    # γ × regime, imprint of both RMs, robustness and the confusing findings with their example pairs
    gamma = seal.labeler_regime(store, "post", "pre").to_json()
    assert f"{gamma['n_pairs']:,} pairs" in shown and "targets.harmless" in shown
    assert "<h3><code>post</code></h3>" in html and "<h3><code>pre</code></h3>" in html
    assert 'class="role target"' in html and 'class="role spoiler"' in html
    rob = seal.robustness(store).to_json()["results"]
    assert rob and all(r["status"] == "ok" for r in rob) and "punctuation:mode=exclaim" in shown
    kinds = {f["kind"] for f in seal.findings(store)}
    assert {"identical", "near_identical", "contradictory", "cluster"} <= kinds
    assert "Contradictions: near-duplicate pairs with opposite preferences" in shown
    assert "Paris is the capital of France." in shown and "Clusters ranked by excess resistance" in shown
    for column in ("score_post", "features_targets", "emb_pair", "variants_punctuation", "cluster"):
        assert f"<td>{column}</td>" in html


def test_scatter_regimes_and_angles_match_the_resistance_analysis(full):
    """The report's per-pair regimes (scatter colours) and θ (histogram) are recomputed from the score columns;
    they must give the counts `seal resistance` reports."""
    store, _, _ = full
    from seal.analysis.resistance import resistance
    from seal.report.gather import Options, reward_vectors

    result = resistance(store)
    section = reward_vectors(store, result, Options())
    regimes = section.data["regimes"]
    expected = result.to_json()["regimes"]
    for name in ("stayed_aligned", "got_aligned", "resists", "reversed"):
        assert int((regimes == name).sum()) == expected[name]["count"], name
    theta = section.data["theta"]
    shift = result.to_json()["reward_vectors"]["shift"]
    assert len(theta) == shift["n"] and np.mean(theta) == pytest.approx(shift["mean"], abs=1e-9)


def test_dataset_text_is_escaped_and_cut(full):
    _, result, html = full
    page = parse(html)
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed", "svg", "link", "base")]
    for tag, attributes in page.tags:
        assert not [a for a in attributes if a.startswith("on")], (tag, attributes)
        for key in ("src", "href"):
            value = attributes.get(key)
            assert value is None or value.startswith(("data:image/png;base64,", "#")), (tag, key, value[:80])
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        and "Type &lt;/div&gt;&lt;/section&gt;&lt;/main&gt; done." in html
    )
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "evil&lt;b&gt;&quot;ds&quot;&lt;/b&gt;" in html
    for raw in ("\u202e", "\x00", "\x01", "\x07", "\x1b"):
        assert raw not in html
    assert ">U+202E</span>" in html and ">U+0001</span>" in html and ">U+001B</span>" in html
    assert "<td>nul_byte</td>" in html  # the quarantine by reason
    assert "more characters; 1,0" in html  # the 1 MB response, cut with a visible marker
    assert result["bytes"] < 1_500_000, result["bytes"]


def test_escape_rules():
    assert text('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    assert text("a\u202eb") == 'a<span class="ctl" title="invisible character">U+202E</span>b'
    assert text("tab\tand\nnewline") == "tab\tand\nnewline"
    cut = text("x" * 50, 10)
    assert cut.startswith("x" * 10 + '<span class="trunc">') and "40 more characters; 50 in all" in cut
    assert text(None) == "" and text(3) == "3"


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A store with pairs only."""
    folder = tmp_path_factory.mktemp("bare")
    store = seal.open_store(folder / "store")
    seal.ingest(store, str(REPO / "examples" / "tiny-hh.jsonl"))
    return store, folder


def test_a_store_with_pairs_only_says_what_fills_each_section(bare, run_cli):
    store, folder = bare
    out = folder / "bare.html"
    done = run_cli("report", "--out", out, "--json", store=store.path)
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    validate_output("report", result)
    status = {s["name"]: s for s in result["sections"]}
    assert [s["name"] for s in result["sections"]] == SECTION_NAMES
    assert status["overview"]["status"] == status["recipes"]["status"] == "ok"
    fills = {
        "agreement": "seal score",
        "gamma": "seal label --labeler llm",
        "imprint": "seal score",
        "reward_vectors": "seal score",
        "robustness": "seal perturb",
        "confusing": "seal confusing",
    }
    for name, command in fills.items():
        assert status[name]["status"] == "empty" and command in status[name]["hint"], status[name]
    html = out.read_text()
    page = parse(html)
    assert [n for n, _, _ in page.sections] == SECTION_NAMES and result["plots"] == 0
    assert html.count("No data for this section yet. Filled by") == 6
    human = run_cli("report", "--out", out, store=store.path)
    assert human.exit_code == 0 and "2 of 8 sections with data" in human.stdout and "seal perturb" in human.stdout


def test_bad_input_is_one_line_and_writes_nothing(full, tmp_path, run_cli):
    store, _, _ = full
    missing = run_cli("report", "--out", tmp_path / "r.html", store=tmp_path / "nowhere")
    assert missing.exit_code != 0 and missing.stderr.startswith("Error:") and len(missing.stderr.splitlines()) == 1
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(SealError, match="is a folder"):
        seal.report(store, tmp_path / "dir.html")
    with pytest.raises(SealError, match="tie rule"):
        seal.report(store, tmp_path / "r.html", ties="sometimes")
    with pytest.raises(SealError, match="no scores for reward model `nope`"):
        seal.report(store, tmp_path / "r.html", model="nope")
    with pytest.raises(SealError, match="is the model itself"):
        seal.report(store, tmp_path / "r.html", model="pre", control="pre")
    assert not (tmp_path / "r.html").exists()


def test_the_page_renders_in_chromium_without_errors_or_overflow(full, bare, tmp_path):
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs it: apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    _, result, _ = full
    shot = tmp_path / "report-1280.png"
    wide = render(Path(result["path"]), width=1280, screenshot=shot)
    narrow = render(Path(result["path"]), width=800)
    for page, width in ((wide, 1280), (narrow, 800)):
        assert not page.console, f"console messages at {width}px: {page.console}"
        assert [(n, s) for n, s, _ in page.sections] == [(n, "ok") for n in SECTION_NAMES]
        assert page.fits, f"page {page.scroll_width}px wide in a {page.client_width}px viewport"
        assert all(0 < w <= page.client_width for *_, w in page.sections)
    assert wide.screenshot is not None and wide.screenshot.stat().st_size > 10_000
    with contextlib.suppress(OSError):  # for a reader of the test run
        shutil.copy(wide.screenshot, Path(tempfile.gettempdir()) / "report-screenshot.png")
    store, _ = bare
    empty = render(Path(seal.report(store, tmp_path / "bare.html")["path"]), width=800)
    assert not empty.console and empty.fits
    assert [n for n, _, _ in empty.sections] == SECTION_NAMES


def test_feature_sets_with_different_coverage_get_one_imprint_each(full, tmp_path):
    """An LLM set labelled on a sample must not shrink the imprint of the sets that label every pair: the report
    fits one regression per set, each equal to `seal.imprint(features=[set])`, and warns when texts are few."""
    from seal.report.gather import Options, feature_set_coverage
    from seal.report.gather import imprint as gather_imprint
    from seal.report.sections_rm import imprint as render_imprint

    store = seal.open_store(shutil.copytree(full[0].path, tmp_path / "store"))
    (tmp_path / "sample.yaml").write_text("name: sample\nfeatures:\n  - {name: short, type: bool, role: spoiler}\n")
    rows = store.read(["pair_id", "chosen", "rejected"]).to_pylist()[:6]
    with (tmp_path / "sample.jsonl").open("w") as handle:
        for r in rows:
            for side in ("chosen", "rejected"):
                handle.write(json.dumps({"pair_id": r["pair_id"], "side": side, "short": len(r[side]) < 80}) + "\n")
    seal.import_features(store, str(tmp_path / "sample.jsonl"), str(tmp_path / "sample.yaml"))

    coverage = feature_set_coverage(store)
    assert coverage["sample"] == 6 and coverage["heuristics"] == store.count() > 6
    section = gather_imprint(store, Options(), ["post", "pre"])
    assert "one regression per set" in section.note
    for alias in ("post", "pre"):
        regs = section.data["models"][alias]["regressions"]
        assert sorted(r["feature_set"] for r in regs) == sorted(coverage)
        for reg in regs:
            alone = seal.imprint(store, alias, features=[reg["feature_set"]], standardize=True).to_json()
            assert reg["n"] == alone["regressions"][0]["n"]
            assert [c["beta"] for c in reg["coefficients"]] == [
                c["beta"] for c in alone["regressions"][0]["coefficients"]
            ]
        assert next(r for r in regs if r["feature_set"] == "sample")["n_pairs"] == 6
    html = render_imprint(section, Options())
    assert "<h3><code>post</code> × <code>sample</code></h3>" in html
    for chunk in html.split("<h3>")[1:]:  # each regression: the warning exactly where texts < 10 per term
        n_texts, n_terms = (
            int(x.replace(",", "")) for x in re.search(r"N = ([\d,]+) texts .*?, (\d+) terms", chunk).groups()
        )
        assert ("Few texts for the terms" in chunk) == (n_texts < 10 * max(n_terms, 1)), chunk[:300]
        if "<code>sample</code>" in chunk:
            assert n_texts == 12

    # with equal coverage (the full fixture's store) the report keeps the one joint fit
    joint = gather_imprint(full[0], Options(), ["post"])
    assert [r["feature_set"] for r in joint.data["models"]["post"]["regressions"]] == [None]

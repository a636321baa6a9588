"""Rule-based perturbation ops: seeded, deterministic surface edits of a text.

Each op takes a text, a `random.Random` and its parameters and returns the edited text. An op never
touches speaker markers: rules are applied to message contents, never to a rendered transcript. Ops:

- ``typos``: character typos (swap, delete, keyboard-neighbour substitution, doubling) on letters only;
  ``rate`` per letter, at least ``min`` edits when the text has letters.
- ``case``: ``mode`` lower | upper | title | random (``random`` uppercases a ``rate`` share of words).
- ``punctuation``: ``mode`` strip (remove . , ; : ! ? except inside numbers) | exclaim (sentence-final
  periods become '!', and a text with no '!' gets one at its end) | double (sentence-final marks doubled);
  ``rate`` = share of the marks affected.
- ``whitespace``: ``mode`` extra (a ``rate`` share of spaces doubled) | newlines (a ``rate`` share of
  sentence breaks become line breaks) | collapse (every run of whitespace becomes one space).
- ``contractions``: ``mode`` expand ("don't" -> "do not") | contract ("do not" -> "don't").
- ``filler``: a filler phrase ("Well,", "Honestly,", ...) before a ``rate`` share of sentences (at least ``min``).
- ``synonyms``: a ``rate`` share of adjectives/adverbs (``pos``) replaced by a WordNet synonym of their most
  frequent sense (at least ``min``). Needs a WordNet 3.0 dict folder (Debian: `apt-get install
  --no-install-recommends wordnet-base` gives /usr/share/wordnet; or set SEAL_WORDNET_DIR).

A method is one op or a chain: ``typos:rate=0.05`` or ``typos:rate=0.02+case:mode=lower``.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from seal.errors import SealError


# -- parameters and registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None

    def coerce(self, op: str, value: Any) -> Any:
        """The value in this parameter's type, or a SealError naming the op and parameter."""
        where = f"{op}:{self.name}"
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SealError(f"{where} must be a number, got {value!r}")
            value = float(value)
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SealError(f"{where} must be an integer, got {value!r}")
        elif self.type is str and (not isinstance(value, str) or not value):
            raise SealError(f"{where} must be a non-empty string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise SealError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise SealError(f"{where} must be >= {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise SealError(f"{where} must be <= {self.high}, got {value!r}")
        return value


@dataclass(frozen=True)
class Op:
    name: str
    help: str
    params: tuple[Param, ...]
    fn: Callable[..., str]
    requires: str | None = None  # an optional resource ("wordnet")

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """All parameters, defaults filled in, checked; unknown names are an error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise SealError(
                f"op `{self.name}` has no parameter {', '.join(unknown)}",
                hint=f"parameters: {', '.join(known) or 'none'}",
            )
        return {p.name: p.coerce(self.name, given.get(p.name, p.default)) for p in self.params}

    def describe(self) -> dict[str, Any]:
        return {
            "op": self.name,
            "help": self.help,
            "params": {p.name: {"default": p.default, "help": p.help, "choices": p.choices} for p in self.params},
            "requires": self.requires,
        }


OPS: dict[str, Op] = {}


def rule_op(name: str, help: str, *params: Param, requires: str | None = None) -> Callable[[Callable], Callable]:
    """Register a rule op (a function ``fn(text, rng, **params) -> str``); names are unique."""

    def decorate(fn: Callable[..., str]) -> Callable[..., str]:
        if name in OPS:
            raise ValueError(f"rule op `{name}` is already registered")
        OPS[name] = Op(name, help, tuple(params), fn, requires)
        return fn

    return decorate


RATE = Param("rate", float, 0.05, "share of units edited", low=0.0, high=1.0)
MIN = Param("min", int, 1, "at least this many edits when the text allows any", low=0)


def _pick(rng: random.Random, n: int, rate: float, minimum: int = 0) -> list[int]:
    """Indices in range(n), each chosen with probability `rate`, topped up at random to `minimum`."""
    chosen = [i for i in range(n) if rng.random() < rate]
    if len(chosen) < min(minimum, n):
        rest = [i for i in range(n) if i not in set(chosen)]
        chosen += rng.sample(rest, min(minimum, n) - len(chosen))
    return sorted(chosen)


# -- typos --------------------------------------------------------------------------------------------
_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


@cache
def _neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for r, row in enumerate(_KEYBOARD):
        for c, ch in enumerate(row):
            near = []
            for dr in (-1, 0, 1):
                rr = r + dr
                if 0 <= rr < len(_KEYBOARD):
                    for dc in (-1, 0, 1):
                        cc = c + dc
                        if (dr or dc) and 0 <= cc < len(_KEYBOARD[rr]):
                            near.append(_KEYBOARD[rr][cc])
            out[ch] = "".join(near)
    return out


@rule_op(
    "typos",
    "character typos on letters: swap with the next letter, delete, keyboard-neighbour substitution, doubling",
    RATE,
    MIN,
)
def typos(text: str, rng: random.Random, rate: float, min: int) -> str:
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.isascii() and ch.isalpha()]
    picked = [letters[j] for j in _pick(rng, len(letters), rate, min)]
    near = _neighbours()
    for i in reversed(picked):  # right to left keeps earlier indices valid
        ch = chars[i]
        kind = rng.choice(("swap", "delete", "substitute", "double"))
        if kind == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i + 1] != ch:
            chars[i], chars[i + 1] = chars[i + 1], ch
        elif kind == "delete" and len(letters) > 1:
            del chars[i]
        elif kind == "double":
            chars.insert(i, ch)
        else:
            sub = rng.choice(near.get(ch.lower(), "e"))
            chars[i] = sub.upper() if ch.isupper() else sub
    return "".join(chars)


# -- casing -------------------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


@rule_op(
    "case",
    "casing: lower, upper, title, or random (uppercase a `rate` share of words)",
    Param("mode", str, "lower", choices=("lower", "upper", "title", "random")),
    Param("rate", float, 0.3, "share of words uppercased (mode random)", low=0.0, high=1.0),
    MIN,
)
def case(text: str, rng: random.Random, mode: str, rate: float, min: int) -> str:
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    if mode == "title":
        return _WORD.sub(lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), text)
    words = list(_WORD.finditer(text))
    picked = set(_pick(rng, len(words), rate, min))
    out, last = [], 0
    for j, m in enumerate(words):
        out.append(text[last : m.start()])
        out.append(m.group(0).upper() if j in picked else m.group(0))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


# -- punctuation --------------------------------------------------------------------------------------
_STRIP = re.compile(r"(?<!\d)[.,;:!?]|[.,;:!?](?!\d)")  # every mark except one between two digits
_SENTENCE_END = re.compile(r"(?<![.\d])([.!?])(?=\s|$)")


def _replace_some(pattern: re.Pattern[str], text: str, rng: random.Random, rate: float, fn: Callable) -> str:
    matches = list(pattern.finditer(text))
    picked = set(_pick(rng, len(matches), rate))
    out, last = [], 0
    for j, m in enumerate(matches):
        out.append(text[last : m.start()])
        out.append(fn(m) if j in picked else m.group(0))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


@rule_op(
    "punctuation",
    "punctuation: strip marks, exclaim (sentence-final periods become '!'), or double sentence-final marks",
    Param("mode", str, "exclaim", choices=("strip", "exclaim", "double")),
    Param("rate", float, 1.0, "share of the marks affected", low=0.0, high=1.0),
)
def punctuation(text: str, rng: random.Random, mode: str, rate: float) -> str:
    if mode == "strip":
        return _replace_some(_STRIP, text, rng, rate, lambda m: "")
    if mode == "double":
        return _replace_some(_SENTENCE_END, text, rng, rate, lambda m: m.group(1) * 2)
    out = _replace_some(_SENTENCE_END, text, rng, rate, lambda m: "!" if m.group(1) == "." else m.group(1))
    if "!" not in out and out.strip():
        stripped = out.rstrip()
        tail = out[len(stripped) :]
        out = (stripped[:-1] if stripped.endswith(".") else stripped) + "!" + tail
    return out


# -- whitespace ---------------------------------------------------------------------------------------
_SPACE = re.compile(r"(?<=\S) (?=\S)")
_BREAK = re.compile(r"(?<=[.!?]) (?=\S)")


@rule_op(
    "whitespace",
    "whitespace: extra (double a `rate` share of spaces), newlines (break after a `rate` share of sentences), "
    "or collapse (every whitespace run becomes one space)",
    Param("mode", str, "extra", choices=("extra", "newlines", "collapse")),
    Param("rate", float, 0.2, "share of spaces or sentence breaks edited", low=0.0, high=1.0),
    MIN,
)
def whitespace(text: str, rng: random.Random, mode: str, rate: float, min: int) -> str:
    if mode == "collapse":
        return re.sub(r"\s+", " ", text).strip()
    pattern, new = (_SPACE, "  ") if mode == "extra" else (_BREAK, "\n")
    matches = list(pattern.finditer(text))
    picked = set(_pick(rng, len(matches), rate, min))
    out, last = [], 0
    for j, m in enumerate(matches):
        out.append(text[last : m.start()])
        out.append(new if j in picked else m.group(0))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


# -- contractions -------------------------------------------------------------------------------------
_CONTRACTIONS = {
    "ain't": "is not",
    "aren't": "are not",
    "can't": "cannot",
    "couldn't": "could not",
    "didn't": "did not",
    "doesn't": "does not",
    "don't": "do not",
    "hadn't": "had not",
    "hasn't": "has not",
    "haven't": "have not",
    "he'd": "he would",
    "he'll": "he will",
    "he's": "he is",
    "here's": "here is",
    "how's": "how is",
    "i'd": "i would",
    "i'll": "i will",
    "i'm": "i am",
    "i've": "i have",
    "isn't": "is not",
    "it'd": "it would",
    "it'll": "it will",
    "it's": "it is",
    "let's": "let us",
    "mightn't": "might not",
    "mustn't": "must not",
    "shan't": "shall not",
    "she'd": "she would",
    "she'll": "she will",
    "she's": "she is",
    "shouldn't": "should not",
    "that's": "that is",
    "there's": "there is",
    "they'd": "they would",
    "they'll": "they will",
    "they're": "they are",
    "they've": "they have",
    "wasn't": "was not",
    "we'd": "we would",
    "we'll": "we will",
    "we're": "we are",
    "we've": "we have",
    "weren't": "were not",
    "what's": "what is",
    "where's": "where is",
    "who's": "who is",
    "won't": "will not",
    "wouldn't": "would not",
    "you'd": "you would",
    "you'll": "you will",
    "you're": "you are",
    "you've": "you have",
}
# Contracting is ambiguous for some expansions ("is not" -> "isn't"); keep one canonical form each.
_EXPANSIONS = {v: k for k, v in _CONTRACTIONS.items() if k not in ("ain't",)}


def _alternation(words: list[str]) -> re.Pattern[str]:
    ordered = sorted(words, key=len, reverse=True)
    body = "|".join(_word_pattern(w) for w in ordered)
    return re.compile(rf"\b(?:{body})\b", re.IGNORECASE)


def _word_pattern(word: str) -> str:
    pattern = re.escape(word).replace("'", "['’]").replace(r"\ ", r"\s+")
    if " " in word and not word.endswith(" not"):
        # "I will not" contracts to "I won't", not "I'll not".
        pattern += r"(?!\s+not\b)"
    return pattern


_EXPAND_RE = _alternation(list(_CONTRACTIONS))
_CONTRACT_RE = _alternation(list(_EXPANSIONS))


def _match_case(source: str, target: str) -> str:
    if source.isupper() and len(source) > 1:
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


@rule_op(
    "contractions",
    'contractions: expand ("don\'t" -> "do not") or contract ("do not" -> "don\'t")',
    Param("mode", str, "expand", choices=("expand", "contract")),
    Param("rate", float, 1.0, "share of the candidates edited", low=0.0, high=1.0),
)
def contractions(text: str, rng: random.Random, mode: str, rate: float) -> str:
    if mode == "expand":

        def swap(m: re.Match[str]) -> str:
            key = m.group(0).lower().replace("’", "'")
            new = _CONTRACTIONS[key]
            if new.startswith("i "):  # the pronoun I stays uppercase
                new = "I" + new[1:]
            return _match_case(m.group(0), new)

        return _replace_some(_EXPAND_RE, text, rng, rate, swap)

    def join(m: re.Match[str]) -> str:
        key = re.sub(r"\s+", " ", m.group(0).lower())
        new = _EXPANSIONS[key]
        if new.startswith("i'"):
            new = "I" + new[1:]
        return _match_case(m.group(0), new)

    return _replace_some(_CONTRACT_RE, text, rng, rate, join)


# -- filler phrases -----------------------------------------------------------------------------------
FILLERS = ("Well", "Honestly", "Basically", "To be honest", "You know", "I mean", "Actually")
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?])\s+)(?=[A-Za-z])")


@rule_op(
    "filler",
    "filler phrases (Well, Honestly, ...) before a `rate` share of sentences",
    Param("rate", float, 0.3, "share of sentences that get a filler", low=0.0, high=1.0),
    MIN,
    Param("phrases", str, "|".join(FILLERS), "fillers separated by | (a comma follows each)"),
)
def filler(text: str, rng: random.Random, rate: float, min: int, phrases: str) -> str:
    options = [p.strip() for p in phrases.split("|") if p.strip()]
    starts = [m.end() for m in _SENTENCE_START.finditer(text)]
    picked = _pick(rng, len(starts), rate, min)
    out = text
    for j in reversed(picked):
        at = starts[j]
        rest = out[at:]
        word = re.match(r"[A-Za-z]+(?:['’][A-Za-z]+)?", rest)
        if word and not _keeps_capital(word.group(0), text):
            rest = rest[:1].lower() + rest[1:]
        out = out[:at] + rng.choice(options) + ", " + rest
    return out


def _keeps_capital(word: str, text: str) -> bool:
    """The pronoun I, and words written capitalised inside a sentence too (likely proper nouns)."""
    if word == "I" or word.startswith(("I'", "I’")) or not word[:1].isupper():
        return True
    return re.search(rf"[a-z,;:] +{re.escape(word)}\b", text) is not None


# -- synonyms (WordNet) -------------------------------------------------------------------------------
WORDNET_HINT = (
    "install a WordNet 3.0 dict folder: `apt-get install --no-install-recommends wordnet-base` (Debian/Ubuntu, "
    "/usr/share/wordnet), or set SEAL_WORDNET_DIR to a folder with index.adj/data.adj (e.g. nltk_data/corpora/wordnet)"
)
_POS_FILES = {"adj": "adj", "adv": "adv", "noun": "noun", "verb": "verb"}


def wordnet_dir() -> Path | None:
    """The WordNet dict folder: $SEAL_WORDNET_DIR, /usr/share/wordnet, or nltk_data/corpora/wordnet."""
    candidates = [os.environ.get("SEAL_WORDNET_DIR")]
    candidates += ["/usr/share/wordnet"]
    for root in [*os.environ.get("NLTK_DATA", "").split(os.pathsep), str(Path.home() / "nltk_data")]:
        if root:
            candidates.append(str(Path(root) / "corpora" / "wordnet"))
    for c in candidates:
        if c and (Path(c) / "index.adj").is_file() and (Path(c) / "data.adj").is_file():
            return Path(c)
    return None


class WordNet:
    """A minimal reader of WordNet 3.0 dict files: the synonyms of a word's most frequent sense."""

    def __init__(self, root: Path):
        self.root = root
        self._index: dict[str, dict[str, int]] = {}
        self._synonyms: dict[tuple[str, str], tuple[str, ...]] = {}

    def _first_sense(self, pos: str) -> dict[str, int]:
        if pos not in self._index:
            first: dict[str, int] = {}
            with open(self.root / f"index.{_POS_FILES[pos]}", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith(" "):
                        continue  # licence header
                    parts = line.split()
                    # lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset...
                    p_cnt = int(parts[3])
                    offsets = parts[4 + p_cnt + 2 :]
                    if offsets:
                        first[parts[0]] = int(offsets[0])
            self._index[pos] = first
        return self._index[pos]

    def has(self, word: str, pos: str) -> bool:
        return word.lower() in self._first_sense(pos)

    def synonyms(self, word: str, pos: str) -> tuple[str, ...]:
        key = (word.lower(), pos)
        if key in self._synonyms:
            return self._synonyms[key]
        offset = self._first_sense(pos).get(word.lower())
        out: tuple[str, ...] = ()
        if offset is not None:
            with open(self.root / f"data.{_POS_FILES[pos]}", "rb") as fh:
                fh.seek(offset)
                parts = fh.readline().decode("utf-8").split()
            count = int(parts[3], 16)
            lemmas = [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]) for i in range(count)]
            out = tuple(
                dict.fromkeys(
                    w for w in lemmas if w.isalpha() and w.lower() != word.lower() and w.islower()
                )  # one-word, common-noun-like forms only
            )
        self._synonyms[key] = out
        return out


@cache
def load_wordnet() -> WordNet:
    root = wordnet_dir()
    if root is None:
        raise SealError("the `synonyms` op needs WordNet, which was not found", hint=WORDNET_HINT)
    return WordNet(root)


@rule_op(
    "synonyms",
    "WordNet synonyms (most frequent sense) for a `rate` share of the adjectives/adverbs",
    Param("rate", float, 0.2, "share of the candidate words replaced", low=0.0, high=1.0),
    MIN,
    Param("pos", str, "adj,adv", "parts of speech to replace: comma-separated of adj, adv, noun, verb"),
    requires="wordnet",
)
def synonyms(text: str, rng: random.Random, rate: float, min: int, pos: str) -> str:
    wn = load_wordnet()
    kinds = [p.strip() for p in pos.split(",") if p.strip()]
    bad = [p for p in kinds if p not in _POS_FILES]
    if bad:
        raise SealError(f"synonyms:pos has unknown parts of speech {', '.join(bad)}", hint="use adj, adv, noun, verb")
    words = [m for m in re.finditer(r"[A-Za-z]{3,}", text) if m.group(0).lower() not in _STOPWORDS]
    candidates = []
    for m in words:
        # The first listed part of speech the word has decides its synonyms.
        known = [p for p in kinds if wn.has(m.group(0), p)]
        options = wn.synonyms(m.group(0), known[0]) if known else ()
        if options:
            candidates.append((m, options))
    picked = set(_pick(rng, len(candidates), rate, min))
    out, last = [], 0
    for j, (m, options) in enumerate(candidates):
        out.append(text[last : m.start()])
        out.append(_match_case(m.group(0), rng.choice(options)) if j in picked else m.group(0))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


_STOPWORD_TEXT = (
    "the and but for not all any are was were has have had can could would should will shall may might must "
    "you your yours she her his him its our ours they them their this that these those there here then than "
    "what which who whom whose when where why how also just only very too more most less least much many some "
    "such own same other else ever never now well yes okay sure please"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


# -- chains -------------------------------------------------------------------------------------------
def parse_value(raw: str) -> Any:
    text = raw.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_op(item: str) -> tuple[str, dict[str, Any]]:
    """``typos:rate=0.05,min=2`` -> ("typos", {"rate": 0.05, "min": 2}) (values parsed, not yet checked)."""
    name, _, rest = item.strip().partition(":")
    params: dict[str, Any] = {}
    for part in (p for p in rest.split(",") if p.strip()):
        if "=" not in part:
            raise SealError(f"bad parameter `{part}` in `{item}`", hint="write OP:KEY=VALUE,KEY=VALUE")
        key, value = part.split("=", 1)
        params[key.strip()] = parse_value(value)
    return name.strip(), params


@dataclass(frozen=True)
class RuleChain:
    """One op or a chain of ops with every parameter resolved; applying it is a pure function of
    (text, key), the key carrying the seed and the text's identity."""

    steps: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]

    @classmethod
    def parse(cls, method: str, params: Mapping[str, Any] | None = None) -> RuleChain:
        """From ``op[:k=v,...][+op...]``; `params` (the spec's `params`) apply to a single-op method."""
        parts = [parse_op(p) for p in method.split("+")]
        if params and len(parts) > 1:
            raise SealError(f"`params` cannot apply to the chain `{method}`", hint="give each op its parameters inline")
        steps = []
        for name, given in parts:
            if name not in OPS:
                raise SealError(f"unknown perturbation op `{name}`", hint=f"ops: {', '.join(OPS)}, llm")
            merged = {**given, **(params or {})}
            resolved = OPS[name].resolve(merged)
            if OPS[name].requires == "wordnet":
                load_wordnet()
            steps.append((name, tuple(sorted(resolved.items()))))
        return cls(tuple(steps))

    def canonical(self) -> str:
        """The method with every parameter spelled out, e.g. ``typos:min=1,rate=0.05``."""

        def fmt(v: Any) -> str:
            return str(v).lower() if isinstance(v, bool) else str(v)

        return "+".join(f"{name}:" + ",".join(f"{k}={fmt(v)}" for k, v in params) for name, params in self.steps)

    def default_name(self) -> str:
        return "_".join(name for name, _ in self.steps)

    def params(self) -> list[dict[str, Any]]:
        return [{"op": name, "params": dict(params)} for name, params in self.steps]

    def apply(self, text: str, key: str) -> str:
        for i, (name, params) in enumerate(self.steps):
            rng = random.Random(f"{key}|{i}|{name}")
            text = OPS[name].fn(text, rng, **dict(params))
        return text

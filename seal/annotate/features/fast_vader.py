"""VADER's compound sentiment score, the same numbers as vaderSentiment 3.3.2, several times faster.

vaderSentiment's `SentimentIntensityAnalyzer.polarity_scores` lower-cases every word of the text again for
each sentiment word it checks (the negation and idiom checks rebuild the whole lower-cased word list), and
walks the text character by character looking for emojis: quadratic in the words of a text, and about 0.3 ms
per hh-rlhf response. `FastVader` runs the same rules on one lower-cased word list per text and skips the
emoji walk when no emoji character occurs. It subclasses the library's analyzer (same lexicons, same
`_but_check` and `score_valence`) and repeats its arithmetic in the same order, so its scores are equal to
the library's, not merely close (tests/test_scale_paths.py checks every real hh-rlhf response).

The rules are those of vaderSentiment 3.3.2 (`RULES_VERSION`); with any other installed version
`analyzer()` returns the library's own analyzer.
"""

from __future__ import annotations

from string import punctuation
from typing import Any

RULES_VERSION = "3.3.2"


def analyzer() -> Any:
    """A VADER analyzer with `polarity_scores`: FastVader when the installed vaderSentiment is the version
    its rules repeat, else the library's own."""
    from importlib.metadata import version

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    if version("vaderSentiment") != RULES_VERSION:
        return SentimentIntensityAnalyzer()
    return _fast_class()()


def _fast_class() -> type:
    """The FastVader class (built on first use: vaderSentiment is imported only when sentiment is asked for)."""
    from vaderSentiment import vaderSentiment as V

    negate = frozenset(V.NEGATE)
    booster = V.BOOSTER_DICT
    special = V.SPECIAL_CASES
    n_scalar, c_incr = V.N_SCALAR, V.C_INCR

    def negated(word: str) -> bool:
        # vaderSentiment's negated([word]): the word (lower-cased once more) is a negation or holds n't
        w = str(word).lower()
        return w in negate or "n't" in w

    class FastVader(V.SentimentIntensityAnalyzer):  # type: ignore[misc]
        """vaderSentiment's analyzer with a linear-time `polarity_scores` (identical scores)."""

        def __init__(self) -> None:
            super().__init__()
            # only one-character keys can match: the library compares the text character by character
            self.emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)

        def polarity_scores(self, text: str) -> dict[str, float]:
            if not self.emoji_chars.isdisjoint(text):
                text = self._describe_emojis(text)
            text = text.strip()
            # SentiText: words with surrounding punctuation stripped unless that leaves 2 characters or fewer
            split = text.split()
            stripped = [w.strip(punctuation) for w in split]
            words = [w if len(s) <= 2 else s for w, s in zip(split, stripped, strict=True)]
            caps = sum(1 for w in words if w.isupper())
            is_cap_diff = 0 < len(words) - caps < len(words)
            lower = [w.lower() for w in words]
            lexicon = self.lexicon
            last = len(words) - 1
            sentiments: list[Any] = [0] * len(words)  # boosters, "kind of" and words outside the lexicon: 0
            for i in [i for i, w in enumerate(lower) if w in lexicon]:
                if lower[i] in booster or (i < last and lower[i] == "kind" and lower[i + 1] == "of"):
                    continue
                sentiments[i] = self._valence(words, lower, i, is_cap_diff)
            if "but" in lower:
                sentiments = self._but_check(words, sentiments)
            return self.score_valence(sentiments, text)

        def _describe_emojis(self, text: str) -> str:
            """The library's emoji replacement, character by character (only run when an emoji occurs)."""
            out = ""
            prev_space = True
            for ch in text:
                if ch in self.emojis:
                    if not prev_space:
                        out += " "
                    out += self.emojis[ch]
                    prev_space = False
                else:
                    out += ch
                    prev_space = ch == " "
            return out

        def _valence(self, words: list[str], lower: list[str], i: int, is_cap_diff: bool) -> float:
            """`sentiment_valence` of the lexicon word at i, on the precomputed lower-cased words."""
            lexicon = self.lexicon
            item_lower = lower[i]
            valence = lexicon[item_lower]
            if item_lower == "no" and i != len(words) - 1 and lower[i + 1] in lexicon:
                valence = 0.0
            if (
                (i > 0 and lower[i - 1] == "no")
                or (i > 1 and lower[i - 2] == "no")
                or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ["or", "nor"])
            ):
                valence = lexicon[item_lower] * n_scalar
            if words[i].isupper() and is_cap_diff:
                if valence > 0:
                    valence += c_incr
                else:
                    valence -= c_incr
            for start_i in range(0, 3):
                if i > start_i and lower[i - (start_i + 1)] not in lexicon:
                    s = V.scalar_inc_dec(words[i - (start_i + 1)], valence, is_cap_diff)
                    if start_i == 1 and s != 0:
                        s = s * 0.95
                    if start_i == 2 and s != 0:
                        s = s * 0.9
                    valence = valence + s
                    valence = _negation(valence, lower, start_i, i)
                    if start_i == 2:
                        valence = _idioms(valence, lower, i)
            return _least(valence, lower, i, lexicon)

    def _negation(valence: float, lower: list[str], start_i: int, i: int) -> float:
        """`_negation_check` on the lower-cased words."""
        if start_i == 0 and negated(lower[i - 1]):
            valence = valence * n_scalar
        if start_i == 1:
            if lower[i - 2] == "never" and (lower[i - 1] == "so" or lower[i - 1] == "this"):
                valence = valence * 1.25
            elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
                valence = valence
            elif negated(lower[i - 2]):
                valence = valence * n_scalar
        if start_i == 2:
            if (lower[i - 3] == "never" and (lower[i - 2] == "so" or lower[i - 2] == "this")) or (
                lower[i - 1] == "so" or lower[i - 1] == "this"
            ):
                valence = valence * 1.25
            elif lower[i - 3] == "without" and (lower[i - 2] == "doubt" or lower[i - 1] == "doubt"):
                valence = valence
            elif negated(lower[i - 3]):
                valence = valence * n_scalar
        return valence

    def _idioms(valence: float, lower: list[str], i: int) -> float:
        """`_special_idioms_check` on the lower-cased words."""
        onezero = f"{lower[i - 1]} {lower[i]}"
        twoonezero = f"{lower[i - 2]} {lower[i - 1]} {lower[i]}"
        twoone = f"{lower[i - 2]} {lower[i - 1]}"
        threetwoone = f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}"
        threetwo = f"{lower[i - 3]} {lower[i - 2]}"
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in special:
                valence = special[seq]
                break
        if len(lower) - 1 > i:
            zeroone = f"{lower[i]} {lower[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if len(lower) - 1 > i + 1:
            zeroonetwo = f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in booster:
                valence = valence + booster[n_gram]
        return valence

    def _least(valence: float, lower: list[str], i: int, lexicon: dict[str, float]) -> float:
        """`_least_check` on the lower-cased words."""
        if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            if lower[i - 2] != "at" and lower[i - 2] != "very":
                valence = valence * n_scalar
        elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            valence = valence * n_scalar
        return valence

    return FastVader

"""Byte-level text statistics of a whole batch at once: lengths, words, sentences, syllables and Flesch
reading ease from numpy masks over the UTF-8 bytes of an Arrow string array (no Python loop per text), and
RE2 pattern matches through `pyarrow.compute`.

Syllables are seal's own estimate (vowel groups, minus a silent final ``e`` and silent ``-es`` / ``-ed``, at
least one per word): textstat's syllable counts need NLTK's cmudict download. A text without words has no
readability (NaN).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
            texts = as_array(texts)
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


def as_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
    return column

"""Token counts of BERT-style WordPiece tokenizers (MiniLM's among them) without encoding each text.

`tokenizers` spends most of its time per text on bookkeeping a count does not need (alignments of every
normalisation step, offsets, Encoding objects): about 0.17 ms per hh-rlhf response. For a tokenizer whose
pipeline is BertNormalizer (lower-casing, clean_text) → BertPreTokenizer → WordPiece, the token count of an
ASCII text is the sum over its words of each word's WordPiece count, where the words are what the pipeline
makes of ASCII: control characters dropped, letters lower-cased, split at whitespace, and every punctuation
character a word of its own. `WordPieceCounter` does that with Arrow compute over the whole batch and asks
the tokenizer's own WordPiece model once per distinct word (cached across batches). The same holds for the
punctuation marks of `UNICODE_PUNCTUATION`, which the pipeline also keeps as words of their own.

Texts it does not cover go through `encode_batch` as before: any text with a non-ASCII character other than
a few punctuation marks (curly quotes, dashes, bullet, ellipsis: `UNICODE_PUNCTUATION`; Unicode
normalisation, accents and CJK are the tokenizer's business) and any text holding an added token
(``[CLS]``, ``[MASK]``, ...), which the tokenizer matches before normalising. tests/test_scale_paths.py checks
the counts against `encode_batch` on real rows and on random ASCII with every punctuation and control
character.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ASCII control characters BertNormalizer(clean_text) drops (\t, \n and \r become spaces instead)
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Non-ASCII punctuation common in English text (quotes, dashes, bullet, ellipsis): Unicode category P*,
# without case, accents or a canonical decomposition, so the normaliser keeps them as they are
UNICODE_PUNCTUATION = "\u2018\u2019\u201c\u201d\u2013\u2014\u2022\u2026\u00ab\u00bb\u00b7"
_UNICODE_PUNCTUATION = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in UNICODE_PUNCTUATION) + "]"
# punctuation (ASCII's as Rust's char::is_ascii_punctuation, and the above): BertPreTokenizer isolates each
_PUNCTUATION = "([!-/:-@\\[-`{-~" + _UNICODE_PUNCTUATION[1:-1] + "])"
WORD_CACHE_LIMIT = 1_000_000  # distinct words remembered across batches


def supports(config: dict[str, Any]) -> bool:
    """True when a tokenizer.json describes the pipeline this module counts exactly."""
    normalizer = config.get("normalizer") or {}
    model = config.get("model") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("lowercase") is True
        and (config.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
        and model.get("type") == "WordPiece"
    )


class WordPieceCounter:
    """Token counts (no special tokens) for a `tokenizers.Tokenizer` whose tokenizer.json passes `supports`."""

    def __init__(self, tokenizer: Any, config: dict[str, Any]):
        self.tokenizer = tokenizer
        self.added = sorted({t["content"] for t in config.get("added_tokens") or [] if t.get("content")})
        self.word_tokens: dict[str, int] = {}

    @classmethod
    def for_file(cls, tokenizer: Any, path: Path) -> WordPieceCounter | None:
        """A counter for the tokenizer loaded from `path`, or None when its pipeline is another one."""
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tokenizer, config) if supports(config) else None

    def counts(self, texts: list[str]) -> np.ndarray:
        """Tokens per text, as `len(tokenizer.encode(text, add_special_tokens=False))`."""
        out = np.zeros(len(texts), dtype=np.int64)
        if not texts:
            return out
        arr = pa.array(texts, pa.large_string())
        fast = pc.string_is_ascii(pc.replace_substring_regex(arr, _UNICODE_PUNCTUATION, ""))
        for token in self.added:
            fast = pc.and_(fast, pc.invert(pc.match_substring(arr, token, ignore_case=True)))
        fast_mask = np.asarray(fast.to_numpy(zero_copy_only=False), dtype=bool)
        fast_rows = np.flatnonzero(fast_mask)
        if len(fast_rows):
            out[fast_rows] = self._ascii_counts(arr.filter(fast))
        slow_rows = np.flatnonzero(~fast_mask)
        if len(slow_rows):
            encoded = self.tokenizer.encode_batch([texts[i] for i in slow_rows.tolist()], add_special_tokens=False)
            out[slow_rows] = [len(e) for e in encoded]
        return out

    def _ascii_counts(self, texts: pa.Array) -> np.ndarray:
        cleaned = pc.replace_substring_regex(texts, _CONTROL, "")
        spaced = pc.replace_substring_regex(pc.ascii_lower(cleaned), _PUNCTUATION, r" \1 ")
        words = pc.ascii_split_whitespace(spaced)
        flat = pc.list_flatten(words)
        if not len(flat):
            return np.zeros(len(texts), dtype=np.int64)
        encoded = pc.dictionary_encode(flat)
        per_word = self._word_counts(encoded.dictionary.to_pylist())
        tokens = per_word[np.asarray(encoded.indices.to_numpy(zero_copy_only=False))]
        parents = np.asarray(pc.list_parent_indices(words).to_numpy(zero_copy_only=False))
        return np.bincount(parents, weights=tokens, minlength=len(texts)).astype(np.int64)

    def _word_counts(self, words: list[str]) -> np.ndarray:
        """WordPiece tokens of each word (one model call per word never seen before)."""
        cache, model = self.word_tokens, self.tokenizer.model
        if len(cache) > WORD_CACHE_LIMIT:
            cache.clear()
        for word in words:
            if word not in cache:
                cache[word] = len(model.tokenize(word))
        return np.fromiter((cache[w] for w in words), dtype=np.int64, count=len(words))

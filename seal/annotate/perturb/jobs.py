"""What a rewriter is given and gives back: `Job` (one side of a pair to rewrite), `Outcome` (the rewrite, or why
it failed) and the `Rewriter` protocol that rule ops and the LLM rewriter implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Job:
    """One text to rewrite: a side of a pair (its context and final response)."""

    pair_id: str
    side: str
    context: tuple[Mapping[str, str], ...]
    response: str
    target: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.seed}|{self.pair_id}|{self.side}"


@dataclass
class Outcome:
    """A rewrite: the new response (and context, for target conversation), or why it failed."""

    response: str | None
    context: list[dict[str, str]] | None = None
    error: str | None = None
    attempts: int = 1
    cached: int = 0


class Rewriter(Protocol):
    """Turns jobs into outcomes, one per job, in order. `recipe_params` determine the variants (fingerprinted);
    `provenance` is recorded only."""

    kind: str
    method: str  # canonical method string stored in each variant

    def default_name(self) -> str: ...

    def recipe_params(self) -> dict[str, Any]: ...

    def provenance(self) -> dict[str, Any]: ...

    def chunk_size(self) -> int: ...

    def rewrite(self, jobs: Sequence[Job]) -> list[Outcome]: ...

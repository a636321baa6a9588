"""List prices of common hosted LLMs, for the cost that `seal label --labeler llm --dry-run` promises.

USD per million tokens (input, output) at the standard (synchronous) rate, as published by OpenAI and
Anthropic on PRICES_AS_OF. Prices change: a user's own figures win (`--price-in/--price-out`, a
`--prices` file or a spec's `prices` section). `cost_usd` applies the Batch API discount.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seal.errors import SealError

PRICES_AS_OF = "2025-08-01"
BATCH_DISCOUNT = 0.5  # the Batch API bills half the synchronous price
USER = "user"  # the source of a price given by the user (--price-in/--price-out, --prices, a spec's `prices`)

# model id -> (input, output) USD per 1M tokens: list prices as of PRICES_AS_OF.
LIST_PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    # Anthropic (its OpenAI-compatible endpoint takes the same model ids)
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
}

# A dated snapshot or alias of a listed model: gpt-4o-2024-08-06, claude-3-5-haiku-20241022, ...-latest.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest|preview)$")


def list_price(model: str) -> tuple[str, dict[str, float]] | None:
    """(the listed id, {input, output}) for a model id, its dated snapshots and a `provider/` prefix."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for candidate in (name, _SNAPSHOT.sub("", name)):
        if candidate in LIST_PRICES:
            price_in, price_out = LIST_PRICES[candidate]
            return candidate, {"input": price_in, "output": price_out}
    return None


def resolve_price(
    model: str,
    prices: Mapping[str, Any] | None = None,
    price_in: float | None = None,
    price_out: float | None = None,
) -> tuple[dict[str, float] | None, str | None]:
    """The price of `model` in USD per million tokens ({input, output}) and where it came from (`user`,
    or `list price of MODEL as of DATE`).

    `price_in`/`price_out` (the command line) win over `prices` (a user's table: exact model id), which
    wins over the list prices. None when no price is known; an error when only one side is known."""
    user = (prices or {}).get(model)
    listed = list_price(model)
    base: dict[str, float] | None = None
    source: str | None = None
    if user is not None:
        base, source = {k: float(v) for k, v in user.items()}, USER
    elif listed is not None:
        base, source = listed[1], f"list price of {listed[0]} as of {PRICES_AS_OF}"
    if price_in is None and price_out is None:
        return base, source
    merged = dict(base or {})
    if price_in is not None:
        merged["input"] = float(price_in)
    if price_out is not None:
        merged["output"] = float(price_out)
    missing = [side for side in ("input", "output") if side not in merged]
    if missing:
        flag = "--price-in" if missing[0] == "input" else "--price-out"
        raise SealError(f"no {missing[0]} price known for `{model}`", hint=f"pass {flag} too (USD per million tokens)")
    return merged, USER


def cost_usd(price: Mapping[str, Any] | None, input_tokens: int, output_tokens: int, batch: bool) -> float | None:
    """USD for these tokens at `price` ({input, output} per million), halved for the Batch API; None without
    a price."""
    if price is None:
        return None
    cost = (input_tokens * float(price.get("input", 0)) + output_tokens * float(price.get("output", 0))) / 1e6
    return round(cost * (BATCH_DISCOUNT if batch else 1.0), 6)


def load_prices(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A price table from a YAML/JSON file: {model: {input, output}} (USD per million tokens), or an
    experiment spec whose `prices` section holds one."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SealError(f"cannot read the price table {path}: {err}") from None
    if isinstance(document, Mapping) and isinstance(document.get("prices"), Mapping):
        document = document["prices"]
    if not isinstance(document, Mapping) or not all(
        isinstance(v, Mapping) and set(v) <= {"input", "output"} and all(isinstance(x, int | float) for x in v.values())
        for v in document.values()
    ):
        raise SealError(
            f"{path} is not a price table", hint="write {model: {input: USD per 1M tokens, output: USD per 1M tokens}}"
        )
    return {str(k): dict(v) for k, v in document.items()}

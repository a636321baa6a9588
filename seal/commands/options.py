"""Options that several commands share, declared once (as sqlite-utils does with its output options): the
same name, type, default and help wherever they appear."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from seal.engines.device import DEVICES, DTYPES

F = Callable[..., Any]

DEFAULT_CONFIDENCE = 0.95
# Bonferroni: the adjustment the SEAL paper used for its imprint tables; Holm is uniformly more powerful, BH
# controls the false discovery rate instead. One default for every analysis that adjusts p-values.
DEFAULT_CORRECTION = "bonferroni"
CORRECTIONS = ("bonferroni", "holm", "bh", "none")


def device_option(help_suffix: str = "") -> Callable[[F], F]:
    """`--device auto|cpu|cuda|mps` (never part of a recipe)."""
    return click.option(
        "--device",
        type=click.Choice(DEVICES),
        default="auto",
        show_default=True,
        help="Where the model runs (auto: cuda, then mps, then cpu; not part of the recipe)." + help_suffix,
    )


def dtype_option(help_suffix: str = "") -> Callable[[F], F]:
    """`--dtype auto|float32|bfloat16|float16` (part of the recipe)."""
    return click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        help="auto = float32, the same numbers on every device (part of the recipe)." + help_suffix,
    )


class BatchSize(click.ParamType):
    """A positive integer or `auto`."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if value is None or value == "auto":
            return "auto"
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a positive integer nor auto", param, ctx)
        if number < 1:
            self.fail(f"{value!r} is not a positive integer", param, ctx)
        return number


def batch_size_option(default: int | str = "auto", help_text: str | None = None) -> Callable[[F], F]:
    """`--batch-size N|auto`."""
    return click.option(
        "--batch-size",
        type=BatchSize(),
        default=default,
        show_default=True,
        help=help_text or "Items per batch at most, or auto (batches also stay under a padded-token budget).",
    )


def confidence_option(help_text: str = "Confidence level of the intervals.") -> Callable[[F], F]:
    """`--confidence LEVEL` (0.5–0.999, default 0.95): one name for the level of every interval."""
    return click.option(
        "--confidence",
        type=click.FloatRange(0.5, 0.999),
        default=DEFAULT_CONFIDENCE,
        show_default=True,
        help=help_text,
    )


class Correction(click.Choice):
    """One of CORRECTIONS; `fdr_bh` (statsmodels' name, which `seal imprint` took before) is read as `bh`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert("bh" if value == "fdr_bh" else value, param, ctx)


def correction_option(help_text: str = "Multiple-testing adjustment of the p-values.") -> Callable[[F], F]:
    """`--correction bonferroni|holm|bh|none` with one default everywhere."""
    return click.option(
        "--correction",
        type=Correction(CORRECTIONS),
        default=DEFAULT_CORRECTION,
        show_default=True,
        help=help_text,
    )


def llm_endpoint_options(prefix_help: str = "") -> Callable[[F], F]:
    """The OpenAI-compatible endpoint, the same for the LLM labeler and the LLM rewriter: `--llm-model`,
    `--base-url`, `--api-key-env`, `--concurrency`, `--timeout`, `--max-retries` (each None when not given, so
    a command can tell a choice from a default)."""
    options = [
        click.option(
            "--base-url",
            envvar="OPENAI_BASE_URL",
            help=prefix_help + "OpenAI-compatible API root (default https://api.openai.com/v1; env OPENAI_BASE_URL), "
            "e.g. http://127.0.0.1:8000/v1 for vLLM, llama.cpp or Ollama.",
        ),
        click.option(
            "--api-key-env",
            metavar="VAR",
            help=prefix_help + "environment variable holding the API key (default OPENAI_API_KEY). The key itself is "
            "never written anywhere.",
        ),
        click.option(
            "--concurrency", type=click.IntRange(min=1), help=prefix_help + "requests in flight at once (default 4)."
        ),
        click.option(
            "--timeout", type=click.FloatRange(min=0, min_open=True), help=prefix_help + "seconds per request (60)."
        ),
        click.option(
            "--max-retries", type=click.IntRange(min=0), help=prefix_help + "retries per request on 429/5xx (5)."
        ),
    ]

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


ENGINE_CHOICES = ("local", "ray")  # seal.api.ENGINES, spelled here so that --help needs no import


def engine_options(function: F) -> F:
    """`--engine local|ray` and the Ray settings (`--ray-address`, `--ray-actors`, `--ray-actors-per-gpu`,
    `--ray-cpus-per-actor`, `--ray-batch-rows`), handed to the command as one `engine` argument (None for
    local, else the verb's `engine=` value). Where the engine runs is never part of a recipe."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINE_CHOICES),
            default="local",
            show_default=True,
            help="Where the model runs: local (this process) or ray (Ray Data actors; pip install 'seal-audit[ray]').",
        ),
        click.option(
            "--ray-address",
            metavar="ADDRESS",
            envvar="RAY_ADDRESS",
            help="Ray cluster to use (ray://host:10001 or auto; env RAY_ADDRESS); default: start a local Ray.",
        ),
        click.option(
            "--ray-actors",
            type=click.IntRange(min=1),
            help="Actors in the pool (default: GPUs x --ray-actors-per-gpu, else CPUs - 1).",
        ),
        click.option(
            "--ray-actors-per-gpu",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Actors sharing one GPU.",
        ),
        click.option(
            "--ray-cpus-per-actor",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="CPUs each actor reserves.",
        ),
        click.option(
            "--ray-batch-rows",
            type=click.IntRange(min=1),
            help="Rows per batch sent to an actor (also the checkpoint unit); default: the stage's own.",
        ),
    ]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, engine=engine_from(kwargs), **kwargs)

    command: F = wrapper  # type: ignore[assignment]
    for option in reversed(options):
        command = option(command)
    return command


def engine_from(options: dict[str, Any]) -> Any:
    """Pop the engine options out of a command's keyword arguments: the `engine=` value for seal.api."""
    from seal import api

    kind = options.pop("engine", "local")
    ray = {key: options.pop(key, None) for key in list(options) if key.startswith("ray_")}
    if kind == "local":
        return None
    return api.engine_options(kind, **ray)

"""`seal perturb`: rewrite responses and re-score the variants (`seal robustness` reads what they did)."""

from __future__ import annotations

from typing import Any

import click

from seal import api, outcome
from seal.commands.common import emit_json, get_store, info, json_option, silent_option
from seal.commands.options import batch_size_option, device_option, engine_options, llm_endpoint_options
from seal.render import table


def _param(items: tuple[str, ...]) -> dict[str, Any]:
    raw: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise click.UsageError(f"--param {item}: write KEY=VALUE")
        key, value = item.split("=", 1)
        raw[key.strip()] = value
    return api.perturb_params(raw)


def _list_ops(json_: bool) -> None:
    ops = api.perturb_ops()
    if json_:
        emit_json({"ops": ops})
        return
    rows = [
        {
            "op": op["op"],
            "params": ", ".join(f"{k}={v['default']}" for k, v in op["params"].items()),
            "available": op["available"],
            "help": op["help"],
        }
        for op in ops
    ]
    click.echo(table(rows, width=90))


@click.command("perturb")
@click.option(
    "--method",
    metavar="NAME",
    help="A rule op with parameters (typos:rate=0.05), a chain (typos:rate=0.02+case:mode=lower), llm:model=ID, "
    "or, with --spec, the name of a perturbation the spec declares.",
)
@click.option("--name", help="Column suffix: variants go to variants_<name> (default: the op names joined by _).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter of a single-op method.")
@click.option(
    "--spec", "spec_path", type=click.Path(dir_okay=False), help="Take --method from this spec's perturbations."
)
@click.option("--sample", type=click.IntRange(min=1), help="Perturb a seeded sample of N pairs (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and of the rule ops.")
@click.option(
    "--sides",
    type=click.Choice(["both", "chosen", "rejected"]),
    default="both",
    show_default=True,
    help="Which responses to rewrite; the other side keeps its original text and score.",
)
@click.option(
    "--target",
    type=click.Choice(["response", "conversation"]),
    default="response",
    show_default=True,
    help="response: rewrite only the final response (the shared context stays identical); conversation: the "
    "whole dialogue of each side.",
)
@click.option(
    "--min-similarity",
    type=click.FloatRange(-1, 1),
    help="Mark variants whose cosine similarity to the original is below X (kept, excluded from analyses).",
)
@click.option("--similarity-model", help="Embedding model for the similarity (default: the store's).")
@click.option("--no-rescore", is_flag=True, help="Make the variants only; do not re-score them.")
@click.option(
    "--label",
    "label_sets",
    multiple=True,
    metavar="SET",
    help="Also label the variants with this heuristic feature set (e.g. heuristics) for the robustness score.",
)
@device_option(" Used by the reward models that re-score the variants.")
@batch_size_option(help_text="Texts per re-scoring batch, or auto (a token budget per batch).")
@llm_endpoint_options(prefix_help="llm rewriter: ")
@click.option("--list-ops", is_flag=True, help="List the rule ops and their parameters, then exit.")
@engine_options
@json_option
@silent_option
@click.pass_context
def perturb_command(
    ctx: click.Context,
    method: str | None,
    name: str | None,
    params: tuple[str, ...],
    spec_path: str | None,
    sample: int | None,
    seed: int,
    sides: str,
    target: str,
    min_similarity: float | None,
    similarity_model: str | None,
    no_rescore: bool,
    label_sets: tuple[str, ...],
    device: str,
    batch_size: int | str,
    base_url: str | None,
    api_key_env: str | None,
    concurrency: int | None,
    timeout: float | None,
    max_retries: int | None,
    list_ops: bool,
    json_: bool,
    silent: bool,
    engine: Any = None,
) -> None:
    """Rewrite responses of (a sample of) the pairs and re-score the variants with every scored RM.

    Variants go to variants_<name> (one per perturbed side, with method, params, seed, text and similarity to
    the original); each scored RM's scores of them to vscore_<name>__<alias>. Seeded and resumable: the same
    seed picks the same pairs and the same rule edits; a rerun only does what is missing (e.g. the variant
    scores of an RM scored since). Failed LLM rewrites are retried by the next run; exit code 3 when every
    variant failed (e.g. the LLM endpoint refused every request).

    The llm rewriter takes the endpoint options of `seal label --labeler llm` (--base-url, --api-key-env,
    --concurrency, --timeout, --max-retries); its model is named in the method (llm:model=ID). The older
    grammar llm:model=ID,base_url=URL,... still works; a flag and the same key in the method must then
    agree (a contradiction is an error). OPENAI_BASE_URL applies when neither names a base URL.

    \b
    Examples:
      seal perturb --method typos:rate=0.05 --sample 500 --seed 1
      seal perturb --method punctuation:mode=exclaim --sides chosen
      seal perturb --method llm:model=gpt-4o-mini --sample 200 --min-similarity 0.8
      seal perturb --method llm:model=qwen2.5 --base-url http://127.0.0.1:8000/v1 --concurrency 8
      seal perturb --list-ops
    """
    if list_ops:
        _list_ops(json_)
        return
    if not method:
        raise click.UsageError("give --method (see --list-ops)")
    if spec_path:
        given = [
            flag
            for flag, value, default in (
                ("--name", name, None),
                ("--param", params, ()),
                ("--sample", sample, None),
                ("--seed", seed, 0),
                ("--sides", sides, "both"),
                ("--target", target, "response"),
                ("--min-similarity", min_similarity, None),
            )
            if value != default
        ]
        if given:
            raise click.UsageError(f"with --spec the perturbation comes from the spec; drop {', '.join(given)}")
        perturbation: dict[str, Any] = {"spec": spec_path}
    else:
        perturbation = {
            "name": name,
            "params": _param(params),
            "sample": sample,
            "seed": seed,
            "sides": sides,
            "target": target,
            "min_similarity": min_similarity,
            "similarity_model": similarity_model,
        }
    flags, environment = _endpoint_options(
        ctx,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
    )
    result = api.perturb(
        get_store(ctx),
        method,
        **perturbation,
        **flags,
        endpoint_environment=environment,
        show_progress=not silent,
        rescore=not no_rescore,
        device=device,
        batch_size=batch_size,
        label_sets=label_sets,
        **({"engine": engine} if engine is not None else {}),
    )
    if json_:
        emit_json(result.to_json())
    else:
        _echo_perturb(result)
    outcome.check(
        f"seal perturb {result.name}",
        result.to_json(),
        hint="check the rewriter (an llm: --base-url, and the model in --method llm:model=ID)",
    )


def _endpoint_options(ctx: click.Context, **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(endpoint options given as flags, those that came from an environment variable such as OPENAI_BASE_URL)."""
    flags: dict[str, Any] = {}
    environment: dict[str, Any] = {}
    for key, value in values.items():
        if value is not None:
            from_env = ctx.get_parameter_source(key) is click.core.ParameterSource.ENVIRONMENT
            (environment if from_env else flags)[key] = value
    return flags, environment


def _echo_perturb(result: Any) -> None:
    """The human report of a `seal perturb` run."""
    counts = result.variants
    click.echo(
        f"{result.column}: {result.method} ({result.kind}), seed {result.seed}, "
        f"sides {result.sides}, target {result.target}"
    )
    if result.status == "up-to-date":
        click.echo("variants up to date")
    else:
        click.echo(f"{result.reason}: rewrote {result.pairs_rewritten:,} of {result.pairs_sampled:,} sampled pairs")
    click.echo(
        f"{counts['total']:,} variants: {counts['ok']:,} changed, {counts['unchanged']:,} unchanged, "
        f"{counts['failed']:,} failed, {counts['below_min_similarity']:,} below min similarity"
    )
    sim = result.similarity
    if sim.get("n"):
        click.echo(
            f"similarity to the original ({result.similarity_model}): mean {sim['mean']:.4f}, "
            f"median {sim['quantiles']['p50']:.4f}, min {sim['min']:.4f}"
        )
    for r in result.rescored:
        line = f"{r.column}: {r.status}"
        if r.status == "done":
            line += f", {r.texts_scored:,} texts scored, {r.texts_reused:,} unchanged texts reuse their score"
        else:
            line += f" ({r.reason})"
        click.echo(line)
    for lab in result.labels:
        click.echo(f"{lab['column']}: {lab['status']} ({lab['pairs']:,} pairs labelled)")
    if not result.rescored:
        info("no scored reward model yet: `seal score` one, then rerun `seal perturb` to score the variants")

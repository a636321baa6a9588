"""`seal perturb` (rewrite responses, re-score the variants) and `seal robustness` (what the rewrites did)."""

from __future__ import annotations

from typing import Any

import click

from seal import outcome
from seal.commands.common import emit_json, get_store, info, json_option, silent_option
from seal.commands.score import BatchSize
from seal.errors import SealError
from seal.render import table


def _param(items: tuple[str, ...]) -> dict[str, Any]:
    from seal.annotate.perturb.rules import parse_value

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.UsageError(f"--param {item}: write KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def _from_spec(path: str, name: str) -> dict[str, Any]:
    from seal.spec import load_spec

    spec = load_spec(path)
    entries = spec.section("perturbations") or []
    for entry in entries:
        if entry.get("name") == name:
            return dict(entry)
    for entry in entries:
        if entry.get("method") == name and not entry.get("name"):
            return dict(entry)
    known = ", ".join(e.get("name") or e["method"] for e in entries) or "none"
    raise SealError(f"the spec {path} declares no perturbation `{name}`", hint=f"declared: {known}")


def _list_ops(json_: bool) -> None:
    from seal.annotate.perturb.rules import OPS, wordnet_dir

    ops = [op.describe() for op in OPS.values()]
    ops.append(
        {
            "op": "llm",
            "help": "paraphrase with an OpenAI-compatible chat model (llm:model=ID[,base_url=URL,...])",
            "params": {},
            "requires": "an OpenAI-compatible endpoint",
        }
    )
    for op in ops:
        op["available"] = op["requires"] != "wordnet" or wordnet_dir() is not None
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
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where the reward models re-score the variants (not part of any recipe).",
)
@click.option(
    "--batch-size", type=BatchSize(), default="auto", show_default=True, help="Texts per scoring batch, or auto."
)
@click.option("--list-ops", is_flag=True, help="List the rule ops and their parameters, then exit.")
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
    list_ops: bool,
    json_: bool,
    silent: bool,
) -> None:
    """Rewrite responses of (a sample of) the pairs and re-score the variants with every scored RM.

    Variants go to variants_<name> (one per perturbed side, with method, params, seed, text and similarity to
    the original); each scored RM's scores of them to vscore_<name>__<alias>. Seeded and resumable: the same
    seed picks the same pairs and the same rule edits; a rerun only does what is missing (e.g. the variant
    scores of an RM scored since). Failed LLM rewrites are retried by the next run; exit code 3 when every
    variant failed (e.g. the LLM endpoint refused every request).

    \b
    Examples:
      seal perturb --method typos:rate=0.05 --sample 500 --seed 1
      seal perturb --method punctuation:mode=exclaim --sides chosen
      seal perturb --method llm:model=gpt-4o-mini --sample 200 --min-similarity 0.8
      seal perturb --list-ops
    """
    from seal.annotate.perturb.core import PerturbConfig, perturb

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
        entry = _from_spec(spec_path, method)
        config = PerturbConfig.from_entry(entry)
    else:
        config = PerturbConfig(
            method=method,
            name=name,
            params=_param(params),
            sample=sample,
            seed=seed,
            sides=sides,
            target=target,
            min_similarity=min_similarity,
            similarity_model=similarity_model,
        )
    store = get_store(ctx)
    result = perturb(
        store,
        config,
        show_progress=not silent,
        rescore=not no_rescore,
        device=device,
        batch_size=batch_size,
        label_sets=label_sets,
    )
    if json_:
        emit_json(result.to_json())
    else:
        _echo_perturb(result)
    outcome.check(
        f"seal perturb {result.name}", result.to_json(), hint="check the rewriter (an llm: --base-url, --model)"
    )


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


@click.command("robustness")
@click.option("--model", help="Only this RM (default: every scored RM).")
@click.option("--method", help="Only this perturbation (default: every perturbation in the store).")
@click.option("--include-dissimilar", is_flag=True, help="Keep variants below their --min-similarity.")
@click.option("--feature-set", help="Feature set for the robustness score (default: every labelled one).")
@click.option("--logit", is_flag=True, help="Logit instead of the linear-probability model for the robustness score.")
@click.option(
    "--min-flips",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="A feature flip enters the robustness-score regression when at least this many pairs have it.",
)
@click.option(
    "--correction",
    type=click.Choice(["holm", "bonferroni", "bh", "none"]),
    default="holm",
    show_default=True,
    help="Multiple-testing correction of the robustness-score p-values.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="Confidence level of the Wilson and coefficient intervals.",
)
@click.option(
    "--semantic-floor",
    type=click.FloatRange(0.0001, 1),
    default=0.01,
    show_default=True,
    help="Lower bound of the mean semantic change in the sensitivity ratio.",
)
@click.option(
    "--population",
    type=click.Choice(["all", "aligned-before"]),
    default="all",
    show_default=True,
    help="Pairs of the robustness-score regression: all (the paper's π; a pair not aligned before has outcome 0) "
    "or aligned-before (only pairs the RM got right before rewriting).",
)
@click.option(
    "--ties",
    type=click.Choice(["exclude", "disagree"]),
    default="exclude",
    show_default=True,
    help="Tie rule, as in `seal resistance`: exclude = exact ties apart; disagree = a tie counts as disagreement.",
)
@json_option
@click.pass_context
def robustness_command(
    ctx: click.Context,
    model: str | None,
    method: str | None,
    include_dissimilar: bool,
    feature_set: str | None,
    logit: bool,
    min_flips: int,
    correction: str,
    confidence: float,
    semantic_floor: float,
    population: str,
    ties: str,
    json_: bool,
) -> None:
    """How reward models react to meaning-preserving rewrites: agreement before/after with CIs, flips with an
    exact McNemar test, reward correlation and change (in reward SDs), shift angle, sensitivity per
    perturbation, and (with labelled variants) SEAL's robustness score.

    \b
    Examples:
      seal robustness
      seal robustness --model oa_large_v2 --method llm --json
      seal robustness --population aligned-before   # π conditional on agreeing before
    """
    from seal.analysis.robustness import robustness

    result = robustness(
        get_store(ctx),
        model=model,
        method=method,
        include_dissimilar=include_dissimilar,
        feature_set=feature_set,
        estimator="logit" if logit else "lpm",
        min_flips=min_flips,
        correction=correction,
        confidence=confidence,
        semantic_floor=semantic_floor,
        population=population,
        ties=ties,
    )
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.to_text())

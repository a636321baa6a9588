"""The rewriters a perturbation method names: rule ops (`RuleRewriter`) or an LLM (`LLMRewriter`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from seal.annotate.perturb.jobs import Job, Outcome, Rewriter
from seal.annotate.perturb.llm_rewriter import LLMRewriter
from seal.annotate.perturb.rules import OPS, RuleChain, parse_op
from seal.errors import SealError


class RuleRewriter:
    """Rule ops (seal.annotate.perturb.rules): seeded, deterministic, offline."""

    kind = "rules"

    def __init__(self, method: str, params: Mapping[str, Any] | None = None):
        self.chain = RuleChain.parse(method, params)
        self.method = self.chain.canonical()

    def default_name(self) -> str:
        return self.chain.default_name()

    def recipe_params(self) -> dict[str, Any]:
        return {"kind": self.kind, "ops": self.chain.params()}

    def provenance(self) -> dict[str, Any]:
        return {}

    def chunk_size(self) -> int:
        return 2000

    def rewrite(self, jobs: Sequence[Job]) -> list[Outcome]:
        out = []
        for job in jobs:
            response = self.chain.apply(job.response, job.key + "|response")
            context = None
            if job.target == "conversation":
                context = [
                    {"role": m["role"], "content": self.chain.apply(m["content"], f"{job.key}|turn{i}")}
                    for i, m in enumerate(job.context)
                ]
            out.append(Outcome(response, context))
        return out


def build_rewriter(
    method: str, params: Mapping[str, Any] | None = None, endpoint: Mapping[str, Any] | None = None
) -> Rewriter:
    """The rewriter of a method: ``llm[:k=v,...]`` or rule ops ``op[:k=v,...][+op...]``. `endpoint`: settings
    of the LLM endpoint given apart from the method (see `seal.annotate.perturb.llm_rewriter.endpoint_settings`)."""
    head = parse_op(method.split("+")[0])[0]
    if head == "llm":
        return LLMRewriter.from_method(method, params, endpoint)
    if head not in OPS:
        raise SealError(f"unknown perturbation method `{head}`", hint=f"use llm or a rule op: {', '.join(OPS)}")
    if endpoint:
        raise SealError(f"endpoint settings ({', '.join(endpoint)}) apply to the llm rewriter, not to `{head}`")
    return RuleRewriter(method, params)

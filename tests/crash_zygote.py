"""A fork server for tests/test_crash.py: imports seal and its heavy dependencies once, then runs each `seal ...`
command line it is sent in a forked child process, which the test kills with SIGKILL.

Importing torch, transformers, sentence-transformers and LanceDB takes seconds; a fresh `python -m seal` per
trial would spend most of the test's time there. A forked child is a separate process with its own memory,
running exactly the CLI's code path (`seal.cli.cli.main`), and SIGKILL ends it as abruptly as it ends any
process: no `finally`, no flush, no atexit. Nothing is opened (no store, no model) before the fork.

To make kills land between checkpoints on a tiny dataset, the server lowers the stages' checkpoint intervals
(arguments, JSON): `commit_rows` (scoring), `commit_texts` (embedding), `flush_every` (LLM labels), `chunk`
(pairs per perturbation chunk). These change how often work is committed, never what is computed.

Protocol, one JSON object per line: in `{"argv": [...], "cwd": DIR, "stdout": FILE, "stderr": FILE}`; out
`{"pid": N}` once the child runs, then `{"pid": N, "code": C, "cpu": S}` when it ended (C < 0: killed by signal
-C; S: the child's CPU seconds).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import lance  # noqa: F401 - imported once, before any fork: what every run would import again
import lancedb  # noqa: F401
import sentence_transformers  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401

import seal.api
import seal.cli
import seal.commands.spec
import seal.engines.encoder
import seal.engines.scoring
import seal.ingest.stage
import seal.pipeline
from seal.annotate import embeddings, scores
from seal.annotate.features import llm, llm_config  # noqa: F401
from seal.annotate.perturb import llm_rewriter, rewriters


def lower_checkpoint_intervals(commit_rows: int, commit_texts: int, flush_every: int, chunk: int) -> None:
    """Commit more often than the defaults (1000 pairs, 4096 texts, 200 texts, 2000/16 pairs)."""
    score_init = scores.ScoreStage.__init__

    def score(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("commit_rows", commit_rows)
        score_init(self, *args, **kwargs)

    embed_init = embeddings.EmbedStage.__init__

    def embed(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("commit_texts", commit_texts)
        embed_init(self, *args, **kwargs)

    from_options = llm_config.LLMConfig.from_options.__func__

    def config(cls: Any, options: Any) -> Any:
        return from_options(cls, {"flush_every": flush_every, **options})

    scores.ScoreStage.__init__ = score
    embeddings.EmbedStage.__init__ = embed
    llm_config.LLMConfig.from_options = classmethod(config)
    rewriters.RuleRewriter.chunk_size = lambda self: chunk
    llm_rewriter.LLMRewriter.chunk_size = lambda self: chunk


def child(command: dict[str, Any]) -> None:
    """Run one seal command line in this (forked) process, then leave without cleanup."""
    code = 1
    try:
        os.chdir(command["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(command["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(command["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ.update(command.get("env") or {})
        seal.cli.cli.main(command["argv"], prog_name="seal")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    lower_checkpoint_intervals(**json.loads(sys.argv[1]))
    seal.pipeline.registered_stages()  # imports every stage module
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(command)
        print(json.dumps({"pid": pid}), flush=True)
        _, status, usage = os.wait4(pid, 0)
        cpu = round(usage.ru_utime + usage.ru_stime, 3)
        print(json.dumps({"pid": pid, "code": os.waitstatus_to_exitcode(status), "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()

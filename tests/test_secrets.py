"""No token or API key is ever written down: with fake secrets in the environment, label with the LLM labeler
(its key sent to the fake OpenAI server), export in every format, publish (and fail a publish) to the local
Hub, then scan every file the store, the exports, the Hub's repos and the Hugging Face home hold, the store's
tables decoded, and everything the commands printed."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from hub_server import LocalHub
from llm_servers import FakeOpenAI
from test_export import build_annotated_store

SECRETS = {
    "HF_TOKEN": "hf_SEALSECRETxHubTokenx0a1b2c3d4e5f",
    "ORG_HF_TOKEN": "hf_SEALSECRETxOrgTokenx9z8y7x6w5v",
    "OPENAI_API_KEY": "sk-SEALSECRETxOpenAIx0a1b2c3d4e5f6g7h",
    "SEAL_LLM_API_KEY": "sk-SEALSECRETxLabelerKeyx1q2w3e4r",
}
FEATURES = """\
name: {name}
version: 1
labeler: llm
features:
  - {{name: is_polite, type: bool, instruction: "Is the final response polite ({name})?"}}
"""


def needles(secret: str) -> list[bytes]:
    """The secret as it could be written: plain, base64, and its distinctive middle part."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw[3:-4]]


def leaks(texts: dict[str, bytes]) -> list[str]:
    return [
        f"{name} holds {var}"
        for name, data in texts.items()
        for var, s in SECRETS.items()
        if any(n in data for n in needles(s))
    ]


def files_under(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_secret_reaches_any_file_card_log_or_run_record(tmp_path_factory, tmp_path, run_cli, monkeypatch):
    import huggingface_hub.constants as constants

    import seal

    store_path = tmp_path / "store"
    shutil.copytree(build_annotated_store(tmp_path_factory.getbasetemp() / "annotated"), store_path)
    hub_root = tmp_path / "hub"
    hub = LocalHub(hub_root, tokens={SECRETS["HF_TOKEN"]: "write", SECRETS["ORG_HF_TOKEN"]: "write"}).start()
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    printed: dict[str, bytes] = {}

    def cli(*args: str, code: int = 0) -> None:
        done = run_cli(*args, store=store_path)
        printed[" ".join(map(str, args))] = (done.stdout + done.stderr).encode()
        assert done.exit_code == code, done.output

    try:
        with FakeOpenAI() as fake:
            for name, key_env in (("keyed", "SEAL_LLM_API_KEY"), ("default", None)):
                path = tmp_path / f"{name}.yaml"
                path.write_text(FEATURES.format(name=name))
                extra = ["--api-key-env", key_env] if key_env else []
                cli("label", "--labeler", "llm", "--feature-set", path, "--model", "m", "--base-url", fake.url, *extra)
            assert fake.chat_requests > 0, printed
            sent = {a for a in fake.authorization if a}
        assert {f"Bearer {SECRETS['SEAL_LLM_API_KEY']}", f"Bearer {SECRETS['OPENAI_API_KEY']}"} <= sent  # keys used

        exports = tmp_path / "exports"
        for fmt in ("hf", "parquet", "jsonl", "annotated-pairs"):
            cli("export", exports / fmt, "--format", fmt, "--json")
        cli("publish", "seal-tester/secret", "--dry-run")
        cli("publish", "seal-tester/secret", "--json")
        cli("publish", "seal-tester/org-secret", "--token-env", "ORG_HF_TOKEN")
        hub.faults["unauthorized"] = 1
        cli("publish", "seal-tester/secret", code=1)
        hub.faults.clear()
        assert hub.commit_count("seal-tester/secret") == 2 and hub.commit_count("seal-tester/org-secret") == 2
        assert any(m == "PUT" for m, _ in hub.requests)  # data really went up
    finally:
        hub.stop()

    store = seal.Store(store_path)
    tables = {
        f"table {name}": json.dumps(store.read(table=name).to_pylist(), default=str).encode()
        for name in store.table_names()
    }
    assert any("keyed" in json.dumps(r["recipe"]) for r in store.runs("label"))  # the runs were recorded
    scanned = {**files_under(store_path, exports, hub_root, tmp_path / "hf-home"), **tables, **printed}
    assert len(scanned) > 50
    assert leaks(scanned) == []

    planted = {"control": b"header: Bearer " + base64.b64encode(SECRETS["HF_TOKEN"].encode())}
    assert leaks(planted) == ["control holds HF_TOKEN"]  # the scan would see one

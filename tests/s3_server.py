"""An in-process S3 (moto's threaded server on 127.0.0.1, a free port) for the object-store tests.

moto 5.2 honours conditional PUTs (``If-None-Match: *``), which Lance's commits rely on, so a store on it
behaves as on S3: `s3_store_uri(name)` gives a fresh ``s3://`` prefix, and `OPTIONS` are the storage options
(endpoint, fake keys, region, plain HTTP) that go to LanceDB, pylance and lance-ray alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

BUCKET = "seal-test"
ACCESS_KEY = "AKIAsealtestkey0001"
SECRET_KEY = "s3cr3t-seal-test-value-never-logged"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def options(self) -> dict[str, str]:
        return {
            "aws_endpoint": self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": "us-east-1",
            "allow_http": "true",
        }

    def uri(self, name: str | None = None) -> str:
        return f"s3://{BUCKET}/{name or uuid.uuid4().hex[:12]}"


def _start() -> tuple[object, S3Server]:
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    return server, S3Server(endpoint)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session, with the bucket `seal-test`."""
    server, info = _start()
    try:
        yield info
    finally:
        server.stop()  # type: ignore[attr-defined]


def objects(server: S3Server, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` of the bucket (key -> bytes)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return out

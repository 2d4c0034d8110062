"""Fixtures of the Python package's tests: stores on local disk and S3 (moto), the recall
and recalld binaries cargo built, a recalld over a store.

S3 comes from the RECALL_TEST_S3_* variables that scripts/test-servers.sh exports. When
they are absent the S3 cases FAIL, unless RECALL_TEST_SKIP names s3 (then they are skipped
and say so), as in the Rust suites.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time
import urllib.request
import uuid
from typing import Iterator, List

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def skipped(part: str) -> bool:
    return part in os.environ.get("RECALL_TEST_SKIP", "").split(",")


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def binary(name: str, variable: str) -> pathlib.Path:
    path = pathlib.Path(os.environ.get(variable) or target_dir() / "debug" / name)
    if not path.exists():
        pytest.fail(f"{path} does not exist: build it (cargo build -p {name}) or point "
                    f"{variable} at one")
    return path


@pytest.fixture(scope="session")
def recall_bin() -> pathlib.Path:
    """The recall CLI: RECALL_TEST_RECALL, or target/debug/recall."""
    return binary("recall", "RECALL_TEST_RECALL")


@pytest.fixture(scope="session")
def recalld_bin() -> pathlib.Path:
    """recalld: RECALL_TEST_RECALLD, or target/debug/recalld."""
    return binary("recalld", "RECALL_TEST_RECALLD")


def s3_settings() -> dict:
    bucket = os.environ.get("RECALL_TEST_S3_BUCKET")
    if not bucket:
        pytest.fail("RECALL_TEST_S3_BUCKET is not set: run under scripts/test-servers.sh "
                    "(source it), point RECALL_TEST_S3_* at an S3 server, or set "
                    "RECALL_TEST_SKIP=s3")
    key_id = os.environ.get("RECALL_TEST_S3_ACCESS_KEY_ID") or os.environ.get(
        "AWS_ACCESS_KEY_ID", "")
    secret = os.environ.get("RECALL_TEST_S3_SECRET_ACCESS_KEY") or os.environ.get(
        "AWS_SECRET_ACCESS_KEY", "")
    return {
        "bucket": bucket,
        "endpoint": os.environ.get("RECALL_TEST_S3_ENDPOINT"),
        "region": os.environ.get("RECALL_TEST_S3_REGION", "us-east-1"),
        "key_id": key_id,
        "secret": secret,
    }


_bucket_ready: List[str] = []


def ensure_bucket(s3: dict) -> None:
    if s3["bucket"] in _bucket_ready:
        return
    import boto3  # tests/python/requirements.txt

    client = boto3.client("s3", endpoint_url=s3["endpoint"], region_name=s3["region"],
                          aws_access_key_id=s3["key_id"], aws_secret_access_key=s3["secret"])
    try:
        client.head_bucket(Bucket=s3["bucket"])
    except Exception:
        client.create_bucket(Bucket=s3["bucket"])
    _bucket_ready.append(s3["bucket"])


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty store: on local disk, and on S3 with the AWS_* variables set for this
    process and the recall processes it starts."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    if skipped("s3"):
        pytest.skip("SKIPPED (RECALL_TEST_SKIP=s3): S3 case")
    s3 = s3_settings()
    ensure_bucket(s3)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if s3["endpoint"]:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])
        monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", s3["region"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3["key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3["secret"])
    return f"s3://{s3['bucket']}/py-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon_url(recalld_bin: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[str]:
    """A recalld on 127.0.0.1 over a fresh local-disk store; stopped after the test."""
    if skipped("daemon"):
        pytest.skip("SKIPPED (RECALL_TEST_SKIP=daemon): daemon case")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RECALL_CONFIG", "RECALL_STORE", "RECALL_TOKEN")}
    env["RECALL_SPOOL_DIR"] = str(tmp_path)
    child = subprocess.Popen(
        [str(recalld_bin), "--listen", f"127.0.0.1:{port}", "--store",
         (tmp_path / "daemon-store").as_uri()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                pytest.fail(f"recalld on port {port} did not become ready within 30 s")
            time.sleep(0.05)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)

"""A real recalld process for the Flyte tests (test_flyte_datacatalog.py and
test_flyte_cacheservice.py): where its store lives (a local directory or a fresh S3 prefix in
the moto server of scripts/test-servers.sh, RECALL_TEST_S3_*), and the process itself, serving
HTTP and one Flyte door on free loopback ports. The `backend` fixture is in conftest.py.

recalld is RECALL_TEST_RECALLD, else target/debug/recalld; recall likewise (RECALL_TEST_RECALL).
"""

import os
import pathlib
import socket
import subprocess
import uuid

import grpc
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RECALLD = os.environ.get("RECALL_TEST_RECALLD", str(TARGET / "debug" / "recalld"))
RECALL = os.environ.get("RECALL_TEST_RECALL", str(TARGET / "debug" / "recall"))
SKIP = set(filter(None, os.environ.get("RECALL_TEST_SKIP", "").split(",")))
TOKEN = "flyte-test-token-0123456789"
OTHER_TOKEN = "other-project-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """Where a daemon keeps its store: a local directory or a fresh S3 prefix."""

    def __init__(self, kind, tmp):
        self.kind = kind
        self.env = {}
        if kind == "file":
            self.dir = pathlib.Path(tmp) / "store"
            self.url = f"file://{self.dir}"
        else:
            need = ["RECALL_TEST_S3_ENDPOINT", "RECALL_TEST_S3_BUCKET"]
            missing = [n for n in need if n not in os.environ]
            if missing:
                pytest.fail(f"{missing} unset: source scripts/test-servers.sh, or RECALL_TEST_SKIP=s3")
            self.bucket = os.environ["RECALL_TEST_S3_BUCKET"]
            self.prefix = f"flyte-{uuid.uuid4().hex}"
            self.url = f"s3://{self.bucket}/{self.prefix}"
            self.env = {
                "AWS_ENDPOINT_URL": os.environ["RECALL_TEST_S3_ENDPOINT"],
                "AWS_REGION": os.environ.get("RECALL_TEST_S3_REGION", "us-east-1"),
                "AWS_ACCESS_KEY_ID": os.environ.get("RECALL_TEST_S3_ACCESS_KEY_ID", "test"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("RECALL_TEST_S3_SECRET_ACCESS_KEY", "test"),
                "AWS_ALLOW_HTTP": "true",
            }
            try:  # the test server starts empty
                self.s3().create_bucket(Bucket=self.bucket)
            except Exception as e:  # noqa: BLE001 (already there: fine)
                if "BucketAlready" not in type(e).__name__ and "BucketAlready" not in str(e):
                    raise

    @classmethod
    def unreachable(cls):
        """An S3 store at an endpoint where nothing listens (for the fail-open tests)."""
        backend = cls.__new__(cls)
        backend.kind, backend.url = "s3", "s3://nowhere/prefix"
        backend.env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_ALLOW_HTTP": "true"}
        return backend

    def blobs(self, project, domain):
        """Paths (or S3 keys) of every blob of a tenant."""
        if self.kind == "file":
            base = self.dir / "tenants" / project / domain / "blobs"
            return [p for p in base.rglob("*") if p.is_file()]
        s3 = self.s3()
        prefix = f"{self.prefix}/tenants/{project}/{domain}/blobs/"
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def corrupt(self, blob):
        if self.kind == "file":
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 0xFF
            blob.write_bytes(bytes(data))
        else:
            s3 = self.s3()
            data = bytearray(s3.get_object(Bucket=self.bucket, Key=blob)["Body"].read())
            data[len(data) // 2] ^= 0xFF
            s3.put_object(Bucket=self.bucket, Key=blob, Body=bytes(data))

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )


class Daemon:
    """A recalld process serving HTTP and one Flyte door on free loopback ports; a subclass
    names the door."""

    # The flag that serves the door, and the line recalld prints once it listens.
    DOOR = None

    def __init__(self, backend, tmp, toml="", env=None):
        self.backend = backend
        self.http_port, self.grpc_port = free_port(), free_port()
        config = pathlib.Path(tmp) / f"recalld-{self.grpc_port}.toml"
        config.write_text(f'spool_dir = "{tmp}/spool-{self.grpc_port}"\n' + toml)
        self.log = pathlib.Path(tmp) / f"recalld-{self.grpc_port}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("RECALL_", "AWS_"))}
        environ.update(backend.env)
        environ.update(env or {})
        environ["RECALL_LOG"] = "info"
        self.proc = subprocess.Popen(
            [RECALLD, "--config", str(config), "--store", backend.url,
             "--listen", f"127.0.0.1:{self.http_port}",
             self.DOOR[0], f"127.0.0.1:{self.grpc_port}"],
            env=environ, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True,
        )
        for line in self.proc.stdout:
            if line.startswith(self.DOOR[1]):
                break
        else:
            raise AssertionError(f"recalld exited; log:\n{self.log.read_text()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.base = f"http://127.0.0.1:{self.http_port}"

    def stop(self):
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

"""recalld as Flyte 2's CacheService, driven by the flyteidl2 wheel's own stubs.

A real recalld process over local disk and over S3 (the moto server that
scripts/test-servers.sh starts, RECALL_TEST_S3_*), called through flyteidl2's grpcio stubs and
its Connect stubs (connectrpc, with binary protobuf and with JSON). Run by scripts/test.sh:

    target/pyenv/bin/python -m pytest -q tests/python/test_flyte_cacheservice.py

The recalld process and its store come from flyte_recalld.py and conftest.py (shared with
test_flyte_datacatalog.py). RECALL_TEST_SKIP=s3 skips the S3 runs (reported as skipped).
"""

import json
import pathlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from connectrpc.codec import proto_binary_codec, proto_json_codec
from connectrpc.errors import ConnectError
from flyteidl2.cacheservice import cacheservice_pb2 as cs
from flyteidl2.cacheservice import cacheservice_pb2_grpc as cs_grpc
from flyteidl2.cacheservice.v2 import cacheservice_connect as v2_connect
from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2
from flyteidl2.cacheservice.v2 import cacheservice_pb2_grpc as v2_grpc
from flyteidl2.core import identifier_pb2 as ident
from flyteidl2.core import literals_pb2 as lit
from google.protobuf import duration_pb2

from flyte_recalld import OTHER_TOKEN, RECALL, SKIP, TOKEN, Backend
from flyte_recalld import Daemon as RecalldDaemon

PROJECT, DOMAIN = "flytesnacks", "development"


class Daemon(RecalldDaemon):
    """A recalld process serving HTTP and the CacheService on free loopback ports."""

    DOOR = ("--cacheservice-listen", "recalld: cacheservice gRPC and Connect on")

    def __init__(self, backend, tmp, toml=""):
        super().__init__(backend, tmp, toml=toml)
        self.url = f"http://127.0.0.1:{self.grpc_port}"


class Client:
    """The v2 service through one transport; errors become their code's name."""

    def __init__(self, daemon, transport, token=None):
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        if transport == "grpc":
            self.stub = v2_grpc.CacheServiceStub(daemon.channel)
        else:
            codec = proto_json_codec() if transport == "connect-json" else proto_binary_codec()
            self.stub = v2_connect.CacheServiceClientSync(daemon.url, codec=codec)
        self.transport = transport

    def call(self, method, request):
        try:
            if self.transport == "grpc":
                return getattr(self.stub, method)(request, metadata=list(self.headers.items()))
            name = {"Get": "get", "Put": "put", "Delete": "delete",
                    "GetOrExtendReservation": "get_or_extend_reservation",
                    "ReleaseReservation": "release_reservation"}[method]
            return getattr(self.stub, name)(request, headers=self.headers)
        except grpc.RpcError as e:
            return e.code().name
        except ConnectError as e:
            return e.code.name


def ident_v2(project=PROJECT, domain=DOMAIN):
    return v2.Identifier(org="", project=project, domain=domain)


def get(c, key, **kw):
    return c.call("Get", v2.GetCacheRequest(base_request=cs.GetCacheRequest(key=key), identifier=ident_v2(**kw)))


def put(c, key, output, overwrite=None, **kw):
    req = cs.PutCacheRequest(key=key, output=output)
    if overwrite is not None:
        req.overwrite.CopyFrom(overwrite)
    return c.call("Put", v2.PutCacheRequest(base_request=req, identifier=ident_v2(**kw)))


def delete(c, key):
    return c.call("Delete", v2.DeleteCacheRequest(base_request=cs.DeleteCacheRequest(key=key), identifier=ident_v2()))


def reserve(c, key, owner, seconds=1):
    return c.call("GetOrExtendReservation", v2.GetOrExtendReservationRequest(
        base_request=cs.GetOrExtendReservationRequest(
            key=key, owner_id=owner, heartbeat_interval=duration_pb2.Duration(seconds=seconds)),
        identifier=ident_v2()))


def release(c, key, owner):
    return c.call("ReleaseReservation", v2.ReleaseReservationRequest(
        base_request=cs.ReleaseReservationRequest(key=key, owner_id=owner), identifier=ident_v2()))


def source():
    return ident.Identifier(resource_type=ident.TASK, project=PROJECT, domain=DOMAIN,
                            name="wf.square", version="v1", org="")


def literals(size=0):
    """A literal map: ints, strings, nesting, and optionally a large string (a blob)."""
    m = lit.LiteralMap(literals={
        "o0": lit.Literal(scalar=lit.Scalar(primitive=lit.Primitive(integer=81))),
        "o1": lit.Literal(map=lit.LiteralMap(literals={
            "z": lit.Literal(scalar=lit.Scalar(primitive=lit.Primitive(string_value="é∑" + "x" * size))),
        })),
    })
    return m


def with_literals(m):
    return cs.CachedOutput(output_literals=m, metadata=cs.Metadata(
        source_identifier=source(), key_map=cs.KeyMapMetadata(values={"exec": "a1"})))


def with_uri(uri):
    return cs.CachedOutput(output_uri=uri, metadata=cs.Metadata(source_identifier=source()))


@pytest.fixture
def daemon(backend, tmp_path):
    d = Daemon(backend, tmp_path, toml=(
        "[flyte]\nreservation_max_heartbeat_secs = 1\nreservation_grace = 1\n"
        f'default_project = "{PROJECT}"\ndefault_domain = "{DOMAIN}"\n'))
    yield d
    d.stop()


@pytest.mark.parametrize("transport", ["grpc", "connect-proto", "connect-json"])
def test_get_put_overwrite_delete(daemon, transport):
    c = Client(daemon, transport)
    key = f"key-{uuid.uuid4()}"
    assert get(c, key) == "NOT_FOUND"
    m = literals()
    assert put(c, key, with_literals(m)) == cs.PutCacheResponse()
    first = get(c, key)
    assert first.output.output_literals == m
    if transport != "connect-json":  # JSON re-encodes; binary transports carry the bytes
        assert first.output.output_literals.SerializeToString() == m.SerializeToString()
    assert first.output.metadata.source_identifier == source()
    assert dict(first.output.metadata.key_map.values) == {"exec": "a1"}
    created = first.output.metadata.created_at.ToMilliseconds()
    assert created > 0

    # Again without overwrite: refused, the first output stays.
    assert put(c, key, with_uri("s3://bucket/other")) == "ALREADY_EXISTS"
    assert get(c, key).output.output_literals == m
    # With overwrite: replaced, created_at kept, last_updated_at moves.
    time.sleep(0.01)
    over = cs.OverwriteOutput(overwrite=True, delete_blob=True)
    assert put(c, key, with_uri("s3://bucket/outputs/x.pb"), over) == cs.PutCacheResponse()
    second = get(c, key).output
    assert second.output_uri == "s3://bucket/outputs/x.pb"
    assert second.metadata.created_at.ToMilliseconds() == created
    assert second.metadata.last_updated_at.ToMilliseconds() > created

    # A Put without any output.
    assert put(c, key, cs.CachedOutput(metadata=cs.Metadata(source_identifier=source()))) == "INVALID_ARGUMENT"
    assert delete(c, key) == cs.DeleteCacheResponse()
    assert get(c, key) == "NOT_FOUND"
    assert delete(c, key) == "NOT_FOUND"


def test_max_age_makes_an_old_output_replaceable(daemon):
    c = Client(daemon, "connect-proto")
    key = "aged"
    assert put(c, key, with_uri("s3://b/1")) == cs.PutCacheResponse()
    long = cs.OverwriteOutput(max_age=duration_pb2.Duration(seconds=3600))
    assert put(c, key, with_uri("s3://b/2"), long) == "ALREADY_EXISTS"
    time.sleep(1.1)
    short = cs.OverwriteOutput(max_age=duration_pb2.Duration(seconds=1))
    assert put(c, key, with_uri("s3://b/3"), short) == cs.PutCacheResponse()
    assert get(c, key).output.output_uri == "s3://b/3"


@pytest.mark.parametrize("transport", ["grpc", "connect-json"])
def test_reservations(daemon, transport):
    c = Client(daemon, transport)
    key = f"serialized-{transport}"
    a = reserve(c, key, "owner-a").reservation
    assert a.owner_id == "owner-a" and a.key == key
    assert a.heartbeat_interval.seconds == 1  # clamped to reservation_max_heartbeat_secs
    assert reserve(c, key, "owner-b", seconds=60).reservation.owner_id == "owner-a"
    time.sleep(0.05)
    extended = reserve(c, key, "owner-a").reservation
    assert extended.owner_id == "owner-a"
    assert extended.expires_at.ToMilliseconds() > a.expires_at.ToMilliseconds()
    # A foreign release changes nothing.
    assert release(c, key, "owner-b") == cs.ReleaseReservationResponse()
    assert reserve(c, key, "owner-b").reservation.owner_id == "owner-a"
    # Expired (heartbeat 1 s x grace 1): taken over.
    time.sleep(1.2)
    assert reserve(c, key, "owner-b").reservation.owner_id == "owner-b"
    assert release(c, key, "owner-b") == cs.ReleaseReservationResponse()
    assert reserve(c, key, "owner-a").reservation.owner_id == "owner-a"
    # Releasing what does not exist is fine.
    assert release(c, "never-reserved", "owner-a") == cs.ReleaseReservationResponse()


def test_base_service_uses_the_default_project_and_domain(daemon, backend, tmp_path):
    base = cs_grpc.CacheServiceStub(daemon.channel)
    m = literals()
    base.Put(cs.PutCacheRequest(key="base-key", output=with_literals(m)))
    assert base.Get(cs.GetCacheRequest(key="base-key")).output.output_literals == m
    # The same entry as the v2 service's in the default project/domain, and only there.
    c = Client(daemon, "grpc")
    assert get(c, "base-key").output.output_literals == m
    assert get(c, "base-key", project="other") == "NOT_FOUND"
    # Without defaults the base service refuses, naming the settings.
    plain = Daemon(backend, tmp_path)
    try:
        with pytest.raises(grpc.RpcError) as e:
            cs_grpc.CacheServiceStub(plain.channel).Get(cs.GetCacheRequest(key="base-key"))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "default_project" in e.value.details()
    finally:
        plain.stop()


def test_connect_wire_format_status_and_json_error_body(daemon):
    """Connect's wire form as Flyte's Go executor sends it, by hand."""
    body = json.dumps({"baseRequest": {"key": "nope"},
                       "identifier": {"org": "", "project": PROJECT, "domain": DOMAIN}}).encode()
    req = urllib.request.Request(f"{daemon.url}/flyteidl2.cacheservice.v2.CacheService/Get",
                                 data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 404
    assert e.value.headers["Content-Type"] == "application/json"
    error = json.loads(e.value.read())
    assert error["code"] == "not_found" and "nope" in error["message"]
    # A hit, in JSON, with camelCase names and the URI.
    put_body = json.dumps({"baseRequest": {"key": "k", "output": {"outputUri": "s3://b/o"}},
                           "identifier": {"project": PROJECT, "domain": DOMAIN}}).encode()
    urllib.request.urlopen(urllib.request.Request(
        f"{daemon.url}/flyteidl2.cacheservice.v2.CacheService/Put", data=put_body,
        headers={"Content-Type": "application/json"}), timeout=10)
    got = json.loads(urllib.request.urlopen(req.__class__(
        req.full_url, data=body.replace(b"nope", b"k"), headers={"Content-Type": "application/json"}),
        timeout=10).read())
    assert got["output"]["outputUri"] == "s3://b/o"
    # AlreadyExists is 409.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            f"{daemon.url}/flyteidl2.cacheservice.v2.CacheService/Put", data=put_body,
            headers={"Content-Type": "application/json"}), timeout=10)
    assert e.value.code == 409 and json.loads(e.value.read())["code"] == "already_exists"


def test_auth(backend, tmp_path):
    d = Daemon(backend, tmp_path, toml=(
        f'[[tokens]]\nname = "flyte"\ntoken = "{TOKEN}"\nprojects = ["{PROJECT}"]\n'
        'domains = ["*"]\naccess = "write"\n'
        f'[[tokens]]\nname = "other"\ntoken = "{OTHER_TOKEN}"\nprojects = ["other"]\n'
        'domains = ["*"]\naccess = "write"\n'))
    try:
        for transport in ["grpc", "connect-proto"]:
            mine = Client(d, transport, TOKEN)
            assert put(mine, f"k-{transport}", with_uri("s3://b/o")) == cs.PutCacheResponse()
            assert get(mine, f"k-{transport}").output.output_uri == "s3://b/o"
            assert get(Client(d, transport), f"k-{transport}") == "UNAUTHENTICATED"
            assert get(Client(d, transport, OTHER_TOKEN), f"k-{transport}") == "PERMISSION_DENIED"
            assert put(Client(d, transport, OTHER_TOKEN), "x", with_uri("s3://b/o")) == "PERMISSION_DENIED"
    finally:
        d.stop()


def test_corrupt_literal_blob_is_a_miss_then_put_succeeds(daemon, backend):
    c = Client(daemon, "connect-proto")
    m = literals(size=200_000)  # large enough to be stored as a blob, not inline
    assert put(c, "big", with_literals(m)) == cs.PutCacheResponse()
    assert get(c, "big").output.output_literals == m
    blobs = backend.blobs(PROJECT, DOMAIN)
    assert blobs, "the literals were not stored as a blob"
    for blob in blobs:
        backend.corrupt(blob)
    # recalld's memory tier holds the manifest, not the bytes: the read verifies the blob.
    assert get(c, "big") == "NOT_FOUND"
    assert put(c, "big", with_literals(m)) == cs.PutCacheResponse()
    assert get(c, "big").output.output_literals == m


def test_store_down_fails_open(tmp_path):
    if "s3" in SKIP:
        pytest.skip("RECALL_TEST_SKIP=s3")
    d = Daemon(Backend.unreachable(), tmp_path, toml="[timeouts]\nlookup_ms = 500\n")
    try:
        c = Client(d, "connect-proto")
        assert get(c, "k") == "NOT_FOUND"                            # the task runs
        assert reserve(c, "k", "owner-a").reservation.owner_id == "owner-a"  # unserialized
        metrics = urllib.request.urlopen(f"{d.base}/metrics", timeout=10).read().decode()
        assert 'recall_flyte_lookups_total{method="CacheService.Get",result="failure"}' in metrics
        assert "recall_flyte_reservations_failed_open_total 1" in metrics
    finally:
        d.stop()


def test_eviction_through_the_cli_then_a_miss(daemon):
    c = Client(daemon, "grpc")
    assert put(c, "evicted", with_uri("s3://b/o")) == cs.PutCacheResponse()
    subprocess.run([RECALL, "evict", "--daemon", daemon.base, "--project", PROJECT,
                    "--domain", DOMAIN, "--task", "flyte_cacheservice"], check=True,
                   stdout=subprocess.DEVNULL)
    assert get(c, "evicted") == "NOT_FOUND"
    assert put(c, "evicted", with_uri("s3://b/o")) == cs.PutCacheResponse()


class Outputs:
    """Objects standing for Flyte's outputs, beside the store: files, or keys in the S3 bucket."""

    def __init__(self, backend, tmp):
        self.backend = backend
        if backend.kind == "file":
            self.base = pathlib.Path(tmp) / "flyte-data"
            self.base.mkdir()
            self.url = f"file://{self.base}/"
        else:
            self.prefix = f"flyte-outputs-{uuid.uuid4().hex}/"
            self.url = f"s3://{backend.bucket}/{self.prefix}"

    def write(self, where, name):
        """An object `name` under the root (where="in") or beside it (where="out"); its URI."""
        rel = name if where == "in" else f"../elsewhere-{uuid.uuid4().hex}/{name}"
        if self.backend.kind == "file":
            path = (self.base / rel).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"outputs")
            return f"file://{path}"
        key = (self.prefix + name) if where == "in" else f"elsewhere-{uuid.uuid4().hex}/{name}"
        self.backend.s3().put_object(Bucket=self.backend.bucket, Key=key, Body=b"outputs")
        return f"s3://{self.backend.bucket}/{key}"

    def exists(self, uri):
        if self.backend.kind == "file":
            return pathlib.Path(uri.removeprefix("file://")).exists()
        key = uri.removeprefix(f"s3://{self.backend.bucket}/")
        listed = self.backend.s3().list_objects_v2(Bucket=self.backend.bucket, Prefix=key)
        return any(o["Key"] == key for o in listed.get("Contents", []))


def test_delete_blob_deletes_the_old_output_under_a_configured_root(backend, tmp_path):
    """Issue 16: with [flyte] delete_blob_roots, an overwrite with delete_blob deletes the old
    output_uri's object under a root, and leaves one outside every root; both Puts succeed."""
    outputs = Outputs(backend, tmp_path)
    d = Daemon(backend, tmp_path, toml=f'[flyte]\ndelete_blob_roots = ["{outputs.url}"]\n')
    try:
        c = Client(d, "connect-proto")   # as Flyte's executor calls it
        delete_blob = cs.OverwriteOutput(overwrite=True, delete_blob=True)
        old, new = outputs.write("in", "run-1/outputs.pb"), outputs.write("in", "run-2/outputs.pb")
        assert put(c, "k", with_uri(old)) == cs.PutCacheResponse()
        assert put(c, "k", with_uri(new), delete_blob) == cs.PutCacheResponse()
        assert not outputs.exists(old), "the replaced output should be deleted"
        assert outputs.exists(new)
        assert get(c, "k").output.output_uri == new

        outside = outputs.write("out", "outputs.pb")
        assert outputs.exists(outside)
        assert put(c, "k2", with_uri(outside)) == cs.PutCacheResponse()
        assert put(c, "k2", with_uri(new), delete_blob) == cs.PutCacheResponse()
        assert outputs.exists(outside), "an object outside the roots is left alone"

        metrics = urllib.request.urlopen(f"{d.base}/metrics", timeout=10).read().decode()
        assert 'recall_flyte_blob_deletes_total{result="deleted"} 1' in metrics
        assert 'recall_flyte_blob_deletes_total{result="left"} 1' in metrics
    finally:
        d.stop()

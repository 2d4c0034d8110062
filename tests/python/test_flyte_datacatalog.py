"""recalld as Flyte 1's datacatalog, driven by flyteidl's own gRPC stubs.

Replays flytepropeller's call sequences (flytepropeller/pkg/controller/nodes/catalog/
datacatalog) against a real recalld process over local disk and over S3 (the moto server that
scripts/test-servers.sh starts, RECALL_TEST_S3_*). Run by scripts/test.sh:

    target/pyenv/bin/python -m pytest -q tests/python/test_flyte_datacatalog.py

The recalld process and its store come from flyte_recalld.py and conftest.py (shared with
test_flyte_cacheservice.py). RECALL_TEST_SKIP=s3 skips the S3 runs (reported as skipped).
"""

import subprocess
import time
import uuid

import grpc
import pytest
from flyteidl.core import literals_pb2 as lit
from flyteidl.core import types_pb2
from flyteidl.datacatalog import datacatalog_pb2 as dc
from flyteidl.datacatalog import datacatalog_pb2_grpc as dc_grpc
from google.protobuf import duration_pb2

from flyte_recalld import OTHER_TOKEN, RECALL, SKIP, TOKEN, Backend
from flyte_recalld import Daemon as RecalldDaemon


class Daemon(RecalldDaemon):
    """A recalld process serving HTTP and the datacatalog on free loopback ports."""

    DOOR = ("--datacatalog-listen", "recalld: datacatalog gRPC on")

    def __init__(self, backend, tmp, toml="", env=None):
        super().__init__(backend, tmp, toml=toml, env=env)
        self.stub = dc_grpc.DataCatalogStub(self.channel)


@pytest.fixture
def daemon(backend, tmp_path):
    d = Daemon(backend, tmp_path, toml=(
        "[flyte]\nreservation_max_heartbeat_secs = 1\nreservation_grace = 1\n"
        '[cache.max_age_per_task_secs]\n"flyte_task-short.lived" = 1\n'))
    yield d
    d.stop()


# --- propeller's sequences -------------------------------------------------------------------

def dataset_id(name="flyte_task-wf.square", version="1.0-abcd1234-ef567890", project="flytesnacks"):
    return dc.DatasetID(project=project, domain="development", name=name, version=version)


def tag_of(n):
    return f"flyte_cached-{n:0>43}"


def outputs():
    """Literals of every kind propeller caches: ints, strings, a blob with a URI, nesting."""
    blob = lit.Literal(scalar=lit.Scalar(blob=lit.Blob(
        uri="s3://my-bucket/data/abc/model.bin",
        metadata=lit.BlobMetadata(type=types_pb2.BlobType(
            format="binary", dimensionality=types_pb2.BlobType.SINGLE)))))
    nested = lit.Literal(map=lit.LiteralMap(literals={
        "xs": lit.Literal(collection=lit.LiteralCollection(literals=[int_lit(1), int_lit(2)])),
        "name": str_lit("nested"),
        "inner": lit.Literal(map=lit.LiteralMap(literals={"z": str_lit("é∑"), "a": int_lit(-7)})),
    }))
    return [
        dc.ArtifactData(name="o0", value=int_lit(81)),
        dc.ArtifactData(name="o1", value=str_lit("hello")),
        dc.ArtifactData(name="o2", value=blob),
        dc.ArtifactData(name="o3", value=nested),
    ]


def int_lit(v):
    return lit.Literal(scalar=lit.Scalar(primitive=lit.Primitive(integer=v)))


def str_lit(v):
    return lit.Literal(scalar=lit.Scalar(primitive=lit.Primitive(string_value=v)))


def execution_metadata():
    return dc.Metadata(key_map={"exec-project": "flytesnacks", "exec-domain": "development",
                                "execution-name": "abc123", "exec-node": "n0", "exec-attempt": "0"})


def lookup(stub, ds, tag, **kw):
    """Propeller's Get: GetDataset, then GetArtifact by tag; None on NotFound."""
    try:
        got = stub.GetDataset(dc.GetDatasetRequest(dataset=ds), **kw)
        return stub.GetArtifact(dc.GetArtifactRequest(dataset=got.dataset.id, tag_name=tag), **kw).artifact
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def populate(stub, ds, tag, data, **kw):
    """Propeller's Put: CreateDataset (AlreadyExists is fine), CreateArtifact, AddTag."""
    try:
        stub.CreateDataset(dc.CreateDatasetRequest(dataset=dc.Dataset(id=ds, metadata=dc.Metadata())), **kw)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.ALREADY_EXISTS, e
    artifact_id = str(uuid.uuid4())
    stub.CreateArtifact(dc.CreateArtifactRequest(artifact=dc.Artifact(
        id=artifact_id, dataset=ds, data=data, metadata=execution_metadata())), **kw)
    stub.AddTag(dc.AddTagRequest(tag=dc.Tag(name=tag, artifact_id=artifact_id, dataset=ds)), **kw)
    return artifact_id


def code_of(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def test_miss_populate_hit_byte_identical(daemon):
    stub, ds, tag = daemon.stub, dataset_id(), tag_of(1)
    assert lookup(stub, ds, tag) is None
    data = outputs()
    before = time.time()
    # Sent with deterministic serialization, so the bytes of each literal on the wire are
    # known; protobuf's default map order is not stable between two serializations.
    create_artifact = daemon.channel.unary_unary(
        "/datacatalog.DataCatalog/CreateArtifact",
        request_serializer=lambda m: m.SerializeToString(deterministic=True),
        response_deserializer=dc.CreateArtifactResponse.FromString)
    stub.CreateDataset(dc.CreateDatasetRequest(dataset=dc.Dataset(id=ds)))
    artifact_id = str(uuid.uuid4())
    create_artifact(dc.CreateArtifactRequest(artifact=dc.Artifact(
        id=artifact_id, dataset=ds, data=data, metadata=execution_metadata())))
    stub.AddTag(dc.AddTagRequest(tag=dc.Tag(name=tag, artifact_id=artifact_id, dataset=ds)))
    got = lookup(stub, ds, tag)
    assert got is not None and got.id == artifact_id
    assert [d.name for d in got.data] == [d.name for d in data]
    for sent, back in zip(data, got.data):
        assert back.value == sent.value
    # Byte for byte: each literal's encoding is in the raw answer exactly as it was sent.
    get_raw = daemon.channel.unary_unary(
        "/datacatalog.DataCatalog/GetArtifact",
        request_serializer=dc.GetArtifactRequest.SerializeToString,
        response_deserializer=lambda raw: raw)
    raw = get_raw(dc.GetArtifactRequest(dataset=ds, tag_name=tag))
    for sent in data:
        assert sent.value.SerializeToString(deterministic=True) in raw
    assert got.metadata.key_map["execution-name"] == "abc123"
    assert got.created_at.ToSeconds() >= int(before) - 1
    assert [t.name for t in got.tags] == [tag]
    # GetArtifact by artifact_id answers the same artifact.
    by_id = stub.GetArtifact(dc.GetArtifactRequest(dataset=ds, artifact_id=artifact_id)).artifact
    assert by_id.id == artifact_id and list(by_id.data) == list(got.data)
    # The dataset is there, with its id.
    assert stub.GetDataset(dc.GetDatasetRequest(dataset=ds)).dataset.id.name == ds.name


def test_duplicates_answer_already_exists(daemon):
    stub, ds, tag = daemon.stub, dataset_id(name="flyte_task-dup"), tag_of(2)
    artifact_id = populate(stub, ds, tag, outputs()[:1])
    assert code_of(lambda: stub.CreateDataset(dc.CreateDatasetRequest(dataset=dc.Dataset(id=ds)))) \
        == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: stub.AddTag(dc.AddTagRequest(tag=dc.Tag(
        name=tag, artifact_id=artifact_id, dataset=ds)))) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: stub.CreateArtifact(dc.CreateArtifactRequest(artifact=dc.Artifact(
        id=artifact_id, dataset=ds, data=outputs()[:1])))) == grpc.StatusCode.ALREADY_EXISTS
    # Bad input: InvalidArgument, naming the field.
    err = pytest.raises(grpc.RpcError, stub.CreateArtifact, dc.CreateArtifactRequest(
        artifact=dc.Artifact(id="x", dataset=ds)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "data" in err.value.details()
    err = pytest.raises(grpc.RpcError, stub.GetDataset, dc.GetDatasetRequest(
        dataset=dc.DatasetID(project="p", domain="d", name="n")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "version" in err.value.details()
    # A tag of an unknown artifact is NotFound.
    assert code_of(lambda: stub.AddTag(dc.AddTagRequest(tag=dc.Tag(
        name=tag_of(99), artifact_id="nope", dataset=ds)))) == grpc.StatusCode.NOT_FOUND


def test_update_artifact_overwrites_and_not_found_falls_back(daemon):
    stub, ds = daemon.stub, dataset_id(name="flyte_task-over")
    tag = tag_of(3)
    artifact_id = populate(stub, ds, tag, [dc.ArtifactData(name="o0", value=int_lit(1))])
    answer = stub.UpdateArtifact(dc.UpdateArtifactRequest(
        dataset=ds, tag_name=tag, data=[dc.ArtifactData(name="o0", value=int_lit(2))],
        metadata=execution_metadata()))
    assert answer.artifact_id == artifact_id
    got = lookup(stub, ds, tag)
    assert got.data[0].value == int_lit(2)
    # Overwrite of a tag that does not exist: NotFound, then propeller's fallback works.
    missing = tag_of(4)
    assert code_of(lambda: stub.UpdateArtifact(dc.UpdateArtifactRequest(
        dataset=ds, tag_name=missing, data=[dc.ArtifactData(name="o0", value=int_lit(3))]))) \
        == grpc.StatusCode.NOT_FOUND
    populate(stub, ds, missing, [dc.ArtifactData(name="o0", value=int_lit(3))])
    assert lookup(stub, ds, missing).data[0].value == int_lit(3)
    # By artifact_id: the tag pointing at the artifact answers the new data too (issue 15).
    stub.UpdateArtifact(dc.UpdateArtifactRequest(
        dataset=ds, artifact_id=artifact_id, data=[dc.ArtifactData(name="o0", value=int_lit(5))]))
    assert lookup(stub, ds, tag).data[0].value == int_lit(5)
    by_id = stub.GetArtifact(dc.GetArtifactRequest(dataset=ds, artifact_id=artifact_id)).artifact
    assert by_id.data[0].value == int_lit(5)


def reserve(stub, ds, tag, owner, seconds=1):
    return stub.GetOrExtendReservation(dc.GetOrExtendReservationRequest(
        reservation_id=dc.ReservationID(dataset_id=ds, tag_name=tag), owner_id=owner,
        heartbeat_interval=duration_pb2.Duration(seconds=seconds))).reservation


def test_reservations(daemon):
    stub, ds, tag = daemon.stub, dataset_id(name="flyte_task-serial"), tag_of(5)
    first = reserve(stub, ds, tag, "owner-a", seconds=60)
    assert first.owner_id == "owner-a"
    # Clamped to the configured maximum (1 s here) times the grace multiplier (1).
    assert first.heartbeat_interval.seconds == 1
    contender = reserve(stub, ds, tag, "owner-b")
    assert contender.owner_id == "owner-a"
    extended = reserve(stub, ds, tag, "owner-a")
    assert extended.owner_id == "owner-a"
    assert extended.expires_at.ToNanoseconds() >= first.expires_at.ToNanoseconds()
    # Release by a non-owner: OK, and nothing changes.
    stub.ReleaseReservation(dc.ReleaseReservationRequest(
        reservation_id=dc.ReservationID(dataset_id=ds, tag_name=tag), owner_id="owner-b"))
    assert reserve(stub, ds, tag, "owner-c").owner_id == "owner-a"
    # Takeover once it expired (1 s heartbeat x 1).
    time.sleep(1.3)
    assert reserve(stub, ds, tag, "owner-b").owner_id == "owner-b"
    # Release by the owner frees it; releasing a missing reservation is OK.
    stub.ReleaseReservation(dc.ReleaseReservationRequest(
        reservation_id=dc.ReservationID(dataset_id=ds, tag_name=tag), owner_id="owner-b"))
    assert reserve(stub, ds, tag, "owner-a").owner_id == "owner-a"
    stub.ReleaseReservation(dc.ReleaseReservationRequest(
        reservation_id=dc.ReservationID(dataset_id=ds, tag_name=tag_of(77)), owner_id="x"))


def test_max_age_misses_and_is_replaceable(daemon):
    stub, ds, tag = daemon.stub, dataset_id(name="flyte_task-short.lived"), tag_of(6)
    populate(stub, ds, tag, [dc.ArtifactData(name="o0", value=int_lit(1))])
    assert lookup(stub, ds, tag) is not None
    time.sleep(1.3)
    assert lookup(stub, ds, tag) is None
    populate(stub, ds, tag, [dc.ArtifactData(name="o0", value=int_lit(2))])
    assert lookup(stub, ds, tag).data[0].value == int_lit(2)


def test_corrupt_data_is_a_miss_then_repopulates(daemon):
    stub, ds, tag = daemon.stub, dataset_id(name="flyte_task-corrupt"), tag_of(7)
    big = [dc.ArtifactData(name="o0", value=str_lit("x" * 10000))]   # a blob, not inline
    populate(stub, ds, tag, big)
    assert lookup(stub, ds, tag) is not None
    blobs = daemon.backend.blobs("flytesnacks", "development")
    assert blobs, "the large artifact should be stored as a blob"
    for blob in blobs:
        daemon.backend.corrupt(blob)
    assert lookup(stub, ds, tag) is None            # NotFound, never Internal
    populate(stub, ds, tag, big)                    # the broken tag was dropped
    got = lookup(stub, ds, tag)
    assert got.data[0].value == big[0].value


def test_eviction_through_the_cli_then_a_miss(daemon):
    stub, ds, tag = daemon.stub, dataset_id(name="flyte_task-evicted"), tag_of(8)
    artifact_id = populate(stub, ds, tag, outputs()[:2])
    assert lookup(stub, ds, tag) is not None
    subprocess.run([RECALL, "evict", "--daemon", daemon.base, "--project", "flytesnacks",
                    "--domain", "development", "--task", ds.name], check=True,
                   stdout=subprocess.DEVNULL)
    assert lookup(stub, ds, tag) is None
    # The artifact went with its tags: not found by artifact_id either (issue 15).
    assert code_of(lambda: stub.GetArtifact(dc.GetArtifactRequest(
        dataset=ds, artifact_id=artifact_id))) == grpc.StatusCode.NOT_FOUND
    populate(stub, ds, tag, outputs()[:2])
    assert lookup(stub, ds, tag) is not None


def test_auth(backend, tmp_path):
    toml = (
        f'[[tokens]]\nname = "flyte"\ntoken = "{TOKEN}"\nprojects = ["flytesnacks"]\n'
        'domains = ["*"]\naccess = "write"\n'
        f'[[tokens]]\nname = "other"\ntoken = "{OTHER_TOKEN}"\nprojects = ["other"]\n'
        'domains = ["*"]\naccess = "write"\n')
    d = Daemon(backend, tmp_path, toml=toml)
    try:
        ds, tag = dataset_id(name="flyte_task-auth"), tag_of(9)
        mine = [("authorization", f"Bearer {TOKEN}")]
        populate(d.stub, ds, tag, outputs()[:1], metadata=mine)
        assert lookup(d.stub, ds, tag, metadata=mine) is not None
        theirs = [("authorization", f"Bearer {OTHER_TOKEN}")]
        assert code_of(lambda: d.stub.GetDataset(dc.GetDatasetRequest(dataset=ds), metadata=theirs)) \
            == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: d.stub.GetDataset(dc.GetDatasetRequest(dataset=ds))) \
            == grpc.StatusCode.UNAUTHENTICATED
    finally:
        d.stop()


def test_store_down_fails_open(tmp_path):
    if "s3" in SKIP:
        pytest.skip("RECALL_TEST_SKIP=s3")
    # An S3 endpoint where nothing listens.
    d = Daemon(Backend.unreachable(), tmp_path, toml="[timeouts]\nlookup_ms = 500\n")
    try:
        ds, tag = dataset_id(), tag_of(10)
        assert lookup(d.stub, ds, tag) is None               # NotFound: the task runs
        got = reserve(d.stub, ds, tag, "owner-a")            # granted: runs unserialized
        assert got.owner_id == "owner-a"
        metrics = __import__("urllib.request").request.urlopen(f"{d.base}/metrics").read().decode()
        assert 'recall_flyte_lookups_total{method="GetDataset",result="failure"}' in metrics
        assert "recall_flyte_reservations_failed_open_total 1" in metrics
    finally:
        d.stop()


def test_listings(daemon):
    stub = daemon.stub
    ds = dataset_id(name="flyte_task-listed", version="2.0-aaaaaaaa-bbbbbbbb")
    first = populate(stub, ds, tag_of(11), outputs()[:1])
    second = populate(stub, ds, tag_of(12), outputs()[1:2])
    listed = stub.ListArtifacts(dc.ListArtifactsRequest(dataset=ds)).artifacts
    assert sorted(a.id for a in listed) == sorted([first, second])
    assert {a.id: [t.name for t in a.tags] for a in listed} == {first: [tag_of(11)], second: [tag_of(12)]}
    by_tag = stub.ListArtifacts(dc.ListArtifactsRequest(dataset=ds, filter=dc.FilterExpression(
        filters=[dc.SinglePropertyFilter(tag_filter=dc.TagPropertyFilter(tag_name=tag_of(12)))])))
    assert [a.id for a in by_tag.artifacts] == [second]
    paged = stub.ListArtifacts(dc.ListArtifactsRequest(dataset=ds, pagination=dc.PaginationOptions(limit=1)))
    assert len(paged.artifacts) == 1 and paged.next_token
    rest = stub.ListArtifacts(dc.ListArtifactsRequest(dataset=ds, pagination=dc.PaginationOptions(
        limit=1, token=paged.next_token)))
    assert len(rest.artifacts) == 1 and not rest.next_token
    assert {paged.artifacts[0].id, rest.artifacts[0].id} == {first, second}
    datasets = stub.ListDatasets(dc.ListDatasetsRequest(filter=dc.FilterExpression(filters=[
        dc.SinglePropertyFilter(dataset_filter=dc.DatasetPropertyFilter(name="flyte_task-listed"))])))
    assert [(d.id.name, d.id.version) for d in datasets.datasets] == [(ds.name, ds.version)]
    assert code_of(lambda: stub.ListArtifacts(dc.ListArtifactsRequest(dataset=ds, filter=dc.FilterExpression(
        filters=[dc.SinglePropertyFilter(partition_filter=dc.PartitionPropertyFilter(
            key_val=dc.KeyValuePair(key="k", value="v")))])))) == grpc.StatusCode.INVALID_ARGUMENT


def test_untagged_artifact_expires_and_gc_removes_it(backend, tmp_path):
    d = Daemon(backend, tmp_path, toml="[flyte]\nuntagged_artifact_ttl_secs = 1\n")
    try:
        import json
        import urllib.request

        stub, ds = d.stub, dataset_id(name="flyte_task-untagged")
        stub.CreateDataset(dc.CreateDatasetRequest(dataset=dc.Dataset(id=ds)))
        big = [dc.ArtifactData(name="o0", value=str_lit("y" * 10000))]   # a blob
        stub.CreateArtifact(dc.CreateArtifactRequest(artifact=dc.Artifact(id="never-tagged", dataset=ds, data=big)))
        tagged = populate(stub, ds, tag_of(13), outputs()[:1])
        assert stub.GetArtifact(dc.GetArtifactRequest(dataset=ds, artifact_id="never-tagged")).artifact.id
        time.sleep(1.3)
        # Expired: a miss, while the tagged artifact's own entry no longer expires.
        assert code_of(lambda: stub.GetArtifact(dc.GetArtifactRequest(dataset=ds, artifact_id="never-tagged"))) \
            == grpc.StatusCode.NOT_FOUND
        assert stub.GetArtifact(dc.GetArtifactRequest(dataset=ds, artifact_id=tagged)).artifact.id == tagged

        def gc(dry_run):
            body = json.dumps({"project": "flytesnacks", "domain": "development",
                               "grace_seconds": 0, "dry_run": dry_run}).encode()
            request = urllib.request.Request(f"{d.base}/v1/gc", data=body,
                                             headers={"content-type": "application/json"})
            return json.loads(urllib.request.urlopen(request).read())

        time.sleep(1.1)   # GC's cut-off is whole milliseconds before now; be clear of it
        assert gc(True)["expired_entries"] == 1
        report = gc(False)
        assert report["expired_entries"] == 1 and report["deleted_blobs"] >= 1, report
        assert gc(True)["expired_entries"] == 0
        assert lookup(stub, ds, tag_of(13)) is not None
    finally:
        d.stop()

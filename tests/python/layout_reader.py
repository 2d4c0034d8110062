#!/usr/bin/env python3
"""Read one recall cache entry straight from an S3 bucket, without recall.

Written from docs/LAYOUT.md and docs/KEY-SPEC.md alone (no recall source was read).
Section numbers in comments are LAYOUT.md's unless marked "KEY-SPEC".  The cache key is
computed with tests/python/keyspec_ref.py (an independent KEY-SPEC implementation).

Usage:
    layout_reader.py --material KEY.json (--store s3://BUCKET[/PREFIX] | --bucket BUCKET
                     [--root PREFIX]) [--endpoint URL] [--region R]
                     [--access-key-id ID --secret-access-key SECRET [--session-token T]]
                     [--out DIR] [--json] [--max-age-ms N] [--now-ms N] [--no-descriptor]

Connection settings not given as options come from the environment, as LAYOUT.md
section 7 lists them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT,
AWS_VIRTUAL_HOSTED_STYLE_REQUEST.  The store may also come from RECALL_READER_STORE
(an s3:// URL).

KEY.json is key material in KEY-SPEC section 8 form; relative file/dir paths in it are
relative to the directory holding it.

--out DIR     write each output's verified bytes to DIR/<output name>.  Nothing is written
              to DIR unless the whole entry is a hit (every output verified).
--json        print a JSON summary of the hit (or miss) on stdout.
--max-age-ms  enforce a maximum age (4.4 case 3).
--now-ms      the reader's clock, in ms since the Unix epoch (default: the system clock).
--no-descriptor  do not GET recall-store.json (section 1 says a reader SHOULD check it).

Exit status: 0 hit, 1 miss (reason on stderr), 2 usage or bad input (including key
material that KEY-SPEC rejects, missing Python packages), 3 the store could not be read
(network, permissions, a server error other than "no such key") or the reader failed
unexpectedly.  Only a definite miss exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

sys.dont_write_bytecode = True  # no __pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import blake3
    import boto3
    import botocore.config
    import botocore.exceptions
    import cbor2

    import keyspec_ref
except ImportError as _e:  # exit 2, never 1: 1 means "miss"
    print(f"layout_reader: {_e}: needs boto3, cbor2 and blake3 "
          "(pip install -r tests/python/requirements.txt)", file=sys.stderr)
    sys.exit(2)

LAYOUT_VERSION = 1
KEY_SPEC_VERSION = 1
DESCRIPTOR = "recall-store.json"
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
CHUNK = 1 << 20


class Miss(Exception):
    """The entry is a miss (section 4.4); the message says why."""


class Usage(Exception):
    """Bad arguments or bad key material (exit 2)."""


class StoreIOError(Exception):
    """The store could not be read (exit 3)."""


# ---------------------------------------------------------------------------
# S3 access
# ---------------------------------------------------------------------------

def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def parse_store_url(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] -> (bucket, root) (section 7)."""
    m = re.match(r"s3://([^/]+)(/.*)?\Z", url)
    if not m:
        raise Usage(f"--store: {url!r} is not an s3://bucket[/prefix] URL")
    return m.group(1), (m.group(2) or "").strip("/")


class Bucket:
    """A boto3 client for one bucket that records every request it makes."""

    def __init__(self, args):
        endpoint = args.endpoint or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
        region = args.region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        virtual = (_env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") or "").lower() == "true"
        kwargs: dict[str, Any] = {
            "region_name": region,
            # Section 7: path-style unless AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true.
            "config": botocore.config.Config(
                s3={"addressing_style": "virtual" if virtual else "path"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if args.access_key_id or args.secret_access_key:
            if not (args.access_key_id and args.secret_access_key):
                raise Usage("--access-key-id and --secret-access-key go together")
            kwargs["aws_access_key_id"] = args.access_key_id
            kwargs["aws_secret_access_key"] = args.secret_access_key
            if args.session_token:
                kwargs["aws_session_token"] = args.session_token
        self.client = boto3.client("s3", **kwargs)
        self.name = args.bucket
        self.requests: list[str] = []  # "GetObject <key>", ... in order

        def record(params, model, **_):
            self.requests.append(f"{model.name} {params.get('Key', '')}".rstrip())

        self.client.meta.events.register("provide-client-params.s3", record)

    def get(self, key: str):
        """GET one object; None when it does not exist.  Returns the streaming body."""
        try:
            return self.client.get_object(Bucket=self.name, Key=key)["Body"]
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreIOError(f"GET {key}: {e}") from None
        except botocore.exceptions.BotoCoreError as e:
            raise StoreIOError(f"GET {key}: {e}") from None


def join(root: str, rel: str) -> str:
    """Object key of a layout path (section 2: paths are relative to the store root)."""
    return f"{root}/{rel}" if root else rel


# ---------------------------------------------------------------------------
# Section 1: the descriptor
# ---------------------------------------------------------------------------

def check_descriptor(bucket: Bucket, root: str) -> dict:
    body = bucket.get(join(root, DESCRIPTOR))
    if body is None:
        # Section 1 does not say what a reader does without a descriptor.  Literal reading:
        # nothing ever opened this root, so nothing can be cached in it.
        raise Miss(f"no descriptor {join(root, DESCRIPTOR)!r} at the store root")
    try:
        d = json.loads(body.read())
    except ValueError as e:
        raise Miss(f"descriptor does not decode as JSON: {e}") from None
    if not isinstance(d, dict):
        raise Miss("descriptor is not a JSON object")
    if d.get("layout_version") != LAYOUT_VERSION:
        raise Miss(f"descriptor layout_version is {d.get('layout_version')!r}, this reader knows {LAYOUT_VERSION}")
    if d.get("key_spec_version") != KEY_SPEC_VERSION:
        raise Miss(f"descriptor key_spec_version is {d.get('key_spec_version')!r}, this reader computes {KEY_SPEC_VERSION}")
    return d


# ---------------------------------------------------------------------------
# Section 4: the manifest
# ---------------------------------------------------------------------------

def _is_uint(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


KEY_FIELDS = {  # 4.1, row `key`
    "spec_version": _is_uint,
    "key": lambda v: isinstance(v, str),
    "signature_digest": lambda v: isinstance(v, str),
    "inputs_digest": lambda v: isinstance(v, str),
    "project": lambda v: isinstance(v, str),
    "domain": lambda v: isinstance(v, str),
    "task": lambda v: isinstance(v, str),
    "cache_version": lambda v: isinstance(v, str),
    "salt": lambda v: v is None or isinstance(v, str),
    "inputs": lambda v: isinstance(v, dict),
    "outputs": lambda v: isinstance(v, dict),
}


def decode_manifest(raw: bytes, key: str, project: str, domain: str) -> dict:
    """4.1: decode and check; any failure is a miss (4.4 case 1)."""
    try:
        m = cbor2.loads(raw)
    except Exception as e:  # cbor2 raises several types (CBORDecodeError, ValueError, ...)
        raise Miss(f"manifest does not decode as CBOR: {e}") from None
    if not isinstance(m, dict):
        raise Miss("manifest is not a CBOR map")
    for field in ("layout_version", "key", "outputs", "created_at_ms", "expires_at_ms", "producer"):
        if field not in m:
            raise Miss(f"manifest lacks field {field!r}")
    if m["layout_version"] != LAYOUT_VERSION or not _is_uint(m["layout_version"]):
        raise Miss(f"manifest layout_version is {m['layout_version']!r}")
    k = m["key"]
    if not isinstance(k, dict):
        raise Miss("manifest field 'key' is not a map")
    for field, ok in KEY_FIELDS.items():
        if field not in k:
            raise Miss(f"manifest lacks field key.{field}")
        if not ok(k[field]):
            raise Miss(f"manifest field key.{field} has the wrong type: {k[field]!r}")
    # 4.1: key.key, key.project, key.domain must match the path it was read from.
    if k["key"] != key:
        raise Miss(f"manifest key.key {k['key']!r} differs from the path's key {key}")
    if k["project"] != project:
        raise Miss(f"manifest key.project {k['project']!r} differs from the path's project {project!r}")
    if k["domain"] != domain:
        raise Miss(f"manifest key.domain {k['domain']!r} differs from the path's domain {domain!r}")
    if not isinstance(m["outputs"], dict):
        raise Miss("manifest field 'outputs' is not a map")
    for name, o in m["outputs"].items():
        if not isinstance(name, str):
            raise Miss(f"manifest output name {name!r} is not text")
        if not isinstance(o, dict):
            raise Miss(f"manifest output {name!r} is not a map")
        for field in ("type", "size", "digest"):
            if field not in o:
                raise Miss(f"manifest output {name!r} lacks field {field!r}")
        if not isinstance(o["type"], str):
            raise Miss(f"manifest output {name!r}: type is not text")
        if not _is_uint(o["size"]):
            raise Miss(f"manifest output {name!r}: size {o['size']!r} is not an unsigned integer")
        if not isinstance(o["digest"], str) or not HEX64.match(o["digest"]):
            raise Miss(f"manifest output {name!r}: digest {o['digest']!r} is not 64 lowercase hex")
        if "inline" in o and not isinstance(o["inline"], bytes):
            raise Miss(f"manifest output {name!r}: inline is not a byte string")
    if not _is_int(m["created_at_ms"]):
        raise Miss(f"manifest created_at_ms {m['created_at_ms']!r} is not an integer")
    if m["expires_at_ms"] is not None and not _is_int(m["expires_at_ms"]):
        raise Miss(f"manifest expires_at_ms {m['expires_at_ms']!r} is neither an integer nor null")
    if not isinstance(m["producer"], str):
        raise Miss("manifest producer is not text")
    return m


# ---------------------------------------------------------------------------
# The whole read
# ---------------------------------------------------------------------------

def load_material(path: str) -> tuple[dict, dict]:
    """KEY-SPEC section 8 material -> (derived digests, {project, domain, task, ...})."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Usage(f"--material: cannot read {path!r}: {e}") from None
    try:
        material = keyspec_ref.json_loads(text)
        derived = keyspec_ref.derive(material, os.path.dirname(os.path.abspath(path)))
    except keyspec_ref.SpecError as e:
        raise Usage(f"key material rejected (KEY-SPEC section 9): {e}") from None
    except ValueError as e:
        raise Usage(f"--material: not JSON: {e}") from None
    fields = material.to_dict("material")
    info = {
        "project": fields["project"],
        "domain": fields["domain"],
        "task": fields["task"],
        "cache_version": keyspec_ref.check_cache_version(fields["cache_version"]),
        "salt": fields.get("salt"),
        "outputs": {o.to_dict("output")["name"]: o.to_dict("output")["type"]
                    for o in fields.get("outputs", [])},
    }
    return derived, info


def read_entry(args) -> dict:
    derived, info = load_material(args.material)
    key = derived["key"]
    project, domain = info["project"], info["domain"]
    bucket = Bucket(args)
    root = args.root
    summary: dict[str, Any] = {
        "key": key,
        "project": project,
        "domain": domain,
        "task": info["task"],
        "cache_version": info["cache_version"],
        "bucket": bucket.name,
        "root": root,
        "requests": bucket.requests,
        "warnings": [],
    }
    now_ms = args.now_ms if args.now_ms is not None else int(time.time() * 1000)

    try:
        if not args.no_descriptor:
            summary["descriptor"] = check_descriptor(bucket, root)

        # Section 2: the manifest path from project, domain and key alone; one GET, no LIST.
        tenant = join(root, f"tenants/{project}/{domain}")
        manifest_key = f"{tenant}/entries/{key[:2]}/{key}"
        summary["manifest_path"] = manifest_key
        body = bucket.get(manifest_key)
        if body is None:
            raise Miss(f"no manifest at {manifest_key}")
        raw = body.read()
        m = decode_manifest(raw, key, project, domain)

        # Not required by LAYOUT.md: report whether the manifest is the deterministic
        # encoding section 4 says it is, and whether its key components agree with ours.
        try:
            summary["canonical_cbor"] = cbor2.dumps(m, canonical=True) == raw
        except Exception:  # noqa: BLE001
            summary["canonical_cbor"] = False
        k = m["key"]
        summary["key_components_match"] = (
            k["signature_digest"] == derived["signature_digest"]
            and k["inputs_digest"] == derived["inputs_digest"]
            and k["task"] == info["task"]
            and k["cache_version"] == info["cache_version"]
            and k["salt"] == info["salt"]
            and k["spec_version"] == KEY_SPEC_VERSION
            and {n: (v.get("digest") if isinstance(v, dict) else v) for n, v in k["inputs"].items()}
            == derived["input_digests"]
            and k["outputs"] == info["outputs"]
        )
        if set(m["outputs"]) != set(info["outputs"]):
            summary["warnings"].append(
                f"manifest outputs {sorted(m['outputs'])} are not the declared outputs "
                f"{sorted(info['outputs'])}")
        for name, o in m["outputs"].items():
            if name in info["outputs"] and o["type"] != info["outputs"][name]:
                summary["warnings"].append(
                    f"output {name!r}: manifest type {o['type']!r}, declared {info['outputs'][name]!r}")

        summary["producer"] = m["producer"]
        summary["created_at_ms"] = m["created_at_ms"]
        summary["expires_at_ms"] = m["expires_at_ms"]
        summary["now_ms"] = now_ms
        # 4.4 case 2: expired at or past expires_at_ms.
        if m["expires_at_ms"] is not None and now_ms >= m["expires_at_ms"]:
            raise Miss(f"entry expired at {m['expires_at_ms']} ms (now {now_ms} ms)")
        # 4.4 case 3: a maximum age the reader enforces.
        if args.max_age_ms is not None and now_ms - m["created_at_ms"] > args.max_age_ms:
            raise Miss(f"entry is {now_ms - m['created_at_ms']} ms old, more than --max-age-ms {args.max_age_ms}")

        summary["outputs"] = fetch_outputs(bucket, tenant, m["outputs"], args.out)
    except Miss as e:
        summary["result"] = "miss"
        summary["reason"] = str(e)
        return summary
    summary["result"] = "hit"
    return summary


def fetch_outputs(bucket: Bucket, tenant: str, outputs: dict, out_dir: str | None) -> dict:
    """4.2, 4.4 case 4: verify every output before any byte is handed out.

    Bytes go to a private temporary directory; only when every output verified are the
    files moved into out_dir (so a miss leaves out_dir untouched)."""
    stage_parent = out_dir if out_dir else None
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".layout-reader-", dir=stage_parent)
    result = {}
    try:
        for name, o in sorted(outputs.items()):
            # An output name becomes a file name: it must obey KEY-SPEC section 3, or a
            # hostile manifest could write outside out_dir.
            try:
                keyspec_ref.check_name(name, "output name")
            except keyspec_ref.SpecError as e:
                raise Miss(f"manifest output name is not a valid name: {e}") from None
            staged = os.path.join(stage, name)
            if "inline" in o:
                data = o["inline"]
                if len(data) != o["size"]:
                    raise Miss(f"output {name!r}: inline bytes are {len(data)} long, manifest says {o['size']}")
                got = blake3.blake3(data).hexdigest()
                if got != o["digest"]:
                    raise Miss(f"output {name!r}: inline bytes have BLAKE3 {got}, manifest says {o['digest']}")
                with open(staged, "wb") as f:
                    f.write(data)
                where = "inline"
            else:
                d = o["digest"]
                blob_key = f"{tenant}/blobs/{d[:2]}/{d}"
                body = bucket.get(blob_key)
                if body is None:
                    raise Miss(f"output {name!r}: blob {blob_key} is missing")
                h = blake3.blake3()
                size = 0
                try:
                    with open(staged, "wb") as f:
                        for chunk in body.iter_chunks(CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            f.write(chunk)
                except (botocore.exceptions.BotoCoreError, OSError) as e:
                    raise StoreIOError(f"reading blob {blob_key}: {e}") from None
                if size != o["size"]:
                    raise Miss(f"output {name!r}: blob {blob_key} is {size} bytes, manifest says {o['size']}")
                got = h.hexdigest()
                if got != d:
                    raise Miss(f"output {name!r}: blob {blob_key} has BLAKE3 {got}, manifest says {d}")
                where = blob_key
            result[name] = {"type": o["type"], "size": o["size"], "digest": o["digest"],
                            "inline": "inline" in o, "source": where}
        # Every output verified: hand them out.
        for name in result:
            if out_dir:
                final = os.path.join(out_dir, name)
                os.replace(os.path.join(stage, name), final)
                result[name]["file"] = final
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Usage(message)


def parse_args(argv: list[str]):
    p = _Parser(description="Read one recall cache entry from S3 (docs/LAYOUT.md).")
    p.add_argument("--material", required=True, help="key material JSON (KEY-SPEC section 8)")
    p.add_argument("--store", help="s3://bucket[/prefix] (or env RECALL_READER_STORE)")
    p.add_argument("--bucket")
    p.add_argument("--root", help="prefix inside the bucket (the store root)")
    p.add_argument("--endpoint")
    p.add_argument("--region")
    p.add_argument("--access-key-id")
    p.add_argument("--secret-access-key")
    p.add_argument("--session-token")
    p.add_argument("--out", help="directory to write one file per output into")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--max-age-ms", type=int)
    p.add_argument("--now-ms", type=int)
    p.add_argument("--no-descriptor", action="store_true")
    args = p.parse_args(argv)
    store = args.store or (None if args.bucket else os.environ.get("RECALL_READER_STORE"))
    if store:
        if args.bucket or args.root is not None:
            raise Usage("give either --store or --bucket/--root, not both")
        args.bucket, args.root = parse_store_url(store)
    if not args.bucket:
        raise Usage("no store: give --store s3://bucket[/prefix] or --bucket (or set RECALL_READER_STORE)")
    args.root = (args.root or "").strip("/")
    if args.max_age_ms is not None and args.max_age_ms < 0:
        raise Usage("--max-age-ms must not be negative")
    return args


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv[1:])
        summary = read_entry(args)
    except Usage as e:
        print(f"layout_reader: {e}", file=sys.stderr)
        return 2
    except StoreIOError as e:
        print(f"layout_reader: store error: {e}", file=sys.stderr)
        return 3
    except Exception:  # noqa: BLE001  a bug or an unexpected failure: never exit 1 (miss)
        import traceback
        traceback.print_exc()
        return 3
    if args.json:
        json.dump(summary, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    if summary["result"] == "miss":
        print(f"layout_reader: miss: {summary['reason']}", file=sys.stderr)
        return 1
    if not args.json:
        for name, o in sorted(summary["outputs"].items()):
            print(f"{name}\t{o['type']}\t{o['size']}\t{o['digest']}\t{o.get('file', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

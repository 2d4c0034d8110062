//! Every wire type against the OpenAPI document, and against the JSON recalld wrote before
//! the types existed.
//!
//! The schemas are made strict for the check: an object schema without
//! `additionalProperties` gets `false`, so a field that a type writes but the document does
//! not declare fails; OpenAPI 3.0's `nullable` becomes "or null" for the JSON Schema
//! validator.

use std::time::Duration;

use bytes::Bytes;
use recall_api::*;
use recall_key::{Digest, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{
    DigestChange, GcOptions, LeaseRecord, Manifest, Miss, NondeterminismOutcome,
    NondeterminismRecord, OutputRecord, TaskEntry, Tenant,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

/// `schema` made strict (see the module doc), recursively.
fn strict(schema: &Json) -> Json {
    match schema {
        Json::Object(map) => {
            let mut out: serde_json::Map<String, Json> =
                map.iter().map(|(k, v)| (k.clone(), strict(v))).collect();
            if out.get("type") == Some(&json!("object"))
                && out.contains_key("properties")
                && !out.contains_key("additionalProperties")
            {
                out.insert("additionalProperties".into(), json!(false));
            }
            if out.remove("nullable") == Some(json!(true)) {
                return json!({ "anyOf": [Json::Object(out), { "type": "null" }] });
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

fn document() -> Json {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// Serializes `value`, validates it against the component schema `name`, and checks that
/// it reads back as the same value.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let schemas = strict(&document()["components"]["schemas"]);
    assert!(schemas.get(name).is_some(), "no component schema {name}");
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": { "schemas": schemas },
    });
    let validator = jsonschema::validator_for(&root).expect("the schema compiles");
    let json = serde_json::to_value(value).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not describe {json}: {errors:?}"
    );
    let back: T = serde_json::from_value(json).unwrap();
    assert_eq!(&back, value);
}

fn digest(text: &str) -> Digest {
    Digest::of_content(text.as_bytes())
}

fn record() -> NondeterminismRecord {
    NondeterminismRecord {
        observed_at_ms: 3,
        producer: "host/2".into(),
        outcome: NondeterminismOutcome::Discarded,
        outputs: [(
            "big".to_string(),
            DigestChange {
                previous: digest("x"),
                current: digest("y"),
            },
        )]
        .into_iter()
        .collect(),
    }
}

fn manifest(expires_at_ms: Option<i64>) -> Manifest {
    let mut m = KeyMaterial::new("p", "d", "wf.t", "1").unwrap();
    m.add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))
        .unwrap();
    m.add_output("small", ValueType::Int).unwrap();
    m.add_output("big", ValueType::File).unwrap();
    let out = |inline: Option<&'static [u8]>, size| OutputRecord {
        ty: "int".into(),
        size,
        digest: digest("x"),
        inline: inline.map(Bytes::from_static),
    };
    Manifest {
        layout_version: 1,
        outputs: [
            ("small".to_string(), out(Some(b"\x09"), 1)),
            ("big".to_string(), out(None, 9000)),
        ]
        .into_iter()
        .collect(),
        key: m.derive().unwrap(),
        created_at_ms: 1,
        expires_at_ms,
        producer: "host/1".into(),
        nondeterminism: vec![record()],
    }
}

fn misses() -> Vec<Miss> {
    vec![
        Miss::NotFound,
        Miss::Expired { created_at_ms: 7 },
        Miss::Undecodable {
            reason: "bad cbor".into(),
        },
        Miss::Broken {
            output: "big".into(),
            reason: "missing".into(),
        },
    ]
}

#[test]
fn the_schemas_describe_every_type() {
    for expires in [None, Some(2)] {
        let m = manifest(expires);
        check("Manifest", &ManifestView::from(&m));
        check("NondeterminismRecord", &RecordView::from(&record()));
        check(
            "StatusBody",
            &HitAnswer {
                from_hot_tier: true,
                key: m.key.key,
                manifest: ManifestView::from(&m),
                status: CacheStatus::CacheHit,
            },
        );
        check("StatusBody", &PublishAnswer::populated(m.key.key, &m, None));
        check(
            "StatusBody",
            &PublishAnswer::existed(m.key.key, Some(&m), Some(&record())),
        );
        check("StatusBody", &PublishAnswer::existed(m.key.key, None, None));
    }
    for miss in misses() {
        check("StatusBody", &MissAnswer::new(digest("k"), &miss));
    }
    check("StatusBody", &MissAnswer::skipped(digest("k")));
    for status in [
        CacheStatus::CacheLookupFailure,
        CacheStatus::CachePutFailure,
    ] {
        let failure = FailureAnswer {
            cause: "store down".into(),
            key: digest("k"),
            status,
        };
        check("StatusBody", &failure);
    }
    check(
        "LeaseRequest",
        &LeaseRequest {
            owner: "host/1".into(),
            heartbeat_seconds: 30,
        },
    );
    let lease = LeaseRecord {
        owner: "host/1".into(),
        released: false,
        acquired_at_ms: 1,
        renewed_at_ms: 2,
        heartbeat_ms: 3,
        expires_at_ms: 4,
    };
    check("Lease", &LeaseAnswer::new(true, &lease));
    check("Released", &ReleaseAnswer { released: true });
    let tenant = EvictRequest {
        project: "p".into(),
        domain: "d".into(),
        ..EvictRequest::default()
    };
    check("EvictRequest", &tenant);
    check(
        "EvictRequest",
        &EvictRequest {
            key: Some(digest("k").to_hex()),
            dry_run: true,
            ..tenant.clone()
        },
    );
    check(
        "EvictRequest",
        &EvictRequest {
            task: Some("wf.t".into()),
            cache_version: Some("1".into()),
            ..tenant.clone()
        },
    );
    check(
        "EvictRequest",
        &EvictRequest {
            older_than_seconds: Some(60),
            ..tenant.clone()
        },
    );
    let evicted = recall_store::EvictReport {
        entries: 1,
        markers: 2,
        leases: 3,
        blobs: 4,
    };
    for selector in ["key", "task", "older_than_seconds", "tenant"] {
        check(
            "EvictReport",
            &EvictReport::new("p", "d", selector, true, &evicted),
        );
    }
    check("GcRequest", &GcRequest::default());
    check(
        "GcRequest",
        &GcRequest {
            grace_seconds: Some(10),
            dry_run: true,
            project: Some("p".into()),
            domain: Some("d".into()),
        },
    );
    check(
        "GcReport",
        &GcReport::new(&GcOptions::default(), &gc_report()),
    );
    let t = Tenant::new("p", "d").unwrap();
    check(
        "Tenants",
        &Tenants {
            tenants: vec![TenantView::from(&t)],
        },
    );
    check(
        "Tasks",
        &Tasks {
            domain: "d".into(),
            project: "p".into(),
            tasks: vec!["wf.t".into()],
        },
    );
    let entry = TaskEntry {
        cache_version: "1".into(),
        key: digest("k"),
        marked_at_ms: 5,
    };
    check(
        "TaskEntries",
        &TaskEntries {
            domain: "d".into(),
            entries: vec![TaskEntryView::from(&entry)],
            project: "p".into(),
            task: "wf.t".into(),
        },
    );
}

fn gc_report() -> recall_store::GcReport {
    recall_store::GcReport {
        manifests: 1,
        undecodable_manifests: 2,
        blobs: 3,
        referenced_blobs: 4,
        blobs_in_grace: 5,
        collectable_blobs: 6,
        collectable_bytes: 7,
        deleted_blobs: 8,
        orphan_markers: 9,
        expired_entries: 10,
    }
}

#[test]
fn the_status_enum_is_the_documents() {
    let doc = document();
    let listed = &doc["components"]["schemas"]["StatusBody"]["properties"]["status"]["enum"];
    let ours: Vec<&str> = CacheStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(listed, &json!(ours));
}

#[test]
fn the_strict_check_can_fail() {
    // A field the document does not declare, and a wrong type, are both refused.
    let schemas = strict(&document()["components"]["schemas"]);
    let root =
        json!({ "$ref": "#/components/schemas/Lease", "components": { "schemas": schemas } });
    let validator = jsonschema::validator_for(&root).unwrap();
    let mut lease = serde_json::to_value(LeaseAnswer::new(
        false,
        &LeaseRecord {
            owner: "o".into(),
            released: false,
            acquired_at_ms: 1,
            renewed_at_ms: 1,
            heartbeat_ms: 1,
            expires_at_ms: 1,
        },
    ))
    .unwrap();
    assert!(validator.is_valid(&lease));
    lease["holder"] = json!("o");
    assert!(!validator.is_valid(&lease));
    lease.as_object_mut().unwrap().remove("holder");
    lease["granted"] = json!("yes");
    assert!(!validator.is_valid(&lease));
}

/// The JSON recalld wrote before the wire types: `serde_json` maps built with `json!`, as in
/// the former `manifest_json`, `miss_json` and handler bodies. The same values, and the
/// same top-level key order (those maps sorted their keys). The manifest's `key` keeps
/// `DerivedKey`'s field order, as the former hit answer (a borrowing view) wrote it.
#[test]
fn answers_are_the_former_json() {
    use base64::Engine as _;
    let same = |typed: String, former: Json| {
        let parsed: Json = serde_json::from_str(&typed).unwrap();
        assert_eq!(parsed, former, "{typed}");
        let keys: Vec<String> = parsed.as_object().unwrap().keys().cloned().collect();
        let order = top_level_keys(&typed);
        assert_eq!(order, keys, "top-level keys not sorted in {typed}");
    };
    let record_json = |r: &NondeterminismRecord| {
        json!({
            "observed_at_ms": r.observed_at_ms,
            "producer": r.producer,
            "outcome": r.outcome.as_str(),
            "outputs": r.outputs.iter().map(|(n, c)| (n.clone(), json!({
                "previous": c.previous.to_hex(), "current": c.current.to_hex(),
            }))).collect::<serde_json::Map<_, _>>(),
        })
    };
    let manifest_json = |m: &Manifest| {
        let outputs: serde_json::Map<String, Json> = m
            .outputs
            .iter()
            .map(|(name, record)| {
                let mut out = json!({
                    "type": record.ty, "size": record.size, "digest": record.digest.to_hex(),
                });
                if let Some(bytes) = &record.inline {
                    out["inline_base64"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                (name.clone(), out)
            })
            .collect();
        json!({
            "layout_version": m.layout_version,
            "key": m.key,
            "outputs": outputs,
            "created_at_ms": m.created_at_ms,
            "expires_at_ms": m.expires_at_ms,
            "producer": m.producer,
            "nondeterminism": m.nondeterminism.iter().map(record_json).collect::<Vec<_>>(),
        })
    };
    let text = |v: &dyn erased::Ser| v.text();
    for expires in [None, Some(2)] {
        let m = manifest(expires);
        same(text(&ManifestView::from(&m)), manifest_json(&m));
        let key = m.key.key;
        same(
            text(&PublishAnswer::populated(key, &m, Some(&record()))),
            json!({
                "key": key.to_hex(), "manifest": manifest_json(&m),
                "nondeterminism": record_json(&record()), "status": "CACHE_POPULATED",
            }),
        );
        same(
            text(&PublishAnswer::existed(key, None, None)),
            json!({
                "key": key.to_hex(), "already_existed": true, "nondeterminism": null,
                "status": "CACHE_HIT",
            }),
        );
    }
    let key = digest("k");
    let former_miss = |miss: &Miss| match miss {
        Miss::NotFound => json!({ "reason": "not_found" }),
        Miss::Expired { created_at_ms } => {
            json!({ "reason": "expired", "created_at_ms": created_at_ms })
        }
        Miss::Undecodable { reason } => json!({ "reason": "undecodable", "detail": reason }),
        Miss::Broken { output, reason } => {
            json!({ "reason": "broken", "output": output, "detail": reason })
        }
    };
    for miss in misses() {
        let mut former = former_miss(&miss);
        former["key"] = json!(key.to_hex());
        former["status"] = json!("CACHE_MISS");
        same(text(&MissAnswer::new(key, &miss)), former);
        assert_eq!(MissAnswer::new(key, &miss).miss(), miss);
    }
    same(
        text(&MissAnswer::skipped(key)),
        json!({ "key": key.to_hex(), "reason": "overwrite_requested", "status": "CACHE_SKIPPED" }),
    );
    let r = gc_report();
    let options = GcOptions {
        grace: Duration::from_secs(60),
        dry_run: true,
    };
    same(
        text(&GcReport::new(&options, &r)),
        json!({
            "dry_run": true, "grace_seconds": 60, "manifests": 1, "undecodable_manifests": 2,
            "blobs": 3, "referenced_blobs": 4, "blobs_in_grace": 5, "collectable_blobs": 6,
            "collectable_bytes": 7, "deleted_blobs": 8, "orphan_markers": 9,
            "expired_entries": 10,
        }),
    );
    assert_eq!(
        recall_store::GcReport::from(&GcReport::new(&options, &r)),
        r
    );
    let e = recall_store::EvictReport {
        entries: 1,
        markers: 2,
        leases: 3,
        blobs: 4,
    };
    same(
        text(&EvictReport::new("p", "d", "task", false, &e)),
        json!({
            "project": "p", "domain": "d", "selector": "task", "dry_run": false,
            "entries": 1, "markers": 2, "leases": 3, "blobs": 4, "status": "CACHE_EVICTED",
        }),
    );
    let lease = LeaseRecord {
        owner: "o".into(),
        released: false,
        acquired_at_ms: 1,
        renewed_at_ms: 2,
        heartbeat_ms: 3,
        expires_at_ms: 4,
    };
    same(
        text(&LeaseAnswer::new(true, &lease)),
        json!({
            "granted": true, "owner": "o", "acquired_at_ms": 1, "renewed_at_ms": 2,
            "heartbeat_ms": 3, "expires_at_ms": 4,
        }),
    );
}

#[test]
fn a_manifest_survives_the_wire() {
    let m = manifest(Some(2));
    let json = serde_json::to_string(&ManifestView::from(&m)).unwrap();
    let view: ManifestView = serde_json::from_str(&json).unwrap();
    assert_eq!(Manifest::try_from(view).unwrap(), m);
}

#[test]
fn a_manifest_with_a_bad_output_name_or_inline_bytes_is_refused() {
    let mut view = ManifestView::from(&manifest(None));
    let small = view.outputs.remove("small").unwrap();
    view.outputs.insert("../escape".into(), small.clone());
    let err = Manifest::try_from(view.clone()).unwrap_err();
    assert!(matches!(err, WireError::OutputName(_)), "{err}");
    view.outputs.remove("../escape");
    view.outputs.insert(
        "small".into(),
        OutputView {
            inline_base64: Some("not base64!".into()),
            ..small
        },
    );
    let err = Manifest::try_from(view).unwrap_err();
    assert!(err.to_string().contains("small"), "{err}");
}

/// The keys of a JSON object's text at its top level, in the order written.
fn top_level_keys(text: &str) -> Vec<String> {
    let (mut depth, mut keys, mut chars) = (0, Vec::new(), text.char_indices());
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let mut end = i + 1;
                while let Some((j, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        end = j;
                        break;
                    }
                }
                if depth == 1 && text[end + 1..].starts_with(':') {
                    keys.push(text[i + 1..end].to_string());
                }
            }
            _ => {}
        }
    }
    keys
}

/// `Serialize` behind a reference, for the table above.
mod erased {
    pub trait Ser {
        fn text(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn text(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

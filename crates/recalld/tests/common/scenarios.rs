//! The behaviours every backend must show, each written once and run on local disk and S3.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::proxy::Proxy;
use super::{
    ADMIN, ALPHA_READ, ALPHA_WRITE, Backend, Daemon, Material, Options, bytes, lease_request,
    tokens,
};

/// `POST /v1/evict` in tenant alpha/development with the selector fields of `fields`.
async fn evict_alpha(d: &Daemon, fields: Value) -> (u16, Value) {
    let mut body = json!({ "project": "alpha", "domain": "development" });
    for (k, v) in fields.as_object().expect("object") {
        body[k] = v.clone();
    }
    d.post("/v1/evict", &body, None).await
}

/// Asserts a 400 whose `error` contains `needle` (the field or value at fault).
#[track_caller]
fn assert_bad_request(status: u16, body: &Value, needle: &str) {
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(error.contains(needle), "{needle:?} in {body}");
}

/// A proxy in front of the S3 backend's server, which a test can cut and restore.
async fn proxy_to_s3(backend: &Backend) -> Proxy {
    let endpoint = backend.s3_endpoint().expect("an S3 backend");
    let authority = endpoint
        .strip_prefix("http://")
        .expect("a proxy needs an http:// S3 endpoint")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let upstream = tokio::net::lookup_host(authority.as_str())
        .await
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| panic!("cannot resolve the S3 endpoint {endpoint}"));
    Proxy::start(upstream).await
}

/// Miss → publish through A → hit from the store through B → hit from B's memory; blobs and
/// inline outputs come back byte for byte.
pub async fn miss_publish_store_hit_hot_hit(backend: &Backend) {
    let a = Daemon::start(backend, &Options::default());
    let b = Daemon::start(backend, &Options::default());
    let m = Material::new(&a, "alpha", "wf.train", 1, &["model", "score"]).await;

    let (status, body) = b.lookup(&m, None).await;
    assert_eq!((status, body["status"].as_str()), (404, Some("CACHE_MISS")));
    assert_eq!(body["reason"], "not_found");

    let model = bytes(20_000, 1);
    let score = b"0.97".to_vec();
    let outputs = [("model", model.clone()), ("score", score.clone())];
    let (status, body) = a.publish(&m, &outputs, "", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "CACHE_POPULATED");
    assert_eq!(body["key"], m.key.as_str());

    // Through A: written through to memory.
    let (status, body) = a.lookup(&m, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    assert_eq!(body["from_hot_tier"], true);

    // Through B: the first hit comes from the store, the second from memory.
    let (status, body) = b.lookup(&m, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    assert_eq!(body["from_hot_tier"], false, "{body}");
    let (status, body) = b.lookup(&m, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["from_hot_tier"], true, "{body}");
    let (status, body) = b.post("/v1/lookup", &m.json, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    assert_eq!(body["from_hot_tier"], true);

    // Outputs: the small one inline, the large one a verified blob.
    let outputs = &body["manifest"]["outputs"];
    let inline = base64::engine::general_purpose::STANDARD
        .decode(outputs["score"]["inline_base64"].as_str().expect("inline"))
        .expect("base64");
    assert_eq!(inline, score);
    assert_eq!(outputs["model"]["size"], model.len());
    assert!(outputs["model"].get("inline_base64").is_none());
    let digest = outputs["model"]["digest"].as_str().expect("digest");
    assert_eq!(digest, blake3::hash(&model).to_hex().as_str());
    let blob = b.blob("alpha", "development", digest).await;
    assert_eq!(blob.status().as_u16(), 200);
    assert_eq!(blob.bytes().await.expect("blob body").as_ref(), &model[..]);

    // Publishing again without overwrite leaves the entry alone.
    let (status, body) = b
        .publish(&m, &outputs_of(&[("model", 3), ("score", 4)]), "", None)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    assert_eq!(body["already_existed"], true);

    assert_eq!(
        b.metric("recall_lookups_total{tier=\"store\",result=\"hit\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.metric("recall_lookups_total{tier=\"store\",result=\"miss\"}")
            .await,
        1.0
    );
}

fn outputs_of(spec: &[(&'static str, u64)]) -> Vec<(&'static str, Vec<u8>)> {
    spec.iter()
        .map(|(name, seed)| (*name, bytes(6000, *seed)))
        .collect()
}

/// 64 simultaneous cold lookups of one key make one store request.
pub async fn coalescing(backend: &Backend) {
    let a = Daemon::start(backend, &Options::default());
    let b = Daemon::start(backend, &Options::default());
    let m = Material::new(&a, "alpha", "wf.coalesce", 7, &["o"]).await;
    let (status, body) = a.publish(&m, &outputs_of(&[("o", 9)]), "", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(b.metric("recall_hot_store_requests").await, 0.0);

    // Open 64 connections first, so the 64 lookups arrive together rather than staggered by
    // connection set-up.
    let warm = futures::future::join_all((0..64).map(|_| b.get("/healthz", None))).await;
    assert!(warm.iter().all(|(status, _)| *status == 200));
    let path = m.entry_path();
    let answers = futures::future::join_all((0..64).map(|_| b.get(&path, None))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["status"], "CACHE_HIT");
    }
    assert_eq!(
        b.metric("recall_hot_store_requests").await,
        1.0,
        "64 concurrent cold lookups must make exactly one store request"
    );
    let from_store = answers
        .iter()
        .filter(|(_, body)| body["from_hot_tier"] == false)
        .count();
    assert!(from_store >= 1, "the filling lookup reports the store");
}

/// Who may do what: 401 without a token, 403 outside the token's scope or level.
pub async fn auth_matrix(backend: &Backend) {
    let d = Daemon::start(backend, &Options::toml(&tokens()));
    let alpha = Material::new(&d, "alpha", "wf.auth", 1, &["o"]).await;
    let beta = Material::new(&d, "beta", "wf.auth", 1, &["o"]).await;
    let out = outputs_of(&[("o", 5)]);

    // Open endpoints.
    assert_eq!(d.get("/healthz", None).await.0, 200);
    assert_eq!(d.get("/openapi.json", None).await.0, 200);
    // No token, or an unknown one.
    assert_eq!(d.lookup(&alpha, None).await.0, 401);
    assert_eq!(d.lookup(&alpha, Some("not-a-token-at-all")).await.0, 401);
    assert_eq!(d.publish(&alpha, &out, "", None).await.0, 401);
    // Read token: reads its project, nothing else.
    assert_eq!(d.lookup(&alpha, Some(ALPHA_READ)).await.0, 404);
    assert_eq!(d.lookup(&beta, Some(ALPHA_READ)).await.0, 403);
    assert_eq!(d.publish(&alpha, &out, "", Some(ALPHA_READ)).await.0, 403);
    let lease = lease_request("w1", 10);
    let lease_path = alpha.lease_path();
    assert_eq!(d.post(&lease_path, &lease, Some(ALPHA_READ)).await.0, 403);
    // Write token: publishes and leases in its project, not in another, no admin.
    let (status, body) = d.publish(&alpha, &out, "", Some(ALPHA_WRITE)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(d.publish(&beta, &out, "", Some(ALPHA_WRITE)).await.0, 403);
    assert_eq!(d.post(&lease_path, &lease, Some(ALPHA_WRITE)).await.0, 200);
    let (status, body) = d.lookup(&alpha, Some(ALPHA_READ)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    // A second publish with other bytes keeps the entry and reports and records the difference.
    let (status, body) = d
        .publish(&alpha, &outputs_of(&[("o", 6)]), "", Some(ALPHA_WRITE))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nondeterminism"]["outcome"], "discarded", "{body}");
    assert!(body["nondeterminism"]["producer"].is_string(), "{body}");
    let (_, seen) = d.lookup(&alpha, Some(ALPHA_READ)).await;
    assert_eq!(
        seen["manifest"]["nondeterminism"][0], body["nondeterminism"],
        "{seen}"
    );
    assert_eq!(
        seen["manifest"]["outputs"]["o"]["digest"],
        body["nondeterminism"]["outputs"]["o"]["previous"]
    );
    // Identical bytes: nothing observed.
    let (status, body) = d.publish(&alpha, &out, "", Some(ALPHA_WRITE)).await;
    assert_eq!(
        (status, &body["nondeterminism"]),
        (200, &Value::Null),
        "{body}"
    );
    // Listing: a token sees only the tenants of its scope, and is refused others' tasks.
    let (status, body) = d.publish(&beta, &out, "", Some(ADMIN)).await;
    assert_eq!(status, 201, "{body}");
    let tenants = |body: &Value| -> Vec<String> {
        body["tenants"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|t| {
                format!(
                    "{}/{}",
                    t["project"].as_str().unwrap_or(""),
                    t["domain"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let (status, body) = d.get("/v1/tenants", Some(ALPHA_READ)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tenants(&body), ["alpha/development"], "{body}");
    let (status, body) = d.get("/v1/tenants", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        tenants(&body),
        ["alpha/development", "beta/development"],
        "{body}"
    );
    assert_eq!(d.get("/v1/tenants", None).await.0, 401);
    assert_eq!(
        d.get("/v1/tenants", Some("not-a-token-at-all")).await.0,
        401
    );
    let (status, body) = d.get("/v1/tasks/alpha/development", Some(ALPHA_READ)).await;
    assert_eq!(
        (status, &body["tasks"]),
        (200, &json!(["wf.auth"])),
        "{body}"
    );
    assert_eq!(
        d.get("/v1/tasks/beta/development", Some(ALPHA_READ))
            .await
            .0,
        403
    );
    assert_eq!(d.get("/v1/tasks/beta/development", None).await.0, 401);
    assert_eq!(
        d.get("/v1/tasks/beta/development", Some(ADMIN)).await.0,
        200
    );
    assert_eq!(
        d.get("/v1/tasks/alpha/development/wf.auth", Some(ALPHA_READ))
            .await
            .0,
        200
    );
    assert_eq!(
        d.get("/v1/tasks/beta/development/wf.auth", Some(ALPHA_READ))
            .await
            .0,
        403
    );
    let evict = json!({ "project": "alpha", "domain": "development", "key": alpha.key });
    assert_eq!(d.post("/v1/evict", &evict, Some(ALPHA_WRITE)).await.0, 403);
    assert_eq!(d.post("/v1/evict", &evict, None).await.0, 401);
    assert_eq!(d.post("/v1/gc", &json!({}), Some(ALPHA_WRITE)).await.0, 403);
    // Admin.
    let (status, body) = d.post("/v1/evict", &evict, Some(ADMIN)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("CACHE_EVICTED"))
    );
    assert_eq!(body["entries"], 1);
    let (status, body) = d
        .post("/v1/gc", &json!({ "dry_run": true }), Some(ADMIN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.lookup(&alpha, Some(ALPHA_READ)).await.0, 404);
    // Tokens never reach the log.
    let log = d.log();
    for secret in [ADMIN, ALPHA_READ, ALPHA_WRITE] {
        assert!(!log.contains(secret), "a token was logged");
    }
}

/// cache_serialize leases: one holder at a time, release, takeover; waits are counted.
pub async fn leases(backend: &Backend) {
    let d = Daemon::start(backend, &Options::default());
    let m = Material::new(&d, "alpha", "wf.lease", 1, &["o"]).await;
    let path = m.lease_path();
    let ask = |owner: &str| lease_request(owner, 30);

    let (status, first) = d.post(&path, &ask("worker-1"), None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["granted"], true);
    assert_eq!(first["owner"], "worker-1");
    let (_, other) = d.post(&path, &ask("worker-2"), None).await;
    assert_eq!(other["granted"], false);
    assert_eq!(other["owner"], "worker-1");
    assert_eq!(other["expires_at_ms"], first["expires_at_ms"]);
    assert_eq!(d.metric("recall_lease_waits_total").await, 1.0);
    // The holder extends.
    let (_, again) = d.post(&path, &ask("worker-1"), None).await;
    assert_eq!(again["granted"], true);
    // Only the holder releases.
    let (_, r) = d.delete(&format!("{path}?owner=worker-2"), None).await;
    assert_eq!(r["released"], false);
    let (status, r) = d.delete(&format!("{path}?owner=worker-1"), None).await;
    assert_eq!((status, r["released"].as_bool()), (200, Some(true)));
    let (_, taken) = d.post(&path, &ask("worker-2"), None).await;
    assert_eq!(taken["granted"], true);
    assert_eq!(taken["owner"], "worker-2");

    // Bad input is a 400 naming the field.
    let (status, body) = d.post(&path, &lease_request("w", 0), None).await;
    assert_bad_request(status, &body, "heartbeat_seconds");
    let (status, body) = d.post(&path, &lease_request("w", "soon"), None).await;
    assert_bad_request(status, &body, "heartbeat_seconds");
    assert_bad_request(status, &body, "soon");
    let (status, body) = d.post(&path, &json!({ "owner": "w" }), None).await;
    assert_bad_request(status, &body, "heartbeat_seconds");
    let (status, body) = d.delete(&path, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("owner"));
    let (status, body) = d
        .post(
            &format!("/v1/leases/a%20b/development/{}", m.key),
            &ask("w"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("project"),
        "{body}"
    );
    let (status, body) = d
        .post("/v1/leases/alpha/development/00", &ask("w"), None)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("key"),
        "{body}"
    );
}

/// Listing, eviction by key and by task (dry run first), GC, overwrite.
pub async fn evict_list_gc_overwrite(backend: &Backend) {
    let d = Daemon::start(backend, &Options::default());
    let m1 = Material::new(&d, "alpha", "wf.evict", 1, &["o"]).await;
    let m2 = Material::new(&d, "alpha", "wf.evict", 2, &["o"]).await;
    let m3 = Material::new(&d, "alpha", "wf.keep", 3, &["o"]).await;
    for (i, m) in [&m1, &m2, &m3].into_iter().enumerate() {
        let (status, body) = d
            .publish(m, &outputs_of(&[("o", i as u64 + 20)]), "", None)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, list) = d
        .get(
            "/v1/tasks/alpha/development/wf.evict?cache_version=1.0",
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let mut keys: Vec<&str> = list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["key"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    let mut expected = vec![m1.key.as_str(), m2.key.as_str()];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(list["entries"][0]["cache_version"], "1.0");

    // Overwrite: lookups with overwrite are skipped; the new outputs replace the old ones,
    // and this daemon serves the new manifest at once.
    let (status, body) = d
        .get(&format!("{}?overwrite=true", m3.entry_path()), None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (404, Some("CACHE_SKIPPED"))
    );
    let new = outputs_of(&[("o", 99)]);
    let (status, body) = d.publish(&m3, &new, "?overwrite=true", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("CACHE_POPULATED"))
    );
    let (_, body) = d.lookup(&m3, None).await;
    assert_eq!(
        body["manifest"]["outputs"]["o"]["digest"],
        blake3::hash(&new[0].1).to_hex().as_str()
    );

    // Selectors: at most one; bad values are named.
    let tenant = json!({ "project": "alpha", "domain": "development" });
    let (status, body) = evict_alpha(&d, json!({ "key": m1.key, "task": "wf.evict" })).await;
    assert_bad_request(status, &body, "key and task");
    let (status, body) = evict_alpha(&d, json!({ "cache_version": "1.0" })).await;
    assert_bad_request(status, &body, "cache_version");
    let (status, body) = evict_alpha(&d, json!({ "key": "zz" })).await;
    assert_bad_request(status, &body, "key");
    let (status, _) = d
        .post(
            "/v1/evict",
            &json!({ "project": "../x", "domain": "development" }),
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Dry run by task counts and deletes nothing.
    let (status, body) = evict_alpha(&d, json!({ "task": "wf.evict", "dry_run": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["entries"].as_u64(), body["markers"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(body["dry_run"], true);
    assert_eq!(d.lookup(&m1, None).await.0, 200);

    // By key: gone at once, also from this daemon's memory.
    let (status, body) = evict_alpha(&d, json!({ "key": m1.key })).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("CACHE_EVICTED"))
    );
    assert_eq!(body["entries"], 1);
    let (status, body) = d.lookup(&m1, None).await;
    assert_eq!((status, body["status"].as_str()), (404, Some("CACHE_MISS")));
    // By task: the other entry of wf.evict goes, wf.keep stays.
    let (status, body) = evict_alpha(&d, json!({ "task": "wf.evict" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"], 1);
    assert_eq!(d.lookup(&m2, None).await.0, 404);
    assert_eq!(d.lookup(&m3, None).await.0, 200);
    let (_, list) = d.get("/v1/tasks/alpha/development/wf.evict", None).await;
    assert_eq!(list["entries"].as_array().map(Vec::len), Some(0));

    // GC with no grace: the blobs of the evicted entries and the overwritten output go.
    let (status, report) = d
        .post(
            "/v1/gc",
            &json!({ "grace_seconds": 0, "dry_run": true }),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["collectable_blobs"], 3, "{report}");
    assert_eq!(report["deleted_blobs"], 0);
    let (_, report) = d.post("/v1/gc", &json!({ "grace_seconds": 0 }), None).await;
    assert_eq!(report["deleted_blobs"], 3, "{report}");
    assert_eq!(
        d.lookup(&m3, None).await.0,
        200,
        "the live entry survives GC"
    );

    // Dry runs by age and for the whole tenant count the one live entry and delete nothing.
    let (status, body) = evict_alpha(&d, json!({ "older_than_seconds": 0, "dry_run": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["entries"].as_u64(), body["markers"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, body) =
        evict_alpha(&d, json!({ "older_than_seconds": 3600, "dry_run": true })).await;
    assert_eq!((status, body["entries"].as_u64()), (200, Some(0)));
    let (status, body) = evict_alpha(&d, json!({ "dry_run": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["selector"], "tenant");
    assert_eq!(
        (body["entries"].as_u64(), body["blobs"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(d.lookup(&m3, None).await.0, 200);

    // Whole tenant.
    let (status, body) = d.post("/v1/evict", &tenant, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"], 1);
    assert_eq!(d.lookup(&m3, None).await.0, 404);
}

/// SIGTERM while a large publish streams in: the publish finishes, the daemon exits 0, and
/// the entry is complete and verified (never torn).
pub async fn sigterm_during_publish(backend: &Backend, size: usize) {
    let mut a = Daemon::start(backend, &Options::default());
    let m = Material::new(&a, "alpha", "wf.big", 1, &["big"]).await;
    let data = bytes(size, 77);
    let expected = blake3::hash(&data);

    const CHUNK: usize = 1 << 20;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx).map(Ok::<Vec<u8>, std::io::Error>));
    let form = Form::new()
        .text("material", m.json.to_string())
        .part("big", Part::stream_with_length(body, size as u64));
    let request = a.http.post(a.url("/v1/entries")).multipart(form).send();
    let sent = tokio::spawn(request);
    let mut chunks = data.chunks(CHUNK);
    for chunk in chunks.by_ref().take(4) {
        tx.send(chunk.to_vec()).await.expect("body");
    }
    a.terminate();
    // Give the signal a moment to land while the request is mid-body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for chunk in chunks {
        if tx.send(chunk.to_vec()).await.is_err() {
            break;
        }
    }
    drop(tx);
    let response = sent.await.expect("join");
    let published = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                status == 201 || status == 503,
                "publish during shutdown answered {status}: {body}"
            );
            status == 201
        }
        Err(_) => false,
    };
    let exit = tokio::task::spawn_blocking(move || {
        let status = a.wait_exit(Duration::from_secs(60));
        (status, a)
    })
    .await
    .expect("join");
    let (status, a) = exit;
    let status = status.unwrap_or_else(|| panic!("recalld did not exit after SIGTERM"));
    assert!(status.success(), "recalld exited with {status}");
    assert!(a.log().contains("shutdown signal received"));
    assert!(
        published,
        "the in-flight publish was not finished before exit"
    );

    // A fresh daemon over the same store sees the whole entry, verified.
    let c = Daemon::start(backend, &Options::default());
    let (status, body) = c.lookup(&m, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["manifest"]["outputs"]["big"]["size"], size);
    let digest = body["manifest"]["outputs"]["big"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(digest, expected.to_hex().as_str());
    let blob = c.blob("alpha", "development", &digest).await;
    assert_eq!(blob.status().as_u16(), 200);
    let got = blob.bytes().await.expect("blob body");
    assert_eq!(blake3::hash(&got), expected);
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> impl futures::Stream<Item = Vec<u8>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An eviction through A is seen by B once B's memory TTL has passed, and at once by A.
pub async fn eviction_seen_by_other_daemon_within_ttl(backend: &Backend) {
    const TTL: u64 = 2;
    let cfg = Options::toml(&format!("[hot]\nttl_secs = {TTL}\n"));
    let a = Daemon::start(backend, &cfg);
    let b = Daemon::start(backend, &cfg);
    let m = Material::new(&a, "alpha", "wf.ttl", 1, &["o"]).await;
    assert_eq!(
        a.publish(&m, &outputs_of(&[("o", 1)]), "", None).await.0,
        201
    );
    let (status, body) = b.lookup(&m, None).await;
    assert_eq!(
        (status, body["from_hot_tier"].as_bool()),
        (200, Some(false))
    );
    let filled = Instant::now();

    let evict = json!({ "project": "alpha", "domain": "development", "key": m.key });
    assert_eq!(a.post("/v1/evict", &evict, None).await.0, 200);
    assert_eq!(
        a.lookup(&m, None).await.0,
        404,
        "the evicting daemon forgets at once"
    );
    // B may still serve it from memory, but only from memory and only within its TTL.
    let (status, body) = b.lookup(&m, None).await;
    if status == 200 {
        assert_eq!(body["from_hot_tier"], true);
        assert!(filled.elapsed() < Duration::from_secs(TTL) + Duration::from_millis(500));
    } else {
        assert_eq!(status, 404);
    }
    let wait = (filled + Duration::from_secs(TTL) + Duration::from_millis(1500))
        .saturating_duration_since(Instant::now());
    tokio::time::sleep(wait).await;
    let (status, body) = b.lookup(&m, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (404, Some("CACHE_MISS")),
        "B still served an entry evicted more than its hot TTL ago: {body}"
    );
}

/// Every route in `recalld::routes::ROUTES` is served (neither the router's 404 nor 405).
pub async fn every_route_is_served(backend: &Backend) {
    let d = Daemon::start(backend, &Options::default());
    let key = "ab".repeat(32);
    for (method, path) in recalld::routes::ROUTES {
        let path = path
            .replace("{project}", "alpha")
            .replace("{domain}", "development")
            .replace("{key}", &key)
            .replace("{digest}", &key)
            .replace("{task}", "wf.any");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = d
            .http
            .request(method.clone(), d.url(&path))
            .body("{}")
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            status != 404 || !text.is_empty(),
            "{method} {path} is not routed"
        );
        assert!(
            status < 500 || status == 503,
            "{method} {path}: {status} {text}"
        );
    }
}

/// The store stops answering: lookups fail open within the timeout, the breaker then answers
/// at once, memory hits go on, publishes fail with a cause, and everything recovers without
/// a restart once the store is back.
pub async fn backend_cut_fails_open_and_recovers(backend: &Backend) {
    let proxy = proxy_to_s3(backend).await;
    let cfg = Options {
        toml: "[timeouts]\nlookup_ms = 300\npublish_secs = 2\n\n\
               [breaker]\nfailure_threshold = 3\nopen_ms = 1500\n"
            .into(),
        endpoint_override: Some(proxy.endpoint()),
        ..Options::default()
    };
    let d = Daemon::start(backend, &cfg);
    let cached = Material::new(&d, "alpha", "wf.cut", 0, &["o"]).await;
    assert_eq!(
        d.publish(&cached, &outputs_of(&[("o", 1)]), "", None)
            .await
            .0,
        201
    );
    let mut cold = Vec::new();
    for n in 1..=8 {
        cold.push(Material::new(&d, "alpha", "wf.cut", n, &["o"]).await);
    }
    assert_eq!(d.lookup(&cold[0], None).await.0, 404);

    proxy.cut();
    // Fail open, each within the configured timeout (generously bounded).
    for m in &cold[1..4] {
        let started = Instant::now();
        let (status, body) = d.lookup(m, None).await;
        let took = started.elapsed();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "CACHE_LOOKUP_FAILURE");
        assert!(took < Duration::from_secs(3), "lookup took {took:?}");
    }
    // Breaker open: answered without waiting for the store.
    let (status, body) = d.lookup(&cold[4], None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("CACHE_LOOKUP_FAILURE"))
    );
    assert!(
        body["cause"]
            .as_str()
            .unwrap_or("")
            .contains("circuit breaker"),
        "{body}"
    );
    assert_eq!(d.metric("recall_breaker_open").await, 1.0);
    // Memory still answers.
    let (status, body) = d.lookup(&cached, None).await;
    assert_eq!((status, body["from_hot_tier"].as_bool()), (200, Some(true)));
    // A publish fails with its cause; the daemon stays up.
    let (status, body) = d
        .publish(&cold[5], &outputs_of(&[("o", 2)]), "", None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("CACHE_PUT_FAILURE"))
    );
    assert!(!body["cause"].as_str().unwrap_or("").is_empty());
    assert_eq!(d.get("/healthz", None).await.0, 200);
    let started = Instant::now();
    assert_eq!(d.get("/readyz", None).await.0, 503);
    assert!(started.elapsed() < Duration::from_secs(5));

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = d.lookup(&cold[6], None).await;
        if status == 404 {
            assert_eq!(body["status"], "CACHE_MISS");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no recovery within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(d.metric("recall_breaker_open").await, 0.0);
    assert_eq!(d.get("/readyz", None).await.0, 200);
    let (status, body) = d
        .publish(&cold[7], &outputs_of(&[("o", 3)]), "", None)
        .await;
    assert_eq!(status, 201, "{body}");
}

/// `/readyz` and `/metrics` show what the store honours: everything, on local disk and moto.
pub async fn readyz_shows_the_capabilities(backend: &Backend) {
    let d = Daemon::start(backend, &Options::default());
    let (status, body) = d.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    for name in [
        "create_if_absent",
        "replace_if_version_matches",
        "ranged_get",
    ] {
        assert_eq!(
            body["capabilities"][name]["supported"], true,
            "{name}: {body}"
        );
        let series = format!("recall_store_capability{{capability=\"{name}\"}}");
        assert_eq!(d.metric(&series).await, 1.0, "{series}");
    }
    assert!(body.get("warning").is_none(), "{body}");
    assert!(d.log().contains("store capabilities"), "{}", d.log());
}

/// A store without conditional writes (s3rver): ready with a warning, the capabilities it
/// lacks at /readyz and /metrics and in the log, leases refused with 501 naming the store and
/// the capability, and a just-published manifest not kept in memory.
pub async fn store_without_conditional_writes(backend: &Backend) {
    let d = Daemon::start(backend, &Options::default());
    let (status, body) = d.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    for name in ["create_if_absent", "replace_if_version_matches"] {
        assert_eq!(
            body["capabilities"][name]["supported"], false,
            "{name}: {body}"
        );
        let series = format!("recall_store_capability{{capability=\"{name}\"}}");
        assert_eq!(d.metric(&series).await, 0.0, "{series}");
    }
    assert_eq!(
        body["capabilities"]["ranged_get"]["supported"], true,
        "{body}"
    );
    assert!(
        body["warning"]
            .as_str()
            .unwrap_or("")
            .contains("exactly one manifest wins"),
        "{body}"
    );
    assert!(
        d.log().contains("conditional writes are missing"),
        "{}",
        d.log()
    );

    let m = Material::new(&d, "alpha", "wf.nocas", 1, &["o"]).await;
    let path = m.lease_path();
    let (status, body) = d.post(&path, &lease_request("w1", 30), None).await;
    assert_eq!(status, 501, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(message.contains(&backend.url()), "{body}");
    assert!(message.contains("create_if_absent"), "{body}");
    let (status, body) = d.delete(&format!("{path}?owner=w1"), None).await;
    assert_eq!(status, 501, "{body}");

    // Publish works, but the memory tier does not keep what was just written: the next
    // lookup reads the manifest the store holds.
    let (status, body) = d.publish(&m, &outputs_of(&[("o", 1)]), "", None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = d.lookup(&m, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from_hot_tier"], false, "{body}");
}

/// recalld starts while its store is unreachable: serves, not ready with the cause, lookups
/// and leases fail open quickly; once the store answers it becomes ready by itself.
pub async fn starts_while_the_store_is_down(backend: &Backend) {
    let proxy = proxy_to_s3(backend).await;
    proxy.cut();
    let cfg = Options {
        toml: "[timeouts]\nlookup_ms = 300\n".into(),
        endpoint_override: Some(proxy.endpoint()),
        ..Options::default()
    };
    let d = Daemon::start(backend, &cfg);
    assert_eq!(d.get("/healthz", None).await.0, 200);
    let (status, body) = d.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert!(!body["cause"].as_str().unwrap_or("").is_empty(), "{body}");
    let m = Material::new(&d, "alpha", "wf.down", 1, &["o"]).await;
    let started = Instant::now();
    let (status, body) = d.lookup(&m, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("CACHE_LOOKUP_FAILURE")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let lease = m.lease_path();
    let (status, body) = d.post(&lease, &lease_request("w", 30), None).await;
    assert_eq!(status, 503, "{body}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = d.get("/readyz", None).await;
        if status == 200 {
            assert_eq!(body["capabilities"]["create_if_absent"]["supported"], true);
            break;
        }
        assert!(Instant::now() < deadline, "not ready within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = d.lookup(&m, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (404, Some("CACHE_MISS")),
        "{body}"
    );
}

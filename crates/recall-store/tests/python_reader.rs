//! A Python batch job reads entries that recall-store published, following only
//! docs/LAYOUT.md and docs/KEY-SPEC.md (`tests/python/layout_reader.py`, boto3 + cbor2 +
//! blake3, no recall code).
//!
//! Each test writes one key material JSON (KEY-SPEC section 8), derives the key from it with
//! `KeyMaterial::from_json`, publishes with recall-store to the S3 test server, then runs the
//! Python reader on the same JSON and compares the bytes it wrote with what was published.
//!
//! Needs the `RECALL_TEST_S3_*` variables (`source scripts/test-servers.sh`) and a Python with
//! boto3, cbor2 and blake3: `RECALL_TEST_PYTHON`, or `<workspace>/target/pyenv/bin/python`.
//! `RECALL_TEST_SKIP=s3` or `RECALL_TEST_SKIP=python` skips these tests (and says so);
//! otherwise a missing server or Python fails them. The reader exits 0 on a hit, 1 on a miss
//! (only then), 2 on bad input and 3 on any other failure, so a broken Python environment
//! can never pass for a miss.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use recall_key::{DerivedKey, Digest, KeyMaterial};
use recall_store::{
    Output, PublishOptions, PublishOutcome, Store, StoreConfig, Tenant, open_url_with,
};
use recall_testkit::s3::S3Env;
use recall_testkit::skipped;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The Python to run the reader with, or `None` when skipped.
fn python() -> Option<PathBuf> {
    if skipped("python") {
        // scripts/test.sh then installs no cbor2/blake3, even if moto made target/pyenv.
        eprintln!("SKIPPED (RECALL_TEST_SKIP=python): python reader");
        return None;
    }
    let python = std::env::var_os("RECALL_TEST_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyenv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    panic!(
        "no Python at {} (set RECALL_TEST_PYTHON, or create target/pyenv with \
         `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r \
         tests/python/requirements.txt`; scripts/test.sh does), or set RECALL_TEST_SKIP=python",
        python.display()
    )
}

/// One test's world: a fresh store root on the S3 server and a scratch directory.
struct Ctx {
    env: S3Env,
    store: Store,
    prefix: String,
    dir: tempfile::TempDir,
    python: PathBuf,
}

/// What one run of the Python reader did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    out_dir: PathBuf,
}

impl Run {
    fn summary(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "reader stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Checks the exit code and the summary's `result` (`hit` with 0, `miss` with 1).
    fn assert_result(&self, code: i32, result: &str) -> serde_json::Value {
        assert_eq!(
            self.code, code,
            "expected a {result} (exit {code}); stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let summary = self.summary();
        assert_eq!(summary["result"], result);
        summary
    }

    fn assert_hit(&self) -> serde_json::Value {
        self.assert_result(0, "hit")
    }

    fn assert_miss(&self, reason_contains: &str) -> serde_json::Value {
        let summary = self.assert_result(1, "miss");
        let reason = summary["reason"].as_str().expect("miss reason");
        assert!(
            reason.contains(reason_contains),
            "miss reason {reason:?} does not mention {reason_contains:?}"
        );
        assert!(
            self.stderr.contains(reason),
            "the reason is not printed on stderr: {}",
            self.stderr
        );
        let written: Vec<_> = std::fs::read_dir(&self.out_dir)
            .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            written.is_empty(),
            "a miss must hand out no bytes, but the reader wrote {written:?}"
        );
        summary
    }
}

impl Ctx {
    async fn new(name: &str) -> Option<Ctx> {
        if skipped("s3") {
            eprintln!("SKIPPED (RECALL_TEST_SKIP=s3): python reader against S3");
            return None;
        }
        let env = S3Env::from_env();
        let python = python()?;
        env.ensure_bucket().await;
        let prefix = recall_testkit::unique_root("python-reader", name);
        let options = env.object_store_options();
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let backend = open_url_with(&format!("s3://{}/{prefix}", env.bucket), &options)
            .expect("open the S3 backend");
        let config = StoreConfig {
            producer: format!("python_reader-test/{name}"),
            ..StoreConfig::default()
        };
        let store = Store::from_object_store(backend.objects, &backend.root, config)
            .await
            .expect("open the store");
        Some(Ctx {
            env,
            store,
            prefix,
            dir: tempfile::tempdir().expect("temp dir"),
            python,
        })
    }

    /// A fresh world for the test `name` with key material `json` written to `NAME.json`
    /// (its path returned); `None` when skipped.
    async fn start(name: &str, json: serde_json::Value) -> Option<(Ctx, PathBuf)> {
        let ctx = Ctx::new(name).await?;
        let material = ctx.write_material(&format!("{name}.json"), &json);
        Some((ctx, material))
    }

    /// Publishes `outputs` for `material` with `options`, then reads the entry with the
    /// Python reader and checks the hit ([`assert_outputs`]); the key and the summary.
    async fn publish_and_read(
        &self,
        material: &Path,
        outputs: &[(&str, Vec<u8>)],
        options: &PublishOptions,
    ) -> (DerivedKey, serde_json::Value) {
        let derived = self.publish_with(material, outputs, options).await;
        let run = self.read(material, &[]);
        let summary = run.assert_hit();
        assert_outputs(&run, &summary, &derived, outputs);
        (derived, summary)
    }

    /// Writes key material JSON (and returns its path); the same file feeds both sides.
    fn write_material(&self, file_name: &str, json: &serde_json::Value) -> PathBuf {
        let path = self.dir.path().join(file_name);
        std::fs::write(&path, serde_json::to_string_pretty(json).unwrap()).unwrap();
        path
    }

    /// Derives the key from the material file exactly as `recall key --spec FILE` would.
    fn derive(&self, material: &Path) -> DerivedKey {
        let text = std::fs::read_to_string(material).unwrap();
        KeyMaterial::from_json(&text, material.parent().unwrap())
            .expect("key material")
            .derive()
            .expect("derive key")
    }

    async fn publish(&self, material: &Path, outputs: &[(&str, Vec<u8>)]) -> DerivedKey {
        self.publish_with(material, outputs, &PublishOptions::default())
            .await
    }

    async fn publish_with(
        &self,
        material: &Path,
        outputs: &[(&str, Vec<u8>)],
        options: &PublishOptions,
    ) -> DerivedKey {
        let derived = self.derive(material);
        let outputs: Vec<Output> = outputs
            .iter()
            .map(|(name, bytes)| Output::bytes(*name, bytes.clone()))
            .collect();
        match self
            .store
            .publish(&derived, &outputs, options)
            .await
            .expect("publish")
        {
            PublishOutcome::Published { .. } => {}
            PublishOutcome::AlreadyExists { .. } => {
                panic!("fresh root, yet the entry already exists")
            }
        }
        derived
    }

    /// Runs the Python reader on `material`, writing outputs to a fresh directory.
    fn read(&self, material: &Path, extra: &[&str]) -> Run {
        let out_dir = self.dir.path().join(format!(
            "out-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(&self.python);
        cmd.arg(workspace_root().join("tests/python/layout_reader.py"))
            .arg("--store")
            .arg(format!("s3://{}/{}", self.env.bucket, self.prefix))
            .arg("--region")
            .arg(&self.env.region)
            .arg("--access-key-id")
            .arg(&self.env.access_key_id)
            .arg("--secret-access-key")
            .arg(&self.env.secret_access_key)
            .arg("--material")
            .arg(material)
            .arg("--out")
            .arg(&out_dir)
            .arg("--json")
            .args(extra);
        if let Some(endpoint) = &self.env.endpoint {
            cmd.arg("--endpoint").arg(endpoint);
        }
        if let Some(token) = &self.env.session_token {
            cmd.arg("--session-token").arg(token);
        }
        // Only the options above may steer the reader.
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT",
            "AWS_PROFILE",
            "RECALL_READER_STORE",
        ] {
            cmd.env_remove(var);
        }
        let output = cmd.output().unwrap_or_else(|err| {
            panic!("cannot run {}: {err}", self.python.display());
        });
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            out_dir,
        }
    }

    fn tenant(&self, derived: &DerivedKey) -> Tenant {
        Tenant::new(&derived.project, &derived.domain).unwrap()
    }
}

/// Deterministic, incompressible-looking bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    recall_testkit::pseudo_random(len, seed ^ 0x9e37_79b9_7f4a_7c15)
}

/// Checks a hit: every published output is in the out directory with exactly its bytes, and
/// nothing else is; the summary agrees with the key recall derived; the manifest was found
/// with one GET and nothing was LISTed.
fn assert_outputs(
    run: &Run,
    summary: &serde_json::Value,
    derived: &DerivedKey,
    outputs: &[(&str, Vec<u8>)],
) {
    assert_eq!(
        summary["key"],
        derived.key.to_hex(),
        "Python computed another key"
    );
    assert_eq!(
        summary["key_components_match"], true,
        "manifest key components differ from keyspec_ref's: {summary:#}"
    );
    assert_eq!(
        summary["canonical_cbor"], true,
        "manifest is not deterministic CBOR (LAYOUT section 4)"
    );
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary:#}");

    let mut written: Vec<String> = std::fs::read_dir(&run.out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = outputs.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(written, expected, "files the reader wrote");
    for (name, bytes) in outputs {
        let got = std::fs::read(run.out_dir.join(name)).unwrap();
        assert!(
            got == *bytes,
            "output {name}: Python read {} bytes, {} were published (first difference at {:?})",
            got.len(),
            bytes.len(),
            got.iter().zip(bytes.iter()).position(|(a, b)| a != b)
        );
        let record = &summary["outputs"][*name];
        assert_eq!(record["size"], bytes.len());
        assert_eq!(record["digest"], Digest::of_content(bytes).to_hex());
        assert_eq!(
            record["type"],
            derived.outputs[*name].to_string(),
            "output {name}: manifest type"
        );
        // LAYOUT 4.2: at most 4096 bytes inline, larger ones are blobs.
        assert_eq!(
            record["inline"],
            bytes.len() <= 4096,
            "output {name} of {} bytes: inline?",
            bytes.len()
        );
    }

    let requests: Vec<&str> = summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        requests.iter().all(|r| r.starts_with("GetObject ")),
        "the reader may only GET: {requests:?}"
    );
    let manifest_path = summary["manifest_path"].as_str().unwrap();
    assert_eq!(
        requests
            .iter()
            .filter(|r| **r == format!("GetObject {manifest_path}"))
            .count(),
        1
    );
    let blobs = outputs.iter().filter(|(_, b)| b.len() > 4096).count();
    // descriptor + manifest + one GET per blob output
    assert_eq!(requests.len(), 2 + blobs, "{requests:?}");
}

#[tokio::test]
async fn inline_small_output() {
    let Some((ctx, material)) = Ctx::start(
        "inline",
        serde_json::json!({
            "project": "flytesnacks",
            "domain": "development",
            "task": "wf.square",
            "cache_version": "1.0",
            "inputs": [{"name": "n", "type": "int", "value": 3}],
            "outputs": [{"name": "o0", "type": "int"}]
        }),
    )
    .await
    else {
        return;
    };
    // KEY-SPEC 4.2 / LAYOUT 4.3: an int output 9 is CBOR(9), the single byte 0x09.
    let outputs = [("o0", vec![0x09u8])];
    let (derived, summary) = ctx
        .publish_and_read(&material, &outputs, &PublishOptions::default())
        .await;
    assert_eq!(summary["outputs"]["o0"]["source"], "inline");
    assert_eq!(summary["producer"], "python_reader-test/inline");
    assert!(summary["expires_at_ms"].is_null());

    // LAYOUT 4.2: the reader checks inline bytes too. Change the inline byte string h'09'
    // (`66 "inline" 41 09`) to h'08' in the stored manifest: still valid CBOR, wrong digest.
    ctx.store
        .raw_edit(&ctx.tenant(&derived).entry(&derived.key), |bytes| {
            let needle = b"\x66inline\x41\x09";
            let at = bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("inline byte string in the manifest");
            bytes[at + needle.len() - 1] = 0x08;
        })
        .await
        .unwrap();
    ctx.read(&material, &[])
        .assert_miss("inline bytes have BLAKE3");
}

#[tokio::test]
async fn multi_mib_blob_output() {
    let Some((ctx, material)) = Ctx::start(
        "blob",
        serde_json::json!({
            "project": "ml",
            "domain": "production",
            "task": "wf.train",
            "cache_version": "2024.06",
            "inputs": [
                {"name": "data", "type": "file", "value": "train.csv"},
                {"name": "epochs", "type": "int", "value": 10}
            ],
            "outputs": [{"name": "model", "type": "file"}]
        }),
    )
    .await
    else {
        return;
    };
    std::fs::write(ctx.dir.path().join("train.csv"), b"x,y\n1,2\n3,4\n").unwrap();
    // 12 MiB plus a little: larger than one multipart part.
    let model = pseudo_random(12 * 1024 * 1024 + 12345, 1);
    let outputs = [("model", model)];
    let (_, summary) = ctx
        .publish_and_read(&material, &outputs, &PublishOptions::default())
        .await;
    let digest = Digest::of_content(&outputs[0].1).to_hex();
    assert!(
        summary["outputs"]["model"]["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "tenants/ml/production/blobs/{}/{digest}",
                &digest[..2]
            ))
    );
}

#[tokio::test]
async fn several_outputs_of_different_types() {
    let Some((ctx, material)) = Ctx::start(
        "several",
        serde_json::json!({
            "project": "proj-1",
            "domain": "staging",
            "task": "wf.many_outputs",
            // KEY-SPEC 3: trimmed to "v1+exp"
            "cache_version": " v1+exp\n",
            "inputs": [
                {"name": "rate", "type": "float", "value": 0.1},
                {"name": "tags", "type": "list<string>", "value": ["a", "é"]},
                {"name": "when", "type": "datetime", "value": "2024-01-01T01:00:00+01:00"},
                {"name": "cfg", "type": "struct", "value": {"depth": 3, "name": "x"}},
                {"name": "ds", "type": "dir", "value": "ds"},
                {"name": "big", "type": "file", "hash": "AB".repeat(32)},
                {"name": "seed", "type": "int", "ignore": true},
                {"name": "opt", "type": "optional<map<string,bytes>>", "value": {"k": "AP8="}}
            ],
            "outputs": [
                {"name": "model", "type": "file"},
                {"name": "metrics", "type": "struct"},
                {"name": "count", "type": "int"},
                {"name": "report", "type": "string"},
                {"name": "at_limit", "type": "bytes"},
                {"name": "over_limit", "type": "bytes"},
                {"name": "empty", "type": "file"},
                {"name": "parts", "type": "list<dir>"}
            ],
            "salt": "team-a"
        }),
    )
    .await
    else {
        return;
    };
    std::fs::create_dir(ctx.dir.path().join("ds")).unwrap();
    std::fs::write(ctx.dir.path().join("ds/a.txt"), b"alpha").unwrap();
    std::fs::write(ctx.dir.path().join("ds/b.bin"), [0u8, 1, 2]).unwrap();
    let outputs = [
        ("model", pseudo_random(3 * 1024 * 1024 + 1, 2)),
        // CBOR of the struct {"acc": 0.5}
        (
            "metrics",
            vec![0xa1, 0x63, b'a', b'c', b'c', 0xf9, 0x38, 0x00],
        ),
        ("count", vec![0x18, 0x2a]),
        ("report", "résumé\n".repeat(100).into_bytes()),
        ("at_limit", pseudo_random(4096, 3)),
        ("over_limit", pseudo_random(4097, 4)),
        ("empty", Vec::new()),
        ("parts", pseudo_random(70_000, 5)),
    ];
    let (derived, summary) = ctx
        .publish_and_read(&material, &outputs, &PublishOptions::default())
        .await;
    assert_eq!(derived.cache_version, "v1+exp");
    assert_eq!(summary["cache_version"], "v1+exp");
}

#[tokio::test]
async fn never_published_is_a_miss() {
    let Some((ctx, published)) = Ctx::start(
        "never",
        serde_json::json!({
            "project": "flytesnacks", "domain": "development", "task": "wf.t",
            "cache_version": "1", "inputs": [{"name": "n", "type": "int", "value": 1}],
            "outputs": [{"name": "o", "type": "bytes"}]
        }),
    )
    .await
    else {
        return;
    };
    ctx.publish(&published, &[("o", b"one".to_vec())]).await;
    // Same task, another input value: a key nobody published.
    let other = ctx.write_material(
        "other.json",
        &serde_json::json!({
            "project": "flytesnacks", "domain": "development", "task": "wf.t",
            "cache_version": "1", "inputs": [{"name": "n", "type": "int", "value": 2}],
            "outputs": [{"name": "o", "type": "bytes"}]
        }),
    );
    let run = ctx.read(&other, &[]);
    let summary = run.assert_miss("no manifest");
    assert_eq!(summary["key"], ctx.derive(&other).key.to_hex());
    // The published one is still a hit.
    ctx.read(&published, &[]).assert_hit();

    // LAYOUT 4.1: a manifest read from another key's path is a miss (key.key differs).
    let tenant = ctx.tenant(&ctx.derive(&published));
    let bytes = ctx
        .store
        .raw_get(&tenant.entry(&ctx.derive(&published).key))
        .await
        .unwrap()
        .expect("the published manifest");
    ctx.store
        .raw_put(&tenant.entry(&ctx.derive(&other).key), bytes)
        .await
        .unwrap();
    ctx.read(&other, &[])
        .assert_miss("differs from the path's key");
}

#[tokio::test]
async fn corrupt_blob_is_a_miss() {
    let Some((ctx, material)) = Ctx::start(
        "corrupt",
        serde_json::json!({
            "project": "flytesnacks", "domain": "development", "task": "wf.corrupt",
            "cache_version": "1",
            "outputs": [{"name": "small", "type": "int"}, {"name": "model", "type": "file"}]
        }),
    )
    .await
    else {
        return;
    };
    let model = pseudo_random(5 * 1024 * 1024 + 7, 6);
    let outputs = [("small", vec![0x01u8]), ("model", model.clone())];
    let (derived, _) = ctx
        .publish_and_read(&material, &outputs, &PublishOptions::default())
        .await;

    // Flip one byte of the blob, keeping its size.
    let blob = ctx.tenant(&derived).blob(&Digest::of_content(&model));
    ctx.store
        .raw_edit(&blob, |bytes| {
            assert_eq!(*bytes, model);
            bytes[4 * 1024 * 1024 + 3] ^= 0x40;
        })
        .await
        .expect("overwrite blob");

    let run = ctx.read(&material, &[]);
    run.assert_miss("BLAKE3");

    // A blob of the wrong size is a miss too.
    ctx.store
        .raw_put(&blob, model[..1000].to_vec())
        .await
        .unwrap();
    ctx.read(&material, &[]).assert_miss("1000 bytes");

    // And a missing one.
    ctx.store.raw_delete(&blob).await.unwrap();
    ctx.read(&material, &[]).assert_miss("missing");
}

#[tokio::test]
async fn expired_and_undecodable_entries_are_misses() {
    let Some((ctx, material)) = Ctx::start(
        "expiry",
        serde_json::json!({
            "project": "flytesnacks", "domain": "development", "task": "wf.ttl",
            "cache_version": "1", "outputs": [{"name": "o", "type": "string"}]
        }),
    )
    .await
    else {
        return;
    };
    let outputs = [("o", b"\x62hi".to_vec())];
    let with_ttl = PublishOptions {
        ttl: Some(Duration::from_secs(3600)),
        ..PublishOptions::default()
    };
    let (derived, summary) = ctx.publish_and_read(&material, &outputs, &with_ttl).await;
    let created = summary["created_at_ms"].as_i64().unwrap();
    let expires = summary["expires_at_ms"].as_i64().unwrap();
    assert_eq!(expires - created, 3_600_000, "ttl recorded in the manifest");

    // LAYOUT 4.4 case 2: at or past expires_at_ms.
    let at = expires.to_string();
    ctx.read(&material, &["--now-ms", &at])
        .assert_miss("expired");
    let before = (expires - 1).to_string();
    ctx.read(&material, &["--now-ms", &before]).assert_hit();
    // 4.4 case 3: a maximum age the reader enforces.
    let later = (created + 1001).to_string();
    ctx.read(&material, &["--now-ms", &later, "--max-age-ms", "1000"])
        .assert_miss("old");

    // 4.4 case 1: a manifest that does not decode.
    ctx.store
        .raw_put(
            &ctx.tenant(&derived).entry(&derived.key),
            &b"\xff\x00 not cbor"[..],
        )
        .await
        .unwrap();
    ctx.read(&material, &[]).assert_miss("decode");

    // LAYOUT 1: the reader checks the descriptor; without one, nothing is cached here.
    ctx.store
        .raw_delete(recall_store::DESCRIPTOR)
        .await
        .unwrap();
    ctx.read(&material, &[]).assert_miss("no descriptor");
}

#[tokio::test]
async fn bad_material_is_a_usage_error() {
    let Some((ctx, material)) = Ctx::start(
        "usage",
        serde_json::json!({
            "project": "no/slash", "domain": "development", "task": "wf.t",
            "cache_version": "1"
        }),
    )
    .await
    else {
        return;
    };
    let run = ctx.read(&material, &[]);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("project"), "stderr: {}", run.stderr);
}

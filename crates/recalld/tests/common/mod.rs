//! Runs the real `recalld` binary over a real store and talks to it over HTTP.
//!
//! A [`Backend`] is where the daemons' store lives: a temporary directory, or a fresh prefix
//! in the S3 test server (`RECALL_TEST_S3_*`, exported by `scripts/test-servers.sh`).

#![allow(dead_code)]

pub mod proxy;
pub mod scenarios;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// Where the store of a test lives.
pub enum Backend {
    /// A local directory.
    Local {
        /// Keeps the directory alive.
        dir: tempfile::TempDir,
    },
    /// A prefix in an S3 bucket.
    S3 {
        /// The server's endpoint (moto), as the test found it.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// A prefix unique to this test.
        prefix: String,
        /// Region and credentials.
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique(case: &str) -> String {
    use std::hash::{Hash, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let long = format!(
        "recalld-{case}-{}-{nanos}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::SeqCst)
    );
    // As recall-store's tests/s3_env::s3_root: short roots for servers that cannot hold long
    // keys (s3s-fs), when RECALL_TEST_S3_SHORT_ROOTS is set.
    if var("RECALL_TEST_S3_SHORT_ROOTS").is_none() {
        return long;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    long.hash(&mut hasher);
    format!("t{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether `RECALL_TEST_SKIP` (comma-separated) names `backend`.
pub fn skipped(backend: &str) -> bool {
    let skip = var("RECALL_TEST_SKIP").unwrap_or_default();
    if skip.split(',').any(|s| s.trim() == backend) {
        eprintln!("SKIPPED (RECALL_TEST_SKIP={skip}): {backend} backend");
        return true;
    }
    false
}

impl Backend {
    /// A fresh local-disk store.
    pub fn local() -> Backend {
        Backend::Local {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// A fresh prefix on the S3 test server; `None` only when `RECALL_TEST_SKIP` names s3.
    /// Missing `RECALL_TEST_S3_*` variables fail the test.
    pub async fn s3(case: &str) -> Option<Backend> {
        if skipped("s3") {
            return None;
        }
        let missing = |what: &str| -> ! {
            panic!(
                "{what} is not set: run scripts/test.sh (or `source scripts/test-servers.sh`), \
                 point RECALL_TEST_S3_* at an S3 server, or set RECALL_TEST_SKIP=s3"
            )
        };
        let endpoint =
            var("RECALL_TEST_S3_ENDPOINT").unwrap_or_else(|| missing("RECALL_TEST_S3_ENDPOINT"));
        let bucket =
            var("RECALL_TEST_S3_BUCKET").unwrap_or_else(|| missing("RECALL_TEST_S3_BUCKET"));
        let backend = Backend::S3 {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket,
            prefix: unique(case),
            region: var("RECALL_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("RECALL_TEST_S3_ACCESS_KEY_ID")
                .unwrap_or_else(|| missing("RECALL_TEST_S3_ACCESS_KEY_ID")),
            secret_access_key: var("RECALL_TEST_S3_SECRET_ACCESS_KEY")
                .unwrap_or_else(|| missing("RECALL_TEST_S3_SECRET_ACCESS_KEY")),
        };
        backend.ensure_bucket().await;
        Some(backend)
    }

    /// A fresh prefix on the S3 server without conditional writes (s3rver, exported by
    /// `scripts/test-servers.sh` as `RECALL_TEST_S3NOCAS_*`); `None` only when
    /// `RECALL_TEST_SKIP` names s3nocas. Missing variables fail the test.
    pub fn s3_nocas(case: &str) -> Option<Backend> {
        if skipped("s3nocas") {
            return None;
        }
        let need = |name: &str| {
            var(name).unwrap_or_else(|| {
                panic!(
                    "{name} is not set: run scripts/test.sh (or `source scripts/test-servers.sh`), \
                     or set RECALL_TEST_SKIP=s3nocas"
                )
            })
        };
        Some(Backend::S3 {
            endpoint: need("RECALL_TEST_S3NOCAS_ENDPOINT")
                .trim_end_matches('/')
                .to_string(),
            bucket: need("RECALL_TEST_S3NOCAS_BUCKET"),
            prefix: unique(case),
            region: "us-east-1".into(),
            // s3rver's fixed development credentials.
            access_key_id: "S3RVER".into(),
            secret_access_key: "S3RVER".into(),
        })
    }

    /// Creates the bucket on a test server that accepts unsigned requests (moto); an
    /// existing bucket (MinIO, AWS) is left alone. A missing bucket then fails start-up.
    async fn ensure_bucket(&self) {
        if let Backend::S3 {
            endpoint, bucket, ..
        } = self
        {
            let _ = reqwest::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .await;
        }
    }

    /// The store URL recalld gets.
    pub fn url(&self) -> String {
        match self {
            Backend::Local { dir } => format!("file://{}", dir.path().join("store").display()),
            Backend::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The S3 endpoint's address, for a proxy in front of it.
    pub fn s3_endpoint(&self) -> Option<&str> {
        match self {
            Backend::S3 { endpoint, .. } => Some(endpoint),
            Backend::Local { .. } => None,
        }
    }
}

/// How to start one daemon.
#[derive(Clone, Default)]
pub struct Options {
    /// Extra TOML appended to the generated configuration file.
    pub toml: String,
    /// Use this S3 endpoint instead of the backend's (a proxy).
    pub endpoint_override: Option<String>,
    /// Start the daemon with this limit on open files (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}

/// A running recalld process; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client without a token.
    pub http: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts recalld on a free loopback port over `backend` and waits for its listening line.
    pub fn start(backend: &Backend, options: &Options) -> Daemon {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("recalld.toml");
        let spool = dir.path().join("spool");
        let text = format!(
            "spool_dir = {:?}\n{}\n",
            spool.display().to_string(),
            options.toml
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.path().join("recalld.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_recalld"));
        command
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--store", &backend.url()])
            .env("RECALL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (name, _) in std::env::vars() {
            // Settings must come from this test only.
            if name.starts_with("RECALL_") && !name.starts_with("RECALL_TEST_") {
                command.env_remove(name);
            }
        }
        if let Backend::S3 {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            ..
        } = backend
        {
            let endpoint = options.endpoint_override.as_ref().unwrap_or(endpoint);
            command
                .env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_REGION", region)
                .env("AWS_ACCESS_KEY_ID", access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
                .env("AWS_ALLOW_HTTP", "true")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_ENDPOINT_URL_S3")
                .env_remove("AWS_ENDPOINT");
        }
        if let Some(limit) = options.open_files {
            use std::os::unix::process::CommandExt as _;
            let limit = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("spawn recalld");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(url) = line.strip_prefix("recalld: listening on ") {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "recalld did not print its listening line; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Daemon {
            child: Some(child),
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("HTTP client"),
            log,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with an optional token; status and JSON body (Null when not JSON).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("GET")).await
    }

    /// POST a JSON body to `path` with an optional token.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("POST")).await
    }

    /// DELETE `path` with an optional token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.delete(self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("DELETE")).await
    }

    /// Looks an entry up by key.
    pub async fn lookup(&self, material: &Material, token: Option<&str>) -> (u16, Value) {
        self.get(&material.entry_path(), token).await
    }

    /// Publishes `outputs` for `material`; `query` like `"?overwrite=true"` or `""`.
    pub async fn publish(
        &self,
        material: &Material,
        outputs: &[(&str, Vec<u8>)],
        query: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut form = Form::new().text("material", material.json.to_string());
        for (name, bytes) in outputs {
            form = form.part(name.to_string(), Part::bytes(bytes.clone()));
        }
        let mut request = self
            .http
            .post(self.url(&format!("/v1/entries{query}")))
            .multipart(form);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("publish")).await
    }

    /// The value of one metric line (`name{labels}` exactly as exposed), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- recalld log ({}) ---\n{}", self.base, self.log());
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get("x-recall-cache-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(header) = header {
        assert_eq!(
            body["status"].as_str(),
            Some(header.as_str()),
            "X-Recall-Cache-Status differs from the body's status: {text}"
        );
    }
    (status, body)
}

/// Key material for a test entry, with the key the daemon derives for it.
#[derive(Clone)]
pub struct Material {
    /// The KEY-SPEC section 8 JSON.
    pub json: Value,
    /// Its project.
    pub project: String,
    /// Its domain.
    pub domain: String,
    /// The derived key, 64 hex.
    pub key: String,
}

impl Material {
    /// Material for task `task` with one int input `n` and the given file outputs.
    pub async fn new(
        daemon: &Daemon,
        project: &str,
        task: &str,
        n: i64,
        outputs: &[&str],
    ) -> Material {
        let outputs: Vec<Value> = outputs
            .iter()
            .map(|name| json!({ "name": name, "type": "file" }))
            .collect();
        let json = json!({
            "project": project,
            "domain": "development",
            "task": task,
            "cache_version": "1.0",
            "inputs": [{ "name": "n", "type": "int", "value": n }],
            "outputs": outputs,
        });
        let (status, derived) = daemon.post("/v1/keys", &json, Some(ADMIN)).await;
        assert_eq!(status, 200, "derive key: {derived}");
        Material {
            project: project.into(),
            domain: "development".into(),
            key: derived["key"].as_str().expect("key").to_string(),
            json,
        }
    }

    /// `/v1/entries/{project}/{domain}/{key}`.
    pub fn entry_path(&self) -> String {
        format!("/v1/entries/{}/{}/{}", self.project, self.domain, self.key)
    }
}

/// The admin token of [`TOKENS`] (also accepted, and ignored, by daemons without tokens).
pub const ADMIN: &str = "admin-token-0123456789";
/// Project `alpha`, read access.
pub const ALPHA_READ: &str = "alpha-read-0123456789";
/// Project `alpha`, write access.
pub const ALPHA_WRITE: &str = "alpha-write-0123456789";

/// Tokens for the auth matrix.
pub const TOKENS: &str = r#"
[[tokens]]
name = "admin"
token = "admin-token-0123456789"
projects = ["*"]
domains = ["*"]
access = "admin"

[[tokens]]
name = "alpha-read"
token = "alpha-read-0123456789"
projects = ["alpha"]
domains = ["*"]
access = "read"

[[tokens]]
name = "alpha-write"
token = "alpha-write-0123456789"
projects = ["alpha"]
domains = ["development"]
access = "write"
"#;

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

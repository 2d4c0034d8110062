//! Runs the real `recalld` binary over a real store and talks to it over HTTP.
//!
//! A [`Backend`] (recall-testkit's) is where the daemons' store lives: a temporary directory,
//! or a fresh prefix in the S3 test server (`RECALL_TEST_S3_*`, exported by
//! `scripts/test-servers.sh`); the process is recall-testkit's `Recalld`.

#![allow(dead_code)]

pub mod proxy;
pub mod scenarios;

use std::time::Duration;

pub use recall_testkit::backend::Backend;
use recall_testkit::recalld::{Recalld, Settings};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// Generates one `#[tokio::test]` per scenario, on the backend `$make` gives (an expression
/// of type `Option<Backend>`, awaited if `async`; `None` when skipped on purpose).
#[macro_export]
macro_rules! on_backend {
    ($make:expr; $($name:ident => $scenario:ident $(($($arg:expr),*))?),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(backend) = ($make)(stringify!($name)).await else {
                    return;
                };
                common::scenarios::$scenario(&backend $($(, $arg)*)?).await;
            }
        )*
    };
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

impl Options {
    /// Default options with `toml` appended to the configuration.
    pub fn toml(toml: &str) -> Options {
        Options {
            toml: toml.to_string(),
            ..Options::default()
        }
    }
}

/// A running recalld process with an HTTP client; killed when dropped.
pub struct Daemon {
    process: Recalld,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client without a token.
    pub http: reqwest::Client,
}

impl Daemon {
    /// Starts recalld on a free loopback port over `backend` and waits for its listening line.
    pub fn start(backend: &Backend, options: &Options) -> Daemon {
        let process = Recalld::start(
            env!("CARGO_BIN_EXE_recalld").as_ref(),
            &backend.url(),
            &Settings {
                toml: options.toml.clone(),
                env: backend.process_env(options.endpoint_override.as_deref()),
                open_files: options.open_files,
            },
        );
        Daemon {
            base: process.base.clone(),
            process,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("HTTP client"),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.process.terminate();
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(limit)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// GET `path` with an optional token; status and JSON body (Null when not JSON).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        send(self.http.get(self.url(path)), token, "GET").await
    }

    /// POST a JSON body to `path` with an optional token.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        send(self.http.post(self.url(path)).json(body), token, "POST").await
    }

    /// `GET /v1/blobs/{project}/{domain}/{digest}`, the response as it comes (no token).
    pub async fn blob(&self, project: &str, domain: &str, digest: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/blobs/{project}/{domain}/{digest}")))
            .send()
            .await
            .expect("blob")
    }

    /// DELETE `path` with an optional token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        send(self.http.delete(self.url(path)), token, "DELETE").await
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
        let request = self
            .http
            .post(self.url(&format!("/v1/entries{query}")))
            .multipart(form);
        send(request, token, "publish").await
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

/// Sends `request` with `token` as its bearer token, if any; status and JSON body.
async fn send(
    mut request: reqwest::RequestBuilder,
    token: Option<&str>,
    what: &str,
) -> (u16, Value) {
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    answer(request.send().await.expect(what)).await
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

    /// `/v1/leases/{project}/{domain}/{key}`.
    pub fn lease_path(&self) -> String {
        format!("/v1/leases/{}/{}/{}", self.project, self.domain, self.key)
    }
}

/// The body of a lease request: `owner` and `heartbeat_seconds` (any JSON value, so a test
/// can send a bad one).
pub fn lease_request(owner: &str, heartbeat_seconds: impl Into<Value>) -> Value {
    json!({ "owner": owner, "heartbeat_seconds": heartbeat_seconds.into() })
}

/// The key that KEY-SPEC section 8 key material `json` (with no file inputs) derives.
pub fn derive(json: &Value) -> recall_key::DerivedKey {
    recall_key::KeyMaterial::from_json(&json.to_string(), std::path::Path::new("/nonexistent"))
        .expect("key material")
        .derive()
        .expect("derive the key")
}

/// The admin token of [`tokens`] (also accepted, and ignored, by daemons without tokens).
pub const ADMIN: &str = "admin-token-0123456789";
/// Project `alpha`, read access.
pub const ALPHA_READ: &str = "alpha-read-0123456789";
/// Project `alpha`, write access.
pub const ALPHA_WRITE: &str = "alpha-write-0123456789";

/// Tokens for the auth matrix, as recalld configuration: name, token, projects, domains,
/// access.
pub fn tokens() -> String {
    [
        ("admin", ADMIN, "*", "*", "admin"),
        ("alpha-read", ALPHA_READ, "alpha", "*", "read"),
        ("alpha-write", ALPHA_WRITE, "alpha", "development", "write"),
    ]
    .iter()
    .map(|(name, token, project, domain, access)| {
        format!(
            "[[tokens]]\nname = {name:?}\ntoken = {token:?}\nprojects = [{project:?}]\n\
             domains = [{domain:?}]\naccess = {access:?}\n"
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    recall_testkit::pseudo_random(len, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

//! Helpers of the end-to-end tests: a fresh store per case (local disk or S3), and the
//! built `recall` binary run in a scratch working directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

#[path = "../../../recall-store/tests/s3_env/mod.rs"]
mod s3_env;

/// Which backend a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `file://` in a temporary directory.
    File,
    /// The S3 test server (moto), `RECALL_TEST_S3_*`.
    S3,
}

/// How recall reaches the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--store URL`.
    Direct,
    /// `--daemon URL`: a recalld started for the case, over the same store.
    Daemon,
}

/// A recalld process, stopped when dropped.
pub struct Daemon {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The recalld binary: `RECALL_TEST_RECALLD`, or the one cargo built beside `recall`.
pub fn recalld_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RECALL_TEST_RECALLD") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_BIN_EXE_recall")).with_file_name("recalld")
}

/// A free 127.0.0.1 port (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts recalld over `store` and waits until `/readyz` answers 200.
pub fn start_daemon(store: &str, vars: &[(String, String)]) -> Daemon {
    let binary = recalld_binary();
    assert!(
        binary.exists(),
        "{} does not exist: build it (cargo build -p recalld, or cargo test --workspace),          point RECALL_TEST_RECALLD at a recalld binary, or set RECALL_TEST_SKIP=daemon",
        binary.display()
    );
    let port = free_port();
    // recalld refuses a spool other users can reach (such as the shared temp directory);
    // it creates this one, private, on start-up.
    let spool = std::env::temp_dir().join(format!("recall-e2e-spool-{}", std::process::id()));
    let child = Command::new(&binary)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--store", store])
        .env_remove("RECALL_CONFIG")
        .env_remove("RECALL_STORE")
        .env("RECALL_SPOOL_DIR", spool)
        // These tests are about recall through a daemon, not the daemon's fail-open timing
        // (recalld's own tests and chaos.sh cover that). With the default 300 ms, moto on a
        // loaded 2-core machine answered 32 polling waiters late enough to open the breaker,
        // and every waiter then ran the command (fail open) in the serialized-runs case.
        .env("RECALL_LOOKUP_TIMEOUT_MS", "3000")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let daemon = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // /readyz does a real write-read round trip on the store; on a loaded 2-core machine
    // with many daemons starting at once over S3 that has taken more than 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut ready = false;
    while std::time::Instant::now() < deadline {
        if http_get(port, "/readyz").is_some_and(|(status, _)| status == 200) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        ready,
        "recalld on port {port} did not become ready within 30 s"
    );
    // recall's daemon mode codes against the whole API; say clearly when this recalld
    // predates part of it instead of failing later on a 404.
    let (_, api) = http_get(port, "/openapi.json").unwrap_or_default();
    let missing: Vec<&str> = NEEDED_ROUTES
        .iter()
        .copied()
        .filter(|route| !api.contains(route))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lacks the routes {missing:?} that recall --daemon uses (leases, evict, gc, task \
         listing: merge branch daemon2, point RECALL_TEST_RECALLD at a recalld that has them, or \
         set RECALL_TEST_SKIP=daemon)",
        binary.display()
    );
    daemon
}

/// Routes of recalld's API that `recall --daemon` calls, as written in its openapi.json.
const NEEDED_ROUTES: &[&str] = &[
    "/v1/entries/{project}/{domain}/{key}",
    "/v1/entries\"",
    "/v1/blobs/{project}/{domain}/{digest}",
    "/v1/leases/{project}/{domain}/{key}",
    "/v1/evict",
    "/v1/gc",
    "/v1/tasks/{project}/{domain}/{task}",
    "/v1/tasks/{project}/{domain}\"",
    "/v1/tenants",
];

/// Status and body of a plain GET, if the server answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer))
}

/// One case's store and working directory.
pub struct Env {
    /// The store URL.
    pub store: String,
    /// How recall reaches it.
    pub mode: Mode,
    /// The daemon of a daemon-mode case.
    pub daemon: Option<Daemon>,
    /// Environment variables for recall (S3 credentials and endpoint).
    pub vars: Vec<(String, String)>,
    /// The working directory (inputs, outputs, runs.log).
    pub work: tempfile::TempDir,
    /// The local store directory, for the file backend.
    pub store_dir: Option<tempfile::TempDir>,
}

/// Whether `RECALL_TEST_SKIP` names `backend`.
pub fn skipped(backend: &str) -> bool {
    std::env::var("RECALL_TEST_SKIP")
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim() == backend)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Env {
    /// A fresh store for `case`, used directly or through a daemon; `None` when the backend
    /// or mode is skipped on purpose (`RECALL_TEST_SKIP=s3` / `daemon`).
    pub fn new(backend: Backend, mode: Mode, case: &str) -> Option<Env> {
        if mode == Mode::Daemon && skipped("daemon") {
            eprintln!("SKIPPED (RECALL_TEST_SKIP): daemon-mode case {case}");
            return None;
        }
        let mut env = Self::direct(backend, case)?;
        if mode == Mode::Daemon {
            env.daemon = Some(start_daemon(&env.store, &env.vars));
            env.mode = Mode::Daemon;
        }
        Some(env)
    }

    fn direct(backend: Backend, case: &str) -> Option<Env> {
        let work = tempfile::tempdir().unwrap();
        match backend {
            Backend::File => {
                let dir = tempfile::tempdir().unwrap();
                Some(Env {
                    store: format!("file://{}", dir.path().display()),
                    mode: Mode::Direct,
                    daemon: None,
                    vars: Vec::new(),
                    work,
                    store_dir: Some(dir),
                })
            }
            Backend::S3 => {
                if skipped("s3") {
                    eprintln!("SKIPPED (RECALL_TEST_SKIP): S3 case {case}");
                    return None;
                }
                let env = s3_env::S3Env::from_env();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(env.ensure_bucket());
                let unique = s3_env::s3_root(&format!(
                    "cli-{case}-{}-{}-{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                ));
                let mut vars = vec![
                    ("AWS_ACCESS_KEY_ID".to_string(), env.access_key_id.clone()),
                    (
                        "AWS_SECRET_ACCESS_KEY".into(),
                        env.secret_access_key.clone(),
                    ),
                    ("AWS_REGION".into(), env.region.clone()),
                ];
                if let Some(endpoint) = &env.endpoint {
                    vars.push(("AWS_ENDPOINT_URL".into(), endpoint.clone()));
                }
                if let Some(token) = &env.session_token {
                    vars.push(("AWS_SESSION_TOKEN".into(), token.clone()));
                }
                Some(Env {
                    store: format!("s3://{}/{unique}", env.bucket),
                    mode: Mode::Direct,
                    daemon: None,
                    vars,
                    work,
                    store_dir: None,
                })
            }
        }
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// A `recall --store URL` (or `--daemon URL`) command in the working directory, not yet
    /// run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recall"));
        match &self.daemon {
            Some(daemon) => command.arg("--daemon").arg(&daemon.url),
            None => command.arg("--store").arg(&self.store),
        };
        command
            .args(args)
            .current_dir(self.dir())
            .env_remove("RECALL_STORE")
            .env_remove("RECALL_DAEMON")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `recall --store URL ARGS...`.
    pub fn recall(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run recall")
    }

    /// Runs `recall --store URL ARGS...` (or `--daemon URL`) under the file-creation mask
    /// `umask` (octal text, e.g. `"022"`), through `sh`.
    pub fn recall_with_umask(&self, umask: &str, args: &[&str]) -> Output {
        let recall = self.command(args);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$@\""))
            .arg("sh")
            .arg(recall.get_program())
            .args(recall.get_args())
            .current_dir(self.dir());
        for (key, value) in recall.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command.output().expect("run recall")
    }

    /// Runs `recall --store URL ARGS...` on the case's store, even in a daemon-mode case (to
    /// compare the two modes).
    pub fn recall_direct(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_recall"))
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .current_dir(self.dir())
            .env_remove("RECALL_STORE")
            .env_remove("RECALL_DAEMON")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run recall")
    }

    /// Writes a file in the working directory.
    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.dir().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Reads a file in the working directory.
    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.dir().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    /// How many times a test command ran (lines of runs.log).
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir().join("runs.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The local path of the store, for the file backend.
    pub fn store_path(&self) -> Option<PathBuf> {
        self.store_dir.as_ref().map(|d| d.path().to_path_buf())
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit status, showing stderr when it differs.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Deterministic test bytes of a given length.
pub fn data(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{seed}:{i};").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

//! Helpers of the end-to-end tests: a fresh store per case (local disk or S3), and the
//! built `recall` binary run in a scratch working directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use recall_testkit::backend::Backend as Store;
use recall_testkit::recalld::{Recalld, Settings};
pub use recall_testkit::skipped;

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
pub type Daemon = Recalld;

/// The recalld binary: `RECALL_TEST_RECALLD`, or the one cargo built beside `recall`.
pub fn recalld_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RECALL_TEST_RECALLD") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_BIN_EXE_recall")).with_file_name("recalld")
}

/// Starts recalld over `store` and waits until `/readyz` answers 200.
pub fn start_daemon(store: &str, vars: &[(String, String)]) -> Daemon {
    let binary = recalld_binary();
    assert!(
        binary.exists(),
        "{} does not exist: build it (cargo build -p recalld, or cargo test --workspace), \
         point RECALL_TEST_RECALLD at a recalld binary, or set RECALL_TEST_SKIP=daemon",
        binary.display()
    );
    let mut env = vars.to_vec();
    // These tests are about recall through a daemon, not the daemon's fail-open timing
    // (recalld's own tests and chaos.sh cover that). With the default 300 ms, moto on a
    // loaded 2-core machine answered 32 polling waiters late enough to open the breaker,
    // and every waiter then ran the command (fail open) in the serialized-runs case.
    env.push(("RECALL_LOOKUP_TIMEOUT_MS".into(), "3000".into()));
    let daemon = Recalld::start(
        &binary,
        store,
        &Settings {
            env,
            ..Settings::default()
        },
    );
    // /readyz does a real write-read round trip on the store; on a loaded 2-core machine
    // with many daemons starting at once over S3 that has taken more than 10 s.
    assert!(
        daemon.wait_ready(Duration::from_secs(30)),
        "recalld at {} did not become ready within 30 s",
        daemon.base
    );
    // recall's daemon mode codes against the whole API; say clearly when this recalld
    // predates part of it instead of failing later on a 404.
    let (_, api) = daemon.http_get("/openapi.json").unwrap_or_default();
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
    /// Where the store lives.
    pub backend: Store,
}

impl Env {
    /// A fresh store for `case`, used directly or through a daemon; `None` when the backend
    /// or mode is skipped on purpose (`RECALL_TEST_SKIP=s3` / `daemon`).
    pub fn new(backend: Backend, mode: Mode, case: &str) -> Option<Env> {
        if mode == Mode::Daemon && skipped("daemon") {
            return None;
        }
        let store = match backend {
            Backend::File => Store::local(),
            Backend::S3 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Store::s3("cli", case))?,
        };
        let mut env = Env::on(store);
        if mode == Mode::Daemon {
            env.daemon = Some(start_daemon(&env.store, &env.vars));
            env.mode = Mode::Daemon;
        }
        Some(env)
    }

    /// A case on `backend`, used directly.
    pub fn on(backend: Store) -> Env {
        Env {
            store: backend.url(),
            mode: Mode::Direct,
            daemon: None,
            vars: backend.process_env(None),
            work: tempfile::tempdir().unwrap(),
            backend,
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
            Some(daemon) => command.arg("--daemon").arg(&daemon.base),
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
        self.backend.local_path()
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

/// Asserts that `text` (a command's stdout or stderr) contains `needle`, showing the text.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} in:\n{text}");
}

/// Runs the built `recall` with `args` and neither `RECALL_STORE` nor `RECALL_DAEMON` set.
pub fn recall_unconfigured(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recall"))
        .args(args)
        .env_remove("RECALL_STORE")
        .env_remove("RECALL_DAEMON")
        .output()
        .expect("run recall")
}

/// `SUBCOMMAND --project P --domain D` and then `selector` (e.g. `--key KEY`): the start of
/// a command on entries of one tenant.
pub fn in_tenant<'a>(
    subcommand: &'a str,
    project: &'a str,
    domain: &'a str,
    selector: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![subcommand, "--project", project, "--domain", domain];
    args.extend_from_slice(selector);
    args
}

/// `SUBCOMMAND --project P --domain D --task T --cache-version V`: the start of a command on
/// the entries of one task version (its key material's names).
pub fn on_task<'a>(
    subcommand: &'a str,
    project: &'a str,
    domain: &'a str,
    task: &'a str,
    cache_version: &'a str,
) -> Vec<&'a str> {
    in_tenant(
        subcommand,
        project,
        domain,
        &["--task", task, "--cache-version", cache_version],
    )
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

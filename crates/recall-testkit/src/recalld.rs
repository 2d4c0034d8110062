//! A running `recalld` binary: started on a free loopback port over a store URL, with a
//! configuration file, a private spool and a log of its own; killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start one recalld.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Extra TOML appended to the generated configuration file.
    pub toml: String,
    /// Environment variables for the process (the store's credentials, settings). Every
    /// other `RECALL_*` variable but `RECALL_TEST_*` is removed: settings come from the test
    /// only.
    pub env: Vec<(String, String)>,
    /// Start the daemon with this limit on open files (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}

/// A running recalld process; killed when dropped (its log is printed when the test
/// panicked).
pub struct Recalld {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Recalld {
    /// Starts `binary` on a free loopback port over `store` and waits (30 s at most) for the
    /// line that says where it listens.
    pub fn start(binary: &Path, store: &str, settings: &Settings) -> Recalld {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("recalld.toml");
        // recalld refuses a spool other users can reach; this directory is private.
        let spool = dir.path().join("spool");
        let text = format!(
            "spool_dir = {:?}\n{}\n",
            spool.display().to_string(),
            settings.toml
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.path().join("recalld.log");
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--store", store])
            .env("RECALL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (name, _) in std::env::vars() {
            if name.starts_with("RECALL_") && !name.starts_with("RECALL_TEST_") {
                command.env_remove(name);
            }
        }
        command
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("AWS_ENDPOINT")
            .envs(settings.env.iter().map(|(k, v)| (k, v)));
        if let Some(limit) = settings.open_files {
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
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
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
        Recalld {
            child: Some(child),
            base,
            log,
            _dir: dir,
        }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
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

    /// Polls `GET /readyz` until it answers 200; false when it did not within `limit`.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self
                .http_get("/readyz")
                .is_some_and(|(status, _)| status == 200)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Status and whole answer (head and body) of a plain blocking `GET path`, if the daemon
    /// answers.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(self.address()).ok()?;
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

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Recalld {
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

/// A free 127.0.0.1 port (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

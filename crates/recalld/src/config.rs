//! recalld's settings: built-in defaults, then `config/recalld.toml`-style file, then
//! `RECALL_*` environment variables, then command-line flags. An unknown key or a bad value
//! stops start-up with a message naming it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything recalld can be configured with. Field docs are the file's documentation; the
/// commented example is `config/recalld.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to serve on. Default `127.0.0.1:7700`.
    pub listen: SocketAddr,
    /// Store URL: `file:///path`, `s3://bucket/prefix`, `gs://...`, `az://...`, `memory://`.
    /// Default: a local directory, see [`default_store_dir`].
    pub store: String,
    /// Allow a non-loopback `listen` address without tokens.
    pub insecure_no_auth: bool,
    /// `text` or `json` log lines on stderr.
    pub log_format: LogFormat,
    /// Threads that serve requests, each with the connections handed to it; 0 (the
    /// default) means one per CPU. Each listener (HTTP, and each Flyte front door) has
    /// this many.
    pub worker_threads: usize,
    /// Directory where uploads are spooled before they are published; it must be owned by
    /// recalld's user and closed to everyone else (created 0700 when missing). Default:
    /// [`default_spool_dir`].
    pub spool_dir: Option<PathBuf>,
    /// Most connections open at once, on each listener (HTTP, and each Flyte front door).
    /// At the limit, a new connection closes the one idle longest (no request in flight);
    /// when every connection has a request in flight, new ones wait in the listen queue.
    /// Default 512.
    pub max_connections: usize,
    /// The memory tier.
    pub hot: HotSettings,
    /// Time limits.
    pub timeouts: Timeouts,
    /// The circuit breaker in front of the store.
    pub breaker: BreakerSettings,
    /// Entry expiry.
    pub cache: CacheSettings,
    /// Request size limits.
    pub limits: Limits,
    /// Bearer tokens; none means no authentication (loopback only, unless insecure_no_auth).
    pub tokens: Vec<TokenSettings>,
    /// Flyte's catalog protocols (`[flyte]`).
    pub flyte: FlyteSettings,
}

/// `[flyte]`: the datacatalog gRPC service for flytepropeller and Flyte 2's CacheService.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlyteSettings {
    /// Where to serve Flyte 1's datacatalog gRPC service; unset: not served.
    pub datacatalog_listen: Option<SocketAddr>,
    /// Where to serve Flyte 2's CacheService (gRPC and Connect on one port); unset: not
    /// served.
    pub cacheservice_listen: Option<SocketAddr>,
    /// Serve the CacheService listener without checking bearer tokens, even when `[[tokens]]`
    /// guard the other listeners: Flyte 2's executor sends none. Every caller that reaches
    /// the port may read and write every project and domain through it.
    pub cacheservice_insecure_no_auth: bool,
    /// Project of the base (unscoped) CacheService's keys; unset: the base service refuses.
    pub default_project: Option<String>,
    /// Domain of the base (unscoped) CacheService's keys; unset: the base service refuses.
    pub default_domain: Option<String>,
    /// Longest heartbeat a reservation is granted for, in seconds (default 10, never 0).
    pub reservation_max_heartbeat_secs: u64,
    /// A reservation expires after this many heartbeats without renewal (default 3, never 0).
    pub reservation_grace: u32,
    /// An artifact that is created but never tagged expires after this many seconds.
    pub untagged_artifact_ttl_secs: u64,
    /// URL prefixes (`s3://bucket/prefix/`, `file:///dir/`, ending in `/`) under which a
    /// CacheService Put with `overwrite.delete_blob` deletes the replaced entry's old
    /// `output_uri`; empty (the default): nothing is deleted. Opened like the store URL, with
    /// the same credentials; none may overlap the store.
    pub delete_blob_roots: Vec<String>,
}

impl Default for FlyteSettings {
    fn default() -> Self {
        FlyteSettings {
            datacatalog_listen: None,
            cacheservice_listen: None,
            cacheservice_insecure_no_auth: false,
            default_project: None,
            default_domain: None,
            reservation_max_heartbeat_secs: 10,
            reservation_grace: 3,
            untagged_artifact_ttl_secs: 3600,
            delete_blob_roots: Vec::new(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Memory-tier settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotSettings {
    /// Bytes of manifests held in memory. Default 256 MiB.
    pub capacity_bytes: u64,
    /// Seconds a hit is served from memory; also how long an entry evicted through another
    /// daemon may still be served by this one. Default 60.
    pub ttl_secs: u64,
    /// Seconds a miss is remembered; 0 (the default) remembers none. At most 10.
    pub negative_ttl_secs: u64,
}

/// Time limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// A lookup that needs the store answers CACHE_LOOKUP_FAILURE after this. Default 300.
    pub lookup_ms: u64,
    /// A publish fails with CACHE_PUT_FAILURE after this. Default 3600.
    pub publish_secs: u64,
    /// A lease request (reserve, extend, release) answers 503 after this. Default 5000.
    pub lease_ms: u64,
    /// A connection must send a complete request head within this many seconds of being
    /// accepted or of its previous response, else it is closed; this is also how long an
    /// idle kept-alive connection stays open. Default 30.
    pub header_read_secs: u64,
    /// A request body that sends nothing for this many seconds fails and its connection is
    /// closed. Default 60.
    pub body_idle_secs: u64,
    /// After SIGTERM/SIGINT, requests in flight get this many seconds to finish; then
    /// recalld exits regardless. Default 30.
    pub shutdown_secs: u64,
}

/// Circuit-breaker settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive store failures that open the breaker. Default 5.
    pub failure_threshold: u32,
    /// Milliseconds the breaker stays open before one probe request. Default 2000.
    pub open_ms: u64,
}

/// Entry expiry settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Entries older than this many seconds are misses; 0 (default) means no limit.
    pub max_age_secs: u64,
    /// Per-task maximum ages in seconds, by task name.
    pub max_age_per_task_secs: BTreeMap<String, u64>,
}

/// Request size limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest publish request body. Default 64 GiB.
    pub max_publish_bytes: u64,
    /// Largest JSON request body. Default 1 MiB.
    pub max_json_bytes: u64,
    /// Largest `material` part of a publish (held in memory). Default 1 MiB.
    pub max_material_bytes: u64,
    /// Most outputs one entry may declare. Default 256; at most
    /// [`recall_store::MAX_MANIFEST_OUTPUTS`] (readers treat a larger entry as a miss).
    pub max_outputs: u64,
    /// Largest manifest a publish may write, in bytes. Default 4 MiB; at most half of
    /// [`recall_store::MAX_MANIFEST_BYTES`], leaving room for the records later publishes add.
    pub max_manifest_bytes: u64,
    /// Longest `heartbeat_seconds` a lease request may ask for (a lease lapses after three
    /// missed heartbeats); longer requests are refused with 400. Default 3600.
    pub max_heartbeat_secs: u64,
}

/// One bearer token and what it may do.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// A name for logs and metrics (the token itself is never logged).
    pub name: String,
    /// The secret the client sends as `Authorization: Bearer <token>`.
    pub token: String,
    /// Projects it may touch; `"*"` for all.
    pub projects: Vec<String>,
    /// Domains it may touch; `"*"` for all.
    pub domains: Vec<String>,
    /// `read` (lookups, fetches), `write` (also publishes and leases) or `admin` (also
    /// eviction and GC).
    pub access: Access,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("projects", &self.projects)
            .field("domains", &self.domains)
            .field("access", &self.access)
            .finish()
    }
}

/// What a token may do; each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Lookups and fetches.
    Read,
    /// Also publishes and leases.
    Write,
    /// Also eviction and GC.
    Admin,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            store: format!("file://{}", default_store_dir().display()),
            insecure_no_auth: false,
            log_format: LogFormat::Text,
            worker_threads: 0,
            spool_dir: None,
            max_connections: 512,
            hot: HotSettings::default(),
            timeouts: Timeouts::default(),
            breaker: BreakerSettings::default(),
            cache: CacheSettings::default(),
            limits: Limits::default(),
            tokens: Vec::new(),
            flyte: FlyteSettings::default(),
        }
    }
}

impl Default for HotSettings {
    fn default() -> Self {
        HotSettings {
            capacity_bytes: 256 * 1024 * 1024,
            ttl_secs: 60,
            negative_ttl_secs: 0,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            lookup_ms: 300,
            publish_secs: 3600,
            lease_ms: 5000,
            header_read_secs: 30,
            body_idle_secs: 60,
            shutdown_secs: 30,
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            open_ms: 2000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_publish_bytes: 64 * 1024 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            max_material_bytes: 1024 * 1024,
            max_outputs: 256,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_heartbeat_secs: 3600,
        }
    }
}

/// The embedded default store directory: `$RECALL_HOME/store`, else
/// `$XDG_DATA_HOME/recall/store`, else `$HOME/.local/share/recall/store`, else
/// `./recall-store`.
pub fn default_store_dir() -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(home) = env("RECALL_HOME") {
        return home.join("store");
    }
    if let Some(data) = env("XDG_DATA_HOME") {
        return data.join("recall/store");
    }
    if let Some(home) = env("HOME") {
        return home.join(".local/share/recall/store");
    }
    PathBuf::from("recall-store")
}

/// The default spool directory, private to recalld's user: `$RECALL_HOME/spool`, else
/// `$XDG_STATE_HOME/recall/spool`, else `$HOME/.local/state/recall/spool`, else
/// `<system temp>/recalld-spool-<uid>`.
pub fn default_spool_dir() -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(home) = env("RECALL_HOME") {
        return home.join("spool");
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return state.join("recall/spool");
    }
    if let Some(home) = env("HOME") {
        return home.join(".local/state/recall/spool");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("recalld-spool-{uid}"))
}

/// A setting that cannot be used; the message names it and its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings (unknown key, wrong type, ...).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// An environment variable has a value that does not parse.
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An environment variable starts with RECALL_ but is not a setting.
    #[error("environment variable {name} is not a recalld setting (known: {known})")]
    UnknownEnv {
        /// The variable.
        name: String,
        /// The ones that exist.
        known: String,
    },
    /// The combination of settings is unsafe or impossible.
    #[error("setting {setting} = {value}: {reason}")]
    Invalid {
        /// The setting, as written in the file.
        setting: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
}

/// Most worker threads `worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

/// Largest `limits.max_heartbeat_secs`: one day (a lease then lasts at most three).
pub const MAX_HEARTBEAT_SECS: u64 = 86_400;

/// Environment variables recalld reads, with the setting each overrides. Variables used by
/// other recall tools (not settings of recalld) are listed in [`FOREIGN_ENV`].
pub const ENV_SETTINGS: &[&str] = &[
    "RECALL_LISTEN",
    "RECALL_STORE",
    "RECALL_INSECURE_NO_AUTH",
    "RECALL_LOG_FORMAT",
    "RECALL_WORKER_THREADS",
    "RECALL_SPOOL_DIR",
    "RECALL_MAX_CONNECTIONS",
    "RECALL_HOT_CAPACITY_BYTES",
    "RECALL_HOT_TTL_SECS",
    "RECALL_HOT_NEGATIVE_TTL_SECS",
    "RECALL_LOOKUP_TIMEOUT_MS",
    "RECALL_PUBLISH_TIMEOUT_SECS",
    "RECALL_LEASE_TIMEOUT_MS",
    "RECALL_HEADER_READ_TIMEOUT_SECS",
    "RECALL_BODY_IDLE_TIMEOUT_SECS",
    "RECALL_SHUTDOWN_TIMEOUT_SECS",
    "RECALL_MAX_MATERIAL_BYTES",
    "RECALL_MAX_OUTPUTS",
    "RECALL_MAX_MANIFEST_BYTES",
    "RECALL_MAX_HEARTBEAT_SECS",
    "RECALL_BREAKER_FAILURE_THRESHOLD",
    "RECALL_BREAKER_OPEN_MS",
    "RECALL_MAX_AGE_SECS",
    "RECALL_FLYTE_DATACATALOG_LISTEN",
    "RECALL_FLYTE_CACHESERVICE_LISTEN",
    "RECALL_FLYTE_CACHESERVICE_INSECURE_NO_AUTH",
    "RECALL_FLYTE_DEFAULT_PROJECT",
    "RECALL_FLYTE_DEFAULT_DOMAIN",
    "RECALL_FLYTE_RESERVATION_MAX_HEARTBEAT_SECS",
    "RECALL_FLYTE_RESERVATION_GRACE",
    "RECALL_FLYTE_UNTAGGED_ARTIFACT_TTL_SECS",
    "RECALL_FLYTE_DELETE_BLOB_ROOTS",
];

/// `RECALL_*` variables that belong to other tools and are ignored here.
/// (`RECALL_DAEMON` and `RECALL_TOKEN` are the `recall` command's, which often runs beside
/// recalld with the same environment.)
pub const FOREIGN_ENV: &[&str] = &[
    "RECALL_HOME",
    "RECALL_CONFIG",
    "RECALL_LOG",
    "RECALL_DAEMON",
    "RECALL_TOKEN",
];

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// Applies `RECALL_*` variables from `vars`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            if !name.starts_with("RECALL_")
                || FOREIGN_ENV.contains(&name.as_str())
                || name.starts_with("RECALL_TEST_")
            {
                continue;
            }
            let bad = |reason: &str| ConfigError::Env {
                name: name.clone(),
                value: value.clone(),
                reason: reason.to_string(),
            };
            let num = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad("expected a whole number"))
            };
            let boolean = || match value.as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(bad("expected true or false")),
            };
            match name.as_str() {
                "RECALL_LISTEN" => {
                    self.listen = value.parse().map_err(|_| bad("expected ADDRESS:PORT"))?
                }
                "RECALL_STORE" => self.store = value.clone(),
                "RECALL_INSECURE_NO_AUTH" => self.insecure_no_auth = boolean()?,
                "RECALL_FLYTE_CACHESERVICE_INSECURE_NO_AUTH" => {
                    self.flyte.cacheservice_insecure_no_auth = boolean()?
                }
                "RECALL_LOG_FORMAT" => {
                    self.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad("expected text or json")),
                    }
                }
                "RECALL_WORKER_THREADS" => {
                    self.worker_threads = usize::try_from(num()?).map_err(|_| bad("too large"))?
                }
                "RECALL_SPOOL_DIR" => self.spool_dir = Some(PathBuf::from(&value)),
                "RECALL_MAX_CONNECTIONS" => {
                    self.max_connections = usize::try_from(num()?).map_err(|_| bad("too large"))?
                }
                "RECALL_HOT_CAPACITY_BYTES" => self.hot.capacity_bytes = num()?,
                "RECALL_HOT_TTL_SECS" => self.hot.ttl_secs = num()?,
                "RECALL_HOT_NEGATIVE_TTL_SECS" => self.hot.negative_ttl_secs = num()?,
                "RECALL_LOOKUP_TIMEOUT_MS" => self.timeouts.lookup_ms = num()?,
                "RECALL_PUBLISH_TIMEOUT_SECS" => self.timeouts.publish_secs = num()?,
                "RECALL_LEASE_TIMEOUT_MS" => self.timeouts.lease_ms = num()?,
                "RECALL_HEADER_READ_TIMEOUT_SECS" => self.timeouts.header_read_secs = num()?,
                "RECALL_BODY_IDLE_TIMEOUT_SECS" => self.timeouts.body_idle_secs = num()?,
                "RECALL_SHUTDOWN_TIMEOUT_SECS" => self.timeouts.shutdown_secs = num()?,
                "RECALL_MAX_MATERIAL_BYTES" => self.limits.max_material_bytes = num()?,
                "RECALL_MAX_OUTPUTS" => self.limits.max_outputs = num()?,
                "RECALL_MAX_MANIFEST_BYTES" => self.limits.max_manifest_bytes = num()?,
                "RECALL_MAX_HEARTBEAT_SECS" => self.limits.max_heartbeat_secs = num()?,
                "RECALL_BREAKER_FAILURE_THRESHOLD" => {
                    self.breaker.failure_threshold =
                        u32::try_from(num()?).map_err(|_| bad("too large"))?
                }
                "RECALL_BREAKER_OPEN_MS" => self.breaker.open_ms = num()?,
                "RECALL_MAX_AGE_SECS" => self.cache.max_age_secs = num()?,
                "RECALL_FLYTE_DATACATALOG_LISTEN" => {
                    self.flyte.datacatalog_listen =
                        Some(value.parse().map_err(|_| bad("expected ADDRESS:PORT"))?)
                }
                "RECALL_FLYTE_CACHESERVICE_LISTEN" => {
                    self.flyte.cacheservice_listen =
                        Some(value.parse().map_err(|_| bad("expected ADDRESS:PORT"))?)
                }
                "RECALL_FLYTE_DEFAULT_PROJECT" => self.flyte.default_project = Some(value),
                "RECALL_FLYTE_DEFAULT_DOMAIN" => self.flyte.default_domain = Some(value),
                "RECALL_FLYTE_RESERVATION_MAX_HEARTBEAT_SECS" => {
                    self.flyte.reservation_max_heartbeat_secs = num()?
                }
                "RECALL_FLYTE_RESERVATION_GRACE" => {
                    self.flyte.reservation_grace =
                        u32::try_from(num()?).map_err(|_| bad("too large"))?
                }
                "RECALL_FLYTE_UNTAGGED_ARTIFACT_TTL_SECS" => {
                    self.flyte.untagged_artifact_ttl_secs = num()?
                }
                "RECALL_FLYTE_DELETE_BLOB_ROOTS" => {
                    self.flyte.delete_blob_roots = value
                        .split(',')
                        .map(str::trim)
                        .filter(|root| !root.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                _ => {
                    return Err(ConfigError::UnknownEnv {
                        name,
                        known: ENV_SETTINGS.join(", "),
                    });
                }
            }
        }
        Ok(())
    }

    /// `[flyte] delete_blob_roots`, checked against the store URL (see
    /// [`recall_store::RootProblem`]).
    pub fn delete_blob_roots(&self) -> Result<recall_store::DeleteRoots, ConfigError> {
        recall_store::DeleteRoots::new(&self.flyte.delete_blob_roots, &self.store).map_err(|e| {
            ConfigError::Invalid {
                setting: "flyte.delete_blob_roots",
                value: e.root,
                reason: e.problem.to_string(),
            }
        })
    }

    /// Checks the settings together: safe binding, sane limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, value: String, reason: &str| ConfigError::Invalid {
            setting,
            value,
            reason: reason.to_string(),
        };
        if !self.listen.ip().is_loopback() && self.tokens.is_empty() && !self.insecure_no_auth {
            return Err(invalid(
                "listen",
                self.listen.to_string(),
                "a non-loopback address needs [[tokens]] configured, or --insecure-no-auth",
            ));
        }
        for (field, listen) in [
            ("flyte.datacatalog_listen", self.flyte.datacatalog_listen),
            ("flyte.cacheservice_listen", self.flyte.cacheservice_listen),
        ] {
            if let Some(address) = listen
                && !address.ip().is_loopback()
                && self.tokens.is_empty()
                && !self.insecure_no_auth
                && !(field == "flyte.cacheservice_listen"
                    && self.flyte.cacheservice_insecure_no_auth)
            {
                return Err(invalid(
                    field,
                    address.to_string(),
                    "a non-loopback address needs [[tokens]] configured, or --insecure-no-auth",
                ));
            }
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(invalid(
                "worker_threads",
                self.worker_threads.to_string(),
                &format!("must be at most {MAX_WORKER_THREADS} (0 means one per CPU)"),
            ));
        }
        if self.hot.ttl_secs == 0 {
            return Err(invalid("hot.ttl_secs", "0".into(), "must be at least 1"));
        }
        if Duration::from_secs(self.hot.negative_ttl_secs) > recall_hot::MAX_NEGATIVE_TTL {
            return Err(invalid(
                "hot.negative_ttl_secs",
                self.hot.negative_ttl_secs.to_string(),
                "must be at most 10 (another daemon may publish the entry a moment later)",
            ));
        }
        if self.timeouts.lookup_ms == 0 {
            return Err(invalid(
                "timeouts.lookup_ms",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.timeouts.lease_ms == 0 {
            return Err(invalid(
                "timeouts.lease_ms",
                "0".into(),
                "must be at least 1",
            ));
        }
        for (setting, value) in [
            ("timeouts.header_read_secs", self.timeouts.header_read_secs),
            ("timeouts.body_idle_secs", self.timeouts.body_idle_secs),
            ("timeouts.shutdown_secs", self.timeouts.shutdown_secs),
            ("max_connections", self.max_connections as u64),
            ("limits.max_material_bytes", self.limits.max_material_bytes),
            ("limits.max_outputs", self.limits.max_outputs),
            ("limits.max_manifest_bytes", self.limits.max_manifest_bytes),
            ("limits.max_heartbeat_secs", self.limits.max_heartbeat_secs),
            (
                "flyte.reservation_max_heartbeat_secs",
                self.flyte.reservation_max_heartbeat_secs,
            ),
            (
                "flyte.reservation_grace",
                u64::from(self.flyte.reservation_grace),
            ),
            (
                "flyte.untagged_artifact_ttl_secs",
                self.flyte.untagged_artifact_ttl_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(setting, "0".into(), "must be at least 1"));
            }
        }
        if self.limits.max_outputs > recall_store::MAX_MANIFEST_OUTPUTS as u64 {
            return Err(invalid(
                "limits.max_outputs",
                self.limits.max_outputs.to_string(),
                &format!(
                    "must be at most {} (readers treat an entry with more outputs as a miss)",
                    recall_store::MAX_MANIFEST_OUTPUTS
                ),
            ));
        }
        if self.limits.max_manifest_bytes > recall_store::MAX_MANIFEST_BYTES as u64 / 2 {
            return Err(invalid(
                "limits.max_manifest_bytes",
                self.limits.max_manifest_bytes.to_string(),
                &format!(
                    "must be at most {} (half the readers' limit of {} bytes, leaving room for \
                     the nondeterminism records later publishes add)",
                    recall_store::MAX_MANIFEST_BYTES / 2,
                    recall_store::MAX_MANIFEST_BYTES
                ),
            ));
        }
        if self.limits.max_heartbeat_secs > MAX_HEARTBEAT_SECS {
            return Err(invalid(
                "limits.max_heartbeat_secs",
                self.limits.max_heartbeat_secs.to_string(),
                &format!("must be at most {MAX_HEARTBEAT_SECS} (one day)"),
            ));
        }
        if self.flyte.reservation_max_heartbeat_secs > MAX_HEARTBEAT_SECS {
            return Err(invalid(
                "flyte.reservation_max_heartbeat_secs",
                self.flyte.reservation_max_heartbeat_secs.to_string(),
                &format!("must be at most {MAX_HEARTBEAT_SECS} (one day)"),
            ));
        }
        self.delete_blob_roots()?;
        if self.breaker.failure_threshold == 0 {
            return Err(invalid(
                "breaker.failure_threshold",
                "0".into(),
                "must be at least 1",
            ));
        }
        for (i, token) in self.tokens.iter().enumerate() {
            if token.token.len() < 16 {
                return Err(invalid(
                    "tokens.token",
                    format!(
                        "<token {:?} (#{i}), {} characters>",
                        token.name,
                        token.token.len()
                    ),
                    "tokens must be at least 16 characters",
                ));
            }
            if token.projects.is_empty() || token.domains.is_empty() {
                return Err(invalid(
                    "tokens.projects/domains",
                    format!("token {:?}", token.name),
                    "list at least one project and one domain (\"*\" for all)",
                ));
            }
        }
        let mut secrets: Vec<&str> = self.tokens.iter().map(|t| t.token.as_str()).collect();
        secrets.sort_unstable();
        if secrets.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(
                "tokens.token",
                "<redacted>".into(),
                "two tokens share a secret",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults_where_it_says_so() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/recalld.toml");
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(config.worker_threads, defaults.worker_threads);
        assert_eq!(config.max_connections, defaults.max_connections);
        assert_eq!(config.hot, defaults.hot);
        assert_eq!(config.timeouts, defaults.timeouts);
        assert_eq!(config.breaker, defaults.breaker);
        assert_eq!(config.limits, defaults.limits);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::from_toml("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.contains("listn"), "{err}");
        let err = Config::from_toml("[hot]\nttl_secs = \"soon\"").unwrap_err();
        assert!(err.contains("ttl_secs") || err.contains("soon"), "{err}");
        let mut config = Config::default();
        let err = config
            .apply_env([("RECALL_HOT_TTL_SECS".into(), "x".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RECALL_HOT_TTL_SECS=\"x\""), "{err}");
        let err = config
            .apply_env([("RECALL_LISTN".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RECALL_LISTN"), "{err}");
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let mut config = Config::from_toml("[hot]\nttl_secs = 5").unwrap();
        assert_eq!(config.hot.ttl_secs, 5);
        config
            .apply_env([("RECALL_HOT_TTL_SECS".into(), "7".into())])
            .unwrap();
        assert_eq!(config.hot.ttl_secs, 7);
    }

    #[test]
    fn hardening_limits_are_checked_and_named() {
        for (toml, named) in [
            ("max_connections = 0", "max_connections"),
            (
                "[timeouts]\nheader_read_secs = 0",
                "timeouts.header_read_secs",
            ),
            ("[timeouts]\nbody_idle_secs = 0", "timeouts.body_idle_secs"),
            ("[timeouts]\nshutdown_secs = 0", "timeouts.shutdown_secs"),
            (
                "[limits]\nmax_material_bytes = 0",
                "limits.max_material_bytes",
            ),
            ("[limits]\nmax_outputs = 1025", "limits.max_outputs = 1025"),
            (
                "[limits]\nmax_manifest_bytes = 8388609",
                "limits.max_manifest_bytes = 8388609",
            ),
            (
                "[limits]\nmax_heartbeat_secs = 86401",
                "limits.max_heartbeat_secs = 86401",
            ),
        ] {
            let config = Config::from_toml(toml).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(named), "{toml}: {err}");
        }
        let mut config = Config::default();
        config
            .apply_env([
                ("RECALL_MAX_CONNECTIONS".into(), "7".into()),
                ("RECALL_HEADER_READ_TIMEOUT_SECS".into(), "8".into()),
                ("RECALL_MAX_OUTPUTS".into(), "9".into()),
                ("RECALL_MAX_HEARTBEAT_SECS".into(), "10".into()),
            ])
            .unwrap();
        assert_eq!(
            (
                config.max_connections,
                config.timeouts.header_read_secs,
                config.limits.max_outputs,
                config.limits.max_heartbeat_secs
            ),
            (7, 8, 9, 10)
        );
        config.validate().unwrap();
    }

    #[test]
    fn delete_blob_roots_come_from_the_environment_and_are_checked() {
        let mut config = Config {
            store: "s3://cache/recall".into(),
            ..Config::default()
        };
        config
            .apply_env([(
                "RECALL_FLYTE_DELETE_BLOB_ROOTS".into(),
                " s3://flyte-data/raw/ ,file:///srv/flyte/,".into(),
            )])
            .unwrap();
        assert_eq!(
            config.flyte.delete_blob_roots,
            ["s3://flyte-data/raw/", "file:///srv/flyte/"]
        );
        config.validate().unwrap();
        for (root, reason) in [
            (
                "s3://cache/",
                "overlaps recalld's own store \"s3://cache/recall\"",
            ),
            ("s3://flyte-data/raw", "must end in \"/\""),
            ("s3://flyte-data/a/../b/", "\"..\""),
        ] {
            config.flyte.delete_blob_roots = vec![root.into()];
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("setting flyte.delete_blob_roots = {root}: ")),
                "{err}"
            );
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn public_binding_needs_auth() {
        let mut config = Config::from_toml("listen = \"0.0.0.0:7700\"").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("0.0.0.0:7700") && err.contains("tokens"),
            "{err}"
        );
        config.insecure_no_auth = true;
        config.validate().unwrap();
    }

    #[test]
    fn an_open_cacheservice_listener_is_asked_for_by_name() {
        let mut config =
            Config::from_toml("[flyte]\ncacheservice_listen = \"0.0.0.0:8090\"").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("flyte.cacheservice_listen"), "{err}");
        config
            .apply_env([(
                "RECALL_FLYTE_CACHESERVICE_INSECURE_NO_AUTH".to_string(),
                "true".to_string(),
            )])
            .unwrap();
        assert!(config.flyte.cacheservice_insecure_no_auth);
        config.validate().unwrap();
        // It opens that listener only: a public datacatalog listener still needs tokens.
        config.flyte.datacatalog_listen = Some("0.0.0.0:8089".parse().unwrap());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("flyte.datacatalog_listen"), "{err}");
        let err = config
            .apply_env([(
                "RECALL_FLYTE_CACHESERVICE_INSECURE_NO_AUTH".to_string(),
                "yes".to_string(),
            )])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RECALL_FLYTE_CACHESERVICE_INSECURE_NO_AUTH"),
            "{err}"
        );
    }

    #[test]
    fn tokens_are_never_printed() {
        let config = Config::from_toml(
            "[[tokens]]\nname = \"ci\"\ntoken = \"s3cr3t-s3cr3t-s3cr3t\"\nprojects = [\"*\"]\ndomains = [\"*\"]\naccess = \"read\"",
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}

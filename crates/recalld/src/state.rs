//! The daemon's shared state and the lookup path: memory tier → breaker → store, fail-open.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recall_hot::{HotConfig, HotLookup, HotManifest, HotTier, Tier};
use recall_store::{Capabilities, EntryRef, Manifest, Miss, Store, StoreConfig, StoreError};

use crate::auth::Auth;
use crate::breaker::{Breaker, BreakerState};
use crate::config::Config;
use crate::metrics::{LookupOutcome, Metrics};

/// Everything the handlers share.
pub struct AppState {
    /// The settings the daemon started with.
    pub config: Config,
    /// The memory tier over the store.
    pub hot: HotTier<Store>,
    /// Guards the store on the lookup path.
    pub breaker: Breaker,
    /// Token checks.
    pub auth: Auth,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Where uploads are spooled.
    pub spool_dir: PathBuf,
    /// Whether the store answered the start-up check, and what it honours.
    store_check: StoreCheck,
}

/// The start-up check of the store (descriptor, then capability probe), repeated until it
/// gets through: recalld serves, not ready, while the store is down.
#[derive(Default)]
struct StoreCheck {
    /// Set once the descriptor was read (lookups wait for this; a read-only store gets it).
    descriptor_ok: AtomicBool,
    /// Set once the whole check (descriptor and probe) got through.
    passed: AtomicBool,
    /// The capabilities once known, or why the check has not got through.
    outcome: Mutex<Option<Result<Capabilities, String>>>,
    /// One check at a time.
    running: tokio::sync::Mutex<()>,
    /// The last readiness round trip and when it ended (see [`AppState::readiness_memo`]).
    readiness: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

/// How soon a failed store check is repeated in the background; the wait doubles after each
/// failure, up to [`STORE_CHECK_RETRY_MAX`] (a store that denies writes keeps failing).
const STORE_CHECK_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two background store checks.
const STORE_CHECK_RETRY_MAX: Duration = Duration::from_secs(60);

/// The answer to one lookup.
#[derive(Debug, Clone)]
pub enum LookupAnswer {
    /// A live entry, and whether memory answered.
    Hit {
        /// The manifest.
        manifest: Arc<HotManifest>,
        /// True when the memory tier answered.
        from_hot_tier: bool,
    },
    /// No usable entry.
    Miss(Miss),
    /// The store could not be asked in time: the caller runs the task.
    Failure(String),
}

impl AppState {
    /// Opens the store and builds the state, then checks the store (descriptor, capability
    /// probe). A store that is down or denies access does not stop recalld: it serves, not
    /// ready, and [`AppState::keep_checking_store`] repeats the check. Only a store URL that
    /// cannot be used, or a store with a layout this version cannot read, is an error.
    pub async fn new(config: Config) -> anyhow::Result<AppState> {
        let store_config = StoreConfig {
            max_age: (config.cache.max_age_secs > 0)
                .then(|| Duration::from_secs(config.cache.max_age_secs)),
            max_age_per_task: config
                .cache
                .max_age_per_task_secs
                .iter()
                .map(|(task, secs)| (task.clone(), Duration::from_secs(*secs)))
                .collect(),
            ..StoreConfig::default()
        };
        let store = Store::open_unverified(&config.store, store_config)
            .map_err(|e| anyhow::anyhow!("store {}: {e}", config.store))?;
        let hot_config = HotConfig {
            capacity_bytes: config.hot.capacity_bytes,
            ttl: Duration::from_secs(config.hot.ttl_secs),
            negative_ttl: (config.hot.negative_ttl_secs > 0)
                .then(|| Duration::from_secs(config.hot.negative_ttl_secs)),
        };
        let hot = HotTier::new(store, &hot_config)?;
        let spool_dir = config
            .spool_dir
            .clone()
            .unwrap_or_else(crate::config::default_spool_dir);
        crate::spool::prepare(&spool_dir)?;
        let state = AppState {
            breaker: Breaker::new(
                config.breaker.failure_threshold,
                Duration::from_millis(config.breaker.open_ms),
            ),
            auth: Auth::new(config.tokens.clone()),
            metrics: Metrics::default(),
            hot,
            spool_dir,
            config,
            store_check: StoreCheck::default(),
        };
        match state.check_store().await {
            Ok(capabilities) => log_capabilities(&state.config.store, &capabilities),
            Err(StoreCheckError::Layout(err)) => {
                anyhow::bail!("store {}: {err}", state.config.store)
            }
            Err(StoreCheckError::Unavailable(cause)) => tracing::warn!(
                store = %state.config.store, %cause,
                "store not available at start-up: serving, not ready (lookups fail open) \
                 until it answers"
            ),
        }
        Ok(state)
    }

    /// Repeats the store check in the background until it gets through (when the start-up
    /// check did not). Call once, after [`AppState::new`].
    pub fn keep_checking_store(self: &Arc<Self>) {
        if self.store_check.passed.load(Ordering::Acquire) {
            return;
        }
        let state = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = STORE_CHECK_RETRY;
            loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(STORE_CHECK_RETRY_MAX);
                let Some(state) = state.upgrade() else { return };
                match state.check_store().await {
                    Ok(capabilities) => {
                        log_capabilities(&state.config.store, &capabilities);
                        return;
                    }
                    Err(StoreCheckError::Layout(err)) => {
                        tracing::error!(store = %state.config.store, error = %err,
                            "the store's layout cannot be used; recalld stays not ready");
                        return;
                    }
                    Err(StoreCheckError::Unavailable(_)) => {}
                }
            }
        });
    }

    /// Checks the store once it is known to answer: the descriptor, then the capability
    /// probe, each bounded by the readiness timeout. Cheap once it got through (no request).
    pub async fn check_store(&self) -> Result<Capabilities, StoreCheckError> {
        let _one_at_a_time = self.store_check.running.lock().await;
        if let Some(Ok(capabilities)) = self.store_outcome() {
            return Ok(capabilities);
        }
        let limit = self.readiness_timeout();
        let store = self.store();
        let descriptor = if self.store_check.descriptor_ok.load(Ordering::Acquire) {
            Ok(())
        } else {
            match tokio::time::timeout(limit, store.check_descriptor()).await {
                Err(_) => Err(StoreCheckError::Unavailable(format!(
                    "store did not answer within {limit:?}"
                ))),
                Ok(Err(err @ StoreError::UnsupportedLayout { .. })) => {
                    Err(StoreCheckError::Layout(err.to_string()))
                }
                Ok(Err(err)) => Err(StoreCheckError::Unavailable(err.to_string())),
                Ok(Ok(())) => {
                    self.store_check
                        .descriptor_ok
                        .store(true, Ordering::Release);
                    Ok(())
                }
            }
        };
        let result = match descriptor {
            Err(err) => Err(err),
            // A store that answers reads but denies the probe's writes (read-only
            // credentials) still serves lookups; only its capabilities stay unknown.
            Ok(()) => store
                .probe_capabilities(limit * 3)
                .await
                .map_err(|err| StoreCheckError::Unavailable(format!("capability probe: {err}"))),
        };
        if let Ok(capabilities) = &result {
            self.metrics.show_capabilities(capabilities);
        }
        *self
            .store_check
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(result.clone().map_err(|e| e.to_string()));
        self.store_check
            .passed
            .store(result.is_ok(), Ordering::Release);
        result
    }

    /// The outcome of the last store check (`None` before the first).
    fn store_outcome(&self) -> Option<Result<Capabilities, String>> {
        self.store_check
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store's capabilities, once its check got through.
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.store_outcome().and_then(Result::ok)
    }

    /// Why the store is not usable yet, or `None` when its check got through.
    pub fn store_not_ready(&self) -> Option<String> {
        if self.store_check.passed.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.store_outcome() {
            Some(Err(cause)) => cause,
            _ => "the store has not been checked yet".to_string(),
        })
    }

    /// The last readiness round trip (write, read back, delete under `probe/`) with when it
    /// ended. `/readyz` holds this lock while it runs one, so a burst of readiness requests
    /// (32 `recall run --daemon` starting at once, or a client hammering an unauthenticated
    /// route) shares one round trip instead of loading the store with one each.
    pub fn readiness_memo(
        &self,
    ) -> &tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>> {
        &self.store_check.readiness
    }

    /// Longest wait of a readiness check, and of each step of the store check.
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeouts.lookup_ms.max(1000))
    }

    /// `Ok` when leases can be granted on this store; otherwise the HTTP status and why:
    /// 501 when the store lacks conditional writes (docs/LAYOUT.md section 11), 503 while
    /// it has not answered yet.
    pub fn leases_supported(&self) -> Result<(), (u16, String)> {
        if let Some(cause) = self.store_not_ready() {
            return Err((503, format!("store not ready: {cause}")));
        }
        match self.capabilities() {
            Some(c) if !c.conditional_writes() => Err((
                501,
                format!(
                    "store {} does not honour {} (found by recalld's capability probe), so \
                     leases (cache_serialize) cannot be granted; run without serialization or \
                     use a store with conditional writes (see `recall doctor --store URL`)",
                    self.config.store,
                    c.missing()
                        .into_iter()
                        .filter(|m| *m != "ranged_get")
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Keeps a manifest the store just published (or read back after a publish) in the
    /// memory tier, but only on a store whose conditional writes make it the one kept: on
    /// other stores a concurrent publish may have replaced it, so the entry is forgotten and
    /// the next lookup reads the store (docs/LAYOUT.md section 11).
    pub async fn remember_published(&self, entry: EntryRef, manifest: Manifest) {
        if self.capabilities().is_some_and(|c| c.conditional_writes()) {
            self.hot.insert(entry, manifest).await;
        } else {
            self.hot.invalidate(&entry).await;
        }
    }

    /// The object store behind the memory tier.
    pub fn store(&self) -> &Store {
        self.hot.source()
    }

    /// Looks an entry up: memory, then (if the breaker allows) the store within the lookup
    /// timeout. Never fails: a store that is down or slow gives [`LookupAnswer::Failure`].
    pub async fn lookup(&self, entry: &EntryRef) -> LookupAnswer {
        let started = Instant::now();
        let (answer, tier) = self.lookup_inner(entry).await;
        let outcome = match (tier, &answer) {
            (Tier::Hot, LookupAnswer::Hit { .. }) => LookupOutcome::HotHit,
            (Tier::Hot, LookupAnswer::Miss(_)) => LookupOutcome::HotMiss,
            (Tier::Store, LookupAnswer::Hit { .. }) => LookupOutcome::StoreHit,
            (Tier::Store, LookupAnswer::Miss(_)) => LookupOutcome::StoreMiss,
            (_, LookupAnswer::Failure(_)) => LookupOutcome::Failure,
        };
        self.metrics.lookups.count(outcome);
        self.metrics.lookup_seconds.observe(started.elapsed());
        answer
    }

    /// The answer, and which tier was asked last.
    async fn lookup_inner(&self, entry: &EntryRef) -> (LookupAnswer, Tier) {
        if let Some(answer) = self.hot.cached(entry).await {
            return (convert(answer), Tier::Hot);
        }
        if !self.store_check.descriptor_ok.load(Ordering::Acquire) {
            let cause = self.store_not_ready().unwrap_or_default();
            return (
                LookupAnswer::Failure(format!("store not ready: {cause}")),
                Tier::Store,
            );
        }
        if !self.breaker.allow() {
            return (
                LookupAnswer::Failure(
                    "storage circuit breaker is open after repeated failures".into(),
                ),
                Tier::Store,
            );
        }
        let limit = Duration::from_millis(self.config.timeouts.lookup_ms);
        match tokio::time::timeout(limit, self.hot.load(entry)).await {
            Ok(Ok(answer)) => {
                self.breaker.record_success();
                (convert(answer), Tier::Store)
            }
            Ok(Err(err)) => {
                self.breaker.record_failure();
                self.metrics.backend_errors.inc();
                tracing::warn!(error = %err, "lookup failed at the store");
                (LookupAnswer::Failure(err.to_string()), Tier::Store)
            }
            Err(_) => {
                self.breaker.record_failure();
                self.metrics.backend_errors.inc();
                tracing::warn!(timeout_ms = limit.as_millis() as u64, "lookup timed out");
                (
                    LookupAnswer::Failure(format!(
                        "store did not answer within {} ms",
                        limit.as_millis()
                    )),
                    Tier::Store,
                )
            }
        }
    }

    /// Refreshes the gauges that mirror the memory tier and breaker.
    pub async fn refresh_gauges(&self) {
        let stats = self.hot.stats().await;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.metrics.hot_entries.set(gauge(stats.entries));
        self.metrics.hot_bytes.set(gauge(stats.bytes));
        self.metrics
            .hot_coalesced_waits
            .set(gauge(stats.coalesced_waits));
        self.metrics
            .hot_store_requests
            .set(gauge(stats.store_requests));
        self.metrics
            .breaker_open
            .set(i64::from(self.breaker.state() != BreakerState::Closed));
    }
}

/// Why the store check did not get through.
#[derive(Debug, Clone)]
pub enum StoreCheckError {
    /// The store did not answer, or denied access: try again later.
    Unavailable(String),
    /// The store answered with a layout this version cannot read.
    Layout(String),
}

impl std::fmt::Display for StoreCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreCheckError::Unavailable(cause) | StoreCheckError::Layout(cause) => {
                f.write_str(cause)
            }
        }
    }
}

/// One log line with what the store honours; a warning when conditional writes are missing.
fn log_capabilities(store: &str, capabilities: &Capabilities) {
    let [create, replace, ranged] = capabilities.checks().map(|(_, c)| c.supported);
    if capabilities.conditional_writes() {
        tracing::info!(%store, create_if_absent = create, replace_if_version_matches = replace,
            ranged_get = ranged, "store capabilities");
    } else {
        tracing::warn!(%store, create_if_absent = create, replace_if_version_matches = replace,
            ranged_get = ranged, missing = %capabilities.missing().join(","),
            "store capabilities: conditional writes are missing, so \"exactly one manifest \
             wins\" does not hold and lease requests are refused (docs/LAYOUT.md section 11)");
    }
}

fn convert(answer: HotLookup) -> LookupAnswer {
    match answer {
        HotLookup::Hit { manifest, tier } => LookupAnswer::Hit {
            manifest,
            from_hot_tier: tier == Tier::Hot,
        },
        HotLookup::Miss { miss, .. } => LookupAnswer::Miss(miss),
    }
}

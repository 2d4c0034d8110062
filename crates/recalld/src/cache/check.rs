//! The store's check (descriptor, then capability probe), repeated until it gets through,
//! and the readiness round trip behind `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recall_store::{Capabilities, StoreError};

use super::Cache;

/// The start-up check of the store (descriptor, then capability probe), repeated until it
/// gets through: recalld serves, not ready, while the store is down.
#[derive(Default)]
pub(super) struct StoreCheck {
    /// Set once the whole check (descriptor and probe) got through.
    passed: AtomicBool,
    /// The capabilities once known, or why the check has not got through.
    outcome: Mutex<Option<Result<Capabilities, String>>>,
    /// One check at a time.
    running: tokio::sync::Mutex<()>,
    /// The last readiness round trip and when it ended (see [`Cache::readiness`]).
    readiness: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl StoreCheck {
    /// The outcome of the last store check (`None` before the first).
    fn outcome(&self) -> Option<Result<Capabilities, String>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store's capabilities, once its check got through.
    pub(super) fn capabilities(&self) -> Option<Capabilities> {
        self.outcome().and_then(Result::ok)
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

/// Whether the store is ready for `/readyz`.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// The check got through and a round trip succeeded.
    Ready {
        /// What the store honours.
        capabilities: Capabilities,
        /// Set when it lacks conditional writes (ready, but leases are refused).
        warning: Option<String>,
    },
    /// Not ready, and why.
    NotReady {
        /// Why.
        cause: String,
        /// What the store honours, when the check got that far.
        capabilities: Option<Capabilities>,
    },
}

/// How soon a failed store check is repeated in the background; the wait doubles after each
/// failure, up to [`STORE_CHECK_RETRY_MAX`] (a store that denies writes keeps failing).
const STORE_CHECK_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two background store checks.
const STORE_CHECK_RETRY_MAX: Duration = Duration::from_secs(60);
/// How long one readiness round trip answers `/readyz` requests arriving after it.
const READINESS_MEMO: Duration = Duration::from_secs(1);

impl Cache {
    /// Repeats the store check in the background until it gets through (when the start-up
    /// check did not). Call once, after the first [`Cache::check_store`].
    pub fn keep_checking_store(self: &Arc<Self>) {
        if self.check.passed.load(Ordering::Acquire) {
            return;
        }
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = STORE_CHECK_RETRY;
            loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(STORE_CHECK_RETRY_MAX);
                let Some(cache) = cache.upgrade() else { return };
                match cache.check_store().await {
                    Ok(capabilities) => {
                        log_capabilities(&cache.config.store, &capabilities);
                        return;
                    }
                    Err(StoreCheckError::Layout(err)) => {
                        tracing::error!(store = %cache.config.store, error = %err,
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
    /// Lookups go to the store once the descriptor was read.
    pub async fn check_store(&self) -> Result<Capabilities, StoreCheckError> {
        let _one_at_a_time = self.check.running.lock().await;
        if let Some(Ok(capabilities)) = self.check.outcome() {
            return Ok(capabilities);
        }
        let limit = self.readiness_timeout();
        let store = self.store();
        let descriptor = if self.guard.is_open() {
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
                    self.guard.open();
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
        *self.check.outcome.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(result.clone().map_err(|e| e.to_string()));
        self.check.passed.store(result.is_ok(), Ordering::Release);
        result
    }

    /// Logs what the store honours (a warning when conditional writes are missing); for
    /// the start-up check's success.
    pub fn log_capabilities(&self, capabilities: &Capabilities) {
        log_capabilities(&self.config.store, capabilities);
    }

    /// Why the store is not usable yet, or `None` when its check got through.
    pub fn store_not_ready(&self) -> Option<String> {
        if self.check.passed.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.check.outcome() {
            Some(Err(cause)) => cause,
            _ => "the store has not been checked yet".to_string(),
        })
    }

    /// Longest wait of a readiness check, and of each step of the store check.
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeouts.lookup_ms.max(1000))
    }

    /// Whether the store is ready: the store check got through (it is repeated here until
    /// it does), and a real write → read → delete round trip under `probe/` succeeds within
    /// the readiness timeout. Requests that arrive while one round trip runs share it
    /// (32 `recall run --daemon` starting at once, or a client hammering an unauthenticated
    /// route, cost one), and a success answers for a second. A failure seen before this
    /// request arrived is not reused: the store may be back.
    pub async fn readiness(&self) -> Readiness {
        let capabilities = match self.check_store().await {
            Ok(capabilities) => capabilities,
            Err(cause) => {
                return Readiness::NotReady {
                    cause: cause.to_string(),
                    capabilities: None,
                };
            }
        };
        let limit = self.readiness_timeout();
        let arrived = Instant::now();
        let trip = {
            let mut memo = self.check.readiness.lock().await;
            match memo.as_ref() {
                Some((at, result))
                    if *at >= arrived || (result.is_ok() && at.elapsed() < READINESS_MEMO) =>
                {
                    result.clone()
                }
                _ => {
                    let result =
                        match tokio::time::timeout(limit, self.store().check_round_trip()).await {
                            Ok(result) => result.map_err(|e| e.to_string()),
                            Err(_) => Err(format!("store did not answer within {limit:?}")),
                        };
                    *memo = Some((Instant::now(), result.clone()));
                    result
                }
            }
        };
        match trip {
            Ok(()) => Readiness::Ready {
                warning: (!capabilities.conditional_writes()).then(|| {
                    format!(
                        "store {} lacks {}: \"exactly one manifest wins\" does not hold and \
                         lease requests are refused (docs/LAYOUT.md section 11)",
                        self.config.store,
                        capabilities.missing().join(", ")
                    )
                }),
                capabilities,
            },
            Err(cause) => Readiness::NotReady {
                cause,
                capabilities: Some(capabilities),
            },
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

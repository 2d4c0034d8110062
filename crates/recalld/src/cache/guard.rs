//! [`GuardedStore`]: the store as the lookup path sees it, behind the circuit breaker and the
//! lookup timeout, and closed until the store's descriptor was read.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::breaker::Breaker;
use crate::metrics::Metrics;

/// Wraps each store request of a lookup: refused at once while the store is not checked yet
/// or the breaker is open, bounded by the lookup timeout, and counted by the breaker (and in
/// `recall_backend_errors`) when it fails or times out.
pub(crate) struct GuardedStore {
    /// Guards the store on the lookup path.
    pub(crate) breaker: Breaker,
    /// The longest a lookup waits for the store.
    timeout: Duration,
    /// Set once the store's descriptor was read; until then lookups fail open at once.
    pub(crate) descriptor_ok: AtomicBool,
}

/// Why a guarded request gave no answer: the text a `CACHE_LOOKUP_FAILURE` carries.
pub(crate) type Refusal = String;

impl GuardedStore {
    /// A guard with `breaker` and `timeout`, closed until [`GuardedStore::open`].
    pub(crate) fn new(breaker: Breaker, timeout: Duration) -> Self {
        GuardedStore {
            breaker,
            timeout,
            descriptor_ok: AtomicBool::new(false),
        }
    }

    /// Lets requests through from now on (the descriptor was read).
    pub(crate) fn open(&self) {
        self.descriptor_ok.store(true, Ordering::Release);
    }

    /// Whether requests go through (the descriptor was read).
    pub(crate) fn is_open(&self) -> bool {
        self.descriptor_ok.load(Ordering::Acquire)
    }

    /// Runs `request` unless the store is not ready (`not_ready` says why) or the breaker is
    /// open; a failure or timeout counts against the breaker.
    pub(crate) async fn call<T, E: std::fmt::Display>(
        &self,
        metrics: &Metrics,
        not_ready: impl FnOnce() -> String,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Refusal> {
        if !self.is_open() {
            return Err(format!("store not ready: {}", not_ready()));
        }
        if !self.breaker.allow() {
            return Err("storage circuit breaker is open after repeated failures".into());
        }
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(answer)) => {
                self.breaker.record_success();
                Ok(answer)
            }
            Ok(Err(err)) => {
                self.breaker.record_failure();
                metrics.backend_errors.inc();
                tracing::warn!(error = %err, "lookup failed at the store");
                Err(err.to_string())
            }
            Err(_) => {
                self.breaker.record_failure();
                metrics.backend_errors.inc();
                let ms = self.timeout.as_millis();
                tracing::warn!(timeout_ms = ms as u64, "lookup timed out");
                Err(format!("store did not answer within {ms} ms"))
            }
        }
    }
}

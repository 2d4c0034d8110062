//! The daemon's shared state: the [`Cache`] every front door calls, and what only the HTTP
//! routes need (settings, token checks, the upload spool).

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Auth;
use crate::cache::{Cache, StoreCheckError};
use crate::config::Config;
use crate::metrics::Metrics;

/// Everything the handlers share.
pub struct AppState {
    /// The settings the daemon started with.
    pub config: Config,
    /// Lookups, publishes, eviction, leases, blobs and admin over the store.
    pub cache: Arc<Cache>,
    /// Token checks.
    pub auth: Auth,
    /// Prometheus metrics (the cache counts into the same ones).
    pub metrics: Arc<Metrics>,
    /// Where uploads are spooled.
    pub spool_dir: PathBuf,
}

impl AppState {
    /// Opens the store and builds the state, then checks the store (descriptor, capability
    /// probe). A store that is down or denies access does not stop recalld: it serves, not
    /// ready, and [`AppState::keep_checking_store`] repeats the check. Only a store URL that
    /// cannot be used, or a store with a layout this version cannot read, is an error.
    pub async fn new(config: Config) -> anyhow::Result<AppState> {
        let metrics = Arc::new(Metrics::default());
        let cache = Arc::new(Cache::open(&config, metrics.clone())?);
        let spool_dir = config
            .spool_dir
            .clone()
            .unwrap_or_else(crate::config::default_spool_dir);
        crate::spool::prepare(&spool_dir)?;
        match cache.check_store().await {
            Ok(capabilities) => cache.log_capabilities(&capabilities),
            Err(StoreCheckError::Layout(err)) => {
                anyhow::bail!("store {}: {err}", config.store)
            }
            Err(StoreCheckError::Unavailable(cause)) => tracing::warn!(
                store = %config.store, %cause,
                "store not available at start-up: serving, not ready (lookups fail open) \
                 until it answers"
            ),
        }
        Ok(AppState {
            auth: Auth::new(config.tokens.clone()),
            metrics,
            cache,
            spool_dir,
            config,
        })
    }

    /// Repeats the store check in the background until it gets through (when the start-up
    /// check did not). Call once, after [`AppState::new`].
    pub fn keep_checking_store(&self) {
        self.cache.keep_checking_store();
    }
}

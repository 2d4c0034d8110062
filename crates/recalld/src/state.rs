//! The daemon's shared state and the lookup path: memory tier → breaker → store, fail-open.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recall_hot::{HotConfig, HotLookup, HotManifest, HotTier, Tier};
use recall_store::{EntryRef, Miss, Store, StoreConfig};

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
}

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
    /// Opens the store and builds the state.
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
        let store = Store::open_with(&config.store, store_config)
            .await
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
        Ok(AppState {
            breaker: Breaker::new(
                config.breaker.failure_threshold,
                Duration::from_millis(config.breaker.open_ms),
            ),
            auth: Auth::new(config.tokens.clone()),
            metrics: Metrics::default(),
            hot,
            spool_dir,
            config,
        })
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

fn convert(answer: HotLookup) -> LookupAnswer {
    match answer {
        HotLookup::Hit { manifest, tier } => LookupAnswer::Hit {
            manifest,
            from_hot_tier: tier == Tier::Hot,
        },
        HotLookup::Miss { miss, .. } => LookupAnswer::Miss(miss),
    }
}

//! [`Cache`]: what recalld does with the cache, whichever front door a request came through
//! (the HTTP routes in `crate::routes`, the gRPC services). A front door parses its request
//! into store types, calls one `Cache` method, and renders the answer; a [`ApiError`] says
//! why a call failed.
//!
//! - [`Cache::lookup`]: memory tier, then the store behind the breaker and the lookup
//!   timeout ([`guard`]), failing open.
//! - [`Cache::publish`]: the store's publish within the publish timeout, then the memory tier
//!   written through (or forgotten), nondeterminism logged, publishes counted.
//! - [`Cache::evict`]: the store's eviction (or its dry run), forgotten in memory at once.
//! - [`Cache::get_or_extend_lease`] / [`Cache::release_lease`]: leases, refused on a store
//!   without conditional writes.
//! - [`Cache::blob`]: an output's bytes, streamed and verified.
//! - [`Cache::gc`], [`Cache::tenants`], [`Cache::tasks`], [`Cache::task_entries`]: admin.
//! - [`Cache::check_store`], [`Cache::readiness`]: the store's start-up check and `/readyz`.

mod check;
mod guard;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use recall_hot::{HotConfig, HotLookup, HotManifest, HotTier, Tier};
use recall_key::{DerivedKey, Digest};
use recall_store::{
    BlobStream, Capabilities, DEFAULT_GRACE, EntryRef, EvictReport, EvictSelector, GcOptions,
    GcReport, LeaseStatus, Manifest, Miss, NondeterminismRecord, Output, PublishMode,
    PublishOptions, PublishOutcome, Store, StoreConfig, StoreError, TaskEntry, Tenant,
};

pub use check::{Readiness, StoreCheckError};

use crate::breaker::{Breaker, BreakerState};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::{LookupOutcome, Metrics, PublishLabels};
use check::StoreCheck;
use guard::GuardedStore;

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

/// The cache as recalld serves it: a memory tier over the store, the guards on the store,
/// the store's check, and the metrics each operation counts. Shared by every front door
/// (`Arc<Cache>`); every method takes `&self`.
pub struct Cache {
    /// The settings recalld started with (timeouts, limits, the store URL for messages).
    config: Config,
    /// The memory tier over the store.
    hot: HotTier<Store>,
    /// Breaker, lookup timeout and readiness gate on the lookup path.
    guard: GuardedStore,
    /// The store's start-up check and the readiness round trip.
    check: StoreCheck,
    /// Prometheus metrics.
    metrics: Arc<Metrics>,
}

impl Cache {
    /// Opens the store (no I/O) and builds the memory tier and guards from `config`. Call
    /// [`Cache::check_store`] before serving. Fails only on a store URL or memory-tier
    /// setting that cannot be used.
    pub fn open(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Cache> {
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
        let breaker = Breaker::new(
            config.breaker.failure_threshold,
            Duration::from_millis(config.breaker.open_ms),
        );
        Ok(Cache {
            guard: GuardedStore::new(breaker, Duration::from_millis(config.timeouts.lookup_ms)),
            config: config.clone(),
            hot,
            check: StoreCheck::default(),
            metrics,
        })
    }

    /// The store behind the memory tier.
    fn store(&self) -> &Store {
        self.hot.source()
    }

    /// Now, in milliseconds since the Unix epoch, by the store's clock (for cut-offs such
    /// as [`EvictSelector::OlderThan`]).
    pub fn now_ms(&self) -> i64 {
        self.store().config().clock.now_ms()
    }

    /// The metrics this cache counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Looks an entry up: memory, then (if the store was checked and the breaker allows) the
    /// store within the lookup timeout. Never fails: a store that is down or slow gives
    /// [`LookupAnswer::Failure`]. Counts `recall_lookups` and `recall_lookup_seconds`.
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
        let loaded = self
            .guard
            .call(
                &self.metrics,
                || self.store_not_ready().unwrap_or_default(),
                self.hot.load(entry),
            )
            .await;
        match loaded {
            Ok(answer) => (convert(answer), Tier::Store),
            Err(cause) => (LookupAnswer::Failure(cause), Tier::Store),
        }
    }

    /// Publishes `outputs` as the entry of `derived` within the publish timeout (with
    /// `options.mode == Overwrite`, the entry is forgotten in memory first). Afterwards the
    /// entry kept is written through to memory (on a store with conditional writes) or
    /// forgotten, a nondeterminism observation is logged, and `recall_publishes` and
    /// `recall_publish_seconds` (measured from `received_at`, when the request arrived) are
    /// counted. A bad output set is [`ApiError::BadRequest`]; a store failure or timeout is
    /// [`ApiError::PutFailure`].
    pub async fn publish(
        &self,
        derived: &DerivedKey,
        outputs: &[Output],
        options: &PublishOptions,
        received_at: Instant,
    ) -> Result<PublishOutcome, ApiError> {
        let entry = EntryRef::of(derived)?;
        if options.mode == PublishMode::Overwrite {
            // The old entry must not be served from memory while (or after) it is replaced.
            self.hot.invalidate(&entry).await;
        }
        let limit = Duration::from_secs(self.config.timeouts.publish_secs);
        let result =
            tokio::time::timeout(limit, self.store().publish(derived, outputs, options)).await;
        self.metrics.publish_seconds.observe(received_at.elapsed());
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(err @ (StoreError::OutputMismatch { .. } | StoreError::InvalidName(_)))) => {
                return Err(ApiError::BadRequest(err.to_string()));
            }
            Ok(Err(err)) => return Err(self.publish_failed(&derived.key, err.to_string())),
            Err(_) => {
                return Err(self.publish_failed(
                    &derived.key,
                    format!("publish did not finish within {limit:?}"),
                ));
            }
        };
        self.count_publish(if outcome.is_published() {
            "populated"
        } else {
            "existed"
        });
        warn_nondeterminism(derived, outcome.observed());
        match &outcome {
            PublishOutcome::Published { manifest, .. } => {
                self.remember_published(entry, Manifest::clone(manifest))
                    .await
            }
            // The kept entry may have gained a record: serve it as it now stands.
            PublishOutcome::AlreadyExists {
                existing: Some(existing),
                ..
            } => {
                self.remember_published(entry, Manifest::clone(existing))
                    .await
            }
            PublishOutcome::AlreadyExists { existing: None, .. } => {
                self.hot.invalidate(&entry).await
            }
        }
        Ok(outcome)
    }

    /// A publish of `key` that failed before it reached the store (its outputs could not be
    /// received): counted and logged as a failed publish, answered `CACHE_PUT_FAILURE`.
    pub fn publish_failed(&self, key: &Digest, cause: String) -> ApiError {
        self.count_publish("failure");
        tracing::warn!(key = %key, %cause, "publish failed");
        ApiError::PutFailure { key: *key, cause }
    }

    fn count_publish(&self, result: &'static str) {
        self.metrics
            .publishes
            .get_or_create(&PublishLabels { result })
            .inc();
    }

    /// Keeps a manifest the store just published (or read back after a publish) in the
    /// memory tier, but only on a store whose conditional writes make it the one kept: on
    /// other stores a concurrent publish may have replaced it, so the entry is forgotten and
    /// the next lookup reads the store (docs/LAYOUT.md section 11).
    async fn remember_published(&self, entry: EntryRef, manifest: Manifest) {
        if self.capabilities().is_some_and(|c| c.conditional_writes()) {
            self.hot.insert(entry, manifest).await;
        } else {
            self.hot.invalidate(&entry).await;
        }
    }

    /// Evicts what `selector` names (or with `dry_run` counts it, deleting nothing), and
    /// forgets it in this daemon's memory tier at once: the one entry for a key, everything
    /// for the broader selectors (even after a partial failure). Other daemons may serve an
    /// evicted entry for up to their `hot.ttl_secs`.
    pub async fn evict(
        &self,
        selector: &EvictSelector,
        dry_run: bool,
    ) -> Result<EvictReport, ApiError> {
        let result = self.store().evict(selector, dry_run).await;
        if !dry_run {
            match selector {
                EvictSelector::Key(entry) => self.hot.invalidate(entry).await,
                _ => self.hot.invalidate_all(),
            }
        }
        result.map_err(|err| self.store_failed(err))
    }

    /// Leases (Flyte's cache_serialize, docs/LAYOUT.md section 9): grants `owner` the lease
    /// of `entry` or extends it, or answers who holds it. Refused with 501 on a store
    /// without conditional writes and 503 before the store answered; `heartbeat` must be
    /// 1 s to `limits.max_heartbeat_secs` (refused, not clamped). Counts
    /// `recall_lease_waits` when someone else holds it.
    pub async fn get_or_extend_lease(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
    ) -> Result<LeaseStatus, ApiError> {
        self.leases_supported()?;
        // Refused, not clamped: a holder that believes it has a longer heartbeat than it was
        // granted would let its lease lapse between beats.
        let max = self.config.limits.max_heartbeat_secs;
        let seconds = heartbeat.as_secs();
        if heartbeat.subsec_nanos() != 0 || !(1..=max).contains(&seconds) {
            let shown = if heartbeat.subsec_nanos() == 0 {
                seconds.to_string()
            } else {
                format!("{heartbeat:?}")
            };
            return Err(ApiError::BadRequest(format!(
                "heartbeat_seconds: {shown} is out of range 1..={max} (limits.max_heartbeat_secs)"
            )));
        }
        self.get_or_extend_lease_with_grace(entry, owner, heartbeat, DEFAULT_GRACE)
            .await
    }

    /// [`Cache::get_or_extend_lease`] with the caller's grace multiplier and without the
    /// range check of `heartbeat` (Flyte's reservations clamp it to their own maximum).
    pub async fn get_or_extend_lease_with_grace(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
        grace: u32,
    ) -> Result<LeaseStatus, ApiError> {
        self.leases_supported()?;
        let call = self
            .store()
            .get_or_extend_lease(entry, owner, heartbeat, grace);
        let status = self.within_lease_timeout(call).await?;
        if matches!(status, LeaseStatus::HeldBy(_)) {
            self.metrics.lease_waits.inc();
        }
        Ok(status)
    }

    /// Releases `owner`'s lease of `entry`: `false` when it is absent, already released or
    /// held by someone else (then left alone). Refused like [`Cache::get_or_extend_lease`].
    pub async fn release_lease(&self, entry: &EntryRef, owner: &str) -> Result<bool, ApiError> {
        self.leases_supported()?;
        self.within_lease_timeout(self.store().release_lease(entry, owner))
            .await
    }

    async fn within_lease_timeout<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        let limit = self.config.timeouts.lease_ms;
        match tokio::time::timeout(Duration::from_millis(limit), call).await {
            Ok(result) => result.map_err(|err| self.store_failed(err)),
            Err(_) => {
                self.metrics.backend_errors.inc();
                Err(ApiError::Unavailable(format!(
                    "store did not answer within {limit} ms"
                )))
            }
        }
    }

    /// `Ok` when leases can be granted on this store: [`ApiError::NotImplemented`] when it
    /// lacks conditional writes (docs/LAYOUT.md section 11), [`ApiError::Unavailable`] while
    /// it has not answered yet.
    pub fn leases_supported(&self) -> Result<(), ApiError> {
        if let Some(cause) = self.store_not_ready() {
            return Err(ApiError::Unavailable(format!("store not ready: {cause}")));
        }
        match self.capabilities() {
            Some(c) if !c.conditional_writes() => Err(ApiError::NotImplemented(format!(
                "store {} does not honour {} (found by recalld's capability probe), so \
                 leases (cache_serialize) cannot be granted; run without serialization or \
                 use a store with conditional writes (see `recall doctor --store URL`)",
                self.config.store,
                c.missing()
                    .into_iter()
                    .filter(|m| *m != "ranged_get")
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
            _ => Ok(()),
        }
    }

    /// The blob `digest` of `tenant`, streamed and verified (a mismatch cuts the stream off
    /// before its end); counts `recall_bytes_out` as it goes. [`ApiError::NotFound`] when
    /// there is no such blob.
    pub async fn blob(&self, tenant: &Tenant, digest: &Digest) -> Result<BlobStream, ApiError> {
        match self.store().stream_blob(tenant, digest).await {
            Ok(Some(blob)) => {
                let metrics = self.metrics.clone();
                let chunks = blob
                    .chunks
                    .inspect(move |chunk| {
                        if let Ok(chunk) = chunk {
                            metrics.bytes_out.inc_by(chunk.len() as u64);
                        }
                    })
                    .boxed();
                Ok(BlobStream {
                    size: blob.size,
                    chunks,
                })
            }
            Ok(None) => Err(ApiError::NotFound(format!(
                "no blob {digest} in {}/{}",
                tenant.project(),
                tenant.domain()
            ))),
            Err(err) => Err(self.store_failed(err)),
        }
    }

    /// Mark-and-sweep of unreferenced blobs and orphan markers, in one tenant or all.
    pub async fn gc(
        &self,
        tenant: Option<&Tenant>,
        options: &GcOptions,
    ) -> Result<GcReport, ApiError> {
        self.store()
            .gc(tenant, options)
            .await
            .map_err(|err| self.store_failed(err))
    }

    /// The project/domain pairs in the store.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, ApiError> {
        self.store()
            .tenants()
            .await
            .map_err(|err| self.store_failed(err))
    }

    /// The task names with index markers in `tenant`, sorted.
    pub async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, ApiError> {
        self.store()
            .tasks(tenant)
            .await
            .map_err(|err| self.store_failed(err))
    }

    /// The entries of `task` in `tenant` (of one cache_version, or all), as its index
    /// markers name them.
    pub async fn task_entries(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<Vec<TaskEntry>, ApiError> {
        self.store()
            .list_task_entries(tenant, task, cache_version)
            .await
            .map_err(|err| self.store_failed(err))
    }

    /// `err` as the caller sees it; a store failure (not the caller's) is counted in
    /// `recall_backend_errors` and logged.
    fn store_failed(&self, err: StoreError) -> ApiError {
        let answer = ApiError::from(err);
        if !answer.is_caller_error() {
            self.metrics.backend_errors.inc();
            tracing::warn!(error = %answer, "store operation failed");
        }
        answer
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
        self.metrics.breaker_open.set(i64::from(
            self.guard.breaker.state() != BreakerState::Closed,
        ));
    }

    /// The store's capabilities, once its check got through.
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.check.capabilities()
    }
}

/// Logs a publish whose outputs differed from the entry it met.
fn warn_nondeterminism(derived: &DerivedKey, observed: Option<&NondeterminismRecord>) {
    if let Some(record) = observed {
        let outputs: Vec<&str> = record.outputs.keys().map(String::as_str).collect();
        tracing::warn!(key = %derived.key, outcome = record.outcome.as_str(),
            outputs = %outputs.join(","), "CACHE_NONDETERMINISTIC: the outputs differ from the entry's");
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

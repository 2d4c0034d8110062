//! Prometheus metrics (`GET /metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Labels of `recall_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// Which tier answered: `hot`, `store`, or `none` (store failed or breaker open).
    pub tier: &'static str,
    /// `hit`, `miss` or `failure`.
    pub result: &'static str,
}

/// Labels of `recall_publishes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    /// `populated`, `existed` or `failure`.
    pub result: &'static str,
}

/// Labels of `recall_flyte_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlyteRequestLabels {
    /// The gRPC method, e.g. `GetArtifact`.
    pub method: &'static str,
    /// The gRPC status code answered, e.g. `Ok`, `NotFound`.
    pub code: &'static str,
}

/// Labels of `recall_flyte_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlyteLookupLabels {
    /// `GetDataset` or `GetArtifact`.
    pub method: &'static str,
    /// `hit`, `miss` or `failure` (failed open: answered NotFound).
    pub result: &'static str,
}

/// Labels of `recall_flyte_blob_deletes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlyteBlobDeleteLabels {
    /// `deleted` (or already gone), `failed` (the store refused or did not answer), or `left`
    /// (under no `[flyte] delete_blob_roots` root, or not one object below it).
    pub result: &'static str,
}

/// Labels of `recall_flyte_token_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlyteRefusalLabels {
    /// The listener: `datacatalog` or `cacheservice`.
    pub door: &'static str,
    /// `Unauthenticated` (no or an unknown token) or `PermissionDenied` (too low an access).
    pub code: &'static str,
}

/// Labels of `recall_store_capability`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabels {
    /// `create_if_absent`, `replace_if_version_matches` or `ranged_get`.
    pub capability: &'static str,
}

/// How a lookup ended: one series of `recall_lookups_total` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The memory tier had a live entry (`tier="hot",result="hit"`).
    HotHit,
    /// The memory tier remembered a miss (`tier="hot",result="miss"`).
    HotMiss,
    /// The store had a live entry (`tier="store",result="hit"`).
    StoreHit,
    /// The store had no usable entry (`tier="store",result="miss"`).
    StoreMiss,
    /// The store failed, timed out or was skipped by the open breaker
    /// (`tier="none",result="failure"`).
    Failure,
}

/// The counters of `recall_lookups_total`, resolved once at start-up so that a lookup only
/// increments an atomic (no label hashing, no lock). Every series shows from the start,
/// at 0 until it happens.
#[derive(Debug)]
pub struct LookupCounters {
    hot_hit: Counter,
    hot_miss: Counter,
    store_hit: Counter,
    store_miss: Counter,
    failure: Counter,
}

impl LookupCounters {
    fn new(family: &Family<LookupLabels, Counter>) -> Self {
        let resolve = |tier, result| family.get_or_create(&LookupLabels { tier, result }).clone();
        LookupCounters {
            hot_hit: resolve("hot", "hit"),
            hot_miss: resolve("hot", "miss"),
            store_hit: resolve("store", "hit"),
            store_miss: resolve("store", "miss"),
            failure: resolve("none", "failure"),
        }
    }

    /// Counts one lookup.
    pub fn count(&self, outcome: LookupOutcome) {
        match outcome {
            LookupOutcome::HotHit => &self.hot_hit,
            LookupOutcome::HotMiss => &self.hot_miss,
            LookupOutcome::StoreHit => &self.store_hit,
            LookupOutcome::StoreMiss => &self.store_miss,
            LookupOutcome::Failure => &self.failure,
        }
        .inc();
    }
}

/// A latency histogram kept in atomics: observations from different worker threads never
/// wait for each other (prometheus-client's `Histogram` takes a lock per observation).
/// Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Arc<HistogramCounts>);

#[derive(Debug)]
struct HistogramCounts {
    /// Upper bounds in nanoseconds, ascending; the last bucket (`+Inf`) has none.
    bounds_nanos: Vec<u64>,
    /// One count per bound, then the `+Inf` bucket; not cumulative.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Buckets whose upper bounds are `start` seconds, then each `factor` times the one
    /// before, `length` in all, plus `+Inf`.
    pub fn exponential(start: f64, factor: f64, length: u16) -> Self {
        let bounds_nanos: Vec<u64> = (0..length)
            .map(|i| (start * factor.powi(i32::from(i)) * 1e9).round() as u64)
            .collect();
        let counts = (0..=bounds_nanos.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        LatencyHistogram(Arc::new(HistogramCounts {
            bounds_nanos,
            counts,
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let h = &*self.0;
        let bucket = h.bounds_nanos.partition_point(|&bound| bound < nanos);
        h.counts[bucket].fetch_add(1, Ordering::Relaxed);
        h.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &*self.0;
        let seconds = |nanos: u64| nanos as f64 / 1e9;
        let buckets: Vec<(f64, u64)> = h
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let bound = h.bounds_nanos.get(i).map_or(f64::MAX, |&b| seconds(b));
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        // The count is the buckets' total, so `_count` always equals the `+Inf` bucket.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = seconds(h.sum_nanos.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Every metric recalld exports.
pub struct Metrics {
    registry: Registry,
    /// Lookups by tier and result.
    pub lookups: LookupCounters,
    /// Lookup latency in seconds.
    pub lookup_seconds: LatencyHistogram,
    /// Publishes by result.
    pub publishes: Family<PublishLabels, Counter>,
    /// Publish latency in seconds.
    pub publish_seconds: LatencyHistogram,
    /// Output bytes received by publishes.
    pub bytes_in: Counter,
    /// Blob bytes sent.
    pub bytes_out: Counter,
    /// Store requests that failed or timed out.
    pub backend_errors: Counter,
    /// Lease requests that found the lease held by another owner.
    pub lease_waits: Counter,
    /// Manifests in the memory tier.
    pub hot_entries: Gauge,
    /// Bytes in the memory tier.
    pub hot_bytes: Gauge,
    /// Lookups that waited for another lookup's store request.
    pub hot_coalesced_waits: Gauge,
    /// Store requests the memory tier made.
    pub hot_store_requests: Gauge,
    /// 1 while the circuit breaker is open or probing, 0 when closed.
    pub breaker_open: Gauge,
    /// What the store honours (1) or not (0), once the capability probe ran.
    pub store_capability: Family<CapabilityLabels, Gauge>,
    /// `recall_flyte_requests_total`: catalog gRPC requests by method and status code.
    pub flyte_requests: Family<FlyteRequestLabels, Counter>,
    /// `recall_flyte_lookups_total`: catalog lookups by method and result.
    pub flyte_lookups: Family<FlyteLookupLabels, Counter>,
    /// `recall_flyte_reservation_waits_total`: reservation requests that found another owner.
    pub flyte_reservation_waits: Counter,
    /// `recall_flyte_reservations_failed_open_total`: reservations granted unserialized
    /// because the store could not be asked.
    pub flyte_reservations_failed_open: Counter,
    /// `recall_flyte_blob_deletes_total`: old output URIs a CacheService overwrite with
    /// `delete_blob` deleted, failed to delete, or left alone, by result.
    pub flyte_blob_deletes: Family<FlyteBlobDeleteLabels, Counter>,
    /// `recall_flyte_token_refusals_total`: Flyte calls refused for their token before their
    /// message was read (those refused later, for a project or domain, are in
    /// `recall_flyte_requests_total`).
    pub flyte_token_refusals: Family<FlyteRefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("recall");
        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "lookups",
            "Cache lookups by tier and result",
            lookups.clone(),
        );
        let lookups = LookupCounters::new(&lookups);
        let lookup_seconds = LatencyHistogram::exponential(0.00005, 2.0, 18);
        registry.register("lookup_seconds", "Lookup latency", lookup_seconds.clone());
        let publishes = Family::<PublishLabels, Counter>::default();
        registry.register("publishes", "Publishes by result", publishes.clone());
        let publish_seconds = LatencyHistogram::exponential(0.001, 2.0, 20);
        registry.register(
            "publish_seconds",
            "Publish latency",
            publish_seconds.clone(),
        );
        let bytes_in = Counter::default();
        registry.register("bytes_in", "Output bytes received", bytes_in.clone());
        let bytes_out = Counter::default();
        registry.register("bytes_out", "Blob bytes sent", bytes_out.clone());
        let backend_errors = Counter::default();
        registry.register(
            "backend_errors",
            "Store requests that failed or timed out",
            backend_errors.clone(),
        );
        let lease_waits = Counter::default();
        registry.register(
            "lease_waits",
            "Lease requests that found another owner",
            lease_waits.clone(),
        );
        let hot_entries = Gauge::default();
        registry.register(
            "hot_entries",
            "Manifests in the memory tier",
            hot_entries.clone(),
        );
        let hot_bytes = Gauge::default();
        registry.register("hot_bytes", "Bytes in the memory tier", hot_bytes.clone());
        let hot_coalesced_waits = Gauge::default();
        registry.register(
            "hot_coalesced_waits",
            "Lookups that waited for another lookup's store request (since start)",
            hot_coalesced_waits.clone(),
        );
        let hot_store_requests = Gauge::default();
        registry.register(
            "hot_store_requests",
            "Store requests made by the memory tier (since start)",
            hot_store_requests.clone(),
        );
        let breaker_open = Gauge::default();
        registry.register(
            "breaker_open",
            "1 while the store circuit breaker is open",
            breaker_open.clone(),
        );
        let store_capability = Family::<CapabilityLabels, Gauge>::default();
        registry.register(
            "store_capability",
            "What the store honours, from recalld's capability probe: 1 yes, 0 no \
             (absent until the store has answered)",
            store_capability.clone(),
        );
        let flyte_requests = Family::<FlyteRequestLabels, Counter>::default();
        registry.register(
            "flyte_requests",
            "Flyte catalog gRPC requests by method and status code",
            flyte_requests.clone(),
        );
        let flyte_lookups = Family::<FlyteLookupLabels, Counter>::default();
        registry.register(
            "flyte_lookups",
            "Flyte catalog lookups (GetDataset, GetArtifact) by result; failure answered NotFound",
            flyte_lookups.clone(),
        );
        let flyte_reservation_waits = Counter::default();
        registry.register(
            "flyte_reservation_waits",
            "Flyte reservation requests that found another owner",
            flyte_reservation_waits.clone(),
        );
        let flyte_reservations_failed_open = Counter::default();
        registry.register(
            "flyte_reservations_failed_open",
            "Flyte reservations granted without asking the store because it failed",
            flyte_reservations_failed_open.clone(),
        );
        let flyte_blob_deletes = Family::<FlyteBlobDeleteLabels, Counter>::default();
        registry.register(
            "flyte_blob_deletes",
            "Old output URIs of CacheService overwrites with delete_blob, by result: deleted, \
             failed, or left (outside [flyte] delete_blob_roots)",
            flyte_blob_deletes.clone(),
        );
        let flyte_token_refusals = Family::<FlyteRefusalLabels, Counter>::default();
        registry.register(
            "flyte_token_refusals",
            "Flyte calls refused for their bearer token before their message was read, by \
             listener and status code",
            flyte_token_refusals.clone(),
        );
        Metrics {
            flyte_blob_deletes,
            flyte_token_refusals,
            flyte_requests,
            flyte_lookups,
            flyte_reservation_waits,
            flyte_reservations_failed_open,
            registry,
            lookups,
            lookup_seconds,
            publishes,
            publish_seconds,
            bytes_in,
            bytes_out,
            backend_errors,
            lease_waits,
            hot_entries,
            hot_bytes,
            hot_coalesced_waits,
            hot_store_requests,
            breaker_open,
            store_capability,
        }
    }
}

impl Metrics {
    /// Sets `recall_store_capability` from a probe's result.
    pub fn show_capabilities(&self, capabilities: &recall_store::Capabilities) {
        for (capability, check) in capabilities.checks() {
            self.store_capability
                .get_or_create(&CapabilityLabels { capability })
                .set(i64::from(check.supported));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

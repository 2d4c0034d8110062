//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

/// Every metric recalld exports.
pub struct Metrics {
    registry: Registry,
    /// Lookups by tier and result.
    pub lookups: Family<LookupLabels, Counter>,
    /// Lookup latency in seconds.
    pub lookup_seconds: Histogram,
    /// Publishes by result.
    pub publishes: Family<PublishLabels, Counter>,
    /// Publish latency in seconds.
    pub publish_seconds: Histogram,
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
        let lookup_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 18));
        registry.register("lookup_seconds", "Lookup latency", lookup_seconds.clone());
        let publishes = Family::<PublishLabels, Counter>::default();
        registry.register("publishes", "Publishes by result", publishes.clone());
        let publish_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
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
        Metrics {
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
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

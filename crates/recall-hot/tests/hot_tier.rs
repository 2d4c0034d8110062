//! Hot-tier behaviour over a real (in-memory) store wrapped in a counting source.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use recall_hot::{HotConfig, HotConfigError, HotLookup, HotTier, ManifestSource, Tier};
use recall_key::{DerivedKey, InputSource, KeyMaterial, Value, ValueType};
use recall_store::{EntryRef, Lookup, Manifest, Output, PublishOptions, Store, StoreError};

/// Counts store requests; can be made slow or failing.
struct Counting {
    store: Store,
    requests: AtomicU64,
    delay: Duration,
    failing: AtomicBool,
}

impl ManifestSource for Counting {
    async fn lookup(&self, entry: &EntryRef) -> Result<Lookup<Manifest>, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: "backend".into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.store.lookup(entry).await
    }

    fn is_live(&self, manifest: &Manifest) -> bool {
        self.store.is_live(manifest)
    }
}

async fn setup(delay: Duration, config: HotConfig) -> (Arc<HotTier<Counting>>, DerivedKey) {
    let store = Store::open("memory://").await.unwrap();
    let mut m = KeyMaterial::new("proj", "dev", "wf.task", "1").unwrap();
    m.add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))
        .unwrap();
    m.add_output("o", ValueType::Int).unwrap();
    let key = m.derive().unwrap();
    let source = Counting {
        store,
        requests: AtomicU64::new(0),
        delay,
        failing: AtomicBool::new(false),
    };
    (Arc::new(HotTier::new(source, &config).unwrap()), key)
}

async fn publish(hot: &HotTier<Counting>, key: &DerivedKey) {
    hot.source()
        .store
        .publish(key, &[Output::bytes("o", "9")], &PublishOptions::default())
        .await
        .unwrap();
}

fn is_hit(answer: &HotLookup, want: Tier) -> bool {
    matches!(answer, HotLookup::Hit { tier, .. } if *tier == want)
}

fn is_miss(answer: &HotLookup, want: Tier) -> bool {
    matches!(answer, HotLookup::Miss { tier, .. } if *tier == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_lookups_make_one_store_request() {
    let (hot, key) = setup(Duration::from_millis(200), HotConfig::default()).await;
    publish(&hot, &key).await;
    let entry = EntryRef::of(&key).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (hot, entry) = (hot.clone(), entry.clone());
            tokio::spawn(async move { hot.lookup(&entry).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert!(is_hit(&task.await.unwrap(), Tier::Store));
    }
    assert_eq!(hot.source().requests.load(Ordering::SeqCst), 1);
    let stats = hot.stats().await;
    assert_eq!(stats.store_requests, 1);
    assert_eq!(stats.coalesced_waits, 63);
    assert_eq!(stats.entries, 1);
    assert!(stats.bytes > 0);

    // The next lookup is answered from memory.
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Hot));
    assert_eq!(hot.source().requests.load(Ordering::SeqCst), 1);
    assert_eq!(hot.stats().await.hot_hits, 1);
}

#[tokio::test]
async fn misses_are_not_remembered_by_default() {
    let (hot, key) = setup(Duration::ZERO, HotConfig::default()).await;
    let entry = EntryRef::of(&key).unwrap();
    assert!(is_miss(&hot.lookup(&entry).await.unwrap(), Tier::Store));
    publish(&hot, &key).await;
    // Published by "another daemon": the very next lookup sees it.
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
}

#[tokio::test]
async fn a_negative_cache_remembers_misses_for_its_ttl_only() {
    let config = HotConfig {
        negative_ttl: Some(Duration::from_millis(300)),
        ..HotConfig::default()
    };
    let (hot, key) = setup(Duration::ZERO, config).await;
    let entry = EntryRef::of(&key).unwrap();
    assert!(is_miss(&hot.lookup(&entry).await.unwrap(), Tier::Store));
    publish(&hot, &key).await;
    assert!(is_miss(&hot.lookup(&entry).await.unwrap(), Tier::Hot));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
}

#[tokio::test]
async fn negative_ttl_is_bounded() {
    let store = Store::open("memory://").await.unwrap();
    let config = HotConfig {
        negative_ttl: Some(Duration::from_secs(60)),
        ..HotConfig::default()
    };
    let err = HotTier::new(store, &config).err().unwrap();
    assert!(matches!(err, HotConfigError::NegativeTtlTooLong { .. }));
    assert!(err.to_string().contains("60s"), "{err}");
}

#[tokio::test]
async fn failures_are_reported_and_not_cached() {
    let (hot, key) = setup(Duration::ZERO, HotConfig::default()).await;
    publish(&hot, &key).await;
    let entry = EntryRef::of(&key).unwrap();
    hot.source().failing.store(true, Ordering::SeqCst);
    let err = hot.lookup(&entry).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(hot.stats().await.store_errors, 1);
    hot.source().failing.store(false, Ordering::SeqCst);
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
}

#[tokio::test]
async fn invalidate_and_ttl_bound_staleness() {
    let config = HotConfig {
        ttl: Duration::from_millis(300),
        ..HotConfig::default()
    };
    let (hot, key) = setup(Duration::ZERO, config).await;
    publish(&hot, &key).await;
    let entry = EntryRef::of(&key).unwrap();
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Hot));
    hot.invalidate(&entry).await;
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
    // After the TTL, memory asks the store again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(is_hit(&hot.lookup(&entry).await.unwrap(), Tier::Store));
}

#[tokio::test]
async fn capacity_bounds_the_bytes_held() {
    let config = HotConfig {
        capacity_bytes: 4096,
        ..HotConfig::default()
    };
    let store = Store::open("memory://").await.unwrap();
    let source = Counting {
        store,
        requests: AtomicU64::new(0),
        delay: Duration::ZERO,
        failing: AtomicBool::new(false),
    };
    let hot = HotTier::new(source, &config).unwrap();
    for n in 0..50 {
        let mut m = KeyMaterial::new("proj", "dev", "wf.task", "1").unwrap();
        m.add_input("n", ValueType::Int, InputSource::Value(Value::Int(n)))
            .unwrap();
        m.add_output("o", ValueType::Int).unwrap();
        let key = m.derive().unwrap();
        publish(&hot, &key).await;
        hot.lookup(&EntryRef::of(&key).unwrap()).await.unwrap();
    }
    let stats = hot.stats().await;
    assert!(stats.bytes <= 4096, "{stats:?}");
    assert!(stats.entries < 50, "{stats:?}");
}

#[tokio::test]
async fn an_entry_expiring_while_cached_stops_being_a_hit_on_time() {
    let (hot, key) = setup(Duration::ZERO, HotConfig::default()).await;
    let options = PublishOptions {
        ttl: Some(Duration::from_millis(800)),
        ..PublishOptions::default()
    };
    hot.source()
        .store
        .publish(&key, &[Output::bytes("o", "9")], &options)
        .await
        .unwrap();
    let entry = EntryRef::of(&key).unwrap();
    assert!(matches!(
        hot.load(&entry).await.unwrap(),
        HotLookup::Hit { .. }
    ));
    assert!(matches!(
        hot.cached(&entry).await,
        Some(HotLookup::Hit { .. })
    ));
    // The memory tier's own TTL is 60 s; the entry's expiry comes first.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(hot.cached(&entry).await.is_none(), "served past its expiry");
    assert!(matches!(
        hot.load(&entry).await.unwrap(),
        HotLookup::Miss { .. }
    ));
}

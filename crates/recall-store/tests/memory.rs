//! The conformance suite on the in-memory backend (`memory://`), and the capability probe on
//! memory behind a store that ignores conditional writes.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use recall_store::{Capabilities, Store, StoreConfig};

use conformance::faulty::{Fault, FaultyStore};

async fn harness(case: &str) -> Option<conformance::Harness> {
    Some(conformance::Harness {
        objects: Arc::new(InMemory::new()),
        root: conformance::unique_root(case),
        _guard: None,
    })
}

conformance_suite!(harness);

/// Probes the capabilities of `objects` (store root `root`); what the probe found and how
/// many objects it left under `root/probe`.
async fn probe(objects: Arc<dyn ObjectStore>) -> (Capabilities, usize) {
    let store = Store::from_object_store(Arc::clone(&objects), "root", StoreConfig::default())
        .await
        .unwrap();
    let capabilities = store
        .probe_capabilities(Duration::from_secs(10))
        .await
        .unwrap();
    let left = objects
        .list(Some(&Path::from("root/probe")))
        .collect::<Vec<_>>()
        .await
        .len();
    (capabilities, left)
}

#[tokio::test]
async fn a_store_that_ignores_conditions_is_reported_as_such() {
    let ignoring = FaultyStore {
        inner: Arc::new(InMemory::new()),
        fault: Fault::IgnoresConditions,
        race: std::sync::Mutex::new(None),
    };
    let (capabilities, left) = probe(Arc::new(ignoring)).await;
    assert!(!capabilities.create_if_absent.supported);
    assert!(
        capabilities
            .create_if_absent
            .detail
            .contains("If-None-Match"),
        "{}",
        capabilities.create_if_absent.detail
    );
    assert!(!capabilities.replace_if_version_matches.supported);
    assert!(capabilities.ranged_get.supported);
    assert!(!capabilities.conditional_writes());
    assert_eq!(
        capabilities.missing(),
        ["create_if_absent", "replace_if_version_matches"]
    );
    assert_eq!(left, 0, "the probe cleans up after itself");
}

#[tokio::test]
async fn memory_honours_everything_and_the_probe_cleans_up() {
    let (capabilities, left) = probe(Arc::new(InMemory::new())).await;
    assert!(capabilities.conditional_writes(), "{capabilities:?}");
    assert!(capabilities.missing().is_empty());
    assert_eq!(left, 0);
}

//! The conformance suite on the in-memory backend (`memory://`).

mod conformance;

use std::sync::Arc;

use object_store::memory::InMemory;

async fn harness(case: &str) -> Option<conformance::Harness> {
    Some(conformance::Harness {
        objects: Arc::new(InMemory::new()),
        root: conformance::unique_root(case),
        _guard: None,
    })
}

conformance_suite!(harness);

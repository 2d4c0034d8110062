//! The conformance suite on the local-disk backend (`file://`, with its compare-and-swap).

mod conformance;

use recall_store::open_url;

async fn harness(_case: &str) -> Option<conformance::Harness> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("file://{}", dir.path().display());
    let backend = open_url(&url).expect("open file store");
    Some(conformance::Harness {
        objects: backend.objects,
        root: backend.root,
        _guard: Some(dir),
    })
}

conformance_suite!(harness);

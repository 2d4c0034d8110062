//! An S3 server that ignores conditional writes: s3rver (started by scripts/test-servers.sh),
//! which answers 200 to `If-None-Match: *` on an existing key and to a stale `If-Match`, as
//! Garage does. The capability probe must say so; the parts of the conformance suite that
//! need no conditional write must still pass.
//!
//! `RECALL_TEST_S3NOCAS_ENDPOINT` and `RECALL_TEST_S3NOCAS_BUCKET` name the server; a test
//! that finds them unset fails, unless `RECALL_TEST_SKIP` names `s3nocas`.

mod conformance;

use std::time::Duration;

use recall_store::StoreConfig;
use recall_testkit::s3::S3Env;

async fn harness(case: &str) -> Option<conformance::Harness> {
    if recall_testkit::skipped("s3nocas") {
        return None;
    }
    let options = S3Env::nocas_from_env().object_store_options();
    let url = format!("s3://{}", S3Env::nocas_from_env().bucket);
    Some(conformance::remote_harness(&url, &options, case))
}

// The suite's single-writer group: the cases that need no conditional write to hold (one
// writer at a time). Left out besides the racing and lease cases: evict_by_project_domain and
// gc_sweeps_..., which list tenants with a delimiter; s3rver 3.7.1 answers such listings below
// a prefix with no common prefixes (a listing bug of its own, unrelated to conditional writes).
conformance_suite!(@single_writer harness);

#[tokio::test]
async fn probe_reports_the_missing_conditional_writes() {
    let Some(h) = harness("probe_nocas").await else {
        return;
    };
    let store = h.store_with(StoreConfig::default()).await;
    let capabilities = store
        .probe_capabilities(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        !capabilities.create_if_absent.supported,
        "{:?}",
        capabilities.create_if_absent
    );
    assert!(
        !capabilities.replace_if_version_matches.supported,
        "{:?}",
        capabilities.replace_if_version_matches
    );
    assert!(
        capabilities.ranged_get.supported,
        "{:?}",
        capabilities.ranged_get
    );
    assert!(!capabilities.conditional_writes());
    let left = h.list_where(|p| p.starts_with("probe/")).await;
    assert!(left.is_empty(), "the probe left {left:?}");
}

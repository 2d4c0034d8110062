//! An S3 server that ignores conditional writes: s3rver (started by scripts/test-servers.sh),
//! which answers 200 to `If-None-Match: *` on an existing key and to a stale `If-Match`, as
//! Garage does. The capability probe must say so; the parts of the conformance suite that
//! need no conditional write must still pass.
//!
//! `RECALL_TEST_S3NOCAS_ENDPOINT` and `RECALL_TEST_S3NOCAS_BUCKET` name the server; a test
//! that finds them unset fails, unless `RECALL_TEST_SKIP` names `s3nocas`.

mod conformance;

use std::time::Duration;

use recall_store::{Store, StoreConfig};
use recall_testkit::s3::S3Env;

async fn harness(case: &str) -> Option<conformance::Harness> {
    if recall_testkit::skipped("s3nocas") {
        return None;
    }
    let options = S3Env::nocas_from_env().object_store_options();
    let url = format!("s3://{}", S3Env::nocas_from_env().bucket);
    Some(conformance::remote_harness(&url, &options, case))
}

// The cases that need no conditional write to hold (one writer at a time). Left out besides
// the racing and lease cases: evict_by_project_domain and gc_sweeps_..., which list tenants
// with a delimiter; s3rver 3.7.1 answers such listings below a prefix with no common
// prefixes (a listing bug of its own, unrelated to conditional writes).
conformance_suite!(@cases harness;
    round_trip_every_output_kind,
    objects_sit_at_the_documented_paths,
    existing_entry_wins_and_overwrite_replaces,
    identical_outputs_share_one_blob,
    bad_names_are_rejected_before_any_io,
    outputs_must_match_the_declared_outputs,
    publish_aborted_at_the_manifest_leaves_no_entry,
    flipped_byte_in_a_blob_is_a_miss_and_heals,
    deleted_blob_is_a_miss_and_heals,
    expiry_by_max_age_per_task_and_ttl,
    evict_by_key,
    evict_by_task_and_cache_version,
);

#[tokio::test]
async fn probe_reports_the_missing_conditional_writes() {
    let Some(h) = harness("probe_nocas").await else {
        return;
    };
    let store = Store::from_object_store(h.objects.clone(), &h.root, StoreConfig::default())
        .await
        .unwrap();
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
    let left: Vec<String> = h
        .list_all()
        .await
        .into_iter()
        .filter(|p| p.starts_with("probe/"))
        .collect();
    assert!(left.is_empty(), "the probe left {left:?}");
}

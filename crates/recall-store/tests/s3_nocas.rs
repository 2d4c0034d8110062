//! An S3 server that ignores conditional writes: s3rver (started by scripts/test-servers.sh),
//! which answers 200 to `If-None-Match: *` on an existing key and to a stale `If-Match`, as
//! Garage does. The capability probe must say so; the parts of the conformance suite that
//! need no conditional write must still pass.
//!
//! `RECALL_TEST_S3NOCAS_ENDPOINT` and `RECALL_TEST_S3NOCAS_BUCKET` name the server; a test
//! that finds them unset fails, unless `RECALL_TEST_SKIP` names `s3nocas`.

mod conformance;

use std::time::Duration;

use recall_store::{Store, StoreConfig, open_url_with};

/// The endpoint and bucket, or `None` when skipped on purpose.
fn server() -> Option<(String, String)> {
    if conformance::skipped("s3nocas") {
        return None;
    }
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not set: run scripts/test.sh (it starts s3rver), or set \
                 RECALL_TEST_SKIP=s3nocas to skip the S3 server without conditional writes"
                )
            })
    };
    Some((
        var("RECALL_TEST_S3NOCAS_ENDPOINT"),
        var("RECALL_TEST_S3NOCAS_BUCKET"),
    ))
}

fn options(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", endpoint.to_string()),
        ("aws_region", "us-east-1".into()),
        // s3rver's fixed development credentials.
        ("aws_access_key_id", "S3RVER".into()),
        ("aws_secret_access_key", "S3RVER".into()),
    ]
}

async fn harness(case: &str) -> Option<conformance::Harness> {
    let (endpoint, bucket) = server()?;
    let options = options(&endpoint);
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let backend = open_url_with(&format!("s3://{bucket}"), &options).expect("open s3rver store");
    Some(conformance::Harness {
        objects: backend.objects,
        root: conformance::unique_root(case),
        _guard: None,
    })
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

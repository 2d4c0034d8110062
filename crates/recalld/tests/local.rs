//! The real recalld binary over a local-disk store (a temporary directory).

mod common;

use common::Backend;

on_backend!(|_| async { Some(Backend::local()) };
    miss_publish_store_hit_hot_hit => miss_publish_store_hit_hot_hit,
    coalescing => coalescing,
    auth_matrix => auth_matrix,
    leases => leases,
    evict_list_gc_overwrite => evict_list_gc_overwrite,
    sigterm_during_publish => sigterm_during_publish(48 << 20),
    eviction_seen_by_other_daemon_within_ttl => eviction_seen_by_other_daemon_within_ttl,
    every_route_is_served => every_route_is_served,
    readyz_shows_the_capabilities => readyz_shows_the_capabilities,
);

/// A sidecar's logs are collected from a pipe or a file: no terminal colour codes in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_carry_no_colour_codes() {
    let daemon = common::Daemon::start(&Backend::local(), &common::Options::default());
    let (status, _) = daemon.get("/v1/entries/p/d/not-a-key", None).await;
    assert_eq!(status, 400);
    let log = daemon.log();
    assert!(!log.is_empty(), "recalld logged nothing");
    assert!(
        !log.contains('\u{1b}'),
        "recalld wrote terminal escape codes into its log file:\n{log}"
    );
}

/// A store that answers reads but refuses the probe's writes (as read-only credentials do;
/// here a plain file named `probe` at the root, which stops even root from writing under it):
/// lookups still work, readiness names the probe, leases are not granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_work_when_the_probe_cannot_write() {
    use common::{Daemon, Material, Options};
    let backend = Backend::local();
    let root = backend.local_path().unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("recall-store.json"),
        r#"{"inline_max_bytes": 4096, "key_spec_version": 1, "layout_version": 1}"#,
    )
    .unwrap();
    std::fs::write(root.join("probe"), "in the way").unwrap();
    let d = Daemon::start(&backend, &Options::default());
    let m = Material::new(&d, "alpha", "wf.readonly", 1, &["o"]).await;
    let (status, body) = d.lookup(&m, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (404, Some("CACHE_MISS")),
        "{body}"
    );
    let (status, body) = d.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["cause"]
            .as_str()
            .unwrap_or("")
            .contains("capability probe"),
        "{body}"
    );
    let (status, body) = d
        .post(&m.lease_path(), &common::lease_request("w", 30), None)
        .await;
    assert_eq!(status, 503, "{body}");
}

/// Issue 12 item 8: through recalld, an entry whose blob is gone is replaced by the next
/// publish (it used to be kept forever: recalld's reads do not remove broken entries), and
/// the daemon's memory tier then serves the new manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_blob_is_gone_is_replaced_by_the_next_publish() {
    use common::{Daemon, Material, Options, bytes};
    let backend = Backend::local();
    let store_dir = backend.local_path().unwrap();
    let d = Daemon::start(&backend, &Options::default());
    let m = Material::new(&d, "alpha", "wf.train", 1, &["model"]).await;
    let model = bytes(20_000, 1);
    let (status, body) = d.publish(&m, &[("model", model.clone())], "", None).await;
    assert_eq!(status, 201, "{body}");
    let digest = blake3::hash(&model).to_hex().to_string();
    let blob = store_dir
        .join("tenants/alpha/development/blobs")
        .join(&digest[..2])
        .join(&digest);
    std::fs::remove_file(&blob).unwrap();

    let (status, body) = d.publish(&m, &[("model", model.clone())], "", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("CACHE_POPULATED")),
        "the broken entry was kept: {body}"
    );
    assert!(blob.is_file(), "the blob was uploaded again");
    let (status, body) = d.lookup(&m, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CACHE_HIT")));
    assert_eq!(body["from_hot_tier"], true, "{body}");
}

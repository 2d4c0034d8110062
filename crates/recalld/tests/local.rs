//! The real recalld binary over a local-disk store (a temporary directory).

mod common;

use common::{Backend, scenarios};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_publish_store_hit_hot_hit() {
    scenarios::miss_publish_store_hit_hot_hit(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing() {
    scenarios::coalescing(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    scenarios::auth_matrix(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases() {
    scenarios::leases(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_list_gc_overwrite() {
    scenarios::evict_list_gc_overwrite(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_publish() {
    scenarios::sigterm_during_publish(&Backend::local(), 48 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_seen_by_other_daemon_within_ttl() {
    scenarios::eviction_seen_by_other_daemon_within_ttl(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served() {
    scenarios::every_route_is_served(&Backend::local()).await;
}

/// Issue 12 item 8: through recalld, an entry whose blob is gone is replaced by the next
/// publish (it used to be kept forever: recalld's reads do not remove broken entries), and
/// the daemon's memory tier then serves the new manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_blob_is_gone_is_replaced_by_the_next_publish() {
    use common::{Daemon, Material, Options, bytes};
    let backend = Backend::local();
    let Backend::Local { dir } = &backend else {
        unreachable!()
    };
    let store_dir = dir.path().join("store");
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

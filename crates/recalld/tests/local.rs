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

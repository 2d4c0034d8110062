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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_shows_the_capabilities() {
    scenarios::readyz_shows_the_capabilities(&Backend::local()).await;
}

//! The real recalld binary over the S3 test server (moto from scripts/test-servers.sh, or
//! whatever `RECALL_TEST_S3_*` names). Missing variables fail these tests unless
//! `RECALL_TEST_SKIP` names `s3`.

mod common;

use common::{Backend, scenarios};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_publish_store_hit_hot_hit() {
    let Some(backend) = Backend::s3("tiers").await else {
        return;
    };
    scenarios::miss_publish_store_hit_hot_hit(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing() {
    let Some(backend) = Backend::s3("coalesce").await else {
        return;
    };
    scenarios::coalescing(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    let Some(backend) = Backend::s3("auth").await else {
        return;
    };
    scenarios::auth_matrix(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases() {
    let Some(backend) = Backend::s3("leases").await else {
        return;
    };
    scenarios::leases(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_list_gc_overwrite() {
    let Some(backend) = Backend::s3("evict").await else {
        return;
    };
    scenarios::evict_list_gc_overwrite(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_publish() {
    let Some(backend) = Backend::s3("sigterm").await else {
        return;
    };
    scenarios::sigterm_during_publish(&backend, 24 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_seen_by_other_daemon_within_ttl() {
    let Some(backend) = Backend::s3("ttl").await else {
        return;
    };
    scenarios::eviction_seen_by_other_daemon_within_ttl(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_cut_fails_open_and_recovers() {
    let Some(backend) = Backend::s3("cut").await else {
        return;
    };
    scenarios::backend_cut_fails_open_and_recovers(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_shows_the_capabilities() {
    let Some(backend) = Backend::s3("caps").await else {
        return;
    };
    scenarios::readyz_shows_the_capabilities(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_the_store_is_down() {
    let Some(backend) = Backend::s3("down").await else {
        return;
    };
    scenarios::starts_while_the_store_is_down(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_without_conditional_writes() {
    let Some(backend) = Backend::s3_nocas("nocas") else {
        return;
    };
    scenarios::store_without_conditional_writes(&backend).await;
}

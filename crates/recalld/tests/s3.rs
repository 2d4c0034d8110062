//! The real recalld binary over the S3 test server (moto from scripts/test-servers.sh, or
//! whatever `RECALL_TEST_S3_*` names). Missing variables fail these tests unless
//! `RECALL_TEST_SKIP` names `s3`.

mod common;

use common::Backend;

on_backend!(|case| Backend::s3("recalld", case);
    miss_publish_store_hit_hot_hit => miss_publish_store_hit_hot_hit,
    coalescing => coalescing,
    auth_matrix => auth_matrix,
    leases => leases,
    evict_list_gc_overwrite => evict_list_gc_overwrite,
    sigterm_during_publish => sigterm_during_publish(24 << 20),
    eviction_seen_by_other_daemon_within_ttl => eviction_seen_by_other_daemon_within_ttl,
    backend_cut_fails_open_and_recovers => backend_cut_fails_open_and_recovers,
    readyz_shows_the_capabilities => readyz_shows_the_capabilities,
    starts_while_the_store_is_down => starts_while_the_store_is_down,
);

on_backend!(|case| async move { Backend::s3_nocas("recalld", case) };
    store_without_conditional_writes => store_without_conditional_writes,
);

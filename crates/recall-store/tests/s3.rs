//! The conformance suite on S3: moto (started by scripts/test-servers.sh), or MinIO / AWS when
//! the `RECALL_TEST_S3_*` variables point there (see tests/s3_env/mod.rs).

mod conformance;
mod s3_env;

use recall_store::open_url_with;

async fn harness(case: &str) -> Option<conformance::Harness> {
    if conformance::skipped("s3") {
        return None;
    }
    let env = s3_env::S3Env::from_env();
    env.ensure_bucket().await;
    let options = env.object_store_options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let backend = open_url_with(&format!("s3://{}", env.bucket), &options).expect("open S3 store");
    Some(conformance::Harness {
        objects: backend.objects,
        root: s3_env::s3_root(&conformance::unique_root(case)),
        _guard: None,
    })
}

conformance_suite!(harness);

//! The conformance suite on S3: moto (started by scripts/test-servers.sh), or MinIO / AWS when
//! the `RECALL_TEST_S3_*` variables point there (see recall-testkit's `s3` module).

mod conformance;

use recall_testkit::s3::S3Env;

async fn harness(case: &str) -> Option<conformance::Harness> {
    if recall_testkit::skipped("s3") {
        return None;
    }
    let env = S3Env::from_env();
    env.ensure_bucket().await;
    let url = format!("s3://{}", env.bucket);
    Some(conformance::remote_harness(
        &url,
        &env.object_store_options(),
        case,
    ))
}

conformance_suite!(harness);

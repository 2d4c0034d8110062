//! Where the S3 tests find their server: the `RECALL_TEST_S3_*` environment variables.
//!
//! | variable                            | meaning                                              |
//! |-------------------------------------|------------------------------------------------------|
//! | `RECALL_TEST_S3_BUCKET`             | bucket to use (created if missing); required         |
//! | `RECALL_TEST_S3_ENDPOINT`           | endpoint URL (moto, MinIO); unset for AWS itself     |
//! | `RECALL_TEST_S3_REGION`             | region, default `us-east-1`                          |
//! | `RECALL_TEST_S3_ACCESS_KEY_ID`      | access key; default `AWS_ACCESS_KEY_ID`              |
//! | `RECALL_TEST_S3_SECRET_ACCESS_KEY`  | secret key; default `AWS_SECRET_ACCESS_KEY`          |
//!
//! `scripts/test-servers.sh` starts moto and sets all of them. A test that finds no bucket
//! configured fails, unless `RECALL_TEST_SKIP` names `s3`.
//!
//! `RECALL_TEST_S3_SHORT_ROOTS=1` makes each test's store root short (see [`s3_root`]), for
//! servers that cannot hold long keys; `scripts/s3-compat.sh` sets it for s3s-fs.

#![allow(dead_code)]

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// The store root a test uses on S3: `long`, which names the case (handy when reading a
/// bucket), or, when `RECALL_TEST_S3_SHORT_ROOTS` is set, `t` and 12 hex digits of a hash of
/// it. s3s-fs keeps each object's metadata in one file named after the base64 of bucket and
/// key, so a key longer than about 130 bytes fails there (ENAMETOOLONG), and recall's layout
/// already adds about 106 bytes under the root.
pub fn s3_root(long: &str) -> String {
    use std::hash::{Hash, Hasher};
    if var("RECALL_TEST_S3_SHORT_ROOTS").is_none() {
        return long.to_string();
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    long.hash(&mut hasher);
    format!("t{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// The S3 server the tests use.
pub struct S3Env {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Env {
    /// Reads the variables, failing the test with instructions when they are missing.
    pub fn from_env() -> S3Env {
        let missing = |what: &str| -> ! {
            panic!(
                "{what} is not set: run scripts/test.sh (it starts moto), point RECALL_TEST_S3_* \
                 at MinIO or AWS, or set RECALL_TEST_SKIP=s3 to skip the S3 backend"
            )
        };
        let bucket =
            var("RECALL_TEST_S3_BUCKET").unwrap_or_else(|| missing("RECALL_TEST_S3_BUCKET"));
        S3Env {
            bucket,
            endpoint: var("RECALL_TEST_S3_ENDPOINT"),
            region: var("RECALL_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("RECALL_TEST_S3_ACCESS_KEY_ID")
                .or_else(|| var("AWS_ACCESS_KEY_ID"))
                .unwrap_or_else(|| missing("RECALL_TEST_S3_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)")),
            secret_access_key: var("RECALL_TEST_S3_SECRET_ACCESS_KEY")
                .or_else(|| var("AWS_SECRET_ACCESS_KEY"))
                .unwrap_or_else(|| {
                    missing("RECALL_TEST_S3_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)")
                }),
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }

    /// The same settings as object_store configuration keys, for `open_url_with`.
    pub fn object_store_options(&self) -> Vec<(&'static str, String)> {
        let mut options = vec![
            ("aws_region", self.region.clone()),
            ("aws_access_key_id", self.access_key_id.clone()),
            ("aws_secret_access_key", self.secret_access_key.clone()),
        ];
        if let Some(endpoint) = &self.endpoint {
            options.push(("aws_endpoint", endpoint.clone()));
        }
        if let Some(token) = &self.session_token {
            options.push(("aws_session_token", token.clone()));
        }
        options
    }

    /// An aws-sdk-s3 client for the same server (path-style requests).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "recall-test",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true);
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// Creates the bucket unless it exists (object_store cannot create buckets).
    pub async fn ensure_bucket(&self) {
        let client = self.client();
        if client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return;
        }
        let mut create = client.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(self.region.as_str().into())
                    .build(),
            );
        }
        if let Err(err) = create.send().await {
            // Another test may have created it in the meantime.
            if client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .is_err()
            {
                panic!(
                    "cannot create S3 bucket {:?} at {:?}: {err:?}",
                    self.bucket, self.endpoint
                );
            }
        }
    }
}

//! Where the S3 tests find their servers.
//!
//! | variable                            | meaning                                              |
//! |-------------------------------------|------------------------------------------------------|
//! | `RECALL_TEST_S3_BUCKET`             | bucket to use (created if missing); required         |
//! | `RECALL_TEST_S3_ENDPOINT`           | endpoint URL (moto, MinIO); unset for AWS itself     |
//! | `RECALL_TEST_S3_REGION`             | region, default `us-east-1`                          |
//! | `RECALL_TEST_S3_ACCESS_KEY_ID`      | access key; default `AWS_ACCESS_KEY_ID`              |
//! | `RECALL_TEST_S3_SECRET_ACCESS_KEY`  | secret key; default `AWS_SECRET_ACCESS_KEY`          |
//! | `RECALL_TEST_S3NOCAS_ENDPOINT`      | s3rver, the server without conditional writes        |
//! | `RECALL_TEST_S3NOCAS_BUCKET`        | its bucket (s3rver creates it on start-up)           |
//! | `RECALL_TEST_S3NOCAS_REGION`        | its region, default `us-east-1`                      |
//! | `RECALL_TEST_S3NOCAS_ACCESS_KEY_ID` | its access key, default s3rver's `S3RVER`            |
//! | `RECALL_TEST_S3NOCAS_SECRET_ACCESS_KEY` | its secret key, default s3rver's `S3RVER`        |
//!
//! `scripts/test-servers.sh` starts moto and s3rver and sets all of them. A test that finds
//! no server configured fails, unless `RECALL_TEST_SKIP` names `s3` (or `s3nocas`).
//!
//! `RECALL_TEST_S3_SHORT_ROOTS=1` makes each test's store root short (see
//! [`crate::short_root`]), for servers that cannot hold long keys.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::{required, var};

/// An S3 server the tests use.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// The bucket.
    pub bucket: String,
    /// The endpoint URL; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token (`AWS_SESSION_TOKEN`), if any.
    pub session_token: Option<String>,
}

impl S3Env {
    /// The S3 server of `RECALL_TEST_S3_*`, failing the test with instructions when the
    /// variables are missing. Callers check [`crate::skipped`]`("s3")` first.
    pub fn from_env() -> S3Env {
        const PROVIDER: &str =
            "run scripts/test.sh (it starts moto) or point RECALL_TEST_S3_* at MinIO or AWS";
        let access_key_id = var("RECALL_TEST_S3_ACCESS_KEY_ID")
            .or_else(|| var("AWS_ACCESS_KEY_ID"))
            .unwrap_or_else(|| required("RECALL_TEST_S3_ACCESS_KEY_ID", PROVIDER, "s3"));
        let secret_access_key = var("RECALL_TEST_S3_SECRET_ACCESS_KEY")
            .or_else(|| var("AWS_SECRET_ACCESS_KEY"))
            .unwrap_or_else(|| required("RECALL_TEST_S3_SECRET_ACCESS_KEY", PROVIDER, "s3"));
        S3Env {
            bucket: required("RECALL_TEST_S3_BUCKET", PROVIDER, "s3"),
            endpoint: var("RECALL_TEST_S3_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
            region: var("RECALL_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }

    /// The S3 server without conditional writes of `RECALL_TEST_S3NOCAS_*` (s3rver, which
    /// answers 200 to `If-None-Match: *` on an existing key and to a stale `If-Match`, as
    /// Garage does), failing the test when the variables are missing. Callers check
    /// [`crate::skipped`]`("s3nocas")` first.
    pub fn nocas_from_env() -> S3Env {
        const PROVIDER: &str = "run scripts/test.sh (it starts s3rver)";
        S3Env {
            bucket: required("RECALL_TEST_S3NOCAS_BUCKET", PROVIDER, "s3nocas"),
            endpoint: Some(
                required("RECALL_TEST_S3NOCAS_ENDPOINT", PROVIDER, "s3nocas")
                    .trim_end_matches('/')
                    .to_string(),
            ),
            region: var("RECALL_TEST_S3NOCAS_REGION").unwrap_or_else(|| "us-east-1".into()),
            // Unless set (scripts/s3-compat.sh points these at Garage): s3rver's fixed
            // development credentials.
            access_key_id: var("RECALL_TEST_S3NOCAS_ACCESS_KEY_ID")
                .unwrap_or_else(|| "S3RVER".into()),
            secret_access_key: var("RECALL_TEST_S3NOCAS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|| "S3RVER".into()),
            session_token: None,
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

    /// The same settings as the `AWS_*` variables a `recall` or `recalld` process reads;
    /// `endpoint` replaces the server's endpoint when given (a proxy in front of it).
    pub fn process_env(&self, endpoint: Option<&str>) -> Vec<(String, String)> {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
            ("AWS_REGION".to_string(), self.region.clone()),
        ];
        if let Some(endpoint) = endpoint.or(self.endpoint.as_deref()) {
            vars.push(("AWS_ENDPOINT_URL".to_string(), endpoint.to_string()));
            if endpoint.starts_with("http://") {
                vars.push(("AWS_ALLOW_HTTP".to_string(), "true".to_string()));
            }
        }
        if let Some(token) = &self.session_token {
            vars.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
        vars
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
        let exists = || async {
            client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .is_ok()
        };
        if exists().await {
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
        // Another test may have created it in the meantime.
        if let Err(err) = create.send().await
            && !exists().await
        {
            panic!(
                "cannot create S3 bucket {:?} at {:?}: {err:?}",
                self.bucket, self.endpoint
            );
        }
    }
}

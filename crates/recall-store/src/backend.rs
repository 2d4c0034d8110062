//! One constructor from a URL to an object store (docs/LAYOUT.md section 7).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use crate::error::StoreError;
use crate::local::LocalCasStore;

/// An opened backend: the object store and the path prefix the store root lives under.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The object store every operation goes through.
    pub objects: Arc<dyn ObjectStore>,
    /// The store root inside it, without leading or trailing `/` (empty for the top).
    pub root: String,
}

/// Opens `url`: `file:///abs/path`, `memory://`, `s3://bucket[/prefix]`,
/// `gs://bucket[/prefix]` or `az://container[/prefix]`. Cloud credentials and endpoints come
/// from the standard environment variables of each cloud (docs/LAYOUT.md section 7).
pub fn open_url(url: &str) -> Result<Backend, StoreError> {
    open_url_with(url, &[])
}

/// Like [`open_url`], with extra backend settings given as object_store configuration keys
/// (for example `("aws_endpoint", "http://127.0.0.1:9000")` or `("azure_storage_account_name",
/// "devstoreaccount1")`); these take precedence over the environment. Unknown keys are errors.
pub fn open_url_with(url: &str, options: &[(&str, &str)]) -> Result<Backend, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let bucket = || -> Result<String, StoreError> {
        match parsed.host_str() {
            Some(host) if !host.is_empty() => Ok(host.to_string()),
            _ => Err(invalid("the bucket or container name is missing")),
        }
    };
    let prefix = || parsed.path().trim_matches('/').to_string();
    let built = |e: object_store::Error| invalid(&e.to_string());
    if !options.is_empty() && matches!(parsed.scheme(), "file" | "memory") {
        return Err(invalid("file and memory stores take no options"));
    }
    match parsed.scheme() {
        "file" => {
            if parsed
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(invalid(
                    "a file URL has no host: write file:///absolute/path",
                ));
            }
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("not an absolute local path"))?;
            let store = LocalCasStore::new(&path).map_err(|e| StoreError::io(&path, e))?;
            Ok(Backend {
                objects: Arc::new(store),
                root: String::new(),
            })
        }
        "memory" => Ok(Backend {
            objects: Arc::new(InMemory::new()),
            root: prefix(),
        }),
        "s3" => {
            let bucket = bucket()?;
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_conditional_put(S3ConditionalPut::ETagMatch);
            for (key, value) in options {
                builder = builder.with_config(key.parse().map_err(built)?, *value);
            }
            let setting = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
            // object_store's own precedence: the S3-specific endpoint first.
            let endpoint_key = if setting(AmazonS3ConfigKey::S3Endpoint).is_some() {
                AmazonS3ConfigKey::S3Endpoint
            } else {
                AmazonS3ConfigKey::Endpoint
            };
            let mut endpoint = setting(endpoint_key);
            let virtual_hosted = setting(AmazonS3ConfigKey::VirtualHostedStyleRequest)
                .is_some_and(|v| is_truthy(&v));
            if let (true, Some(given)) = (virtual_hosted, &endpoint) {
                // object_store sends virtual-hosted requests to the endpoint as given, so a plain
                // endpoint would make the first prefix segment the bucket.
                let fixed = virtual_hosted_endpoint(given, &bucket).map_err(|reason| {
                    invalid(&format!(
                        "{} is set with the endpoint {given} ({}): {reason}",
                        source_of(
                            options,
                            "aws_virtual_hosted_style_request",
                            &["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"]
                        ),
                        source_of(options, endpoint_key.as_ref(), &ENDPOINT_VARIABLES),
                    ))
                })?;
                builder = builder.with_config(endpoint_key, &fixed);
                endpoint = Some(fixed);
            }
            if endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
            {
                // A plain-HTTP endpoint is a local test server (moto, MinIO) by intent.
                builder = builder.with_allow_http(true);
            }
            let region = builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .unwrap_or_else(|| "us-east-1".into());
            let metadata_endpoint = uses_instance_metadata(&builder).then(|| {
                builder
                    .get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
                    .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.into())
            });
            if metadata_endpoint.is_some() && env_is_truthy("AWS_EC2_METADATA_DISABLED") {
                return Err(StoreError::Unusable(BackendProblem::NoCredentials {
                    bucket,
                    detail: "AWS_EC2_METADATA_DISABLED is set, so the instance metadata \
                             service is not asked either"
                        .into(),
                }));
            }
            let inner = builder.build().map_err(built)?;
            Ok(Backend {
                objects: Arc::new(Explained {
                    inner: Arc::new(inner),
                    bucket,
                    endpoint: endpoint
                        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
                    metadata_endpoint,
                }),
                root: prefix(),
            })
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket()?);
            for (key, value) in options {
                builder = builder.with_config(key.parse().map_err(built)?, *value);
            }
            Ok(Backend {
                objects: Arc::new(builder.build().map_err(built)?),
                root: prefix(),
            })
        }
        "az" => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(bucket()?);
            for (key, value) in options {
                builder = builder.with_config(key.parse().map_err(built)?, *value);
            }
            Ok(Backend {
                objects: Arc::new(builder.build().map_err(built)?),
                root: prefix(),
            })
        }
        other => Err(invalid(&format!(
            "unknown scheme {other:?}: expected file, memory, s3, gs or az"
        ))),
    }
}

/// The environment variables object_store reads an S3 endpoint from.
const ENDPOINT_VARIABLES: [&str; 3] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];

/// Where object_store asks for credentials when nothing else provides them.
const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// A boolean setting as object_store reads it.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes" | "y"
    )
}

fn env_is_truthy(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| is_truthy(&v))
}

/// Names where a setting came from, for an error message: the option `key` if it was given,
/// else the first of `variables` that is set.
fn source_of(options: &[(&str, &str)], key: &str, variables: &[&str]) -> String {
    if options.iter().any(|(k, _)| *k == key) {
        return format!("option {key}");
    }
    variables
        .iter()
        .find(|name| std::env::var(name).is_ok())
        .or(variables.first())
        .map_or_else(String::new, |name| name.to_string())
}

/// The endpoint object_store must be given for virtual-hosted-style requests to `bucket`: its
/// host begins with the bucket (`https://bucket.host`), as the requests carry no bucket in the
/// path. An endpoint whose host already begins with `bucket.` is kept; an IP address cannot
/// carry a bucket, so it is refused.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> Result<String, String> {
    let mut url = Url::parse(endpoint).map_err(|e| format!("not a URL: {e}"))?;
    match url.host() {
        Some(url::Host::Domain(host)) => {
            if host.starts_with(&format!("{bucket}.")) {
                return Ok(endpoint.to_string());
            }
            let host = format!("{bucket}.{host}");
            url.set_host(Some(&host))
                .map_err(|e| format!("{host:?} is not a host name: {e}"))?;
            Ok(url.as_str().trim_end_matches('/').to_string())
        }
        Some(_) => Err(
            "virtual-hosted-style requests name the bucket in the host, which an IP \
                        address cannot do; unset it to use path-style requests, or give a host \
                        name"
                .into(),
        ),
        None => Err("the endpoint has no host".into()),
    }
}

/// Whether object_store will fall back to the instance metadata service for credentials:
/// no keys, no web identity, no container credentials and signing not skipped.
fn uses_instance_metadata(builder: &AmazonS3Builder) -> bool {
    let set = |key: AmazonS3ConfigKey| builder.get_config_value(&key).is_some();
    let keys = set(AmazonS3ConfigKey::AccessKeyId) || set(AmazonS3ConfigKey::SecretAccessKey);
    let web_identity =
        set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn);
    let container = set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || (set(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            && set(AmazonS3ConfigKey::ContainerAuthorizationTokenFile));
    let unsigned = builder
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| is_truthy(&v));
    !(keys || web_identity || container || unsigned)
}

/// Why a backend cannot be used at all, whatever the object asked for. Each names the cause
/// and the fix, where object_store's error would name an object or an internal address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendProblem {
    /// The bucket (or Azure container) named by the store URL does not exist.
    #[error(
        "bucket {bucket:?} does not exist (endpoint {endpoint}): create it, or correct the \
         bucket in the store URL"
    )]
    MissingBucket {
        /// The bucket or container name.
        bucket: String,
        /// The endpoint that said so.
        endpoint: String,
    },
    /// No S3 credentials were configured, and the instance metadata service gave none.
    #[error(
        "no credentials for bucket {bucket:?}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (and AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE and \
         AWS_ROLE_ARN, or run where the instance metadata service provides a role ({detail})"
    )]
    NoCredentials {
        /// The bucket the credentials were wanted for.
        bucket: String,
        /// What the fallback to the instance metadata service reported.
        detail: String,
    },
}

/// The start of an error's text, so one message does not carry a whole response body.
fn first_chars(error: &object_store::Error, max: usize) -> String {
    let text = error.to_string();
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// An S3 store whose errors name their cause when it is the bucket or the credentials
/// rather than one object (a [`BackendProblem`] as the source of a generic error).
#[derive(Debug)]
struct Explained {
    inner: Arc<dyn ObjectStore>,
    bucket: String,
    endpoint: String,
    /// Where credentials are fetched from, when nothing else provides them.
    metadata_endpoint: Option<String>,
}

impl Explained {
    fn explain(&self, error: object_store::Error) -> object_store::Error {
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(inner) = cause {
            text.push_str(&inner.to_string());
            cause = inner.source();
        }
        let problem = if text.contains("<Code>NoSuchBucket</Code>") {
            BackendProblem::MissingBucket {
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            }
        } else if let Some(metadata) = self
            .metadata_endpoint
            .as_deref()
            .filter(|m| text.contains(m))
        {
            BackendProblem::NoCredentials {
                bucket: self.bucket.clone(),
                detail: format!("asking {metadata} failed: {}", first_chars(&error, 300)),
            }
        } else {
            return error;
        };
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(problem),
        }
    }
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for Explained {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await;
        result.map_err(|e| self.explain(e))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let result = self.inner.put_multipart_opts(location, opts).await;
        result.map_err(|e| self.explain(e))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        result.map_err(|e| self.explain(e))
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let result = self.inner.get_ranges(location, ranges).await;
        result.map_err(|e| self.explain(e))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone_shallow();
        self.inner
            .delete_stream(locations)
            .map(move |r| r.map_err(|e| this.explain(e)))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = self.clone_shallow();
        self.inner
            .list(prefix)
            .map(move |r| r.map_err(|e| this.explain(e)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = self.clone_shallow();
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |r| r.map_err(|e| this.explain(e)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let result = self.inner.list_with_delimiter(prefix).await;
        result.map_err(|e| self.explain(e))
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let result = self.inner.copy_opts(from, to, options).await;
        result.map_err(|e| self.explain(e))
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let result = self.inner.rename_opts(from, to, options).await;
        result.map_err(|e| self.explain(e))
    }
}

impl Explained {
    /// A copy sharing the inner store, for streams that outlive `&self`.
    fn clone_shallow(&self) -> Explained {
        Explained {
            inner: Arc::clone(&self.inner),
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            metadata_endpoint: self.metadata_endpoint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_schemes_and_missing_buckets_naming_the_url() {
        for (url, part) in [
            ("ftp://x/y", "unknown scheme"),
            ("s3:///prefix", "bucket"),
            ("not a url", "invalid store URL"),
            ("file://host/x", "no host"),
        ] {
            let err = open_url(url).unwrap_err().to_string();
            assert!(err.contains(part), "{url}: {err}");
            assert!(err.contains(&format!("{url:?}")), "{err}");
        }
    }

    #[test]
    fn gs_urls_are_constructed_but_not_exercised() {
        // No GCS server runs in the suite: this checks only that the URL builds a store.
        let backend = open_url("gs://some-bucket/some/prefix").unwrap();
        assert_eq!(backend.root, "some/prefix");
        assert!(backend.objects.to_string().contains("some-bucket"));
    }

    #[test]
    fn s3_options_are_checked_by_name() {
        let err = open_url_with("s3://bucket", &[("no_such_option", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_such_option"), "{err}");
        let backend = open_url_with(
            "s3://bucket/p",
            &[
                ("aws_endpoint", "http://127.0.0.1:1"),
                ("aws_region", "us-east-1"),
            ],
        )
        .unwrap();
        assert_eq!(backend.root, "p");
    }

    /// Issue 13: with virtual-hosted-style requests the bucket goes into the endpoint's host
    /// (object_store uses a given endpoint as is), or an IP endpoint is refused.
    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        for (endpoint, want) in [
            (
                "http://minio.internal:9000",
                "http://cache.minio.internal:9000",
            ),
            ("https://s3.example.com/", "https://cache.s3.example.com"),
            (
                "https://cache.s3.example.com",
                "https://cache.s3.example.com",
            ),
            ("http://localhost:9000", "http://cache.localhost:9000"),
        ] {
            assert_eq!(
                virtual_hosted_endpoint(endpoint, "cache").as_deref(),
                Ok(want),
                "{endpoint}"
            );
        }
        for endpoint in ["http://127.0.0.1:9000", "http://[::1]:9000"] {
            let err = virtual_hosted_endpoint(endpoint, "cache").unwrap_err();
            assert!(err.contains("IP address"), "{endpoint}: {err}");
        }
        let err = open_url_with(
            "s3://cache/team/x",
            &[
                ("aws_endpoint", "http://127.0.0.1:1"),
                ("aws_virtual_hosted_style_request", "true"),
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
            ],
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "\"s3://cache/team/x\"",
            "option aws_virtual_hosted_style_request",
            "http://127.0.0.1:1 (option aws_endpoint)",
        ] {
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
        open_url_with(
            "s3://cache/team/x",
            &[
                ("aws_endpoint", "http://minio.internal:9000"),
                ("aws_virtual_hosted_style_request", "true"),
            ],
        )
        .unwrap();
    }

    /// The missing-bucket and no-credentials causes are recognised in object_store's errors
    /// and become [`StoreError::Unusable`].
    #[test]
    fn bucket_and_credential_errors_are_named() {
        let explained = Explained {
            inner: Arc::new(InMemory::new()),
            bucket: "cache".into(),
            endpoint: "http://127.0.0.1:9".into(),
            metadata_endpoint: Some("http://169.254.169.254".into()),
        };
        let path = Path::from("recall-store.json");
        let not_found = |body: &str| object_store::Error::NotFound {
            path: path.to_string(),
            source: body.to_string().into(),
        };
        let missing = explained.explain(not_found("<Error><Code>NoSuchBucket</Code></Error>"));
        let err = StoreError::backend("get", &path, missing);
        assert!(matches!(
            err,
            StoreError::Unusable(BackendProblem::MissingBucket { .. })
        ));
        assert_eq!(
            err.to_string(),
            "bucket \"cache\" does not exist (endpoint http://127.0.0.1:9): create it, or \
             correct the bucket in the store URL"
        );
        let key = explained.explain(not_found("<Error><Code>NoSuchKey</Code></Error>"));
        assert!(matches!(key, object_store::Error::NotFound { .. }));
        let imds = explained.explain(object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://169.254.169.254/latest/api/token".into(),
        });
        let err = StoreError::backend("get", &path, imds).to_string();
        assert!(
            err.starts_with("no credentials for bucket \"cache\": set AWS_ACCESS_KEY_ID"),
            "{err}"
        );
    }

    #[test]
    fn memory_and_file_urls_open() {
        assert_eq!(open_url("memory://").unwrap().root, "");
        assert_eq!(open_url("memory:///a/b/").unwrap().root, "a/b");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("store").display());
        open_url(&url).unwrap();
        assert!(dir.path().join("store").is_dir());
    }
}

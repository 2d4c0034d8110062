//! One constructor from a URL to an object store (docs/LAYOUT.md section 7).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::memory::InMemory;
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
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket()?)
                .with_conditional_put(S3ConditionalPut::ETagMatch);
            let mut endpoint = s3_endpoint_from_env();
            for (key, value) in options {
                let parsed: AmazonS3ConfigKey = key.parse().map_err(built)?;
                if matches!(
                    parsed,
                    AmazonS3ConfigKey::Endpoint | AmazonS3ConfigKey::S3Endpoint
                ) {
                    endpoint = Some(value.to_string());
                }
                builder = builder.with_config(parsed, *value);
            }
            if endpoint.is_some_and(|e| e.starts_with("http://")) {
                // A plain-HTTP endpoint is a local test server (moto, MinIO) by intent.
                builder = builder.with_allow_http(true);
            }
            Ok(Backend {
                objects: Arc::new(builder.build().map_err(built)?),
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

/// The S3 endpoint the environment names, in object_store's order of precedence.
fn s3_endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
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

//! A fresh store for a process under test (`recall`, `recalld`): where it lives, as the
//! store URL and the environment variables the process needs to reach it.

use std::path::PathBuf;

use crate::s3::S3Env;
use crate::{skipped, unique_root};

/// Where the store of one test case lives.
#[derive(Debug)]
pub enum Backend {
    /// A local directory: the store is its `store` subdirectory.
    Local {
        /// Keeps the directory alive.
        dir: tempfile::TempDir,
    },
    /// A prefix no other case uses in an S3 bucket.
    S3 {
        /// The server.
        server: S3Env,
        /// The prefix.
        root: String,
    },
}

impl Backend {
    /// A fresh local-disk store.
    pub fn local() -> Backend {
        Backend::Local {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// A fresh prefix (under `scope`, named after `case`) on the S3 test server of
    /// `RECALL_TEST_S3_*`, its bucket created if missing; `None` only when `RECALL_TEST_SKIP`
    /// names `s3`. Missing variables fail the test.
    pub async fn s3(scope: &str, case: &str) -> Option<Backend> {
        if skipped("s3") {
            return None;
        }
        let server = S3Env::from_env();
        server.ensure_bucket().await;
        Some(Backend::S3 {
            server,
            root: unique_root(scope, case),
        })
    }

    /// A fresh prefix on the S3 server without conditional writes of
    /// `RECALL_TEST_S3NOCAS_*` (s3rver); `None` only when `RECALL_TEST_SKIP` names `s3nocas`.
    /// Missing variables fail the test.
    pub fn s3_nocas(scope: &str, case: &str) -> Option<Backend> {
        if skipped("s3nocas") {
            return None;
        }
        Some(Backend::S3 {
            server: S3Env::nocas_from_env(),
            root: unique_root(scope, case),
        })
    }

    /// The store URL (`file://…` or `s3://bucket/prefix`).
    pub fn url(&self) -> String {
        match self {
            Backend::Local { .. } => format!("file://{}", self.local_path().unwrap().display()),
            Backend::S3 { server, root } => format!("s3://{}/{root}", server.bucket),
        }
    }

    /// The store's directory, for a local-disk store.
    pub fn local_path(&self) -> Option<PathBuf> {
        match self {
            Backend::Local { dir } => Some(dir.path().join("store")),
            Backend::S3 { .. } => None,
        }
    }

    /// The S3 server's endpoint, for a proxy in front of it.
    pub fn s3_endpoint(&self) -> Option<&str> {
        match self {
            Backend::S3 { server, .. } => server.endpoint.as_deref(),
            Backend::Local { .. } => None,
        }
    }

    /// The environment variables a process needs to reach the store (the S3 credentials and
    /// endpoint, `endpoint` replacing the latter when given).
    pub fn process_env(&self, endpoint: Option<&str>) -> Vec<(String, String)> {
        match self {
            Backend::Local { .. } => Vec::new(),
            Backend::S3 { server, .. } => server.process_env(endpoint),
        }
    }
}

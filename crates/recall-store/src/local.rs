//! The `file://` backend: object_store's `LocalFileSystem` plus compare-and-swap.
//!
//! `LocalFileSystem` writes atomically (stage, then rename or hard-link) and implements
//! `PutMode::Create`, but not `PutMode::Update`, which leases need. [`LocalCasStore`] adds it:
//! every conditional update, every plain overwrite and every delete holds an exclusive OS
//! file lock (`flock`-style, via `std::fs::File::lock`) on `<root>/.recall-cas.lock`; an
//! update compares the object's current e-tag with the expected one, and only then writes.
//! (Multipart uploads, which recall uses for content-addressed blobs only, do not take it.) Every process on the
//! machine that opens the same directory through recall takes the same lock, so updates are
//! serialised across threads and processes. Not safe on network file systems whose locks do
//! not work (some NFS set-ups): use an object store there.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// File name of the lock file at the root of a `file://` store.
pub const LOCK_FILE: &str = ".recall-cas.lock";

/// A local directory as an object store with working `PutMode::Update`.
#[derive(Debug, Clone)]
pub struct LocalCasStore {
    inner: Arc<LocalFileSystem>,
    lock_path: Arc<PathBuf>,
}

impl LocalCasStore {
    /// Opens (creating if needed) the directory `root` as a store.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let inner = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(LocalCasStore {
            inner: Arc::new(inner),
            lock_path: Arc::new(root.join(LOCK_FILE)),
        })
    }

    /// Takes the store-wide exclusive lock; it is released when the returned file is dropped.
    async fn lock(&self) -> Result<File> {
        let path = Arc::clone(&self.lock_path);
        let locked = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path.as_path())?;
            file.lock()?;
            Ok(file)
        })
        .await;
        match locked {
            Ok(Ok(file)) => Ok(file),
            Ok(Err(source)) => Err(object_store::Error::Generic {
                store: "LocalCasStore",
                source: Box::new(source),
            }),
            Err(join) => Err(object_store::Error::Generic {
                store: "LocalCasStore",
                source: Box::new(join),
            }),
        }
    }
}

impl fmt::Display for LocalCasStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalCasStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalCasStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let expected = match &opts.mode {
            // Atomic by itself (a hard link that fails when the object exists), and an object
            // that exists is all a swap can be waiting on.
            PutMode::Create => return self.inner.put_opts(location, payload, opts).await,
            // Under the lock, so that it cannot land between a swap's check and its write
            // (the swap would then succeed and silently undo this write).
            PutMode::Overwrite => {
                let _guard = self.lock().await?;
                return self.inner.put_opts(location, payload, opts).await;
            }
            PutMode::Update(expected) => expected,
        };
        let _guard = self.lock().await?;
        let current = match self.inner.head(location).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { path, source }) => {
                return Err(object_store::Error::Precondition { path, source });
            }
            Err(other) => return Err(other),
        };
        if current.e_tag != expected.e_tag {
            return Err(object_store::Error::Precondition {
                path: location.to_string(),
                source: format!(
                    "e-tag is {:?}, expected {:?}",
                    current.e_tag, expected.e_tag
                )
                .into(),
            });
        }
        let overwrite = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        self.inner.put_opts(location, payload, overwrite).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each delete holds the lock so it cannot interleave with a compare-and-swap.
        let this = self.clone();
        locations
            .and_then(move |location| {
                let this = this.clone();
                async move {
                    let _guard = this.lock().await?;
                    match this.inner.delete(&location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(location),
                        Err(other) => Err(other),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::UpdateVersion;

    /// A plain overwrite racing a compare-and-swap: if the swap succeeds, the overwrite
    /// must have come after it (and win), never between its check and its write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_overwrite_never_lands_between_a_swap_check_and_its_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCasStore::new(dir.path()).unwrap();
        let path = Path::from("manifest");
        let mut lost = 0;
        for round in 0..300 {
            let base = UpdateVersion::from(store.put(&path, "base".into()).await.unwrap());
            let overwrite = store.put(&path, format!("overwritten {round}").into());
            let update = store.put_opts(&path, "updated".into(), PutMode::Update(base).into());
            let (overwrite, update) = tokio::join!(overwrite, update);
            overwrite.unwrap();
            let body = store.get(&path).await.unwrap().bytes().await.unwrap();
            if update.is_ok() && &body[..] == b"updated" {
                lost += 1;
            }
        }
        assert_eq!(
            lost, 0,
            "overwrites lost under a successful swap in {lost} of 300 rounds"
        );
    }

    #[tokio::test]
    async fn update_succeeds_only_with_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCasStore::new(dir.path()).unwrap();
        let path = Path::from("a/b");
        let first = store
            .put_opts(&path, "one".into(), PutMode::Create.into())
            .await
            .unwrap();
        let stale = UpdateVersion::from(first.clone());
        let second = store
            .put_opts(&path, "two".into(), PutMode::Update(first.into()).into())
            .await
            .unwrap();
        let err = store
            .put_opts(&path, "three".into(), PutMode::Update(stale).into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::Precondition { .. }),
            "{err}"
        );
        store
            .put_opts(&path, "four".into(), PutMode::Update(second.into()).into())
            .await
            .unwrap();
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&body[..], b"four");
        let missing = Path::from("a/missing");
        let err = store
            .put_opts(
                &missing,
                "x".into(),
                PutMode::Update(UpdateVersion {
                    e_tag: Some("x".into()),
                    version: None,
                })
                .into(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::Precondition { .. }),
            "{err}"
        );
    }
}

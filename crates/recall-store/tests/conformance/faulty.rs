//! An object store wrapper that fails chosen operations, to abort publishes half-way.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// Which operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every single-request put whose path contains `/entries/` (the manifest).
    ManifestPut,
    /// The second part of every multipart upload.
    SecondPart,
    /// A read-only key: every put, multipart upload, delete and copy is denied.
    ReadOnly,
    /// Just before the first replace-if-version-matches of a manifest, another writer puts
    /// the bytes in [`FaultyStore::race`] there (a concurrent publish winning the race).
    RacedManifestUpdate,
    /// Every conditional put is a plain overwrite: what Garage and s3rver do.
    IgnoresConditions,
}

/// Delegates to `inner`, except for the chosen fault.
#[derive(Debug)]
pub struct FaultyStore {
    pub inner: Arc<dyn ObjectStore>,
    pub fault: Fault,
    /// The manifest the racer of [`Fault::RacedManifestUpdate`] writes (taken once).
    pub race: std::sync::Mutex<Option<Bytes>>,
}

fn denied(path: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: "injected: this key may only read".into(),
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: format!("injected failure: {what}").into(),
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if self.fault == Fault::IgnoresConditions {
            let overwrite = PutOptions {
                mode: object_store::PutMode::Overwrite,
                ..opts
            };
            return self.inner.put_opts(location, payload, overwrite).await;
        }
        if self.fault == Fault::ManifestPut && location.as_ref().contains("/entries/") {
            return Err(injected("manifest put"));
        }
        if self.fault == Fault::ReadOnly {
            return Err(denied(location));
        }
        if self.fault == Fault::RacedManifestUpdate
            && location.as_ref().contains("/entries/")
            && matches!(opts.mode, object_store::PutMode::Update(_))
        {
            let racer = self.race.lock().unwrap().take();
            if let Some(bytes) = racer {
                self.inner
                    .put_opts(location, PutPayload::from(bytes), PutOptions::default())
                    .await?;
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if self.fault == Fault::ReadOnly {
            return Err(denied(location));
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        if self.fault == Fault::SecondPart {
            return Ok(Box::new(FailingUpload {
                inner,
                parts: AtomicUsize::new(0),
            }));
        }
        Ok(inner)
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
        if self.fault == Fault::ReadOnly {
            return locations
                .map(|location| location.and_then(|path| Err(denied(&path))))
                .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if self.fault == Fault::ReadOnly {
            return Err(denied(to));
        }
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct FailingUpload {
    inner: Box<dyn MultipartUpload>,
    parts: AtomicUsize,
}

#[async_trait]
impl MultipartUpload for FailingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.parts.fetch_add(1, Ordering::SeqCst) == 1 {
            return Box::pin(async { Err(injected("second multipart part")) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

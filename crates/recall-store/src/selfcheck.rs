//! Single requests for a store self-check (`recall doctor`): does the root answer a listing,
//! can a scratch object under `probe/<random>/` be written, read, timed, deleted and uploaded
//! in parts, and what does the descriptor say. Each answers what the object store said, so
//! the caller can explain a failure; nothing here touches a cache entry.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};

use crate::error::StoreError;
use crate::layout::DESCRIPTOR;
use crate::store::Store;

/// One scratch object `probe/<random>/<name>` (docs/LAYOUT.md section 2), from
/// [`Store::scratch`]. Readers, eviction and GC ignore the prefix.
#[derive(Debug)]
pub struct Scratch<'a> {
    store: &'a Store,
    path: Path,
}

impl Store {
    /// One delimited LIST of the store root: whether the bucket (and root) answer.
    pub async fn list_root(&self) -> Result<(), StoreError> {
        let root = (!self.root.is_empty()).then(|| Path::from(self.root.as_str()));
        self.objects
            .list_with_delimiter(root.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::backend("list", &self.path(""), e))
    }

    /// A fresh scratch object named `name` under `probe/<random>/` (nothing is written yet).
    pub fn scratch(&self, name: &str) -> Scratch<'_> {
        Scratch {
            store: self,
            path: self.probe_path(name),
        }
    }

    /// The descriptor object's bytes as stored (`None` when there is none), for a check
    /// that reports what it says; [`Store::check_descriptor`] is the check itself.
    pub async fn read_descriptor_bytes(&self) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(DESCRIPTOR);
        match self.objects.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|e| StoreError::backend("get", &path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend("get", &path, e)),
        }
    }
}

impl Scratch<'_> {
    /// The object's full path in the bucket.
    pub fn location(&self) -> String {
        self.path.to_string()
    }

    /// Its bytes, or `None` when it does not exist.
    pub async fn get(&self) -> Result<Option<Bytes>, StoreError> {
        match self.store.objects.get(&self.path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|e| StoreError::backend("get", &self.path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend("get", &self.path, e)),
        }
    }

    /// Writes it with one PUT.
    pub async fn put(&self, bytes: Bytes) -> Result<(), StoreError> {
        self.store
            .objects
            .put(&self.path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::backend("put", &self.path, e))
    }

    /// Its Last-Modified time in milliseconds since the Unix epoch (one HEAD), or `None`
    /// when it does not exist.
    pub async fn modified_ms(&self) -> Result<Option<i64>, StoreError> {
        match self.store.objects.head(&self.path).await {
            Ok(meta) => Ok(Some(meta.last_modified.timestamp_millis())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::backend("head", &self.path, e)),
        }
    }

    /// Deletes it (absent is not an error on most stores).
    pub async fn delete(&self) -> Result<(), StoreError> {
        self.store
            .objects
            .delete(&self.path)
            .await
            .map_err(|e| StoreError::backend("delete", &self.path, e))
    }

    /// Writes it as a multipart upload of `parts`, then reads it back: the size read.
    pub async fn put_multipart(&self, parts: &[Bytes]) -> Result<u64, StoreError> {
        let failed = |operation, e| StoreError::backend(operation, &self.path, e);
        let objects = &self.store.objects;
        let mut upload = objects
            .put_multipart(&self.path)
            .await
            .map_err(|e| failed("put_multipart", e))?;
        for part in parts {
            upload
                .put_part(PutPayload::from(part.clone()))
                .await
                .map_err(|e| failed("put_part", e))?;
        }
        upload.complete().await.map_err(|e| failed("complete", e))?;
        let body = objects
            .get(&self.path)
            .await
            .map_err(|e| failed("get", e))?
            .bytes()
            .await
            .map_err(|e| failed("get", e))?;
        Ok(body.len() as u64)
    }
}

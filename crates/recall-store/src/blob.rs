//! Streaming blob transfer with BLAKE3 computed on the way: uploads check the digest before
//! completing, downloads check it before handing anything out.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use recall_key::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::StoreError;

/// Size of each read from a local file.
const READ_CHUNK: usize = 1 << 20;

/// How large uploads are cut into parts.
#[derive(Debug, Clone, Copy)]
pub struct UploadTuning {
    /// Objects up to this size go in one PUT; larger ones are multipart uploads.
    pub single_put_max: u64,
    /// Smallest part size of a multipart upload (S3 requires at least 5 MiB).
    pub part_size: usize,
    /// Parts in flight at once. Memory held is about `part_size × (parts_in_flight + 1)`.
    pub parts_in_flight: usize,
}

impl Default for UploadTuning {
    fn default() -> Self {
        UploadTuning {
            single_put_max: 8 << 20,
            part_size: 8 << 20,
            parts_in_flight: 4,
        }
    }
}

impl UploadTuning {
    /// The part size for an object of `size` bytes: at least `part_size`, and large enough
    /// that no upload needs more than 9,000 parts (S3 allows 10,000).
    fn part_size_for(&self, size: u64) -> usize {
        let needed = size.div_ceil(9_000);
        usize::try_from(needed).map_or(usize::MAX, |n| n.max(self.part_size))
    }
}

/// The plain BLAKE3 digest and size of a local file, read in bounded chunks.
pub(crate) async fn hash_file(path: &FsPath) -> Result<(Digest, u64), StoreError> {
    let owned = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, u64)> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
            size += n as u64;
        }
        Ok((hasher.finalize().into(), size))
    })
    .await
    .map_err(|e| StoreError::io(path, std::io::Error::other(e)))?;
    result.map_err(|e| StoreError::io(path, e))
}

/// Where an upload's bytes come from.
pub(crate) enum Source<'a> {
    /// Bytes in memory.
    Memory(&'a Bytes),
    /// A local file.
    File(&'a FsPath),
}

/// Uploads `source` to `location`, hashing while it streams. If the bytes sent do not have
/// `digest` and `size` (the file changed since it was hashed), the upload is aborted and
/// [`StoreError::OutputChanged`] returned: nothing appears at `location`.
pub(crate) async fn upload(
    objects: &Arc<dyn ObjectStore>,
    location: &Path,
    source: Source<'_>,
    digest: &Digest,
    size: u64,
    output: &str,
    tuning: &UploadTuning,
) -> Result<(), StoreError> {
    let changed = || StoreError::OutputChanged {
        name: output.to_string(),
    };
    if size <= tuning.single_put_max {
        let bytes = match source {
            Source::Memory(bytes) => bytes.clone(),
            Source::File(path) => Bytes::from(
                tokio::fs::read(path)
                    .await
                    .map_err(|e| StoreError::io(path, e))?,
            ),
        };
        if bytes.len() as u64 != size || Digest::of_content(&bytes) != *digest {
            return Err(changed());
        }
        objects
            .put(location, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| StoreError::backend("put", location, e))?;
        return Ok(());
    }

    match upload_multipart(objects, location, source, digest, size, tuning).await {
        Err(StoreError::Backend { .. }) if present_with_size(objects, location, size).await => {
            // A concurrent publisher of the same bytes completed this blob first. On Azure
            // that invalidates every other upload's uncommitted blocks, so ours failed; the
            // blob is there, written and digest-checked by its own writer.
            tracing::debug!(%location, "blob completed by a concurrent publisher");
            Ok(())
        }
        Err(StoreError::OutputChanged { .. }) => Err(changed()),
        other => other,
    }
}

/// Whether `location` exists with exactly `size` bytes.
async fn present_with_size(objects: &Arc<dyn ObjectStore>, location: &Path, size: u64) -> bool {
    matches!(objects.head(location).await, Ok(meta) if meta.size == size)
}

/// The multipart half of [`upload`]; reports `OutputChanged` with an empty name.
async fn upload_multipart(
    objects: &Arc<dyn ObjectStore>,
    location: &Path,
    source: Source<'_>,
    digest: &Digest,
    size: u64,
    tuning: &UploadTuning,
) -> Result<(), StoreError> {
    let changed = || StoreError::OutputChanged {
        name: String::new(),
    };
    let upload = objects
        .put_multipart(location)
        .await
        .map_err(|e| StoreError::backend("put_multipart", location, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, tuning.part_size_for(size));
    let mut hasher = blake3::Hasher::new();
    let mut sent = 0u64;
    let streamed: Result<(), StoreError> = async {
        match source {
            Source::Memory(bytes) => {
                for piece in bytes.chunks(READ_CHUNK) {
                    writer
                        .wait_for_capacity(tuning.parts_in_flight)
                        .await
                        .map_err(|e| StoreError::backend("put part", location, e))?;
                    hasher.update(piece);
                    writer.put(bytes.slice_ref(piece));
                    sent += piece.len() as u64;
                }
            }
            Source::File(path) => {
                let mut file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| StoreError::io(path, e))?;
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    let n = file
                        .read(&mut buf)
                        .await
                        .map_err(|e| StoreError::io(path, e))?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .wait_for_capacity(tuning.parts_in_flight)
                        .await
                        .map_err(|e| StoreError::backend("put part", location, e))?;
                    hasher.update(&buf[..n]);
                    writer.write(&buf[..n]);
                    sent += n as u64;
                    if sent > size {
                        break;
                    }
                }
            }
        }
        if sent != size || Digest::from(hasher.finalize()) != *digest {
            return Err(changed());
        }
        Ok(())
    }
    .await;
    match streamed {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| StoreError::backend("complete multipart", location, e))?;
            Ok(())
        }
        Err(err) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%location, error = %abort, "could not abort multipart upload");
            }
            Err(err)
        }
    }
}

/// What a download found.
pub(crate) enum Downloaded {
    /// The bytes have the expected digest and size.
    Verified,
    /// The object is absent.
    Missing,
    /// The object's bytes are not the expected ones; the reason says how. `intact` is true
    /// when the object's own bytes still hash to the expected digest (its name, for a blob):
    /// then only the size that was expected is wrong, and the object must not be deleted.
    Corrupt {
        /// What is wrong.
        reason: String,
        /// Whether the object's bytes, all of them, have the expected digest.
        intact: bool,
    },
}

/// Where a download goes.
pub(crate) enum Sink<'a> {
    /// Into memory.
    Memory(&'a mut BytesMut),
    /// Into a local file, through a temporary file beside it that is renamed only once the
    /// digest is verified.
    File(&'a FsPath),
}

/// Downloads `location` into `sink`, hashing while it streams. Nothing reaches the sink's
/// final place unless the digest and size match.
pub(crate) async fn download(
    objects: &Arc<dyn ObjectStore>,
    location: &Path,
    digest: &Digest,
    size: u64,
    sink: Sink<'_>,
) -> Result<Downloaded, StoreError> {
    let result = match objects.get(location).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(Downloaded::Missing),
        Err(e) => return Err(StoreError::backend("get", location, e)),
    };
    let mut stream = result.into_stream();
    let mut hasher = blake3::Hasher::new();
    let mut received = 0u64;
    match sink {
        Sink::Memory(buffer) => {
            buffer.clear();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| StoreError::backend("get", location, e))?;
                received += chunk.len() as u64;
                hasher.update(&chunk);
                if received > size {
                    buffer.clear();
                    return finish_longer(stream, hasher, size, digest, location).await;
                }
                buffer.extend_from_slice(&chunk);
            }
            let verdict = verdict(received, size, hasher.finalize().into(), digest);
            if !matches!(verdict, Downloaded::Verified) {
                buffer.clear();
            }
            Ok(verdict)
        }
        Sink::File(dest) => {
            let dir = dest.parent().unwrap_or(FsPath::new("."));
            let temp = tempfile::Builder::new()
                .prefix(".recall-fetch-")
                .tempfile_in(dir)
                .map_err(|e| StoreError::io(dir, e))?;
            let (std_file, temp_path) = temp.into_parts();
            let mut file = tokio::fs::File::from_std(std_file);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| StoreError::backend("get", location, e))?;
                received += chunk.len() as u64;
                hasher.update(&chunk);
                if received > size {
                    return finish_longer(stream, hasher, size, digest, location).await;
                }
                file.write_all(&chunk)
                    .await
                    .map_err(|e| StoreError::io(&temp_path, e))?;
            }
            file.flush()
                .await
                .map_err(|e| StoreError::io(&temp_path, e))?;
            drop(file);
            let verdict = verdict(received, size, hasher.finalize().into(), digest);
            if matches!(verdict, Downloaded::Verified) {
                let dest_owned: PathBuf = dest.to_path_buf();
                temp_path
                    .persist(&dest_owned)
                    .map_err(|e| StoreError::io(&dest_owned, e.error))?;
            }
            Ok(verdict)
        }
    }
}

/// The object turned out longer than `size`: hash the rest (keeping nothing) to tell an
/// intact object that a manifest describes with the wrong size from one whose bytes changed.
async fn finish_longer(
    mut stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    mut hasher: blake3::Hasher,
    size: u64,
    digest: &Digest,
    location: &Path,
) -> Result<Downloaded, StoreError> {
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| StoreError::backend("get", location, e))?;
        hasher.update(&chunk);
    }
    let intact = Digest::from(hasher.finalize()) == *digest;
    Ok(Downloaded::Corrupt {
        reason: format!("longer than the {size} bytes the manifest says"),
        intact,
    })
}

fn verdict(received: u64, size: u64, actual: Digest, expected: &Digest) -> Downloaded {
    let intact = actual == *expected;
    if received != size {
        Downloaded::Corrupt {
            reason: format!("{received} bytes, the manifest says {size}"),
            intact,
        }
    } else if !intact {
        Downloaded::Corrupt {
            reason: format!("BLAKE3 is {actual}, the manifest says {expected}"),
            intact,
        }
    } else {
        Downloaded::Verified
    }
}

/// A blob's bytes on their way out ([`Store::stream_blob`]): hashed as they go, and cut off
/// with [`StoreError::BlobMismatch`] before their end when they do not match the digest, so a
/// reader never receives a complete body that is wrong.
pub struct BlobStream {
    /// The blob's size in bytes, as the store reports it.
    pub size: u64,
    /// The bytes, in the order stored.
    pub chunks: futures::stream::BoxStream<'static, Result<Bytes, StoreError>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl crate::store::Store {
    /// Streams the blob `digest` of `tenant`, verifying it on the way (see [`BlobStream`]);
    /// `None` when there is no such blob.
    pub async fn stream_blob(
        &self,
        tenant: &crate::layout::Tenant,
        digest: &Digest,
    ) -> Result<Option<BlobStream>, StoreError> {
        let location = self.path(&tenant.blob(digest));
        let got = match self.objects.get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::backend("get", &location, e)),
        };
        let size = got.meta.size;
        let expected = *digest;
        let mut hasher = Some(blake3::Hasher::new());
        let chunks = got.into_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| StoreError::backend("get", &location, e))?;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
                if h.count() >= size {
                    let whole = h.count() == size;
                    let done = hasher.take().map(|h| Digest::from(h.finalize()));
                    if !whole || done != Some(expected) {
                        tracing::error!(path = %location, "stored blob does not match its digest");
                        return Err(StoreError::BlobMismatch {
                            path: location.to_string(),
                        });
                    }
                }
            }
            Ok(chunk)
        });
        Ok(Some(BlobStream {
            size,
            chunks: chunks.boxed(),
        }))
    }
}

//! The `file://` backend: object_store's `LocalFileSystem` plus compare-and-swap, owner-only
//! permissions and no symbolic links (docs/LAYOUT.md section 9.4).
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
//!
//! The lock is asked for without blocking, again and again, for at most [`LOCK_TIMEOUT`]
//! (then [`LockTimeout`]): no thread ever sleeps inside `flock`, so a lock held by another
//! process delays an operation but never hangs it, nor the runtime's shutdown on a signal.
//!
//! Directories the store creates are `0700` and the files it writes `0600` (the owner only).
//! Nothing is followed through a symbolic link: listings skip links and never descend into a
//! linked directory; an object path that passes through a linked directory does not exist
//! (reads miss, deletes do nothing, writes fail). A symbolic link, FIFO, socket or device at
//! an object's own path is never opened: it reads as an empty object (so it fails every
//! check, like any broken object) and is replaced or deleted like one, the link itself and
//! never its target.

use std::fmt;
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result, UploadPart,
};

/// File name of the lock file at the root of a `file://` store.
pub const LOCK_FILE: &str = ".recall-cas.lock";

/// Longest wait for the store-wide lock before an operation fails with [`LockTimeout`].
/// Shorter than recall's default storage timeout (30 s), so a lock held elsewhere shows up
/// as this error rather than as a timeout of the whole operation.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Mode of the directories a `file://` store creates.
const DIR_MODE: u32 = 0o700;
/// Mode of the files a `file://` store writes.
const FILE_MODE: u32 = 0o600;

/// The store-wide lock stayed held by someone else for the whole wait.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: the store lock is held by another process; gave up after {waited:?} \
     (see docs/LAYOUT.md section 9.4)"
)]
pub struct LockTimeout {
    /// The lock file.
    pub path: PathBuf,
    /// How long it was waited for.
    pub waited: Duration,
}

/// A local directory as an object store with working `PutMode::Update`.
#[derive(Debug, Clone)]
pub struct LocalCasStore {
    inner: Arc<LocalFileSystem>,
    root: Arc<PathBuf>,
    lock_path: Arc<PathBuf>,
    lock_timeout: Duration,
}

/// What is at an object's path, looked at without following any link.
enum Found {
    /// A regular file.
    File(Metadata),
    /// Something else at the object's own path: a symbolic link, FIFO, socket or device.
    Special(Metadata),
    /// Nothing (or a directory, or the path passes through a link or a file).
    Nothing,
}

impl LocalCasStore {
    /// Opens (creating if needed) the directory `root` as a store. A directory it creates is
    /// `0700`; an existing one keeps its mode.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match DirBuilder::new().mode(DIR_MODE).create(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && root.is_dir() => {}
            Err(e) => return Err(e),
        }
        let inner = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .with_automatic_cleanup(true);
        let root = std::fs::canonicalize(&root)?;
        Ok(LocalCasStore {
            inner: Arc::new(inner),
            lock_path: Arc::new(root.join(LOCK_FILE)),
            root: Arc::new(root),
            lock_timeout: LOCK_TIMEOUT,
        })
    }

    /// The same store with another longest wait for the store lock (default [`LOCK_TIMEOUT`]).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Takes the store-wide exclusive lock; it is released when the returned file is dropped.
    /// Polls without blocking a thread, for at most the lock timeout.
    async fn lock(&self) -> Result<File> {
        let file = open_lock_file(&self.lock_path).map_err(generic)?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(generic(e)),
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                return Err(generic(LockTimeout {
                    path: self.lock_path.to_path_buf(),
                    waited,
                }));
            }
            tokio::time::sleep(pause.min(self.lock_timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// The file-system path of `location` (below the root: object paths have no `..`).
    fn fs_path(&self, location: &Path) -> Result<PathBuf> {
        self.inner.path_to_filesystem(location)
    }

    /// What is at `location`, found with `lstat` on every component below the root.
    async fn find(&self, location: &Path) -> Result<(PathBuf, Found)> {
        let path = self.fs_path(location)?;
        let root = Arc::clone(&self.root);
        blocking(move || {
            let found = find_below(&root, &path).map_err(|e| io_error(&path, e))?;
            Ok((path, found))
        })
        .await
    }

    /// Checks that the parent of `location` passes through no link, and creates the missing
    /// directories with mode `0700`.
    async fn prepare_parent(&self, location: &Path) -> Result<PathBuf> {
        let path = self.fs_path(location)?;
        let root = Arc::clone(&self.root);
        blocking(move || {
            let parent = path.parent().unwrap_or(&root).to_path_buf();
            let relative = parent
                .strip_prefix(root.as_path())
                .unwrap_or(FsPath::new(""));
            let mut current = root.to_path_buf();
            for part in relative.components() {
                current.push(part);
                match std::fs::symlink_metadata(&current) {
                    Ok(m) if m.file_type().is_dir() => {}
                    Ok(_) => {
                        return Err(io_error(
                            &current,
                            std::io::Error::other(
                                "not a directory (a symbolic link or a file): recall does \
                                 not write through it",
                            ),
                        ));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        match DirBuilder::new().mode(DIR_MODE).create(&current) {
                            Ok(()) => {}
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                                // Created concurrently: check it like an existing one.
                                if !std::fs::symlink_metadata(&current)
                                    .map_err(|e| io_error(&current, e))?
                                    .file_type()
                                    .is_dir()
                                {
                                    return Err(io_error(
                                        &current,
                                        std::io::Error::other("not a directory"),
                                    ));
                                }
                            }
                            Err(e) => return Err(io_error(&current, e)),
                        }
                    }
                    Err(e) => return Err(io_error(&current, e)),
                }
            }
            Ok(path)
        })
        .await
    }

    /// Every object below `prefix` (or, with `delimiter`, directly in it, plus its
    /// subdirectories as common prefixes), sorted by path, never following a link.
    async fn walk(&self, prefix: Option<&Path>, delimiter: bool) -> Result<ListResult> {
        let prefix = prefix.cloned().unwrap_or_default();
        let root = Arc::clone(&self.root);
        blocking(move || {
            let mut listed = ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
                extensions: Default::default(),
            };
            let mut dir = root.to_path_buf();
            for part in prefix.parts() {
                dir.push(part.as_ref());
                match std::fs::symlink_metadata(&dir) {
                    Ok(m) if m.file_type().is_dir() => {}
                    Ok(_) => return Ok(listed),
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(listed),
                    Err(e) => return Err(io_error(&dir, e)),
                }
            }
            let mut pending = vec![(dir, prefix)];
            while let Some((dir, location)) = pending.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    // Removed while listing (automatic cleanup of empty directories).
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&dir, e))?;
                    let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    let child = location.clone().join(PathPart::from(name.as_str()));
                    // `file_type` and `metadata` of a directory entry do not follow links.
                    let kind = match entry.file_type() {
                        Ok(kind) => kind,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_error(&entry.path(), e)),
                    };
                    if kind.is_dir() {
                        if delimiter {
                            listed.common_prefixes.push(child);
                        } else {
                            pending.push((entry.path(), child));
                        }
                    } else if kind.is_file() && !is_staged_upload(&name) {
                        match entry.metadata() {
                            Ok(m) => listed.objects.push(object_meta(child, &m)),
                            Err(e) if e.kind() == ErrorKind::NotFound => {}
                            Err(e) => return Err(io_error(&entry.path(), e)),
                        }
                    } else if kind.is_symlink() {
                        tracing::warn!(path = %entry.path().display(),
                            "symbolic link inside a file:// store: skipped, never followed");
                    }
                }
            }
            // Sorted by path, as `LocalFileSystem` lists.
            listed.common_prefixes.sort();
            listed.objects.sort_by(|a, b| a.location.cmp(&b.location));
            Ok(listed)
        })
        .await
    }

    /// Sets an object just written to mode `0600`, without following a link.
    async fn restrict(&self, location: &Path) -> Result<()> {
        let path = self.fs_path(location)?;
        blocking(move || restrict_file(&path).map_err(|e| io_error(&path, e))).await
    }
}

/// Opens (creating with `0600`) the lock file without following a link or blocking on a
/// FIFO, refuses anything but a regular file, and narrows an existing one to `0600`.
fn open_lock_file(path: &FsPath) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let metadata = file.metadata()?;
    if !metadata.file_type().is_file() {
        return Err(std::io::Error::other(format!(
            "{}: the lock file is not a regular file",
            path.display()
        )));
    }
    if metadata.mode() & 0o077 != 0
        && let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
    {
        tracing::warn!(path = %path.display(), error = %e,
            "could not make the store lock file private (mode 0600)");
    }
    Ok(file)
}

/// `lstat` of every component of `path` below `root`: what an object path names, never
/// through a link.
fn find_below(root: &FsPath, path: &FsPath) -> std::io::Result<Found> {
    let Ok(relative) = path.strip_prefix(root) else {
        return Ok(Found::Nothing);
    };
    let parts: Vec<_> = relative.components().collect();
    let mut current = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let metadata = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Found::Nothing);
            }
            Err(e) => return Err(e),
        };
        let kind = metadata.file_type();
        if i + 1 < parts.len() {
            if !kind.is_dir() {
                return Ok(Found::Nothing);
            }
        } else if kind.is_file() {
            return Ok(Found::File(metadata));
        } else if kind.is_dir() {
            return Ok(Found::Nothing);
        } else {
            return Ok(Found::Special(metadata));
        }
    }
    Ok(Found::Nothing)
}

/// Opens `path` without following a link or blocking, and sets it to `0600`.
fn restrict_file(path: &FsPath) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let metadata = file.metadata()?;
    if metadata.file_type().is_file() && metadata.mode() & 0o7777 != FILE_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// A name `LocalFileSystem` uses for an upload in progress (`<name>#<digits>`).
fn is_staged_upload(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The e-tag `LocalFileSystem` gives a file: inode, modification time and size.
fn e_tag(metadata: &Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{mtime:x}-{:x}\"", metadata.ino(), metadata.len())
}

fn object_meta(location: Path, metadata: &Metadata) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: metadata
            .modified()
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_default(),
        size: metadata.len(),
        e_tag: Some(e_tag(metadata)),
        version: None,
    }
}

/// A link, FIFO, socket or device at an object's path, as the empty object it reads as.
fn special_object(location: Path, metadata: &Metadata) -> GetResult {
    let mut meta = object_meta(location, metadata);
    meta.size = 0;
    GetResult {
        payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
        meta,
        range: 0..0,
        attributes: Attributes::default(),
        extensions: Default::default(),
    }
}

fn not_found(path: &FsPath) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.display().to_string(),
        source: "no regular file at this path (links are not followed)".into(),
    }
}

fn io_error(path: &FsPath, e: std::io::Error) -> object_store::Error {
    generic(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalCasStore",
        source: Box::new(e),
    }
}

/// Runs file-system work on the blocking pool (it never waits on another process).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(generic)?
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
        self.prepare_parent(location).await?;
        let expected = match &opts.mode {
            // Atomic by itself (a hard link that fails when the object exists), and an object
            // that exists is all a swap can be waiting on.
            PutMode::Create => {
                let put = self.inner.put_opts(location, payload, opts).await?;
                self.restrict(location).await?;
                return Ok(put);
            }
            // Under the lock, so that it cannot land between a swap's check and its write
            // (the swap would then succeed and silently undo this write).
            PutMode::Overwrite => {
                let _guard = self.lock().await?;
                let put = self.inner.put_opts(location, payload, opts).await?;
                self.restrict(location).await?;
                return Ok(put);
            }
            PutMode::Update(expected) => expected.clone(),
        };
        let _guard = self.lock().await?;
        let current = match self.find(location).await? {
            (_, Found::File(m) | Found::Special(m)) => e_tag(&m),
            (path, Found::Nothing) => {
                return Err(object_store::Error::Precondition {
                    path: path.display().to_string(),
                    source: "the object does not exist".into(),
                });
            }
        };
        if Some(&current) != expected.e_tag.as_ref() {
            return Err(object_store::Error::Precondition {
                path: location.to_string(),
                source: format!("e-tag is {current:?}, expected {:?}", expected.e_tag).into(),
            });
        }
        let overwrite = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        let put = self.inner.put_opts(location, payload, overwrite).await?;
        self.restrict(location).await?;
        Ok(put)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.prepare_parent(location).await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(RestrictedUpload {
            inner,
            store: self.clone(),
            location: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        match self.find(location).await? {
            (_, Found::File(_)) => self.inner.get_opts(location, options).await,
            (_, Found::Special(m)) => Ok(special_object(location.clone(), &m)),
            (path, Found::Nothing) => Err(not_found(&path)),
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match self.find(location).await? {
            (_, Found::File(_)) => self.inner.get_ranges(location, ranges).await,
            (_, Found::Special(_)) => Ok(ranges.iter().map(|_| Bytes::new()).collect()),
            (path, Found::Nothing) => Err(not_found(&path)),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each delete holds the lock so it cannot interleave with a compare-and-swap. Only
        // what is at the object's own path is removed (a link itself, never its target);
        // a path through a linked directory names nothing.
        let this = self.clone();
        locations
            .and_then(move |location| {
                let this = this.clone();
                async move {
                    let _guard = this.lock().await?;
                    if let (_, Found::Nothing) = this.find(&location).await? {
                        return Ok(location);
                    }
                    match this.inner.delete(&location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(location),
                        Err(other) => Err(other),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move { this.walk(prefix.as_ref(), false).await })
            .map_ok(|listed| futures::stream::iter(listed.objects.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let offset = offset.clone();
        self.list(prefix)
            .try_filter(move |meta| futures::future::ready(meta.location > offset))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.walk(prefix, true).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if !matches!(self.find(from).await?, (_, Found::File(_))) {
            return Err(not_found(&self.fs_path(from)?));
        }
        self.prepare_parent(to).await?;
        self.inner.copy_opts(from, to, options).await?;
        self.restrict(to).await
    }
}

/// A multipart upload whose completed object is set to mode `0600`.
#[derive(Debug)]
struct RestrictedUpload {
    inner: Box<dyn MultipartUpload>,
    store: LocalCasStore,
    location: Path,
}

#[async_trait]
impl MultipartUpload for RestrictedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let put = self.inner.complete().await?;
        self.store.restrict(&self.location).await?;
        Ok(put)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
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

    /// A PUT of `body` at `path` with `mode`, which must succeed.
    async fn put_ok(
        store: &LocalCasStore,
        path: &Path,
        body: &'static str,
        mode: PutMode,
    ) -> PutResult {
        store
            .put_opts(path, body.into(), mode.into())
            .await
            .unwrap()
    }

    /// A PUT of `body` at `path` with `mode`, which must fail its precondition.
    async fn put_refused(store: &LocalCasStore, path: &Path, body: &'static str, mode: PutMode) {
        let err = store
            .put_opts(path, body.into(), mode.into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::Precondition { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn update_succeeds_only_with_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCasStore::new(dir.path()).unwrap();
        let path = Path::from("a/b");
        let first = put_ok(&store, &path, "one", PutMode::Create).await;
        let stale = UpdateVersion::from(first.clone());
        let second = put_ok(&store, &path, "two", PutMode::Update(first.into())).await;
        put_refused(&store, &path, "three", PutMode::Update(stale)).await;
        put_ok(&store, &path, "four", PutMode::Update(second.into())).await;
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&body[..], b"four");
        let unknown = UpdateVersion {
            e_tag: Some("x".into()),
            version: None,
        };
        put_refused(
            &store,
            &Path::from("a/missing"),
            "x",
            PutMode::Update(unknown),
        )
        .await;
    }
}

//! Hashing file and directory inputs by content (docs/KEY-SPEC.md section 6).

use std::path::{Path, PathBuf};

use crate::cbor::{self, Item};
use crate::derive::{CONTEXT_DIRECTORY, derive_digest};
use crate::digest::Digest;

/// A failure while hashing a path: the path concerned and why.
#[derive(Debug)]
pub struct PathError {
    /// The path that could not be hashed (possibly one found inside a directory).
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl PathError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        PathError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Size and plain BLAKE3 digest of a regular file (symbolic links followed). Large files are
/// memory-mapped and hashed on several threads.
pub fn hash_file(path: &Path) -> Result<(u64, Digest), PathError> {
    let meta = std::fs::metadata(path).map_err(|e| PathError::new(path, io_reason(&e)))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "is a directory, not a file (declare the input as dir)"
        } else {
            "is not a regular file"
        };
        return Err(PathError::new(path, kind));
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .map_err(|e| PathError::new(path, io_reason(&e)))?;
    Ok((hasher.count(), hasher.finalize().into()))
}

/// The tree digest of a directory: every regular file below it, links followed.
pub fn hash_dir(root: &Path) -> Result<Digest, PathError> {
    let meta = std::fs::metadata(root).map_err(|e| PathError::new(root, io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(PathError::new(
            root,
            "is not a directory (declare the input as file)",
        ));
    }
    let mut entries: Vec<(String, u64, Digest)> = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let file_type = entry.file_type();
        if file_type.is_dir() {
            // Not an entry, but its name must still be UTF-8 (an empty one too).
            relative_path(root, entry.path())?;
            continue;
        }
        if !file_type.is_file() {
            return Err(PathError::new(
                entry.path(),
                "is a special file (socket, FIFO or device); only regular files can be hashed",
            ));
        }
        let relative = relative_path(root, entry.path())?;
        let (size, digest) = hash_file(entry.path())?;
        entries.push((relative, size, digest));
    }
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let items = entries
        .into_iter()
        .map(|(path, size, digest)| {
            Item::Array(vec![
                Item::Text(path),
                Item::Int(size as i128),
                Item::bytes(digest.0),
            ])
        })
        .collect();
    let encoded =
        cbor::encode(&Item::Array(items)).map_err(|e| PathError::new(root, e.to_string()))?;
    Ok(derive_digest(&CONTEXT_DIRECTORY, &encoded))
}

/// The `/`-joined UTF-8 path of `path` below `root`.
fn relative_path(root: &Path, path: &Path) -> Result<String, PathError> {
    let relative = path
        .strip_prefix(root)
        .map_err(|_| PathError::new(path, "is not below the directory being hashed"))?;
    let mut parts = Vec::new();
    for component in relative.components() {
        let part = component
            .as_os_str()
            .to_str()
            .ok_or_else(|| PathError::new(path, "name is not valid UTF-8"))?;
        parts.push(part);
    }
    Ok(parts.join("/"))
}

fn walk_error(root: &Path, err: walkdir::Error) -> PathError {
    let path = err.path().unwrap_or(root).to_path_buf();
    let reason = if let Some(ancestor) = err.loop_ancestor() {
        format!("symbolic link loop back to {}", ancestor.display())
    } else if let Some(io) = err.io_error() {
        if io.kind() == std::io::ErrorKind::NotFound {
            "dangling symbolic link (its target does not exist)".to_string()
        } else {
            io_reason(io)
        }
    } else {
        err.to_string()
    };
    PathError { path, reason }
}

fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn file_digest_is_plain_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        fs::write(&path, b"hello\n").unwrap();
        let (size, digest) = hash_file(&path).unwrap();
        assert_eq!(size, 6);
        assert_eq!(digest, Digest::of_content(b"hello\n"));
    }

    #[test]
    fn dir_digest_ignores_location_and_empty_dirs_but_not_names() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for root in [a.path(), b.path()] {
            fs::create_dir_all(root.join("sub")).unwrap();
            fs::write(root.join("a.txt"), b"1").unwrap();
            fs::write(root.join("sub/b"), b"2").unwrap();
        }
        fs::create_dir(b.path().join("empty")).unwrap();
        assert_eq!(hash_dir(a.path()).unwrap(), hash_dir(b.path()).unwrap());
        fs::rename(b.path().join("sub/b"), b.path().join("sub/c")).unwrap();
        assert_ne!(hash_dir(a.path()).unwrap(), hash_dir(b.path()).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_bad_links_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let plain = tempfile::tempdir().unwrap();
        fs::write(root.path().join("x"), b"x").unwrap();
        fs::write(plain.path().join("x"), b"x").unwrap();
        fs::write(plain.path().join("y"), b"x").unwrap();
        std::os::unix::fs::symlink("x", root.path().join("y")).unwrap();
        assert_eq!(
            hash_dir(root.path()).unwrap(),
            hash_dir(plain.path()).unwrap()
        );

        std::os::unix::fs::symlink("missing", root.path().join("dangling")).unwrap();
        let err = hash_dir(root.path()).unwrap_err();
        assert!(err.reason.contains("dangling"), "{}", err.reason);
        fs::remove_file(root.path().join("dangling")).unwrap();

        std::os::unix::fs::symlink(".", root.path().join("loop")).unwrap();
        let err = hash_dir(root.path()).unwrap_err();
        assert!(err.reason.contains("loop"), "{}", err.reason);
    }

    /// Issue 12 item 17: a directory name that is not UTF-8 is an error even when the
    /// directory is empty and so contributes no entry.
    #[cfg(target_os = "linux")]
    #[test]
    fn non_utf8_directory_names_are_errors_even_when_empty() {
        use std::os::unix::ffi::OsStrExt;
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.txt"), b"1").unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
        fs::create_dir(root.path().join(bad)).unwrap();
        let err = hash_dir(root.path()).unwrap_err();
        assert!(err.reason.contains("not valid UTF-8"), "{}", err.reason);
        fs::remove_dir(root.path().join(bad)).unwrap();
        fs::create_dir_all(root.path().join("sub").join(bad)).unwrap();
        let err = hash_dir(root.path()).unwrap_err();
        assert!(err.reason.contains("not valid UTF-8"), "{}", err.reason);
    }

    #[test]
    fn wrong_kind_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            hash_file(dir.path())
                .unwrap_err()
                .reason
                .contains("directory")
        );
        let missing = dir.path().join("nope");
        assert_eq!(hash_file(&missing).unwrap_err().reason, "does not exist");
        fs::write(&missing, b"").unwrap();
        assert!(
            hash_dir(&missing)
                .unwrap_err()
                .reason
                .contains("not a directory")
        );
    }
}

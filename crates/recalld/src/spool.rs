//! The upload spool: a directory where publishes write their outputs before the store reads
//! them back. Whoever can write to it could swap a spooled upload before it is published,
//! so it must belong to recalld's user and be closed to everyone else.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why the spool directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// It could not be created or inspected.
    #[error("spool_dir {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// It exists but is not a directory (a symbolic link is refused too: whoever owns the
    /// link could point it elsewhere later).
    #[error("spool_dir {path}: not a directory (symbolic links are refused)")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Another user owns it.
    #[error(
        "spool_dir {path}: owned by uid {owner}, not by recalld's user (uid {me}); another user \
         could swap uploads there. Use a directory recalld's user owns (or remove this one)"
    )]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// recalld's effective uid.
        me: u32,
    },
    /// Its group or other users have access.
    #[error(
        "spool_dir {path}: mode {mode:04o} lets other users in; it must be closed to group and \
         others (chmod 700 {path})"
    )]
    Open {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Creates `dir` (and missing parents) with mode 0700 when it is missing, then checks that
/// it is a real directory owned by recalld's effective user with no group or other access.
pub fn prepare(dir: &Path) -> Result<(), SpoolError> {
    let io_error = |source| SpoolError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        // Left for the checks below to explain (e.g. a file or a link in the way).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_error)?;
    if !meta.file_type().is_dir() {
        return Err(SpoolError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(SpoolError::NotOwned {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SpoolError::Open {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_directory_is_created_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state/recall/spool");
        prepare(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // And an existing private one is fine.
        prepare(&dir).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = recall_testkit::dir_with_mode(base.path(), "spool", 0o777);
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("0777"),
            "{err}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("0750"), "{err}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let base = tempfile::tempdir().unwrap();
        let (dir, owner) = if me == 0 {
            // As root (CI): hand a private directory to `nobody`.
            let dir = base.path().join("spool");
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            (dir, 65534)
        } else {
            // Otherwise: a directory root owns.
            (PathBuf::from("/"), 0)
        };
        let err = prepare(&dir).unwrap_err();
        assert!(
            matches!(&err, SpoolError::NotOwned { owner: o, .. } if *o == owner),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&dir.display().to_string()) && text.contains(&format!("uid {owner}")),
            "{text}"
        );
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("real");
        prepare(&target).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = prepare(&link).unwrap_err();
        assert!(matches!(err, SpoolError::NotADirectory { .. }), "{err}");
    }
}

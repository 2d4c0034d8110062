//! Output paths of a run: parsing `--output`, archiving a `dir` output into one blob, and
//! putting fetched outputs in place atomically.
//!
//! A `file` output is stored as the file's bytes. A `dir` output is stored as one
//! deterministic tar archive (docs/LAYOUT.md section 4.3): every directory and regular file
//! below it (symbolic links followed), sorted by the bytes of the relative path, with mode
//! 0755 for directories and executable files and 0644 for the rest, mtime 0, uid and gid 0
//! and no owner names, so the same tree always gives the same archive and the same digest.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Component, Path, PathBuf};

use recall_key::ValueType;

use crate::error::CliError;

/// How an output is kept on local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A regular file.
    File,
    /// A directory tree.
    Dir,
}

impl OutputKind {
    /// The kind of a declared type; only `file` and `dir` outputs have a local path.
    pub fn of(ty: &ValueType) -> Option<OutputKind> {
        match ty {
            ValueType::File => Some(OutputKind::File),
            ValueType::Dir => Some(OutputKind::Dir),
            _ => None,
        }
    }
}

/// One `--output` flag: `NAME:TYPE`, `NAME:TYPE=PATH` or `NAME=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFlag {
    /// The output name.
    pub name: String,
    /// The declared type text, when given.
    pub ty: Option<String>,
    /// Where the output lives locally, when given.
    pub path: Option<PathBuf>,
}

impl OutputFlag {
    /// Parses the flag's text. Names contain neither `:` nor `=`, types contain no `=`.
    pub fn parse(text: &str) -> Result<OutputFlag, CliError> {
        let (left, path) = match text.split_once('=') {
            Some((left, path)) => (left, Some(path)),
            None => (text, None),
        };
        let (name, ty) = match left.split_once(':') {
            Some((name, ty)) => (name, Some(ty)),
            None => (left, None),
        };
        if name.is_empty() || (ty.is_none() && path.is_none()) || path == Some("") {
            return Err(CliError::Usage(format!(
                "--output {text:?}: expected NAME:TYPE=PATH (e.g. model:file=out/model.bin), \
                 NAME:TYPE or NAME=PATH"
            )));
        }
        Ok(OutputFlag {
            name: name.to_string(),
            ty: ty.map(str::to_string),
            path: path.map(PathBuf::from),
        })
    }
}

/// A declared output with its local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPath {
    /// The output name.
    pub name: String,
    /// File or directory.
    pub kind: OutputKind,
    /// Where it lives locally.
    pub path: PathBuf,
}

/// Removes whatever is at each declared output path before the command runs (as a restore
/// would replace it), so that what is published afterwards is only what the command wrote:
/// a stale file the command no longer writes, or stale files left in an output directory,
/// must not end up in an entry under a new key. A path that is, or contains, the working
/// directory is refused and nothing is removed.
pub fn clear_before_run(outputs: &[OutputPath]) -> Result<(), String> {
    let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
    for output in outputs {
        if let Ok(resolved) = std::fs::canonicalize(&output.path)
            && cwd.starts_with(&resolved)
        {
            return Err(format!(
                "output {:?} at {} is the working directory or contains it;                  recall will not remove it",
                output.name,
                output.path.display()
            ));
        }
    }
    for output in outputs {
        let removed = match std::fs::symlink_metadata(&output.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&output.path),
            // A file or a symbolic link: the link itself goes, never its target.
            Ok(_) => std::fs::remove_file(&output.path),
        };
        removed.map_err(|e| {
            format!(
                "could not remove the earlier output {:?} at {}: {e}",
                output.name,
                output.path.display()
            )
        })?;
    }
    Ok(())
}

/// Whether the output exists locally with the right kind, ready to publish.
pub fn check_produced(output: &OutputPath) -> Result<(), String> {
    match std::fs::metadata(&output.path) {
        Ok(meta) if output.kind == OutputKind::File && meta.is_file() => Ok(()),
        Ok(meta) if output.kind == OutputKind::Dir && meta.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "output {:?} at {} is not a {}",
            output.name,
            output.path.display(),
            match output.kind {
                OutputKind::File => "regular file",
                OutputKind::Dir => "directory",
            }
        )),
        Err(e) => Err(format!(
            "output {:?} was not produced at {}: {e}",
            output.name,
            output.path.display()
        )),
    }
}

/// Writes the deterministic archive of directory `dir` to `archive`.
pub fn pack_dir(dir: &Path, archive: &Path) -> Result<(), CliError> {
    let mut entries: Vec<(String, PathBuf, bool, bool)> = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true).min_depth(1) {
        let entry = entry.map_err(|e| CliError::local(dir, e))?;
        let relative = entry
            .path()
            .strip_prefix(dir)
            .map_err(|e| CliError::local(entry.path(), e))?;
        let mut parts = Vec::new();
        for part in relative.components() {
            match part {
                Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| {
                    CliError::local(entry.path(), "file name is not UTF-8; cannot archive it")
                })?),
                _ => return Err(CliError::local(entry.path(), "unexpected path component")),
            }
        }
        let file_type = entry.file_type();
        if !file_type.is_dir() && !file_type.is_file() {
            return Err(CliError::local(
                entry.path(),
                "is a special file (socket, FIFO or device); a dir output holds only files",
            ));
        }
        let executable = is_executable(entry.path());
        entries.push((
            parts.join("/"),
            entry.path().to_path_buf(),
            file_type.is_dir(),
            executable,
        ));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let out = File::create(archive).map_err(|e| CliError::local(archive, e))?;
    let mut builder = tar::Builder::new(BufWriter::new(out));
    builder.mode(tar::HeaderMode::Deterministic);
    for (relative, path, is_dir, executable) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{relative}/"), std::io::empty())
                .map_err(|e| CliError::local(&path, e))?;
        } else {
            let file = File::open(&path).map_err(|e| CliError::local(&path, e))?;
            let size = file
                .metadata()
                .map_err(|e| CliError::local(&path, e))?
                .len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(size);
            builder
                .append_data(&mut header, &relative, file)
                .map_err(|e| CliError::local(&path, e))?;
        }
    }
    let writer = builder
        .into_inner()
        .map_err(|e| CliError::local(archive, e))?;
    writer
        .into_inner()
        .map_err(|e| CliError::local(archive, e.error().to_string()))?
        .sync_all()
        .map_err(|e| CliError::local(archive, e))?;
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

/// The directory `path` lives in (`.` for a bare name), created if missing.
pub fn parent_dir(path: &Path) -> Result<PathBuf, CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| CliError::local(&parent, e))?;
    Ok(parent)
}

/// Moves the verified file `staged` to `target` atomically: a rename when both are on one file
/// system, else a copy to a temporary file beside `target` and a rename.
pub fn place_file(staged: &Path, target: &Path) -> Result<(), CliError> {
    let parent = parent_dir(target)?;
    if std::fs::rename(staged, target).is_ok() {
        return Ok(());
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".recall-")
        .tempfile_in(&parent)
        .map_err(|e| CliError::local(&parent, e))?;
    let mut source = File::open(staged).map_err(|e| CliError::local(staged, e))?;
    std::io::copy(&mut source, temp.as_file_mut()).map_err(|e| CliError::local(target, e))?;
    temp.persist(target)
        .map_err(|e| CliError::local(target, e.error))?;
    Ok(())
}

/// Unpacks the verified archive `staged` as directory `target`: into a temporary directory
/// beside it, then swapped in with renames (an existing `target` is replaced whole).
pub fn place_dir(staged: &Path, target: &Path) -> Result<(), CliError> {
    let parent = parent_dir(target)?;
    let temp = tempfile::Builder::new()
        .prefix(".recall-")
        .tempdir_in(&parent)
        .map_err(|e| CliError::local(&parent, e))?;
    let tree = temp.path().join("tree");
    std::fs::create_dir(&tree).map_err(|e| CliError::local(&tree, e))?;
    let file = File::open(staged).map_err(|e| CliError::local(staged, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    archive.set_preserve_mtime(false);
    let bad =
        |why: String| CliError::local(target, format!("stored dir output is unusable: {why}"));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let kind = entry.header().entry_type();
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory) {
            return Err(bad(format!("entry of type {kind:?}")));
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(format!("entry path {}", path.display())));
        }
        entry.unpack_in(&tree).map_err(|e| bad(e.to_string()))?;
    }
    if std::fs::symlink_metadata(target).is_ok() {
        let old = temp.path().join("old");
        std::fs::rename(target, &old).map_err(|e| CliError::local(target, e))?;
    }
    std::fs::rename(&tree, target).map_err(|e| CliError::local(target, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_flags_parse_all_three_forms() {
        let f = OutputFlag::parse("model:file=out/m.bin").unwrap();
        assert_eq!(
            (f.name.as_str(), f.ty.as_deref(), f.path.as_deref()),
            ("model", Some("file"), Some(Path::new("out/m.bin")))
        );
        let f = OutputFlag::parse("o0:int").unwrap();
        assert_eq!((f.ty.as_deref(), f.path), (Some("int"), None));
        let f = OutputFlag::parse("model=x=y").unwrap();
        assert_eq!((f.ty, f.path.as_deref()), (None, Some(Path::new("x=y"))));
        for bad in ["model", "=x", "model:file=", ":file"] {
            let err = OutputFlag::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn dir_archives_are_deterministic_and_round_trip() {
        let scratch = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let root = scratch.path().join(name);
            std::fs::create_dir_all(root.join("sub/empty")).unwrap();
            std::fs::write(root.join("b.txt"), "bee").unwrap();
            std::fs::write(root.join("sub/a.txt"), "a".repeat(5000)).unwrap();
            root
        };
        let (one, two) = (make("one"), make("two"));
        let (a1, a2) = (scratch.path().join("1.tar"), scratch.path().join("2.tar"));
        pack_dir(&one, &a1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        pack_dir(&two, &a2).unwrap();
        assert_eq!(std::fs::read(&a1).unwrap(), std::fs::read(&a2).unwrap());

        let target = scratch.path().join("restored/out");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("stale.txt"), "old").unwrap();
        place_dir(&a1, &target).unwrap();
        assert_eq!(std::fs::read(target.join("b.txt")).unwrap(), b"bee");
        assert_eq!(std::fs::read(target.join("sub/a.txt")).unwrap().len(), 5000);
        assert!(target.join("sub/empty").is_dir());
        assert!(!target.join("stale.txt").exists());
    }

    #[test]
    fn archives_with_escaping_paths_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let archive = scratch.path().join("evil.tar");
        let mut builder = tar::Builder::new(File::create(&archive).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..", so write the name bytes directly.
        header.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        builder.into_inner().unwrap();
        let target = scratch.path().join("out");
        let err = place_dir(&archive, &target).unwrap_err().to_string();
        assert!(err.contains("unusable"), "{err}");
        assert!(!scratch.path().join("evil").exists());
        assert!(!target.exists());
    }
}

//! The archive of a `dir` output (docs/LAYOUT.md section 4.3): one deterministic tar of
//! every directory and regular file below it (symbolic links followed while they stay
//! inside it), sorted by the bytes of the relative path, with mode 0755 for directories and
//! executable files and 0644 for the rest, mtime 0, uid and gid 0 and no owner names, so the
//! same tree always gives the same archive and the same digest. Unpacking accepts regular
//! files and directories with plain relative paths only.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::CliError;

/// Writes the deterministic archive of directory `dir` to `archive`.
pub fn pack_dir(dir: &Path, archive: &Path) -> Result<(), CliError> {
    // Links are followed only while they stay inside the output's own tree.
    let root = std::fs::canonicalize(dir).map_err(|e| CliError::local(dir, e))?;
    let mut entries: Vec<(String, PathBuf, bool, bool)> = Vec::new();
    for entry in walkdir::WalkDir::new(&root).follow_links(true).min_depth(1) {
        let entry = entry.map_err(|e| CliError::local(dir, e))?;
        if entry.path_is_symlink() {
            let real = std::fs::canonicalize(entry.path())
                .map_err(|e| CliError::local(entry.path(), e))?;
            if !real.starts_with(&root) {
                return Err(CliError::local(
                    entry.path(),
                    format!(
                        "is a symbolic link to {}, outside the dir output {}; a dir output \
                         holds only what is inside it (nothing published)",
                        real.display(),
                        dir.display()
                    ),
                ));
            }
        }
        let relative = entry
            .path()
            .strip_prefix(&root)
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
            append_exact(&mut builder, &mut header, &relative, file, size, &path)?;
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

/// Appends one file entry of exactly `size` bytes (its size when it was opened) read from
/// `reader`: a file that has grown or shrunk since is an error naming it, so that neither
/// extra bytes (which a reader would take for further entries) nor a short entry ever reach
/// the archive.
fn append_exact<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &str,
    mut reader: impl Read,
    size: u64,
    path: &Path,
) -> Result<(), CliError> {
    let changed = |now: &str| {
        CliError::local(
            path,
            format!(
                "changed while it was archived: {size} bytes when opened, {now}; \
                 nothing published"
            ),
        )
    };
    header.set_size(size);
    let mut exact = Exact {
        inner: &mut reader,
        left: size,
        short: false,
    };
    let appended = builder.append_data(header, name, &mut exact);
    if exact.short {
        return Err(changed("fewer when read"));
    }
    appended.map_err(|e| CliError::local(path, e))?;
    let mut more = [0u8; 1];
    match reader.read(&mut more) {
        Ok(0) => Ok(()),
        Ok(_) => Err(changed("more when read")),
        Err(e) => Err(CliError::local(path, e)),
    }
}

/// A reader of exactly `left` more bytes of `inner`: ends there, and fails (setting
/// `short`) when `inner` ends first.
struct Exact<'a, R> {
    inner: &'a mut R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.short = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file is shorter than when it was opened",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
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

/// Unpacks the verified archive `fetched` into the empty directory `tree`; errors name
/// `target`, the output's path.
pub fn unpack(fetched: &Path, tree: &Path, target: &Path) -> Result<(), CliError> {
    let file = File::open(fetched).map_err(|e| CliError::local(fetched, e))?;
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
        entry.unpack_in(tree).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{put_in_place, stage_dir};

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
        put_in_place(vec![stage_dir(&a1, &target).unwrap()]).unwrap();
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
        let err = stage_dir(&archive, &target).unwrap_err().to_string();
        assert!(err.contains("unusable"), "{err}");
        assert!(!scratch.path().join("evil").exists());
        assert!(!target.exists());
    }

    #[test]
    fn a_file_that_changes_size_while_packed_fails_the_archive() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("growing.log");
        std::fs::write(&path, vec![b'a'; 1000]).unwrap();
        for (grow, expect) in [(true, "more when read"), (false, "fewer when read")] {
            std::fs::write(&path, vec![b'a'; 1000]).unwrap();
            let file = File::open(&path).unwrap();
            let size = file.metadata().unwrap().len();
            // Between the stat and the read, the file grows (by a whole tar header's worth,
            // which would read back as an extra entry) or shrinks.
            if grow {
                let mut fake = tar::Header::new_gnu();
                fake.set_path("evil.txt").unwrap();
                fake.set_size(0);
                fake.set_cksum();
                let mut appender = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                std::io::Write::write_all(&mut appender, &[0u8; 24]).unwrap();
                std::io::Write::write_all(&mut appender, fake.as_bytes()).unwrap();
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(10)
                    .unwrap();
            }
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            let err = append_exact(&mut builder, &mut header, "growing.log", file, size, &path)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect) && err.contains("growing.log"), "{err}");
        }
        // Read exactly the stat'ed bytes: one entry, whatever follows in the reader.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        append_exact(&mut builder, &mut header, "x", &b"abc"[..], 3, &path).unwrap();
        let bytes = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        assert_eq!(archive.entries().unwrap().count(), 1);
    }

    #[test]
    fn symbolic_links_out_of_a_dir_output_are_not_followed() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("out");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "inside").unwrap();
        std::fs::write(scratch.path().join("secret"), "outside").unwrap();
        std::fs::create_dir(scratch.path().join("other")).unwrap();
        std::fs::write(scratch.path().join("other/secret"), "outside").unwrap();
        // A link within the tree is packed as the file it names.
        std::os::unix::fs::symlink("sub/a.txt", root.join("alias.txt")).unwrap();
        let archive = scratch.path().join("ok.tar");
        pack_dir(&root, &archive).unwrap();
        let target = scratch.path().join("restored");
        put_in_place(vec![stage_dir(&archive, &target).unwrap()]).unwrap();
        assert_eq!(std::fs::read(target.join("alias.txt")).unwrap(), b"inside");
        // A link out of the tree fails the archive (one to an ancestor is also a loop).
        for (name, to, why) in [
            ("leak", "../secret", "outside the dir output"),
            ("elsewhere", "../other", "outside the dir output"),
            ("up", "..", "loop"),
        ] {
            let link = root.join(name);
            std::os::unix::fs::symlink(to, &link).unwrap();
            let err = pack_dir(&root, &archive).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(name), "{err}");
            std::fs::remove_file(&link).unwrap();
        }
    }
}

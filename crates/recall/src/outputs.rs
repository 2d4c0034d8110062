//! Output paths of a run: parsing `--output`, guarding paths that must not be replaced, and
//! putting fetched outputs in place atomically. A `file` output is stored as the file's
//! bytes, a `dir` output as one archive ([`crate::archive`]).

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use recall_key::ValueType;

use crate::archive;
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

/// The paths a run must never remove or replace through an output path.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// The job file's directory (`--job FILE`).
    pub job_dir: Option<PathBuf>,
    /// The root of a `file://` store.
    pub store_root: Option<PathBuf>,
    /// The run's `file` and `dir` inputs, and the command's script.
    pub inputs: Vec<PathBuf>,
}

/// The root directory of a `file://` store URL, which no output path may replace; `None`
/// for other stores and for a URL that does not parse.
pub fn file_store_root(url: &str) -> Option<PathBuf> {
    url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
}

/// Checks every output path against what must never be removed or replaced, before
/// anything is: the working directory and its ancestors, the job file's directory and its
/// ancestors, a `file://` store's root with everything in it or above it, the run's inputs
/// (and the command's script) with everything in or above them, and an existing directory
/// where a `file` output is declared. Paths are compared after resolving `.`, `..` and
/// symbolic links in every component but the output's last one (an output that is a link
/// is replaced as the link, never through it). Returns the outputs with those resolved,
/// absolute paths, which every later step uses; the first refused output is an error
/// naming it, its path and the reason.
pub fn guard(outputs: &[OutputPath], protected: &Protected) -> Result<Vec<OutputPath>, CliError> {
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CliError::local(Path::new("."), e))?;
    let resolve_all = |path: &Path| {
        let mut forms = Vec::new();
        for follow in [true, false] {
            if let Ok(form) = resolve(&cwd, path, follow)
                && !forms.contains(&form)
            {
                forms.push(form);
            }
        }
        forms
    };
    let job_dir = protected.job_dir.as_deref().map(resolve_all);
    let store = protected.store_root.as_deref().map(resolve_all);
    let inputs: Vec<(&PathBuf, Vec<PathBuf>)> = protected
        .inputs
        .iter()
        .map(|p| (p, resolve_all(p)))
        .collect();
    let mut checked = Vec::with_capacity(outputs.len());
    for output in outputs {
        let refuse = |why: String| {
            CliError::Usage(format!(
                "output {:?} (path {}) {why}; recall removes and replaces an output's path \
                 whole, so it refuses this one: choose a path of its own",
                output.name,
                output.path.display()
            ))
        };
        let path = resolve(&cwd, &output.path, false).map_err(|e| refuse(e.to_string()))?;
        if cwd.starts_with(&path) {
            return Err(refuse(format!(
                "is the working directory ({}) or contains it",
                cwd.display()
            )));
        }
        if let Some(dir) = job_dir.iter().flatten().find(|d| d.starts_with(&path)) {
            return Err(refuse(format!(
                "is the job file's directory ({}) or contains it",
                dir.display()
            )));
        }
        if let Some(root) = store
            .iter()
            .flatten()
            .find(|s| s.starts_with(&path) || path.starts_with(s))
        {
            return Err(refuse(format!(
                "is, contains or lies inside the store ({})",
                root.display()
            )));
        }
        for (input, forms) in &inputs {
            if forms
                .iter()
                .any(|i| i.starts_with(&path) || path.starts_with(i))
            {
                return Err(refuse(format!(
                    "is, contains or lies inside {}, an input of this run (or its script)",
                    input.display()
                )));
            }
        }
        if output.kind == OutputKind::File
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
        {
            return Err(refuse(
                "is declared a file but is an existing directory".to_string(),
            ));
        }
        checked.push(OutputPath {
            name: output.name.clone(),
            kind: output.kind,
            path,
        });
    }
    Ok(checked)
}

/// `path` made absolute against `cwd`, with `.` and `..` applied and symbolic links resolved
/// in every existing component (the last one only when `follow_last`). What does not exist
/// yet is appended as written.
fn resolve(cwd: &Path, path: &Path, follow_last: bool) -> std::io::Result<PathBuf> {
    let parts: Vec<Component> = path.components().collect();
    let mut resolved = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        cwd.to_path_buf()
    };
    // Once a component is missing, nothing below it exists and `..` is lexical.
    let mut missing = false;
    for (i, part) in parts.iter().enumerate() {
        match part {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                let candidate = resolved.join(name);
                let last = i + 1 == parts.len();
                resolved = if missing || (last && !follow_last) {
                    candidate
                } else {
                    match std::fs::canonicalize(&candidate) {
                        Ok(real) => real,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            // A dangling link is itself something that exists.
                            missing = std::fs::symlink_metadata(&candidate).is_err();
                            candidate
                        }
                        Err(e) => return Err(e),
                    }
                };
            }
        }
    }
    Ok(resolved)
}

/// The script a command runs, if it names an existing file: the first word, or the second
/// when the first is an interpreter (`sh`, `bash`, `zsh`, `python`, `python3`, `perl`, `ruby`,
/// `node`, `Rscript`) and the second is not an option. Guarded like an input.
pub fn script_of(command: &[String]) -> Option<PathBuf> {
    const INTERPRETERS: &[&str] = &[
        "sh", "bash", "zsh", "dash", "python", "python3", "perl", "ruby", "node", "Rscript",
    ];
    let first = command.first()?;
    let name = Path::new(first).file_name()?.to_str()?;
    let word = if INTERPRETERS.contains(&name) {
        command.get(1).filter(|w| !w.starts_with('-'))?
    } else {
        first
    };
    let path = PathBuf::from(word);
    std::fs::metadata(&path)
        .is_ok_and(|m| m.is_file())
        .then_some(path)
}

/// Removes whatever is at each declared output path before the command runs (as a restore
/// would replace it), so that what is published afterwards is only what the command wrote:
/// a stale file the command no longer writes, or stale files left in an output directory,
/// must not end up in an entry under a new key. The paths must have passed [`guard`].
pub fn clear_before_run(outputs: &[OutputPath]) -> Result<(), String> {
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

/// The directory `path` lives in (`.` for a bare name), created if missing.
pub fn parent_dir(path: &Path) -> Result<PathBuf, CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| CliError::local(&parent, e))?;
    Ok(parent)
}

/// One verified output waiting beside its target: a temporary directory in the target's
/// directory holding `new` (the file or tree to put in place). Dropping it removes it.
#[derive(Debug)]
pub struct Staged {
    temp: tempfile::TempDir,
    target: PathBuf,
}

impl Staged {
    /// A temporary directory beside `target` (whose directory is created if missing).
    fn beside(target: &Path) -> Result<Staged, CliError> {
        let parent = parent_dir(target)?;
        let temp = tempfile::Builder::new()
            .prefix(".recall-")
            .tempdir_in(&parent)
            .map_err(|e| CliError::local(&parent, e))?;
        Ok(Staged {
            temp,
            target: target.to_path_buf(),
        })
    }

    fn new_path(&self) -> PathBuf {
        self.temp.path().join("new")
    }

    fn old_path(&self) -> PathBuf {
        self.temp.path().join("old")
    }
}

/// Stages the verified file `fetched` beside `target`, with the mode a newly created file
/// gets (0666 less the umask), whichever way it was fetched.
pub fn stage_file(fetched: &Path, target: &Path) -> Result<Staged, CliError> {
    let staged = Staged::beside(target)?;
    let new = staged.new_path();
    // Created the ordinary way, so its mode is what the umask makes of 0666.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&new)
        .map_err(|e| CliError::local(&new, e))?;
    let mode = file
        .metadata()
        .map_err(|e| CliError::local(&new, e))?
        .permissions();
    if std::fs::rename(fetched, &new).is_ok() {
        std::fs::set_permissions(&new, mode).map_err(|e| CliError::local(&new, e))?;
    } else {
        // Another file system: copy into the file just created.
        let mut source = File::open(fetched).map_err(|e| CliError::local(fetched, e))?;
        std::io::copy(&mut source, &mut file).map_err(|e| CliError::local(&new, e))?;
    }
    Ok(staged)
}

/// Stages the verified archive `fetched` as a directory tree beside `target`.
pub fn stage_dir(fetched: &Path, target: &Path) -> Result<Staged, CliError> {
    let staged = Staged::beside(target)?;
    let tree = staged.new_path();
    std::fs::create_dir(&tree).map_err(|e| CliError::local(&tree, e))?;
    archive::unpack(fetched, &tree, target)?;
    Ok(staged)
}

/// Renames every staged output into place, all or nothing: whatever was at a target is
/// first moved aside, and when any rename fails the ones already done are undone, so every
/// target is left as it was. What was replaced goes when the staged outputs are dropped.
pub fn put_in_place(staged: Vec<Staged>) -> Result<(), CliError> {
    // For each output placed so far: whether an old one was moved aside.
    let mut done: Vec<bool> = Vec::with_capacity(staged.len());
    let mut failure = None;
    for s in &staged {
        let had_old = std::fs::symlink_metadata(&s.target).is_ok();
        if had_old && let Err(e) = std::fs::rename(&s.target, s.old_path()) {
            failure = Some(CliError::local(&s.target, e));
            break;
        }
        if let Err(e) = std::fs::rename(s.new_path(), &s.target) {
            if had_old {
                let _ = std::fs::rename(s.old_path(), &s.target);
            }
            failure = Some(CliError::local(&s.target, e));
            break;
        }
        done.push(had_old);
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    for (s, had_old) in staged.iter().zip(done).rev() {
        // Back where it came from; the staged directory then removes it.
        let _ = std::fs::rename(&s.target, s.new_path());
        if had_old {
            let _ = std::fs::rename(s.old_path(), &s.target);
        }
    }
    Err(failure)
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

    fn output(name: &str, kind: OutputKind, path: &Path) -> OutputPath {
        OutputPath {
            name: name.into(),
            kind,
            path: path.to_path_buf(),
        }
    }

    #[test]
    fn guard_refuses_protected_paths_before_anything_is_removed() {
        let scratch = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(scratch.path()).unwrap();
        let job = base.join("jobs/a");
        let store = base.join("store");
        let inputs = base.join("inputs");
        for dir in [&job, &store.join("tenants"), &inputs.join("sub")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(inputs.join("sub/data.csv"), "x").unwrap();
        std::os::unix::fs::symlink(&inputs, base.join("link")).unwrap();
        let protected = Protected {
            job_dir: Some(job.clone()),
            store_root: Some(store.clone()),
            inputs: vec![inputs.join("sub/data.csv")],
        };
        let cwd = std::env::current_dir().unwrap();
        let refused = [
            (cwd.clone(), OutputKind::Dir, "working directory"),
            (cwd.join(".."), OutputKind::Dir, "working directory"),
            (job.clone(), OutputKind::Dir, "job file's directory"),
            (job.join("."), OutputKind::Dir, "job file's directory"),
            (job.join(".."), OutputKind::Dir, "job file's directory"),
            (
                job.join("../b/../.."),
                OutputKind::Dir,
                "job file's directory",
            ),
            (store.clone(), OutputKind::Dir, "the store"),
            (store.join("tenants/x"), OutputKind::File, "the store"),
            (base.clone(), OutputKind::Dir, "job file's directory"),
            (inputs.join("sub/data.csv"), OutputKind::File, "an input"),
            (inputs.join("sub"), OutputKind::Dir, "an input"),
            (base.join("link/sub/"), OutputKind::Dir, "an input"),
            (
                base.join("link/sub/data.csv/more"),
                OutputKind::Dir,
                "an input",
            ),
            (inputs.clone(), OutputKind::File, "an input"),
            (
                job.join("missing/../.."),
                OutputKind::Dir,
                "job file's directory",
            ),
        ];
        for (path, kind, why) in refused {
            let err = guard(&[output("o", kind, &path)], &protected)
                .map(|_| ())
                .unwrap_err();
            let text = err.to_string();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE, "{text}");
            assert!(
                text.contains(why) && text.contains("output \"o\""),
                "{path:?}: {text}"
            );
        }
        // A file output where a directory exists, unrelated to anything protected.
        std::fs::create_dir_all(base.join("out/tree")).unwrap();
        let err = guard(
            &[output("m", OutputKind::File, &base.join("out"))],
            &Protected::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("existing directory"), "{err}");
        // What is allowed comes back resolved, the last component not followed.
        std::os::unix::fs::symlink(&inputs, base.join("out/alias")).unwrap();
        let allowed = guard(
            &[
                output("d", OutputKind::Dir, &base.join("out/tree/../new/")),
                output("l", OutputKind::Dir, &base.join("link/../out/alias")),
            ],
            &protected,
        );
        let paths: Vec<PathBuf> = allowed.unwrap().into_iter().map(|o| o.path).collect();
        assert_eq!(paths, [base.join("out/new"), base.join("out/alias")]);
    }

    #[test]
    fn scripts_are_found_after_an_interpreter() {
        let scratch = tempfile::tempdir().unwrap();
        let script = scratch.path().join("job.sh");
        std::fs::write(&script, "true").unwrap();
        let text = script.display().to_string();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(script_of(&words(&["sh", &text])), Some(script.clone()));
        assert_eq!(
            script_of(&words(&["/usr/bin/python3", &text, "x"])),
            Some(script.clone())
        );
        assert_eq!(script_of(&words(&[&text, "arg"])), Some(script.clone()));
        assert_eq!(script_of(&words(&["sh", "-c", &text])), None);
        assert_eq!(script_of(&words(&["definitely-not-a-file-here"])), None);
    }

    #[test]
    fn a_failed_placement_leaves_every_target_as_it_was() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = tempfile::tempdir().unwrap();
        let fetched = |name: &str, text: &str| {
            let path = scratch.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        let (a, b) = (scratch.path().join("a.txt"), scratch.path().join("b.txt"));
        std::fs::write(&a, "old a").unwrap();
        std::fs::write(&b, "old b").unwrap();
        let first = stage_file(&fetched("fa", "new a"), &a).unwrap();
        let second = stage_file(&fetched("fb", "new b"), &b).unwrap();
        // The second output's staged file goes missing: its rename fails.
        std::fs::remove_file(second.new_path()).unwrap();
        put_in_place(vec![first, second]).unwrap_err();
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(std::fs::read(&b).unwrap(), b"old b");
        let names: Vec<_> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".recall-"))
            .collect();
        assert!(names.is_empty(), "{names:?}");

        // Placed: the new bytes, with the mode of a newly created file (not the 0600 the
        // fetched file had).
        let fresh = scratch.path().join("fresh");
        File::create(&fresh).unwrap();
        let fresh_mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        let first = stage_file(&fetched("fa", "new a"), &a).unwrap();
        let second = stage_file(&fetched("fb", "new b"), &b).unwrap();
        put_in_place(vec![first, second]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        for path in [&a, &b] {
            assert_eq!(
                std::fs::metadata(path).unwrap().permissions().mode(),
                fresh_mode
            );
        }
    }
}

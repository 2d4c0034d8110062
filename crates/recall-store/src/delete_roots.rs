//! Deleting single objects outside the store, under prefixes an operator allowed: Flyte 2's
//! `delete_blob` (docs/LAYOUT.md section 13). Each root is a URL prefix ending in `/`
//! (`s3://bucket/prefix/`, `gs://…/`, `az://…/`, `file:///dir/`), opened like a store URL
//! (docs/LAYOUT.md section 7: the same schemes, the same credentials from the environment)
//! when it is first needed. A URI is deleted only when it starts with one root, names one
//! object below it (no empty, `.` or `..` segment, no query or fragment) and the root does
//! not overlap the store's own root.

use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::OnceLock;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use url::Url;

use crate::backend::{Backend, open_url};
use crate::error::StoreError;

/// The prefixes under which objects may be deleted; empty allows nothing.
#[derive(Debug, Default)]
pub struct DeleteRoots {
    roots: Vec<Root>,
}

/// One allowed prefix.
#[derive(Debug)]
struct Root {
    /// The prefix as configured (ends in `/`).
    url: String,
    /// For a `file://` root, its directory.
    dir: Option<PathBuf>,
    /// The opened backend, once something was deleted under the root.
    backend: OnceLock<Backend>,
}

/// A delete root that cannot be used; `Display` names the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delete root {root:?}: {problem}")]
pub struct DeleteRootError {
    /// The root as configured.
    pub root: String,
    /// What is wrong with it.
    pub problem: RootProblem,
}

/// What is wrong with a delete root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootProblem {
    /// It does not parse as a URL.
    #[error("not a URL: {0}")]
    NotUrl(String),
    /// Its scheme is not one of an object store's.
    #[error("scheme {0:?} cannot be a delete root: expected file, s3, gs or az")]
    Scheme(String),
    /// It does not end in `/`.
    #[error(
        "must end in \"/\" (a prefix of whole path segments, so that s3://b/out/ does not \
         also cover s3://b/outer/)"
    )]
    NoTrailingSlash,
    /// A cloud root without a bucket or container.
    #[error("names no bucket or container")]
    NoBucket,
    /// A `file://` root with a host.
    #[error("a file URL has no host: write file:///absolute/path/")]
    FileHost,
    /// A `file:///` root: every file on the machine.
    #[error("covers the whole file system: name a directory")]
    WholeFileSystem,
    /// It carries a query (`?`) or a fragment (`#`).
    #[error("has a query or fragment")]
    QueryOrFragment,
    /// A path segment that is empty, `.` or `..` (also percent-encoded).
    #[error("path segment {0:?} is not allowed (no empty, \".\" or \"..\" segments)")]
    BadSegment(String),
    /// The root and the store's own root contain one another.
    #[error(
        "overlaps recalld's own store {store:?}: objects of the store are removed only by \
         eviction and GC"
    )]
    OverlapsStore {
        /// The store URL.
        store: String,
    },
}

/// Why a URI was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteUriError {
    /// No delete root is configured.
    #[error("{uri:?} was not deleted: no delete root is configured")]
    NoRoots {
        /// The URI.
        uri: String,
    },
    /// The URI starts with none of the roots.
    #[error("{uri:?} lies under no delete root ({roots})")]
    OutsideRoots {
        /// The URI.
        uri: String,
        /// The configured roots, comma-separated.
        roots: String,
    },
    /// The URI starts with a root but does not name one object below it.
    #[error("{uri:?} under delete root {root:?}: {reason}")]
    BadPath {
        /// The URI.
        uri: String,
        /// The root it starts with.
        root: String,
        /// What is wrong with the rest of it.
        reason: String,
    },
    /// The root's store could not be opened or the delete failed.
    #[error("deleting {uri:?} under delete root {root:?}: {source}")]
    Failed {
        /// The URI.
        uri: String,
        /// The root it lies under.
        root: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
}

impl DeleteRoots {
    /// Checks `roots` (see [`RootProblem`]) against the store at `store_url`; nothing is
    /// opened or created yet. A store URL that does not parse is not compared (opening the
    /// store reports it).
    pub fn new(roots: &[String], store_url: &str) -> Result<DeleteRoots, DeleteRootError> {
        let roots = roots
            .iter()
            .map(|root| {
                check_root(root, store_url).map_err(|problem| DeleteRootError {
                    root: root.clone(),
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DeleteRoots { roots })
    }

    /// Whether no root is configured (nothing may be deleted).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The roots as configured.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|r| r.url.as_str())
    }

    /// Deletes the object `uri` names when it lies under a root, and answers that root. An
    /// object that is already gone is not an error.
    pub async fn delete(&self, uri: &str) -> Result<String, DeleteUriError> {
        let (root, relative) = self.locate(uri)?;
        let failed = |source| DeleteUriError::Failed {
            uri: uri.to_string(),
            root: root.url.clone(),
            source: Box::new(source),
        };
        if let Some(dir) = &root.dir
            && !dir.is_dir()
        {
            // Opening a file:// store would create the directory; nothing is in it anyway.
            return Ok(root.url.clone());
        }
        let backend = match root.backend.get() {
            Some(backend) => backend,
            None => {
                let opened = open_url(&root.url).map_err(failed)?;
                root.backend.get_or_init(|| opened)
            }
        };
        let mut path = Path::parse(&backend.root).map_err(|e| {
            failed(StoreError::InvalidUrl {
                url: root.url.clone(),
                reason: e.to_string(),
            })
        })?;
        path.extend(relative.parts());
        match backend.objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(root.url.clone()),
            Err(e) => Err(failed(StoreError::backend("delete", &path, e))),
        }
    }

    /// The root `uri` lies under and the object path below it.
    fn locate(&self, uri: &str) -> Result<(&Root, Path), DeleteUriError> {
        if self.roots.is_empty() {
            return Err(DeleteUriError::NoRoots {
                uri: uri.to_string(),
            });
        }
        let Some((root, rest)) = self
            .roots
            .iter()
            .find_map(|root| uri.strip_prefix(root.url.as_str()).map(|rest| (root, rest)))
        else {
            return Err(DeleteUriError::OutsideRoots {
                uri: uri.to_string(),
                roots: self.roots().collect::<Vec<_>>().join(", "),
            });
        };
        let bad = |reason: &str| DeleteUriError::BadPath {
            uri: uri.to_string(),
            root: root.url.clone(),
            reason: reason.to_string(),
        };
        if rest.is_empty() || rest.ends_with('/') {
            return Err(bad("names a prefix, not an object"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("has a query or fragment"));
        }
        if rest.split('/').any(str::is_empty) {
            return Err(bad("has an empty segment"));
        }
        if rest.split('/').any(is_dot_segment) {
            return Err(bad("has a \".\" or \"..\" segment"));
        }
        // A file URL is percent-encoded; a cloud URI is the object key as written.
        let path = if root.dir.is_some() {
            Path::from_url_path(rest)
        } else {
            Path::parse(rest)
        };
        let path = path.map_err(|e| bad(&e.to_string()))?;
        Ok((root, path))
    }
}

/// Checks one root, and gives it ready to use.
fn check_root(root: &str, store_url: &str) -> Result<Root, RootProblem> {
    let url = Url::parse(root).map_err(|e| RootProblem::NotUrl(e.to_string()))?;
    let scheme = url.scheme();
    if !matches!(scheme, "file" | "s3" | "gs" | "az") {
        return Err(RootProblem::Scheme(scheme.to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(RootProblem::QueryOrFragment);
    }
    if !root.ends_with('/') {
        return Err(RootProblem::NoTrailingSlash);
    }
    // The segments as written (the parsed URL has `.` and `..` resolved already).
    let Some(after_scheme) = root.split_once("://").map(|(_, rest)| rest) else {
        return Err(RootProblem::NotUrl("expected SCHEME://".into()));
    };
    let written = after_scheme.split_once('/').map_or("", |(_, path)| path);
    if !written.is_empty() {
        let trimmed = written.strip_suffix('/').unwrap_or(written);
        if let Some(bad) = trimmed
            .split('/')
            .find(|s| s.is_empty() || is_dot_segment(s))
        {
            return Err(RootProblem::BadSegment(bad.to_string()));
        }
    }
    let dir = if scheme == "file" {
        if url.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(RootProblem::FileHost);
        }
        let dir = url
            .to_file_path()
            .map_err(|()| RootProblem::NotUrl("not an absolute local path".into()))?;
        if dir.parent().is_none() {
            return Err(RootProblem::WholeFileSystem);
        }
        Some(dir)
    } else {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(RootProblem::NoBucket);
        }
        None
    };
    if overlaps(&url, dir.as_deref(), store_url) {
        return Err(RootProblem::OverlapsStore {
            store: store_url.to_string(),
        });
    }
    Ok(Root {
        url: root.to_string(),
        dir,
        backend: OnceLock::new(),
    })
}

/// Whether the root and the store's root contain one another.
fn overlaps(root: &Url, dir: Option<&FsPath>, store_url: &str) -> bool {
    let Ok(store) = Url::parse(store_url) else {
        return false;
    };
    if store.scheme() != root.scheme() {
        return false;
    }
    if let Some(dir) = dir {
        let Ok(store_dir) = store.to_file_path() else {
            return false;
        };
        let nested = |a: &FsPath, b: &FsPath| a.starts_with(b) || b.starts_with(a);
        let (dir, store_dir) = (lexical(dir), lexical(&store_dir));
        if nested(&dir, &store_dir) {
            return true;
        }
        // Through symbolic links too, where both exist (or their nearest existing parents).
        return nested(&resolved(&dir), &resolved(&store_dir));
    }
    if store.host_str() != root.host_str() {
        return false;
    }
    let parts = |url: &Url| -> Vec<String> {
        url.path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (parts(root), parts(&store));
    a.starts_with(&b) || b.starts_with(&a)
}

/// `path` without `.` components (a parsed file URL has no `..`).
fn lexical(path: &FsPath) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `path` with its longest existing ancestor resolved through symbolic links.
fn resolved(path: &FsPath) -> PathBuf {
    let mut missing = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return missing.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Whether a path segment is `.` or `..`, also written with `%2e` (as URL parsers read it).
fn is_dot_segment(segment: &str) -> bool {
    let plain = segment.to_ascii_lowercase().replace("%2e", ".");
    plain == "." || plain == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(list: &[&str], store: &str) -> Result<DeleteRoots, DeleteRootError> {
        DeleteRoots::new(
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            store,
        )
    }

    #[test]
    fn bad_roots_are_named_with_their_problem() {
        let store = "s3://cache/recall";
        for (root, want) in [
            ("not a url", "not a URL"),
            ("memory://x/", "scheme \"memory\""),
            ("http://x/y/", "scheme \"http\""),
            ("s3://bucket/prefix", "must end in \"/\""),
            ("s3://bucket/a/../b/", "\"..\""),
            ("s3://bucket/a/%2E%2e/b/", "\"%2E%2e\""),
            ("s3://bucket/a//b/", "segment \"\""),
            ("s3://bucket//", "segment \"\""),
            ("s3://bucket/a/?x=1/", "query"),
            ("file://host/dir/", "no host"),
            ("file:///", "whole file system"),
            (
                "s3://cache/",
                "overlaps recalld's own store \"s3://cache/recall\"",
            ),
            ("s3://cache/recall/", "overlaps"),
            ("s3://cache/recall/flyte/", "overlaps"),
        ] {
            let err = roots(&[root], store).unwrap_err();
            assert_eq!(err.root, root);
            let text = err.to_string();
            assert!(text.contains(want), "{root}: {text}");
            assert!(text.contains(&format!("{root:?}")), "{text}");
        }
        for fine in [
            "s3://cache/recalled/",
            "s3://other/recall/",
            "gs://cache/recall/",
            "s3://flyte-data/",
            "file:///tmp/flyte/",
        ] {
            roots(&[fine], store).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }

    #[test]
    fn file_roots_overlap_through_links_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        let store_url = format!("file://{}", store.display());
        for root in [
            format!("file://{}/", dir.path().display()),
            format!("file://{}/outputs/", store.display()),
            format!("file://{}/x/", link.display()),
        ] {
            let err = roots(&[&root], &store_url).unwrap_err();
            assert!(
                matches!(err.problem, RootProblem::OverlapsStore { .. }),
                "{root}: {err}"
            );
        }
        roots(
            &[&format!("file://{}/flyte/", dir.path().display())],
            &store_url,
        )
        .unwrap();
    }

    #[test]
    fn uris_are_located_under_one_root_or_refused() {
        let set = roots(&["s3://data/flyte/", "file:///srv/flyte/"], "memory://").unwrap();
        let (root, path) = set.locate("s3://data/flyte/a/b/outputs.pb").unwrap();
        assert_eq!(root.url, "s3://data/flyte/");
        assert_eq!(path.as_ref(), "a/b/outputs.pb");
        let (_, path) = set.locate("file:///srv/flyte/x%20y/o.pb").unwrap();
        assert_eq!(path.as_ref(), "x y/o.pb");
        for (uri, want) in [
            ("s3://data/flyteother/o.pb", "lies under no delete root"),
            ("s3://data/o.pb", "lies under no delete root"),
            ("s3://data/flyte/", "a prefix"),
            ("s3://data/flyte/a/", "a prefix"),
            ("s3://data/flyte/../secret", "\"..\""),
            ("s3://data/flyte/a/%2e%2E/b", "\"..\""),
            ("file:///srv/flyte/a/%2e%2e/b", "\"..\""),
            ("s3://data/flyte/a//b", "empty"),
            ("s3://data/flyte//b", "empty"),
            ("s3://data/flyte/a?versionId=1", "query"),
        ] {
            let err = set.locate(uri).unwrap_err().to_string();
            assert!(err.contains(want), "{uri}: {err}");
        }
        let none = DeleteRoots::default();
        assert!(matches!(
            none.locate("s3://x/y"),
            Err(DeleteUriError::NoRoots { .. })
        ));
    }

    #[tokio::test]
    async fn deletes_a_file_under_a_root_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("run")).unwrap();
        std::fs::write(data.join("run/outputs.pb"), b"x").unwrap();
        std::fs::write(dir.path().join("outside.pb"), b"y").unwrap();
        let root = format!("file://{}/", data.display());
        let set = roots(&[&root], "memory://").unwrap();
        let uri = format!("{root}run/outputs.pb");
        assert_eq!(set.delete(&uri).await.unwrap(), root);
        assert!(!data.join("run/outputs.pb").exists());
        // Gone already: still fine.
        set.delete(&uri).await.unwrap();
        let outside = format!("file://{}/outside.pb", dir.path().display());
        assert!(set.delete(&outside).await.is_err());
        let escape = format!("{root}../outside.pb");
        assert!(set.delete(&escape).await.is_err());
        assert!(dir.path().join("outside.pb").exists());
        // A root whose directory does not exist is not created.
        let missing = format!("file://{}/", dir.path().join("absent").display());
        let set = roots(&[&missing], "memory://").unwrap();
        set.delete(&format!("{missing}o.pb")).await.unwrap();
        assert!(!dir.path().join("absent").exists());
    }
}

//! Object paths of the layout (docs/LAYOUT.md section 2). Pure functions: no I/O.

use recall_key::{Digest, validate_name};

use crate::error::StoreError;

/// The layout version this crate reads and writes.
pub const LAYOUT_VERSION: u64 = 1;
/// The key-spec version whose keys this layout stores.
pub const KEY_SPEC_VERSION: u64 = 1;
/// The descriptor object's name, at the store root.
pub const DESCRIPTOR: &str = "recall-store.json";
/// Outputs of at most this many bytes are stored inside the manifest, not as blobs.
pub const INLINE_MAX_BYTES: u64 = 4096;

/// One project/domain pair: everything it owns lives under `tenants/<project>/<domain>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    project: String,
    domain: String,
}

impl Tenant {
    /// Checks both names against the key-spec name rules (section 3) before any I/O.
    pub fn new(project: &str, domain: &str) -> Result<Self, StoreError> {
        validate_name("project", project)?;
        validate_name("domain", domain)?;
        Ok(Tenant {
            project: project.to_string(),
            domain: domain.to_string(),
        })
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `tenants/<project>/<domain>`: the one prefix holding all of this tenant's objects.
    pub fn prefix(&self) -> String {
        format!("tenants/{}/{}", self.project, self.domain)
    }

    /// `.../entries`: every manifest of the tenant.
    pub fn entries_prefix(&self) -> String {
        format!("{}/entries", self.prefix())
    }

    /// `.../entries/<key[0:2]>/<key>`: the manifest of one entry.
    pub fn entry(&self, key: &Digest) -> String {
        let hex = key.to_hex();
        format!("{}/{}/{}", self.entries_prefix(), &hex[..2], hex)
    }

    /// `.../blobs`: every blob of the tenant.
    pub fn blobs_prefix(&self) -> String {
        format!("{}/blobs", self.prefix())
    }

    /// `.../blobs/<digest[0:2]>/<digest>`: the raw bytes with this BLAKE3 digest.
    pub fn blob(&self, digest: &Digest) -> String {
        let hex = digest.to_hex();
        format!("{}/{}/{}", self.blobs_prefix(), &hex[..2], hex)
    }

    /// `.../tasks`: every index marker of the tenant.
    pub fn tasks_prefix(&self) -> String {
        format!("{}/tasks", self.prefix())
    }

    /// `.../tasks/<task>` or `.../tasks/<task>/<cache_version>`: markers of one task.
    pub fn task_prefix(&self, task: &str, cache_version: Option<&str>) -> String {
        match cache_version {
            Some(version) => format!("{}/{}/{}", self.tasks_prefix(), task, version),
            None => format!("{}/{}", self.tasks_prefix(), task),
        }
    }

    /// `.../tasks/<task>/<cache_version>/<key>`: the index marker of one entry.
    pub fn marker(&self, task: &str, cache_version: &str, key: &Digest) -> String {
        format!("{}/{}", self.task_prefix(task, Some(cache_version)), key)
    }

    /// `.../leases`: every lease of the tenant.
    pub fn leases_prefix(&self) -> String {
        format!("{}/leases", self.prefix())
    }

    /// `.../leases/<key>`: the cache_serialize lease of one key.
    pub fn lease(&self, key: &Digest) -> String {
        format!("{}/{}", self.leases_prefix(), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let tenant = Tenant::new("flytesnacks", "development").unwrap();
        let key = Digest::of_content(b"k");
        let hex = key.to_hex();
        assert_eq!(
            tenant.entry(&key),
            format!(
                "tenants/flytesnacks/development/entries/{}/{hex}",
                &hex[..2]
            )
        );
        assert_eq!(
            tenant.blob(&key),
            format!("tenants/flytesnacks/development/blobs/{}/{hex}", &hex[..2])
        );
        assert_eq!(
            tenant.marker("wf.train", "1.0", &key),
            format!("tenants/flytesnacks/development/tasks/wf.train/1.0/{hex}")
        );
        assert_eq!(
            tenant.lease(&key),
            format!("tenants/flytesnacks/development/leases/{hex}")
        );
    }

    #[test]
    fn names_that_could_escape_are_rejected_naming_the_value() {
        for bad in ["..", ".", "", "a/b", "a\nb", &"x".repeat(129)] {
            let err = Tenant::new(bad, "dev").unwrap_err().to_string();
            assert!(err.starts_with("invalid project"), "{err}");
            let err = Tenant::new("p", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid domain"), "{err}");
        }
    }
}

//! Listings: tenants, a tenant's tasks, a task's entries.

use recall_key::Digest;
use recall_store::{TaskEntry, Tenant};
use serde::{Deserialize, Serialize};

use crate::WireError;

/// One project/domain pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    /// The domain.
    pub domain: String,
    /// The project.
    pub project: String,
}

impl From<&Tenant> for TenantView {
    fn from(tenant: &Tenant) -> Self {
        TenantView {
            domain: tenant.domain().to_string(),
            project: tenant.project().to_string(),
        }
    }
}

impl TryFrom<&TenantView> for Tenant {
    type Error = WireError;

    fn try_from(view: &TenantView) -> Result<Self, WireError> {
        Tenant::new(&view.project, &view.domain).map_err(|e| WireError::Name(e.to_string()))
    }
}

/// The answer to `GET /v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenants {
    /// The tenants the caller may read.
    pub tenants: Vec<TenantView>,
}

/// The answer to `GET /v1/tasks/{project}/{domain}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks {
    /// The tenant's domain.
    pub domain: String,
    /// The tenant's project.
    pub project: String,
    /// The task names, sorted.
    pub tasks: Vec<String>,
}

/// One entry of a task, as its index marker names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEntryView {
    /// The cache_version the entry was published under.
    pub cache_version: String,
    /// The entry's key.
    pub key: Digest,
    /// When the marker was written, milliseconds since the Unix epoch.
    pub marked_at_ms: i64,
}

impl From<&TaskEntry> for TaskEntryView {
    fn from(entry: &TaskEntry) -> Self {
        TaskEntryView {
            cache_version: entry.cache_version.clone(),
            key: entry.key,
            marked_at_ms: entry.marked_at_ms,
        }
    }
}

impl From<TaskEntryView> for TaskEntry {
    fn from(view: TaskEntryView) -> Self {
        TaskEntry {
            cache_version: view.cache_version,
            key: view.key,
            marked_at_ms: view.marked_at_ms,
        }
    }
}

/// The answer to `GET /v1/tasks/{project}/{domain}/{task}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEntries {
    /// The tenant's domain.
    pub domain: String,
    /// The task's entries.
    pub entries: Vec<TaskEntryView>,
    /// The tenant's project.
    pub project: String,
    /// The task.
    pub task: String,
}

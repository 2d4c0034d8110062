//! The seam between the `recall` subcommands and the cache: one trait, implemented directly
//! on a store ([`crate::direct::DirectClient`]) and over recalld's HTTP API
//! ([`crate::http::HttpClient`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use recall_key::{DerivedKey, Digest};
use recall_store::{
    Capabilities, EntryRef, EvictReport, GcOptions, GcReport, Lookup, Manifest, PublishOutcome,
    TaskEntry, Tenant,
};

use crate::error::CliError;

/// A manifest as found at an entry's path, with whether it is still a hit by age.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The manifest.
    pub manifest: Manifest,
    /// Whether it is past its expiry or the configured max age (a lookup would miss).
    pub expired: bool,
}

/// The answer to a lease request (Flyte's GetOrExtendReservation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Whether the caller now holds the lease.
    pub granted: bool,
    /// Who holds it (the caller when granted).
    pub owner: String,
    /// When it lapses unless renewed, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// What an eviction removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictTarget {
    /// One entry.
    Key(Digest),
    /// Every entry of a task, or of one of its cache_versions.
    Task {
        /// The task name.
        task: String,
        /// Only this cache_version, when given.
        cache_version: Option<String>,
    },
    /// The whole project/domain, blobs included.
    Tenant,
    /// Entries published before this instant (milliseconds since the Unix epoch).
    OlderThan(i64),
}

/// One eviction request.
#[derive(Debug, Clone)]
pub struct EvictRequest {
    /// The project/domain; `None` only with [`EvictTarget::OlderThan`] (every tenant).
    pub tenant: Option<Tenant>,
    /// What to evict.
    pub target: EvictTarget,
    /// Count what would be evicted, delete nothing.
    pub dry_run: bool,
}

/// One output to publish: its name and the local file holding its bytes.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// The output name.
    pub name: String,
    /// The file with the bytes to store (for a dir output, its archive).
    pub path: PathBuf,
}

/// Everything the subcommands need from a cache, whatever serves it.
#[async_trait]
pub trait CacheClient: Send + Sync {
    /// One line naming the store or daemon, for messages.
    fn describe(&self) -> String;

    /// Looks an entry up by key (manifest only, outputs not read).
    async fn lookup(&self, entry: &EntryRef) -> Result<Lookup<Manifest>, CliError>;

    /// The manifest at an entry's path even if it expired; `None` when there is none.
    async fn stored_entry(&self, entry: &EntryRef) -> Result<Option<StoredEntry>, CliError>;

    /// Fetches every output, verified, into `<dir>/<output name>`. A corrupt entry is a miss
    /// (and is removed so the next run repopulates it).
    async fn fetch(&self, entry: &EntryRef, dir: &Path) -> Result<Lookup<Manifest>, CliError>;

    /// Publishes outputs as the entry of `key`; `overwrite` replaces a live entry. The outcome
    /// carries the nondeterminism observed (outputs differing from the entry met), which the
    /// store also records in the manifest.
    async fn publish(
        &self,
        key: &DerivedKey,
        outputs: &[OutputFile],
        overwrite: bool,
    ) -> Result<PublishOutcome, CliError>;

    /// Takes, extends or reports the cache_serialize lease of an entry.
    async fn lease(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
    ) -> Result<LeaseGrant, CliError>;

    /// Releases the lease if `owner` holds it; returns whether it did.
    async fn release(&self, entry: &EntryRef, owner: &str) -> Result<bool, CliError>;

    /// The entries of a task (every cache_version, or one), from the index markers.
    async fn task_entries(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<Vec<TaskEntry>, CliError>;

    /// The project/domain pairs with objects in the store (through a daemon: those the
    /// token may read).
    async fn tenants(&self) -> Result<Vec<Tenant>, CliError>;

    /// The task names with index markers in a tenant, sorted.
    async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, CliError>;

    /// Evicts entries (or counts them on a dry run).
    async fn evict(&self, request: &EvictRequest) -> Result<EvictReport, CliError>;

    /// Garbage-collects unreferenced blobs in one tenant or all of them.
    async fn gc(&self, tenant: Option<&Tenant>, options: &GcOptions) -> Result<GcReport, CliError>;

    /// What the store honours (conditional writes, ranged GETs), from the local cache or a
    /// probe (docs/LAYOUT.md section 11); `None` when it could not be found out.
    async fn capabilities(&self) -> Option<Capabilities> {
        None
    }
}

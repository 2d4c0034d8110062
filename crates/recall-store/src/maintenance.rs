//! Eviction and garbage collection (docs/LAYOUT.md section 8).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use recall_key::{Digest, validate_name};

use crate::clock::duration_ms;
use crate::error::StoreError;
use crate::layout::Tenant;
use crate::manifest::Manifest;
use crate::store::{EntryRef, Store};

/// What an eviction removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// Manifests deleted: entries that no longer exist.
    pub entries: u64,
    /// Index markers deleted.
    pub markers: u64,
    /// Lease objects deleted.
    pub leases: u64,
    /// Blobs deleted (only eviction of a whole project/domain deletes blobs; GC does the rest).
    pub blobs: u64,
}

/// Which entries an eviction removes ([`Store::evict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictSelector {
    /// One entry: its manifest, the index marker its manifest names, and its lease.
    Key(EntryRef),
    /// Every entry of a task in a tenant (of one cache_version, or all): the manifests its
    /// index markers name, and the markers.
    Task {
        /// The tenant.
        tenant: Tenant,
        /// The task name.
        task: String,
        /// Only entries of this cache_version.
        cache_version: Option<String>,
    },
    /// Everything under a project/domain: manifests, markers, leases and blobs.
    Tenant(Tenant),
    /// Entries published before `cutoff_ms` (undecodable manifests: last modified before
    /// it), each as [`EvictSelector::Key`] removes it; in one tenant or every tenant.
    OlderThan {
        /// The tenant, or `None` for every tenant.
        tenant: Option<Tenant>,
        /// Milliseconds since the Unix epoch.
        cutoff_ms: i64,
    },
}

impl EvictSelector {
    /// The selector's name in reports and logs: `key`, `task`, `tenant` or
    /// `older_than_seconds`.
    pub fn name(&self) -> &'static str {
        match self {
            EvictSelector::Key(_) => "key",
            EvictSelector::Task { .. } => "task",
            EvictSelector::Tenant(_) => "tenant",
            EvictSelector::OlderThan { .. } => "older_than_seconds",
        }
    }
}

/// The objects an eviction deletes, manifests first, with what it reports.
#[derive(Default)]
struct EvictionPlan {
    report: EvictReport,
    manifests: Vec<Path>,
    rest: Vec<Path>,
}

/// One entry of a task, as its index marker names it (see [`Store::list_task_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEntry {
    /// The cache_version the entry was published under.
    pub cache_version: String,
    /// The entry's key.
    pub key: Digest,
    /// When the marker was written, in milliseconds since the Unix epoch.
    pub marked_at_ms: i64,
}

/// Settings of one garbage collection.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced blobs (and manifest-less markers) younger than this are kept: they may
    /// belong to a publish in flight.
    pub grace: Duration,
    /// Count and report, delete nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

/// What a garbage collection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifests read in the mark phase.
    pub manifests: u64,
    /// Manifests that did not decode (their blobs cannot be marked; they are misses anyway).
    pub undecodable_manifests: u64,
    /// Blobs seen in the sweep phase.
    pub blobs: u64,
    /// Blobs some manifest references.
    pub referenced_blobs: u64,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub blobs_in_grace: u64,
    /// Unreferenced blobs past the grace period: deleted, or would be on a dry run.
    pub collectable_blobs: u64,
    /// Their total size in bytes.
    pub collectable_bytes: u64,
    /// Blobs actually deleted (0 on a dry run).
    pub deleted_blobs: u64,
    /// Markers without a manifest past the grace period: deleted, or would be on a dry run.
    pub orphan_markers: u64,
    /// Entries whose `expires_at_ms` lies more than the grace period in the past (a miss for
    /// every reader; e.g. a Flyte artifact that was never tagged): deleted, or would be on a
    /// dry run. Their blobs are not marked, their markers become orphans.
    pub expired_entries: u64,
}

impl Store {
    /// Every object under a layout prefix.
    async fn list_prefix(&self, relative: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let prefix = self.path(relative);
        self.objects
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| StoreError::backend("list", &prefix, e))
    }

    /// Deletes many objects; absent ones are not errors. Returns how many were deleted.
    async fn delete_all(&self, paths: Vec<Path>) -> Result<u64, StoreError> {
        let count = paths.len() as u64;
        let mut results = self
            .objects
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::backend("delete", &self.path(""), e)),
            }
        }
        Ok(count)
    }

    async fn read_manifest(&self, path: &Path) -> Result<Option<Option<Manifest>>, StoreError> {
        let body = self.get_bytes(path).await?;
        Ok(body.map(|body| Manifest::decode(&body).ok()))
    }

    /// The common prefixes directly below `prefix` (one delimited LIST).
    async fn list_folders(&self, prefix: &Path) -> Result<Vec<Path>, StoreError> {
        let listed = self
            .objects
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| StoreError::backend("list", prefix, e))?;
        Ok(listed.common_prefixes)
    }

    /// The project/domain pairs that have objects in the store (two delimited LISTs).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut tenants = Vec::new();
        let root = self.path("tenants");
        for project in self.list_folders(&root).await? {
            for domain in self.list_folders(&project).await? {
                let (Some(p), Some(d)) = (project.filename(), domain.filename()) else {
                    continue;
                };
                // Objects written by something else under names recall would reject are skipped.
                if let Ok(tenant) = Tenant::new(p, d) {
                    tenants.push(tenant);
                }
            }
        }
        Ok(tenants)
    }

    /// The task names that have index markers in the tenant, sorted (one delimited LIST).
    /// Names recall would reject (written by something else) are skipped.
    pub async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(&tenant.tasks_prefix());
        let mut tasks: Vec<String> = self
            .list_folders(&prefix)
            .await?
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|t| validate_name("task", t).is_ok())
            .collect();
        tasks.sort();
        Ok(tasks)
    }

    /// The entries of `task` in the tenant (of one `cache_version`, or all), read from the
    /// index markers with one LIST. A marker may outlive its manifest for a moment (eviction
    /// deletes the manifest first), so a caller that needs the entry reads its manifest.
    pub async fn list_task_entries(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<Vec<TaskEntry>, StoreError> {
        validate_name("task", task)?;
        if let Some(version) = cache_version {
            validate_name("cache_version", version)?;
        }
        let mut entries: Vec<TaskEntry> = self
            .list_prefix(&tenant.task_prefix(task, cache_version))
            .await?
            .into_iter()
            .filter_map(|meta| {
                let key = last_segment_digest(&meta.location)?;
                let mut parts: Vec<_> = meta.location.parts().collect();
                parts.pop();
                let version = parts.pop()?.as_ref().to_owned();
                Some(TaskEntry {
                    cache_version: version,
                    key,
                    marked_at_ms: meta.last_modified.timestamp_millis(),
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.cache_version, a.marked_at_ms, a.key.to_hex()).cmp(&(
                &b.cache_version,
                b.marked_at_ms,
                b.key.to_hex(),
            ))
        });
        Ok(entries)
    }

    /// Evicts what `selector` names, or with `dry_run` counts what it would evict and deletes
    /// nothing. Both walk the store the same way, so a dry run reports what the eviction
    /// itself would then remove (docs/LAYOUT.md section 8). Manifests go first, so a reader
    /// never finds an entry whose marker or lease is already gone. Blobs are deleted only when
    /// a whole project/domain is evicted; GC collects the rest.
    pub async fn evict(
        &self,
        selector: &EvictSelector,
        dry_run: bool,
    ) -> Result<EvictReport, StoreError> {
        let plan = self.plan_eviction(selector).await?;
        if !dry_run {
            self.delete_all(plan.manifests).await?;
            self.delete_all(plan.rest).await?;
        }
        Ok(plan.report)
    }

    /// Evicts one entry: its manifest, index marker and lease (`evict` with
    /// [`EvictSelector::Key`]).
    pub async fn evict_key(&self, entry: &EntryRef) -> Result<EvictReport, StoreError> {
        self.evict(&EvictSelector::Key(entry.clone()), false).await
    }

    /// Evicts every entry of `task` in the tenant, or only those of one `cache_version`
    /// (`evict` with [`EvictSelector::Task`]).
    pub async fn evict_task(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<EvictReport, StoreError> {
        let selector = EvictSelector::Task {
            tenant: tenant.clone(),
            task: task.to_string(),
            cache_version: cache_version.map(str::to_string),
        };
        self.evict(&selector, false).await
    }

    /// Evicts a whole project/domain, blobs and leases included (`evict` with
    /// [`EvictSelector::Tenant`]).
    pub async fn evict_tenant(&self, tenant: &Tenant) -> Result<EvictReport, StoreError> {
        self.evict(&EvictSelector::Tenant(tenant.clone()), false)
            .await
    }

    /// Evicts entries published before `cutoff_ms` in one tenant or every tenant (`evict`
    /// with [`EvictSelector::OlderThan`]).
    pub async fn evict_older_than(
        &self,
        tenant: Option<&Tenant>,
        cutoff_ms: i64,
    ) -> Result<EvictReport, StoreError> {
        let selector = EvictSelector::OlderThan {
            tenant: tenant.cloned(),
            cutoff_ms,
        };
        self.evict(&selector, false).await
    }

    /// What an eviction with `selector` deletes, and its report.
    async fn plan_eviction(&self, selector: &EvictSelector) -> Result<EvictionPlan, StoreError> {
        let mut plan = EvictionPlan::default();
        match selector {
            EvictSelector::Key(entry) => {
                let path = self.path(&entry.tenant.entry(&entry.key));
                let manifest = self.read_manifest(&path).await?;
                self.plan_key(entry, manifest, &mut plan).await?;
            }
            EvictSelector::Task {
                tenant,
                task,
                cache_version,
            } => {
                validate_name("task", task)?;
                if let Some(version) = cache_version {
                    validate_name("cache_version", version)?;
                }
                let markers = self
                    .list_prefix(&tenant.task_prefix(task, cache_version.as_deref()))
                    .await?;
                for marker in markers {
                    if let Some(key) = last_segment_digest(&marker.location) {
                        let manifest = self.path(&tenant.entry(&key));
                        if self.exists(&manifest).await? {
                            plan.report.entries += 1;
                            plan.manifests.push(manifest);
                        }
                    }
                    plan.report.markers += 1;
                    plan.rest.push(marker.location);
                }
            }
            EvictSelector::Tenant(tenant) => {
                let entries = self.path(&tenant.entries_prefix());
                let tasks = self.path(&tenant.tasks_prefix());
                let leases = self.path(&tenant.leases_prefix());
                let blobs = self.path(&tenant.blobs_prefix());
                for meta in self.list_prefix(&tenant.prefix()).await? {
                    let at = &meta.location;
                    if at.prefix_matches(&entries) {
                        plan.report.entries += 1;
                        plan.manifests.push(meta.location);
                        continue;
                    }
                    if at.prefix_matches(&tasks) {
                        plan.report.markers += 1;
                    } else if at.prefix_matches(&leases) {
                        plan.report.leases += 1;
                    } else if at.prefix_matches(&blobs) {
                        plan.report.blobs += 1;
                    }
                    plan.rest.push(meta.location);
                }
            }
            EvictSelector::OlderThan { tenant, cutoff_ms } => {
                let tenants = match tenant {
                    Some(t) => vec![t.clone()],
                    None => self.tenants().await?,
                };
                for tenant in tenants {
                    for meta in self.list_prefix(&tenant.entries_prefix()).await? {
                        let Some(key) = last_segment_digest(&meta.location) else {
                            continue;
                        };
                        let manifest = self.read_manifest(&meta.location).await?;
                        let old = match &manifest {
                            None => false,
                            Some(Some(m)) => m.created_at_ms < *cutoff_ms,
                            Some(None) => meta.last_modified.timestamp_millis() < *cutoff_ms,
                        };
                        if old {
                            let entry = EntryRef {
                                tenant: tenant.clone(),
                                key,
                            };
                            self.plan_key(&entry, manifest, &mut plan).await?;
                        }
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Adds one entry to `plan`: its manifest (as read: absent, undecodable or decoded), the
    /// index marker the manifest names, and its lease.
    async fn plan_key(
        &self,
        entry: &EntryRef,
        manifest: Option<Option<Manifest>>,
        plan: &mut EvictionPlan,
    ) -> Result<(), StoreError> {
        if let Some(manifest) = manifest {
            plan.report.entries += 1;
            plan.manifests
                .push(self.path(&entry.tenant.entry(&entry.key)));
            // An undecodable manifest does not say where its marker is; GC removes it later.
            if let Some(m) = manifest {
                let marker = entry
                    .tenant
                    .marker(&m.key.task, &m.key.cache_version, &entry.key);
                plan.report.markers += 1;
                plan.rest.push(self.path(&marker));
            }
        }
        let lease = self.path(&entry.tenant.lease(&entry.key));
        if self.exists(&lease).await? {
            plan.report.leases += 1;
            plan.rest.push(lease);
        }
        Ok(())
    }

    /// Whether an object exists (one HEAD).
    async fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        match self.objects.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StoreError::backend("head", path, e)),
        }
    }

    /// Mark-and-sweep of blobs no manifest references, in one tenant or all of them.
    pub async fn gc(
        &self,
        tenant: Option<&Tenant>,
        options: &GcOptions,
    ) -> Result<GcReport, StoreError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => self.tenants().await?,
        };
        let cutoff = self
            .config
            .clock
            .now_ms()
            .saturating_sub(duration_ms(options.grace));
        let mut report = GcReport::default();
        for tenant in tenants {
            // Mark.
            let mut referenced = BTreeSet::new();
            let mut live_keys = BTreeSet::new();
            let mut expired = Vec::new();
            for meta in self.list_prefix(&tenant.entries_prefix()).await? {
                let key = last_segment_digest(&meta.location);
                match self.read_manifest(&meta.location).await? {
                    None => {}
                    Some(Some(manifest))
                        if manifest.expires_at_ms.is_some_and(|at| at < cutoff) =>
                    {
                        report.manifests += 1;
                        report.expired_entries += 1;
                        expired.push(meta.location);
                        continue;
                    }
                    Some(Some(manifest)) => {
                        report.manifests += 1;
                        referenced.extend(
                            manifest
                                .outputs
                                .values()
                                .filter(|o| o.inline.is_none())
                                .map(|o| o.digest),
                        );
                    }
                    Some(None) => {
                        report.manifests += 1;
                        report.undecodable_manifests += 1;
                    }
                }
                if let Some(key) = key {
                    live_keys.insert(key);
                }
            }
            // Sweep blobs.
            let mut doomed = Vec::new();
            for blob in self.list_prefix(&tenant.blobs_prefix()).await? {
                report.blobs += 1;
                let digest = last_segment_digest(&blob.location);
                if digest.is_some_and(|d| referenced.contains(&d)) {
                    report.referenced_blobs += 1;
                } else if blob.last_modified.timestamp_millis() >= cutoff {
                    report.blobs_in_grace += 1;
                } else {
                    report.collectable_blobs += 1;
                    report.collectable_bytes += blob.size;
                    doomed.push(blob.location);
                }
            }
            // Sweep markers whose manifest is gone.
            let mut orphans = Vec::new();
            for marker in self.list_prefix(&tenant.tasks_prefix()).await? {
                let has_entry = last_segment_digest(&marker.location)
                    .is_some_and(|key| live_keys.contains(&key));
                if !has_entry && marker.last_modified.timestamp_millis() < cutoff {
                    report.orphan_markers += 1;
                    orphans.push(marker.location);
                }
            }
            if !options.dry_run {
                // Expired manifests first: their blobs and markers are unreferenced already.
                self.delete_all(expired).await?;
                report.deleted_blobs += self.delete_all(doomed).await?;
                self.delete_all(orphans).await?;
            }
        }
        Ok(report)
    }
}

/// The last path segment parsed as a digest, if it is one.
fn last_segment_digest(path: &Path) -> Option<Digest> {
    path.filename()?.parse().ok()
}

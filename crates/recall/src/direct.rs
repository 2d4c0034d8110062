//! [`CacheClient`] straight on an object store through recall-store (`--store URL`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use recall_key::{DerivedKey, Digest};
use recall_store::{
    Capabilities, DEFAULT_GRACE, EntryRef, EvictReport, FetchTo, GcOptions, GcReport, LeaseStatus,
    Lookup, Manifest, Output, PublishMode, PublishOptions, PublishOutcome, Store, StoreConfig,
    TaskEntry, Tenant,
};

use crate::client::{CacheClient, EvictRequest, EvictTarget, LeaseGrant, OutputFile, StoredEntry};
use crate::error::CliError;

/// A cache client that reads and writes the store itself.
#[derive(Debug, Clone)]
pub struct DirectClient {
    store: Store,
    url: String,
}

impl DirectClient {
    /// Opens the store at `url` (reads its descriptor; the first publish writes it).
    pub async fn open(url: &str, config: StoreConfig) -> Result<Self, CliError> {
        let store = Store::open_with(url, config).await?;
        Ok(DirectClient {
            store,
            url: url.to_string(),
        })
    }

    /// Wraps a store already opened (with backend options); `url` names it in messages.
    pub fn from_store(store: Store, url: &str) -> Self {
        let url = url.to_string();
        DirectClient { store, url }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Object paths under a layout prefix.
    async fn list(&self, relative: &str) -> Result<Vec<object_store::ObjectMeta>, CliError> {
        let prefix = self.store.path(relative);
        self.store
            .object_store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| storage("list", &prefix, e))
    }

    async fn exists(&self, relative: &str) -> Result<bool, CliError> {
        let path = self.store.path(relative);
        match self.store.object_store().head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage("head", &path, e)),
        }
    }

    /// Counts what an eviction would remove, deleting nothing.
    async fn evict_dry_run(&self, request: &EvictRequest) -> Result<EvictReport, CliError> {
        let mut report = EvictReport::default();
        let tenants = match &request.tenant {
            Some(t) => vec![t.clone()],
            None => self.store.tenants().await?,
        };
        for tenant in tenants {
            match &request.target {
                EvictTarget::Key(key) => {
                    if self.exists(&tenant.entry(key)).await? {
                        report.entries += 1;
                        report.markers += 1;
                    }
                    if self.exists(&tenant.lease(key)).await? {
                        report.leases += 1;
                    }
                }
                EvictTarget::Task {
                    task,
                    cache_version,
                } => {
                    for entry in self
                        .store
                        .list_task_entries(&tenant, task, cache_version.as_deref())
                        .await?
                    {
                        report.markers += 1;
                        if self.exists(&tenant.entry(&entry.key)).await? {
                            report.entries += 1;
                        }
                    }
                }
                EvictTarget::Tenant => {
                    for meta in self.list(&tenant.prefix()).await? {
                        let path = meta.location.to_string();
                        let rel = |p: String| self.store.path(&p).to_string();
                        if path.starts_with(&rel(tenant.entries_prefix())) {
                            report.entries += 1;
                        } else if path.starts_with(&rel(tenant.tasks_prefix())) {
                            report.markers += 1;
                        } else if path.starts_with(&rel(tenant.leases_prefix())) {
                            report.leases += 1;
                        } else if path.starts_with(&rel(tenant.blobs_prefix())) {
                            report.blobs += 1;
                        }
                    }
                }
                EvictTarget::OlderThan(cutoff_ms) => {
                    for meta in self.list(&tenant.entries_prefix()).await? {
                        let Some(key) = meta
                            .location
                            .filename()
                            .and_then(|n| n.parse::<Digest>().ok())
                        else {
                            continue;
                        };
                        let entry = EntryRef {
                            tenant: tenant.clone(),
                            key,
                        };
                        let old = match self.store.read_entry_manifest(&entry).await? {
                            Some(m) => m.created_at_ms < *cutoff_ms,
                            None => meta.last_modified.timestamp_millis() < *cutoff_ms,
                        };
                        if old {
                            report.entries += 1;
                            report.markers += 1;
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

fn storage(
    operation: &'static str,
    path: &object_store::path::Path,
    e: object_store::Error,
) -> CliError {
    CliError::Storage(format!("object store {operation} {path}: {e}"))
}

#[async_trait]
impl CacheClient for DirectClient {
    async fn capabilities(&self) -> Option<Capabilities> {
        let target = crate::capabilities::target(&self.url);
        if let Some(found) = crate::capabilities::cached(&target) {
            return Some(found);
        }
        let found = self
            .store
            .probe_capabilities(crate::capabilities::PROBE_TIMEOUT)
            .await
            .ok()?;
        crate::capabilities::remember(&target, &found);
        Some(found)
    }

    fn describe(&self) -> String {
        format!("store {}", self.url)
    }

    async fn lookup(&self, entry: &EntryRef) -> Result<Lookup<Manifest>, CliError> {
        Ok(self.store.lookup(entry).await?)
    }

    async fn stored_entry(&self, entry: &EntryRef) -> Result<Option<StoredEntry>, CliError> {
        Ok(self
            .store
            .read_entry_manifest(entry)
            .await?
            .map(|manifest| StoredEntry {
                expired: self.store.is_expired(&manifest),
                manifest,
            }))
    }

    async fn fetch(&self, entry: &EntryRef, dir: &Path) -> Result<Lookup<Manifest>, CliError> {
        Ok(
            match self
                .store
                .fetch(entry, FetchTo::Dir(dir.to_path_buf()))
                .await?
            {
                Lookup::Hit(fetched) => Lookup::Hit(fetched.manifest),
                Lookup::Miss(miss) => Lookup::Miss(miss),
            },
        )
    }

    async fn publish(
        &self,
        key: &DerivedKey,
        outputs: &[OutputFile],
        overwrite: bool,
    ) -> Result<PublishOutcome, CliError> {
        let outputs: Vec<Output> = outputs
            .iter()
            .map(|o| Output::file(o.name.clone(), o.path.clone()))
            .collect();
        let options = PublishOptions {
            mode: if overwrite {
                PublishMode::Overwrite
            } else {
                PublishMode::CreateIfAbsent
            },
            ttl: None,
        };
        Ok(self.store.publish(key, &outputs, &options).await?)
    }

    async fn lease(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
    ) -> Result<LeaseGrant, CliError> {
        Ok(
            match self
                .store
                .get_or_extend_lease(entry, owner, heartbeat, DEFAULT_GRACE)
                .await?
            {
                LeaseStatus::Acquired(record) => LeaseGrant {
                    granted: true,
                    owner: record.owner,
                    expires_at_ms: record.expires_at_ms,
                },
                LeaseStatus::HeldBy(record) => LeaseGrant {
                    granted: false,
                    owner: record.owner,
                    expires_at_ms: record.expires_at_ms,
                },
            },
        )
    }

    async fn release(&self, entry: &EntryRef, owner: &str) -> Result<bool, CliError> {
        Ok(self.store.release_lease(entry, owner).await?)
    }

    async fn task_entries(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<Vec<TaskEntry>, CliError> {
        Ok(self
            .store
            .list_task_entries(tenant, task, cache_version)
            .await?)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, CliError> {
        Ok(self.store.tenants().await?)
    }

    async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, CliError> {
        Ok(self.store.tasks(tenant).await?)
    }

    async fn evict(&self, request: &EvictRequest) -> Result<EvictReport, CliError> {
        if request.dry_run {
            return self.evict_dry_run(request).await;
        }
        let need_tenant = || {
            request.tenant.as_ref().ok_or_else(|| {
                CliError::Usage("evict: --project and --domain are required for this target".into())
            })
        };
        let report = match &request.target {
            EvictTarget::Key(key) => {
                self.store
                    .evict_key(&EntryRef {
                        tenant: need_tenant()?.clone(),
                        key: *key,
                    })
                    .await?
            }
            EvictTarget::Task {
                task,
                cache_version,
            } => {
                self.store
                    .evict_task(need_tenant()?, task, cache_version.as_deref())
                    .await?
            }
            EvictTarget::Tenant => self.store.evict_tenant(need_tenant()?).await?,
            EvictTarget::OlderThan(cutoff) => {
                self.store
                    .evict_older_than(request.tenant.as_ref(), *cutoff)
                    .await?
            }
        };
        Ok(report)
    }

    async fn gc(&self, tenant: Option<&Tenant>, options: &GcOptions) -> Result<GcReport, CliError> {
        Ok(self.store.gc(tenant, options).await?)
    }
}

//! [`CacheClient`] straight on an object store through recall-store (`--store URL`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use recall_key::DerivedKey;
use recall_store::{
    Capabilities, DEFAULT_GRACE, EntryRef, EvictReport, EvictSelector, FetchTo, GcOptions,
    GcReport, LeaseStatus, Lookup, Manifest, Output, PublishMode, PublishOptions, PublishOutcome,
    Store, StoreConfig, TaskEntry, Tenant,
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
        let need_tenant = || {
            request.tenant.clone().ok_or_else(|| {
                CliError::Usage("evict: --project and --domain are required for this target".into())
            })
        };
        let selector = match &request.target {
            EvictTarget::Key(key) => EvictSelector::Key(EntryRef {
                tenant: need_tenant()?,
                key: *key,
            }),
            EvictTarget::Task {
                task,
                cache_version,
            } => EvictSelector::Task {
                tenant: need_tenant()?,
                task: task.clone(),
                cache_version: cache_version.clone(),
            },
            EvictTarget::Tenant => EvictSelector::Tenant(need_tenant()?),
            EvictTarget::OlderThan(cutoff_ms) => EvictSelector::OlderThan {
                tenant: request.tenant.clone(),
                cutoff_ms: *cutoff_ms,
            },
        };
        Ok(self.store.evict(&selector, request.dry_run).await?)
    }

    async fn gc(&self, tenant: Option<&Tenant>, options: &GcOptions) -> Result<GcReport, CliError> {
        Ok(self.store.gc(tenant, options).await?)
    }
}

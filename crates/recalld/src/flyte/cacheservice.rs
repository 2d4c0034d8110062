//! `flyteidl2.cacheservice.CacheService` and its `v2`: Flyte 2's cache, as its executor calls
//! it, over recall entries (recall_store::catalog, docs/LAYOUT.md section 13). A key is one
//! entry of its project and domain (the base service uses `[flyte] default_project` and
//! `default_domain`); a reservation is that entry's lease.
//!
//! Semantics are Flyte's server's, plus: literal outputs are kept (not only URIs), and an
//! entry whose stored data is missing or corrupt answers NotFound and is dropped, so the
//! executor's rerun can Put again. Fail open: a store that is slow or down makes Get answer
//! NotFound within the lookup timeout and GetOrExtendReservation grant the caller.
//!
//! `overwrite.delete_blob`: an overwrite that replaces an `output_uri` deletes the old object
//! when it lies under one of `[flyte] delete_blob_roots` (recall_store::DeleteRoots), and
//! leaves it otherwise; either way the Put succeeds, and the outcome is logged and counted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use recall_flyteidl::RawLiteral;
use recall_flyteidl::cacheservice as pb;
use recall_flyteidl::cacheservice::v2 as pb2;
use recall_key::DerivedKey;
use recall_store::catalog::{CACHED_OUTPUT, CachedOutputRecord, CachedValue, cache_entry_key};
use recall_store::{
    DeleteRoots, DeleteUriError, EntryRef, EvictSelector, Output, PublishMode, PublishOptions,
    system_time_ms,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{DecodedRecords, Record, duration, timestamp};
use crate::auth::Auth;
use crate::config::Access;
use crate::grpc::{Unary, call_unary, split_path};
use crate::grpc::{authorize, status_of};
use crate::metrics::FlyteBlobDeleteLabels;
use crate::state::AppState;

/// Longest wait for deleting an old output URI; past it the Put answers anyway (the object
/// is left for the bucket's lifecycle rules).
const DELETE_BLOB_TIMEOUT: Duration = Duration::from_secs(10);

/// The service logic both protocol versions share; cheap to clone.
#[derive(Clone)]
pub struct CacheService {
    state: Arc<AppState>,
    /// The tokens this listener checks: recalld's, or none with `[flyte]
    /// cacheservice_insecure_no_auth`.
    pub(crate) auth: Auth,
    /// Where `delete_blob` may delete (`[flyte] delete_blob_roots`).
    delete_roots: Arc<DeleteRoots>,
    /// Stored records decoded once per content (a hit does not decode its CBOR again).
    records: Arc<DecodedRecords<CachedOutputRecord>>,
}

/// The base service (`flyteidl2.cacheservice.CacheService`), scoped by the configured
/// default project and domain.
#[derive(Clone)]
pub struct BaseService(pub CacheService);

/// The v2 service (`flyteidl2.cacheservice.v2.CacheService`), scoped by each request's
/// identifier.
#[derive(Clone)]
pub struct V2Service(pub CacheService);

/// A project and domain.
struct Scope {
    project: String,
    domain: String,
}

impl CacheService {
    /// The service over recalld's state.
    pub fn new(state: Arc<AppState>) -> Self {
        // Config::validate checked the roots before recalld started serving.
        let delete_roots = state.config.delete_blob_roots().unwrap_or_else(|err| {
            tracing::error!(error = %err, "delete_blob deletes nothing");
            DeleteRoots::default()
        });
        let auth = if state.config.flyte.cacheservice_insecure_no_auth {
            Auth::default()
        } else {
            state.auth.clone()
        };
        CacheService {
            state,
            auth,
            delete_roots: Arc::new(delete_roots),
            records: Arc::new(DecodedRecords::new(8 << 20)),
        }
    }

    /// Counts a request by method and status code.
    fn finish<T>(
        &self,
        method: &'static str,
        result: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        super::finish(&self.state, method, result)
    }

    fn count_lookup(&self, result: &'static str) {
        super::count_lookup(&self.state, "CacheService.Get", result)
    }

    /// The base service's scope: `[flyte] default_project` / `default_domain`.
    fn default_scope(&self) -> Result<Scope, Status> {
        let flyte = &self.state.config.flyte;
        match (&flyte.default_project, &flyte.default_domain) {
            (Some(project), Some(domain)) => Ok(Scope {
                project: project.clone(),
                domain: domain.clone(),
            }),
            _ => Err(Status::failed_precondition(
                "flyteidl2.cacheservice.CacheService has no project or domain: set [flyte] \
                 default_project and default_domain (RECALL_FLYTE_DEFAULT_PROJECT, \
                 RECALL_FLYTE_DEFAULT_DOMAIN), or call flyteidl2.cacheservice.v2.CacheService",
            )),
        }
    }

    /// A v2 request's scope (`org` may be empty, as Flyte's server allows).
    fn scope(identifier: Option<&pb2::Identifier>) -> Result<Scope, Status> {
        let identifier = identifier.ok_or_else(|| missing("identifier"))?;
        if identifier.project.is_empty() {
            return Err(missing("identifier.project"));
        }
        if identifier.domain.is_empty() {
            return Err(missing("identifier.domain"));
        }
        Ok(Scope {
            project: identifier.project.clone(),
            domain: identifier.domain.clone(),
        })
    }

    /// Checks the token, and gives the key's entry.
    fn entry(
        &self,
        metadata: &MetadataMap,
        scope: &Scope,
        key: &str,
        need: Access,
    ) -> Result<(DerivedKey, EntryRef), Status> {
        if key.is_empty() {
            return Err(missing("key"));
        }
        authorize(&self.auth, metadata, &scope.project, &scope.domain, need)?;
        let derived = cache_entry_key(&scope.project, &scope.domain, key).map_err(|e| {
            Status::invalid_argument(format!(
                "project {:?} / domain {:?}: {e}",
                scope.project, scope.domain
            ))
        })?;
        let entry = EntryRef::of(&derived).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((derived, entry))
    }

    /// The stored record of `entry`: `Ok(None)` when there is none, or it is broken (then
    /// dropped), or the store did not answer (fail open).
    async fn read(&self, entry: &EntryRef) -> Option<Arc<CachedOutputRecord>> {
        let read = self.records.read(
            &self.state,
            entry,
            CACHED_OUTPUT,
            CachedOutputRecord::decode,
        );
        match read.await {
            Record::Found(record) => Some(record),
            Record::Missing => None,
            Record::Failed => {
                self.count_lookup("failure");
                None
            }
        }
    }

    async fn get(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        request: pb::GetCacheRequest,
    ) -> Result<pb::GetCacheResponse, Status> {
        let (_, entry) = self.entry(metadata, &scope, &request.key, Access::Read)?;
        let Some(record) = self.read(&entry).await else {
            self.count_lookup("miss");
            return Err(Status::not_found(format!(
                "key {:?} of {}/{} not found",
                request.key, scope.project, scope.domain
            )));
        };
        self.count_lookup("hit");
        Ok(pb::GetCacheResponse {
            output: Some(output_message(&record)),
        })
    }

    async fn put(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        request: pb::PutCacheRequest,
    ) -> Result<pb::PutCacheResponse, Status> {
        let (derived, entry) = self.entry(metadata, &scope, &request.key, Access::Write)?;
        let output = request.output.unwrap_or_default();
        let value = match output.output {
            Some(pb::cached_output::Output::OutputLiterals(literals)) => {
                CachedValue::Literals(literals.into_bytes())
            }
            Some(pb::cached_output::Output::OutputUri(uri)) if !uri.is_empty() => {
                CachedValue::Uri(uri)
            }
            _ => {
                return Err(Status::invalid_argument(
                    "output: neither output_literals nor output_uri is set",
                ));
            }
        };
        let overwrite = request.overwrite.unwrap_or_default();
        let now = system_time_ms(SystemTime::now());
        let existing = self.read(&entry).await;
        let mut created_at_ms = now;
        let mut mode = PublishMode::CreateIfAbsent;
        if let Some(old) = &existing {
            let max_age_ms = overwrite
                .max_age
                .and_then(|d| std::time::Duration::try_from(d).ok())
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .filter(|ms| *ms > 0);
            let expired =
                max_age_ms.is_some_and(|ms| now.saturating_sub(old.last_updated_at_ms) >= ms);
            if !overwrite.overwrite && !expired {
                return Err(already_exists(&scope, &request.key));
            }
            created_at_ms = old.created_at_ms;
            mode = PublishMode::Overwrite;
        }
        let metadata = output.metadata.unwrap_or_default();
        let record = CachedOutputRecord {
            key: request.key.clone(),
            value,
            source_identifier: metadata.source_identifier.map(RawLiteral::into_bytes),
            key_map: metadata
                .key_map
                .map(|m| m.values.into_iter().collect())
                .unwrap_or_default(),
            created_at_ms,
            last_updated_at_ms: now,
        };
        let outputs = [Output::bytes(CACHED_OUTPUT, record.encode())];
        let options = PublishOptions { mode, ttl: None };
        let outcome = self
            .state
            .cache
            .publish(&derived, &outputs, &options, Instant::now())
            .await
            .map_err(status_of)?;
        if !outcome.is_published() {
            return Err(already_exists(&scope, &request.key));
        }
        if overwrite.delete_blob
            && let Some(CachedOutputRecord {
                value: CachedValue::Uri(old_uri),
                ..
            }) = existing.as_deref()
            && record.value != CachedValue::Uri(old_uri.clone())
        {
            self.delete_old_blob(old_uri).await;
        }
        Ok(pb::PutCacheResponse {})
    }

    /// Deletes an overwritten entry's old output URI when it lies under a delete root (an
    /// object already gone counts as deleted); otherwise leaves it. Logged and counted; a
    /// failure is never the Put's.
    async fn delete_old_blob(&self, uri: &str) {
        let result = match tokio::time::timeout(DELETE_BLOB_TIMEOUT, self.delete_roots.delete(uri))
            .await
        {
            Ok(Ok(root)) => {
                tracing::info!(%uri, %root, "delete_blob: deleted the overwritten output");
                "deleted"
            }
            Ok(Err(err @ DeleteUriError::Failed { .. })) => {
                tracing::warn!(error = %err, "delete_blob: the overwritten output was not deleted");
                "failed"
            }
            Ok(Err(err)) => {
                tracing::info!(why = %err,
                    "delete_blob: the overwritten output is left alone (see [flyte] delete_blob_roots)");
                "left"
            }
            Err(_) => {
                tracing::warn!(%uri, timeout = ?DELETE_BLOB_TIMEOUT,
                    "delete_blob: deleting the overwritten output timed out; it may remain");
                "failed"
            }
        };
        self.state
            .metrics
            .flyte_blob_deletes
            .get_or_create(&FlyteBlobDeleteLabels { result })
            .inc();
    }

    async fn delete(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        request: pb::DeleteCacheRequest,
    ) -> Result<pb::DeleteCacheResponse, Status> {
        let (_, entry) = self.entry(metadata, &scope, &request.key, Access::Write)?;
        let report = self
            .state
            .cache
            .evict(&EvictSelector::Key(entry), false)
            .await
            .map_err(status_of)?;
        if report.entries == 0 {
            return Err(Status::not_found(format!(
                "key {:?} of {}/{} not found",
                request.key, scope.project, scope.domain
            )));
        }
        Ok(pb::DeleteCacheResponse {})
    }

    async fn get_or_extend_reservation(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        request: pb::GetOrExtendReservationRequest,
    ) -> Result<pb::GetOrExtendReservationResponse, Status> {
        let (_, entry) = self.entry(metadata, &scope, &request.key, Access::Write)?;
        if request.owner_id.is_empty() {
            return Err(missing("owner_id"));
        }
        let record = super::reserve(
            &self.state,
            &entry,
            &request.owner_id,
            request.heartbeat_interval,
        )
        .await?;
        Ok(pb::GetOrExtendReservationResponse {
            reservation: Some(pb::Reservation {
                key: request.key,
                owner_id: record.owner,
                heartbeat_interval: Some(duration(record.heartbeat_ms)),
                expires_at: Some(timestamp(record.expires_at_ms)),
            }),
        })
    }

    async fn release_reservation(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        request: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, Status> {
        let (_, entry) = self.entry(metadata, &scope, &request.key, Access::Write)?;
        if request.owner_id.is_empty() {
            return Err(missing("owner_id"));
        }
        super::release(&self.state, &entry, &request.owner_id).await?;
        Ok(pb::ReleaseReservationResponse {})
    }
}

/// Implements one generated service trait by delegating each method to [`CacheService`]:
/// `$scope` gives the request's scope and its base request.
macro_rules! delegate {
    ($service:ty, $trait:path, $prefix:literal, |$this:ident, $request:ident| $scope:expr, $base:ident) => {
        #[tonic::async_trait]
        impl $trait for $service {
            async fn get(
                &self,
                $request: Request<delegate!(@in $base GetCacheRequest)>,
            ) -> Result<Response<pb::GetCacheResponse>, Status> {
                let $this = &self.0;
                let result = async {
                    let (scope, base) = $scope?;
                    $this.get($request.metadata(), scope, base).await
                }
                .await;
                self.0.finish(concat!($prefix, "Get"), result)
            }
            async fn put(
                &self,
                $request: Request<delegate!(@in $base PutCacheRequest)>,
            ) -> Result<Response<pb::PutCacheResponse>, Status> {
                let $this = &self.0;
                let result = async {
                    let (scope, base) = $scope?;
                    $this.put($request.metadata(), scope, base).await
                }
                .await;
                self.0.finish(concat!($prefix, "Put"), result)
            }
            async fn delete(
                &self,
                $request: Request<delegate!(@in $base DeleteCacheRequest)>,
            ) -> Result<Response<pb::DeleteCacheResponse>, Status> {
                let $this = &self.0;
                let result = async {
                    let (scope, base) = $scope?;
                    $this.delete($request.metadata(), scope, base).await
                }
                .await;
                self.0.finish(concat!($prefix, "Delete"), result)
            }
            async fn get_or_extend_reservation(
                &self,
                $request: Request<delegate!(@in $base GetOrExtendReservationRequest)>,
            ) -> Result<Response<pb::GetOrExtendReservationResponse>, Status> {
                let $this = &self.0;
                let result = async {
                    let (scope, base) = $scope?;
                    $this
                        .get_or_extend_reservation($request.metadata(), scope, base)
                        .await
                }
                .await;
                self.0
                    .finish(concat!($prefix, "GetOrExtendReservation"), result)
            }
            async fn release_reservation(
                &self,
                $request: Request<delegate!(@in $base ReleaseReservationRequest)>,
            ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
                let $this = &self.0;
                let result = async {
                    let (scope, base) = $scope?;
                    $this
                        .release_reservation($request.metadata(), scope, base)
                        .await
                }
                .await;
                self.0
                    .finish(concat!($prefix, "ReleaseReservation"), result)
            }
        }
    };
    (@in base $name:ident) => {
        pb::$name
    };
    (@in v2 $name:ident) => {
        pb2::$name
    };
}

delegate!(
    BaseService,
    pb::cache_service_server::CacheService,
    "CacheService.",
    |this, request| this
        .default_scope()
        .map(|scope| (scope, request.get_ref().clone())),
    base
);

delegate!(
    V2Service,
    pb2::cache_service_server::CacheService,
    "CacheService.v2.",
    |this, request| {
        let inner = request.get_ref();
        CacheService::scope(inner.identifier.as_ref())
            .map(|scope| (scope, inner.base_request.clone().unwrap_or_default()))
    },
    v2
);

/// Both services' methods as Connect calls them (by path, encoded messages), so that a
/// Connect call runs the very methods a gRPC call runs, without gRPC's framing.
pub struct ConnectMethods {
    base: BaseService,
    v2: V2Service,
}

impl ConnectMethods {
    /// The base and v2 services over `service`.
    pub fn new(service: CacheService) -> Self {
        ConnectMethods {
            base: BaseService(service.clone()),
            v2: V2Service(service),
        }
    }
}

impl Unary for ConnectMethods {
    fn call(
        &self,
        path: &str,
        metadata: MetadataMap,
        message: Bytes,
    ) -> Option<BoxFuture<'_, Result<Vec<u8>, Status>>> {
        use pb::cache_service_server::CacheService as Base;
        use pb2::cache_service_server::CacheService as V2;
        let (base, v2) = (&self.base, &self.v2);
        let (service, method) = split_path(path)?;
        Some(match (service, method) {
            ("flyteidl2.cacheservice.CacheService", "Get") => {
                Box::pin(call_unary(metadata, message, |r| Base::get(base, r)))
            }
            ("flyteidl2.cacheservice.CacheService", "Put") => {
                Box::pin(call_unary(metadata, message, |r| Base::put(base, r)))
            }
            ("flyteidl2.cacheservice.CacheService", "Delete") => {
                Box::pin(call_unary(metadata, message, |r| Base::delete(base, r)))
            }
            ("flyteidl2.cacheservice.CacheService", "GetOrExtendReservation") => {
                Box::pin(call_unary(metadata, message, |r| {
                    Base::get_or_extend_reservation(base, r)
                }))
            }
            ("flyteidl2.cacheservice.CacheService", "ReleaseReservation") => {
                Box::pin(call_unary(metadata, message, |r| {
                    Base::release_reservation(base, r)
                }))
            }
            ("flyteidl2.cacheservice.v2.CacheService", "Get") => {
                Box::pin(call_unary(metadata, message, |r| V2::get(v2, r)))
            }
            ("flyteidl2.cacheservice.v2.CacheService", "Put") => {
                Box::pin(call_unary(metadata, message, |r| V2::put(v2, r)))
            }
            ("flyteidl2.cacheservice.v2.CacheService", "Delete") => {
                Box::pin(call_unary(metadata, message, |r| V2::delete(v2, r)))
            }
            ("flyteidl2.cacheservice.v2.CacheService", "GetOrExtendReservation") => {
                Box::pin(call_unary(metadata, message, |r| {
                    V2::get_or_extend_reservation(v2, r)
                }))
            }
            ("flyteidl2.cacheservice.v2.CacheService", "ReleaseReservation") => {
                Box::pin(call_unary(metadata, message, |r| {
                    V2::release_reservation(v2, r)
                }))
            }
            _ => return None,
        })
    }
}

fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("{field} is missing or empty"))
}

fn already_exists(scope: &Scope, key: &str) -> Status {
    Status::already_exists(format!(
        "key {key:?} of {}/{} already has an output (set overwrite, or max_age to replace an old one)",
        scope.project, scope.domain
    ))
}

fn output_message(record: &CachedOutputRecord) -> pb::CachedOutput {
    let output = match &record.value {
        CachedValue::Literals(bytes) => {
            pb::cached_output::Output::OutputLiterals(RawLiteral::from_bytes(bytes.clone()))
        }
        CachedValue::Uri(uri) => pb::cached_output::Output::OutputUri(uri.clone()),
    };
    pb::CachedOutput {
        output: Some(output),
        metadata: Some(pb::Metadata {
            source_identifier: record.source_identifier.clone().map(RawLiteral::from_bytes),
            key_map: Some(pb::KeyMapMetadata {
                values: record
                    .key_map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }),
            created_at: Some(timestamp(record.created_at_ms)),
            last_updated_at: Some(timestamp(record.last_updated_at_ms)),
        }),
    }
}

//! Flyte's catalog protocols as recalld front doors: [`datacatalog`] (Flyte 1's
//! `datacatalog.DataCatalog`, for flytepropeller) and [`cacheservice`] (Flyte 2's
//! `flyteidl2.cacheservice` services, for its executor, over gRPC and Connect). Each maps Flyte's objects onto ordinary
//! recall entries (recall_store::catalog, docs/LAYOUT.md section 12) and serves them through
//! the same lookup, publish and lease paths as the HTTP API; this module holds what they share
//! (reading an entry's one output, dropping a broken entry, reservations as leases).

pub mod cacheservice;
pub mod datacatalog;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost_types::Timestamp;
use recall_key::Digest;
use recall_store::{EntryRef, EvictSelector, LeaseRecord, LeaseStatus, StoreError, system_time_ms};
use tonic::Status;

use crate::cache::LookupAnswer;
use crate::error::ApiError;
use crate::grpc::{GrpcDoor, TokenRefusals, code_name, status_of};
use crate::metrics::{FlyteLookupLabels, FlyteRequestLabels};

use crate::state::AppState;

/// The datacatalog service (with gRPC health and reflection) as a service for recalld's
/// connection handling; a call without a known token is refused before its message is read.
pub async fn datacatalog_door(state: Arc<AppState>) -> anyhow::Result<GrpcDoor> {
    const SERVICES: &[&str] = &[datacatalog::SERVICE];
    Ok(GrpcDoor::new(
        SERVICES,
        Arc::new(datacatalog::DataCatalog::new(state.clone())),
        crate::grpc::health_and_reflection(SERVICES, &[recall_flyteidl::FILE_DESCRIPTOR_SET])
            .await?,
        state.auth.clone(),
        TokenRefusals::new("datacatalog", state.metrics.clone()),
    ))
}

/// Flyte 2's CacheService (the base and v2 services) as a service for recalld's connection
/// handling: gRPC, with health and reflection, and Connect unary (binary and JSON) on the
/// same port. Calls without a known token are refused before their message is read.
pub async fn cacheservice_door(state: Arc<AppState>) -> anyhow::Result<crate::connect::Connect> {
    const SERVICES: &[&str] = &[
        "flyteidl2.cacheservice.CacheService",
        "flyteidl2.cacheservice.v2.CacheService",
    ];
    let service = cacheservice::CacheService::new(state.clone());
    if state.config.flyte.cacheservice_insecure_no_auth && state.auth.enabled() {
        tracing::warn!(
            "the CacheService listener takes calls without a token \
             ([flyte] cacheservice_insecure_no_auth): every project and domain is open to whoever reaches it"
        );
    }
    let auth = service.auth.clone();
    let refusals = TokenRefusals::new("cacheservice", state.metrics.clone());
    let unary = Arc::new(cacheservice::ConnectMethods::new(service));
    let grpc = GrpcDoor::new(
        SERVICES,
        unary.clone(),
        crate::grpc::health_and_reflection(SERVICES, &[recall_flyteidl::FILE_DESCRIPTOR_SET])
            .await?,
        auth.clone(),
        refusals.clone(),
    );
    crate::connect::Connect::new(
        grpc,
        unary,
        recall_flyteidl::FILE_DESCRIPTOR_SET,
        auth,
        refusals,
    )
}

/// Catalog records already decoded, by the content digest of their encoded bytes: a hit
/// decodes its record (CBOR) once, not on every lookup. Bytes with a given digest always
/// decode to the same record, so an entry is never stale; it is bounded by encoded bytes.
pub(crate) struct DecodedRecords<T> {
    cache: moka::sync::Cache<Digest, Decoded<T>>,
}

/// One decoded record and the size of its encoding (its weight).
struct Decoded<T> {
    record: Arc<T>,
    size: u32,
}

impl<T> Clone for Decoded<T> {
    fn clone(&self) -> Self {
        Decoded {
            record: self.record.clone(),
            size: self.size,
        }
    }
}

impl<T: Send + Sync + 'static> DecodedRecords<T> {
    /// A memo holding decoded records of up to `max_bytes` encoded bytes in all.
    pub(crate) fn new(max_bytes: u64) -> Self {
        DecodedRecords {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, decoded: &Decoded<T>| decoded.size)
                .build(),
        }
    }

    /// The record `bytes` (whose digest is `digest`) encode, decoded by `decode` unless a
    /// record of the same digest was decoded before. A decoding error is not remembered.
    pub(crate) fn get<E>(
        &self,
        digest: &Digest,
        bytes: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(decoded) = self.cache.get(digest) {
            return Ok(decoded.record);
        }
        let record = Arc::new(decode(bytes)?);
        self.cache.insert(
            *digest,
            Decoded {
                record: record.clone(),
                size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            },
        );
        Ok(record)
    }

    /// Reads `entry`'s `output` (see [`read_output`]) and decodes it through this memo. A
    /// record that does not decode is a miss, and its entry is dropped.
    pub(crate) async fn read<E: std::fmt::Display>(
        &self,
        state: &AppState,
        entry: &EntryRef,
        output: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Record<T> {
        match read_output(state, entry, output).await {
            Read::Found(bytes, digest) => match self.get(&digest, &bytes, decode) {
                Ok(record) => Record::Found(record),
                Err(err) => {
                    drop_broken(state, entry, &err.to_string()).await;
                    Record::Missing
                }
            },
            Read::Missing => Record::Missing,
            Read::Failed => Record::Failed,
        }
    }
}

/// A decoded catalog record as [`DecodedRecords::read`] finds it.
pub(crate) enum Record<T> {
    /// The record.
    Found(Arc<T>),
    /// No entry, or a broken one (dropped).
    Missing,
    /// The store could not be asked in time (already logged and counted).
    Failed,
}

/// What reading one Flyte entry gave.
pub(crate) enum Read {
    /// The entry's one output.
    /// Its bytes, and their BLAKE3 content digest as the manifest gives it (checked against
    /// the bytes when they were read).
    Found(Bytes, Digest),
    /// No usable entry.
    Missing,
    /// The store could not be asked in time (already logged and counted).
    Failed,
}

/// Reads the one output of a Flyte entry through the [`crate::cache::Cache`]: memory
/// tier, breaker, timeout, store. A blob output is streamed and verified; a missing or
/// corrupt one drops the entry (a miss, so the next publish can replace it).
pub(crate) async fn read_output(state: &AppState, entry: &EntryRef, output: &str) -> Read {
    let cache = &state.cache;
    let manifest = match cache.lookup(entry).await {
        LookupAnswer::Hit { manifest, .. } => manifest,
        LookupAnswer::Miss(_) => return Read::Missing,
        LookupAnswer::Failure(cause) => {
            tracing::warn!(%cause, "Flyte lookup failed: answering NotFound (fail open)");
            return Read::Failed;
        }
    };
    let Some(record) = manifest.outputs.get(output) else {
        return Read::Missing;
    };
    if let Some(bytes) = &record.inline {
        return Read::Found(bytes.clone(), record.digest);
    }
    let limit = Duration::from_millis(state.config.timeouts.lookup_ms.max(1000));
    // Ok(None): the blob is missing or its bytes do not verify (the entry is broken).
    let fetch = async {
        let mut blob = match cache.blob(&entry.tenant, &record.digest).await {
            Ok(blob) => blob,
            Err(ApiError::NotFound(_)) => return Ok(None),
            Err(err) => return Err(err.to_string()),
        };
        let mut bytes = Vec::with_capacity(usize::try_from(blob.size).unwrap_or(0));
        while let Some(chunk) = blob.chunks.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StoreError::BlobMismatch { .. }) => return Ok(None),
                Err(err) => return Err(err.to_string()),
            }
        }
        Ok(Some(Bytes::from(bytes)))
    };
    match tokio::time::timeout(limit, fetch).await {
        Ok(Ok(Some(bytes))) => Read::Found(bytes, record.digest),
        Ok(Ok(None)) => {
            drop_broken(state, entry, "its blob is missing or does not verify").await;
            Read::Missing
        }
        Ok(Err(cause)) => {
            state.metrics.backend_errors.inc();
            tracing::warn!(%cause, "Flyte fetch failed: answering NotFound (fail open)");
            Read::Failed
        }
        Err(_) => {
            state.metrics.backend_errors.inc();
            tracing::warn!("Flyte fetch timed out: answering NotFound (fail open)");
            Read::Failed
        }
    }
}

/// Drops an entry whose data is missing, corrupt or does not decode, so the next publish
/// can replace it.
pub(crate) async fn drop_broken(state: &AppState, entry: &EntryRef, why: &str) {
    tracing::warn!(key = %entry.key.to_hex(), %why,
        "Flyte entry's data is missing or corrupt: a miss, and the entry is dropped");
    let selector = EvictSelector::Key(entry.clone());
    if let Err(err) = state.cache.evict(&selector, false).await {
        tracing::warn!(error = %err, "could not drop the broken Flyte entry");
    }
}

/// Grants `owner` the lease of `entry` (a Flyte reservation) or extends it, or answers who
/// holds it. The heartbeat asked for (unset or zero: the maximum) is clamped to `[flyte]
/// reservation_max_heartbeat_secs`, the expiry is heartbeat × `reservation_grace` (neither is
/// ever 0). Fail open: when the store is down, slow, not ready or without conditional writes,
/// the caller is granted a reservation that lives nowhere (logged and counted).
pub(crate) async fn reserve(
    state: &AppState,
    entry: &EntryRef,
    owner: &str,
    asked: Option<prost_types::Duration>,
) -> Result<LeaseRecord, Status> {
    let settings = &state.config.flyte;
    let max = Duration::from_secs(settings.reservation_max_heartbeat_secs);
    let asked = asked
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(max);
    let heartbeat = asked.min(max).max(Duration::from_millis(1));
    let grace = settings.reservation_grace.max(1);
    let call = state
        .cache
        .get_or_extend_lease_with_grace(entry, owner, heartbeat, grace);
    match call.await {
        Ok(LeaseStatus::Acquired(record)) => Ok(record),
        Ok(LeaseStatus::HeldBy(record)) => {
            state.metrics.flyte_reservation_waits.inc();
            Ok(record)
        }
        Err(err @ ApiError::BadRequest(_)) => Err(status_of(err)),
        // Store down, slow, not ready, or without conditional writes: fail open.
        Err(err) => {
            state.metrics.flyte_reservations_failed_open.inc();
            tracing::warn!(%owner, why = %err,
                "reservation granted without the store (fail open): the task runs unserialized");
            let now = system_time_ms(std::time::SystemTime::now());
            let heartbeat_ms = i64::try_from(heartbeat.as_millis()).unwrap_or(i64::MAX);
            Ok(LeaseRecord {
                owner: owner.to_string(),
                released: false,
                acquired_at_ms: now,
                renewed_at_ms: now,
                heartbeat_ms,
                expires_at_ms: now.saturating_add(heartbeat_ms.saturating_mul(i64::from(grace))),
            })
        }
    }
}

/// Releases `owner`'s reservation of `entry`; a missing or foreign one is left alone, and a
/// store failure only logged (the reservation lapses on its own).
pub(crate) async fn release(state: &AppState, entry: &EntryRef, owner: &str) -> Result<(), Status> {
    match state.cache.release_lease(entry, owner).await {
        Ok(_) => Ok(()),
        Err(err @ ApiError::BadRequest(_)) => Err(status_of(err)),
        Err(err) => {
            tracing::warn!(error = %err, "reservation not released: it lapses on its own");
            Ok(())
        }
    }
}

/// Counts a Flyte request by method and status code (`recall_flyte_requests`), and answers it.
pub(crate) fn finish<T>(
    state: &AppState,
    method: &'static str,
    result: Result<T, Status>,
) -> Result<tonic::Response<T>, Status> {
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    state
        .metrics
        .flyte_requests
        .get_or_create(&FlyteRequestLabels {
            method,
            code: code_name(code),
        })
        .inc();
    result.map(tonic::Response::new)
}

/// Counts a Flyte lookup's result (`hit`, `miss`, `failure`) by method.
pub(crate) fn count_lookup(state: &AppState, method: &'static str, result: &'static str) {
    state
        .metrics
        .flyte_lookups
        .get_or_create(&FlyteLookupLabels { method, result })
        .inc();
}

/// Milliseconds since the Unix epoch as a protobuf timestamp.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Milliseconds as a protobuf duration.
pub(crate) fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

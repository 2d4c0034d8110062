//! Key derivation, lookups and publishes.

use std::path::Path as FsPath;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Query, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use recall_api::{FailureAnswer, MissAnswer, PublishAnswer};
use recall_key::{DerivedKey, Digest, InputSource, KeyMaterial, Value};
use recall_store::{
    EntryRef, INLINE_MAX_BYTES, LAYOUT_VERSION, Manifest, Output, OutputData, OutputRecord,
    PublishMode, PublishOptions, PublishOutcome,
};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::view::hit_response;
use super::{Shared, authorize, authorize_level, parsed_query, with_status};
use crate::cache::LookupAnswer;
use crate::config::Access;
use crate::error::ApiError;
use crate::state::AppState;
use crate::status::CacheStatus;

/// Parses key material sent to the daemon. File and directory values would be read from the
/// daemon's own disk, so they must come as supplied hashes instead.
fn material_from_body(body: &str) -> Result<DerivedKey, ApiError> {
    let material = KeyMaterial::from_json(body, FsPath::new("/nonexistent"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for input in material.inputs() {
        if let InputSource::Value(value) = &input.source
            && mentions_paths(value)
        {
            return Err(ApiError::BadRequest(format!(
                "input {:?}: the daemon does not read files; give this input a \"hash\" \
                 (its value digest, e.g. from `recall key --json`)",
                input.name
            )));
        }
    }
    material
        .derive()
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The key that `body` (key material) derives, once the request's token is checked for
/// `need` on its project and domain.
fn authorized_material(
    state: &AppState,
    headers: &HeaderMap,
    body: &str,
    need: Access,
) -> Result<DerivedKey, ApiError> {
    let derived = material_from_body(body)?;
    authorize(
        state,
        headers,
        Some(&derived.project),
        Some(&derived.domain),
        need,
    )?;
    Ok(derived)
}

fn mentions_paths(value: &Value) -> bool {
    match value {
        Value::File(_) | Value::Dir(_) => true,
        Value::List(items) => items.iter().any(mentions_paths),
        Value::Map(entries) => entries.iter().any(|(_, v)| mentions_paths(v)),
        _ => false,
    }
}

/// `POST /v1/keys`: derive a key from key material (docs/KEY-SPEC.md section 8).
pub async fn derive_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let derived = authorized_material(&state, &headers, &body, Access::Read)?;
    Ok((StatusCode::OK, Json(json!(derived))).into_response())
}

/// Query of the lookup routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The caller will overwrite the entry (Flyte's overwrite_cache): the lookup is skipped
    /// and answers CACHE_SKIPPED without asking the store.
    #[serde(default)]
    overwrite: bool,
}

/// `POST /v1/lookup`: derive the key, then look the entry up.
pub async fn lookup_by_material(
    State(state): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<LookupQuery>, QueryRejection>,
    body: String,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let derived = authorized_material(&state, &headers, &body, Access::Read)?;
    let entry = EntryRef::of(&derived)?;
    Ok(answer(&state, &entry, query.overwrite).await)
}

/// `GET /v1/entries/{project}/{domain}/{key}`: look an entry up by its key. Most lookups
/// skip the router and come through [`super::HotLookups`] instead; both end in
/// [`lookup_with`].
pub async fn lookup_by_key(
    State(state): State<Shared>,
    params: RawPathParams,
    request: Request,
) -> Response {
    let (mut project, mut domain, mut key) = ("", "", "");
    for (name, value) in &params {
        match name {
            "project" => project = value,
            "domain" => domain = value,
            "key" => key = value,
            _ => {}
        }
    }
    let (parts, _) = request.into_parts();
    lookup_with(&state, project, domain, key, &parts).await
}

/// The `{project}`, `{domain}` and `{key}` of a lookup-by-key path, when it is one that
/// needs no percent-decoding; `None` for anything else (which then goes through the
/// router, whose answer is the same).
pub(crate) fn entry_lookup_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/v1/entries/")?;
    if rest.contains('%') {
        return None;
    }
    let mut segments = rest.split('/');
    let found = (segments.next()?, segments.next()?, segments.next()?);
    let all_there = !found.0.is_empty() && !found.1.is_empty() && !found.2.is_empty();
    (all_there && segments.next().is_none()).then_some(found)
}

/// Answers a lookup by key, borrowing everything from the request: the (decoded) path
/// segments, the `Authorization` header, and the query string, parsed only when present.
pub(crate) async fn lookup_with(
    state: &Shared,
    project: &str,
    domain: &str,
    key: &str,
    request: &Parts,
) -> Response {
    let overwrite = match request.uri.query() {
        None => false,
        Some(_) => match parsed_query(Query::<LookupQuery>::try_from_uri(&request.uri)) {
            Ok(query) => query.overwrite,
            Err(err) => return err.into_response(),
        },
    };
    match authorized_entry(state, &request.headers, project, domain, key, Access::Read) {
        Ok(entry) => answer(state, &entry, overwrite).await,
        Err(err) => err.into_response(),
    }
}

/// The entry that path segments name, once the request's token is checked for `need` on
/// its project and domain.
pub(crate) fn authorized_entry(
    state: &AppState,
    headers: &HeaderMap,
    project: &str,
    domain: &str,
    key: &str,
    need: Access,
) -> Result<EntryRef, ApiError> {
    let entry = parse_entry(project, domain, key)?;
    authorize(state, headers, Some(project), Some(domain), need)?;
    Ok(entry)
}

/// The entry that path segments name (400 when one is not valid).
pub(crate) fn parse_entry(project: &str, domain: &str, key: &str) -> Result<EntryRef, ApiError> {
    let key: Digest = key
        .parse()
        .map_err(|e: recall_key::DigestParseError| ApiError::BadRequest(format!("key: {e}")))?;
    Ok(EntryRef::new(project, domain, key)?)
}

async fn answer(state: &Shared, entry: &EntryRef, overwrite: bool) -> Response {
    if overwrite {
        // Flyte's overwrite_cache: the caller runs the task and publishes with overwrite.
        return with_status(
            StatusCode::NOT_FOUND,
            CacheStatus::CacheSkipped,
            &MissAnswer::skipped(entry.key),
        );
    }
    match state.cache.lookup(entry).await {
        LookupAnswer::Hit {
            manifest,
            from_hot_tier,
        } => hit_response(&entry.key, from_hot_tier, &manifest),
        LookupAnswer::Miss(miss) => with_status(
            StatusCode::NOT_FOUND,
            CacheStatus::CacheMiss,
            &MissAnswer::new(entry.key, &miss),
        ),
        LookupAnswer::Failure(cause) => with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            CacheStatus::CacheLookupFailure,
            &FailureAnswer {
                cause,
                key: entry.key,
                status: CacheStatus::CacheLookupFailure,
            },
        ),
    }
}

/// Query of `POST /v1/entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    /// Replace an existing entry (Flyte's overwrite_cache).
    #[serde(default)]
    overwrite: bool,
    /// The entry expires this many seconds after publication.
    ttl_secs: Option<u64>,
}

/// `POST /v1/entries`: a multipart body whose first part, `material`, is key material JSON
/// and whose other parts are the outputs, each named by its output name. The token is
/// checked from the headers before any of the body is read (it must be able to write
/// somewhere; its scope is checked once the material names the tenant). The material is
/// held in memory up to `limits.max_material_bytes`; outputs are spooled to disk and hashed
/// as they arrive, so memory stays bounded whatever their size.
pub async fn publish(
    State(state): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<PublishQuery>, QueryRejection>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = parsed_query(query)?;
    authorize_level(&state, &headers, Access::Write)?;
    let material_limit = state.config.limits.max_material_bytes;
    let text = match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some("material") => {
            read_bounded(field, material_limit).await?
        }
        Ok(Some(field)) => {
            return Err(ApiError::BadRequest(format!(
                "the first part must be \"material\", got {:?}",
                field.name().unwrap_or("")
            )));
        }
        Ok(None) => return Err(ApiError::BadRequest("empty multipart body".into())),
        Err(e) => return Err(ApiError::BadRequest(format!("multipart: {e}"))),
    };
    let derived = authorized_material(&state, &headers, &text, Access::Write)?;
    let max_outputs = state.config.limits.max_outputs;
    if derived.outputs.len() as u64 > max_outputs {
        return Err(ApiError::BadRequest(format!(
            "the key material declares {} outputs, more than limits.max_outputs = {max_outputs}",
            derived.outputs.len()
        )));
    }

    // Spool each output, hashing the bytes as they arrive: the store names and checks the
    // blob by that digest, not by what a later read of the file finds. The temporary files
    // are removed when `spooled` is dropped.
    let spool_failed = |e: std::io::Error| {
        state
            .cache
            .publish_failed(&derived.key, format!("spool: {e}"))
    };
    let mut spooled: Vec<(String, tempfile::TempPath, Digest, u64)> = Vec::new();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(ApiError::BadRequest(format!("multipart: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        if !derived.outputs.contains_key(&name) {
            return Err(ApiError::BadRequest(format!(
                "part {name:?} is not a declared output of this key material"
            )));
        }
        if spooled.iter().any(|(n, ..)| *n == name) {
            return Err(ApiError::BadRequest(format!("output {name:?} sent twice")));
        }
        let temp = tempfile::NamedTempFile::new_in(&state.spool_dir)
            .map_err(spool_failed)?
            .into_temp_path();
        let mut file = tokio::fs::File::create(&temp).await.map_err(spool_failed)?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    state.metrics.bytes_in.inc_by(chunk.len() as u64);
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    file.write_all(&chunk).await.map_err(spool_failed)?;
                }
                Ok(None) => break,
                Err(e) => return Err(ApiError::BadRequest(format!("output {name:?}: {e}"))),
            }
        }
        file.flush().await.map_err(spool_failed)?;
        spooled.push((name, temp, Digest::from(hasher.finalize()), size));
    }

    let outputs: Vec<Output> = spooled
        .iter()
        .map(|(name, path, digest, size)| Output {
            name: name.clone(),
            data: OutputData::Received {
                path: path.to_path_buf(),
                digest: *digest,
                size: *size,
            },
        })
        .collect();
    let manifest_size = manifest_size_bound(&derived, &spooled);
    let max_manifest = state.config.limits.max_manifest_bytes;
    if manifest_size > max_manifest {
        return Err(ApiError::BadRequest(format!(
            "the entry's manifest would be {manifest_size} bytes, more than \
             limits.max_manifest_bytes = {max_manifest} (outputs of at most \
             {INLINE_MAX_BYTES} bytes are stored inside it)"
        )));
    }
    let options = PublishOptions {
        mode: if query.overwrite {
            PublishMode::Overwrite
        } else {
            PublishMode::CreateIfAbsent
        },
        ttl: query.ttl_secs.map(Duration::from_secs),
    };
    let outcome = state
        .cache
        .publish(&derived, &outputs, &options, started)
        .await?;
    Ok(match outcome {
        PublishOutcome::Published { manifest, observed } => with_status(
            StatusCode::CREATED,
            CacheStatus::CachePopulated,
            &PublishAnswer::populated(derived.key, &manifest, observed.as_ref()),
        ),
        PublishOutcome::AlreadyExists { existing, observed } => {
            // The kept entry may have gained a record: it is served as it now stands.
            let body = PublishAnswer::existed(derived.key, existing.as_deref(), observed.as_ref());
            with_status(StatusCode::OK, CacheStatus::CacheHit, &body)
        }
    })
}

/// Reads a part into memory, refusing (413) one of more than `limit` bytes as soon as it
/// passes the limit, and one that is not UTF-8 (400).
async fn read_bounded(
    mut field: axum::extract::multipart::Field<'_>,
    limit: u64,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(ApiError::TooLarge(format!(
                        "material: more than limits.max_material_bytes = {limit} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(ApiError::BadRequest(format!("material: {e}"))),
        }
    }
    String::from_utf8(bytes).map_err(|e| ApiError::BadRequest(format!("material: not UTF-8: {e}")))
}

/// An upper bound on the size of the manifest a publish of `spooled` writes: the manifest
/// itself with the largest timestamps, plus room for the producer text, before any
/// nondeterminism record.
fn manifest_size_bound(
    derived: &DerivedKey,
    spooled: &[(String, tempfile::TempPath, Digest, u64)],
) -> u64 {
    let outputs = spooled
        .iter()
        .map(|(name, _, digest, size)| {
            let record = OutputRecord {
                ty: derived
                    .outputs
                    .get(name)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                size: *size,
                digest: *digest,
                // Inline bytes weigh their length; their content does not matter here.
                inline: (*size <= INLINE_MAX_BYTES).then(|| vec![0u8; *size as usize].into()),
            };
            (name.clone(), record)
        })
        .collect();
    let manifest = Manifest {
        layout_version: LAYOUT_VERSION,
        key: derived.clone(),
        outputs,
        created_at_ms: i64::MAX,
        expires_at_ms: Some(i64::MAX),
        producer: String::new(),
        nondeterminism: Vec::new(),
    };
    manifest.encode().len() as u64 + PRODUCER_ALLOWANCE
}

/// Bytes allowed for the manifest's `producer` text in [`manifest_size_bound`].
const PRODUCER_ALLOWANCE: u64 = 1024;

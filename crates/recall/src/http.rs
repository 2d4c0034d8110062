//! [`CacheClient`] over recalld's HTTP API (`--daemon URL`).
//!
//! The daemon does not read local files, so key material is sent with every input as its
//! digest (`"hash"`), computed here by recall-key; the key is the same (docs/KEY-SPEC.md
//! section 7: a supplied digest stands in for the value digest). Blobs are streamed from the
//! daemon and verified here before any byte is kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use recall_key::{DerivedKey, Digest, DigestSource};
use recall_store::{
    DigestChange, EntryRef, EvictReport, GcOptions, GcReport, Lookup, Manifest, Miss,
    NondeterminismOutcome, NondeterminismRecord, OutputRecord, PublishOutcome, TaskEntry, Tenant,
    system_time_ms,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use tokio::io::AsyncWriteExt;

use crate::client::{CacheClient, EvictRequest, EvictTarget, LeaseGrant, OutputFile, StoredEntry};
use crate::error::CliError;

/// A cache client that talks to recalld.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    max_age: Option<Duration>,
}

fn storage(what: impl std::fmt::Display) -> CliError {
    CliError::Storage(what.to_string())
}

impl HttpClient {
    /// A client for the daemon at `url` (`http://127.0.0.1:7700`), with an optional bearer
    /// token; entries older than `max_age` are treated as expired here, on top of the
    /// daemon's own rules. No request is made yet.
    pub fn new(
        url: &str,
        token: Option<String>,
        max_age: Option<Duration>,
    ) -> Result<Self, CliError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--daemon {url:?}: expected an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Usage(format!("--daemon {url:?}: {e}")))?;
        Ok(HttpClient {
            base: url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http,
            max_age,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: RequestBuilder) -> Result<Response, CliError> {
        builder
            .send()
            .await
            .map_err(|e| storage(format!("daemon {}: {e}", self.base)))
    }

    /// Sends a listing request and returns the array in `field` of its 200 answer (empty
    /// when the field is absent).
    async fn listed(
        &self,
        builder: RequestBuilder,
        field: &str,
    ) -> Result<Vec<JsonValue>, CliError> {
        let mut body = self
            .json(self.send(builder).await?, &[StatusCode::OK])
            .await?;
        Ok(match body.get_mut(field).map(JsonValue::take) {
            Some(JsonValue::Array(items)) => items,
            _ => Vec::new(),
        })
    }

    /// Reads a JSON body; a non-success status becomes an error carrying the daemon's text.
    async fn json(&self, response: Response, ok: &[StatusCode]) -> Result<JsonValue, CliError> {
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| storage(format!("daemon {}: {e}", self.base)))?;
        if !ok.contains(&status) {
            let message = serde_json::from_str::<JsonValue>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(body);
            let text = format!("daemon {} answered {status}: {message}", self.base);
            return Err(match status {
                // 501: the daemon's store cannot do what was asked (leases on a store without
                // conditional writes); asking again does not help.
                StatusCode::BAD_REQUEST | StatusCode::NOT_IMPLEMENTED => CliError::Usage(text),
                _ => storage(text),
            });
        }
        serde_json::from_str(&body)
            .map_err(|e| storage(format!("daemon {}: unreadable answer: {e}", self.base)))
    }

    fn entry_path(kind: &str, entry: &EntryRef) -> String {
        format!(
            "/v1/{kind}/{}/{}/{}",
            entry.tenant.project(),
            entry.tenant.domain(),
            entry.key
        )
    }

    /// Streams one blob into `dest`, verifying size and digest; `Ok(false)` when it is
    /// missing or does not verify (nothing is left at `dest` then).
    async fn download(
        &self,
        entry: &EntryRef,
        record: &OutputRecord,
        dest: &Path,
    ) -> Result<bool, CliError> {
        let path = format!(
            "/v1/blobs/{}/{}/{}",
            entry.tenant.project(),
            entry.tenant.domain(),
            record.digest
        );
        let response = self.send(self.request(Method::GET, &path)).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(false),
            _ => {
                self.json(response, &[StatusCode::OK]).await?;
                return Ok(false);
            }
        }
        let temp = dest.with_file_name(format!(
            ".recall-download-{}",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("output")
        ));
        let mut file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| CliError::local(&temp, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut stream = response.bytes_stream();
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                failed = true;
                break;
            };
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| CliError::local(&temp, e))?;
        }
        file.flush().await.map_err(|e| CliError::local(&temp, e))?;
        drop(file);
        let good = !failed
            && hasher.count() == record.size
            && Digest::from(hasher.finalize()) == record.digest;
        if !good {
            let _ = tokio::fs::remove_file(&temp).await;
            return Ok(false);
        }
        tokio::fs::rename(&temp, dest)
            .await
            .map_err(|e| CliError::local(dest, e))?;
        Ok(true)
    }
}

/// The key material JSON the daemon derives `key` from: every input as its digest.
pub fn material_json(key: &DerivedKey) -> JsonValue {
    let inputs: Vec<JsonValue> = key
        .inputs
        .iter()
        .map(|(name, input)| match (input.source, input.digest) {
            (DigestSource::Ignored, _) | (_, None) => {
                json!({"name": name, "type": input.ty.to_string(), "ignore": true})
            }
            (_, Some(digest)) => {
                json!({"name": name, "type": input.ty.to_string(), "hash": digest.to_hex()})
            }
        })
        .collect();
    let outputs: Vec<JsonValue> = key
        .outputs
        .iter()
        .map(|(name, ty)| json!({"name": name, "type": ty.to_string()}))
        .collect();
    json!({
        "project": key.project,
        "domain": key.domain,
        "task": key.task,
        "cache_version": key.cache_version,
        "salt": key.salt,
        "inputs": inputs,
        "outputs": outputs,
    })
}

#[derive(Deserialize)]
struct ManifestView {
    layout_version: u64,
    key: DerivedKey,
    outputs: BTreeMap<String, OutputView>,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    producer: String,
    #[serde(default)]
    nondeterminism: Vec<RecordView>,
}

#[derive(Deserialize)]
struct RecordView {
    observed_at_ms: i64,
    producer: String,
    outcome: String,
    outputs: BTreeMap<String, ChangeView>,
}

#[derive(Deserialize)]
struct ChangeView {
    previous: Digest,
    current: Digest,
}

/// A nondeterminism record from the daemon's JSON view of it.
fn record_of(view: RecordView) -> Result<NondeterminismRecord, CliError> {
    let outcome = NondeterminismOutcome::parse(&view.outcome).ok_or_else(|| {
        storage(format!(
            "daemon sent a nondeterminism record with outcome {:?}",
            view.outcome
        ))
    })?;
    Ok(NondeterminismRecord {
        observed_at_ms: view.observed_at_ms,
        producer: view.producer,
        outcome,
        outputs: view
            .outputs
            .into_iter()
            .map(|(name, c)| {
                (
                    name,
                    DigestChange {
                        previous: c.previous,
                        current: c.current,
                    },
                )
            })
            .collect(),
    })
}

/// The `nondeterminism` field of a publish answer: a record or null.
fn observed_of(body: &JsonValue) -> Result<Option<NondeterminismRecord>, CliError> {
    match body.get("nondeterminism") {
        None | Some(JsonValue::Null) => Ok(None),
        Some(value) => {
            let view: RecordView = serde_json::from_value(value.clone()).map_err(|e| {
                storage(format!(
                    "daemon sent an unreadable nondeterminism record: {e}"
                ))
            })?;
            record_of(view).map(Some)
        }
    }
}

#[derive(Deserialize)]
struct OutputView {
    #[serde(rename = "type")]
    ty: String,
    size: u64,
    digest: Digest,
    inline_base64: Option<String>,
}

/// A manifest from the daemon's JSON view of it.
fn manifest_of(value: &JsonValue) -> Result<Manifest, CliError> {
    let view: ManifestView = serde_json::from_value(value.clone())
        .map_err(|e| storage(format!("daemon sent an unreadable manifest: {e}")))?;
    let mut outputs = BTreeMap::new();
    for (name, o) in view.outputs {
        // Output names become file names under the staging directory: never trust them.
        recall_key::validate_name("output name", &name)
            .map_err(|e| storage(format!("daemon sent a manifest with {e}")))?;
        let inline = match &o.inline_base64 {
            None => None,
            Some(text) => Some(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| storage(format!("daemon sent bad inline bytes: {e}")))?,
            )),
        };
        outputs.insert(
            name,
            OutputRecord {
                ty: o.ty,
                size: o.size,
                digest: o.digest,
                inline,
            },
        );
    }
    Ok(Manifest {
        layout_version: view.layout_version,
        key: view.key,
        outputs,
        created_at_ms: view.created_at_ms,
        expires_at_ms: view.expires_at_ms,
        producer: view.producer,
        nondeterminism: view
            .nondeterminism
            .into_iter()
            .map(record_of)
            .collect::<Result<_, _>>()?,
    })
}

fn miss_of(body: &JsonValue) -> Miss {
    let text = |f: &str| {
        body.get(f)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    match body.get("reason").and_then(|r| r.as_str()) {
        Some("expired") => Miss::Expired {
            created_at_ms: body
                .get("created_at_ms")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
        },
        Some("undecodable") => Miss::Undecodable {
            reason: text("detail"),
        },
        Some("broken") => Miss::Broken {
            output: text("output"),
            reason: text("detail"),
        },
        _ => Miss::NotFound,
    }
}

fn count(value: &JsonValue, field: &str) -> u64 {
    value.get(field).and_then(|v| v.as_u64()).unwrap_or(0)
}

#[async_trait]
impl CacheClient for HttpClient {
    /// recalld's `/readyz` shows its store's capabilities; cached like a store's.
    async fn capabilities(&self) -> Option<recall_store::Capabilities> {
        let target = crate::capabilities::target(&self.base);
        if let Some(found) = crate::capabilities::cached(&target) {
            return Some(found);
        }
        let response = self.send(self.request(Method::GET, "/readyz")).await.ok()?;
        let body: JsonValue = response.json().await.ok()?;
        let found: recall_store::Capabilities =
            serde_json::from_value(body.get("capabilities")?.clone()).ok()?;
        crate::capabilities::remember(&target, &found);
        Some(found)
    }

    fn describe(&self) -> String {
        format!("daemon {}", self.base)
    }

    async fn lookup(&self, entry: &EntryRef) -> Result<Lookup<Manifest>, CliError> {
        let response = self
            .send(self.request(Method::GET, &Self::entry_path("entries", entry)))
            .await?;
        let body = self
            .json(response, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        match body.get("manifest") {
            Some(manifest) if body.get("status").and_then(|s| s.as_str()) == Some("CACHE_HIT") => {
                let manifest = manifest_of(manifest)?;
                if manifest.key.key != entry.key
                    || manifest.key.project != entry.tenant.project()
                    || manifest.key.domain != entry.tenant.domain()
                {
                    return Err(storage(format!(
                        "daemon {} answered for another entry than {}",
                        self.base, entry.key
                    )));
                }
                let age_ms = system_time_ms(SystemTime::now()) - manifest.created_at_ms;
                if self
                    .max_age
                    .is_some_and(|max| age_ms > i64::try_from(max.as_millis()).unwrap_or(i64::MAX))
                {
                    return Ok(Lookup::Miss(Miss::Expired {
                        created_at_ms: manifest.created_at_ms,
                    }));
                }
                Ok(Lookup::Hit(manifest))
            }
            _ => Ok(Lookup::Miss(miss_of(&body))),
        }
    }

    async fn stored_entry(&self, entry: &EntryRef) -> Result<Option<StoredEntry>, CliError> {
        // The daemon serves live entries only: an expired one is reported by `lookup`.
        Ok(self.lookup(entry).await?.hit().map(|manifest| StoredEntry {
            manifest,
            expired: false,
        }))
    }

    async fn fetch(&self, entry: &EntryRef, dir: &Path) -> Result<Lookup<Manifest>, CliError> {
        let manifest = match self.lookup(entry).await? {
            Lookup::Hit(m) => m,
            miss => return Ok(miss),
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| CliError::local(dir, e))?;
        for (name, record) in &manifest.outputs {
            let dest = dir.join(name);
            let good = match &record.inline {
                Some(bytes) => {
                    let ok = bytes.len() as u64 == record.size
                        && Digest::of_content(bytes) == record.digest;
                    if ok {
                        tokio::fs::write(&dest, bytes)
                            .await
                            .map_err(|e| CliError::local(&dest, e))?;
                    }
                    ok
                }
                None => self.download(entry, record, &dest).await?,
            };
            if !good {
                return Ok(Lookup::Miss(Miss::Broken {
                    output: name.clone(),
                    reason: "the bytes the daemon sent do not match the manifest".into(),
                }));
            }
        }
        Ok(Lookup::Hit(manifest))
    }

    async fn publish(
        &self,
        key: &DerivedKey,
        outputs: &[OutputFile],
        overwrite: bool,
    ) -> Result<PublishOutcome, CliError> {
        let mut form =
            reqwest::multipart::Form::new().text("material", material_json(key).to_string());
        for output in outputs {
            let file = tokio::fs::File::open(&output.path)
                .await
                .map_err(|e| CliError::local(&output.path, e))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| CliError::local(&output.path, e))?
                .len();
            let part = reqwest::multipart::Part::stream_with_length(file, len)
                .file_name(output.name.clone());
            form = form.part(output.name.clone(), part);
        }
        let builder = self
            .request(Method::POST, "/v1/entries")
            .query(&[("overwrite", overwrite)])
            .multipart(form);
        let response = self.send(builder).await?;
        let status = response.status();
        let body = self
            .json(response, &[StatusCode::OK, StatusCode::CREATED])
            .await?;
        let observed = observed_of(&body)?;
        let manifest = body.get("manifest").map(manifest_of).transpose()?;
        match (status, manifest) {
            (StatusCode::CREATED, Some(manifest)) => Ok(PublishOutcome::Published {
                manifest: Box::new(manifest),
                observed,
            }),
            (_, existing) => Ok(PublishOutcome::AlreadyExists {
                existing: existing.map(Box::new),
                observed,
            }),
        }
    }

    async fn lease(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
    ) -> Result<LeaseGrant, CliError> {
        let seconds = heartbeat.as_secs_f64().ceil().max(1.0) as u64;
        let builder = self
            .request(Method::POST, &Self::entry_path("leases", entry))
            .json(&json!({"owner": owner, "heartbeat_seconds": seconds}));
        let body = self
            .json(self.send(builder).await?, &[StatusCode::OK])
            .await?;
        Ok(LeaseGrant {
            granted: body
                .get("granted")
                .and_then(|g| g.as_bool())
                .unwrap_or(false),
            owner: body
                .get("owner")
                .and_then(|o| o.as_str())
                .unwrap_or("")
                .to_string(),
            expires_at_ms: body
                .get("expires_at_ms")
                .and_then(|e| e.as_i64())
                .unwrap_or(0),
        })
    }

    async fn release(&self, entry: &EntryRef, owner: &str) -> Result<bool, CliError> {
        let builder = self
            .request(Method::DELETE, &Self::entry_path("leases", entry))
            .query(&[("owner", owner)]);
        let body = self
            .json(self.send(builder).await?, &[StatusCode::OK])
            .await?;
        Ok(body
            .get("released")
            .and_then(|r| r.as_bool())
            .unwrap_or(false))
    }

    async fn task_entries(
        &self,
        tenant: &Tenant,
        task: &str,
        cache_version: Option<&str>,
    ) -> Result<Vec<TaskEntry>, CliError> {
        let mut builder = self.request(
            Method::GET,
            &format!("/v1/tasks/{}/{}/{task}", tenant.project(), tenant.domain()),
        );
        if let Some(version) = cache_version {
            builder = builder.query(&[("cache_version", version)]);
        }
        let mut entries = Vec::new();
        for item in &self.listed(builder, "entries").await? {
            let key = item
                .get("key")
                .and_then(|k| k.as_str())
                .and_then(|k| k.parse().ok());
            let version = item.get("cache_version").and_then(|v| v.as_str());
            if let (Some(key), Some(version)) = (key, version) {
                entries.push(TaskEntry {
                    cache_version: version.to_string(),
                    key,
                    marked_at_ms: item
                        .get("marked_at_ms")
                        .and_then(|m| m.as_i64())
                        .unwrap_or(0),
                });
            }
        }
        Ok(entries)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, CliError> {
        let listed = self
            .listed(self.request(Method::GET, "/v1/tenants"), "tenants")
            .await?;
        let mut tenants = Vec::new();
        for item in &listed {
            let text = |f: &str| item.get(f).and_then(|v| v.as_str()).unwrap_or("");
            let tenant = Tenant::new(text("project"), text("domain"))
                .map_err(|e| storage(format!("daemon {} listed a tenant with {e}", self.base)))?;
            tenants.push(tenant);
        }
        Ok(tenants)
    }

    async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, CliError> {
        let path = format!("/v1/tasks/{}/{}", tenant.project(), tenant.domain());
        let listed = self
            .listed(self.request(Method::GET, &path), "tasks")
            .await?;
        let mut tasks = Vec::new();
        for task in &listed {
            let task = task.as_str().unwrap_or("");
            recall_key::validate_name("task", task)
                .map_err(|e| storage(format!("daemon {} listed {e}", self.base)))?;
            tasks.push(task.to_string());
        }
        Ok(tasks)
    }

    async fn evict(&self, request: &EvictRequest) -> Result<EvictReport, CliError> {
        let Some(tenant) = &request.tenant else {
            return Err(CliError::Usage(
                "evict through the daemon needs --project and --domain".into(),
            ));
        };
        let mut body = json!({
            "project": tenant.project(),
            "domain": tenant.domain(),
            "dry_run": request.dry_run,
        });
        match &request.target {
            EvictTarget::Key(key) => body["key"] = json!(key.to_hex()),
            EvictTarget::Task {
                task,
                cache_version,
            } => {
                body["task"] = json!(task);
                if let Some(version) = cache_version {
                    body["cache_version"] = json!(version);
                }
            }
            EvictTarget::OlderThan(cutoff_ms) => {
                let age_ms = system_time_ms(SystemTime::now()).saturating_sub(*cutoff_ms);
                body["older_than_seconds"] = json!(u64::try_from(age_ms / 1000).unwrap_or(0));
            }
            EvictTarget::Tenant => {}
        }
        let builder = self.request(Method::POST, "/v1/evict").json(&body);
        let answer = self
            .json(self.send(builder).await?, &[StatusCode::OK])
            .await?;
        Ok(EvictReport {
            entries: count(&answer, "entries"),
            markers: count(&answer, "markers"),
            leases: count(&answer, "leases"),
            blobs: count(&answer, "blobs"),
        })
    }

    async fn gc(&self, tenant: Option<&Tenant>, options: &GcOptions) -> Result<GcReport, CliError> {
        let mut body = json!({
            "grace_seconds": options.grace.as_secs(),
            "dry_run": options.dry_run,
        });
        if let Some(tenant) = tenant {
            body["project"] = json!(tenant.project());
            body["domain"] = json!(tenant.domain());
        }
        let builder = self.request(Method::POST, "/v1/gc").json(&body);
        let a = self
            .json(self.send(builder).await?, &[StatusCode::OK])
            .await?;
        Ok(GcReport {
            manifests: count(&a, "manifests"),
            undecodable_manifests: count(&a, "undecodable_manifests"),
            blobs: count(&a, "blobs"),
            referenced_blobs: count(&a, "referenced_blobs"),
            blobs_in_grace: count(&a, "blobs_in_grace"),
            collectable_blobs: count(&a, "collectable_blobs"),
            collectable_bytes: count(&a, "collectable_bytes"),
            deleted_blobs: count(&a, "deleted_blobs"),
            orphan_markers: count(&a, "orphan_markers"),
            expired_entries: count(&a, "expired_entries"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recall_key::{InputSource, KeyMaterial, Value, ValueType};

    #[test]
    fn material_with_digests_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.csv"), "a,b\n").unwrap();
        let mut material = KeyMaterial::new("p", "d", "t", "1").unwrap();
        material
            .add_input(
                "data",
                ValueType::File,
                InputSource::Value(Value::File(dir.path().join("data.csv"))),
            )
            .unwrap();
        material
            .add_input("n", ValueType::Int, InputSource::Value(Value::Int(3)))
            .unwrap();
        material
            .add_input("seed", ValueType::Int, InputSource::Ignored)
            .unwrap();
        material.add_output("model", ValueType::File).unwrap();
        material.set_salt("s").unwrap();
        let key = material.derive().unwrap();
        let sent = material_json(&key).to_string();
        assert!(!sent.contains("data.csv"), "{sent}");
        let again = KeyMaterial::from_json(&sent, Path::new("/nonexistent"))
            .unwrap()
            .derive()
            .unwrap();
        assert_eq!(again.key, key.key);
    }
}

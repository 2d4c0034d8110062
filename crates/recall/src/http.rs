//! [`CacheClient`] over recalld's HTTP API (`--daemon URL`).
//!
//! The daemon does not read local files, so key material is sent with every input as its
//! digest (`"hash"`), computed here by recall-key; the key is the same (docs/KEY-SPEC.md
//! section 7: a supplied digest stands in for the value digest). Blobs are streamed from the
//! daemon and verified here before any byte is kept.

use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use recall_api::{
    self as api, CacheStatus, HitAnswer, LeaseAnswer, LeaseRequest, ManifestView, MissAnswer,
    PublishAnswer, RecordView, ReleaseAnswer, TaskEntries, Tasks, Tenants,
};
use recall_key::{DerivedKey, Digest, DigestSource};
use recall_store::{
    EntryRef, EvictReport, GcOptions, GcReport, Lookup, Manifest, Miss, NondeterminismRecord,
    OutputRecord, PublishOutcome, TaskEntry, Tenant, system_time_ms,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
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

    /// Sends a request and reads its 200 answer as `T`.
    async fn answer<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, CliError> {
        self.json(self.send(builder).await?, &[StatusCode::OK])
            .await
    }

    /// Reads a JSON body as `T`; a non-success status becomes an error carrying the daemon's
    /// text.
    async fn json<T: DeserializeOwned>(
        &self,
        response: Response,
        ok: &[StatusCode],
    ) -> Result<T, CliError> {
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
                self.json::<JsonValue>(response, &[StatusCode::OK]).await?;
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

/// A manifest from the daemon's JSON view of it.
fn manifest_of(view: ManifestView) -> Result<Manifest, CliError> {
    Manifest::try_from(view).map_err(|e| storage(format!("daemon sent a manifest with {e}")))
}

/// A nondeterminism record from the daemon's JSON view of it.
fn record_of(view: Option<RecordView>) -> Result<Option<NondeterminismRecord>, CliError> {
    view.map(NondeterminismRecord::try_from)
        .transpose()
        .map_err(|e| storage(format!("daemon sent a {e}")))
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
        let body: JsonValue = self
            .json(response, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        let status = body
            .get("status")
            .and_then(|s| CacheStatus::deserialize(s).ok());
        if status != Some(CacheStatus::CacheHit) {
            // A 404 that is not a lookup's answer (no such route) is a miss too.
            let miss = MissAnswer::deserialize(&body).map_or(Miss::NotFound, |m| m.miss());
            return Ok(Lookup::Miss(miss));
        }
        let hit = HitAnswer::deserialize(&body)
            .map_err(|e| storage(format!("daemon sent an unreadable manifest: {e}")))?;
        let manifest = manifest_of(hit.manifest)?;
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
        let answer: PublishAnswer = self
            .json(response, &[StatusCode::OK, StatusCode::CREATED])
            .await?;
        let observed = record_of(answer.nondeterminism)?;
        let manifest = answer.manifest.map(manifest_of).transpose()?;
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
        let request = LeaseRequest {
            owner: owner.to_string(),
            heartbeat_seconds: seconds,
        };
        let builder = self
            .request(Method::POST, &Self::entry_path("leases", entry))
            .json(&request);
        let answer: LeaseAnswer = self.answer(builder).await?;
        Ok(LeaseGrant {
            granted: answer.granted,
            owner: answer.owner,
            expires_at_ms: answer.expires_at_ms,
        })
    }

    async fn release(&self, entry: &EntryRef, owner: &str) -> Result<bool, CliError> {
        let builder = self
            .request(Method::DELETE, &Self::entry_path("leases", entry))
            .query(&[("owner", owner)]);
        let answer: ReleaseAnswer = self.answer(builder).await?;
        Ok(answer.released)
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
        let answer: TaskEntries = self.answer(builder).await?;
        Ok(answer.entries.into_iter().map(TaskEntry::from).collect())
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, CliError> {
        let answer: Tenants = self
            .answer(self.request(Method::GET, "/v1/tenants"))
            .await?;
        answer
            .tenants
            .iter()
            .map(|t| {
                Tenant::try_from(t)
                    .map_err(|e| storage(format!("daemon {} listed a tenant with {e}", self.base)))
            })
            .collect()
    }

    async fn tasks(&self, tenant: &Tenant) -> Result<Vec<String>, CliError> {
        let path = format!("/v1/tasks/{}/{}", tenant.project(), tenant.domain());
        let answer: Tasks = self.answer(self.request(Method::GET, &path)).await?;
        for task in &answer.tasks {
            recall_key::validate_name("task", task)
                .map_err(|e| storage(format!("daemon {} listed {e}", self.base)))?;
        }
        Ok(answer.tasks)
    }

    async fn evict(&self, request: &EvictRequest) -> Result<EvictReport, CliError> {
        let Some(tenant) = &request.tenant else {
            return Err(CliError::Usage(
                "evict through the daemon needs --project and --domain".into(),
            ));
        };
        let mut body = api::EvictRequest {
            project: tenant.project().to_string(),
            domain: tenant.domain().to_string(),
            dry_run: request.dry_run,
            ..api::EvictRequest::default()
        };
        match &request.target {
            EvictTarget::Key(key) => body.key = Some(key.to_hex()),
            EvictTarget::Task {
                task,
                cache_version,
            } => {
                body.task = Some(task.clone());
                body.cache_version = cache_version.clone();
            }
            EvictTarget::OlderThan(cutoff_ms) => {
                let age_ms = system_time_ms(SystemTime::now()).saturating_sub(*cutoff_ms);
                body.older_than_seconds = Some(u64::try_from(age_ms / 1000).unwrap_or(0));
            }
            EvictTarget::Tenant => {}
        }
        let builder = self.request(Method::POST, "/v1/evict").json(&body);
        let answer: api::EvictReport = self.answer(builder).await?;
        Ok(EvictReport::from(&answer))
    }

    async fn gc(&self, tenant: Option<&Tenant>, options: &GcOptions) -> Result<GcReport, CliError> {
        let body = api::GcRequest {
            grace_seconds: Some(options.grace.as_secs()),
            dry_run: options.dry_run,
            project: tenant.map(|t| t.project().to_string()),
            domain: tenant.map(|t| t.domain().to_string()),
        };
        let builder = self.request(Method::POST, "/v1/gc").json(&body);
        let answer: api::GcReport = self.answer(builder).await?;
        Ok(GcReport::from(&answer))
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

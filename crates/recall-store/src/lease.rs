//! Leases for Flyte's cache_serialize (docs/LAYOUT.md section 9): GetOrExtend and Release
//! with nothing but create-if-absent and replace-if-version-matches.

use std::time::Duration;

use ciborium::Value;
use object_store::path::Path;
use object_store::{PutMode, PutPayload, UpdateVersion};
use recall_key::cbor::{Item, encode};

use crate::clock::duration_ms;
use crate::error::StoreError;
use crate::store::{EntryRef, Store};

/// Default grace multiplier: a lease expires after this many missed heartbeats.
pub const DEFAULT_GRACE: u32 = 3;
/// Read-modify-write rounds before contention is reported as an error.
const MAX_ROUNDS: usize = 16;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The holder's id.
    pub owner: String,
    /// Whether the holder released it.
    pub released: bool,
    /// When the current owner first took it, milliseconds since the Unix epoch.
    pub acquired_at_ms: i64,
    /// The owner's last heartbeat.
    pub renewed_at_ms: i64,
    /// The owner's heartbeat interval in milliseconds.
    pub heartbeat_ms: i64,
    /// When the lease lapses unless renewed.
    pub expires_at_ms: i64,
}

impl LeaseRecord {
    /// The object stored at a lease path (docs/LAYOUT.md section 9).
    pub fn encode(&self) -> Vec<u8> {
        let item = Item::Map(vec![
            ("owner".into(), Item::text(&self.owner)),
            (
                "state".into(),
                Item::text(if self.released { "released" } else { "held" }),
            ),
            (
                "acquired_at_ms".into(),
                Item::Int(self.acquired_at_ms.into()),
            ),
            ("renewed_at_ms".into(), Item::Int(self.renewed_at_ms.into())),
            ("heartbeat_ms".into(), Item::Int(self.heartbeat_ms.into())),
            ("expires_at_ms".into(), Item::Int(self.expires_at_ms.into())),
        ]);
        // Fixed, distinct field names: the encoder cannot report a duplicate.
        encode(&item).unwrap_or_default()
    }

    /// Reads a lease object; `None` when the bytes are not one (a corrupt lease is treated
    /// as absent by the lease protocol, so it can be taken over).
    pub fn decode(bytes: &[u8]) -> Option<LeaseRecord> {
        let value: Value = ciborium::from_reader(bytes).ok()?;
        let fields = value.as_map()?;
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v)
        };
        let int = |name: &str| get(name)?.as_integer().and_then(|i| i64::try_from(i).ok());
        let released = match get("state")?.as_text()? {
            "held" => false,
            "released" => true,
            _ => return None,
        };
        Some(LeaseRecord {
            owner: get("owner")?.as_text()?.to_string(),
            released,
            acquired_at_ms: int("acquired_at_ms")?,
            renewed_at_ms: int("renewed_at_ms")?,
            heartbeat_ms: int("heartbeat_ms")?,
            expires_at_ms: int("expires_at_ms")?,
        })
    }

    /// Whether someone other than `owner` holds it at `now`.
    fn held_by_other(&self, owner: &str, now: i64) -> bool {
        !self.released && self.owner != owner && self.expires_at_ms > now
    }
}

/// The answer of [`Store::get_or_extend_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The caller holds the lease (newly, by takeover, or extended) until `expires_at_ms`.
    Acquired(LeaseRecord),
    /// Someone else holds it; wait, then ask again (or look the entry up).
    HeldBy(LeaseRecord),
}

impl Store {
    /// Flyte's GetOrExtendReservation: takes the lease of `entry` for `owner`, extends it if
    /// `owner` already holds it, takes it over if it expired or was released; otherwise reports
    /// who holds it. Expiry is `heartbeat × grace` after this call.
    pub async fn get_or_extend_lease(
        &self,
        entry: &EntryRef,
        owner: &str,
        heartbeat: Duration,
        grace: u32,
    ) -> Result<LeaseStatus, StoreError> {
        check_owner(owner)?;
        if heartbeat.is_zero() {
            return Err(StoreError::InvalidLease {
                field: "heartbeat",
                value: format!("{heartbeat:?}"),
                reason: "must be longer than zero",
            });
        }
        if grace == 0 {
            return Err(StoreError::InvalidLease {
                field: "grace",
                value: grace.to_string(),
                reason: "must be at least 1",
            });
        }
        self.ensure_descriptor().await?;
        let path = self.path(&entry.tenant.lease(&entry.key));
        let heartbeat_ms = duration_ms(heartbeat);
        for _ in 0..MAX_ROUNDS {
            let now = self.config.clock.now_ms();
            let fresh = |acquired_at_ms: i64| LeaseRecord {
                owner: owner.to_string(),
                released: false,
                acquired_at_ms,
                renewed_at_ms: now,
                heartbeat_ms,
                expires_at_ms: now.saturating_add(heartbeat_ms.saturating_mul(grace.into())),
            };
            match self.read_lease(&path).await? {
                None => {
                    let record = fresh(now);
                    let put = self
                        .objects
                        .put_opts(
                            &path,
                            PutPayload::from(record.encode()),
                            PutMode::Create.into(),
                        )
                        .await;
                    match put {
                        Ok(_) => return Ok(LeaseStatus::Acquired(record)),
                        Err(object_store::Error::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(StoreError::backend("put", &path, e)),
                    }
                }
                Some((current, version)) => {
                    if let Some(current) = &current
                        && current.held_by_other(owner, now)
                    {
                        return Ok(LeaseStatus::HeldBy(current.clone()));
                    }
                    let acquired_at_ms = match &current {
                        Some(c) if c.owner == owner && !c.released => c.acquired_at_ms,
                        _ => now,
                    };
                    let record = fresh(acquired_at_ms);
                    if self.replace_lease(&path, &record, version).await? {
                        return Ok(LeaseStatus::Acquired(record));
                    }
                }
            }
        }
        Err(contended(&path))
    }

    /// Flyte's ReleaseReservation: marks the lease released if `owner` holds it. Returns
    /// whether it did; a lease held by someone else, released or absent is left alone.
    pub async fn release_lease(&self, entry: &EntryRef, owner: &str) -> Result<bool, StoreError> {
        check_owner(owner)?;
        let path = self.path(&entry.tenant.lease(&entry.key));
        for _ in 0..MAX_ROUNDS {
            let Some((Some(current), version)) = self.read_lease(&path).await? else {
                return Ok(false);
            };
            if current.owner != owner || current.released {
                return Ok(false);
            }
            let now = self.config.clock.now_ms();
            let record = LeaseRecord {
                released: true,
                renewed_at_ms: now,
                expires_at_ms: now,
                ..current
            };
            if self.replace_lease(&path, &record, version).await? {
                return Ok(true);
            }
        }
        Err(contended(&path))
    }

    /// The lease record of `entry`, if any object is there (`None` inside when undecodable).
    pub async fn read_lease_record(
        &self,
        entry: &EntryRef,
    ) -> Result<Option<Option<LeaseRecord>>, StoreError> {
        let path = self.path(&entry.tenant.lease(&entry.key));
        Ok(self.read_lease(&path).await?.map(|(record, _)| record))
    }

    async fn read_lease(
        &self,
        path: &Path,
    ) -> Result<Option<(Option<LeaseRecord>, UpdateVersion)>, StoreError> {
        let Some((body, version)) = self.read_versioned(path).await? else {
            return Ok(None);
        };
        let record = LeaseRecord::decode(&body);
        if record.is_none() {
            tracing::error!(%path, "lease object is undecodable; treating it as free");
        }
        Ok(Some((record, version)))
    }

    /// Replace-if-version-matches; `false` when someone else wrote in between.
    async fn replace_lease(
        &self,
        path: &Path,
        record: &LeaseRecord,
        version: UpdateVersion,
    ) -> Result<bool, StoreError> {
        let put = self
            .objects
            .put_opts(
                path,
                PutPayload::from(record.encode()),
                PutMode::Update(version).into(),
            )
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(StoreError::backend("put", path, e)),
        }
    }
}

fn check_owner(owner: &str) -> Result<(), StoreError> {
    if owner.is_empty() || owner.len() > 1024 || owner.chars().any(char::is_control) {
        return Err(StoreError::InvalidLease {
            field: "owner",
            value: format!("{owner:?}"),
            reason: "must be 1 to 1024 bytes without control characters",
        });
    }
    Ok(())
}

fn contended(path: &Path) -> StoreError {
    StoreError::backend(
        "lease",
        path,
        object_store::Error::Generic {
            store: "recall-store",
            source: format!("still contended after {MAX_ROUNDS} conditional writes").into(),
        },
    )
}

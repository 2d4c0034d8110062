//! `datacatalog.DataCatalog`: Flyte 1's catalog, as flytepropeller calls it, over recall
//! entries. A dataset, an artifact and a tag are each one entry (recall_store::catalog);
//! a reservation is the lease of the tag's entry.
//!
//! Fail-open, as everywhere in recall: propeller fails a node's round on any lookup error but
//! NotFound, so a store that is slow or down makes GetDataset and GetArtifact answer NotFound
//! within the lookup timeout (the task runs), and GetOrExtendReservation grant the caller (the
//! task runs unserialized). Both are logged and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use recall_flyteidl::RawLiteral;
use recall_flyteidl::datacatalog as pb;
use recall_store::catalog::{
    ARTIFACT_OUTPUT, ArtifactRecord, CatalogItem, DATASET_OUTPUT, DatasetId, DatasetRecord,
};
use recall_store::{EntryRef, Output, PublishMode, PublishOptions, Tenant, system_time_ms};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::config::Access;
use crate::grpc::{Unary, authorize, authorize_level, call_unary, split_path, status_of};
use crate::state::AppState;

use super::{DecodedRecords, Read, Record, timestamp};

/// The service; cheap to clone.
#[derive(Clone)]
pub struct DataCatalog {
    state: Arc<AppState>,
    /// Artifact records decoded once per content (a hit does not decode its CBOR again).
    artifacts: Arc<DecodedRecords<ArtifactRecord>>,
    /// Dataset records, likewise (propeller's every lookup starts with GetDataset).
    datasets: Arc<DecodedRecords<DatasetRecord>>,
    /// The entries lookups address, by dataset and item: a hit does not derive its key again.
    entries: moka::sync::Cache<(DatasetId, ItemName), EntryRef>,
}

/// A [`CatalogItem`] with its name owned, as part of a memo's key.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ItemName {
    Dataset,
    Artifact(String),
    Tag(String),
}

impl From<CatalogItem<'_>> for ItemName {
    fn from(item: CatalogItem<'_>) -> Self {
        match item {
            CatalogItem::Dataset => ItemName::Dataset,
            CatalogItem::Artifact(id) => ItemName::Artifact(id.to_string()),
            CatalogItem::Tag(name) => ItemName::Tag(name.to_string()),
        }
    }
}

/// How many looked-up entries [`DataCatalog`] remembers the keys of.
const REMEMBERED_ENTRIES: u64 = 10_000;

/// Encoded bytes of decoded records each memo keeps at most.
const DECODED_RECORDS_BYTES: u64 = 8 << 20;

impl DataCatalog {
    /// The service over recalld's state.
    pub fn new(state: Arc<AppState>) -> Self {
        DataCatalog {
            state,
            artifacts: Arc::new(DecodedRecords::new(DECODED_RECORDS_BYTES)),
            datasets: Arc::new(DecodedRecords::new(DECODED_RECORDS_BYTES)),
            entries: moka::sync::Cache::new(REMEMBERED_ENTRIES),
        }
    }

    /// The entry of `item` as [`Self::entry`] gives it, remembered for the lookups to come
    /// (a key is a pure function of the dataset and item, so it never goes stale).
    fn entry_ref(&self, id: &DatasetId, item: CatalogItem<'_>) -> Result<EntryRef, Status> {
        let name = (id.clone(), ItemName::from(item));
        if let Some(entry) = self.entries.get(&name) {
            return Ok(entry);
        }
        let (_, entry) = Self::entry(id, item)?;
        self.entries.insert(name, entry.clone());
        Ok(entry)
    }

    /// Counts a request by method and status code.
    fn finish<T>(
        &self,
        method: &'static str,
        result: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        super::finish(&self.state, method, result)
    }

    fn count_lookup(&self, method: &'static str, result: &'static str) {
        super::count_lookup(&self.state, method, result)
    }

    fn authorize<T>(
        &self,
        request: &Request<T>,
        id: &DatasetId,
        need: Access,
    ) -> Result<(), Status> {
        authorize(
            &self.state.auth,
            request.metadata(),
            &id.project,
            &id.domain,
            need,
        )
    }

    /// The entry of `item`, and its key.
    fn entry(
        id: &DatasetId,
        item: CatalogItem<'_>,
    ) -> Result<(recall_key::DerivedKey, EntryRef), Status> {
        let key = id.key(item).map_err(|e| {
            Status::invalid_argument(format!(
                "dataset {}/{}/{}/{}: {e} (recall keeps catalog entries under names of 1 to 128 \
                 characters A-Z a-z 0-9 . _ - +)",
                id.project, id.domain, id.name, id.version
            ))
        })?;
        let entry = EntryRef::of(&key).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((key, entry))
    }

    /// Reads the one output of a catalog entry (see [`super::read_output`]).
    async fn read(&self, entry: &EntryRef, output: &str) -> Read {
        super::read_output(&self.state, entry, output).await
    }

    /// Reads an artifact record by tag or id; `Ok(None)` is a miss.
    async fn read_artifact(
        &self,
        method: &'static str,
        id: &DatasetId,
        item: CatalogItem<'_>,
    ) -> Result<Option<Arc<ArtifactRecord>>, Status> {
        let entry = self.entry_ref(id, item)?;
        let read =
            self.artifacts
                .read(&self.state, &entry, ARTIFACT_OUTPUT, ArtifactRecord::decode);
        let record = match read.await {
            Record::Found(record) => Some(record),
            Record::Missing => None,
            Record::Failed => {
                self.count_lookup(method, "failure");
                return Ok(None);
            }
        };
        self.count_lookup(method, if record.is_some() { "hit" } else { "miss" });
        Ok(record)
    }

    /// Publishes one catalog entry through the cache. `Ok(false)`: a live entry already
    /// existed (create mode).
    async fn publish(
        &self,
        key: &recall_key::DerivedKey,
        output: &str,
        bytes: Vec<u8>,
        options: PublishOptions,
    ) -> Result<bool, Status> {
        let outputs = [Output::bytes(output, bytes)];
        let outcome = self
            .state
            .cache
            .publish(key, &outputs, &options, Instant::now())
            .await
            .map_err(status_of)?;
        Ok(outcome.is_published())
    }

    /// Writes an artifact record as the artifact's entry (and, with `tag`, as the tag's).
    async fn publish_artifact(
        &self,
        record: &ArtifactRecord,
        item: CatalogItem<'_>,
        mode: PublishMode,
        ttl: Option<Duration>,
    ) -> Result<bool, Status> {
        let (key, _) = Self::entry(&record.dataset, item)?;
        let mut record = record.clone();
        record.tag = match item {
            CatalogItem::Tag(tag) => Some(tag.to_string()),
            _ => None,
        };
        self.publish(
            &key,
            ARTIFACT_OUTPUT,
            record.encode(),
            PublishOptions { mode, ttl },
        )
        .await
    }

    async fn create_dataset(
        &self,
        request: Request<pb::CreateDatasetRequest>,
    ) -> Result<pb::CreateDatasetResponse, Status> {
        let dataset = request
            .get_ref()
            .dataset
            .clone()
            .ok_or_else(|| missing("dataset"))?;
        let id = dataset_id(dataset.id.as_ref(), "dataset.id")?;
        self.authorize(&request, &id, Access::Write)?;
        let record = DatasetRecord {
            id: id.clone(),
            uuid: dataset.id.map(|i| i.uuid).unwrap_or_default(),
            metadata: metadata(dataset.metadata),
            partition_keys: dataset.partition_keys,
        };
        let (key, _) = Self::entry(&id, CatalogItem::Dataset)?;
        if self
            .publish(
                &key,
                DATASET_OUTPUT,
                record.encode(),
                PublishOptions::default(),
            )
            .await?
        {
            Ok(pb::CreateDatasetResponse {})
        } else {
            Err(Status::already_exists(format!(
                "dataset {} already exists",
                show(&id)
            )))
        }
    }

    async fn get_dataset(
        &self,
        request: Request<pb::GetDatasetRequest>,
    ) -> Result<pb::GetDatasetResponse, Status> {
        let id = dataset_id(request.get_ref().dataset.as_ref(), "dataset")?;
        self.authorize(&request, &id, Access::Read)?;
        let entry = self.entry_ref(&id, CatalogItem::Dataset)?;
        let read = self
            .datasets
            .read(&self.state, &entry, DATASET_OUTPUT, DatasetRecord::decode);
        let record = match read.await {
            Record::Found(record) => Some(record),
            Record::Missing => None,
            Record::Failed => {
                self.count_lookup("GetDataset", "failure");
                return Err(Status::not_found(format!(
                    "dataset {}: the store did not answer in time (recall fails open: a miss)",
                    show(&id)
                )));
            }
        };
        self.count_lookup("GetDataset", if record.is_some() { "hit" } else { "miss" });
        let record =
            record.ok_or_else(|| Status::not_found(format!("dataset {} not found", show(&id))))?;
        Ok(pb::GetDatasetResponse {
            dataset: Some(dataset_message(&record)),
        })
    }

    async fn create_artifact(
        &self,
        request: Request<pb::CreateArtifactRequest>,
    ) -> Result<pb::CreateArtifactResponse, Status> {
        let artifact = request
            .get_ref()
            .artifact
            .clone()
            .ok_or_else(|| missing("artifact"))?;
        let id = dataset_id(artifact.dataset.as_ref(), "artifact.dataset")?;
        self.authorize(&request, &id, Access::Write)?;
        if artifact.id.is_empty() {
            return Err(missing("artifact.id"));
        }
        let data = artifact_data(artifact.data, "artifact.data")?;
        let (_, dataset_entry) = Self::entry(&id, CatalogItem::Dataset)?;
        if let Read::Missing = self.read(&dataset_entry, DATASET_OUTPUT).await {
            return Err(Status::not_found(format!(
                "dataset {} not found",
                show(&id)
            )));
        }
        let record = ArtifactRecord {
            id: artifact.id.clone(),
            dataset: id.clone(),
            data,
            metadata: metadata(artifact.metadata),
            created_at_ms: system_time_ms(std::time::SystemTime::now()),
            tag: None,
        };
        // Untagged, it expires: if propeller's AddTag never comes, GC removes it.
        let ttl = Duration::from_secs(self.state.config.flyte.untagged_artifact_ttl_secs);
        if self
            .publish_artifact(
                &record,
                CatalogItem::Artifact(&artifact.id),
                PublishMode::CreateIfAbsent,
                Some(ttl),
            )
            .await?
        {
            Ok(pb::CreateArtifactResponse {})
        } else {
            Err(Status::already_exists(format!(
                "artifact {:?} of dataset {} already exists",
                artifact.id,
                show(&id)
            )))
        }
    }

    async fn get_artifact(
        &self,
        request: Request<pb::GetArtifactRequest>,
    ) -> Result<pb::GetArtifactResponse, Status> {
        let id = dataset_id(request.get_ref().dataset.as_ref(), "dataset")?;
        self.authorize(&request, &id, Access::Read)?;
        let item = query(get_query(request.get_ref().query_handle.as_ref()))?;
        let record = self
            .read_artifact("GetArtifact", &id, item)
            .await?
            .ok_or_else(|| Status::not_found(format!("{} not found", describe(item, &id))))?;
        Ok(pb::GetArtifactResponse {
            artifact: Some(artifact_message(&record)),
        })
    }

    async fn add_tag(
        &self,
        request: Request<pb::AddTagRequest>,
    ) -> Result<pb::AddTagResponse, Status> {
        let tag = request
            .get_ref()
            .tag
            .clone()
            .ok_or_else(|| missing("tag"))?;
        let id = dataset_id(tag.dataset.as_ref(), "tag.dataset")?;
        self.authorize(&request, &id, Access::Write)?;
        if tag.name.is_empty() {
            return Err(missing("tag.name"));
        }
        if tag.artifact_id.is_empty() {
            return Err(missing("tag.artifact_id"));
        }
        let record = self
            .read_artifact("AddTag", &id, CatalogItem::Artifact(&tag.artifact_id))
            .await?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "artifact {:?} of dataset {} not found",
                    tag.artifact_id,
                    show(&id)
                ))
            })?;
        if !self
            .publish_artifact(
                &record,
                CatalogItem::Tag(&tag.name),
                PublishMode::CreateIfAbsent,
                None,
            )
            .await?
        {
            return Err(Status::already_exists(format!(
                "tag {:?} of dataset {} already exists",
                tag.name,
                show(&id)
            )));
        }
        // Tagged, the artifact no longer expires.
        if let Err(status) = self
            .publish_artifact(
                &record,
                CatalogItem::Artifact(&record.id),
                PublishMode::Overwrite,
                None,
            )
            .await
        {
            tracing::warn!(artifact = %record.id, error = %status.message(),
                "tagged, but the artifact entry keeps its expiry");
        }
        Ok(pb::AddTagResponse {})
    }

    async fn update_artifact(
        &self,
        request: Request<pb::UpdateArtifactRequest>,
    ) -> Result<pb::UpdateArtifactResponse, Status> {
        let id = dataset_id(request.get_ref().dataset.as_ref(), "dataset")?;
        self.authorize(&request, &id, Access::Write)?;
        let request = request.into_inner();
        let item = query(update_query(request.query_handle.as_ref()))?;
        let data = artifact_data(request.data, "data")?;
        let current = self
            .read_artifact("UpdateArtifact", &id, item)
            .await?
            .ok_or_else(|| Status::not_found(format!("{} not found", describe(item, &id))))?;
        let record = ArtifactRecord {
            data,
            metadata: metadata(request.metadata),
            created_at_ms: system_time_ms(std::time::SystemTime::now()),
            tag: None,
            ..Arc::unwrap_or_clone(current)
        };
        // Datacatalog's tags point at the artifact, so an update by tag or by id is seen
        // through every tag: each tag entry (a copy of the record) is rewritten.
        let mut tags = self.tags_of(&id, &record.id).await?;
        if let CatalogItem::Tag(tag) = item {
            tags.insert(tag.to_string());
        }
        for tag in &tags {
            self.publish_artifact(&record, CatalogItem::Tag(tag), PublishMode::Overwrite, None)
                .await?;
        }
        // Still untagged, it keeps expiring (see create_artifact).
        let ttl = tags
            .is_empty()
            .then(|| Duration::from_secs(self.state.config.flyte.untagged_artifact_ttl_secs));
        self.publish_artifact(
            &record,
            CatalogItem::Artifact(&record.id),
            PublishMode::Overwrite,
            ttl,
        )
        .await?;
        Ok(pb::UpdateArtifactResponse {
            artifact_id: record.id,
        })
    }

    /// The names of the tags of dataset version `id` that point at `artifact`, read from
    /// every entry of the version. A store that does not answer is an error (Unavailable):
    /// a tag left unread would keep the old data.
    async fn tags_of(&self, id: &DatasetId, artifact: &str) -> Result<BTreeSet<String>, Status> {
        let tenant = Tenant::new(&id.project, &id.domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut tags = BTreeSet::new();
        for entry in self
            .entries_of(&tenant, &id.name, Some(&id.version))
            .await?
        {
            match self.read(&entry, ARTIFACT_OUTPUT).await {
                Read::Found(bytes, _) => {
                    if let Ok(ArtifactRecord {
                        id: found,
                        tag: Some(tag),
                        ..
                    }) = ArtifactRecord::decode(&bytes)
                        && found == artifact
                    {
                        tags.insert(tag);
                    }
                }
                Read::Missing => {}
                Read::Failed => {
                    return Err(Status::unavailable(format!(
                        "dataset {}: the store did not answer while finding the tags of \
                         artifact {artifact:?}; nothing was updated",
                        show(id)
                    )));
                }
            }
        }
        Ok(tags)
    }

    /// The live entries of one dataset version (or of every version), as the store's index
    /// markers name them.
    async fn entries_of(
        &self,
        tenant: &Tenant,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<EntryRef>, Status> {
        let listed = self
            .state
            .cache
            .task_entries(tenant, name, version)
            .await
            .map_err(status_of)?;
        listed
            .into_iter()
            .map(|e| {
                EntryRef::new(tenant.project(), tenant.domain(), e.key)
                    .map_err(|err| Status::internal(err.to_string()))
            })
            .collect()
    }

    async fn list_artifacts(
        &self,
        request: Request<pb::ListArtifactsRequest>,
    ) -> Result<pb::ListArtifactsResponse, Status> {
        let id = dataset_id(request.get_ref().dataset.as_ref(), "dataset")?;
        self.authorize(&request, &id, Access::Read)?;
        let request = request.into_inner();
        let (mut tag_filter, mut id_filter) = (None, None);
        for filter in request.filter.map(|f| f.filters).unwrap_or_default() {
            use pb::single_property_filter::PropertyFilter;
            match filter.property_filter {
                Some(PropertyFilter::TagFilter(pb::TagPropertyFilter { property: Some(p) })) => {
                    let pb::tag_property_filter::Property::TagName(tag) = p;
                    tag_filter = Some(tag);
                }
                Some(PropertyFilter::ArtifactFilter(pb::ArtifactPropertyFilter {
                    property: Some(p),
                })) => {
                    let pb::artifact_property_filter::Property::ArtifactId(artifact) = p;
                    id_filter = Some(artifact);
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "filter: recalld filters artifacts by tag_name and artifact_id only \
                         (partitions are not supported)",
                    ));
                }
            }
        }
        let tenant = Tenant::new(&id.project, &id.domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Untagged and tagged records of each artifact id, with the tags met.
        let mut artifacts: BTreeMap<String, (ArtifactRecord, Vec<String>)> = BTreeMap::new();
        for entry in self
            .entries_of(&tenant, &id.name, Some(&id.version))
            .await?
        {
            let Read::Found(bytes, _) = self.read(&entry, ARTIFACT_OUTPUT).await else {
                continue;
            };
            let Ok(mut record) = ArtifactRecord::decode(&bytes) else {
                continue;
            };
            let tag = record.tag.take();
            let slot = artifacts
                .entry(record.id.clone())
                .or_insert_with(|| (record.clone(), Vec::new()));
            if tag.is_none() {
                slot.0 = record;
            }
            slot.1.extend(tag);
        }
        let mut found: Vec<pb::Artifact> = artifacts
            .into_values()
            .filter(|(record, tags)| {
                id_filter.as_ref().is_none_or(|want| &record.id == want)
                    && tag_filter.as_ref().is_none_or(|want| tags.contains(want))
            })
            .map(|(record, mut tags)| {
                tags.sort();
                let mut message = artifact_message(&record);
                let dataset = message.dataset.clone();
                message.tags = tags
                    .into_iter()
                    .map(|name| pb::Tag {
                        name,
                        artifact_id: message.id.clone(),
                        dataset: dataset.clone(),
                    })
                    .collect();
                message
            })
            .collect();
        let ascending = request
            .pagination
            .as_ref()
            .is_some_and(|p| p.sort_order == pb::pagination_options::SortOrder::Ascending as i32);
        found.sort_by_key(|a| (a.created_at.map(|t| (t.seconds, t.nanos)), a.id.clone()));
        if !ascending {
            found.reverse();
        }
        let (artifacts, next_token) = page(found, request.pagination.as_ref())?;
        Ok(pb::ListArtifactsResponse {
            artifacts,
            next_token,
        })
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<pb::ListDatasetsResponse, Status> {
        authorize_level(&self.state.auth, request.metadata(), Access::Read)?;
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let request = request.into_inner();
        let mut want: BTreeMap<&'static str, String> = BTreeMap::new();
        for filter in request.filter.map(|f| f.filters).unwrap_or_default() {
            use pb::dataset_property_filter::Property;
            use pb::single_property_filter::PropertyFilter;
            let Some(PropertyFilter::DatasetFilter(pb::DatasetPropertyFilter {
                property: Some(p),
            })) = filter.property_filter
            else {
                return Err(Status::invalid_argument(
                    "filter: recalld filters datasets by project, domain, name and version only",
                ));
            };
            let (field, value) = match p {
                Property::Project(v) => ("project", v),
                Property::Domain(v) => ("domain", v),
                Property::Name(v) => ("name", v),
                Property::Version(v) => ("version", v),
                Property::Org(v) if v.is_empty() => continue,
                Property::Org(_) => {
                    return Err(Status::invalid_argument(
                        "filter: recalld has no orgs; leave org empty",
                    ));
                }
            };
            want.insert(field, value);
        }
        let matches = |field: &str, value: &str| want.get(field).is_none_or(|w| w == value);
        let tenants = self.state.cache.tenants().await.map_err(status_of)?;
        let visible = self
            .state
            .auth
            .visible(
                header.as_deref(),
                &tenants,
                |t| (t.project(), t.domain()),
                Access::Read,
            )
            .map_err(|_| Status::permission_denied("token may not list datasets"))?;
        let mut found = Vec::new();
        for tenant in visible {
            if !matches("project", tenant.project()) || !matches("domain", tenant.domain()) {
                continue;
            }
            let tasks = self.state.cache.tasks(tenant).await.map_err(status_of)?;
            for task in tasks.iter().filter(|t| matches("name", t)) {
                let version = want.get("version").map(String::as_str);
                for entry in self.entries_of(tenant, task, version).await? {
                    if let Read::Found(bytes, _) = self.read(&entry, DATASET_OUTPUT).await
                        && let Ok(record) = DatasetRecord::decode(&bytes)
                    {
                        found.push(record);
                    }
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let found = found.iter().map(dataset_message).collect();
        let (datasets, next_token) = page(found, request.pagination.as_ref())?;
        Ok(pb::ListDatasetsResponse {
            datasets,
            next_token,
        })
    }

    async fn get_or_extend_reservation(
        &self,
        request: Request<pb::GetOrExtendReservationRequest>,
    ) -> Result<pb::GetOrExtendReservationResponse, Status> {
        let (id, tag) = reservation_id(request.get_ref().reservation_id.as_ref())?;
        self.authorize(&request, &id, Access::Write)?;
        let request = request.into_inner();
        if request.owner_id.is_empty() {
            return Err(missing("owner_id"));
        }
        let (_, entry) = Self::entry(&id, CatalogItem::Tag(&tag))?;
        let record = super::reserve(
            &self.state,
            &entry,
            &request.owner_id,
            request.heartbeat_interval,
        )
        .await?;
        Ok(pb::GetOrExtendReservationResponse {
            reservation: Some(pb::Reservation {
                reservation_id: Some(pb::ReservationId {
                    dataset_id: Some(dataset_id_message(&id, "")),
                    tag_name: tag,
                }),
                owner_id: record.owner,
                heartbeat_interval: Some(super::duration(record.heartbeat_ms)),
                expires_at: Some(timestamp(record.expires_at_ms)),
                metadata: None,
            }),
        })
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<pb::ReleaseReservationResponse, Status> {
        let (id, tag) = reservation_id(request.get_ref().reservation_id.as_ref())?;
        self.authorize(&request, &id, Access::Write)?;
        let owner = &request.get_ref().owner_id;
        if owner.is_empty() {
            return Err(missing("owner_id"));
        }
        let (_, entry) = Self::entry(&id, CatalogItem::Tag(&tag))?;
        super::release(&self.state, &entry, owner).await?;
        Ok(pb::ReleaseReservationResponse {})
    }
}

/// The service's name in gRPC and Connect paths.
pub const SERVICE: &str = "datacatalog.DataCatalog";

/// The unary method table gRPC calls ([`Unary`]): each method decodes its request, calls the
/// inherent method of the same name, counts the answer by method and code
/// ([`DataCatalog::finish`]) and encodes it.
macro_rules! grpc_methods {
    ($($method:ident($request:ident) -> $response:ident as $name:literal;)*) => {
        impl Unary for DataCatalog {
            fn call(
                &self,
                path: &str,
                metadata: MetadataMap,
                message: Bytes,
            ) -> Option<BoxFuture<'_, Result<Vec<u8>, Status>>> {
                let (service, method) = split_path(path)?;
                if service != SERVICE {
                    return None;
                }
                Some(match method {
                    $(
                        $name => Box::pin(call_unary(
                            metadata,
                            message,
                            move |request: Request<pb::$request>| async move {
                                self.finish($name, DataCatalog::$method(self, request).await)
                            },
                        )),
                    )*
                    _ => return None,
                })
            }
        }
    };
}

grpc_methods! {
    create_dataset(CreateDatasetRequest) -> CreateDatasetResponse as "CreateDataset";
    get_dataset(GetDatasetRequest) -> GetDatasetResponse as "GetDataset";
    create_artifact(CreateArtifactRequest) -> CreateArtifactResponse as "CreateArtifact";
    get_artifact(GetArtifactRequest) -> GetArtifactResponse as "GetArtifact";
    add_tag(AddTagRequest) -> AddTagResponse as "AddTag";
    list_artifacts(ListArtifactsRequest) -> ListArtifactsResponse as "ListArtifacts";
    list_datasets(ListDatasetsRequest) -> ListDatasetsResponse as "ListDatasets";
    update_artifact(UpdateArtifactRequest) -> UpdateArtifactResponse as "UpdateArtifact";
    get_or_extend_reservation(GetOrExtendReservationRequest) -> GetOrExtendReservationResponse
        as "GetOrExtendReservation";
    release_reservation(ReleaseReservationRequest) -> ReleaseReservationResponse
        as "ReleaseReservation";
}

/// One page of `items`: `pagination.token` is the offset to start at (empty: 0), `limit` the
/// page size (0: all); the next token is empty on the last page.
fn page<T>(
    items: Vec<T>,
    pagination: Option<&pb::PaginationOptions>,
) -> Result<(Vec<T>, String), Status> {
    let (limit, token) = pagination.map_or((0, ""), |p| (p.limit as usize, p.token.as_str()));
    let start = if token.is_empty() {
        0
    } else {
        token.parse::<usize>().map_err(|_| {
            Status::invalid_argument(format!(
                "pagination.token {token:?}: not a token recalld gave"
            ))
        })?
    };
    let total = items.len();
    let end = if limit == 0 {
        total
    } else {
        start.saturating_add(limit).min(total)
    };
    let next = if end < total {
        end.to_string()
    } else {
        String::new()
    };
    Ok((
        items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect(),
        next,
    ))
}

fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("{field} is missing or empty"))
}

/// A `DatasetID` with every part recall keys on; `field` names it in errors.
fn dataset_id(id: Option<&pb::DatasetId>, field: &str) -> Result<DatasetId, Status> {
    let id = id.ok_or_else(|| missing(field))?;
    for (part, value) in [
        ("project", &id.project),
        ("domain", &id.domain),
        ("name", &id.name),
        ("version", &id.version),
    ] {
        if value.is_empty() {
            return Err(missing(&format!("{field}.{part}")));
        }
    }
    Ok(DatasetId {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
    })
}

fn reservation_id(id: Option<&pb::ReservationId>) -> Result<(DatasetId, String), Status> {
    let id = id.ok_or_else(|| missing("reservation_id"))?;
    let dataset = dataset_id(id.dataset_id.as_ref(), "reservation_id.dataset_id")?;
    if id.tag_name.is_empty() {
        return Err(missing("reservation_id.tag_name"));
    }
    Ok((dataset, id.tag_name.clone()))
}

/// The item a query handle names; an empty one is an invalid argument.
fn query(handle: Option<CatalogItem<'_>>) -> Result<CatalogItem<'_>, Status> {
    match handle {
        Some(item @ (CatalogItem::Tag(name) | CatalogItem::Artifact(name))) if !name.is_empty() => {
            Ok(item)
        }
        _ => Err(missing("artifact_id or tag_name")),
    }
}

/// `item` of dataset `id`, as error messages name it.
fn describe(item: CatalogItem<'_>, id: &DatasetId) -> String {
    match item {
        CatalogItem::Tag(tag) => format!("tag {tag:?} of dataset {}", show(id)),
        CatalogItem::Artifact(artifact) => format!("artifact {artifact:?} of dataset {}", show(id)),
        CatalogItem::Dataset => format!("dataset {}", show(id)),
    }
}

fn get_query(handle: Option<&pb::get_artifact_request::QueryHandle>) -> Option<CatalogItem<'_>> {
    use pb::get_artifact_request::QueryHandle;
    handle.map(|h| match h {
        QueryHandle::TagName(tag) => CatalogItem::Tag(tag),
        QueryHandle::ArtifactId(id) => CatalogItem::Artifact(id),
    })
}

fn update_query(
    handle: Option<&pb::update_artifact_request::QueryHandle>,
) -> Option<CatalogItem<'_>> {
    use pb::update_artifact_request::QueryHandle;
    handle.map(|h| match h {
        QueryHandle::TagName(tag) => CatalogItem::Tag(tag),
        QueryHandle::ArtifactId(id) => CatalogItem::Artifact(id),
    })
}

fn artifact_data(
    data: Vec<pb::ArtifactData>,
    field: &str,
) -> Result<Vec<(String, Vec<u8>)>, Status> {
    if data.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field}: an artifact needs at least one value"
        )));
    }
    data.into_iter()
        .map(|d| {
            if d.name.is_empty() {
                return Err(missing(&format!("{field}.name")));
            }
            Ok((
                d.name,
                d.value.map(RawLiteral::into_bytes).unwrap_or_default(),
            ))
        })
        .collect()
}

fn metadata(metadata: Option<pb::Metadata>) -> BTreeMap<String, String> {
    metadata
        .map(|m| m.key_map.into_iter().collect())
        .unwrap_or_default()
}

fn show(id: &DatasetId) -> String {
    format!("{}/{}/{}/{}", id.project, id.domain, id.name, id.version)
}

fn dataset_id_message(id: &DatasetId, uuid: &str) -> pb::DatasetId {
    pb::DatasetId {
        project: id.project.clone(),
        name: id.name.clone(),
        domain: id.domain.clone(),
        version: id.version.clone(),
        uuid: uuid.to_string(),
        org: String::new(),
    }
}

fn dataset_message(record: &DatasetRecord) -> pb::Dataset {
    pb::Dataset {
        id: Some(dataset_id_message(&record.id, &record.uuid)),
        metadata: Some(pb::Metadata {
            key_map: record.metadata.clone().into_iter().collect(),
        }),
        partition_keys: record.partition_keys.clone(),
    }
}

fn artifact_message(record: &ArtifactRecord) -> pb::Artifact {
    let dataset = dataset_id_message(&record.dataset, "");
    pb::Artifact {
        tags: record
            .tag
            .iter()
            .map(|name| pb::Tag {
                name: name.clone(),
                artifact_id: record.id.clone(),
                dataset: Some(dataset.clone()),
            })
            .collect(),
        id: record.id.clone(),
        dataset: Some(dataset),
        data: record
            .data
            .iter()
            .map(|(name, literal)| pb::ArtifactData {
                name: name.clone(),
                value: Some(RawLiteral::from_bytes(literal.clone())),
            })
            .collect(),
        metadata: Some(pb::Metadata {
            key_map: record
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        partitions: Vec::new(),
        created_at: Some(timestamp(record.created_at_ms)),
    }
}

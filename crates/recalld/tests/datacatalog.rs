//! recalld as Flyte's datacatalog, through a tonic client of recall-flyteidl's generated
//! code: the real binary over local disk and over the S3 test server (`RECALL_TEST_SKIP=s3`
//! skips that one, saying so). tests/python/test_flyte_datacatalog.py replays every propeller
//! sequence with flyteidl's own stubs; this checks the Rust side end to end, health and
//! reflection included.

mod common;

use common::{Backend, Daemon, Options};
use recall_flyteidl::RawLiteral;
use recall_flyteidl::datacatalog as pb;
use recall_flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use recall_flyteidl::flyteidl::core::{Literal, Primitive, Scalar, literal, primitive, scalar};
use tonic::Code;
use tonic::transport::Channel;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start(backend: &Backend) -> (Daemon, Channel) {
    let port = free_port();
    let options = Options {
        toml: format!("[flyte]\ndatacatalog_listen = \"127.0.0.1:{port}\"\n"),
        ..Options::default()
    };
    let daemon = Daemon::start(backend, &options);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the datacatalog listener");
    (daemon, channel)
}

fn dataset() -> pb::DatasetId {
    pb::DatasetId {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "flyte_task-wf.square".into(),
        version: "1.0-abcd1234-ef567890".into(),
        ..pb::DatasetId::default()
    }
}

fn int(value: i64) -> RawLiteral {
    RawLiteral::encode_message(&Literal {
        value: Some(literal::Value::Scalar(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(value)),
            })),
        })),
        ..Literal::default()
    })
}

async fn get_by_tag(
    client: &mut DataCatalogClient<Channel>,
    tag: &str,
) -> Result<pb::Artifact, tonic::Status> {
    let dataset = client
        .get_dataset(pb::GetDatasetRequest {
            dataset: Some(dataset()),
        })
        .await?
        .into_inner()
        .dataset
        .and_then(|d| d.id);
    let answer = client
        .get_artifact(pb::GetArtifactRequest {
            dataset,
            query_handle: Some(pb::get_artifact_request::QueryHandle::TagName(tag.into())),
        })
        .await?;
    Ok(answer.into_inner().artifact.expect("artifact"))
}

async fn miss_populate_hit(backend: &Backend) {
    let (_daemon, channel) = start(backend).await;
    let mut client = DataCatalogClient::new(channel.clone());
    let tag = "flyte_cached-rust";
    let miss = get_by_tag(&mut client, tag).await.unwrap_err();
    assert_eq!(miss.code(), Code::NotFound, "{miss:?}");

    client
        .create_dataset(pb::CreateDatasetRequest {
            dataset: Some(pb::Dataset {
                id: Some(dataset()),
                ..pb::Dataset::default()
            }),
        })
        .await
        .expect("create dataset");
    let again = client
        .create_dataset(pb::CreateDatasetRequest {
            dataset: Some(pb::Dataset {
                id: Some(dataset()),
                ..pb::Dataset::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    // A literal with a field our literals.proto lacks (8: offloaded metadata) comes back as sent.
    let mut unknown = int(81).into_bytes();
    unknown.extend_from_slice(&[0x42, 0x03, 0x0a, 0x01, b'u']);
    let data = vec![
        pb::ArtifactData {
            name: "o0".into(),
            value: Some(int(81)),
        },
        pb::ArtifactData {
            name: "o1".into(),
            value: Some(RawLiteral::from_bytes(unknown.clone())),
        },
    ];
    client
        .create_artifact(pb::CreateArtifactRequest {
            artifact: Some(pb::Artifact {
                id: "artifact-1".into(),
                dataset: Some(dataset()),
                data: data.clone(),
                ..pb::Artifact::default()
            }),
        })
        .await
        .expect("create artifact");
    client
        .add_tag(pb::AddTagRequest {
            tag: Some(pb::Tag {
                name: tag.into(),
                artifact_id: "artifact-1".into(),
                dataset: Some(dataset()),
            }),
        })
        .await
        .expect("add tag");
    let hit = get_by_tag(&mut client, tag).await.expect("a hit");
    assert_eq!(hit.id, "artifact-1");
    assert_eq!(hit.data, data);
    assert_eq!(hit.data[1].value.as_ref().unwrap().as_bytes(), unknown);

    // Health and reflection are served beside the catalog.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "datacatalog.DataCatalog".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
        ..Default::default()
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let listed = format!("{:?}", answer.message_response);
    assert!(listed.contains("datacatalog.DataCatalog"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_local_disk() {
    miss_populate_hit(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_s3() {
    let Some(backend) = Backend::s3("recalld", "datacatalog").await else {
        return;
    };
    miss_populate_hit(&backend).await;
}

async fn get_artifact(
    client: &mut DataCatalogClient<Channel>,
    handle: pb::get_artifact_request::QueryHandle,
) -> Result<pb::Artifact, tonic::Status> {
    let answer = client
        .get_artifact(pb::GetArtifactRequest {
            dataset: Some(dataset()),
            query_handle: Some(handle),
        })
        .await?;
    Ok(answer.into_inner().artifact.expect("artifact"))
}

/// The one value of an artifact, as the integer literal it was given.
fn value_of(artifact: &pb::Artifact) -> RawLiteral {
    artifact.data[0].value.clone().expect("value")
}

async fn update(
    client: &mut DataCatalogClient<Channel>,
    handle: pb::update_artifact_request::QueryHandle,
    value: i64,
) -> Result<String, tonic::Status> {
    let answer = client
        .update_artifact(pb::UpdateArtifactRequest {
            dataset: Some(dataset()),
            query_handle: Some(handle),
            data: vec![pb::ArtifactData {
                name: "o0".into(),
                value: Some(int(value)),
            }],
            metadata: None,
        })
        .await?;
    Ok(answer.into_inner().artifact_id)
}

/// Issue 15: UpdateArtifact by artifact_id rewrites every tag of the artifact, and by tag every
/// other tag and the artifact, so all three ways of reading it agree; `POST /v1/evict` of the
/// dataset (by task, then by version) leaves nothing readable by tag or by artifact_id.
async fn by_id_and_by_tag_agree(backend: &Backend) {
    use pb::get_artifact_request::QueryHandle as Get;
    use pb::update_artifact_request::QueryHandle as Update;
    let (daemon, channel) = start(backend).await;
    let mut client = DataCatalogClient::new(channel);
    client
        .create_dataset(pb::CreateDatasetRequest {
            dataset: Some(pb::Dataset {
                id: Some(dataset()),
                ..pb::Dataset::default()
            }),
        })
        .await
        .expect("create dataset");
    let create = |id: &str, value: i64| pb::CreateArtifactRequest {
        artifact: Some(pb::Artifact {
            id: id.into(),
            dataset: Some(dataset()),
            data: vec![pb::ArtifactData {
                name: "o0".into(),
                value: Some(int(value)),
            }],
            ..pb::Artifact::default()
        }),
    };
    let tag = |name: &str, artifact: &str| pb::AddTagRequest {
        tag: Some(pb::Tag {
            name: name.into(),
            artifact_id: artifact.into(),
            dataset: Some(dataset()),
        }),
    };
    client.create_artifact(create("a1", 1)).await.expect("a1");
    client.create_artifact(create("a2", 10)).await.expect("a2");
    for (name, artifact) in [("t1", "a1"), ("t2", "a1"), ("other", "a2")] {
        client.add_tag(tag(name, artifact)).await.expect("add tag");
    }

    let reads = async |client: &mut DataCatalogClient<Channel>| {
        let mut values = Vec::new();
        for handle in [
            Get::ArtifactId("a1".into()),
            Get::TagName("t1".into()),
            Get::TagName("t2".into()),
        ] {
            let artifact = get_artifact(client, handle).await.expect("a hit");
            assert_eq!(artifact.id, "a1");
            values.push(value_of(&artifact));
        }
        values
    };
    let id = update(&mut client, Update::ArtifactId("a1".into()), 2)
        .await
        .expect("update by id");
    assert_eq!(id, "a1");
    assert_eq!(reads(&mut client).await, vec![int(2); 3]);
    update(&mut client, Update::TagName("t1".into()), 3)
        .await
        .expect("update by tag");
    assert_eq!(reads(&mut client).await, vec![int(3); 3]);
    // The other artifact and its tag are untouched.
    let other = get_artifact(&mut client, Get::TagName("other".into()))
        .await
        .expect("other tag");
    assert_eq!((other.id.as_str(), value_of(&other)), ("a2", int(10)));
    let missing = update(&mut client, Update::ArtifactId("nope".into()), 4)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Eviction of the dataset's version, then of the whole dataset (task): nothing answers.
    let ds = dataset();
    for evict in [
        serde_json::json!({"project": ds.project, "domain": ds.domain, "task": ds.name,
            "cache_version": ds.version}),
        serde_json::json!({"project": ds.project, "domain": ds.domain, "task": ds.name}),
    ] {
        let (status, body) = daemon.post("/v1/evict", &evict, None).await;
        assert_eq!(status, 200, "{body}");
        for handle in [
            Get::ArtifactId("a1".into()),
            Get::ArtifactId("a2".into()),
            Get::TagName("t1".into()),
            Get::TagName("other".into()),
        ] {
            let err = get_artifact(&mut client, handle.clone())
                .await
                .expect_err("evicted");
            assert_eq!(err.code(), Code::NotFound, "{handle:?}: {err:?}");
        }
        let err = client
            .get_dataset(pb::GetDatasetRequest {
                dataset: Some(dataset()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        // Populate again for the next eviction.
        client
            .create_dataset(pb::CreateDatasetRequest {
                dataset: Some(pb::Dataset {
                    id: Some(dataset()),
                    ..pb::Dataset::default()
                }),
            })
            .await
            .expect("create dataset again");
        client.create_artifact(create("a1", 5)).await.expect("a1");
        client.create_artifact(create("a2", 6)).await.expect("a2");
        client.add_tag(tag("t1", "a1")).await.expect("t1");
        client.add_tag(tag("other", "a2")).await.expect("other");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_id_and_by_tag_agree_local_disk() {
    by_id_and_by_tag_agree(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_id_and_by_tag_agree_s3() {
    let Some(backend) = Backend::s3("recalld", "datacatalog-by-id").await else {
        return;
    };
    by_id_and_by_tag_agree(&backend).await;
}

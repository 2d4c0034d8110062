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

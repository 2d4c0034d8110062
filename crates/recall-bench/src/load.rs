//! `recall-bench load`: one hot entry served by recalld through one front door (HTTP, Flyte's
//! datacatalog over gRPC, or Flyte 2's CacheService over Connect unary), hammered by N
//! concurrent clients for a fixed time.
//!
//! The entry is written first through the same protocol's own calls (HTTP: POST /v1/keys and
//! POST /v1/entries; datacatalog: CreateDataset, CreateArtifact, AddTag; Connect: Put), unless
//! a first hit request finds it there already (an earlier run of the same load), and read once
//! so that it sits in recalld's memory tier. HTTP and Connect share one client stack
//! (reqwest over HTTP/1.1, one pooled connection per client); gRPC uses tonic, one HTTP/2
//! channel per client, so each protocol gets N connections, unless `--grpc-channels K` shares
//! K channels among the N clients (K = 1 is how flytepropeller calls datacatalog: one
//! `grpc.Dial`, every call multiplexed over it).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use prost::Message;
use recall_flyteidl::RawLiteral;
use recall_flyteidl::cacheservice as cs;
use recall_flyteidl::cacheservice::v2 as cs2;
use recall_flyteidl::datacatalog as dc;
use recall_flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use recall_flyteidl::flyteidl::core::{Literal, Primitive, Scalar, literal, primitive, scalar};
use tonic::transport::Channel;

const PROJECT: &str = "bench";
const DOMAIN: &str = "perf";
const TAG: &str = "flyte_cached-bench";
const CONNECT_PATH: &str = "/flyteidl2.cacheservice.v2.CacheService";

/// Which front door a load goes through.
#[derive(Clone, Copy)]
enum Protocol {
    Http,
    Datacatalog,
    Connect,
}

/// What every client of one protocol needs to send a hit request.
#[derive(Clone)]
enum Target {
    Http {
        client: reqwest::Client,
        url: String,
    },
    Datacatalog {
        client: Box<DataCatalogClient<Channel>>,
        request: dc::GetArtifactRequest,
    },
    Connect {
        client: reqwest::Client,
        url: String,
        body: bytes::Bytes,
    },
}

/// `load --protocol P --url URL [--connections N] [--seconds S] [--grpc-channels K]`.
pub async fn run(args: &[&str]) -> anyhow::Result<()> {
    let (mut protocol, mut url, mut connections, mut seconds) = (None, None, 50u64, 10u64);
    let mut grpc_channels = None;
    for (flag, value) in crate::flag_values(args)? {
        match flag {
            "--protocol" => {
                protocol = Some(match value {
                    "http" => Protocol::Http,
                    "datacatalog" => Protocol::Datacatalog,
                    "connect" => Protocol::Connect,
                    other => bail!("--protocol {other:?}: expected http, datacatalog or connect"),
                })
            }
            "--url" => url = Some(value.trim_end_matches('/').to_string()),
            "--connections" => connections = crate::number(value, "--connections")?,
            "--seconds" => seconds = crate::number(value, "--seconds")?,
            "--grpc-channels" => {
                grpc_channels = Some(crate::number(value, "--grpc-channels")?.max(1))
            }
            other => bail!(
                "unknown flag {other:?} (expected --protocol, --url, --connections, --seconds, \
                 --grpc-channels)"
            ),
        }
    }
    let protocol = protocol.context("--protocol is required")?;
    let url = url.context("--url is required")?;
    if connections == 0 {
        bail!("--connections 0: at least one client is needed");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize)
        .build()?;
    let target = match protocol {
        Protocol::Http => populate_http(&http, &url).await?,
        Protocol::Datacatalog => populate_datacatalog(&url).await?,
        Protocol::Connect => populate_connect(&http, &url).await?,
    };
    // Each gRPC client gets its own channel (connection), or one of `--grpc-channels`
    // shared ones; HTTP clients share the pool.
    let mut channels = Vec::new();
    if matches!(target, Target::Datacatalog { .. }) {
        for _ in 0..grpc_channels.unwrap_or(connections).min(connections) {
            channels.push(Channel::from_shared(url.clone())?.connect().await?);
        }
    }
    let mut targets = Vec::new();
    for client in 0..connections {
        targets.push(match &target {
            Target::Datacatalog { request, .. } => Target::Datacatalog {
                client: Box::new(DataCatalogClient::new(
                    channels[client as usize % channels.len()].clone(),
                )),
                request: request.clone(),
            },
            other => other.clone(),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers = targets.into_iter().map(|mut target| {
        tokio::spawn(async move {
            let (mut times, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match hit(&mut target).await {
                    Ok(()) => times.push(t0.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (times, errors)
        })
    });
    let (mut times, mut errors) = (Vec::new(), 0);
    for worker in futures::future::join_all(workers).await {
        let (t, e) = worker?;
        times.extend(t);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if times.is_empty() {
        bail!("no request succeeded ({errors} errors)");
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    // The URL an HTTP hit GETs, for other load generators to hit the same entry.
    let url = match &target {
        Target::Http { url, .. } => format!(",\"url\":{}", serde_json::Value::from(url.as_str())),
        _ => String::new(),
    };
    println!(
        "{{\"requests\":{},\"errors\":{errors},\"rps\":{:.0},\"p50_us\":{:.0},\"p99_us\":{:.0}{url}}}",
        times.len(),
        times.len() as f64 / elapsed,
        at(0.50),
        at(0.99)
    );
    Ok(())
}

/// One hit request; an error, a non-success answer or a miss is an `Err`.
async fn hit(target: &mut Target) -> anyhow::Result<()> {
    match target {
        Target::Http { client, url } => {
            let response = client.get(url.as_str()).send().await?;
            let status = response.status();
            response.bytes().await?;
            if !status.is_success() {
                bail!("HTTP {status}");
            }
        }
        Target::Datacatalog { client, request } => {
            let answer = client.get_artifact(request.clone()).await?.into_inner();
            answer.artifact.context("no artifact in the answer")?;
        }
        Target::Connect { client, url, body } => {
            let response = client
                .post(url.as_str())
                .header("content-type", "application/proto")
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            if !status.is_success() {
                bail!("Connect {status}");
            }
            cs::GetCacheResponse::decode(bytes)?
                .output
                .context("no output in the answer")?;
        }
    }
    Ok(())
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

async fn populate_http(client: &reqwest::Client, url: &str) -> anyhow::Result<Target> {
    let material = serde_json::json!({
        "project": PROJECT,
        "domain": DOMAIN,
        "task": "wf.flybench",
        "cache_version": "1",
        "inputs": [{ "name": "n", "type": "int", "value": 81 }],
        "outputs": [{ "name": "out", "type": "file" }],
    });
    let response = client
        .post(format!("{url}/v1/keys"))
        .body(material.to_string())
        .header("content-type", "application/json")
        .send()
        .await?;
    let status = response.status();
    let derived: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    if !status.is_success() {
        bail!("POST /v1/keys answered {status}: {derived}");
    }
    let key = derived["key"]
        .as_str()
        .context("no key in /v1/keys' answer")?;
    let mut target = Target::Http {
        client: client.clone(),
        url: format!("{url}/v1/entries/{PROJECT}/{DOMAIN}/{key}"),
    };
    if hit(&mut target).await.is_ok() {
        return Ok(target);
    }
    let form = reqwest::multipart::Form::new()
        .text("material", material.to_string())
        .part("out", reqwest::multipart::Part::bytes(b"81".to_vec()));
    let response = client
        .post(format!("{url}/v1/entries"))
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "POST /v1/entries answered {status}: {}",
            response.text().await?
        );
    }
    hit(&mut target).await.context("the published entry")?;
    Ok(target)
}

fn dataset() -> dc::DatasetId {
    dc::DatasetId {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: "flyte_task-wf.flybench".into(),
        version: "1.0-bench".into(),
        ..dc::DatasetId::default()
    }
}

/// The datacatalog load's GetArtifact call as a gRPC request body (5-byte prefix, message),
/// for load generators that send fixed bytes (h2load).
pub fn framed_get_artifact() -> Vec<u8> {
    let message = get_artifact_request().encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    body
}

/// The GetArtifact call of the datacatalog load: the bench dataset's tagged artifact.
pub fn get_artifact_request() -> dc::GetArtifactRequest {
    dc::GetArtifactRequest {
        dataset: Some(dataset()),
        query_handle: Some(dc::get_artifact_request::QueryHandle::TagName(TAG.into())),
    }
}

async fn populate_datacatalog(url: &str) -> anyhow::Result<Target> {
    let mut client =
        DataCatalogClient::new(Channel::from_shared(url.to_string())?.connect().await?);
    let mut target = Target::Datacatalog {
        client: Box::new(client.clone()),
        request: get_artifact_request(),
    };
    if hit(&mut target).await.is_ok() {
        return Ok(target);
    }
    let created = client
        .create_dataset(dc::CreateDatasetRequest {
            dataset: Some(dc::Dataset {
                id: Some(dataset()),
                ..dc::Dataset::default()
            }),
        })
        .await;
    if let Err(status) = created
        && status.code() != tonic::Code::AlreadyExists
    {
        bail!("CreateDataset: {status}");
    }
    let created = client
        .create_artifact(dc::CreateArtifactRequest {
            artifact: Some(dc::Artifact {
                id: "artifact-bench".into(),
                dataset: Some(dataset()),
                data: vec![dc::ArtifactData {
                    name: "o0".into(),
                    value: Some(int(81)),
                }],
                ..dc::Artifact::default()
            }),
        })
        .await;
    if let Err(status) = created
        && status.code() != tonic::Code::AlreadyExists
    {
        bail!("CreateArtifact: {status}");
    }
    client
        .add_tag(dc::AddTagRequest {
            tag: Some(dc::Tag {
                name: TAG.into(),
                artifact_id: "artifact-bench".into(),
                dataset: Some(dataset()),
            }),
        })
        .await
        .context("AddTag")?;
    hit(&mut target).await.context("the tagged artifact")?;
    Ok(target)
}

fn identifier() -> Option<cs2::Identifier> {
    Some(cs2::Identifier {
        org: String::new(),
        project: PROJECT.into(),
        domain: DOMAIN.into(),
    })
}

async fn populate_connect(client: &reqwest::Client, url: &str) -> anyhow::Result<Target> {
    let key = "flybench-connect";
    let get = cs2::GetCacheRequest {
        base_request: Some(cs::GetCacheRequest { key: key.into() }),
        identifier: identifier(),
    };
    let mut target = Target::Connect {
        client: client.clone(),
        url: format!("{url}{CONNECT_PATH}/Get"),
        body: get.encode_to_vec().into(),
    };
    if hit(&mut target).await.is_ok() {
        return Ok(target);
    }
    let put = cs2::PutCacheRequest {
        base_request: Some(cs::PutCacheRequest {
            key: key.into(),
            output: Some(cs::CachedOutput {
                output: Some(cs::cached_output::Output::OutputUri(
                    "s3://bench/outputs/flybench".into(),
                )),
                metadata: None,
            }),
            overwrite: None,
        }),
        identifier: identifier(),
    };
    let response = client
        .post(format!("{url}{CONNECT_PATH}/Put"))
        .header("content-type", "application/proto")
        .body(put.encode_to_vec())
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("Connect Put answered {status}: {}", response.text().await?);
    }
    hit(&mut target).await.context("the key just put")?;
    Ok(target)
}

//! recalld as Flyte 2's CacheService, through a tonic client of recall-flyteidl's generated
//! code: the real binary over local disk and over the S3 test server (`RECALL_TEST_SKIP=s3`
//! skips that one, saying so). tests/python/test_flyte_cacheservice.py covers every case with
//! flyteidl2's own gRPC and Connect stubs; this checks the Rust side end to end.

mod common;

use common::{Backend, Daemon, Options};
use recall_flyteidl::RawLiteral;
use recall_flyteidl::cacheservice as pb;
use recall_flyteidl::cacheservice::v2 as pb2;
use recall_flyteidl::cacheservice::v2::cache_service_client::CacheServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn identifier() -> Option<pb2::Identifier> {
    Some(pb2::Identifier {
        org: String::new(),
        project: "flytesnacks".into(),
        domain: "development".into(),
    })
}

async fn get(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
) -> Result<pb::CachedOutput, tonic::Status> {
    let answer = client
        .get(pb2::GetCacheRequest {
            base_request: Some(pb::GetCacheRequest { key: key.into() }),
            identifier: identifier(),
        })
        .await?;
    Ok(answer.into_inner().output.expect("output"))
}

async fn put(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    output: pb::cached_output::Output,
) -> Result<(), tonic::Status> {
    client
        .put(pb2::PutCacheRequest {
            base_request: Some(pb::PutCacheRequest {
                key: key.into(),
                output: Some(pb::CachedOutput {
                    output: Some(output),
                    metadata: None,
                }),
                overwrite: None,
            }),
            identifier: identifier(),
        })
        .await?;
    Ok(())
}

async fn miss_put_hit(backend: &Backend) {
    let port = free_port();
    let options = Options {
        toml: format!("[flyte]\ncacheservice_listen = \"127.0.0.1:{port}\"\n"),
        ..Options::default()
    };
    let _daemon = Daemon::start(backend, &options);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the cacheservice listener");
    let mut client = CacheServiceClient::new(channel);
    assert_eq!(
        get(&mut client, "k").await.unwrap_err().code(),
        Code::NotFound
    );
    // A LiteralMap {"o0": <bytes with an unknown field>} as raw bytes: kept byte for byte.
    let literals = RawLiteral::from_bytes(vec![
        0x0a, 0x08, 0x0a, 0x02, b'o', b'0', 0x12, 0x02, 0x42, 0x00,
    ]);
    put(
        &mut client,
        "k",
        pb::cached_output::Output::OutputLiterals(literals.clone()),
    )
    .await
    .expect("put");
    let hit = get(&mut client, "k").await.expect("hit");
    assert_eq!(
        hit.output,
        Some(pb::cached_output::Output::OutputLiterals(literals))
    );
    let again = put(
        &mut client,
        "k",
        pb::cached_output::Output::OutputUri("s3://b/o".into()),
    )
    .await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_local_disk() {
    miss_put_hit(&Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_s3() {
    let Some(backend) = Backend::s3("cacheservice").await else {
        return;
    };
    miss_put_hit(&backend).await;
}

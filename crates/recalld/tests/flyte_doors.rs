//! What a client without a token, or a flood of idle connections, can do to recalld's Flyte
//! front doors (the datacatalog gRPC listener and the CacheService gRPC + Connect listener):
//! a call without a known token is refused before its message is read, and the listeners
//! have the HTTP API's connection limit. The real binary over local disk.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::{ADMIN, Backend, Daemon, Options, tokens};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use recall_flyteidl::datacatalog as pb;
use recall_flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

/// How long a test waits for an answer that must come without the request body.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A daemon with the test tokens, both Flyte listeners, and `extra` TOML; the two ports.
fn start(extra: &str) -> (Daemon, u16, u16) {
    let (datacatalog, cacheservice) = (free_port(), free_port());
    let options = Options {
        toml: format!(
            "{extra}\n{}\n[flyte]\ndatacatalog_listen = \"127.0.0.1:{datacatalog}\"\n\
             cacheservice_listen = \"127.0.0.1:{cacheservice}\"\n",
            tokens()
        ),
        ..Options::default()
    };
    let daemon = Daemon::start(&Backend::local(), &options);
    (daemon, datacatalog, cacheservice)
}

/// A new HTTP/2 connection (prior knowledge) to recalld's `port`, driven in the background.
async fn http2_connection<B>(port: u16) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// Sends a gRPC call over HTTP/2 whose 5-byte frame header announces a 4 MiB message that
/// never comes, with `token` if given; the `grpc-status` of the answer, which must arrive
/// while the body is still open.
async fn grpc_status_with_body_pending(port: u16, path: &str, token: Option<&str>) -> String {
    let mut sender = http2_connection(port).await;
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let frames = Box::pin(futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    }));
    let mut request = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(StreamBody::new(frames)).expect("request");
    let mut header = vec![0u8];
    header.extend_from_slice(&(4u32 << 20).to_be_bytes());
    body_tx
        .send(Bytes::from(header))
        .await
        .expect("frame header");
    let response = tokio::time::timeout(ANSWER_LIMIT, sender.send_request(request))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer while the message was still unsent"))
        .expect("answer");
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().expect("ASCII").to_string())
        .unwrap_or_default();
    drop(body_tx);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_without_a_token_are_refused_before_the_message_is_read() {
    let (daemon, datacatalog, cacheservice) = start("");
    let unauthenticated = (Code::Unauthenticated as i32).to_string();
    for (port, path) in [
        (datacatalog, "/datacatalog.DataCatalog/CreateArtifact"),
        (cacheservice, "/flyteidl2.cacheservice.v2.CacheService/Put"),
        (cacheservice, "/flyteidl2.cacheservice.CacheService/Put"),
    ] {
        assert_eq!(
            grpc_status_with_body_pending(port, path, None).await,
            unauthenticated,
            "{path} without a token"
        );
        assert_eq!(
            grpc_status_with_body_pending(port, path, Some("not-a-token")).await,
            unauthenticated,
            "{path} with an unknown token"
        );
    }
    // Each refusal is counted by listener: 2 on datacatalog, 4 on the CacheService.
    for (door, count) in [("datacatalog", 2.0), ("cacheservice", 4.0)] {
        let series = format!(
            "recall_flyte_token_refusals_total{{door=\"{door}\",code=\"Unauthenticated\"}}"
        );
        assert_eq!(daemon.metric(&series).await, count, "{series}");
    }
}

/// Sends a Connect POST announcing `length` bytes of body and sends none; the answer's status
/// line and body, which must arrive while the body is still owed.
async fn connect_answer_with_body_pending(port: u16, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /flyteidl2.cacheservice.v2.CacheService/Put HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/proto\r\n{authorization}Content-Length: 1073741824\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        // Up to the end of the JSON error body (Connect errors are JSON objects).
        while !answer.ends_with(b"}") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(ANSWER_LIMIT, read)
        .await
        .expect("no Connect answer while the body was still owed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_calls_without_a_token_are_refused_before_the_body_is_read() {
    let (_daemon, _, cacheservice) = start("");
    for token in [None, Some("not-a-token")] {
        let answer = connect_answer_with_body_pending(cacheservice, token).await;
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "token {token:?}: {answer}"
        );
        assert!(
            answer.contains("\"code\":\"unauthenticated\""),
            "token {token:?}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_a_flyte_listener_are_closed_at_the_limit() {
    let (_daemon, datacatalog, _) = start("max_connections = 4");
    // Ten connections that never send anything: at the limit of 4, each new one closes the
    // one idle longest, so at least six of them are closed by the server.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(
            TcpStream::connect(("127.0.0.1", datacatalog))
                .await
                .expect("connect"),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A real client still gets served.
    let channel = Channel::from_shared(format!("http://127.0.0.1:{datacatalog}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect a client");
    let mut client = DataCatalogClient::new(channel);
    let mut request = tonic::Request::new(pb::GetDatasetRequest {
        dataset: Some(pb::DatasetId {
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "flyte_task-wf.idle".into(),
            version: "1-aaaaaaaa-bbbbbbbb".into(),
            ..pb::DatasetId::default()
        }),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN}").parse().expect("metadata"),
    );
    let answer = tokio::time::timeout(ANSWER_LIMIT, client.get_dataset(request))
        .await
        .expect("the client was not served with the idle connections open");
    assert_eq!(answer.expect_err("no such dataset").code(), Code::NotFound);
    // Closed ones read end-of-file; the ones still open wait (all at once) until the limit.
    let reads = idle.into_iter().map(|mut stream| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    });
    let closed = futures::future::join_all(reads)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
    assert!(closed >= 6, "only {closed} of 10 idle connections closed");
}

/// Sends one gRPC call over HTTP/2 to `path` with the admin token, `headers` and `body` as it
/// is (framing included); the `grpc-status` of the answer, from its headers (a trailers-only
/// answer) or its trailers.
async fn grpc_status_of(port: u16, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> String {
    use http_body_util::{BodyExt, Full};
    let mut sender = http2_connection(port).await;
    let mut request = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {ADMIN}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let answer = tokio::time::timeout(ANSWER_LIMIT, async {
        let response = sender.send_request(request).await.expect("answer");
        let in_headers = response.headers().get("grpc-status").cloned();
        let collected = response.into_body().collect().await.expect("body");
        in_headers.or_else(|| {
            collected
                .trailers()
                .and_then(|t| t.get("grpc-status").cloned())
        })
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: no answer"));
    answer
        .map(|v| v.to_str().expect("ASCII").to_string())
        .unwrap_or_else(|| panic!("{path}: no grpc-status in the answer"))
}

/// `message` in gRPC's framing: flag byte, big-endian length, the bytes.
fn framed(compressed: bool, length: u32, message: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::from(compressed)];
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(message);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unary_grpc_calls_get_a_status_and_the_door_keeps_serving() {
    use prost::Message;
    let (_daemon, datacatalog, cacheservice) = start("");
    let get_dataset = pb::GetDatasetRequest {
        dataset: Some(pb::DatasetId {
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "flyte_task-wf.malformed".into(),
            version: "1-aaaaaaaa-bbbbbbbb".into(),
            ..pb::DatasetId::default()
        }),
    }
    .encode_to_vec();
    let length = get_dataset.len() as u32;
    let code = |c: Code| (c as i32).to_string();
    let path = "/datacatalog.DataCatalog/GetDataset";
    /// What the case is, its extra headers, its body, the code it must get.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>, Code);
    let cases: Vec<Case> = vec![
        (
            "well formed (no such dataset)",
            &[],
            framed(false, length, &get_dataset),
            Code::NotFound,
        ),
        (
            "gzip",
            &[("grpc-encoding", "gzip")],
            framed(true, length, &get_dataset),
            Code::Unimplemented,
        ),
        (
            "flagged compressed, no grpc-encoding",
            &[],
            framed(true, length, &get_dataset),
            Code::Internal,
        ),
        (
            "shorter than announced",
            &[],
            framed(false, length + 10, &get_dataset),
            Code::Internal,
        ),
        (
            "two messages",
            &[],
            [
                framed(false, length, &get_dataset),
                framed(false, length, &get_dataset),
            ]
            .concat(),
            Code::Internal,
        ),
        ("no message", &[], Vec::new(), Code::Internal),
        (
            "not protobuf",
            &[],
            framed(false, 3, b"\xff\xff\xff"),
            Code::InvalidArgument,
        ),
        (
            "over 4 MiB",
            &[],
            framed(false, (4 << 20) + 1, &vec![0u8; (4 << 20) + 1]),
            Code::ResourceExhausted,
        ),
    ];
    for (what, headers, body, expected) in cases {
        assert_eq!(
            grpc_status_of(datacatalog, path, headers, body).await,
            code(expected),
            "{what}"
        );
    }
    for (port, path) in [
        (datacatalog, "/datacatalog.DataCatalog/NoSuchMethod"),
        (
            cacheservice,
            "/flyteidl2.cacheservice.v2.CacheService/NoSuchMethod",
        ),
        (datacatalog, "/no.such.Service/Method"),
    ] {
        assert_eq!(
            grpc_status_of(port, path, &[], framed(false, 0, b"")).await,
            code(Code::Unimplemented),
            "{path}"
        );
    }
    // Still serving: the well-formed call again.
    assert_eq!(
        grpc_status_of(datacatalog, path, &[], framed(false, length, &get_dataset)).await,
        code(Code::NotFound)
    );
}

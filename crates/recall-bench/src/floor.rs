//! `recall-bench grpc-floor --upstream URL --listen ADDR`: an HTTP/2 server on hyper (the
//! stack recalld's gRPC doors run on) that answers every call with one fixed gRPC message and
//! does nothing else. The message is the answer recalld's datacatalog gave to the load's
//! GetArtifact, fetched once from `--upstream` at start, so the floor sends the same bytes.
//! What such a server costs per call is what a unary gRPC call costs on this machine before
//! any cache work: the floor under recalld's datacatalog rows.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use recall_flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use tokio::net::TcpListener;

/// Parses the flags, fetches the answer, prints `{"listening": "ADDR"}`, serves until killed.
pub async fn run(args: &[&str]) -> anyhow::Result<()> {
    let (mut upstream, mut listen) = (None, None);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match *flag {
            "--upstream" => upstream = Some(value.to_string()),
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .with_context(|| format!("--listen {value:?}: not ADDRESS:PORT"))?,
                )
            }
            other => bail!("unknown flag {other:?} (expected --upstream, --listen)"),
        }
    }
    let upstream = upstream.context("--upstream is required")?;
    let listen = listen.context("--listen is required")?;
    let mut client = DataCatalogClient::connect(upstream.clone()).await?;
    let answer = client
        .get_artifact(crate::load::get_artifact_request())
        .await
        .with_context(|| format!("GetArtifact from {upstream}"))?
        .into_inner()
        .encode_to_vec();
    let mut framed = Vec::with_capacity(5 + answer.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(answer.len())?);
    framed.extend_from_slice(&answer);
    let framed = Bytes::from(framed);
    let listener = TcpListener::bind(listen).await?;
    println!("{{\"listening\":\"{}\"}}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let framed = framed.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let framed = framed.clone();
                async move {
                    // Read the call's message, as a server must.
                    let _ = request.into_body().collect().await;
                    let mut trailers = http::HeaderMap::with_capacity(1);
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let body = Full::new(framed)
                        .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .expect("static response parts"),
                    )
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

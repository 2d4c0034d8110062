//! `recall-bench grpc-floor --upstream URL --listen ADDR`: recalld's own connection handling
//! (`recalld::server::run`: its worker threads, HTTP/1.1 and HTTP/2, limits and timeouts, as
//! its gRPC doors are served) with an application that answers every call with one fixed
//! gRPC message and does nothing else. The message is the answer recalld's datacatalog gave to
//! the load's GetArtifact, fetched once from `--upstream` at start, so the floor sends the same
//! bytes. What it costs per call is what a unary gRPC call costs recalld before its door
//! looks at the call: the floor under recalld's datacatalog rows.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use prost::Message;
use recall_flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use tokio::net::TcpListener;

/// Parses the flags, fetches the answer, prints `{"listening": "ADDR"}`, serves until killed.
pub async fn run(args: &[&str]) -> anyhow::Result<()> {
    let (mut upstream, mut listen) = (None, None);
    for (flag, value) in crate::flag_values(args)? {
        match flag {
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
    recalld::server::run(
        listener,
        FixedAnswer(framed),
        recalld::server::worker_count(0),
        recalld::server::ConnectionLimits::default(),
        recalld::server::Protocols::Http1AndHttp2,
        std::future::pending(),
    )
    .await
}

/// Answers every request with the framed message and `grpc-status: 0`, after reading the
/// request's body, as a server must.
#[derive(Clone)]
struct FixedAnswer(Bytes);

impl tower::Service<axum::extract::Request> for FixedAnswer {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let framed = self.0.clone();
        Box::pin(async move {
            let _ = request.into_body().collect().await;
            let mut trailers = http::HeaderMap::with_capacity(1);
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let body = Full::new(framed)
                .map_err(|never| match never {})
                .with_trailers(async move { Some(Ok::<_, axum::Error>(trailers)) });
            let mut response = axum::response::Response::new(axum::body::Body::new(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            Ok(response)
        })
    }
}

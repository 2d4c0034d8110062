//! recalld: the sidecar daemon. Derives keys, answers lookups from a memory tier in front of
//! the object store, accepts outputs, and fails open when storage is slow or down.
//!
//! The binary (`src/main.rs`) only parses flags and calls [`serve`].
//!
//! - [`cache`]: the [`cache::Cache`] every front door calls: lookup (memory tier, then the
//!   store behind the breaker and timeout), publish, evict, leases, blobs, GC, listings,
//!   the store check and readiness.
//! - [`routes`]: the HTTP front door, one file per group of routes (`entries.rs`: keys,
//!   lookups, publishes; `admin.rs`: eviction, GC, listings; `leases.rs`, `blobs.rs`,
//!   `ops.rs`: health, readiness, metrics). Each handler parses, calls the cache, renders.
//! - [`error`]: [`error::ApiError`], why a request failed, and its HTTP answer.
//! - [`state`]: what the handlers share; [`auth`], [`config`], [`metrics`], [`server`]
//!   (connections and worker threads), [`spool`] (uploads on disk), [`status`].

// Handlers return `Result<_, Response>` so an early exit is the HTTP answer itself; a
// `Response` is large, but it is built once per request and never propagated further.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod connect;
pub mod error;
pub mod flyte;
pub mod grpc;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod spool;
pub mod state;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::AppState;

/// Binds, prints `recalld: listening on http://ADDR` on stdout, and serves until `shutdown`
/// completes; then stops accepting and finishes the requests in flight (publishes included).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listen {}: {e}", config.listen))?;
    let address = listener.local_addr()?;
    let store_url = config.store.clone();
    let threads = server::worker_count(config.worker_threads);
    let limits = server::ConnectionLimits::from_config(&config);
    let datacatalog = match config.flyte.datacatalog_listen {
        Some(address) => Some(grpc::bind("flyte.datacatalog_listen", address).await?),
        None => None,
    };
    let cacheservice = match config.flyte.cacheservice_listen {
        Some(address) => Some(grpc::bind("flyte.cacheservice_listen", address).await?),
        None => None,
    };
    let state = Arc::new(AppState::new(config).await?);
    state.keep_checking_store();
    let shutdown = futures::FutureExt::shared(shutdown);
    println!("recalld: listening on http://{address}");
    // Each front door has its own listener and workers, with the same connection limits.
    let mut doors = Vec::new();
    if let Some(listener) = datacatalog {
        let door_address = listener.local_addr()?;
        println!("recalld: datacatalog gRPC on {door_address}");
        tracing::info!(address = %door_address, "serving Flyte's datacatalog (gRPC)");
        let door = flyte::datacatalog_door(state.clone()).await?;
        doors.push(tokio::spawn(server::run(
            listener,
            door,
            threads,
            limits,
            server::Protocols::Http1AndHttp2,
            shutdown.clone(),
        )));
    }
    if let Some(listener) = cacheservice {
        let door_address = listener.local_addr()?;
        println!("recalld: cacheservice gRPC and Connect on {door_address}");
        tracing::info!(address = %door_address, "serving Flyte 2's CacheService (gRPC, Connect)");
        let door = flyte::cacheservice_door(state.clone()).await?;
        doors.push(tokio::spawn(server::run(
            listener,
            door,
            threads,
            limits,
            server::Protocols::Http1AndHttp2,
            shutdown.clone(),
        )));
    }
    tracing::info!(%address, store = %store_url, worker_threads = threads, "recalld serving");
    server::run(
        listener,
        routes::app(state),
        threads,
        limits,
        server::Protocols::Http1,
        shutdown,
    )
    .await?;
    for door in doors {
        door.await??;
    }
    tracing::info!("recalld stopped");
    Ok(())
}

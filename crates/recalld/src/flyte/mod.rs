//! Flyte's catalog protocols as recalld front doors: [`datacatalog`] (Flyte 1's
//! `datacatalog.DataCatalog`, for flytepropeller). Each maps Flyte's objects onto ordinary
//! recall entries (recall_store::catalog, docs/LAYOUT.md section 12) and serves them through
//! the same lookup, publish and lease paths as the HTTP API.

pub mod datacatalog;

use std::future::Future;
use std::sync::Arc;

use recall_flyteidl::datacatalog::data_catalog_server::DataCatalogServer;

use crate::state::AppState;

/// Serves the datacatalog service on `listener` until `shutdown` completes.
pub async fn serve_datacatalog(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = DataCatalogServer::new(datacatalog::DataCatalog::new(state));
    crate::grpc::serve(
        listener,
        tonic::service::Routes::new(service),
        &["datacatalog.DataCatalog"],
        &[recall_flyteidl::FILE_DESCRIPTOR_SET],
        shutdown,
    )
    .await
}

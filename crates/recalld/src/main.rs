//! `recalld`: parse flags, build the configuration, run the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use recalld::config::{Config, LogFormat};

/// mimalloc instead of the system allocator: recalld allocates many small, short-lived
/// buffers per request (HTTP/2 frames, protobuf messages), which glibc's malloc served
/// slowly (docs/BENCHMARKS.md, Flyte front doors).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "recalld",
    version,
    about = "recall's sidecar daemon: cache lookups, publishes and leases over HTTP",
    after_help = "Settings come from the --config file, then RECALL_* environment variables, then these flags.\n\
                  With none, recalld serves on 127.0.0.1:7700 over a local-disk store.\n\
                  Example:\n  recalld --listen 127.0.0.1:7700 --store file:///var/lib/recall"
)]
struct Flags {
    /// A TOML configuration file (see config/recalld.toml). Also RECALL_CONFIG.
    #[arg(long, env = "RECALL_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve on (ADDRESS:PORT; port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Store URL: file:///path, s3://bucket/prefix, gs://..., az://..., memory://
    #[arg(long)]
    store: Option<String>,
    /// Also serve Flyte's datacatalog gRPC service here (ADDRESS:PORT), for flytepropeller.
    #[arg(long)]
    datacatalog_listen: Option<SocketAddr>,
    /// Also serve Flyte 2's CacheService here (ADDRESS:PORT; gRPC and Connect), for its
    /// executor.
    #[arg(long)]
    cacheservice_listen: Option<SocketAddr>,
    /// Take CacheService calls without a bearer token, even when tokens guard the other
    /// listeners (Flyte 2's executor sends none).
    #[arg(long)]
    cacheservice_insecure_no_auth: bool,
    /// Allow a non-loopback --listen address without tokens.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    // This runtime only starts up, accepts connections and waits for signals; requests are
    // served on recalld's worker threads, each with its own runtime (recalld::server).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let mut config = match &flags.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(listen) = flags.listen {
        config.listen = listen;
    }
    if let Some(address) = flags.datacatalog_listen {
        config.flyte.datacatalog_listen = Some(address);
    }
    if let Some(address) = flags.cacheservice_listen {
        config.flyte.cacheservice_listen = Some(address);
    }
    if let Some(store) = flags.store {
        config.store = store;
    }
    config.insecure_no_auth |= flags.insecure_no_auth;
    config.flyte.cacheservice_insecure_no_auth |= flags.cacheservice_insecure_no_auth;
    if flags.log_json {
        config.log_format = LogFormat::Json;
    }
    init_logging(config.log_format);
    recalld::serve(config, shutdown_signal()).await
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a sidecar's logs are collected from a pipe or a
    // file, where escape codes are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops recalld");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown signal received; finishing requests in flight");
}

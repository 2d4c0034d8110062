//! Connection handling: one accept loop hands each new connection, in turn, to one of N
//! worker threads. Each worker runs its own single-threaded tokio runtime and serves its
//! connections there for their whole life, so a request never hops between threads and no
//! worker has to wake another to share work (a multi-threaded runtime does, and on a busy
//! two-core machine that cost more CPU per hot hit than the hit itself; docs/BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::ServiceExt as _;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, mpsc, watch};
use tower::Service;

/// Upper bound on blocking-pool threads over all workers (tokio's default is 512 per
/// runtime). Local-disk stores read and write files on that pool; when the disk is slow,
/// lookups time out while their reads go on, and new lookups would start new threads, each
/// with its own stack and malloc arena. A bounded pool queues those reads instead
/// (docs/BENCHMARKS.md, RSS under load).
pub const MAX_BLOCKING_THREADS: usize = 64;

/// How many worker threads `requested` means: itself, or one per CPU for 0.
pub fn worker_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A connection handed to a worker: the socket, taken off the accepting runtime, and the
/// peer's address.
type Handoff = (std::net::TcpStream, SocketAddr);

/// The connections one worker receives, as axum's [`axum::serve::Listener`].
struct HandedOff {
    connections: mpsc::UnboundedReceiver<Handoff>,
    local: SocketAddr,
}

impl axum::serve::Listener for HandedOff {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((socket, peer)) = self.connections.recv().await else {
                // The accept loop has stopped; the worker's graceful shutdown ends this wait.
                return std::future::pending().await;
            };
            // Registers the socket with this worker's runtime.
            match TcpStream::from_std(socket) {
                Ok(stream) => return (stream, peer),
                Err(e) => tracing::warn!(error = %e, %peer, "connection dropped"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Serves `router` on `listener` with `threads` workers until `shutdown` completes; then
/// stops accepting and returns once every worker has finished its requests in flight.
pub async fn run<App>(
    listener: TcpListener,
    app: App,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    App: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    App::Future: Send,
{
    let local = listener.local_addr()?;
    let threads = threads.max(1);
    let (stop, stopped) = watch::channel(false);
    // No worker drops its runtime before all have finished: a store connection opened by
    // one worker's runtime may be serving another worker's request in flight.
    let all_done = Arc::new(Barrier::new(threads));
    let mut senders = Vec::with_capacity(threads);
    let mut workers = Vec::with_capacity(threads);
    for index in 0..threads {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads((MAX_BLOCKING_THREADS / threads).max(4))
            .build()?;
        let (sender, connections) = mpsc::unbounded_channel();
        senders.push(sender);
        let listener = HandedOff { connections, local };
        let app = app.clone();
        let mut stopped = stopped.clone();
        let all_done = all_done.clone();
        let worker = std::thread::Builder::new()
            .name(format!("recalld-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let result = axum::serve(listener, app.into_make_service())
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await;
                    all_done.wait().await;
                    result
                })
            })?;
        workers.push(worker);
    }

    let accepted = accept_loop(&listener, &senders, shutdown).await;
    drop(listener);
    drop(senders);
    let _ = stop.send(true);
    for (index, worker) in workers.into_iter().enumerate() {
        match tokio::task::spawn_blocking(move || worker.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(worker = index, error = %e, "worker failed"),
            Ok(Err(_)) | Err(_) => tracing::error!(worker = index, "worker panicked"),
        }
    }
    accepted
}

/// Accepts until `shutdown`, handing connections to the workers in turn.
async fn accept_loop(
    listener: &TcpListener,
    workers: &[mpsc::UnboundedSender<Handoff>],
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::error!(error = %e, "accept failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "connection dropped");
                continue;
            }
        };
        if workers[next].send((socket, peer)).is_err() {
            anyhow::bail!("worker thread {next} stopped unexpectedly");
        }
        next = (next + 1) % workers.len();
    }
}

/// Errors that concern one connection only; the listener itself is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One request on a new connection; the response body.
    async fn get_once(address: SocketAddr, path: &str) -> io::Result<String> {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        body.ok_or_else(|| io::Error::other(format!("no HTTP response: {response:?}")))
    }

    fn test_router() -> Router {
        Router::new()
            .route(
                "/thread",
                get(|| async { std::thread::current().name().unwrap_or("").to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
    }

    #[test]
    fn zero_threads_means_one_per_cpu() {
        assert_eq!(worker_count(3), 3);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_count(0), cpus);
    }

    /// Serves [`test_router`] with `threads` workers on a free port until `stop` is sent.
    async fn start(
        threads: usize,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, test_router(), threads, async {
            let _ = stopped.await;
        }));
        (address, stop, server)
    }

    #[tokio::test]
    async fn connections_go_to_the_workers_in_turn() {
        let (address, stop, server) = start(3).await;
        let mut served_by = Vec::new();
        for _ in 0..6 {
            served_by.push(get_once(address, "/thread").await.unwrap());
        }
        let distinct: BTreeSet<&str> = served_by.iter().map(String::as_str).collect();
        let expected: BTreeSet<&str> =
            ["recalld-worker-0", "recalld-worker-1", "recalld-worker-2"].into();
        assert_eq!(distinct, expected, "served by {served_by:?}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
        let (address, stop, server) = start(2).await;
        let slow = tokio::spawn(get_once(address, "/slow"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), "done");
        server.await.unwrap().unwrap();
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still accepting after shutdown"
        );
    }
}

//! Connection handling: one accept loop hands each new connection, in turn, to one of N
//! worker threads. Each worker runs its own single-threaded tokio runtime and serves its
//! connections there for their whole life, so a request never hops between threads and no
//! worker has to wake another to share work (a multi-threaded runtime does, and on a busy
//! two-core machine that cost more CPU per hot hit than the hit itself; docs/BENCHMARKS.md).
//!
//! Workers speak HTTP through hyper directly (not `axum::serve`) for the limits a client
//! must not be able to get around ([`ConnectionLimits`]): a header-read timeout (also the idle
//! timeout of kept-alive connections), a body-idle timeout, a connection limit that closes
//! the longest-idle connection to make room, and a shutdown deadline. The HTTP API speaks
//! HTTP/1.1; the gRPC and Connect front doors ([`Protocols::Http1AndHttp2`]) are served by
//! the same loop and workers, with the same limits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Notify, mpsc, watch};
use tokio::task::JoinSet;
use tower::Service;

use crate::config::Config;

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

/// Which HTTP versions a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 only (recalld's HTTP API).
    Http1,
    /// HTTP/1.1, and HTTP/2 with prior knowledge (h2c), told apart by the connection
    /// preface: gRPC clients speak HTTP/2, Connect clients either.
    Http1AndHttp2,
}

/// What the server allows a connection, and how long it waits at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once. At the limit, a new connection closes the one idle
    /// longest (no request in flight); when every connection has a request in flight, new
    /// connections wait in the listen queue until one ends.
    pub max_connections: usize,
    /// A complete request head must arrive within this long of the connection being
    /// accepted or of its previous response (so it is also the idle timeout of a kept-alive
    /// connection).
    pub header_read: Duration,
    /// A request body that delivers nothing for this long fails, and its connection closes.
    pub body_idle: Duration,
    /// After shutdown starts, requests in flight get this long; then their connections are
    /// dropped.
    pub shutdown: Duration,
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        ConnectionLimits {
            max_connections: config.max_connections.max(1),
            header_read: Duration::from_secs(config.timeouts.header_read_secs),
            body_idle: Duration::from_secs(config.timeouts.body_idle_secs),
            shutdown: Duration::from_secs(config.timeouts.shutdown_secs),
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::from_config(&Config::default())
    }
}

/// One open connection, as the accept loop and its worker share it.
struct Connection {
    /// Requests whose response is not yet complete.
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection was accepted), in milliseconds since
    /// [`Connections::epoch`].
    idle_since_ms: AtomicU64,
    /// Set once the accept loop asked it to close.
    closing: AtomicBool,
    /// Wakes the connection's task to close it gracefully.
    close: Notify,
}

/// Every open connection, to count them and close idle ones at the limit.
struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Notified when a connection ends, and when a request ends while the accept loop waits
    /// for room.
    changed: Notify,
    /// The accept loop is waiting for room (so the end of a request is worth a wake-up).
    waiting: AtomicBool,
    epoch: Instant,
    next_id: AtomicU64,
}

impl Connections {
    fn new() -> Self {
        Connections {
            open: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            waiting: AtomicBool::new(false),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn register(&self) -> (u64, Arc<Connection>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, connection.clone());
        (id, connection)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.changed.notify_waiters();
    }

    /// Asks the connection idle longest to close, unless one is already closing. False when
    /// every connection has a request in flight.
    fn close_longest_idle(&self) -> bool {
        let open = self.lock();
        if open.values().any(|c| c.closing.load(Ordering::Relaxed)) {
            return true;
        }
        let idle = open
            .values()
            .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0)
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed));
        match idle {
            Some(connection) => {
                connection.closing.store(true, Ordering::Relaxed);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection handed to a worker: the socket, taken off the accepting runtime, the peer's
/// address, and its entry in [`Connections`].
struct Handoff {
    socket: std::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    connection: Arc<Connection>,
}

/// Serves `app` on `listener` over `protocols` with `threads` workers until `shutdown`
/// completes; then stops accepting and returns once every worker has finished its requests
/// in flight, or `limits.shutdown` after that, whichever is first.
pub async fn run<App>(
    listener: TcpListener,
    app: App,
    threads: usize,
    limits: ConnectionLimits,
    protocols: Protocols,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    App: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    App::Future: Send,
{
    let threads = threads.max(1);
    let (stop, stopped) = watch::channel(false);
    let connections = Arc::new(Connections::new());
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
        let (sender, handoffs) = mpsc::unbounded_channel();
        senders.push(sender);
        let app = app.clone();
        let stopped = stopped.clone();
        let all_done = all_done.clone();
        let connections = connections.clone();
        let worker = std::thread::Builder::new()
            .name(format!("recalld-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    serve_handoffs(handoffs, app, connections, limits, protocols, stopped).await;
                    all_done.wait().await;
                });
                // Blocking work still running (a slow disk) must not hold the exit.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        workers.push(worker);
    }

    let accepted = accept_loop(
        &listener,
        &senders,
        &connections,
        limits.max_connections,
        shutdown,
    )
    .await;
    drop(listener);
    drop(senders);
    let _ = stop.send(true);
    for (index, worker) in workers.into_iter().enumerate() {
        match tokio::task::spawn_blocking(move || worker.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => tracing::error!(worker = index, "worker panicked"),
        }
    }
    accepted
}

/// One worker: serves every connection handed to it until the accept loop stops, then gives
/// the requests in flight `limits.shutdown` to finish.
async fn serve_handoffs<App>(
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
    app: App,
    connections: Arc<Connections>,
    limits: ConnectionLimits,
    protocols: Protocols,
    stopped: watch::Receiver<bool>,
) where
    App: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    App::Future: Send,
{
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            handoff = handoffs.recv() => match handoff {
                Some(handoff) => {
                    let app = app.clone();
                    let connections = connections.clone();
                    let stopped = stopped.clone();
                    tasks.spawn(serve_connection(
                        handoff, app, connections, limits, protocols, stopped,
                    ));
                }
                None => break,
            },
            // Reap finished connections as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // The accept loop has stopped; every connection has been asked to finish.
    let drained = tokio::time::timeout(limits.shutdown, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            shutdown_secs = limits.shutdown.as_secs(),
            "requests still in flight at the shutdown deadline; closing their connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Serves one connection until it ends, closing it gracefully when the accept loop needs
/// room or the server stops.
async fn serve_connection<App>(
    handoff: Handoff,
    app: App,
    connections: Arc<Connections>,
    limits: ConnectionLimits,
    protocols: Protocols,
    stopped: watch::Receiver<bool>,
) where
    App: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    App::Future: Send,
{
    let Handoff {
        socket,
        peer,
        id,
        connection,
    } = handoff;
    // Registers the socket with this worker's runtime.
    let stream = match TcpStream::from_std(socket) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, %peer, "connection dropped");
            connections.remove(id);
            return;
        }
    };
    let service = Tracked {
        app,
        connection: connection.clone(),
        connections: connections.clone(),
        body_idle: limits.body_idle,
    };
    let io = TokioIo::new(stream);
    match protocols {
        Protocols::Http1 => {
            let serving = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(io, service);
            drive(
                serving,
                |c| c.graceful_shutdown(),
                peer,
                &connection,
                stopped,
            )
            .await;
        }
        Protocols::Http1AndHttp2 => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            builder.http2().timer(TokioTimer::new());
            let serving = builder.serve_connection(io, service);
            drive(
                serving,
                |c| c.graceful_shutdown(),
                peer,
                &connection,
                stopped,
            )
            .await;
        }
    }
    connections.remove(id);
}

/// Drives `serving` to its end; asks it to close gracefully when the accept loop needs room
/// or the server stops.
async fn drive<C, E>(
    serving: C,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    peer: SocketAddr,
    connection: &Connection,
    mut stopped: watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut serving = std::pin::pin!(serving);
    let mut closing = false;
    loop {
        tokio::select! {
            result = serving.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            () = connection.close.notified(), if !closing => {
                closing = true;
                graceful_shutdown(serving.as_mut());
            }
            _ = stopped.wait_for(|stop| *stop), if !closing => {
                closing = true;
                graceful_shutdown(serving.as_mut());
            }
        }
    }
}

/// The application as hyper calls it on one connection: counts its requests in flight and
/// gives each request body the idle timeout.
struct Tracked<App> {
    app: App,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
    body_idle: Duration,
}

impl<App> hyper::service::Service<hyper::Request<Incoming>> for Tracked<App>
where
    App: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = InFlight<App::Future>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.connection.in_flight.fetch_add(1, Ordering::Relaxed);
        let body_idle = self.body_idle;
        let request = request.map(|body| axum::body::Body::new(IdleBody::new(body, body_idle)));
        // Every service of the app is always ready (axum's router and the layers around it).
        let mut app = self.app.clone();
        InFlight {
            inner: app.call(request),
            guard: RequestGuard {
                connection: self.connection.clone(),
                connections: self.connections.clone(),
            },
        }
    }
}

/// Marks the end of a request on its connection when dropped.
struct RequestGuard {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.connection
            .idle_since_ms
            .store(self.connections.now_ms(), Ordering::Relaxed);
        self.connection.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.connections.waiting.load(Ordering::Relaxed) {
            self.connections.changed.notify_waiters();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response being computed; the request counts as in flight until it is ready.
    pub struct InFlight<F> {
        #[pin]
        inner: F,
        guard: RequestGuard,
    }
}

impl<F: Future> Future for InFlight<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// The body of a request that has sent nothing for too long.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?} (timeouts.body_idle_secs)")]
pub struct BodyIdle(Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyIdle`] when the handler waits longer than the
    /// idle timeout for its next frame. Time the handler spends elsewhere does not count.
    struct IdleBody {
        #[pin]
        inner: Incoming,
        #[pin]
        deadline: tokio::time::Sleep,
        waiting: bool,
        idle: Duration,
    }
}

impl IdleBody {
    fn new(inner: Incoming, idle: Duration) -> Self {
        IdleBody {
            inner,
            deadline: tokio::time::sleep(idle),
            waiting: false,
            idle,
        }
    }
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !*this.waiting {
                    *this.waiting = true;
                    this.deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + *this.idle);
                }
                match this.deadline.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyIdle(*this.idle).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts until `shutdown`, handing connections to the workers in turn. With
/// `max_connections` open, it closes the connection idle longest before handing over a new
/// one, or (all busy) waits for one to end while further connections wait in the listen
/// queue.
async fn accept_loop(
    listener: &TcpListener,
    workers: &[mpsc::UnboundedSender<Handoff>],
    connections: &Connections,
    max_connections: usize,
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
        while connections.len() >= max_connections {
            connections.waiting.store(true, Ordering::Relaxed);
            let changed = connections.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if !connections.close_longest_idle() {
                tracing::debug!(max_connections, "every connection is busy; waiting");
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = changed => {}
                // A backstop against a missed wake-up; the check above is cheap.
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        connections.waiting.store(false, Ordering::Relaxed);
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "connection dropped");
                continue;
            }
        };
        let (id, connection) = connections.register();
        let handoff = Handoff {
            socket,
            peer,
            id,
            connection,
        };
        if workers[next].send(handoff).is_err() {
            connections.remove(id);
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
        let server = tokio::spawn(run(
            listener,
            test_router(),
            threads,
            ConnectionLimits::default(),
            Protocols::Http1,
            async {
                let _ = stopped.await;
            },
        ));
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

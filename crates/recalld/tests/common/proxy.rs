//! A TCP proxy between recalld and the store server that a test can cut: while cut, every
//! open connection is dropped and new ones are accepted but never answered (a black hole,
//! the worst case for a client: no error, just silence).

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops when the test's runtime ends.
pub struct Proxy {
    /// Where recalld should connect.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<free port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, watching) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    if *watching.borrow() {
                        // Hold the connection silently until restored, then drop it.
                        let _ = watching.wait_for(|cut| !*cut).await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    /// Cuts the backend off.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Restores forwarding.
    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }

    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

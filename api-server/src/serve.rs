//! The HTTP/1.1 server loop. axum's own `serve` has no header-read timeout, and
//! a client that trickles its headers must not hold a connection forever.
//!
//! A connection the server ends while the client may still be sending (a
//! refusal that says `Connection: close` without reading the body) is closed
//! the way nginx's `lingering_close` does it: the answer is flushed, the write
//! side is shut (the client reads the answer and then end-of-stream), and what
//! the client still sends is read and dropped for a bounded time. Closing with
//! unread bytes in the receive buffer makes the kernel send a reset, and a
//! reset can destroy an answer the client has not read yet.

use crate::session::Session;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{future::Future, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tower::ServiceExt;
use tracing::debug;

/// Longest a closing connection is read from after its last answer…
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// …and most bytes read from it.
pub const LINGER_BYTES: usize = 64 << 20;

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// connections finish their current request.
pub async fn serve(listener: TcpListener, app: Router, header_timeout: Duration, shutdown: impl Future<Output = ()>) {
    let mut connections = JoinSet::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            // What this connection's client has proven, for the requests that follow on it.
            let session = Session::default();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(session.clone());
                app.clone().oneshot(req)
            });
            let mut conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut stopping = false;
            let ended = loop {
                tokio::select! {
                    r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r,
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        std::pin::Pin::new(&mut conn).graceful_shutdown();
                    }
                }
            };
            match ended {
                Ok(()) => linger_close(conn.into_parts().io.into_inner()).await,
                Err(e) => debug!(%peer, error = %e, "connection ended with an error"),
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// Shuts the write side, then drains what the client still sends (bounded),
/// so the close is a FIN after the answer and never a reset before it.
async fn linger_close(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 64 << 10];
    let mut left = LINGER_BYTES;
    while left > 0 {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

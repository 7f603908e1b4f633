//! Accepting HTTP connections within limits, so that slow or idle clients cannot take
//! the descriptors that paging, the store and the sources need.
//!
//! - At most `[api].max_connections` connections are served at once; one more is
//!   answered `503` with `Retry-After` in a single non-blocking write and closed at once.
//! - A request's headers must arrive within [`HEADER_TIMEOUT`] of the connection opening
//!   (or of the previous response, on a kept-alive connection, so this is also the idle
//!   keep-alive timeout); otherwise hyper closes the connection.
//! - A request's body must arrive within [`BODY_TIMEOUT`] ([`read_body_within`]).
//! - At start the soft limit of open files is raised to the hard limit, and a warning
//!   says when `[api].max_connections` leaves too few descriptors for the rest
//!   ([`raise_open_files`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long a client has to send a request's headers (and how long a kept-alive
/// connection may stay idle).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in progress may finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// Descriptors kept for everything but the API: the store and its journal, the broker,
/// Modbus devices, serial lines, SMTP and gateways, the log.
pub const RESERVED_FILES: u64 = 256;

/// The answer to a connection beyond the limit.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n\
Content-Length: 39\r\nConnection: close\r\n\r\nToo many connections; try again later.\n";

/// Serves `app` on `listener` until `shutdown`, at most `max_connections` connections
/// at once; then lets the requests in progress finish (for at most `DRAIN`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    max_connections: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let warned = AtomicI64::new(0);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or the peer left before accept:
                    // pause a little rather than spin.
                    tracing::warn!(error = %e, "HTTP API: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(BUSY);
            drop(stream);
            let now = crate::model::now_ms();
            if now.saturating_sub(warned.load(Ordering::Relaxed)) >= 10_000 {
                warned.store(now, Ordering::Relaxed);
                tracing::warn!(
                    max_connections,
                    client = %peer,
                    "HTTP API: [api].max_connections connections are open; new ones are answered 503 and closed"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(Body::new))
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(client = %peer, error = %e, "HTTP API: connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTP API: requests still in progress after {DRAIN:?} at shutdown were dropped");
    }
    Ok(())
}

/// Middleware: reads the whole request body within [`BODY_TIMEOUT`] (a client that
/// sends it slower is answered 408) and at most `limit` bytes (413).
pub async fn read_body_within(limit: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.\n").into_response();
        }
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!("The request body did not arrive within {} s.\n", BODY_TIMEOUT.as_secs()),
            )
                .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Raises the soft limit of open files to the hard limit; warns when
/// `max_connections` plus [`RESERVED_FILES`] does not fit under it. Returns the limit
/// in force, if known.
pub fn raise_open_files(max_connections: usize) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let was = getrlimit(Resource::Nofile);
    let mut limit = was.current;
    if was.current != was.maximum {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: was.maximum,
                maximum: was.maximum,
            },
        ) {
            Ok(()) => limit = was.maximum,
            Err(e) => {
                tracing::warn!(error = %e, soft = ?was.current, hard = ?was.maximum, "cannot raise the open-file limit")
            }
        }
    }
    if let Some(limit) = limit
        && files_needed(max_connections) > limit
    {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "[api].max_connections {max_connections} leaves fewer than {RESERVED_FILES} of the {limit} open files for the store, sources and paging: lower it, or raise LimitNOFILE= in the service unit"
        );
    }
    limit
}

/// The open-file limit that `max_connections` needs.
pub fn files_needed(max_connections: usize) -> u64 {
    (max_connections as u64).saturating_add(RESERVED_FILES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_a_complete_response() {
        let text = std::str::from_utf8(BUSY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("a length");
        assert_eq!(body.len(), length);
        assert!(head.starts_with("HTTP/1.1 503 "));
    }

    #[test]
    fn the_default_connection_limit_fits_the_units_file_limit() {
        assert!(files_needed(crate::config::DEFAULT_API_MAX_CONNECTIONS) < 1024);
    }
}

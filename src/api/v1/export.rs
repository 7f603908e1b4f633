//! `GET /api/v1/history`: a sensor's readings, one page at a time, streamed from a
//! read-only connection of its own.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{error, internal};
use crate::api::auth::Principal;
use crate::api::{ApiError, ApiState};
use crate::config::Role;
use crate::model::now_ms;
use crate::report::history;
use crate::store::{HistoryKey, Store};

/// Rows in one answer of `/api/v1/history` unless `limit` says otherwise.
pub const HISTORY_LIMIT: u64 = 100_000;
/// The most rows one answer of `/api/v1/history` holds.
pub const HISTORY_MAX_LIMIT: u64 = 1_000_000;
/// The streamed body is sent in pieces of about this size.
const CHUNK: usize = 64 * 1024;

/// `GET /api/v1/history`: one page (`limit` rows, from `cursor`) of a sensor's readings,
/// streamed from a read-only connection of its own inside one read transaction, so a
/// long export neither holds the API's store lock nor sits in memory. When more rows
/// follow, `X-Next-Cursor` (and a `Link: rel="next"`) says where the next page starts.
pub(super) async fn history_of(
    State(st): State<ApiState>,
    who: Principal,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    let sensor = match q.get("sensor") {
        None => return error(StatusCode::BAD_REQUEST, "sensor: missing"),
        Some(s) if s.is_empty() => return error(StatusCode::BAD_REQUEST, "sensor: empty; name a sensor id"),
        Some(s) => s.clone(),
    };
    let now = now_ms();
    let time = |key: &str, default: &str| {
        crate::timearg::parse(q.get(key).map(String::as_str).unwrap_or(default), now).map_err(|e| format!("{key}: {e}"))
    };
    let (from, to) = match (time("from", "-24h"), time("to", "now")) {
        (Ok(f), Ok(t)) if f <= t => (f, t),
        (Ok(_), Ok(_)) => return error(StatusCode::BAD_REQUEST, "from is after to"),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let limit = match q.get("limit").map(|v| v.parse::<u64>()) {
        None => HISTORY_LIMIT,
        Some(Ok(n)) if (1..=HISTORY_MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "limit: expected a whole number from 1 to {HISTORY_MAX_LIMIT}, found {:?}",
                    q.get("limit").map(String::as_str).unwrap_or_default()
                ),
            );
        }
    };
    let start = match q.get("cursor").map(|c| c.parse::<HistoryKey>()) {
        None => HistoryKey::at(from),
        Some(Ok(k)) => k.max(HistoryKey::at(from)),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("cursor: {e}")),
    };
    let csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let format = if csv {
        history::Format::Csv
    } else {
        history::Format::Json
    };
    let path = st.config.store.path.clone();
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let export_sensor = sensor.clone();
    tokio::task::spawn_blocking(move || {
        export_page(&path, &export_sensor, start, to, limit, format, head_tx, body_tx);
    });
    let next = match head_rx.await {
        Ok(Ok(next)) => next,
        Ok(Err(e @ history::HistoryError::UnknownSensor(_))) => return error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => return internal(ApiError::Task(e.to_string())),
        Err(e) => return internal(ApiError::Task(format!("the history export stopped: {e}"))),
    };
    let kind = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    let mut r = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(next) = next {
        let link = format!(
            "</api/v1/history?sensor={}&to={}&limit={limit}&cursor={next}>; rel=\"next\"",
            query_escape(&sensor),
            query_escape(&crate::model::format_rfc3339(to)),
        );
        for (name, value) in [("x-next-cursor", next.to_string()), ("link", link)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
    }
    r
}

/// Percent-encodes everything but unreserved characters (RFC 3986) for a query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs on the blocking pool: opens the store read-only, finds where the page after this
/// one starts (sent on `head` before any row, so the answer's headers can say it), then
/// writes the page to `body` in pieces. Stops when the client goes away.
#[allow(clippy::too_many_arguments)]
fn export_page(
    path: &std::path::Path,
    sensor: &str,
    start: HistoryKey,
    to: crate::model::TimestampMs,
    limit: u64,
    format: history::Format,
    head: tokio::sync::oneshot::Sender<Result<Option<HistoryKey>, history::HistoryError>>,
    body: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
) {
    let mut head = Some(head);
    let result = Store::open_read_only(path).and_then(|store| {
        store.snapshot(|s| {
            let sensors = s.sensors()?;
            let Some((id, unit)) = sensors.get(sensor) else {
                if let Some(h) = head.take() {
                    let _ = h.send(Err(history::HistoryError::UnknownSensor(sensor.to_string())));
                }
                return Ok(());
            };
            let next = s.history_nth(*id, start, to, limit)?;
            if let Some(h) = head.take()
                && h.send(Ok(next)).is_err()
            {
                return Ok(()); // the client went away
            }
            let page = history::Page {
                sensor_id: *id,
                sensor,
                unit,
                start,
                to,
                end: next,
            };
            let mut out = ChunkWriter {
                tx: body.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            match history::export_page(s, &page, format, &mut out) {
                Ok(_) => {}
                Err(history::HistoryError::Store(e)) => return Err(e),
                Err(e) => tracing::debug!(sensor, error = %e, "history export ended early"),
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        tracing::error!(sensor, error = %e, "history export failed");
        match head.take() {
            Some(h) => {
                let _ = h.send(Err(e.into()));
            }
            // The headers went out already: cut the body short so the client sees it broken.
            None => {
                let _ = body.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    }
}

/// Sends what is written to the response body in pieces of about [`CHUNK`] bytes.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

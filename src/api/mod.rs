//! The HTTP server on `[api].listen`.
//!
//! For now it serves the pages behind the signed acknowledgement links in email pages
//! ([`ack`]), the SMS gateway's inbound webhook ([`sms`]), `/metrics` ([`metrics`]),
//! the JSON API ([`v1`]) and the web dashboard with its sign-in pages ([`web`]). Each area of the API is a module contributing a `routes()` router on the
//! shared [`ApiState`]; [`router`] merges them.
//!
//! Store access is blocking (SQLite): handlers go through [`ApiState::with_store`],
//! which runs it on Tokio's blocking pool. Changes to alarms are never made here: they
//! are queued as requests for the daemon's alarm engine, which carries each out exactly
//! once and records who, when, by which path and with which comment.

pub mod ack;
pub mod auth;
pub mod close;
pub mod metrics;
pub mod server;
pub mod sign;
pub mod sms;
pub mod v1;
pub mod web;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::notify::acklink;
use crate::store::{Store, StoreError};

/// Request bodies larger than this are refused (the API takes small forms).
const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    store: Arc<Mutex<Store>>,
    key: Arc<acklink::Key>,
    /// The running daemon's counters for `/metrics`; `None` outside the daemon.
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// What the running daemon's stages registered for `/metrics`; `None` outside it.
    metrics: Option<Arc<prometheus_client::registry::Registry>>,
    /// Bounds, throttles and locks out sign-ins.
    pub guard: Arc<web::guard::Guard>,
}

/// A failure inside the server (not the client's fault).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a background task failed: {0}")]
    Task(String),
}

impl ApiState {
    /// Opens the store at `config.store.path` (it must be the daemon's) and loads the
    /// acknowledgement-link key, creating it on first use.
    pub fn open(config: Arc<Config>) -> Result<ApiState, StoreError> {
        let store = Store::open(&config.store.path)?;
        ApiState::new(config, store)
    }

    /// Serves from an already open `store`.
    pub fn new(config: Arc<Config>, store: Store) -> Result<ApiState, StoreError> {
        let key = acklink::key(&store)?;
        Ok(ApiState {
            config,
            store: Arc::new(Mutex::new(store)),
            key: Arc::new(key),
            telemetry: None,
            metrics: None,
            guard: Arc::new(web::guard::Guard::default()),
        })
    }

    pub fn key(&self) -> &acklink::Key {
        &self.key
    }

    /// The running daemon's counters (the commit stage's state for readiness, the
    /// sources' for sign-in readings).
    pub fn with_telemetry(mut self, t: Arc<crate::telemetry::Telemetry>) -> Self {
        self.telemetry = Some(t);
        self
    }

    /// Serves what the daemon's stages registered on `/metrics` too.
    pub fn with_metrics(mut self, registry: Arc<prometheus_client::registry::Registry>) -> Self {
        self.metrics = Some(registry);
        self
    }

    /// Queues request `kind` with `args` for the daemon's alarm engine and, in the same
    /// transaction, records it in the audit trail as `audit_kind` by `actor`; returns
    /// the request's id (its answer comes through `ack::wait_answer`).
    pub async fn queue_request(
        &self,
        kind: &'static str,
        args: serde_json::Value,
        audit_kind: String,
        actor: String,
        subject: String,
    ) -> Result<i64, ApiError> {
        self.with_store(move |s| {
            s.queue_request_audited(kind, &args, (&audit_kind, &actor, &subject), crate::model::now_ms())
        })
        .await
    }

    /// Runs `f` on the store on the blocking pool.
    pub async fn with_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::Task(e.to_string()))?
        .map_err(ApiError::from)
    }
}

/// Every route of the API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(ack::routes())
        .merge(v1::routes())
        .merge(sms::routes())
        .merge(metrics::routes())
        .merge(web::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(|req, next| {
            server::read_body_within(BODY_LIMIT, req, next)
        }))
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>Not found</title><p>Not found.</p>"),
    )
        .into_response()
}

/// Serves the API on `listener` until `shutdown`, then finishes the requests in progress;
/// within the limits of [`server`] (`[api].max_connections`, header and body timeouts).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max = state.config.sections.api_max_connections;
    server::serve(listener, router(state), max, shutdown).await
}

/// Binds `[api].listen` and serves on it until `shutdown`; `None` when no `[api]` is
/// configured. Must be called inside a Tokio runtime; a port that cannot be bound is an
/// error at once.
pub fn spawn(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Option<JoinHandle<()>>> {
    spawn_with(config, shutdown, None, None, None)
}

/// [`spawn`], with the daemon's `metrics` served on `/metrics`, its `telemetry` for
/// readiness, and refused sign-ins written through `readings` as readings of the
/// monitor's `cryowatch.security` sensor.
pub fn spawn_with(
    config: &Config,
    shutdown: &CancellationToken,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    metrics: Option<Arc<prometheus_client::registry::Registry>>,
    readings: Option<crate::pipeline::CommitHandle>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = config.sections.api_listen else {
        return Ok(None);
    };
    server::raise_open_files(config.sections.api_max_connections);
    let listener = bind(addr)?;
    let mut state = ApiState::open(Arc::new(config.clone())).context("opening the store for the HTTP API")?;
    if let Some(t) = telemetry.clone() {
        state = state.with_telemetry(t);
    }
    if let Some(m) = metrics {
        state = state.with_metrics(m);
    }
    let sensor = config.sensor_index(crate::config::monitor::SECURITY_SENSOR);
    if let (Some(handle), Some(sensor)) = (readings, sensor) {
        state.guard.report_to(handle, sensor, telemetry);
        let (guard, shutdown) = (state.guard.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(web::guard::REPORT_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = every.tick() => guard.report(crate::model::now_ms(), true).await,
                }
            }
        });
    }
    let shutdown = shutdown.clone();
    tracing::info!(listen = %addr, public_url = ?config.sections.api_public_url, "HTTP API listening");
    if let Some(warning) = exposure_warning(addr, config.sections.api_public_url.as_deref()) {
        tracing::warn!(listen = %addr, "{warning}");
    }
    if config.sections.api_tokens.is_empty() {
        tracing::info!("no [[api.token]]: the JSON API answers only signed-in users (`cryowatch user add`)");
    }
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = serve(listener, state, shutdown).await {
            tracing::error!(listen = %addr, error = %e, "CRITICAL: the HTTP API stopped; acknowledgement links do not work");
        }
    })))
}

/// The warning for a listener reachable from other machines without TLS in front: the
/// server speaks plain HTTP, so passwords and tokens would cross the network readable.
pub fn exposure_warning(addr: SocketAddr, public_url: Option<&str>) -> Option<String> {
    let behind_tls = public_url.is_some_and(|u| u.starts_with("https://"));
    (!addr.ip().is_loopback() && !behind_tls).then(|| {
        format!(
            "[api].listen {addr} is reachable from the network over plain HTTP: put a TLS reverse proxy in front and set [api].public_url to its https:// address, or listen on 127.0.0.1"
        )
    })
}

fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let what = || format!("binding the HTTP API to {addr} ([api].listen)");
    let std_listener = std::net::TcpListener::bind(addr).with_context(what)?;
    std_listener.set_nonblocking(true).with_context(what)?;
    tokio::net::TcpListener::from_std(std_listener).with_context(what)
}

//! The HTTP server on `[api].listen`.
//!
//! For now it serves the pages behind the signed acknowledgement links in email pages
//! ([`ack`]), the SMS gateway's inbound webhook ([`sms`]) and `/metrics` ([`metrics`]). Each area of the API is a module contributing a `routes()` router on the
//! shared [`ApiState`]; [`router`] merges them.
//!
//! Store access is blocking (SQLite): handlers go through [`ApiState::with_store`],
//! which runs it on Tokio's blocking pool. Changes to alarms are never made here: they
//! are queued as requests for the daemon's alarm engine, which carries each out exactly
//! once and records who, when, by which path and with which comment.

pub mod ack;
pub mod metrics;
pub mod sms;

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
        })
    }

    pub fn key(&self) -> &acklink::Key {
        &self.key
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
        .merge(sms::routes())
        .merge(metrics::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>Not found</title><p>Not found.</p>"),
    )
        .into_response()
}

/// Serves the API on `listener` until `shutdown`, then finishes the requests in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds `[api].listen` and serves on it until `shutdown`; `None` when no `[api]` is
/// configured. Must be called inside a Tokio runtime; a port that cannot be bound is an
/// error at once.
pub fn spawn(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = config.sections.api_listen else {
        return Ok(None);
    };
    let listener = bind(addr)?;
    let state = ApiState::open(Arc::new(config.clone())).context("opening the store for the HTTP API")?;
    let shutdown = shutdown.clone();
    tracing::info!(listen = %addr, public_url = ?config.sections.api_public_url, "HTTP API listening");
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = serve(listener, state, shutdown).await {
            tracing::error!(listen = %addr, error = %e, "CRITICAL: the HTTP API stopped; acknowledgement links do not work");
        }
    })))
}

fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let what = || format!("binding the HTTP API to {addr} ([api].listen)");
    let std_listener = std::net::TcpListener::bind(addr).with_context(what)?;
    std_listener.set_nonblocking(true).with_context(what)?;
    tokio::net::TcpListener::from_std(std_listener).with_context(what)
}

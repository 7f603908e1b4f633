//! The JSON API under `/api/v1` (described by `/api/v1/openapi.json`).
//!
//! Every route needs a [`Principal`]: viewers read, operators also acknowledge and
//! shelve. Changes are queued as requests for the daemon's alarm engine (as the command
//! line does) and the engine's answer is returned; the request and its caller are
//! written to the audit trail in the same transaction.

use std::collections::HashMap;

use axum::Json;
use axum::Router;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth::Principal;
use super::{ApiError, ApiState};
use crate::config::Role;
use crate::model::now_ms;
use crate::pipeline::control;
use crate::report::{alarms as alarm_report, status};

mod export;

use export::history_of;
pub use export::{HISTORY_LIMIT, HISTORY_MAX_LIMIT};

/// Every route, as documented in `openapi.json` (a test keeps the two in step).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/status"),
    ("get", "/api/v1/alarms"),
    ("post", "/api/v1/alarms/{id}/ack"),
    ("post", "/api/v1/alarms/{id}/close"),
    ("post", "/api/v1/sensors/{id}/shelve"),
    ("get", "/api/v1/history"),
    ("get", "/api/v1/healthz"),
    ("get", "/api/v1/readyz"),
    ("get", "/api/v1/openapi.json"),
];

pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/status", get(status_all))
        .route("/api/v1/alarms", get(alarm_list))
        .route("/api/v1/alarms/{id}/ack", post(ack))
        .route("/api/v1/alarms/{id}/close", post(super::close::close))
        .route("/api/v1/sensors/{id}/shelve", post(shelve))
        .route("/api/v1/history", get(history_of))
        .route("/api/v1/healthz", get(healthz))
        .route("/api/v1/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
}

/// A JSON error body with its status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn internal(e: ApiError) -> Response {
    tracing::error!(error = %e, "API request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the daemon's log",
    )
}

async fn status_all(State(st): State<ApiState>, who: Principal) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    let config = st.config.clone();
    match st.with_store(move |s| status::gather(&config, s, now_ms())).await {
        Ok(rows) => {
            let assets: Vec<AssetStatus> = st
                .config
                .assets
                .iter()
                .map(|a| {
                    let sensors: Vec<&status::SensorStatus> = rows.iter().filter(|r| r.asset == a.id).collect();
                    let state = if sensors.iter().any(|r| !r.alarms.is_empty()) {
                        "alarm"
                    } else if sensors.iter().any(|r| r.state != "ok") {
                        "warning"
                    } else {
                        "ok"
                    };
                    AssetStatus {
                        id: &a.id,
                        name: &a.name,
                        kind: &a.kind,
                        location: &a.location,
                        state,
                        sensors,
                    }
                })
                .collect();
            Json(SiteStatus {
                site: &st.config.site.name,
                time: crate::model::format_rfc3339(now_ms()),
                assets,
            })
            .into_response()
        }
        Err(e) => internal(e),
    }
}

/// `GET /api/v1/status`, serialized straight from the rows.
#[derive(serde::Serialize)]
struct SiteStatus<'a> {
    site: &'a str,
    time: String,
    assets: Vec<AssetStatus<'a>>,
}

#[derive(serde::Serialize)]
struct AssetStatus<'a> {
    id: &'a str,
    name: &'a str,
    kind: &'a str,
    location: &'a str,
    state: &'static str,
    sensors: Vec<&'a status::SensorStatus>,
}

async fn alarm_list(State(st): State<ApiState>, who: Principal, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    let active = match q.get("active").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("active: expected true or false, found {other:?}"),
            );
        }
    };
    match st.with_store(move |s| s.alarms(active)).await {
        Ok(rows) => Json(json!(alarm_report::lines(&rows, &st.config))).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// Who acknowledges (a person); default: the signed-in user.
    by: Option<String>,
    #[serde(default)]
    comment: String,
    /// With the password of a session's person: the acknowledgement is signed; the
    /// user name too at the session's first signature (see [`super::sign`]).
    #[serde(default, deserialize_with = "string_if_given")]
    username: Option<String>,
    #[serde(default, deserialize_with = "string_if_given")]
    password: Option<String>,
    /// The CSRF token, for session (browser) callers.
    #[serde(default, deserialize_with = "string_if_given")]
    csrf: Option<String>,
}

/// An optional string field: absent is `None`, but `null` is refused like any other
/// value that is not a string (the OpenAPI document says `type: string`).
pub(super) fn string_if_given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShelveBody {
    by: Option<String>,
    #[serde(rename = "for")]
    duration: String,
    reason: String,
    #[serde(default, deserialize_with = "string_if_given")]
    csrf: Option<String>,
}

/// The person a change is recorded under: the signed-in user, or the `by` a token caller
/// names; a 400 when `by` is too long or a token caller names nobody.
fn person(who: &Principal, by: Option<&str>) -> Result<String, Box<Response>> {
    if let Some(b) = by
        && b.chars().count() > control::MAX_BY
    {
        let e = control::checked_by(b).err().unwrap_or_default();
        return Err(Box::new(error(StatusCode::BAD_REQUEST, format!("by: {e}"))));
    }
    match (who.actor.strip_prefix("user:"), by.filter(|b| !control::blank(b))) {
        (Some(user), _) => Ok(user.to_string()),
        (None, Some(by)) => Ok(by.trim().to_string()),
        (None, None) => Err(Box::new(error(StatusCode::BAD_REQUEST, NAME_THE_PERSON))),
    }
}

const NAME_THE_PERSON: &str = "by: name the person (a token is not a person)";

/// The parsed body of a change, once the CSRF token a session caller must send (in the
/// body, as `csrf_of` finds it, or the X-CSRF-Token header) is checked; the 4xx otherwise.
pub(super) fn accept<T>(
    who: &Principal,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
    csrf_of: impl Fn(&T) -> Option<&str>,
) -> Result<T, Box<Response>> {
    let Json(body) = body.map_err(|e| Box::new(error(e.status(), format!("body: {}", e.body_text()))))?;
    let header = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    who.check_csrf(csrf_of(&body).or(header))
        .map_err(|e| Box::new(e.into_response()))?;
    Ok(body)
}

/// Queues `kind` with `args` for the engine, audited with the caller, and waits for the
/// answer; `signed`: the cookie of the session that signs what is queued.
async fn submit(
    st: &ApiState,
    who: &Principal,
    kind: &'static str,
    args: serde_json::Value,
    subject: String,
    signed: Option<String>,
) -> Response {
    let queued = st
        .queue_request(kind, args, format!("api.{kind}"), who.actor.clone(), subject)
        .await;
    let id = match queued {
        Ok(id) => id,
        Err(e) => return internal(e),
    };
    match super::ack::wait_answer(st, id).await {
        Ok(Some((true, text))) => {
            if let Some(session) = signed {
                super::sign::session_signed(st, session).await;
            }
            Json(json!({ "ok": true, "result": text })).into_response()
        }
        Ok(Some((false, text))) => {
            let status = if text.contains("no open alarm") || text.contains("unknown sensor") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            (status, Json(json!({ "ok": false, "error": text }))).into_response()
        }
        Ok(None) => error(
            StatusCode::ACCEPTED,
            format!("queued as request {id}; the daemon has not answered yet"),
        ),
        Err(e) => internal(e),
    }
}

async fn ack(
    State(st): State<ApiState>,
    who: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Response {
    if let Err(e) = who.require(Role::Operator) {
        return e.into_response();
    }
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no alarm {id:?}"));
    };
    let body = match accept(&who, &headers, body, |b| b.csrf.as_deref()) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(e) = control::checked_text(&body.comment) {
        return error(StatusCode::BAD_REQUEST, format!("comment: {e}"));
    }
    let by = match person(&who, body.by.as_deref()) {
        Ok(by) => by,
        Err(r) => return *r,
    };
    let signed = super::sign::ack_signer(&st, &who, &headers, body.username.as_deref(), body.password, id).await;
    let (signer, session) = match signed {
        Ok(s) => s.unzip(),
        Err((status, message)) => return error(status, message),
    };
    let args = control::ack_args(id, &by, &body.comment, "api", signer.as_ref());
    submit(&st, &who, "ack", args, format!("alarm {id}"), session).await
}

async fn shelve(
    State(st): State<ApiState>,
    who: Principal,
    headers: HeaderMap,
    Path(sensor): Path<String>,
    body: Result<Json<ShelveBody>, JsonRejection>,
) -> Response {
    if let Err(e) = who.require(Role::Operator) {
        return e.into_response();
    }
    let body = match accept(&who, &headers, body, |b| b.csrf.as_deref()) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !st.config.sensors.iter().any(|s| s.id == sensor) {
        return error(StatusCode::NOT_FOUND, format!("unknown sensor {sensor:?}"));
    }
    let duration = match crate::config::parse_duration(&body.duration) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("for: {e}")),
    };
    let by = match person(&who, body.by.as_deref()) {
        Ok(by) => by,
        Err(r) => return *r,
    };
    if let Err(e) = control::checked_text(&body.reason) {
        return error(StatusCode::BAD_REQUEST, format!("reason: {e}"));
    }
    if control::blank(&body.reason) {
        return error(
            StatusCode::BAD_REQUEST,
            "reason: say why the alarms are shelved (found nothing)",
        );
    }
    let args = json!({ "sensor": sensor, "for_ms": crate::model::millis(duration), "by": by, "reason": body.reason });
    submit(&st, &who, "shelve", args, format!("sensor {sensor}"), None).await
}

async fn healthz(who: Principal) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    Json(json!({ "status": "alive" })).into_response()
}

/// Ready when the store takes a write transaction and no source has gone silent (each
/// device, UPS and the MQTT broker has a sensor with a reading within its stale limit).
async fn readyz(State(st): State<ApiState>, who: Principal) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    let config = st.config.clone();
    let checked = st
        .with_store(move |s| {
            let writable = s.writable();
            let rows = status::gather(&config, s, now_ms())?;
            let mut sources: HashMap<String, bool> = HashMap::new();
            for (sensor, row) in config.sensors.iter().zip(&rows) {
                let source = match &sensor.source {
                    crate::config::SensorSource::Modbus(p) => {
                        format!(
                            "modbus:{}",
                            config.devices.get(p.device).map(|d| d.id.as_str()).unwrap_or("?")
                        )
                    }
                    crate::config::SensorSource::Mqtt(_) => "mqtt".to_string(),
                    crate::config::SensorSource::Ups(p) => format!("ups:{}", p.ups),
                    crate::config::SensorSource::Serial(p) => format!(
                        "serial:{}",
                        config
                            .serial_devices
                            .get(p.device)
                            .map(|d| d.id.as_str())
                            .unwrap_or("?")
                    ),
                    // Written by the daemon itself: not a source that can fall silent.
                    crate::config::SensorSource::Monitor
                    | crate::config::SensorSource::Security
                    | crate::config::SensorSource::Calibration(_) => continue,
                };
                let fresh = row.time.is_some() && row.state != "stale" && row.state != "no_data";
                *sources.entry(source).or_insert(false) |= fresh;
            }
            Ok((writable, sources))
        })
        .await;
    match checked {
        Ok((writable, sources)) => {
            let silent: Vec<_> = sources.iter().filter(|(_, ok)| !**ok).map(|(k, _)| k.clone()).collect();
            // The writer's own commits failing (disk full) count, not only this probe.
            let failing = st.telemetry.as_ref().and_then(|t| t.writer.failing_since());
            let writable = writable && failing.is_none();
            let ready = writable && silent.is_empty();
            let mut body = json!({ "ready": ready, "store_writable": writable, "silent_sources": silent });
            if let Some(since) = failing {
                body["store_failing_since"] = json!(crate::model::format_rfc3339(since));
            }
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(body)).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn openapi(who: Principal) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return e.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        served.sort();
        assert_eq!(documented, served);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn a_null_where_the_document_says_string_is_refused_and_an_absent_field_is_not() {
        let shelve = |csrf: &str| {
            serde_json::from_str::<ShelveBody>(&format!(
                r#"{{"for": "1h", "reason": "probe swap", "by": "alice"{csrf}}}"#
            ))
        };
        assert!(shelve("").is_ok_and(|b| b.csrf.is_none()));
        assert!(shelve(r#", "csrf": "t""#).is_ok_and(|b| b.csrf.as_deref() == Some("t")));
        assert!(shelve(r#", "csrf": null"#).is_err());
        assert!(serde_json::from_str::<AckBody>(r#"{"by": "alice", "password": null}"#).is_err());
        assert!(serde_json::from_str::<AckBody>(r#"{"by": "alice"}"#).is_ok());
    }
}

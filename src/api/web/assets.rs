//! The dashboard's stylesheet and script, compiled into the binary.
//!
//! Only the names in [`ASSETS`] exist: a request is matched against that table and
//! nothing is ever read from the file system, so no path can reach another file. Pages
//! link each asset with its content hash (`/assets/app.css?v=…`), so a browser may keep
//! it for a day and still gets the new one right after an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// (name, content type, content).
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
];

/// The first 16 hex digits of each asset's SHA-256, in [`ASSETS`] order.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| crate::store::audit::hex(&Sha256::digest(body.as_bytes()))[..16].to_string())
            .collect()
    })
}

/// The URL pages link `name` with (versioned by content); `name` must be in [`ASSETS`].
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|(n, _, _)| *n == name) {
        Some(i) => format!("/assets/{name}?v={}", hashes()[i]),
        None => format!("/assets/{name}"),
    }
}

/// `GET /assets/{name}`: the asset with cache headers and an ETag (304 when the
/// browser has it already), or 404.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (_, kind, body) = ASSETS[i];
    let etag = format!("\"{}\"", hashes()[i]);
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (StatusCode::OK, cache, [(header::CONTENT_TYPE, kind)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_carry_the_content_hash() {
        let css = url("app.css");
        assert!(
            css.starts_with("/assets/app.css?v=") && css.len() == "/assets/app.css?v=".len() + 16,
            "{css}"
        );
        assert_ne!(url("app.css")[18..], url("app.js")[17..]);
    }
}

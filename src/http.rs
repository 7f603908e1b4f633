//! What every HTTP client of the daemon shares (the SMS gateway, the webhook, InfluxDB,
//! the self-test): bounded reads of answers and errors told with their causes.

use std::error::Error as StdError;

/// Reads at most `max` bytes of an answer: a misbehaving server cannot fill memory.
pub async fn read_limited(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// An error with its causes, `a: b: c`.
pub fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// Why a request did not reach its server: the certificate problem, said with what to
/// do, when there is one ([`crate::tls::certificate_problem`]); otherwise the error
/// with its causes (without the URL, which may carry credentials).
pub fn failure_text(err: reqwest::Error) -> String {
    let host = err.url().and_then(|u| u.host_str()).unwrap_or("the server").to_string();
    crate::tls::certificate_problem(&err, &host).unwrap_or_else(|| chain(&err.without_url()))
}

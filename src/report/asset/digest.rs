//! The SHA-256 of a report's content: what a periodic review signs beside the PDF's
//! bytes, and what tells a reviewer that the record of the period has changed since
//! (a late reading sealed, an alarm acknowledged, a corrective action signed).
//!
//! It covers every figure and every reading the report is drawn from, and leaves out
//! what changes with each rendering — when, by whom and by which version it was
//! generated, and how far the audit trail was verified at that moment — and the
//! periodic reviews of the period, which sign it.

use sha2::{Digest, Sha256};

use super::AssetReport;

/// Fields of [`AssetReport`] that describe the rendering, not the record; and the
/// reviews, whose signatures must not change what the next signature covers.
const RENDERING: [&str; 5] = ["generated_at", "generated_by", "version", "audit", "reviews"];

/// The hex SHA-256 of `r`'s content.
pub fn content_sha256(r: &AssetReport) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for k in RENDERING {
            m.remove(k);
        }
    }
    let series: Vec<(&str, &Vec<(i64, f64)>)> = r.sensors.iter().map(|s| (s.id.as_str(), &s.series)).collect();
    let mut h = Sha256::new();
    h.update(v.to_string().as_bytes());
    h.update(serde_json::to_string(&series).unwrap_or_default().as_bytes());
    crate::store::audit::hex(&h.finalize())
}

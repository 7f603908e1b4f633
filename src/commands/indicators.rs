//! `quality`: the alarm system's own performance over a period, per month and asset
//! ([`crate::report::indicators`]), written as PDF, HTML or CSV and recorded, with its
//! SHA-256, in the audit trail.

use std::path::Path;

use sha2::Digest as _;

use super::documents::{document_kind, period, write};
use super::{CommandError, load_for_reading, record_cli};
use crate::model::now_ms;
use crate::report::{indicators, render};
use crate::store::Store;

/// `quality`: the figures from `from` to `to` (RFC 3339, relative, or a date taken as
/// the site's midnight) written to `out` by its extension. Bad input (exit 2): an
/// unknown extension, a time not understood, `from` not before `to`.
pub fn quality(config: &Path, from: &str, to: &str, out: &Path) -> Result<(), CommandError> {
    let kind = document_kind(out)?;
    let cfg = load_for_reading(config)?;
    let now = now_ms();
    let (from, to) = period(&cfg, from, to, now)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let r = indicators::gather(&cfg, &store, indicators::Request { from, to, now })?;
    let bytes = match kind {
        "pdf" => render::render_pdf(&indicators::document(&r))?,
        "html" => render::render_html(&indicators::document(&r)).into_bytes(),
        _ => {
            let mut buf = Vec::new();
            indicators::write_csv(&r, &mut buf)?;
            buf
        }
    };
    write(out, &bytes)?;
    record_cli(
        &cfg,
        "quality.generated",
        &out.display().to_string(),
        serde_json::json!({
            "from": from, "to": to, "records": r.records.len(),
            "sha256": crate::store::audit::hex(&sha2::Sha256::digest(&bytes)),
        }),
    );
    println!(
        "{}: {} months, {} records counted",
        out.display(),
        r.months.len(),
        r.records.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::site;

    #[test]
    fn the_quality_report_refuses_a_bad_period_and_a_bad_extension() {
        let site = site("");
        let out = site.dir.path().join("q.html");
        match quality(&site.path, "now", "-2h", &out) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--from must be earlier than --to"),
            other => panic!("expected bad input, got {other:?}"),
        }
        let txt = site.dir.path().join("q.txt");
        match quality(&site.path, "-2h", "now", &txt) {
            Err(CommandError::BadInput(m)) => assert_eq!(
                m,
                format!("--out {}: the file name must end in .pdf, .html or .csv", txt.display())
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
        assert!(!out.exists() && !txt.exists());
        for name in ["q.html", "q.csv", "q.pdf"] {
            let out = site.dir.path().join(name);
            quality(&site.path, "-2h", "now", &out).expect("quality");
            assert!(!std::fs::read(&out).expect("written").is_empty(), "{name} is empty");
        }
        let csv = std::fs::read_to_string(site.dir.path().join("q.csv")).expect("csv");
        assert!(csv.starts_with(indicators::CSV_HEADER), "{csv}");
    }
}

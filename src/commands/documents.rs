//! The commands that write a document to sign or hand over: `selftest` (the OQ checks,
//! [`crate::report::selftest`]) and `report` (an asset over a period,
//! [`crate::report::asset`]). Each file written is recorded, with its SHA-256, in the
//! audit trail.

use std::path::Path;

use sha2::Digest as _;

use super::{CommandError, load, load_for_reading, record_cli, runtime};
use crate::model::{TimestampMs, now_ms};
use crate::report::render;
use crate::store::Store;

/// `selftest`: runs the operational-qualification checks and writes them to `out` (.pdf
/// or .html). A failed check is [`CommandError::Reported`]: the list printed says which.
pub fn selftest(config: &Path, out: &Path) -> Result<(), CommandError> {
    use crate::report::selftest;
    let kind = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(kind.as_deref(), Some("pdf" | "html")) {
        return Err(CommandError::BadInput(format!(
            "--out {}: the file name must end in .pdf or .html",
            out.display()
        )));
    }
    let cfg = load(config)?;
    let by = crate::store::audit::local_actor();
    let t = runtime()?.block_on(selftest::run(&cfg, config, now_ms(), &by, |what| {
        eprintln!("selftest: {what}")
    }));
    let doc = selftest::document(&t, &cfg.site.timezone);
    let bytes = if kind.as_deref() == Some("pdf") {
        render::render_pdf(&doc)?
    } else {
        render::render_html(&doc).into_bytes()
    };
    write(out, &bytes)?;
    let failed: Vec<_> = t.checks.iter().filter(|c| !c.pass).collect();
    record_cli(
        &cfg,
        "selftest.run",
        &out.display().to_string(),
        serde_json::json!({
            "checks": t.checks.len(), "failed": failed.iter().map(|c| &c.id).collect::<Vec<_>>(),
            "sha256": crate::store::audit::hex(&sha2::Sha256::digest(&bytes)),
        }),
    );
    for c in &t.checks {
        println!(
            "{} {} {}: {}",
            c.id,
            if c.pass { "PASS" } else { "FAIL" },
            c.what,
            c.observed
        );
    }
    println!("{}: {} checks, {} failed", out.display(), t.checks.len(), failed.len());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Reported)
    }
}

/// The operating system's user running the command: the one behind `sudo`, else the
/// login's, else the account of the process's user id.
fn os_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .or_else(|| {
            let uid = nix::unistd::geteuid();
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .or_else(|| Some(format!("uid {uid}")))
        })
        .map(|u| crate::escape::control(&u).to_string())
        .unwrap_or_default()
}

/// `report`: the auditor's report of `asset` from `from` to `to` (RFC 3339, relative, or
/// a date taken as the site's midnight), written to `out` as PDF, HTML or CSV by its
/// extension. `by` names the person generating it (printed as "Generated ... by");
/// without it the operating system's user is printed, marked "(system account)".
pub fn report(
    config: &Path,
    asset: &str,
    from: &str,
    to: &str,
    out: &Path,
    by: Option<&str>,
) -> Result<(), CommandError> {
    use crate::report::asset::{self, ReportError};
    let kind = document_kind(out)?;
    let by = match by {
        Some(by) => crate::pipeline::control::checked_by(by)
            .map_err(|e| CommandError::BadInput(format!("--by: {e}")))?
            .to_string(),
        None => format!("{} (system account)", os_user()),
    };
    let cfg = load_for_reading(config)?;
    let now = now_ms();
    let (from, to) = period(&cfg, from, to, now)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let progress = |what: &str| eprintln!("report: {what}");
    let req = asset::Request {
        asset,
        from,
        to,
        now,
        by: &by,
    };
    let r = match asset::gather(&cfg, &store, req, progress) {
        Ok(r) => r,
        Err(e @ ReportError::UnknownAsset(..)) => {
            return Err(CommandError::BadInput(format!("{}: --asset: {e}", config.display())));
        }
        Err(e) => return Err(CommandError::Report(e)),
    };
    eprintln!("report: writing {}", out.display());
    let bytes = match kind {
        "pdf" => render::render_pdf(&asset::document(&r))?,
        "html" => render::render_html(&asset::document(&r)).into_bytes(),
        _ => {
            let mut buf = Vec::new();
            asset::write_csv(&r, &mut buf)?;
            buf
        }
    };
    write(out, &bytes)?;
    record_cli(
        &cfg,
        "report.generated",
        asset,
        serde_json::json!({
            "from": from, "to": to, "file": out.display().to_string(),
            "sha256": crate::store::audit::hex(&sha2::Sha256::digest(&bytes)),
            "audit_verified": r.audit.ok(), "audit_head": r.audit.head_seq,
        }),
    );
    println!(
        "{}: {} sensors, {} excursions, {} alarm tests; audit trail {}",
        out.display(),
        r.sensors.len(),
        r.excursions.iter().filter(|e| !e.test).count(),
        r.tests.len(),
        if r.audit.ok() { "verified" } else { "BROKEN" }
    );
    Ok(())
}

/// The kind of document `out` names by its extension: `pdf`, `html` or `csv`.
pub(super) fn document_kind(out: &Path) -> Result<&'static str, CommandError> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    ["pdf", "html", "csv"]
        .into_iter()
        .find(|k| ext.as_deref() == Some(*k))
        .ok_or_else(|| {
            CommandError::BadInput(format!(
                "--out {}: the file name must end in .pdf, .html or .csv",
                out.display()
            ))
        })
}

/// `--from` and `--to` of a report; a bare date is the site's midnight (the report's
/// days are the site's days). Bad input unless `from` is earlier than `to`.
pub(super) fn period(
    cfg: &crate::config::Config,
    from: &str,
    to: &str,
    now: TimestampMs,
) -> Result<(TimestampMs, TimestampMs), CommandError> {
    let tz = &cfg.site.timezone;
    let bad = |e: crate::timearg::BadTime| CommandError::BadInput(e.to_string());
    let from = crate::timearg::parse_in(from, now, tz).map_err(bad)?;
    let to = crate::timearg::parse_in(to, now, tz).map_err(bad)?;
    if from >= to {
        return Err(CommandError::BadInput("--from must be earlier than --to".into()));
    }
    Ok((from, to))
}

pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes).map_err(|err| CommandError::Write {
        path: path.to_path_buf(),
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::site;

    #[test]
    fn a_report_is_written_in_the_format_of_its_extension() {
        let site = site("");
        for name in ["r.html", "r.csv", "r.pdf"] {
            let out = site.dir.path().join(name);
            report(&site.path, "dewar-1", "-2h", "now", &out, None).expect("report");
            let bytes = std::fs::read(&out).expect("written");
            assert!(!bytes.is_empty(), "{name} is empty");
        }
        let csv = std::fs::read_to_string(site.dir.path().join("r.csv")).expect("csv");
        assert!(csv.contains("dewar-1"), "{csv}");
    }

    #[test]
    fn a_report_refuses_an_unknown_asset_a_bad_period_and_a_bad_extension() {
        let site = site("");
        let out = site.dir.path().join("r.html");
        match report(&site.path, "dewar-9", "-2h", "now", &out, None) {
            Err(CommandError::BadInput(m)) => assert!(
                m.starts_with(&format!("{}: --asset: unknown asset \"dewar-9\"", site.path.display())),
                "{m}"
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
        match report(&site.path, "dewar-1", "now", "-2h", &out, None) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--from must be earlier than --to"),
            other => panic!("expected bad input, got {other:?}"),
        }
        let txt = site.dir.path().join("r.txt");
        match report(&site.path, "dewar-1", "-2h", "now", &txt, None) {
            Err(CommandError::BadInput(m)) => assert_eq!(
                m,
                format!("--out {}: the file name must end in .pdf, .html or .csv", txt.display())
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
        assert!(!out.exists() && !txt.exists());
        let missing = site.dir.path().join("no-such-dir").join("r.html");
        assert!(matches!(
            report(&site.path, "dewar-1", "-2h", "now", &missing, None),
            Err(CommandError::Write { .. })
        ));
    }

    #[test]
    fn a_selftest_writes_its_checks_and_reports_the_ones_that_failed() {
        let site = site("");
        let txt = site.dir.path().join("oq.txt");
        match selftest(&site.path, &txt) {
            Err(CommandError::BadInput(m)) => assert_eq!(
                m,
                format!("--out {}: the file name must end in .pdf or .html", txt.display())
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
        // No daemon runs on this store and nothing answers at the device's address.
        let out = site.dir.path().join("oq.html");
        assert!(matches!(selftest(&site.path, &out), Err(CommandError::Reported)));
        let html = std::fs::read_to_string(&out).expect("written");
        assert!(html.contains("OQ-01"), "{html}");
    }
}

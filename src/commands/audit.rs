//! `audit verify` and `audit log`: the hash-chained audit trail ([`crate::store::audit`])
//! checked end to end, or listed.

use std::io::Write as _;
use std::path::Path;

use super::{CommandError, load_for_reading, print_json_or, time_arg};
use crate::model::now_ms;
use crate::store::Store;
use crate::store::audit::verify;

/// `audit verify`: walks the chain and every sealed block of readings, and with `anchor`
/// (`SEQ:HASH`, from an external copy of the head) also requires that record. A broken
/// trail is [`CommandError::Reported`], named on standard error.
pub fn verify(config: &Path, json: bool, anchor: Option<&str>) -> Result<(), CommandError> {
    let anchor = match anchor.map(verify::parse_anchor) {
        Some(Some(a)) => Some(a),
        Some(None) => {
            return Err(CommandError::BadInput(
                "--anchor: expected SEQ:HASH (64 hex digits)".into(),
            ));
        }
        None => None,
    };
    let cfg = load_for_reading(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let progress = verify::stderr_progress();
    let mut v = store.verify(progress)?;
    if let Some(a) = &anchor {
        v.check_anchor(&store, a)?;
    }
    let ok = v.ok();
    print_json_or(json, &v, |out| verify::write_text(&v, out))?;
    if let Some(p) = &v.problem {
        eprintln!(
            "{}: audit trail broken at record {}: {}",
            cfg.store.path.display(),
            p.record,
            p.what
        );
    }
    if ok { Ok(()) } else { Err(CommandError::Reported) }
}

/// `audit log`: the records from `from` (default 24 hours ago) to `to` (default now),
/// only those of `kind` when given.
pub fn log(
    config: &Path,
    from: Option<&str>,
    to: Option<&str>,
    kind: Option<&str>,
    json: bool,
) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let now = now_ms();
    let from = time_arg(from, "-24h", now)?;
    let to = time_arg(to, "now", now)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let mut rows = Vec::new();
    store.audit_list(from, to, kind, |r| {
        rows.push(r);
        true
    })?;
    print_json_or(json, &rows, |out| {
        for r in &rows {
            use crate::escape::control;
            writeln!(
                out,
                "{:>6} {} {:<22} {:<18} {} {}",
                r.seq,
                crate::model::format_rfc3339(r.t),
                r.kind,
                control(&r.actor),
                control(&r.subject),
                control(&r.detail)
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::site;

    #[test]
    fn verify_passes_an_intact_trail_and_refuses_a_malformed_anchor() {
        let site = site("");
        verify(&site.path, false, None).expect("intact");
        verify(&site.path, true, None).expect("intact, as JSON");
        match verify(&site.path, false, Some("7:abc")) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--anchor: expected SEQ:HASH (64 hex digits)"),
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn log_lists_the_trail_of_a_period_and_a_kind() {
        let site = site("");
        log(&site.path, None, None, None, false).expect("the last day");
        log(&site.path, Some("-1h"), Some("now"), Some("config"), true).expect("one kind, as JSON");
        assert!(matches!(
            log(&site.path, Some("later"), None, None, false),
            Err(CommandError::BadInput(_))
        ));
    }
}

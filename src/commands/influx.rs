//! `influx status`, `quarantine`, `requeue` and `backfill`: the InfluxDB mirror's lag,
//! the batches InfluxDB refused, and queueing readings for it again
//! ([`crate::store::mirror`]). Each is bad input without an `[influx]` section.

use std::io::Write as _;
use std::path::Path;

use super::{CommandError, load_for_reading, print_json_or, record_cli, time_arg};
use crate::config::{Config, InfluxConfig};
use crate::model::now_ms;
use crate::store::{Store, mirror};

/// `influx status`: how far behind the mirror is, and what needs a person.
pub fn status(config: &Path, json: bool) -> Result<(), CommandError> {
    let (cfg, influx) = configured(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let lag = store.mirror_lag()?;
    let m = crate::report::mirror::gather(&influx, lag, now_ms());
    print_json_or(json, &m, |out| crate::report::mirror::write_text(&m, out))
}

/// `influx quarantine`: the batches InfluxDB refused for their content.
pub fn quarantine(config: &Path, json: bool) -> Result<(), CommandError> {
    let (cfg, _) = configured(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let rows = store.mirror_quarantined()?;
    print_json_or(json, &rows, |out| {
        for q in &rows {
            writeln!(
                out,
                "#{} {} {} points of {} refused ({}){}",
                q.id,
                q.time,
                q.points,
                q.stream,
                q.reason,
                q.requeued
                    .as_ref()
                    .map(|t| format!(", requeued {t}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    })
}

/// `influx requeue`: queues the quarantined readings and alarm transitions again.
pub fn requeue(config: &Path) -> Result<(), CommandError> {
    let (cfg, _) = configured(config)?;
    let mut store = Store::open(&cfg.store.path)?;
    let n = store.mirror_requeue(now_ms())?;
    record_cli(
        &cfg,
        "influx.requeued",
        "influx",
        serde_json::json!({ "readings": n.readings, "alarm_events": n.alarm_events }),
    );
    println!(
        "{} quarantined readings and {} alarm transitions (from the first quarantined on) queued for InfluxDB again",
        n.readings, n.alarm_events
    );
    Ok(())
}

/// `influx backfill`: queues the stored readings from `from` to `to` (default now) for
/// the mirror.
pub fn backfill(config: &Path, from: &str, to: Option<&str>) -> Result<(), CommandError> {
    let (cfg, _) = configured(config)?;
    let now = now_ms();
    let from = time_arg(Some(from), "", now)?;
    let to = time_arg(to, "now", now)?;
    if from > to {
        return Err(CommandError::BadInput("--from is after --to".into()));
    }
    let mut store = Store::open(&cfg.store.path)?;
    let (queued, events) = mirror::backfill_range(&mut store, from, to)?;
    record_cli(
        &cfg,
        "influx.backfill",
        "influx",
        serde_json::json!({ "from": from, "to": to, "readings": queued, "alarm_events": events }),
    );
    println!(
        "{queued} readings from {} to {} queued for InfluxDB; {events} alarm transitions will be sent",
        crate::model::format_rfc3339(from),
        crate::model::format_rfc3339(to)
    );
    Ok(())
}

/// The configuration at `path` and its `[influx]` section; bad input without one.
fn configured(path: &Path) -> Result<(Config, InfluxConfig), CommandError> {
    let cfg = load_for_reading(path)?;
    match cfg.influx.clone() {
        Some(i) => Ok((cfg, i)),
        None => Err(CommandError::BadInput(format!(
            "{}: no [influx] section: nothing is mirrored to InfluxDB",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::{INFLUX, site};

    #[test]
    fn every_influx_command_needs_the_section() {
        let site = site("");
        let want = format!(
            "{}: no [influx] section: nothing is mirrored to InfluxDB",
            site.path.display()
        );
        for res in [
            status(&site.path, false),
            quarantine(&site.path, false),
            requeue(&site.path),
            backfill(&site.path, "-1d", None),
        ] {
            match res {
                Err(CommandError::BadInput(m)) => assert_eq!(m, want),
                other => panic!("expected bad input, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_mirror_is_read_requeued_and_backfilled() {
        let site = site(INFLUX);
        status(&site.path, false).expect("status");
        status(&site.path, true).expect("status as JSON");
        quarantine(&site.path, false).expect("quarantine");
        requeue(&site.path).expect("requeue");
        backfill(&site.path, "-2h", None).expect("backfill");
        match backfill(&site.path, "now", Some("-1h")) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--from is after --to"),
            other => panic!("expected bad input, got {other:?}"),
        }
    }
}

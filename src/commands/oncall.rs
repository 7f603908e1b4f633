//! `oncall`: for each schedule, who is on call now (or at `--at`), who is next and from
//! when, overrides included, and the start the rotation counts from.

use std::io::Write;
use std::path::Path;

use super::{CommandError, load_for_reading, print_json_or};
use crate::config::Config;
use crate::config::notify::Rotation;
use crate::model::now_ms;
use crate::notify::oncall;

/// One schedule's answer, as printed and as JSON.
#[derive(Debug, serde::Serialize)]
pub struct OnCall {
    pub schedule: String,
    /// When `members[0]` is on call from (RFC 3339 in the site's time zone).
    pub start: Option<String>,
    /// Whether `start` is written in the file (otherwise it is the implied one).
    pub start_written: bool,
    pub now: Option<String>,
    pub now_by_override: bool,
    pub next: Option<String>,
    pub next_from: Option<String>,
    pub next_by_override: bool,
}

/// Who is on call in each schedule of `cfg` at `at`.
pub fn gather(cfg: &Config, at: jiff::Timestamp) -> Vec<OnCall> {
    let tz = &cfg.site.timezone;
    let local = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    cfg.notify
        .schedules
        .iter()
        .map(|s| {
            let o = oncall::outlook(s, tz, at);
            OnCall {
                schedule: s.id.clone(),
                start: oncall::start(s, tz).map(local),
                start_written: s.start.is_some(),
                now: o.now,
                now_by_override: o.now_by_override,
                next: o.next,
                next_from: o.next_from.map(local),
                next_by_override: o.next_by_override,
            }
        })
        .collect()
}

/// `oncall`: prints [`gather`] at `at` (default now) as a table or JSON.
pub fn oncall(config: &Path, at: Option<&str>, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let now = now_ms();
    let at = crate::timearg::parse_in(at.unwrap_or("now"), now, &cfg.site.timezone)
        .map_err(|e| CommandError::BadInput(format!("--at: {e}")))?;
    let at = jiff::Timestamp::from_millisecond(at).map_err(|e| CommandError::BadInput(format!("--at: {e}")))?;
    let rows = gather(&cfg, at);
    print_json_or(json, &rows, |out| {
        if rows.is_empty() {
            writeln!(out, "no [[schedule]] in {}", config.display())?;
        }
        for (r, s) in rows.iter().zip(&cfg.notify.schedules) {
            let rotation = match s.rotation {
                Rotation::Daily => "daily",
                Rotation::Weekly => "weekly",
            };
            let from = match (&r.start, r.start_written) {
                (Some(t), true) => format!("start {t}"),
                (Some(t), false) => format!("start {t} (implied: no start written)"),
                (None, _) => "no start".into(),
            };
            writeln!(out, "{} ({rotation}, {from})", crate::escape::control(&r.schedule))?;
            let who = |c: &Option<String>| {
                c.as_deref()
                    .map_or("nobody".to_string(), |c| crate::escape::control(c).into_owned())
            };
            let tag = |o: bool| if o { " (override)" } else { "" };
            writeln!(out, "  now   {}{}", who(&r.now), tag(r.now_by_override))?;
            match &r.next_from {
                Some(from) => writeln!(out, "  next  {}{} from {from}", who(&r.next), tag(r.next_by_override))?,
                None => writeln!(out, "  next  nobody else")?,
            }
        }
        Ok(())
    })
}

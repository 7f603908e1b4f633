//! `[[maintenance]]`, windows in which alarms are suppressed, and `[[test_page]]`,
//! scheduled test pages. Their types are part of the alarm vocabulary and are re-exported
//! from `rules`; when a recurring one opens (`every`) is read in `every`.

use std::collections::HashMap;
use std::time::Duration;

use super::check::{Checker, Declared};
use super::every::{MonthDay, Months, parse_every};
use super::raw;

/// When a maintenance window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Every week on `weekday` at `time` (site time zone) for `duration`.
    Weekly {
        weekday: jiff::civil::Weekday,
        time: jiff::civil::Time,
        duration: Duration,
    },
    /// Every day at `time` for `duration`.
    Daily {
        time: jiff::civil::Time,
        duration: Duration,
    },
    /// On `day` of each of `months` at `time` for `duration`.
    Monthly {
        day: MonthDay,
        months: Months,
        time: jiff::civil::Time,
        duration: Duration,
    },
    /// Once, from `from` until `to`.
    Once { from: jiff::Timestamp, to: jiff::Timestamp },
}

#[derive(Debug, Clone)]
pub struct Maintenance {
    pub id: String,
    pub sensors: Vec<usize>,
    pub window: Window,
    pub reason: String,
}

/// Checks `[[maintenance]]` windows; `sensor_idx` maps the checked sensors' ids to their
/// indices.
pub(super) fn maintenance(
    c: &mut Checker,
    raw: &[raw::Maintenance],
    sensor_idx: &HashMap<&str, usize>,
) -> Vec<Maintenance> {
    c.unique_ids("maintenance", raw.iter().map(|m| m.id.as_str()));
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let p = format!("maintenance[{i}]");
        let mut sensors = Vec::new();
        for (j, s) in m.sensors.iter().enumerate() {
            match sensor_idx.get(s.as_str()) {
                Some(&si) => sensors.push(si),
                None => c.err(format!("{p}.sensors[{j}]"), format!("unknown sensor {s:?}")),
            }
        }
        if m.sensors.is_empty() {
            c.err(format!("{p}.sensors"), "empty: name the sensors the window suppresses");
        }
        let window = match (&m.every, &m.from, &m.to) {
            (Some(every), None, None) => {
                let duration = match &m.duration {
                    Some(d) => c.positive_duration(&format!("{p}.duration"), Some(d), Duration::ZERO),
                    None => {
                        c.err(format!("{p}.duration"), "missing: a recurring window needs a duration");
                        Duration::ZERO
                    }
                };
                parse_every(c, &format!("{p}.every"), every, duration)
            }
            (None, Some(from), Some(to)) => {
                if m.duration.is_some() {
                    c.err(
                        format!("{p}.duration"),
                        "a one-off window is given by from and to; remove duration",
                    );
                }
                let from_t = c.timestamp(&format!("{p}.from"), from);
                let to_t = c.timestamp(&format!("{p}.to"), to);
                match (from_t, to_t) {
                    (Some(f), Some(t)) if t > f => Some(Window::Once { from: f, to: t }),
                    (Some(_), Some(_)) => {
                        c.err(format!("{p}.to"), "must be after from");
                        None
                    }
                    _ => None,
                }
            }
            _ => {
                c.err(
                    p.clone(),
                    "give either every + duration (recurring) or from + to (one-off)",
                );
                None
            }
        };
        if let Some(window) = window {
            out.push(Maintenance {
                id: m.id.clone(),
                sensors,
                window,
                reason: m
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("maintenance window {}", m.id)),
            });
        }
    }
    out
}

/// Checks `[[test_page]]` schedules: a contact and when.
pub(super) fn test_pages(c: &mut Checker, raw: &[raw::TestPage], declared: &Declared) -> Vec<TestSchedule> {
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        if !declared.contacts.contains(t.contact.as_str()) {
            c.err(
                format!("test_page[{i}].contact"),
                format!("unknown contact {:?}", t.contact),
            );
        }
        if let Some(window) = parse_every(c, &format!("test_page[{i}].every"), &t.every, TEST_PAGE_GRACE) {
            out.push(TestSchedule {
                contact: t.contact.clone(),
                window,
            });
        }
    }
    out
}

/// A scheduled test page is sent if the daemon runs within this long of its time.
pub const TEST_PAGE_GRACE: Duration = Duration::from_secs(600);

/// A scheduled test page: `window` opens at each scheduled time for [`TEST_PAGE_GRACE`].
#[derive(Debug, Clone, PartialEq)]
pub struct TestSchedule {
    pub contact: String,
    pub window: Window,
}

//! The paging sections: `[[contact]]`, `[[group]]`, `[[schedule]]`, `[[escalation]]` and
//! `[[route]]`, checked and built in one pass; `[[channel]]` is checked in `channel` and
//! its types are re-exported here. Cross references are checked so a typo is refused at
//! start, not at 3 a.m.

use std::time::Duration;

use super::check::{Checker, Declared, parse_day_time};
use super::raw;
use super::rules::Severity;

pub use super::channel::{Channel, ChannelKind, SmtpTls};

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Daily,
    Weekly,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub contact: String,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub rotation: Rotation,
    /// Weekly: the day of the handoff; daily: none.
    pub handoff_day: Option<jiff::civil::Weekday>,
    pub handoff_time: jiff::civil::Time,
    /// `members[0]` is on call from this time and the rotation advances at each handoff
    /// after it. `None`: not written; `notify::oncall::start` says the start implied.
    pub start: Option<jiff::Timestamp>,
    pub members: Vec<String>,
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Contact(String),
    Schedule(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the moment the alarm became active.
    pub after: Duration,
    pub notify: Vec<Target>,
    /// Channel ids; empty: every channel that can reach the contact.
    pub via: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub id: String,
    pub repeat: u32,
    pub repeat_interval: Duration,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub escalation: String,
    pub asset: Option<String>,
    pub severity: Option<Severity>,
}

impl Route {
    /// Whether alarms of `severity` go this way: a route's `severity` is the least it
    /// takes, and a route without one takes all.
    pub fn takes(&self, severity: Severity) -> bool {
        self.severity.is_none_or(|s| s <= severity)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyConfig {
    pub contacts: Vec<Contact>,
    pub groups: Vec<Group>,
    pub schedules: Vec<Schedule>,
    pub escalations: Vec<Escalation>,
    pub routes: Vec<Route>,
    pub channels: Vec<Channel>,
}

impl NotifyConfig {
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }

    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn escalation(&self, id: &str) -> Option<&Escalation> {
        self.escalations.iter().find(|c| c.id == id)
    }
}

const SEVERITIES: &[&str] = &["warning", "alarm", "critical"];

/// The most rounds an escalation may repeat.
const MAX_REPEAT: u32 = 100;

/// Default of an escalation's `repeat_interval`.
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(900);

/// Checks `[[contact]]`: each must be reachable.
pub(super) fn contacts(c: &mut Checker, raw: &[raw::Contact]) -> Vec<Contact> {
    c.unique_ids("contact", raw.iter().map(|m| m.id.as_str()));
    let mut out = Vec::new();
    for (i, ct) in raw.iter().enumerate() {
        if ct.email.is_none() && ct.phone.is_none() {
            c.err(
                format!("contact[{i}]"),
                format!(
                    "contact {:?} has neither email nor phone: nobody could reach them",
                    ct.id
                ),
            );
        }
        if let Some(phone) = &ct.phone
            && !(phone.starts_with('+') && phone.len() > 4 && phone[1..].chars().all(|ch| ch.is_ascii_digit()))
        {
            c.err(
                format!("contact[{i}].phone"),
                format!("expected an E.164 number like \"+15551230001\", found {phone:?}"),
            );
        }
        if let Some(email) = &ct.email
            && !email.contains('@')
        {
            c.err(
                format!("contact[{i}].email"),
                format!("not an email address: {email:?}"),
            );
        }
        out.push(Contact {
            id: ct.id.clone(),
            name: ct.name.clone().unwrap_or_else(|| ct.id.clone()),
            email: ct.email.clone(),
            phone: ct.phone.clone(),
        });
    }
    out
}

/// Checks `[[group]]`.
pub(super) fn groups(c: &mut Checker, raw: &[raw::Group], declared: &Declared) -> Vec<Group> {
    c.unique_ids("group", raw.iter().map(|g| g.id.as_str()));
    let mut out = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        if g.members.is_empty() {
            c.err(format!("group[{i}].members"), "must name at least one contact");
        }
        for (j, m) in g.members.iter().enumerate() {
            if !declared.contacts.contains(m.as_str()) {
                c.err(format!("group[{i}].members[{j}]"), format!("unknown contact {m:?}"));
            }
        }
        out.push(Group {
            id: g.id.clone(),
            members: g.members.clone(),
        });
    }
    out
}

/// Checks `[[schedule]]`: its rotation, handoff, start, members and overrides; local
/// times are in `tz`, the site's time zone.
pub(super) fn schedules(
    c: &mut Checker,
    raw: &[raw::Schedule],
    declared: &Declared,
    tz: &jiff::tz::TimeZone,
) -> Vec<Schedule> {
    c.unique_ids("schedule", raw.iter().map(|m| m.id.as_str()));
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let p = format!("schedule[{i}]");
        let rotation = c.one_of(&format!("{p}.rotation"), &s.rotation, &["daily", "weekly"]);
        let (handoff_day, handoff_time) = handoff(c, &format!("{p}.handoff"), &s.handoff, rotation == Some("weekly"));
        let start = s
            .start
            .as_deref()
            .and_then(|t| local_time(c, &format!("{p}.start"), t, tz));
        if s.members.is_empty() {
            c.err(format!("{p}.members"), "must name at least one contact");
        }
        for (j, m) in s.members.iter().enumerate() {
            if !declared.contacts.contains(m.as_str()) {
                c.err(format!("{p}.members[{j}]"), format!("unknown contact {m:?}"));
            }
        }
        let mut overrides = Vec::new();
        for (j, o) in s.overrides.iter().enumerate() {
            let op = format!("{p}.override[{j}]");
            if !declared.contacts.contains(o.contact.as_str()) {
                c.err(format!("{op}.contact"), format!("unknown contact {:?}", o.contact));
            }
            let from = c.timestamp(&format!("{op}.from"), &o.from);
            let to = c.timestamp(&format!("{op}.to"), &o.to);
            if let (Some(from), Some(to)) = (from, to) {
                if to <= from {
                    c.err(format!("{op}.to"), "must be later than from");
                }
                overrides.push(Override {
                    contact: o.contact.clone(),
                    from,
                    to,
                });
            }
        }
        out.push(Schedule {
            id: s.id.clone(),
            rotation: if rotation == Some("daily") {
                Rotation::Daily
            } else {
                Rotation::Weekly
            },
            handoff_day,
            handoff_time,
            start,
            members: s.members.clone(),
            overrides,
        });
    }
    out
}

/// A time written as RFC 3339 (`2026-01-05T08:00:00-06:00`), or as a local date and
/// time (`2026-01-05T08:00`, `2026-01-05 08:00`) or date (its midnight) in `tz`.
fn local_time(c: &mut Checker, path: &str, text: &str, tz: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    let local = text.parse::<jiff::civil::DateTime>().ok().or_else(|| {
        text.parse::<jiff::civil::Date>()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    match local.map(|l| l.to_zoned(tz.clone())) {
        Some(Ok(z)) => Some(z.timestamp()),
        _ => {
            c.err(
                path,
                format!(
                    "expected an RFC 3339 time like \"2026-01-05T08:00:00-06:00\", or a local date and time \
                     like \"2026-01-05T08:00\" in [site].timezone, found {text:?}"
                ),
            );
            None
        }
    }
}

/// A schedule's handoff: `"Tue 09:00"` (weekly) or `"09:00"` (daily).
fn handoff(c: &mut Checker, path: &str, text: &str, weekly: bool) -> (Option<jiff::civil::Weekday>, jiff::civil::Time) {
    let parsed = parse_day_time(text);
    if !matches!(parsed, Some((day, _)) if day.is_some() || !weekly) {
        let example = if weekly {
            "\"Tue 09:00\""
        } else {
            "\"09:00\" or \"Tue 09:00\""
        };
        c.err(
            path,
            format!("cannot parse {text:?}; expected {example} (day Mon..Sun, 24-hour time)"),
        );
    }
    parsed.unwrap_or((None, jiff::civil::Time::midnight()))
}

/// Checks `[[escalation]]`: its rounds and steps, and whom and how each step pages.
pub(super) fn escalations(c: &mut Checker, raw: &[raw::Escalation], declared: &Declared) -> Vec<Escalation> {
    c.unique_ids("escalation", raw.iter().map(|m| m.id.as_str()));
    let mut out = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let p = format!("escalation[{i}]");
        if let Some(r) = e.repeat.filter(|r| *r > MAX_REPEAT) {
            c.err(
                format!("{p}.repeat"),
                format!("{r} rounds, at most {MAX_REPEAT}: past that nobody is listening; page someone else instead"),
            );
        }
        let repeat_interval = c.positive_duration(
            &format!("{p}.repeat_interval"),
            e.repeat_interval.as_deref(),
            DEFAULT_REPEAT_INTERVAL,
        );
        if e.step.is_empty() {
            c.err(
                format!("{p}.step"),
                "an escalation needs at least one [[escalation.step]]",
            );
        }
        let steps = e
            .step
            .iter()
            .enumerate()
            .map(|(j, s)| step(c, &format!("{p}.step[{j}]"), s, declared))
            .collect();
        out.push(Escalation {
            id: e.id.clone(),
            repeat: e.repeat.unwrap_or(0),
            repeat_interval,
            steps,
        });
    }
    out
}

/// Checks a list of targets at key path `p` (`contact:ID`, `schedule:ID`, `group:NAME`):
/// at least one, each declared.
pub(super) fn targets(c: &mut Checker, p: &str, list: &[String], declared: &Declared) -> Vec<Target> {
    if list.is_empty() {
        c.err(p.to_string(), "must name at least one target");
    }
    let mut out = Vec::new();
    for (k, t) in list.iter().enumerate() {
        let (target, known) = match t.split_once(':') {
            Some(("contact", id)) => (Target::Contact(id.into()), declared.contacts.contains(id)),
            Some(("schedule", id)) => (Target::Schedule(id.into()), declared.schedules.contains(id)),
            Some(("group", id)) => (Target::Group(id.into()), declared.groups.contains(id)),
            _ => {
                c.err(
                    format!("{p}[{k}]"),
                    format!("expected contact:ID, schedule:ID or group:NAME, found {t:?}"),
                );
                continue;
            }
        };
        if !known {
            c.err(format!("{p}[{k}]"), format!("unknown target {t:?}"));
        }
        out.push(target);
    }
    out
}

/// Checks one `[[escalation.step]]` at key path `p`.
fn step(c: &mut Checker, p: &str, s: &raw::EscalationStep, declared: &Declared) -> Step {
    let after = c.duration(&format!("{p}.after"), &s.after).unwrap_or(Duration::ZERO);
    let notify = targets(c, &format!("{p}.notify"), &s.notify, declared);
    for (k, v) in s.via.iter().enumerate() {
        if !declared.channels.contains(v.as_str()) {
            c.err(format!("{p}.via[{k}]"), format!("unknown channel {v:?}"));
        }
    }
    Step {
        after,
        notify,
        via: s.via.clone(),
    }
}

/// Checks `[[route]]`: the escalation it leads to and what it matches.
pub(super) fn routes(c: &mut Checker, raw: &[raw::Route], declared: &Declared) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let p = format!("route[{i}]");
        if !declared.escalations.contains(r.escalation.as_str()) {
            c.err(
                format!("{p}.escalation"),
                format!("unknown escalation {:?}", r.escalation),
            );
        }
        if let Some(a) = &r.asset
            && !declared.assets.contains(a.as_str())
        {
            c.err(format!("{p}.asset"), format!("unknown asset {a:?}"));
        }
        let severity = match &r.severity {
            Some(s) => c
                .one_of(&format!("{p}.severity"), s, SEVERITIES)
                .and_then(Severity::parse),
            None => None,
        };
        out.push(Route {
            escalation: r.escalation.clone(),
            asset: r.asset.clone(),
            severity,
        });
    }
    out
}

//! Page texts people can act on at 3 a.m.: which unit and where, which sensor, the value
//! and unit, the threshold, for how long and how fast, the alarm id and how to
//! acknowledge. The SMS form fits one 160-character GSM-7 segment where possible.

use std::fmt::Write;

use crate::config::Config;
use crate::config::notify::{ChannelKind, Contact};
use crate::config::rules::Condition;
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::alarms::AlarmRow;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    /// A member of a power incident more severe than anything the incident paged yet.
    Update,
    /// Return to normal, sent to everyone who was paged.
    Normal,
    Test,
}

/// What the text needs beyond the alarm row.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The newest value of the sensor.
    pub value: Option<f64>,
    /// Units per minute over the last minutes, when known.
    pub rate_per_min: Option<f64>,
    /// Where the sensor's trend leads (over its forecast window, else the last half
    /// hour): the next limit of its rules ahead and the milliseconds until it gets there.
    pub forecast: Option<(f64, i64)>,
    /// Other units in the same power incident.
    pub affected: Vec<String>,
    /// The power incident this alarm joined: its alarm id and what opened it.
    pub incident: Option<(i64, String)>,
    /// Every member of the power incident this alarm opened (or joined), with whether it
    /// is over ([`super::incident::member_lines`]).
    pub members: Vec<Member>,
    /// The alarm is a test (`cryowatch test-alarm`) started by this person.
    pub test_by: Option<String>,
}

/// A member of a power incident as the texts name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub text: String,
    /// Not back to normal yet.
    pub open: bool,
}

pub struct Text {
    pub subject: String,
    pub body: String,
    pub sms: String,
}

fn short_duration(ms: i64) -> String {
    let m = ms.max(0) / 60_000;
    if m < 1 {
        format!("{}s", ms.max(0) / 1000)
    } else if m < 120 {
        format!("{m}m")
    } else {
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

fn sev(severity: &str) -> &'static str {
    match severity {
        "critical" => "CRIT",
        "warning" => "WARN",
        _ => "ALARM",
    }
}

/// The SMS text in the GSM-7 alphabet the modem and gateways send in one segment.
pub fn gsm7(text: &str) -> String {
    super::modem::gsm7::to_gsm7(text)
}

/// How to acknowledge, for the end of a page; the SMS reply only where one is read.
fn ack_paragraph(alarm: i64, sms_reply: bool) -> String {
    let reply = if sms_reply {
        format!("reply to the SMS with \"ACK {alarm}\", or ")
    } else {
        String::new()
    };
    format!("\nTo acknowledge: {reply}run\n  cryowatch ack {alarm} --by YOUR_NAME --comment \"what you did\"\n")
}

/// Whether `contact` can acknowledge by answering an SMS: a GSM modem reaches them (its
/// inbox is read), or an SMS gateway whose inbound webhook the API serves (`[api]
/// public_url` set).
pub fn sms_reply_reaches(cfg: &Config, contact: &Contact) -> bool {
    contact.phone.is_some()
        && cfg.notify.channels.iter().any(|c| match c.kind {
            ChannelKind::GsmModem { .. } => true,
            ChannelKind::Twilio { .. } => cfg.sections.api_public_url.is_some(),
            _ => false,
        })
}

/// A page's body for one recipient: the SMS reply is offered only to people whose reply
/// is read.
pub fn for_recipient(cfg: &Config, body: &str, alarm: i64, contact: &Contact) -> String {
    if sms_reply_reaches(cfg, contact) {
        body.to_string()
    } else {
        body.replacen(&ack_paragraph(alarm, true), &ack_paragraph(alarm, false), 1)
    }
}

/// The members of an incident in an SMS: how many, and how many are still active.
fn sms_members(members: &[Member]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let open = members.iter().filter(|m| m.open).count();
    match open {
        0 => format!(" {} alarm(s) of the incident, all back to normal.", members.len()),
        n => format!(" {} alarm(s) of the incident, {n} still active.", members.len()),
    }
}

/// The texts for `alarm` at `now`.
pub fn compose(cfg: &Config, alarm: &AlarmRow, kind: Kind, facts: &Facts, now: TimestampMs) -> Text {
    let sensor = cfg.sensors.iter().find(|s| s.id == alarm.sensor);
    let unit = sensor.map(|s| s.unit.as_str()).unwrap_or("");
    let asset = cfg.assets.iter().find(|a| a.id == alarm.asset);
    let asset_name = asset.map(|a| a.name.as_str()).unwrap_or(alarm.asset.as_str());
    let location = asset.map(|a| a.location.as_str()).filter(|l| !l.is_empty());
    let rule = cfg.rules.iter().find(|r| r.id == alarm.rule);
    let limit = rule.map(|r| match &r.condition {
        Condition::High { threshold, .. } => format!("> {threshold} {unit}"),
        Condition::Low { threshold, .. } => format!("< {threshold} {unit}"),
        Condition::Rate { per_minute, rising, .. } => {
            format!(
                "{} faster than {per_minute} {unit}/min",
                if *rising { "rising" } else { "falling" }
            )
        }
        Condition::Stale { after } => format!("no reading for {}", humantime::format_duration(*after)),
        Condition::Fault => "probe fault".to_string(),
        Condition::State { equals } => match sensor.and_then(|s| s.state_name(*equals)) {
            Some(name) => format!("is {name}"),
            None => format!("= {equals}"),
        },
        Condition::Forecast { threshold, rising, .. } => format!(
            "heading for {threshold} {unit} ({})",
            if *rising { "rising" } else { "falling" }
        ),
        Condition::NoEvent { equals, within } => format!(
            "not {} for {}",
            sensor
                .and_then(|s| s.state_name(*equals))
                .map_or_else(|| format!("= {equals}"), str::to_string),
            humantime::format_duration(*within)
        ),
        Condition::All(_) | Condition::Any(_) => "combined condition".to_string(),
    });
    let value = facts.value.or(alarm.value);
    // The monitor's own record-integrity sensor says what its value means.
    let monitor = sensor.is_some_and(|s| matches!(s.source, crate::config::SensorSource::Monitor));
    let limit = if monitor {
        Some("the record must match its audit chain".to_string())
    } else {
        limit
    };
    let silent =
        kind != Kind::Normal && rule.is_some_and(|r| matches!(r.condition, Condition::Stale { .. } | Condition::Fault));
    let value_text = match value {
        Some(v) if monitor && v == crate::config::monitor::RECORD_BROKEN => {
            "FAILS its check (changed outside cryowatch; see cryowatch audit verify)".to_string()
        }
        Some(_) if monitor => "verifies".to_string(),
        // A silent or faulty probe has no current value: the last one is history.
        Some(v) if silent => format!("no reading (last good {v:.1} {unit})"),
        None if silent => "no reading".into(),
        Some(v) => match sensor.and_then(|s| s.state_name(v)) {
            Some(name) => name.to_string(),
            None => format!("{v:.1} {unit}"),
        },
        None => "no value".into(),
    };
    // A state's name already says what is wrong: the SMS does not repeat it.
    let sms_limit = match (&limit, rule.map(|r| &r.condition)) {
        (_, Some(Condition::State { .. })) | (None, _) => String::new(),
        (Some(l), _) => format!(" {l}"),
    };
    let how_long = short_duration(now - alarm.since);
    let how_fast = facts
        .rate_per_min
        .filter(|r| r.abs() >= 0.05)
        .map(|r| format!(", {r:+.1} {unit}/min"))
        .unwrap_or_default();
    // Where it is heading, on pages about an open condition only.
    let ahead = facts
        .forecast
        .filter(|_| kind != Kind::Normal && !silent)
        .map(|(limit, ms)| format!(", at this rate {limit} {unit} in {}", short_duration(ms)))
        .unwrap_or_default();
    let how_fast = format!("{how_fast}{ahead}");
    let at = location.map(|l| format!(" ({l})")).unwrap_or_default();
    let what = rule.map(|r| r.id.as_str()).unwrap_or(alarm.rule.as_str());
    let incident = if facts.affected.is_empty() {
        String::new()
    } else {
        format!(" Also affected: {}.", facts.affected.join(", "))
    };
    let (subject, sms) = match kind {
        Kind::Page | Kind::Test => {
            let tag = if kind == Kind::Test || facts.test_by.is_some() {
                "TEST "
            } else {
                ""
            };
            (
                format!(
                    "{tag}[{}] {asset_name}: {} {value_text} (alarm {})",
                    alarm.severity.as_str().to_uppercase(),
                    alarm.sensor,
                    alarm.id
                ),
                format!(
                    "{tag}{} {asset_name}{at}: {} {value_text}{} for {how_long}{how_fast}.{incident} Alarm {}: reply ACK {}",
                    sev(alarm.severity.as_str()),
                    alarm.sensor,
                    sms_limit,
                    alarm.id,
                    alarm.id
                ),
            )
        }
        Kind::Update => {
            let (inc, _) = facts.incident.clone().unwrap_or_default();
            (
                format!(
                    "[{}] Power incident {inc} update: {asset_name}: {} {value_text} (alarm {})",
                    alarm.severity.as_str().to_uppercase(),
                    alarm.sensor,
                    alarm.id
                ),
                format!(
                    "{} power incident {inc} update: {asset_name}{at}: {} {value_text}{}.{} Alarm {}: reply ACK {}",
                    sev(alarm.severity.as_str()),
                    alarm.sensor,
                    sms_limit,
                    sms_members(&facts.members),
                    alarm.id,
                    alarm.id
                ),
            )
        }
        Kind::Normal => (
            format!(
                "{}[NORMAL] {asset_name}: {} back to normal (alarm {})",
                if facts.test_by.is_some() { "TEST " } else { "" },
                alarm.sensor,
                alarm.id
            ),
            format!(
                "{}OK {asset_name}: {} back to normal, {value_text}. Alarm {} over after {how_long}.{}",
                if facts.test_by.is_some() { "TEST " } else { "" },
                alarm.sensor,
                alarm.id,
                sms_members(&facts.members)
            ),
        ),
    };
    let mut body = String::new();
    let _ = writeln!(body, "{subject}\n");
    if let Some(by) = &facts.test_by {
        let _ = writeln!(
            body,
            "THIS IS AN ALARM TEST started by {by}: the value below is synthetic, the unit is not affected.\nAcknowledge alarm {} to complete the test.\n",
            alarm.id
        );
    }
    let _ = writeln!(body, "Unit:       {asset_name}{at}");
    let _ = writeln!(body, "Sensor:     {}", alarm.sensor);
    let _ = writeln!(body, "Value:      {value_text}{how_fast}");
    if let Some(l) = &limit {
        let _ = writeln!(body, "Condition:  {l} (rule {what})");
    }
    let _ = writeln!(body, "Severity:   {}", alarm.severity);
    let _ = writeln!(body, "Since:      {} ({how_long})", format_rfc3339(alarm.since));
    let _ = writeln!(body, "Alarm id:   {}", alarm.id);
    if let Some((inc, opened_by)) = &facts.incident {
        let _ = writeln!(body, "Incident:   power incident {inc} ({opened_by})");
    }
    if !facts.affected.is_empty() {
        let _ = writeln!(body, "Power incident, units affected: {}", facts.affected.join(", "));
    }
    if !facts.members.is_empty() {
        let _ = writeln!(body, "\nEvery alarm of this power incident:");
        for m in &facts.members {
            let _ = writeln!(body, "  - {}", m.text);
        }
    }
    if kind != Kind::Normal {
        body.push_str(&ack_paragraph(alarm.id, true));
    }
    let _ = writeln!(body, "\n{} — cryowatch at {}", cfg.site.name, format_rfc3339(now));
    Text {
        subject,
        body,
        sms: gsm7(&sms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        let text = format!(
            "[site]\nname = \"t\"\ntimezone = \"UTC\"\n[store]\npath = \"s.db\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"t\"\n\
             [[asset]]\nid = \"f7\"\nname = \"Freezer 7\"\nkind = \"freezer_minus80\"\n\
             [[sensor]]\nid = \"f7.temp\"\nasset = \"f7\"\nquantity = \"temperature\"\nunit = \"degC\"\n[sensor.mqtt]\ntopic = \"t\"\n{extra}"
        );
        std::fs::write(&path, text).expect("write");
        crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn alarm(rule: &str, value: f64) -> AlarmRow {
        AlarmRow {
            id: 3,
            rule: rule.into(),
            sensor: "f7.temp".into(),
            asset: "f7".into(),
            severity: crate::model::Severity::Alarm,
            state: crate::model::AlarmState::Active,
            raised_at: 0,
            since: 0,
            value: Some(value),
            latching: false,
            firing: rule.into(),
            returned: false,
            suppressed: None,
            incident: None,
            acked_by: None,
            acked_at: None,
            ack_comment: None,
            ack_path: None,
            cleared_at: None,
        }
    }

    #[test]
    fn a_page_says_where_the_trend_leads_and_a_return_to_normal_does_not() {
        let cfg = config("[[rule]]\nid = \"warm\"\nsensor = \"f7.temp\"\nkind = \"high\"\nthreshold = -70.0\n");
        let facts = Facts {
            value: Some(-72.0),
            rate_per_min: Some(0.1),
            forecast: Some((-60.0, (2 * 60 + 10) * 60_000)),
            ..Facts::default()
        };
        let text = compose(&cfg, &alarm("warm", -72.0), Kind::Page, &facts, 60_000);
        assert!(
            text.sms.contains(", +0.1 degC/min, at this rate -60 degC in 2h10m."),
            "{}",
            text.sms
        );
        assert!(text.body.contains("at this rate -60 degC in 2h10m"), "{}", text.body);
        let normal = compose(&cfg, &alarm("warm", -72.0), Kind::Normal, &facts, 60_000);
        assert!(!normal.sms.contains("at this rate"), "{}", normal.sms);
    }

    #[test]
    fn a_stale_alarm_does_not_show_the_last_value_as_current() {
        let cfg = config("");
        let text = compose(
            &cfg,
            &alarm("f7.temp:stale", -80.2),
            Kind::Page,
            &Facts::default(),
            600_000,
        );
        assert_eq!(
            text.subject,
            "[ALARM] Freezer 7: f7.temp no reading (last good -80.2 degC) (alarm 3)"
        );
        assert!(text.sms.contains("no reading (last good -80.2 degC)"), "{}", text.sms);
        let warm = compose(
            &cfg,
            &alarm("f7.temp:high", -65.0),
            Kind::Page,
            &Facts::default(),
            600_000,
        );
        assert_eq!(warm.subject, "[ALARM] Freezer 7: f7.temp -65.0 degC (alarm 3)");
    }

    #[test]
    fn the_sms_reply_is_offered_only_to_whom_an_sms_channel_reads_it_from() {
        let modem = "[[channel]]\nid = \"sms\"\nkind = \"gsm_modem\"\nserial = \"/dev/null\"\n";
        let mail = "[[channel]]\nid = \"email\"\nkind = \"smtp\"\nhost = \"h\"\nport = 25\ntls = \"none\"\nfrom = \"a@b.org\"\n";
        let people = "[[contact]]\nid = \"alice\"\nemail = \"a@b.org\"\nphone = \"+15550001\"\n\
                      [[contact]]\nid = \"carol\"\nemail = \"c@b.org\"\n";
        let page = |cfg: &Config, who: &str| {
            let text = compose(cfg, &alarm("f7.temp:high", -65.0), Kind::Page, &Facts::default(), 0);
            for_recipient(cfg, &text.body, 3, cfg.notify.contact(who).expect("contact"))
        };
        let with_modem = config(&format!("{mail}{modem}{people}"));
        assert!(page(&with_modem, "alice").contains("reply to the SMS with \"ACK 3\", or run"));
        let no_phone = page(&with_modem, "carol");
        assert!(!no_phone.contains("SMS"), "{no_phone}");
        assert!(
            no_phone.contains("To acknowledge: run\n  cryowatch ack 3"),
            "{no_phone}"
        );
        let mail_only = config(&format!("{mail}{people}"));
        assert!(!page(&mail_only, "alice").contains("SMS"));
    }

    #[test]
    fn a_discrete_state_is_paged_by_its_name_not_its_number() {
        let lid = "[[sensor]]\nid = \"f7.lid\"\nasset = \"f7\"\nquantity = \"state\"\n[sensor.mqtt]\ntopic = \"l\"\n\
                   [[rule]]\nid = \"lid-open\"\nsensor = \"f7.lid\"\nkind = \"state\"\nequals = 1\n";
        let page = |cfg: &Config| {
            let a = AlarmRow {
                sensor: "f7.lid".into(),
                ..alarm("lid-open", 1.0)
            };
            compose(cfg, &a, Kind::Page, &Facts::default(), 300_000)
        };
        let text = page(&config(lid));
        assert_eq!(text.subject, "[ALARM] Freezer 7: f7.lid OPEN (alarm 3)");
        assert!(text.body.contains("Value:      OPEN\n"), "{}", text.body);
        assert!(
            text.body.contains("Condition:  is OPEN (rule lid-open)"),
            "{}",
            text.body
        );
        assert!(text.sms.contains(": f7.lid OPEN for 5m."), "{}", text.sms);
        let named = page(&config(&lid.replace(
            "quantity = \"state\"\n",
            "quantity = \"state\"\nstates = [\"shut\", \"AJAR\"]\n",
        )));
        assert_eq!(named.subject, "[ALARM] Freezer 7: f7.lid AJAR (alarm 3)");
        assert!(named.body.contains("Condition:  is AJAR"), "{}", named.body);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(45_000), "45s");
        assert_eq!(short_duration(3 * 60_000), "3m");
        assert_eq!(short_duration(185 * 60_000), "3h05m");
    }
}

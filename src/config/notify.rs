//! Checked types of the paging sections: contacts, groups, schedules, escalations,
//! routes and channels. `validate_alarms` reports the problems; `build` turns the
//! already-checked raw sections into these types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Secret;
use super::raw::RawConfig;
use super::rules::{Severity, parse_day_time};
use super::validate::Checker;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
    },
    Twilio {
        base_url: String,
        account_sid: String,
        auth_token: Secret,
        from: String,
    },
    GsmModem {
        serial: PathBuf,
        baud: u32,
    },
    Webhook {
        url: String,
    },
}

impl ChannelKind {
    /// Email channels reach a contact's `email`; the others their `phone` (the webhook
    /// gets both).
    pub fn is_email(&self) -> bool {
        matches!(self, ChannelKind::Smtp { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub fallback: Option<String>,
    /// smtp, twilio, webhook: CA certificates trusted besides the system store.
    pub ca_file: Option<PathBuf>,
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

/// Builds the checked paging sections. Only called once validation found no problem,
/// so parsing falls back to defaults instead of reporting.
pub(super) fn build(raw: &RawConfig, base: &Path) -> NotifyConfig {
    let mut quiet = Checker { problems: Vec::new() };
    let dur = |s: &str, d: Duration| super::parse_duration(s).unwrap_or(d);
    NotifyConfig {
        contacts: raw
            .contact
            .iter()
            .map(|c| Contact {
                id: c.id.clone(),
                name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                email: c.email.clone(),
                phone: c.phone.clone(),
            })
            .collect(),
        groups: raw
            .group
            .iter()
            .map(|g| Group {
                id: g.id.clone(),
                members: g.members.clone(),
            })
            .collect(),
        schedules: raw
            .schedule
            .iter()
            .map(|s| {
                let (day, time) = parse_day_time(&s.handoff).unwrap_or((None, jiff::civil::Time::midnight()));
                Schedule {
                    id: s.id.clone(),
                    rotation: if s.rotation == "daily" {
                        Rotation::Daily
                    } else {
                        Rotation::Weekly
                    },
                    handoff_day: day,
                    handoff_time: time,
                    members: s.members.clone(),
                    overrides: s
                        .overrides
                        .iter()
                        .filter_map(|o| {
                            Some(Override {
                                contact: o.contact.clone(),
                                from: o.from.parse().ok()?,
                                to: o.to.parse().ok()?,
                            })
                        })
                        .collect(),
                }
            })
            .collect(),
        escalations: raw
            .escalation
            .iter()
            .map(|e| Escalation {
                id: e.id.clone(),
                repeat: e.repeat.unwrap_or(0),
                repeat_interval: e
                    .repeat_interval
                    .as_deref()
                    .map_or(Duration::from_secs(900), |s| dur(s, Duration::from_secs(900))),
                steps: e
                    .step
                    .iter()
                    .map(|s| Step {
                        after: dur(&s.after, Duration::ZERO),
                        notify: s
                            .notify
                            .iter()
                            .filter_map(|t| match t.split_once(':') {
                                Some(("contact", id)) => Some(Target::Contact(id.into())),
                                Some(("schedule", id)) => Some(Target::Schedule(id.into())),
                                Some(("group", id)) => Some(Target::Group(id.into())),
                                _ => None,
                            })
                            .collect(),
                        via: s.via.clone(),
                    })
                    .collect(),
            })
            .collect(),
        routes: raw
            .route
            .iter()
            .map(|r| Route {
                escalation: r.escalation.clone(),
                asset: r.asset.clone(),
                severity: r.severity.as_deref().and_then(Severity::parse),
            })
            .collect(),
        channels: raw
            .channel
            .iter()
            .filter_map(|ch| {
                let p = format!("channel.{}", ch.id);
                let kind = match ch.kind.as_str() {
                    "smtp" => {
                        let tls = match ch.tls.as_deref() {
                            Some("none") => SmtpTls::None,
                            Some("tls") => SmtpTls::Tls,
                            _ => SmtpTls::StartTls,
                        };
                        ChannelKind::Smtp {
                            host: ch.host.clone()?,
                            port: ch.port.unwrap_or(match tls {
                                SmtpTls::None => 25,
                                SmtpTls::StartTls => 587,
                                SmtpTls::Tls => 465,
                            }),
                            tls,
                            username: ch.username.clone(),
                            password: quiet.secret(
                                &p,
                                "password",
                                &ch.password,
                                &ch.password_env,
                                &ch.password_file,
                                base,
                            ),
                            from: ch.from.clone()?,
                        }
                    }
                    "twilio" => ChannelKind::Twilio {
                        base_url: ch
                            .base_url
                            .clone()
                            .unwrap_or_else(|| "https://api.twilio.com".into())
                            .trim_end_matches('/')
                            .to_string(),
                        account_sid: ch.account_sid.clone()?,
                        auth_token: quiet.secret(
                            &p,
                            "auth_token",
                            &ch.auth_token,
                            &ch.auth_token_env,
                            &ch.auth_token_file,
                            base,
                        )?,
                        from: ch.from.clone()?,
                    },
                    "gsm_modem" => ChannelKind::GsmModem {
                        serial: super::validate::resolve(base, ch.serial.as_deref()?),
                        baud: ch.baud.unwrap_or(115_200),
                    },
                    _ => ChannelKind::Webhook { url: ch.url.clone()? },
                };
                Some(Channel {
                    id: ch.id.clone(),
                    kind,
                    fallback: ch.fallback.clone(),
                    ca_file: ch.ca_file.as_deref().map(|f| super::validate::resolve(base, f)),
                })
            })
            .collect(),
    }
}

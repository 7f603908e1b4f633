//! The paging half of `check --explain`: channels and what each TLS peer trusts,
//! contacts, schedules with who is on call now, escalations and routes.

use std::fmt::Write;

use super::dur;
use crate::config::Config;
use crate::config::notify::{ChannelKind, Rotation, SmtpTls, Target};
use crate::notify::oncall;

/// Default of an escalation's `repeat_interval` (as `config::notify` applies it).
const DEFAULT_REPEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(900);

pub(super) fn paging(cfg: &Config, now: jiff::Timestamp, s: &mut String) {
    channels(cfg, s);
    tls(cfg, s);
    let n = &cfg.notify;
    if !n.contacts.is_empty() {
        let _ = writeln!(s, "contacts:");
    }
    for c in &n.contacts {
        let mut how = Vec::new();
        if let Some(e) = &c.email {
            how.push(format!("email {e}"));
        }
        if let Some(p) = &c.phone {
            how.push(format!("phone {p}"));
        }
        let _ = writeln!(s, "  {} ({}): {}", c.id, c.name, how.join(", "));
    }
    for g in &n.groups {
        let _ = writeln!(s, "group {}: {}", g.id, g.members.join(", "));
    }
    schedules(cfg, now, s);
    for e in &n.escalations {
        let interval = if e.repeat_interval == DEFAULT_REPEAT_INTERVAL {
            format!("{} (the default)", dur(e.repeat_interval))
        } else {
            dur(e.repeat_interval)
        };
        let repeat = match e.repeat {
            0 => "runs once (repeat 0, the default)".to_string(),
            r => format!("runs again {r} more time(s), {interval} after its last step"),
        };
        let _ = writeln!(s, "escalation {}: {repeat}", e.id);
        for (i, step) in e.steps.iter().enumerate() {
            let who: Vec<String> = step
                .notify
                .iter()
                .map(|t| match t {
                    Target::Contact(c) => format!("contact:{c}"),
                    Target::Schedule(c) => format!("schedule:{c} (whoever is on call)"),
                    Target::Group(c) => format!("group:{c}"),
                })
                .collect();
            let via = if step.via.is_empty() {
                "every channel that reaches them (default)".to_string()
            } else {
                step.via.join(", ")
            };
            let _ = writeln!(
                s,
                "  step {}: {} after the alarm became active, notify {} via {via}",
                i + 1,
                dur(step.after),
                who.join(", ")
            );
        }
    }
    if n.routes.is_empty() && !n.escalations.is_empty() {
        let _ = writeln!(s, "routes: none; only rules that name an escalation page anyone");
    }
    for (i, r) in n.routes.iter().enumerate() {
        let _ = writeln!(
            s,
            "route[{i}]: {} alarms of {} -> escalation {}",
            r.severity.map_or("all".to_string(), |v| format!("{v} and worse")),
            r.asset
                .as_deref()
                .map_or("every asset".to_string(), |a| format!("asset {a}")),
            r.escalation
        );
    }
}

fn channels(cfg: &Config, s: &mut String) {
    for ch in &cfg.notify.channels {
        let what = match &ch.kind {
            ChannelKind::Smtp {
                host, port, tls, from, ..
            } => {
                let tls = match tls {
                    SmtpTls::None => "no TLS",
                    SmtpTls::StartTls => "STARTTLS",
                    SmtpTls::Tls => "TLS",
                };
                format!("smtp {host}:{port} ({tls}), from {from}")
            }
            ChannelKind::Twilio { base_url, from, .. } => format!("twilio {base_url}, from {from}"),
            ChannelKind::GsmModem { serial, baud, ring } => {
                let ring = ring.map_or(String::new(), |r| {
                    format!(", rings {} before each SMS", humantime::format_duration(r))
                });
                format!("gsm_modem {} @{baud}{ring}", serial.display())
            }
            ChannelKind::Webhook { url } => format!("webhook {url}"),
        };
        let fallback = ch
            .fallback
            .as_deref()
            .map_or(", no fallback".to_string(), |f| format!(", falls back to {f}"));
        let _ = writeln!(s, "channel {}: {what}{fallback}", ch.id);
    }
}

/// Which peers use TLS and what they trust.
fn tls(cfg: &Config, s: &mut String) {
    let peers = crate::tls::peers(cfg);
    if peers.is_empty() {
        return;
    }
    let system = crate::tls::system_roots();
    let store = if system == 0 {
        "the bundled web PKI roots (the system trust store is empty)".to_string()
    } else {
        format!("the system trust store ({system} certificates)")
    };
    let _ = writeln!(s, "tls:");
    for p in peers {
        let extra = p
            .ca_file
            .as_ref()
            .map_or(String::new(), |f| format!(" and ca_file {}", f.display()));
        let _ = writeln!(s, "  {} {} ({}) trusts {store}{extra}", p.key, p.what, p.host);
    }
}

fn schedules(cfg: &Config, now: jiff::Timestamp, s: &mut String) {
    let tz = &cfg.site.timezone;
    let local = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    for sc in &cfg.notify.schedules {
        let handoff = match (sc.rotation, sc.handoff_day) {
            (Rotation::Weekly, Some(d)) => format!("weekly, handoff {d:?} {}", sc.handoff_time),
            _ => format!("daily, handoff {}", sc.handoff_time),
        };
        let start = match (oncall::start(sc, tz), sc.start) {
            (Some(t), Some(_)) => format!("start {}", local(t)),
            (Some(t), None) => format!("start {} (implied: no start written)", local(t)),
            (None, _) => "no start".into(),
        };
        let _ = writeln!(
            s,
            "schedule {}: {handoff} ({}), members {}, {start}",
            sc.id,
            tz.iana_name().unwrap_or("UTC"),
            sc.members.join(", ")
        );
        for o in &sc.overrides {
            let _ = writeln!(s, "  override {} from {} to {}", o.contact, local(o.from), local(o.to));
        }
        let o = oncall::outlook(sc, tz, now);
        let _ = writeln!(
            s,
            "  on call now: {}{}",
            o.now.as_deref().unwrap_or("nobody"),
            if o.now_by_override { " (override)" } else { "" }
        );
        if let (Some(next), Some(from)) = (&o.next, o.next_from) {
            let _ = writeln!(s, "  next: {next} from {}", local(from));
        }
    }
}

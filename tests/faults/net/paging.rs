//! Paging scenarios: cryosim warms the dewar past a critical rule with no delay, the
//! escalation's first step pages at once, and one notification peer misbehaves — the
//! SMTP server is down, the SMS gateway answers 500 then 429, the GSM modem answers
//! `+CMS ERROR`. Pages are counted where they arrive.

use std::time::{Duration, Instant};

use super::{checked_site, finish, store, tally_pages};
use crate::common::cryosim::CryoSim;
use crate::common::modem::FakeModem;
use crate::common::smtp::SmtpServer;
use crate::common::twilio::{FakeTwilio, TwilioMode};
use crate::common::{Site, wait_for};
use crate::outcome::Outcome;

const PATIENCE: Duration = Duration::from_secs(30);

/// The people paged: id, email, phone.
const CONTACTS: [(&str, Option<&str>, Option<&str>); 3] = [
    ("alice", Some("alice@example.org"), Some("+15551230001")),
    ("bob", None, Some("+15551230002")),
    ("carol", Some("carol@example.org"), None),
];

/// The contact an email address or phone number belongs to.
fn who(address: &str) -> String {
    CONTACTS
        .iter()
        .find(|(_, email, phone)| *email == Some(address) || *phone == Some(address))
        .map_or_else(|| format!("unknown {address}"), |(id, ..)| id.to_string())
}

/// The dewar on cryosim, a critical rule at -189 °C (steady is -190.5) paging through
/// escalation `oncall` made of `steps` (`[[escalation.step]]` tables), every contact,
/// and `channels` (`[[channel]]` tables).
fn config(sim: &CryoSim, steps: &str, channels: &str) -> String {
    let mut text = format!(
        r#"[site]
name = "fault suite"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
flush_interval = "50ms"
[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "other"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -189.0
hysteresis = 0.5
severity = "critical"
escalation = "oncall"
[[escalation]]
id = "oncall"
{steps}
"#,
        modbus = sim.modbus
    );
    for (id, email, phone) in CONTACTS {
        text += &format!("[[contact]]\nid = \"{id}\"\nname = \"{id}\"\n");
        if let Some(e) = email {
            text += &format!("email = \"{e}\"\n");
        }
        if let Some(p) = phone {
            text += &format!("phone = \"{p}\"\n");
        }
    }
    text + channels
}

fn step(notify: &str, via: &str) -> String {
    format!("[[escalation.step]]\nafter = \"0s\"\nnotify = [\"contact:{notify}\"]\nvia = [\"{via}\"]\n")
}

fn smtp_channel(id: &str, port: u16, fallback: Option<&str>) -> String {
    let mut t = format!(
        "[[channel]]\nid = \"{id}\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"cryowatch <cryowatch@example.org>\"\n"
    );
    if let Some(f) = fallback {
        t += &format!("fallback = \"{f}\"\n");
    }
    t
}

fn modem_channel(id: &str, modem: &FakeModem, fallback: Option<&str>) -> String {
    let mut t = format!(
        "[[channel]]\nid = \"{id}\"\nkind = \"gsm_modem\"\nserial = \"{}\"\nbaud = 115200\n",
        modem.tty.display()
    );
    if let Some(f) = fallback {
        t += &format!("fallback = \"{f}\"\n");
    }
    t
}

fn gateway_channel(id: &str, gw: &FakeTwilio) -> String {
    format!(
        "[[channel]]\nid = \"{id}\"\nkind = \"twilio\"\nbase_url = \"{}\"\naccount_sid = \"{}\"\n\
         auth_token = \"{}\"\nfrom = \"+15550000000\"\n",
        gw.base_url, gw.account_sid, gw.auth_token
    )
}

/// Starts the daemon, waits for its first readings, and warms the dewar past the rule.
fn start_and_warm(site: &Site, sim: &CryoSim) -> crate::common::Proc {
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(15), "the dewar's first readings", || {
        (super::readings(site, "dewar-1.temp").len() >= 2).then_some(())
    });
    let answer = sim.command("set dewar-1 warmup:600");
    assert!(
        answer.starts_with("ok"),
        "cryosim: set dewar-1 warmup:600 answered {answer:?}"
    );
    daemon
}

/// (time ms, result) of every delivery attempt for `contact`'s pages, oldest first.
fn attempts(site: &Site, contact: &str) -> Vec<(i64, String)> {
    let Some(c) = store(site) else { return Vec::new() };
    let Ok(mut st) = c.prepare(
        "SELECT d.t, d.result FROM delivery d JOIN notification n ON n.id = d.notification \
         WHERE n.contact = ?1 AND n.kind = 'page' ORDER BY d.id",
    ) else {
        return Vec::new();
    };
    st.query_map([contact], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

/// SMTP is down when the excursion starts. Alice (email, falls back to the modem) must
/// get her page by SMS at once; Carol (email only) by a retry once SMTP is back. Nothing
/// may go out twice when SMTP returns.
pub fn smtp_down() -> Outcome {
    let mut out = Outcome::new("smtp down");
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let mut smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let channels = smtp_channel("email", smtp.port, Some("sms")) + &modem_channel("sms", &modem, None);
    let steps = step("alice", "email") + &step("carol", "email");
    let site = checked_site(&config(&sim, &steps, &channels));
    smtp.stop();
    let daemon = start_and_warm(&site, &sim);

    let fallback = modem.wait_sent(1, PATIENCE);
    wait_for(PATIENCE, "carol's page to fail on the stopped SMTP server", || {
        attempts(&site, "carol")
            .iter()
            .any(|(_, r)| r.starts_with("failed"))
            .then_some(())
    });
    smtp.restart();
    let back = Instant::now();
    let mails = wait_for(PATIENCE, "carol's page by email after SMTP returned", || {
        let m = smtp.messages();
        m.iter()
            .any(|m| m.rcpt_tos.iter().any(|r| r == "carol@example.org"))
            .then_some(m)
    });
    out.recovery = Some(back.elapsed());
    // Anything sent twice would arrive now, on the next passes.
    std::thread::sleep(Duration::from_secs(3));
    finish(&site, daemon, &mut out);

    let mut arrivals: Vec<String> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_tos.iter().map(|r| who(r)))
        .collect();
    arrivals.extend(modem.sent().iter().map(|m| who(&m.to)));
    tally_pages(&mut out, &["alice", "carol"], &arrivals);
    out.detail = format!(
        "alice by the modem fallback ({}), carol by email retry; recovery = SMTP back -> carol's page delivered ({} mail(s) then)",
        fallback.first().map_or("none", |m| m.to.as_str()),
        mails.len()
    );
    out
}

/// The gateway answers 500 to the first attempt and 429 (Retry-After: 7) to the second,
/// then accepts. Alice's page has no fallback: it must arrive by retry, once.
pub fn gateway_errors() -> Outcome {
    let mut out = Outcome::new("gateway 500 then 429");
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let gw = FakeTwilio::start(dir.path());
    gw.set_mode(TwilioMode::Error500);
    let site = checked_site(&config(
        &sim,
        &step("alice", "gateway"),
        &gateway_channel("gateway", &gw),
    ));
    let daemon = start_and_warm(&site, &sim);

    wait_for(PATIENCE, "the first attempt (answered 500)", || {
        (!gw.requests().is_empty()).then_some(())
    });
    gw.set_mode(TwilioMode::RateLimit);
    wait_for(PATIENCE, "the second attempt (answered 429)", || {
        (gw.requests().len() >= 2).then_some(())
    });
    let limited = Instant::now();
    gw.set_mode(TwilioMode::Normal);
    let accepted = wait_for(PATIENCE, "the page accepted by the gateway", || {
        (!gw.accepted().is_empty()).then(Instant::now)
    });
    out.recovery = Some(accepted - limited);
    std::thread::sleep(Duration::from_secs(3));
    finish(&site, daemon, &mut out);

    let requests = gw.requests();
    let statuses: Vec<String> = requests.iter().map(|r| r.http_status.to_string()).collect();
    let arrivals: Vec<String> = gw.accepted().iter().map(|r| who(&r.to)).collect();
    tally_pages(&mut out, &["alice"], &arrivals);
    let waited = (accepted - limited).as_secs_f64();
    out.detail = format!(
        "answers {}; retried {waited:.1} s after the 429 (Retry-After 7 s{}); recovery = gateway accepting -> page accepted",
        statuses.join(", "),
        if waited < 7.0 { ", NOT respected" } else { "" }
    );
    out
}

/// Two modems: Alice's (no fallback) answers `+CMS ERROR: 332` (network timeout,
/// temporary) once, Bob's (falling back to the gateway) `+CMS ERROR: 21` (short message
/// transfer rejected, permanent). Alice's page must arrive by retry on her modem, Bob's
/// through the gateway; each once.
pub fn modem_errors() -> Outcome {
    let mut out = Outcome::new("modem +CMS ERROR");
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir1, dir2) = (dir.path().join("m1"), dir.path().join("m2"));
    std::fs::create_dir_all(&dir1).expect("modem 1 dir");
    std::fs::create_dir_all(&dir2).expect("modem 2 dir");
    let sim = CryoSim::start(dir.path());
    let temporary = FakeModem::start(&dir1);
    let permanent = FakeModem::start(&dir2);
    let gw = FakeTwilio::start(dir.path());
    let channels = modem_channel("sms", &temporary, None)
        + &modem_channel("sms2", &permanent, Some("gateway"))
        + &gateway_channel("gateway", &gw);
    let steps = step("alice", "sms") + &step("bob", "sms2");
    let site = checked_site(&config(&sim, &steps, &channels));
    temporary.fail_next(1, 332);
    permanent.fail_next(1, 21);
    let daemon = start_and_warm(&site, &sim);

    let done = |contact: &str| {
        let a = attempts(&site, contact);
        let failed = a.iter().find(|(_, r)| r.starts_with("failed")).map(|(t, _)| *t)?;
        let sent = a.iter().find(|(_, r)| r == "sent").map(|(t, _)| *t)?;
        Some(sent - failed)
    };
    let (alice, bob) = wait_for(PATIENCE, "both pages delivered after their +CMS ERROR", || {
        Some((done("alice")?, done("bob")?))
    });
    out.recovery = Some(Duration::from_millis(alice.max(bob).max(0) as u64));
    std::thread::sleep(Duration::from_secs(3));
    finish(&site, daemon, &mut out);

    let mut arrivals: Vec<String> = temporary.sent().iter().map(|m| who(&m.to)).collect();
    arrivals.extend(permanent.sent().iter().map(|m| who(&m.to)));
    arrivals.extend(gw.accepted().iter().map(|r| who(&r.to)));
    tally_pages(&mut out, &["alice", "bob"], &arrivals);
    let results = |c: &str| {
        attempts(&site, c)
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(">")
    };
    out.detail = format!(
        "alice (332, temporary): {} after {:.1} s; bob (21, permanent): {} after {:.1} s; \
         recovery = error -> page delivered (slower of the two)",
        results("alice"),
        alice as f64 / 1000.0,
        results("bob"),
        bob as f64 / 1000.0
    );
    out
}

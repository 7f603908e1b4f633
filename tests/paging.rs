//! Paging end to end: `cryosim` makes the excursion, the real `cryowatch run` raises the
//! alarm and pages through a real SMTP server (aiosmtpd) and the fake GSM modem on a pty
//! pair; results are read from the servers and from the store's outbox.

mod common;

use std::time::{Duration, Instant};

use common::cryosim::CryoSim;
use common::modem::FakeModem;
use common::smtp::SmtpServer;
use common::twilio::{FakeTwilio, TwilioMode};
use common::{Proc, Site, cryowatch_output};
use rusqlite::{Connection, OpenFlags};

const PATIENCE: Duration = Duration::from_secs(20);

/// A dewar whose temperature alarm (no delay) pages alice by email and SMS at once and
/// carol after `second` seconds; email falls back to the modem.
fn config(sim: &CryoSim, smtp_port: u16, modem: &FakeModem, second: u64, threshold: f64) -> String {
    format!(
        r#"[site]
name = "paging test lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
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
kind = "ln2_dewar"
location = "Room 214"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "30s"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = {threshold}
hysteresis = 0.5
severity = "critical"
escalation = "oncall"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
phone = "+15551230001"
[[contact]]
id = "carol"
name = "Carol"
email = "carol@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email", "sms"]
[[escalation.step]]
after = "{second}s"
notify = ["contact:carol"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
fallback = "sms"
[[channel]]
id = "sms"
kind = "gsm_modem"
serial = "{tty}"
baud = 115200
"#,
        modbus = sim.modbus,
        tty = modem.tty.display()
    )
}

fn site(text: &str) -> Site {
    let site = Site::new(text);
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    site
}

fn db(site: &Site) -> Option<Connection> {
    Connection::open_with_flags(site.path().join("cryowatch.db"), OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// (kind, step, contact, channel, state, via) of every notification.
fn outbox(site: &Site) -> Vec<(String, i64, String, String, String, Option<String>)> {
    let Some(c) = db(site) else { return Vec::new() };
    let Ok(mut st) = c.prepare("SELECT kind, step, contact, channel, state, via FROM notification ORDER BY id") else {
        return Vec::new();
    };
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
    })
    .and_then(|rows| rows.collect())
    .unwrap_or_default()
}

fn open_alarm(site: &Site) -> Option<i64> {
    db(site)?
        .query_row(
            "SELECT id FROM alarm WHERE state != 'cleared' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok()
}

fn wait<T>(site: &Site, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\noutbox: {:?}\ndaemon log:\n{}",
            outbox(site),
            site.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn warm(sim: &CryoSim) {
    let answer = sim.command("set dewar-1 warmup:600");
    assert!(answer.starts_with("ok"), "{answer}");
}

fn ack(site: &Site, id: i64) {
    let out = cryowatch_output(&[
        "ack",
        "-c",
        &site.config_str(),
        &id.to_string(),
        "--by",
        "alice",
        "--comment",
        "on it",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_excursion_pages_step_one_at_once_then_step_two_and_an_ack_stops_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 3, -189.0));
    let _daemon: Proc = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    let mails = smtp.wait_messages(1, PATIENCE);
    assert_eq!(mails[0].rcpt_tos, ["alice@example.org"]);
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(subject.contains("Dewar 1") && subject.contains("CRITICAL"), "{subject}");
    assert!(
        mails[0].body.contains("Room 214") && mails[0].body.contains("ACK"),
        "{}",
        mails[0].body
    );
    // The Message-ID carries the installation's tag: another store counting pages from
    // 1 again cannot reuse it (mail systems drop a Message-ID they have seen).
    let mid = mails[0].header("Message-ID").unwrap_or_default().to_string();
    let tag = mid.trim_start_matches("<cryowatch-").split('-').next().unwrap_or("");
    assert!(tag.len() == 10 && tag.chars().all(|c| c.is_ascii_hexdigit()), "{mid}");
    let sms = modem.wait_sent(1, PATIENCE);
    assert_eq!(sms[0].to, "+15551230001");
    assert!(sms[0].text.len() <= 160, "one segment: {:?}", sms[0].text);
    assert!(sms[0].text.contains("ACK"), "{:?}", sms[0].text);
    // Step two after 3 s: carol.
    let mails = smtp.wait_messages(2, PATIENCE);
    assert_eq!(mails[1].rcpt_tos, ["carol@example.org"]);
    // Alice has a phone the modem reaches, so her mail offers the SMS reply; carol has
    // none, so hers does not.
    assert!(mails[0].body.contains("reply to the SMS with"), "{}", mails[0].body);
    assert!(!mails[1].body.contains("SMS"), "{}", mails[1].body);
    assert!(mails[1].body.contains("To acknowledge: run"), "{}", mails[1].body);
    let id = wait(&site, "an open alarm", || open_alarm(&site));
    ack(&site, id);
    // Nothing more is paged: no repeat configured, and the ack stops the rest.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(modem.sent().len(), 1);
    let pages: Vec<_> = outbox(&site).into_iter().filter(|n| n.0 == "page").collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|n| n.4 == "sent"), "{pages:?}");
}

#[test]
fn return_to_normal_is_announced_to_everyone_paged() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 3600, -189.0));
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    smtp.wait_messages(1, PATIENCE);
    modem.wait_sent(1, PATIENCE);
    assert!(sim.command("set dewar-1 steady").starts_with("ok"));
    let mails = smtp.wait_messages(2, PATIENCE);
    assert!(
        mails[1].header("Subject").unwrap_or_default().contains("NORMAL"),
        "{:?}",
        mails[1].header("Subject")
    );
    let sms = modem.wait_sent(2, PATIENCE);
    assert!(sms[1].text.contains("back to normal"), "{:?}", sms[1].text);
}

#[test]
fn with_smtp_down_the_email_page_goes_out_by_the_modem() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let mut smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 3600, -189.0));
    smtp.stop();
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    // Two SMS to alice: the SMS step itself and the email page through its fallback.
    let sms = modem.wait_sent(2, PATIENCE);
    assert!(sms.iter().all(|m| m.to == "+15551230001"), "{sms:?}");
    let n = wait(&site, "the email page delivered by the fallback", || {
        outbox(&site).into_iter().find(|n| n.3 == "email" && n.4 == "sent")
    });
    assert_eq!(n.5.as_deref(), Some("sms"));
}

#[test]
fn an_ack_by_sms_reply_stops_the_escalation_and_is_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 8, -189.0));
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    modem.wait_sent(1, PATIENCE);
    let id = wait(&site, "an open alarm", || open_alarm(&site));
    modem.queue_sms("+15551230001", &format!("ACK {id} topping up"));
    let (by, path, comment): (String, String, String) = wait(&site, "the SMS acknowledgement", || {
        db(&site)?
            .query_row(
                "SELECT acked_by, ack_path, ack_comment FROM alarm WHERE id = ?1 AND acked_by IS NOT NULL",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok()
    });
    assert_eq!(
        (by.as_str(), path.as_str(), comment.as_str()),
        ("Alice", "sms", "topping up")
    );
    // Alice learns by SMS that it counted, once the acknowledgement is recorded.
    let answers = modem.wait_sent(2, PATIENCE);
    assert_eq!(answers[1].to, "+15551230001");
    assert!(
        answers[1].text.contains(&format!("ACK {id} accepted")) && answers[1].text.contains("Alice"),
        "{:?}",
        answers[1].text
    );
    // A second ACK is refused, and she is told why; an unknown alarm too.
    modem.queue_sms("+15551230001", &format!("ACK {id}"));
    modem.queue_sms("+15551230001", "ACK 9999");
    let answers = modem.wait_sent(4, PATIENCE);
    let texts: Vec<&str> = answers[2..].iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("ACK {id} NOT accepted")) && t.contains("already acknowledged")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("ACK 9999 NOT accepted") && t.contains("no open alarm 9999")),
        "{texts:?}"
    );
    // Step two (8 s) never goes out.
    std::thread::sleep(Duration::from_secs(9));
    assert!(smtp.messages().iter().all(|m| m.rcpt_tos != ["carol@example.org"]));
    assert_eq!(modem.sent().len(), 4, "one answer per ACK: {:?}", modem.sent());
    // The trail holds the alarm, its pages and the acknowledgement as the alarm table does.
    let verify = cryowatch_output(&["audit", "verify", "-c", &site.config_str()]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let log = cryowatch_output(&["audit", "log", "-c", &site.config_str(), "--kind", "alarm"]);
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("alarm.acknowledged") && l.contains("Alice") && l.contains("topping up")),
        "{log}"
    );
}

#[test]
fn kill_9_between_two_steps_sends_the_second_step_once() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 6, -189.0));
    let mut daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    smtp.wait_messages(1, PATIENCE);
    modem.wait_sent(1, PATIENCE);
    daemon.signal("KILL");
    let _ = daemon.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let _again = site.start_daemon();
    let mails = smtp.wait_messages(2, PATIENCE);
    assert_eq!(mails[1].rcpt_tos, ["carol@example.org"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 2, "nothing sent twice");
    assert_eq!(modem.sent().len(), 1, "nothing sent twice");
}

#[test]
fn a_test_page_goes_through_every_channel_and_is_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 3600, -100.0));
    let out = cryowatch_output(&["test-page", "-c", &site.config_str(), "--contact", "alice"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(smtp.wait_messages(1, PATIENCE)[0].rcpt_tos, ["alice@example.org"]);
    assert!(modem.wait_sent(1, PATIENCE)[0].text.starts_with("TEST"));
    let tests: Vec<_> = outbox(&site).into_iter().filter(|n| n.0 == "test").collect();
    assert_eq!(tests.len(), 2);
    assert!(tests.iter().all(|n| n.4 == "sent"), "{tests:?}");
    // By name, as the command line documents it, too.
    let by_name = cryowatch_output(&["test-page", "-c", &site.config_str(), "--contact", "Alice"]);
    assert!(by_name.status.success(), "{}", String::from_utf8_lossy(&by_name.stderr));
    let bad = cryowatch_output(&["test-page", "-c", &site.config_str(), "--contact", "nobody"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The first step texts alice through the SMS gateway; the modem is its fallback.
fn gateway_config(sim: &CryoSim, smtp_port: u16, modem: &FakeModem, gw: &FakeTwilio) -> String {
    config(sim, smtp_port, modem, 3600, -189.0).replace(
        "notify = [\"contact:alice\"]\nvia = [\"email\", \"sms\"]",
        "notify = [\"contact:alice\"]\nvia = [\"gateway\"]",
    ) + &format!(
        "[[channel]]\nid = \"gateway\"\nkind = \"twilio\"\nbase_url = \"{}\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\nfrom = \"+15550000000\"\nfallback = \"sms\"\n",
        gw.base_url, gw.account_sid, gw.auth_token
    )
}

#[test]
fn a_page_the_carrier_did_not_deliver_goes_out_again_by_the_modem() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let gw = FakeTwilio::start(dir.path());
    gw.set_mode(TwilioMode::Undelivered);
    let site = site(&gateway_config(&sim, smtp.port, &modem, &gw));
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    let accepted = wait(&site, "the gateway to accept the page", || {
        let a = gw.accepted();
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(accepted[0].to, "+15551230001");
    // The read-back says undelivered (30005): the modem carries the page.
    let sms = modem.wait_sent(1, PATIENCE);
    assert_eq!(sms[0].to, "+15551230001");
    let fate: String = wait(&site, "the carrier's verdict recorded", || {
        db(&site)?
            .query_row("SELECT detail FROM delivery WHERE result = 'fate_failed'", [], |r| {
                r.get(0)
            })
            .ok()
    });
    assert!(fate.contains("30005"), "{fate}");
}

#[test]
fn a_gateway_error_pages_through_the_fallback_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let gw = FakeTwilio::start(dir.path());
    gw.set_mode(TwilioMode::Error500);
    let site = site(&gateway_config(&sim, smtp.port, &modem, &gw));
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    let sms = modem.wait_sent(1, PATIENCE);
    assert_eq!(sms[0].to, "+15551230001");
    let n = wait(&site, "the gateway page sent via the modem", || {
        outbox(&site).into_iter().find(|n| n.3 == "gateway" && n.4 == "sent")
    });
    assert_eq!(n.5.as_deref(), Some("sms"));
}

#[test]
fn a_severity_upgrade_restarts_the_escalation() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    // A warning at -189.5 and the critical rule at -185 (same family: one alarm).
    let text = config(&sim, smtp.port, &modem, 3600, -185.0)
        + "[[rule]]\nid = \"dewar-cool-warning\"\nsensor = \"dewar-1.temp\"\nkind = \"high\"\nthreshold = -189.5\nseverity = \"warning\"\nescalation = \"oncall\"\n";
    let site = site(&text);
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    assert!(sim.command("set dewar-1 warmup:30").starts_with("ok"));
    let first = smtp.wait_messages(1, PATIENCE);
    assert!(
        first[0].header("Subject").unwrap_or_default().contains("WARNING"),
        "{:?}",
        first[0].header("Subject")
    );
    let id = wait(&site, "the warning alarm", || open_alarm(&site));
    ack(&site, id);
    // Warming on past -185: the same alarm is upgraded and paged again.
    let mails = wait(&site, "the critical page", || {
        let m = smtp.messages();
        m.iter()
            .any(|m| m.header("Subject").unwrap_or_default().contains("CRITICAL"))
            .then_some(m)
    });
    let critical = mails
        .iter()
        .find(|m| m.header("Subject").unwrap_or_default().contains("CRITICAL"))
        .expect("critical mail");
    assert!(
        critical
            .header("Subject")
            .unwrap_or_default()
            .contains(&format!("alarm {id}"))
    );
}

#[test]
fn a_page_no_channel_can_deliver_is_raised_in_status_and_retried_until_it_goes_out() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let mut smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let text = config(&sim, smtp.port, &modem, 3600, -189.0)
        .replace("fallback = \"sms\"\n", "")
        .replace("via = [\"email\", \"sms\"]", "via = [\"email\"]");
    let site = site(&text);
    smtp.stop();
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    let stderr = wait(&site, "status to raise the undelivered page", || {
        let out = cryowatch_output(&["status", "-c", &site.config_str()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("CRITICAL: page").then_some(err)
    });
    assert!(stderr.contains("alice") && stderr.contains("retrying"), "{stderr}");
    // The mail server comes back: the page goes out on a retry, once.
    smtp.restart();
    let mails = smtp.wait_messages(1, Duration::from_secs(30));
    assert_eq!(mails[0].rcpt_tos, ["alice@example.org"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn a_scheduled_test_page_goes_out_once_per_occurrence() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    // Scheduled for the current minute (UTC), daily.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let hhmm = format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60);
    let text = config(&sim, smtp.port, &modem, 3600, -100.0)
        + &format!("[[test_page]]\ncontact = \"alice\"\nevery = \"{hhmm}\"\n");
    let site = site(&text);
    let mut daemon = site.start_daemon();
    let mails = smtp.wait_messages(1, PATIENCE);
    assert!(mails[0].header("Subject").unwrap_or_default().contains("TEST"));
    modem.wait_sent(1, PATIENCE);
    // A restart within the same occurrence sends nothing again.
    daemon.signal("KILL");
    let _ = daemon.wait_exit(Duration::from_secs(5));
    let _again = site.start_daemon();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(modem.sent().len(), 1);
}

#[test]
fn a_power_incident_pages_once_for_the_alarms_it_causes() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let text = config(&sim, smtp.port, &modem, 3600, -189.0)
        + &format!(
            "[[modbus.device]]\nid = \"ctrl-ups\"\ntransport = \"tcp\"\naddress = \"{}\"\nunit = 3\npoll_interval = \"250ms\"\ntimeout = \"500ms\"\n\
             [[asset]]\nid = \"ups-1\"\nkind = \"ups\"\n\
             [[sensor]]\nid = \"ups-1.on_battery\"\nasset = \"ups-1\"\nquantity = \"state\"\nstale_after = \"30s\"\n\
             [sensor.modbus]\ndevice = \"ctrl-ups\"\nregister = \"discrete\"\naddress = 0\ntype = \"bool\"\n\
             [[rule]]\nid = \"mains-lost\"\nsensor = \"ups-1.on_battery\"\nkind = \"state\"\nequals = 1\nseverity = \"critical\"\n\
             incident = \"power\"\nescalation = \"oncall\"\n",
            sim.modbus
        );
    let site = site(&text);
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    assert!(sim.command("set ups-1 power-loss").starts_with("ok"));
    let first = smtp.wait_messages(1, PATIENCE);
    let incident = wait(&site, "the mains alarm", || open_alarm(&site));
    assert!(
        first[0]
            .header("Subject")
            .unwrap_or_default()
            .contains(&format!("alarm {incident}"))
    );
    // The dewar warms during the power cut: its alarm joins the incident, no page of its own.
    warm(&sim);
    let member: i64 = wait(&site, "the dewar alarm in the incident", || {
        db(&site)?
            .query_row(
                "SELECT id FROM alarm WHERE rule = 'dewar-warm' AND incident = ?1",
                [incident],
                |r| r.get(0),
            )
            .ok()
    });
    std::thread::sleep(Duration::from_secs(2));
    let pages_of_member: i64 = db(&site)
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM notification WHERE alarm = ?1", [member], |r| {
                r.get(0)
            })
            .ok()
        })
        .unwrap_or(-1);
    assert_eq!(pages_of_member, 0, "the member alarm is paged through its incident");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(modem.sent().len(), 1);
}

/// POSTs a form to the daemon's HTTP API; returns the status code.
fn post_form(addr: &str, path: &str, fields: &[(&str, &str)], signature: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let body = body.join("&");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(sig) = signature {
        req.push_str(&format!("X-Twilio-Signature: {sig}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_ack_by_sms_through_the_gateway_webhook_is_checked_and_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let gw = FakeTwilio::start(dir.path());
    let api = format!("127.0.0.1:{}", common::free_port());
    let text = gateway_config(&sim, smtp.port, &modem, &gw) + &format!("[api]\nlisten = \"{api}\"\n");
    let site = site(&text);
    let _daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(1));
    warm(&sim);
    let id = wait(&site, "an open alarm", || open_alarm(&site));
    let body = format!("ACK {id} on my way");
    let fields = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("From", "+15551230001"),
        ("To", "+15550000000"),
        ("Body", body.as_str()),
    ];
    // Unsigned, or signed with another token: refused, nothing changes.
    assert_eq!(post_form(&api, "/sms/inbound/gateway", &fields, None), 403);
    let params: std::collections::BTreeMap<String, String> =
        fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let url = format!("http://{api}/sms/inbound/gateway");
    let forged = cryowatch::api::sms::signature("not-the-token", &url, &params);
    assert_eq!(post_form(&api, "/sms/inbound/gateway", &fields, Some(&forged)), 403);
    let good = cryowatch::api::sms::signature(&gw.auth_token, &url, &params);
    assert_eq!(post_form(&api, "/sms/inbound/gateway", &fields, Some(&good)), 200);
    let (by, path, comment): (String, String, String) = wait(&site, "the gateway acknowledgement", || {
        db(&site)?
            .query_row(
                "SELECT acked_by, ack_path, ack_comment FROM alarm WHERE id = ?1 AND acked_by IS NOT NULL",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok()
    });
    assert_eq!(
        (by.as_str(), path.as_str(), comment.as_str()),
        ("Alice", "sms_gateway", "on my way")
    );
    // The answer goes back through the gateway the acknowledgement came in on.
    let deadline = Instant::now() + PATIENCE;
    let answered = |gw: &FakeTwilio| {
        gw.accepted()
            .into_iter()
            .any(|m| m.to == "+15551230001" && m.body.contains(&format!("ACK {id} accepted")))
    };
    while !answered(&gw) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answered(&gw),
        "{:?}",
        gw.accepted().iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    // The same signed call replayed: answered 200 (the gateway must not retry), handled
    // once — no second request, no second answer.
    assert_eq!(post_form(&api, "/sms/inbound/gateway", &fields, Some(&good)), 200);
    std::thread::sleep(Duration::from_secs(2));
    let requests: i64 = db(&site)
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM request WHERE kind = 'ack'", [], |r| r.get(0))
                .ok()
        })
        .unwrap_or(-1);
    assert_eq!(requests, 1, "a replayed webhook call is handled once");
    let answers = gw
        .accepted()
        .into_iter()
        .filter(|m| m.body.starts_with(&format!("cryowatch: ACK {id}")))
        .count();
    assert_eq!(answers, 1);
    assert!(site.daemon_log().contains("already handled"), "{}", site.daemon_log());
}

/// `cryowatch test-alarm`: a synthetic excursion through the real rule, escalation and
/// channels, acknowledged by the person paged, recorded as an alarm test — and no
/// reading of the synthetic value in the temperature record.
#[test]
fn an_alarm_test_pages_the_on_call_person_is_acknowledged_and_leaves_no_reading() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    // -100 °C: the dewar (-190 °C) is nowhere near it, so only the test can page.
    let site = site(&config(&sim, smtp.port, &modem, 3600, -100.0));
    let refused = cryowatch_output(&["test-alarm", "-c", &site.config_str(), "--sensor", "dewar-1.temp"]);
    assert_eq!(refused.status.code(), Some(1), "no daemon: nothing can page the test");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not running"));
    let daemon = site.start_daemon();
    wait(&site, "readings", || {
        (site.history("dewar-1.temp").len() > 2).then_some(())
    });
    let out = cryowatch_output(&[
        "test-alarm",
        "-c",
        &site.config_str(),
        "--sensor",
        "dewar-1.temp",
        "--by",
        "qa-bob",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("alarm test") && said.contains("dewar-warm"), "{said}");
    let mails = smtp.wait_messages(1, PATIENCE);
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(subject.starts_with("TEST [CRITICAL]"), "{subject}");
    assert!(
        mails[0].body.contains("ALARM TEST started by qa-bob"),
        "{}",
        mails[0].body
    );
    assert!(
        mails[0].body.contains("-99.0"),
        "the synthetic value is shown: {}",
        mails[0].body
    );
    let sms = modem.wait_sent(1, PATIENCE);
    assert!(sms[0].text.starts_with("TEST"), "{:?}", sms[0].text);
    // A second test of the same sensor while this one is open is refused.
    let again = cryowatch_output(&[
        "test-alarm",
        "-c",
        &site.config_str(),
        "--sensor",
        "dewar-1.temp",
        "--by",
        "x",
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let id = wait(&site, "the test alarm", || open_alarm(&site));
    ack(&site, id);
    wait(&site, "the test alarm cleared by the acknowledgement", || {
        db(&site)?
            .query_row("SELECT 1 FROM alarm WHERE id = ?1 AND state = 'cleared'", [id], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
    });
    site.stop_daemon(daemon);
    // The temperature record holds only real readings.
    let rows = site.history("dewar-1.temp");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.value.is_some_and(|v| v < -150.0)), "{rows:?}");
    // The report lists the test as passed, with who acknowledged it.
    let csv = site.path().join("report.csv");
    let out = site.report("dewar-1", ("-1h", "now"), &csv, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let test = text.lines().find(|l| l.starts_with("test,")).unwrap_or_default();
    assert!(
        test.contains("passed by qa-bob") && test.contains("acknowledged by Alice (alice)"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("excursion,") && !l.contains("(test)")),
        "{text}"
    );
    let log = cryowatch_output(&["audit", "log", "-c", &site.config_str(), "--kind", "alarm_test"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("qa-bob"));
    assert!(
        cryowatch_output(&["audit", "verify", "-c", &site.config_str()])
            .status
            .success()
    );
}

/// `cryowatch selftest`: every OQ check passes on a running installation; with the mail
/// server gone the report says which check failed and the command exits 1.
#[test]
fn the_oq_selftest_passes_on_a_running_installation_and_names_a_missing_peer() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let mut smtp = SmtpServer::start(dir.path());
    let modem = FakeModem::start(dir.path());
    let site = site(&config(&sim, smtp.port, &modem, 3600, -100.0));
    let _daemon = site.start_daemon();
    wait(&site, "readings", || {
        (site.history("dewar-1.temp").len() > 2).then_some(())
    });
    let pdf = site.path().join("oq.pdf");
    let run = || {
        cryowatch_output(&[
            "selftest",
            "-c",
            &site.config_str(),
            "--out",
            &pdf.display().to_string(),
        ])
    };
    let out = run();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    for check in [
        "is valid",
        "intact and writable",
        "daemon is running",
        "unaltered",
        "clock",
        "dewar-1.temp reports",
        "Modbus device ctrl answers",
        "mail server",
        "GSM modem",
    ] {
        assert!(
            said.lines().any(|l| l.contains("PASS") && l.contains(check)),
            "{check}: {said}"
        );
    }
    let text = common::pdf_text(&pdf);
    assert!(
        text.contains("Operational qualification") && text.contains("Reviewed by"),
        "{text}"
    );
    smtp.stop();
    let out = run();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.lines().any(|l| l.contains("FAIL") && l.contains("mail server")),
        "{said}"
    );
}

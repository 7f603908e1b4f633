//! Periodic review and sign-off against the real daemon, Mosquitto, aiosmtpd and the
//! store. The daemon runs under libfaketime, started seconds before the end of
//! November in the site's time zone (Europe/Berlin, 23:00 UTC): the monthly review of
//! November is generated when the month ends there (not at UTC midnight), sent to the
//! reviewer, signed with a password (a wrong one signs nothing and is audited), and
//! proven by `audit verify`, which catches a replaced report and an edited or copied
//! review signature. A late reading of November sealed after the report was generated
//! makes a signature on it refused and a new version generated.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::smtp::SmtpServer;
use common::{Proc, Site, cryowatch, output_text as text, wait_for};

const PASSWORD: &str = "review password 2026";

/// The end of November 2026 in Berlin, in UTC milliseconds.
const NOVEMBER_END: i64 = 1_796_079_600_000;
const NOVEMBER_START: i64 = 1_793_487_600_000;

/// The lab: one dewar reviewed monthly by Quinn, signatures due `due_within` after the
/// month's end; `extra` TOML appended.
fn lab(broker: &str, smtp_port: u16, due_within: &str, extra: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "review lab"
timezone = "Europe/Berlin"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{broker}"
client_id = "review-test"
max_clock_skew = "3h"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "lab/dewar-1/temp"
format = "json"
json_path = "v"
timestamp_path = "t"
[[contact]]
id = "qa"
name = "Quinn Assurance"
email = "qa@example.org"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
[[review]]
assets = ["dewar-1"]
every = "monthly"
reviewers = ["contact:qa"]
due_within = "{due_within}"
{extra}"#
    ))
}

/// `cryowatch run` with libfaketime preloaded, its clock starting at `start` (UTC) and
/// running; signals reach the daemon itself.
fn start_daemon_at(site: &Site, start: &str) -> Proc {
    let log = std::fs::File::create(site.path().join("daemon.log")).expect("daemon log");
    let log2 = log.try_clone().expect("clone log");
    Proc::spawn(
        "cryowatch run (faketime)",
        cryowatch()
            .args(["run", "-c", &site.config_str()])
            .env("LD_PRELOAD", common::libfaketime())
            .env("FAKETIME", format!("@{start}"))
            .env("TZ", "UTC")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2),
    )
}

fn run(site: &Site, args: &[&str], stdin: &str) -> Output {
    site.with_stdin(args, stdin)
}

/// `review list --json`; `None` while the store does not exist yet.
fn reviews(site: &Site) -> Option<Vec<serde_json::Value>> {
    let out = run(site, &["review", "list", "--json"], "");
    out.status.success().then(|| {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("review list --json ({e}): {}", text(&out)))
    })
}

fn sign(site: &Site, meaning: &str, password: &str) -> Output {
    run(
        site,
        &[
            "review",
            "sign",
            "--asset",
            "dewar-1",
            "--period",
            "2026-11",
            "--by",
            "qa",
            "--meaning",
            meaning,
        ],
        &format!("{password}\n"),
    )
}

fn sqlite(db: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `audit verify` on a copy of the store with `sql` applied: its output.
fn verify_tampered(site: &Site, sql: &str) -> Output {
    let copy = tempfile::tempdir().expect("dir");
    let db = copy.path().join("cryowatch.db");
    std::fs::copy(site.path().join("cryowatch.db"), &db).expect("copy store");
    let config = std::fs::read_to_string(site.config())
        .expect("config")
        .replace(&site.path().display().to_string(), &copy.path().display().to_string());
    std::fs::write(copy.path().join("cryowatch.toml"), config).expect("write config");
    sqlite(&db, sql);
    cryowatch()
        .args(["audit", "verify", "-c"])
        .arg(copy.path().join("cryowatch.toml"))
        .output()
        .expect("audit verify")
}

#[test]
fn the_monthly_review_is_generated_at_the_sites_month_end_sent_signed_and_proven() {
    let broker = Mosquitto::start();
    let mail = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(mail.path());
    let site = lab(&broker.url(), smtp.port, "10d", "");
    // 23:59:35 in Berlin on the last day of November.
    let daemon = start_daemon_at(&site, "2026-11-30 22:59:35");
    wait_for(
        Duration::from_secs(20),
        "the daemon to store November's readings",
        || {
            broker.publish("lab/dewar-1/temp", r#"{"v": -195.5}"#, 1);
            std::thread::sleep(Duration::from_millis(300));
            let out = run(
                &site,
                &[
                    "history",
                    "--sensor",
                    "dewar-1.temp",
                    "--from",
                    "2026-11-30T22:00:00Z",
                    "--to",
                    "2026-11-30T23:00:00Z",
                ],
                "",
            );
            (out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() > 1).then_some(())
        },
    );
    // November has not ended in Berlin yet: nothing to review (October has no data).
    assert_eq!(reviews(&site), Some(Vec::new()), "{}", site.daemon_log());
    let review = wait_for(Duration::from_secs(60), "the review of November", || {
        reviews(&site)?.into_iter().next()
    });
    assert_eq!(review["asset"], "dewar-1");
    assert_eq!(review["period"], "2026-11");
    assert_eq!(review["every"], "monthly");
    assert_eq!(review["from"], NOVEMBER_START, "November starts at the site's midnight");
    assert_eq!(review["to"], NOVEMBER_END, "November ends at the site's midnight");
    assert_eq!(review["version"], 1);
    assert_eq!(review["status"], "awaiting review");
    assert_eq!(review["due_at"], NOVEMBER_END + 10 * 86_400_000);
    let generated = review["generated_at"].as_i64().expect("generated_at");
    assert!(
        (NOVEMBER_END..NOVEMBER_END + 60_000).contains(&generated),
        "generated at the period's end, not later: {generated}"
    );

    // Sent to the reviewer with what they need to sign.
    let sent = wait_for(Duration::from_secs(20), "the review's mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.header("Subject").is_some_and(|s| s.starts_with("REVIEW")))
    });
    assert_eq!(sent.rcpt_tos, ["qa@example.org"]);
    let subject = sent.header("Subject").unwrap_or_default().to_string();
    assert!(subject.contains("Dewar 1 (dewar-1) for 2026-11"), "{subject}");
    let report_sha = review["report_sha256"].as_str().expect("hash").to_string();
    assert!(sent.body.contains(&report_sha), "{}", sent.body);
    assert!(
        sent.body
            .contains("cryowatch review sign -c FILE --asset dewar-1 --period 2026-11"),
        "{}",
        sent.body
    );

    // The report as generated: its hash is the one recorded.
    let pdf = site.path().join("review.pdf");
    let out = run(
        &site,
        &[
            "review",
            "report",
            "--asset",
            "dewar-1",
            "--period",
            "2026-11",
            "--out",
            &pdf.display().to_string(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&pdf).expect("pdf");
    assert!(bytes.starts_with(b"%PDF"));
    let sha = Command::new("sha256sum").arg(&pdf).output().expect("sha256sum");
    assert!(String::from_utf8_lossy(&sha.stdout).starts_with(&report_sha));

    // A wrong password signs nothing, is audited, and exits 1.
    site.add_signer("qa", "Quinn Assurance", PASSWORD);
    let wrong = sign(&site, "reviewed", "not the password");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert_eq!(reviews(&site).expect("list")[0]["status"], "awaiting review");
    let log = run(&site, &["audit", "log", "--kind", "signature.refused", "--json"], "");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains(&format!("review {}", review["id"])),
        "{}",
        text(&log)
    );

    let signed = sign(&site, "reviewed", PASSWORD);
    assert!(signed.status.success(), "{}", text(&signed));
    let again = sign(&site, "reviewed", PASSWORD);
    assert_eq!(
        again.status.code(),
        Some(2),
        "signed twice with one meaning: {}",
        text(&again)
    );
    let approved = sign(&site, "approved", PASSWORD);
    assert!(approved.status.success(), "{}", text(&approved));
    let now = reviews(&site).expect("list");
    assert_eq!(now[0]["status"], "approved");
    let meanings: Vec<&str> = now[0]["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| {
            assert_eq!(s["printed_name"], "Quinn Assurance");
            s["meaning"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(meanings, ["reviewed", "approved"]);
    let listed = run(&site, &["review", "list"], "");
    assert!(
        text(&listed).contains("reviewed by Quinn Assurance (qa)"),
        "{}",
        text(&listed)
    );
    site.stop_daemon(daemon);

    let verified = run(&site, &["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified));

    // The month's report carries its review: the reviewed report's hash and both
    // signatures; the CSV a `review` row and a `signature` row for each.
    let pdf = site.path().join("november.pdf");
    let out = site.report("dewar-1", ("2026-11-01", "2026-12-01"), &pdf, &["--by", "qa"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = common::pdf_text(&pdf).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(printed.contains("Periodic review"), "{printed}");
    // The status column wraps beside the hash: its start, then the signers in the CSV.
    assert!(printed.contains("approved — reviewed by Quinn Assurance"), "{printed}");
    let csv = site.path().join("november.csv");
    let out = site.report("dewar-1", ("2026-11-01", "2026-12-01"), &csv, &["--by", "qa"]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = std::fs::read_to_string(&csv).expect("csv");
    assert_eq!(csv.lines().filter(|l| l.starts_with("review,")).count(), 1, "{csv}");
    assert!(
        csv.lines()
            .filter(|l| l.starts_with("signature,") && l.contains("signed review"))
            .count()
            == 2,
        "{csv}"
    );

    // What audit verify catches.
    let replaced = verify_tampered(&site, "UPDATE review SET report = CAST('%PDF-1.7 forged' AS BLOB)");
    assert_eq!(replaced.status.code(), Some(1));
    assert!(text(&replaced).contains("was replaced"), "{}", text(&replaced));
    // A signature deleted "un-signs" the review: caught, even when a later signature
    // takes its id.
    let deleted = verify_tampered(&site, "DELETE FROM signature WHERE meaning = 'approved'");
    assert_eq!(deleted.status.code(), Some(1), "{}", text(&deleted));
    assert!(text(&deleted).contains("it was deleted"), "{}", text(&deleted));
    let edited = verify_tampered(
        &site,
        "UPDATE signature SET meaning = 'approved' WHERE meaning = 'reviewed'",
    );
    assert_eq!(edited.status.code(), Some(1));
    assert!(text(&edited).contains("signature"), "{}", text(&edited));
    let copied = verify_tampered(
        &site,
        "INSERT INTO review (id, asset, every, period, period_from, period_to, version, generated_at, due_at,
                             report_sha256, content_sha256, report, audit, sent_at)
           SELECT id + 100, asset, every, '2026-10', period_from, period_to, version, generated_at, due_at,
                  report_sha256, content_sha256, report, audit, sent_at FROM review;
         INSERT INTO signature (id, t, user, printed_name, meaning, subject, content_sha256, audit)
           SELECT id + 100, t, user, printed_name, meaning, 'review ' || (CAST(substr(subject, 8) AS INTEGER) + 100),
                  content_sha256, audit FROM signature WHERE subject LIKE 'review %';",
    );
    assert_eq!(copied.status.code(), Some(1));
    assert!(text(&copied).contains("review 10"), "{}", text(&copied));
}

#[test]
fn a_review_whose_record_changed_is_generated_again_then_signed_on_the_dashboard() {
    let broker = Mosquitto::start();
    let mail = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(mail.path());
    let port = common::free_port();
    let site = lab(
        &broker.url(),
        smtp.port,
        "2s",
        &format!(
            r#"[quality]
notify = ["contact:qa"]
[api]
listen = "127.0.0.1:{port}"
"#
        ),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let daemon = start_daemon_at(&site, "2026-11-30 22:59:50");
    let review = wait_for(Duration::from_secs(60), "the review of November", || {
        broker.publish("lab/dewar-1/temp", r#"{"v": -195.5}"#, 1);
        std::thread::sleep(Duration::from_millis(300));
        reviews(&site)?.into_iter().next()
    });
    assert_eq!(review["version"], 1);
    site.add_signer("qa", "Quinn Assurance", PASSWORD);

    // Unsigned two seconds after the month's end: overdue, paged once to [quality]
    // notify, and said by `status`.
    let overdue = wait_for(Duration::from_secs(30), "the overdue review's page", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.header("Subject").is_some_and(|s| s.contains("is overdue")))
    });
    assert!(
        overdue
            .header("Subject")
            .is_some_and(|s| s.contains("(dewar-1) for 2026-11")),
        "{:?}",
        overdue.header("Subject")
    );
    let status = run(&site, &["status"], "");
    assert!(
        text(&status).contains("NOTICE: 1 periodic review(s) are overdue (the oldest: dewar-1 for 2026-11"),
        "{}",
        text(&status)
    );

    // A reading of November arrives late, stamped by its probe before the month ended.
    broker.publish("lab/dewar-1/temp", r#"{"v": -188.25, "t": "2026-11-30T21:30:00Z"}"#, 1);
    wait_for(Duration::from_secs(20), "the late reading to be stored", || {
        let out = run(
            &site,
            &[
                "history",
                "--sensor",
                "dewar-1.temp",
                "--from",
                "2026-11-30T21:00:00Z",
                "--to",
                "2026-11-30T22:00:00Z",
            ],
            "",
        );
        String::from_utf8_lossy(&out.stdout).contains("-188.25").then_some(())
    });
    let refused = sign(&site, "reviewed", PASSWORD);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("changed after version 1 of its report was generated")
            && text(&refused).contains("version 2 was generated"),
        "{}",
        text(&refused)
    );
    let now = reviews(&site).expect("list");
    assert_eq!(now.len(), 1, "one review per period, its newest version: {now:?}");
    assert_eq!(now[0]["version"], 2);
    assert_eq!(now[0]["status"], "awaiting review");
    assert_ne!(now[0]["content_sha256"], review["content_sha256"]);
    let id = now[0]["id"].as_i64().expect("id");
    // Whoever read version 1 cannot sign version 2 unread.
    let stale = run(
        &site,
        &[
            "review",
            "sign",
            "--asset",
            "dewar-1",
            "--period",
            "2026-11",
            "--version",
            "1",
            "--by",
            "qa",
            "--meaning",
            "reviewed",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(stale.status.code(), Some(2), "{}", text(&stale));
    assert!(text(&stale).contains("replaced by version 2"), "{}", text(&stale));

    // On the dashboard: the notice, the reviews page, the report as generated.
    let session = common::http::sign_in(addr, "qa", PASSWORD);
    let board = common::http::call(addr, "GET", "/", &[("Cookie", &session)], None).expect("dashboard");
    assert!(
        board.body.contains("1 periodic review(s) await a signature, 1 overdue"),
        "{}",
        board.body
    );
    let page = common::http::call(addr, "GET", "/reviews", &[("Cookie", &session)], None).expect("reviews");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("action=\"/reviews/{id}/sign\"")),
        "{}",
        page.body
    );
    let csrf = common::http::field(&page.body, "csrf");
    let pdf = common::http::call(
        addr,
        "GET",
        &format!("/reviews/{id}/report.pdf"),
        &[("Cookie", &session)],
        None,
    )
    .expect("report");
    assert_eq!(pdf.status, 200);
    let sign_web = |username: &str, password: &str| {
        let form = common::http::form(&[
            ("csrf", &csrf),
            ("meaning", "approved"),
            ("username", username),
            ("password", password),
        ]);
        common::http::call(
            addr,
            "POST",
            &format!("/reviews/{id}/sign"),
            &[
                ("Cookie", &session),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(&form),
        )
        .expect("POST sign")
    };
    // The first signature of the session needs the user name too (11.200(a)(1)).
    let r = sign_web("", PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = sign_web("qa", "wrong password");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(reviews(&site).expect("list")[0]["status"], "awaiting review");
    let r = sign_web("qa", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let now = reviews(&site).expect("list");
    assert_eq!(now[0]["status"], "approved");
    assert_eq!(now[0]["version"], 2);
    let page = common::http::call(addr, "GET", "/reviews", &[("Cookie", &session)], None).expect("reviews");
    assert!(page.body.contains("approved by Quinn Assurance (qa)"), "{}", page.body);
    site.stop_daemon(daemon);
    let verified = run(&site, &["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified));
    // The new version was not mailed again: the reviewer was told once, and reminded once.
    let subjects: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter_map(|m| m.header("Subject").map(str::to_string))
        .filter(|s| s.starts_with("REVIEW"))
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
}

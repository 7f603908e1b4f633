//! `cryowatch demo` tells the whole story by itself, as a new user sees it: run as a
//! process with no other setup, it prints the dashboard's address, user and password;
//! its story raises alarms; the pages reach its mail sink (printed, kept as `.eml`); the
//! demo user signs in and acknowledges one alarm on the dashboard, and its second
//! escalation step is then never sent while the other alarm's is. On the way, the
//! dashboard, the pages and the printout name discrete states (`closed`, `ON BATTERY`),
//! and headless Chromium takes the README's screenshot (`tests/browser/demo-dashboard.png`) with the
//! alarms open.
//!
//! Chromium, Node.js and playwright-core are required, as for `tests/web.rs`:
//! `bash tests/run.sh` installs them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::{call, field, form, sign_in};
use common::{Proc, cryowatch, tests_dir, wait_for};

/// What the demo printed so far.
fn printed(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until a printed line satisfies `f`; that line.
fn wait_line(log: &Path, timeout: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
    wait_for(timeout, what, || {
        printed(log).lines().find(|l| f(l)).map(str::to_string)
    })
}

/// The alarm a printed line names: `... alarm 3: ...` / `... (alarm 3)`.
fn alarm_id(line: &str) -> i64 {
    line.split("alarm ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no alarm id in {line:?}"))
}

/// Chromium and Node.js with playwright-core, or a failure naming how to get them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium =
        std::env::var_os("CRYOWATCH_TEST_CHROMIUM").map_or(PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "{} not found: `bash tests/run.sh` installs it",
        chromium.display()
    );
    let dir = tests_dir().join("browser");
    assert!(
        dir.join("node_modules/playwright-core/package.json").exists(),
        "{}/node_modules/playwright-core missing: `bash tests/run.sh` installs it (npm ci in tests/browser)",
        dir.display()
    );
    (chromium, dir)
}

#[test]
fn the_demo_pages_by_email_and_an_acknowledgement_on_the_dashboard_stops_the_escalation() {
    let (chromium, browser_dir) = browser_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let log = tmp.path().join("demo.log");
    let out = std::fs::File::create(&log).expect("demo log");
    let mut demo = Proc::spawn(
        "cryowatch demo",
        cryowatch()
            .arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(["--for", "3m"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out),
    );
    let shown = |what: &str| format!("{what}; the demo printed:\n{}", printed(&log));

    // The banner: where the dashboard is and who signs in.
    let banner = wait_line(&log, Duration::from_secs(30), "the dashboard line", |l| {
        l.trim_start().starts_with("dashboard: http://")
    });
    let words: Vec<&str> = banner.split_whitespace().collect();
    let [_, url, "user:", user, "password:", password] = words[..] else {
        panic!("{}", shown(&format!("unexpected dashboard line {banner:?}")));
    };
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the dashboard's address");
    assert_eq!(user, "demo");
    assert!(password.len() >= 12, "{banner}");

    // The dewar warms from 20 s: an alarm, paged by email to the on-call person, whose
    // mail the sink prints and keeps.
    let first = wait_line(&log, Duration::from_secs(90), "the first page", |l| {
        l.starts_with(">>> PAGE sent for alarm") && l.contains("escalation step 1 of 2, to alice")
    });
    let acked = alarm_id(&first);
    let text = printed(&log);
    let mail = text
        .lines()
        .find(|l| l.starts_with(">>> MAIL received") && l.contains(&format!("(alarm {acked})")))
        .unwrap_or_else(|| panic!("{}", shown("no mail for the first alarm")));
    assert!(mail.contains("to alice@lab.example: [ALARM] Dewar 1"), "{mail}");
    assert!(text.contains(&format!(
        ">>> ALARM {acked} raised: ALARM dewar-1-warming-fast on dewar-1.temp"
    )));
    let kept = std::fs::read_to_string(dir.join("mail/0001.eml")).expect("the first page kept as .eml");
    assert!(kept.contains(&format!("X-Cryowatch-Alarm: {acked}")), "{kept}");

    // The demo user signs in and acknowledges it on the dashboard, with a comment.
    let session = sign_in(addr, user, password);
    let page = call(addr, "GET", "/", &[("Cookie", &session)], None).expect("the dashboard");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("id=\"alarm-{acked}\"")),
        "the alarm is listed"
    );
    let body = form(&[("csrf", &field(&page.body, "csrf")), ("comment", "topped up the LN2")]);
    let r = call(
        addr,
        "POST",
        &format!("/alarms/{acked}/ack"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &session),
        ],
        Some(&body),
    )
    .expect("acknowledge");
    assert_eq!(r.status, 303, "{}", r.body);
    let ack = wait_line(&log, Duration::from_secs(20), "the acknowledgement told", |l| {
        l.starts_with(&format!(">>> alarm {acked} ACKNOWLEDGED"))
    });
    assert!(
        ack.contains("by demo via web (\"topped up the LN2\"): escalation stops")
            && ack.contains("step 2 (to sam, due at"),
        "{ack}"
    );

    // Mains is lost at 40 s: a critical alarm nobody acknowledges, its page names the
    // UPS's state, and the dashboard shows both alarms and the discrete inputs by name.
    let mains = wait_line(&log, Duration::from_secs(60), "the mains-lost page", |l| {
        l.starts_with(">>> MAIL received") && l.contains("ups-1.on_battery")
    });
    assert!(mains.contains("to alice@lab.example: [CRITICAL]") && mains.contains("ups-1.on_battery ON BATTERY"));
    let open = alarm_id(&mains);
    let page = call(addr, "GET", "/", &[("Cookie", &session)], None).expect("the dashboard");
    for shown_value in [">closed<", ">ON BATTERY<"] {
        assert!(page.body.contains(shown_value), "the dashboard shows {shown_value}");
    }

    // The README's screenshot, taken now that both alarms are listed.
    let png = tests_dir().join("../tests/browser/demo-dashboard.png");
    let shot = Command::new("node")
        .arg(browser_dir.join("demo_shot.mjs"))
        .current_dir(&browser_dir)
        .env("BASE_URL", url)
        .env("CW_USER", user)
        .env("CW_PASSWORD", password)
        .env("OUT", &png)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    assert!(
        shot.status.success(),
        "the screenshot failed:\n{}{}",
        String::from_utf8_lossy(&shot.stdout),
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("tests/browser/demo-dashboard.png");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "not a real screenshot"
    );
    assert_eq!(&bytes[16..24], &[0, 0, 5, 0, 0, 0, 3, 0xe8], "1280x1000");

    // A minute after it became active the acknowledged alarm's second step was due: it
    // is not sent, and the unacknowledged alarm's is (to the supervisor).
    wait_line(&log, Duration::from_secs(90), "the withheld step told", |l| {
        l.starts_with(&format!(">>> alarm {acked}: escalation step 2 was due at"))
            && l.ends_with("was not sent: demo acknowledged it")
    });
    wait_line(&log, Duration::from_secs(90), "the other alarm escalated to sam", |l| {
        l.starts_with(&format!(
            ">>> PAGE sent for alarm {open}: escalation step 2 of 2, to sam"
        ))
    });
    let text = printed(&log);
    assert!(
        !text.lines().any(|l| (l.starts_with(">>> MAIL received")
            && l.contains("sam@lab.example")
            && l.contains(&format!("(alarm {acked})")))
            || l.starts_with(&format!(">>> PAGE sent for alarm {acked}: escalation step 2"))
            || l.contains("WAS SENT")),
        "{}",
        shown("the acknowledged alarm escalated")
    );
    let db =
        rusqlite::Connection::open_with_flags(dir.join("cryowatch.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the demo's store");
    let steps: Vec<i64> = db
        .prepare("SELECT step FROM notification WHERE alarm = ?1 AND kind = 'page' ORDER BY step")
        .and_then(|mut st| st.query_map([acked], |r| r.get(0))?.collect())
        .expect("its pages");
    assert_eq!(steps, [0], "only the first step was paged for the acknowledged alarm");
    assert!(demo.running(), "{}", shown("the demo stopped early"));
    demo.signal("TERM");
    assert_eq!(
        demo.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        shown("a clean stop")
    );
    assert!(printed(&log).contains("demo stopped:"));
}

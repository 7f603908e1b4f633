//! `cryowatch standby` on "a second machine" (its own store) against a real primary:
//! it stays quiet while the primary's heartbeat is online, takes over polling and pages
//! that the monitor is down when the primary is killed, and hands back when it returns.

mod common;

use std::time::Duration;

use common::cryosim::CryoSim;
use common::mosquitto::Mosquitto;
use common::smtp::SmtpServer;
use common::{Proc, Site, wait_for};

const TOPIC: &str = "lab/cryowatch/primary";
const PATIENCE: Duration = Duration::from_secs(30);

fn config(sim: &CryoSim, broker: &Mosquitto, smtp: u16, role: &str) -> String {
    let extra = if role == "primary" {
        format!("[heartbeat]\nmqtt_topic = \"{TOPIC}\"\ninterval = \"500ms\"\n")
    } else {
        format!("[standby]\nprimary_topic = \"{TOPIC}\"\nsilent_after = \"3s\"\nnotify = [\"alice\"]\n")
    };
    format!(
        r#"[site]
name = "standby lab"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "cw-{role}"
keep_alive = "2s"
{extra}{dewar}[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        url = broker.url(),
        dewar = sim.dewar_toml()
    )
}

#[test]
fn the_standby_takes_over_when_the_primary_dies_and_hands_back_when_it_returns() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let broker = Mosquitto::start();
    let smtp = SmtpServer::start(dir.path());
    let primary = Site::new(&config(&sim, &broker, smtp.port, "primary"));
    let standby = Site::new(&config(&sim, &broker, smtp.port, "standby"));
    let mut first = primary.start_daemon();
    wait_for(PATIENCE, "the primary's readings", || {
        (primary.history("dewar-1.temp").len() > 2).then_some(())
    });
    let log = std::fs::File::create(standby.path().join("daemon.log")).expect("log");
    let mut watcher = Proc::spawn(
        "cryowatch standby",
        common::cryowatch()
            .args(["standby", "-c", &standby.config_str()])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
    );
    // The primary is online: the standby only watches.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        standby.history("dewar-1.temp").is_empty(),
        "the standby polled while the primary was up:\n{}",
        standby.daemon_log()
    );
    assert!(smtp.messages().is_empty());

    first.signal("KILL");
    let _ = first.wait_exit(Duration::from_secs(5));
    let mails = smtp.wait_messages(1, PATIENCE);
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(
        subject.contains("DOWN") && mails[0].rcpt_tos == ["alice@example.org"],
        "{subject}"
    );
    wait_for(PATIENCE, "the standby's own readings", || {
        (standby.history("dewar-1.temp").len() > 2).then_some(())
    });

    let second = primary.start_daemon();
    let mails = smtp.wait_messages(2, PATIENCE);
    let subject = mails[1].header("Subject").unwrap_or_default().to_string();
    assert!(subject.contains("back"), "{subject}\n{}", standby.daemon_log());
    // Handed back: the standby's store stops growing.
    std::thread::sleep(Duration::from_secs(2));
    let n = standby.history("dewar-1.temp").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        standby.history("dewar-1.temp").len(),
        n,
        "the standby still polls:\n{}",
        standby.daemon_log()
    );

    watcher.signal("TERM");
    assert_eq!(
        watcher.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        standby.daemon_log()
    );
    primary.stop_daemon(second);
}

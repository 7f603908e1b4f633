//! The package on a freshly bootstrapped Debian 12 with systemd as PID 1, installed as
//! `deploy/INSTALL.md` says: the unit reaches READY with a status line, polls a Modbus
//! TCP device and a Modbus RTU device on a serial line under its hardening, reloads a good
//! configuration and fails a reload of a bad one visibly, logs errors at journald's
//! `err` priority, is restarted by the watchdog when it hangs, stops on remove, and
//! leaves nothing enabled after purge but the store it keeps.
//!
//! It needs root, debootstrap and systemd-nspawn (`bash tests/run.sh` installs them) and
//! the Debian mirror the first time (the packages are cached under `target/container/`).
//! Where the machine cannot boot a container the test says so and passes, except under
//! CI (`CI=true`), where it must run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::container::{self, Container};
use common::{free_port, http, tests_dir, wait_for};

/// The configuration the daemon runs with in the container: a dewar over Modbus TCP, a
/// freezer over Modbus RTU on a serial line, the API, and channels whose secrets come
/// the two ways INSTALL.md sets up (secrets.env and a token file).
fn lab_config(modbus: u16, api: u16, site: &str) -> String {
    format!(
        r#"[site]
name = "{site}"
timezone = "UTC"

[store]
path = "/var/lib/cryowatch/cryowatch.db"

[api]
listen = "127.0.0.1:{api}"

[[api.token]]
id = "ops"
role = "operator"
token_file = "/etc/cryowatch/ops.token"

[[modbus.device]]
id = "ctrl-dewar-1"
transport = "tcp"
address = "127.0.0.1:{modbus}"
unit = 1
poll_interval = "1s"
timeout = "500ms"

[[modbus.device]]
id = "rtu-freezers"
transport = "rtu"
serial = "/dev/ttyCW0"
baud = 9600
unit = 2
poll_interval = "1s"
timeout = "500ms"

[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"

[[asset]]
id = "freezer-7"
name = "Freezer 7"
kind = "freezer_minus80"

[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "ctrl-dewar-1"
register = "input"
address = 0
type = "f32"

[[sensor]]
id = "freezer-7.temp"
asset = "freezer-7"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "rtu-freezers"
register = "input"
address = 0
type = "f32"

[[contact]]
id = "alice"
name = "Alice Nguyen"
email = "alice@example.org"
phone = "+15551230001"

[[channel]]
id = "email"
kind = "smtp"
host = "smtp.example.org"
port = 587
tls = "starttls"
username = "cryowatch@example.org"
password_env = "CRYOWATCH_SMTP_PASSWORD"
from = "cryowatch <cryowatch@example.org>"

[[channel]]
id = "sms"
kind = "twilio"
base_url = "https://api.twilio.com"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token_env = "CRYOWATCH_TWILIO_TOKEN"
from = "+15550000000"
"#
    )
}

/// The shell blocks of INSTALL.md's step `heading`, in order.
fn install_blocks(heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(tests_dir().join("../deploy/INSTALL.md")).expect("INSTALL.md");
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("INSTALL.md has no {heading:?}"));
    let section = &text[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(code, _)| code.to_string()))
        .collect()
}

/// Builds the .deb from the binary this test run built, as deploy/build-deb.sh does.
fn build_deb(out: &Path) -> PathBuf {
    let root = tests_dir().join("..");
    let built = Command::new("bash")
        .arg(root.join("deploy/build-deb.sh"))
        .args(["--no-build", "--profile", "dev", "--quiet", "--fast", "-o"])
        .arg(out)
        .current_dir(&root)
        .output()
        .expect("run deploy/build-deb.sh");
    assert!(
        built.status.success(),
        "deploy/build-deb.sh failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&built.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default(),
    )
}

/// The daemon's main PID, once the unit is active and running with a status line.
fn running(c: &Container) -> String {
    wait_for(
        Duration::from_secs(60),
        "cryowatch active (running) with a status",
        || {
            let state = c.property("cryowatch", "ActiveState");
            let sub = c.property("cryowatch", "SubState");
            let status = c.property("cryowatch", "StatusText");
            (state == "active" && sub == "running" && status.starts_with("running"))
                .then(|| c.property("cryowatch", "MainPID"))
        },
    )
}

#[test]
fn the_package_installs_runs_reloads_and_purges_under_a_real_systemd() {
    if let Some(why) = container::unavailable() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must boot the container: {why}"
        );
        eprintln!("skipped: this machine cannot boot a container: {why}");
        return;
    }
    let target = PathBuf::from(env!("CARGO_BIN_EXE_cryowatch"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let cache = target.join("container");
    let work = tempfile::Builder::new()
        .prefix("systemd-")
        .tempdir_in({
            std::fs::create_dir_all(&cache).expect("cache dir");
            &cache
        })
        .expect("work dir");
    let root = work.path().join("root");
    if let Err(why) = container::bootstrap(&cache, &root) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: cannot bootstrap Debian here: {why}");
        return;
    }
    let deb = build_deb(work.path());
    let deb_name = deb.file_name().and_then(|n| n.to_str()).expect("deb name").to_string();
    std::fs::copy(&deb, root.join("root").join(&deb_name)).expect("copy the .deb in");
    std::fs::copy(common::cryosim::binary(), root.join("usr/local/bin/cryosim")).expect("copy cryosim in");
    let c = match Container::boot(
        &root,
        &format!("cw{}", std::process::id()),
        &work.path().join("console.log"),
    ) {
        Ok(c) => c,
        Err(why) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: the container does not boot here: {why}");
            return;
        }
    };

    // Install as INSTALL.md's step 2 says (apt resolves the dependencies).
    let installed = c.ok(&format!(
        "cd /root && apt-get update -qq && apt-get install -y -qq --no-install-recommends ./{deb_name} socat 2>&1"
    ));
    assert!(
        installed.contains("cryowatch: edit /etc/cryowatch/cryowatch.toml"),
        "{installed}"
    );
    c.ok("dpkg -s ca-certificates | grep -q '^Status: install ok installed'");
    c.ok("test -s /var/lib/dpkg/info/cryowatch.md5sums");
    assert_eq!(
        c.ok("dpkg --verify cryowatch"),
        "",
        "installed files differ from the md5sums"
    );
    assert_eq!(c.out("systemctl is-enabled cryowatch"), "disabled");
    // An upgrade (here a reinstall) says nothing of first steps.
    let again = c.ok(&format!(
        "cd /root && apt-get install -y -qq --reinstall ./{deb_name} 2>&1"
    ));
    assert!(
        !again.contains("cryowatch: edit"),
        "the first-install message on an upgrade:\n{again}"
    );

    // Step 4's secrets, verbatim; the shipped configuration then checks as the service user.
    let blocks = install_blocks("## 4. Configure");
    assert!(blocks.len() >= 2, "INSTALL.md step 4 lost its blocks: {blocks:?}");
    c.ok(&blocks[0]);
    let shipped = c.sh("set -a; . /etc/cryowatch/secrets.env; set +a; \
         runuser -u cryowatch -- cryowatch check -c /etc/cryowatch/cryowatch.toml 2>&1");
    assert!(
        shipped.status.success(),
        "INSTALL.md's secrets do not satisfy the shipped configuration for the service user:\n{}",
        String::from_utf8_lossy(&shipped.stdout)
    );
    // Run as root, check answers for the service user: a token file only root can read
    // (made the way secrets.env is) is named, and passes again once the group can read it.
    let check_as_root = "set -a; . /etc/cryowatch/secrets.env; set +a; \
                         cryowatch check -c /etc/cryowatch/cryowatch.toml 2>&1";
    c.ok(check_as_root);
    c.ok("chown root:root /etc/cryowatch/ops.token && chmod 0600 /etc/cryowatch/ops.token");
    let unreadable = c.sh(check_as_root);
    let said = String::from_utf8_lossy(&unreadable.stdout);
    assert!(
        unreadable.status.code() == Some(2) && said.contains("/etc/cryowatch/ops.token") && said.contains("cryowatch"),
        "check as root did not name the token file the service user cannot read:\n{said}"
    );
    c.ok("chown root:cryowatch /etc/cryowatch/ops.token && chmod 0640 /etc/cryowatch/ops.token");
    c.ok(check_as_root);

    // The lab: Modbus TCP on a loopback port, Modbus RTU on a serial pair in /dev.
    let (modbus, api) = (free_port(), free_port());
    c.ok(
        "systemd-run -q --unit=cw-serial socat pty,raw,echo=0,link=/dev/ttyCW0,group=dialout,mode=660 \
         pty,raw,echo=0,link=/dev/ttyCW1 && for i in $(seq 50); do [ -e /dev/ttyCW1 ] && break; sleep 0.1; done",
    );
    c.ok(&format!(
        "systemd-run -q --unit=cw-sim /usr/local/bin/cryosim run --modbus-tcp 127.0.0.1:{modbus} --modbus-rtu /dev/ttyCW1"
    ));
    std::fs::write(
        c.path("/etc/cryowatch/cryowatch.toml"),
        lab_config(modbus, api, "container lab"),
    )
    .expect("write the configuration");
    // A short watchdog, so the hang below is noticed in seconds rather than 30 s.
    let dropin = c.path("/etc/systemd/system/cryowatch.service.d");
    std::fs::create_dir_all(&dropin).expect("drop-in dir");
    std::fs::write(
        dropin.join("watchdog.conf"),
        "[Service]\nWatchdogSec=4s\nTimeoutAbortSec=5s\n",
    )
    .expect("drop-in");

    let security = c.ok("systemd-analyze security --no-pager cryowatch.service 2>&1");
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for cryowatch.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{security}"));
    assert!(
        exposure <= 2.0,
        "systemd-analyze security: {exposure} (at most 2.0):\n{security}"
    );

    c.ok("systemctl daemon-reload && systemctl enable --now cryowatch 2>&1");
    let pid = running(&c);
    let token = std::fs::read_to_string(c.path("/etc/cryowatch/ops.token")).expect("ops.token");
    let auth = format!("Bearer {}", token.trim());
    let addr = format!("127.0.0.1:{api}").parse().expect("addr");
    wait_for(Duration::from_secs(30), "both sensors good through the API", || {
        let status = http::call(addr, "GET", "/api/v1/status", &[("Authorization", &auth)], None).ok()?;
        let body = status.body;
        (status.status == 200 && body.matches("\"good\"").count() >= 2).then_some(())
    });
    let journal = c.out("journalctl -u cryowatch -b --no-pager -o cat");
    for bad in ["ConfigurationDirectory", "cannot be set up", "Operation not permitted"] {
        assert!(!journal.contains(bad), "the journal mentions {bad:?}:\n{journal}");
    }

    // Reload: a good configuration is applied in place; a bad one fails the reload.
    std::fs::write(
        c.path("/etc/cryowatch/cryowatch.toml"),
        lab_config(modbus, api, "container lab, renamed"),
    )
    .expect("write");
    c.ok("systemctl reload cryowatch");
    assert_eq!(running(&c), pid, "a reload restarted the daemon");
    std::fs::write(
        c.path("/etc/cryowatch/cryowatch.toml"),
        lab_config(modbus, api, "container lab").replace("[store]\n", "[store]\nflavour = \"strawberry\"\n"),
    )
    .expect("write");
    let refused = c.sh("systemctl reload cryowatch");
    assert!(
        !refused.status.success(),
        "systemctl reload accepted an invalid configuration"
    );
    assert_eq!(running(&c), pid, "a refused reload stopped the daemon");
    let why = c.out("journalctl -u cryowatch -b --no-pager -o cat");
    assert!(
        why.contains("store.flavour"),
        "the refused reload does not say why:\n{why}"
    );

    // A SIGHUP past the check: the daemon itself refuses the file, at priority err.
    c.ok("systemctl kill -s HUP --kill-whom=main cryowatch");
    let errors = wait_for(Duration::from_secs(15), "an error in journalctl -p err", || {
        let e = c.out("journalctl -u cryowatch -b -p err --no-pager -o cat");
        e.contains("SIGHUP: configuration is invalid").then_some(e)
    });
    assert!(
        !errors.contains(" INFO "),
        "journalctl -p err shows info lines:\n{errors}"
    );
    let with_time = c.out("journalctl -u cryowatch -b -p err --no-pager -o cat | grep -c '^20[0-9][0-9]-' || true");
    assert_eq!(with_time, "0", "lines carry a timestamp of their own:\n{errors}");
    std::fs::write(
        c.path("/etc/cryowatch/cryowatch.toml"),
        lab_config(modbus, api, "container lab"),
    )
    .expect("write");
    c.ok("systemctl reload cryowatch");

    // A hung daemon stops feeding the watchdog and is restarted.
    c.ok(&format!("kill -STOP {pid}"));
    let restarted = wait_for(Duration::from_secs(60), "a restart after the watchdog", || {
        let now = c.property("cryowatch", "MainPID");
        (now != pid && now != "0" && c.property("cryowatch", "SubState") == "running").then_some(now)
    });
    assert_ne!(restarted, pid);
    let journal = c.out("journalctl -b --no-pager -o cat -u cryowatch");
    assert!(
        journal.contains("Watchdog timeout"),
        "no watchdog timeout in the journal:\n{journal}"
    );
    running(&c);

    // remove stops the service (no daemon left on a deleted binary); purge removes what
    // the package made but the store, and says so.
    c.ok("apt-get remove -y -qq cryowatch 2>&1");
    assert_eq!(c.out("systemctl is-active cryowatch"), "inactive");
    let left = c.out("for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done | grep -cx cryowatch || true");
    assert_eq!(left, "0", "a cryowatch process survived apt remove");
    let purged = c.ok("apt-get purge -y -qq cryowatch 2>&1");
    assert!(
        purged.contains("kept /var/lib/cryowatch"),
        "purge does not say what it keeps:\n{purged}"
    );
    assert!(
        !c.path("/etc/systemd/system/multi-user.target.wants/cryowatch.service")
            .exists()
    );
    assert!(!c.path("/etc/cryowatch").exists(), "purge left /etc/cryowatch");
    assert!(
        c.path("/var/lib/cryowatch/cryowatch.db").exists(),
        "purge removed the store"
    );
    // A reinstall starts disabled and stopped.
    c.ok(&format!("cd /root && apt-get install -y -qq ./{deb_name} 2>&1"));
    assert_eq!(c.out("systemctl is-enabled cryowatch"), "disabled");
    assert_eq!(c.out("systemctl is-active cryowatch"), "inactive");
}

//! The README is true line by line: every shell command in it runs here, against the
//! peers it talks about (simulators, Mosquitto, NUT's upsd, aiosmtpd, the fake modem and
//! a local SMS gateway), with only the site's addresses swapped for loopback ports; the
//! TOML blocks of "Configuring a real lab", put together, are the configuration those
//! commands run against; every `cryowatch` command written inline exists with the flags
//! it shows. Commands that need a real systemd, apt or Docker are listed in [`COVERED`]
//! with the test that exercises what they do — and that test must exist.

mod common;

use common::cryosim::CryoSim;
use common::modem::FakeModem;
use common::mosquitto::Mosquitto;
use common::nut::Nut;
use common::pty::PtyPair;
use common::smtp::SmtpServer;
use common::twilio::FakeTwilio;
use common::{Proc, cryowatch, free_port, tests_dir, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn readme() -> String {
    std::fs::read_to_string(tests_dir().join("../README.md")).expect("read README.md")
}

/// A fenced code block of the README: its language and text, and the line it starts on.
struct Block {
    lang: String,
    text: String,
    line: usize,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_string(),
                    text: String::new(),
                    line: i + 2,
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code block");
    out
}

/// The command lines of a shell block: continuations joined, trailing comments removed.
fn commands(block: &Block) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = block.line;
    for (i, line) in block.text.lines().enumerate() {
        if pending.is_empty() {
            start = block.line + i;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                let cmd = strip_comment(&pending).trim().to_string();
                if !cmd.is_empty() {
                    out.push((start, cmd));
                }
                pending.clear();
            }
        }
    }
    out
}

/// Removes a `# comment` that is not inside quotes.
fn strip_comment(line: &str) -> String {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return line[..i].to_string(),
            _ => {}
        }
        prev = c;
    }
    line.to_string()
}

/// README commands that need a real systemd, apt, an editor or a package build: the
/// test (file, function) that exercises what each does. A README line starting with one
/// of these prefixes is not run here; any other line is.
const COVERED: &[(&str, &str, &str)] = &[
    ("bash tests/run.sh", ".ci/run", "tests/run.sh"),
    (
        "cargo run -- demo",
        "tests/cli.rs",
        "fn demo_shows_live_readings_that_history_and_status_read_back",
    ),
    (
        "cargo install cargo-deb && bash deploy/build-deb.sh",
        "tests/package.rs",
        "fn the_deb_builds_and_holds_what_an_installation_needs",
    ),
    (
        "sudo apt install ./",
        "tests/systemd_container.rs",
        "fn the_package_installs_runs_reloads_and_purges_under_a_real_systemd",
    ),
    (
        "sudoedit ",
        "tests/readme.rs",
        "fn the_readme_configuration_is_valid_as_written",
    ),
    (
        "cryowatch check -c /etc/cryowatch/cryowatch.toml && sudo systemctl enable --now cryowatch",
        "tests/service.rs",
        "fn ready_and_watchdog_pings_stop_while_the_store_is_stalled",
    ),
    (
        "sudo systemctl reload cryowatch",
        "tests/systemd_container.rs",
        "fn the_package_installs_runs_reloads_and_purges_under_a_real_systemd",
    ),
    (
        "journalctl ",
        "tests/systemd_container.rs",
        "fn the_package_installs_runs_reloads_and_purges_under_a_real_systemd",
    ),
    // The report runs every benchmark; the test command runs it at its quick size.
    (
        "cargo bench --bench report",
        "tests/run.sh",
        "BENCH_QUICK=1 cargo test --bench report",
    ),
    ("cargo test --test faults", "tests/run.sh", "cargo test --workspace ||"),
    (
        "FUZZ_SECONDS=300 bash tests/fuzz.sh",
        "tests/run.sh",
        "bash tests/fuzz.sh",
    ),
    // Benchmarks take minutes at full size; each one the README names must exist.
    (
        "cargo bench --bench ",
        "tests/readme.rs",
        "fn every_benchmark_the_readme_names_is_declared",
    ),
];

fn covered(cmd: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    COVERED.iter().find(|(prefix, ..)| cmd.starts_with(prefix))
}

#[test]
fn every_covered_command_names_a_test_that_exists() {
    let root = tests_dir().join("..");
    for (prefix, file, needle) in COVERED {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            text.contains(needle),
            "{prefix:?} is said to be covered by {file} `{needle}`, which is not there"
        );
    }
    // And every covered prefix is still used by the README (no stale entries).
    let md = readme();
    let all: Vec<String> = blocks(&md)
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| commands(b).into_iter().map(|(_, c)| c))
        .collect();
    for (prefix, ..) in COVERED {
        assert!(
            all.iter().any(|c| c.starts_with(prefix)),
            "no README command starts with {prefix:?} any more"
        );
    }
}

#[test]
fn every_benchmark_the_readme_names_is_declared() {
    let manifest = std::fs::read_to_string(tests_dir().join("../Cargo.toml")).expect("read Cargo.toml");
    let md = readme();
    let mut named = 0;
    for block in blocks(&md).iter().filter(|b| b.lang == "sh") {
        for (line, cmd) in commands(block) {
            let Some(rest) = cmd.strip_prefix("cargo bench --bench ") else {
                continue;
            };
            let name = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                manifest.contains(&format!("[[bench]]\nname = \"{name}\"")),
                "README.md line {line}: no [[bench]] named {name:?} in Cargo.toml"
            );
            assert!(
                tests_dir().join(format!("../benches/{name}.rs")).exists(),
                "benches/{name}.rs is missing"
            );
            named += 1;
        }
    }
    assert!(named >= 6, "only {named} benchmarks named in README.md");
}

/// The README's TOML blocks, in order, as one configuration file.
fn readme_config() -> String {
    blocks(&readme())
        .into_iter()
        .filter(|b| b.lang == "toml")
        .map(|b| b.text)
        .collect::<Vec<_>>()
        .join("\n")
}

const API_TOKEN: &str = "readme-test-token-0123456789abcdef";

fn secrets(cmd: &mut Command, twilio_token: &str) {
    cmd.env("CRYOWATCH_MQTT_PASSWORD", "readme-mqtt")
        .env("CRYOWATCH_SMTP_PASSWORD", "readme-smtp")
        .env("CRYOWATCH_TWILIO_TOKEN", twilio_token)
        .env("CRYOWATCH_API_TOKEN", API_TOKEN);
}

#[test]
fn the_readme_configuration_is_valid_as_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cryowatch.toml");
    std::fs::write(&path, readme_config()).expect("write the config");
    let mut cmd = cryowatch();
    cmd.args(["check", "-c"]).arg(&path);
    secrets(&mut cmd, "token");
    let out = cmd.output().expect("run cryowatch check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the README's TOML blocks do not make a valid configuration:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cryowatch SUB... [flags]` written in the README: the subcommand exists and knows
/// every `--flag` shown.
fn check_synopsis(bin: &Path, line: &str, errors: &mut Vec<String>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let sub: Vec<&str> = words
        .iter()
        .skip(1)
        .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-'))
        .copied()
        .collect();
    let out = Command::new(bin).args(&sub).arg("--help").output().expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        errors.push(format!("{line:?}: `{} --help` failed", sub.join(" ")));
        return;
    }
    for w in &words {
        let flag: String = w
            .trim_start_matches(['[', '('])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if flag.starts_with("--") && flag.len() > 2 && !help.contains(&flag) {
            errors.push(format!("{line:?}: `{}` has no {flag}", sub.join(" ")));
        }
    }
}

#[test]
fn every_cryowatch_command_written_in_the_readme_exists_with_its_flags() {
    let md = readme();
    let bins = [
        ("cryowatch", PathBuf::from(env!("CARGO_BIN_EXE_cryowatch"))),
        ("cryosim", common::cryosim::binary().to_path_buf()),
    ];
    let mut lines = Vec::new();
    // The command-line reference block and every shell line.
    for b in blocks(&md) {
        if b.lang.is_empty() || b.lang == "sh" {
            lines.extend(
                b.text
                    .lines()
                    .map(|l| l.split("  ").next().unwrap_or(l).trim().to_string()),
            );
        }
    }
    // Inline `cryowatch ...` in prose and tables.
    let mut in_block = false;
    for l in md.lines() {
        if l.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for (i, span) in l.split('`').enumerate() {
            if i % 2 == 1 && (span.starts_with("cryowatch ") || span.starts_with("cryosim ")) {
                lines.push(span.to_string());
            }
        }
    }
    let mut errors = Vec::new();
    let mut checked = 0;
    for line in &lines {
        // Only the cryowatch part of `cryowatch check ... && systemctl ...` or a pipe.
        let line = line.split(" && ").next().unwrap_or(line);
        let line = line.split(" | ").next().unwrap_or(line);
        let line = line
            .strip_prefix("CRYOWATCH__STORE__PATH=/var/backups/cryowatch.db ")
            .unwrap_or(line);
        for (name, bin) in &bins {
            if line.starts_with(&format!("{name} ")) {
                check_synopsis(bin, line, &mut errors);
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} commands found in README.md");
    assert!(
        errors.is_empty(),
        "README commands that do not match the CLI:\n{}",
        errors.join("\n")
    );
}

/// Runs one README line with bash in `dir`, with `cryowatch` and `cryosim` on PATH.
fn run_line(dir: &Path, line: usize, cmd: &str, env: &[(&str, String)]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cryowatch")).parent().expect("bin dir");
    let sim_dir = common::cryosim::binary().parent().expect("cryosim dir");
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        sim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-o", "pipefail", "-c", cmd])
        .current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    // `user add` reads the password from standard input.
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(b"correct horse battery staple\n");
    }
    let out = child.wait_with_output().expect("wait for bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "README.md line {line}: `{cmd}` exited {:?}:\n{text}",
        out.status.code()
    );
    text
}

/// Replaces `from` by `to` in `text`, insisting that `from` is there (so the README and
/// this test cannot drift apart silently).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "README.md no longer contains {from:?}");
    text.replace(from, to)
}

/// The lab of "Configuring a real lab", on loopback: the dewar controller is cryosim over
/// Modbus TCP, the RS-485 freezer is cryosim over RTU on a socat pty pair, the broker is
/// Mosquitto, the UPS is dummy-ups behind upsd, mail goes to aiosmtpd, SMS to the local
/// gateway and the fake modem.
struct Lab {
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(&'static str, String)>,
    api: String,
    broker: Mosquitto,
    smtp: SmtpServer,
    nut: Nut,
    sim: CryoSim,
    _rtu: (PtyPair, Proc),
    _twilio: FakeTwilio,
    _modem: FakeModem,
    daemon: Proc,
}

impl Lab {
    fn start() -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = CryoSim::start(dir.path());
        // Each pty pair in its own directory: both name their ends ttyA and ttyB.
        let rtu_dir = dir.path().join("rtu");
        let modem_dir = dir.path().join("modem");
        std::fs::create_dir_all(&rtu_dir).expect("rtu dir");
        std::fs::create_dir_all(&modem_dir).expect("modem dir");
        let rtu_pair = PtyPair::new(&rtu_dir);
        let rtu_log = std::fs::File::create(dir.path().join("cryosim-rtu.log")).expect("rtu log");
        let mut rtu_sim = Proc::spawn(
            "cryosim rtu",
            Command::new(common::cryosim::binary())
                .args(["run", "--modbus-rtu"])
                .arg(&rtu_pair.a)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(rtu_log),
        );
        common::cryosim::ready_line(&mut rtu_sim, "cryosim rtu", &dir.path().join("cryosim-rtu.log"));
        let broker = Mosquitto::start();
        let nut = Nut::start(dir.path(), "labups");
        let smtp = SmtpServer::start(dir.path());
        let twilio = FakeTwilio::start(dir.path());
        let modem = FakeModem::start(&modem_dir);
        let api = format!("127.0.0.1:{}", free_port());

        let mut text = readme_config();
        for (from, to) in [
            ("address = \"10.20.0.31:502\"", format!("address = \"{}\"", sim.modbus)),
            (
                "serial = \"/dev/serial/by-id/usb-FTDI_USB-RS485_Cable_FT1A2B3C-if00-port0\"",
                format!("serial = \"{}\"", rtu_pair.b.display()),
            ),
            ("url = \"mqtt://127.0.0.1:1883\"", format!("url = \"{}\"", broker.url())),
            ("nut = \"127.0.0.1:3493\"", format!("nut = \"{}\"", nut.addr())),
            (
                "path = \"/var/lib/cryowatch/cryowatch.db\"",
                format!("path = \"{}\"", dir.path().join("cryowatch.db").display()),
            ),
            ("host = \"smtp.example.org\"", "host = \"127.0.0.1\"".to_string()),
            ("port = 587", format!("port = {}", smtp.port)),
            ("tls = \"starttls\"", "tls = \"none\"".to_string()),
            ("username = \"cryowatch@example.org\"\n", String::new()),
            ("password_env = \"CRYOWATCH_SMTP_PASSWORD\"\n", String::new()),
            (
                "base_url = \"https://api.twilio.com\"",
                format!("base_url = \"{}\"", twilio.base_url),
            ),
            (
                "account_sid = \"AC0123456789abcdef0123456789abcdef\"",
                format!("account_sid = \"{}\"", twilio.account_sid),
            ),
            (
                "serial = \"/dev/serial/by-id/usb-Sierra_Wireless_GSM_Modem-if03-port0\"",
                format!("serial = \"{}\"", modem.tty.display()),
            ),
            ("listen = \"127.0.0.1:8470\"", format!("listen = \"{api}\"")),
        ] {
            text = swap(&text, from, &to);
        }
        let config = dir.path().join("cryowatch.toml");
        std::fs::write(&config, text).expect("write the lab config");
        let env = vec![
            ("CRYOWATCH_MQTT_PASSWORD", "readme-mqtt".to_string()),
            ("CRYOWATCH_TWILIO_TOKEN", twilio.auth_token.clone()),
            ("CRYOWATCH_API_TOKEN", API_TOKEN.to_string()),
        ];
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("daemon log");
        let log2 = log.try_clone().expect("clone log");
        let mut run = cryowatch();
        run.args(["run", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let daemon = Proc::spawn("cryowatch run", &mut run);
        Lab {
            dir,
            config,
            env,
            api,
            broker,
            smtp,
            nut,
            sim,
            _rtu: (rtu_pair, rtu_sim),
            _twilio: twilio,
            _modem: modem,
            daemon,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = cryowatch();
        cmd.args(args).arg("-c").arg(&self.config);
        cmd.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        let out = cmd.output().expect("run cryowatch");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The README's words for this lab, turned into this run's paths and ports.
    fn localise(&self, cmd: &str) -> String {
        let d = self.dir.path().display().to_string();
        // README outputs under /tmp/ go to this run's out/ (first: the run's own
        // directory is under /tmp too).
        cmd.replace("/tmp/", &format!("{d}/out/"))
            .replace("/etc/cryowatch/cryowatch.toml", &self.config.display().to_string())
            .replace("127.0.0.1:8470", &self.api)
            .replace("-h 127.0.0.1 -p 1883", &format!("-h 127.0.0.1 -p {}", self.broker.port))
            .replace("labups@127.0.0.1:3493", &format!("labups@{}", self.nut.addr()))
            .replace("-p 502 ", &format!("-p {} ", self.sim.modbus.port()))
            .replace("10.20.0.31", &self.sim.modbus.ip().to_string())
            .replace("/var/lib/cryowatch/cryowatch.db", &format!("{d}/cryowatch.db"))
            .replace("/var/backups/", &format!("{d}/backups/"))
    }
}

fn alarm_ids(json: &str) -> Vec<i64> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or(serde_json::Value::Null);
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[test]
fn every_command_of_the_readme_runs_against_the_lab_it_describes() {
    let mut lab = Lab::start();
    std::fs::create_dir_all(lab.dir.path().join("backups")).expect("backups dir");
    std::fs::create_dir_all(lab.dir.path().join("out")).expect("out dir");

    // Every source delivers before anything is asked of the daemon.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = lab.cli(&["status"]);
        let fresh = ["dewar-1.temp", "freezer-9.temp", "ups-lab-b.on_battery"]
            .iter()
            .all(|s| {
                text.lines()
                    .any(|l| l.starts_with(&format!("{s} ")) && l.split_whitespace().nth(4) == Some("ok"))
            });
        if code == Some(0) && fresh {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dewar-1.temp, freezer-9.temp and the UPS not all good after 30 s:\n{text}\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The room probe publishes every second, as such probes do.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let port = lab.broker.port;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
                    .args(["-t", "lab/room-214/temp", "-m", "21.5"])
                    .status();
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    lab.broker
        .publish("lab/freezer-7/telemetry", r#"{"probe": {"temp_c": -80.1}}"#, 1);

    // Alarms 1 and 2 for the acknowledgement examples: marked alarm tests of two units.
    for sensor in ["dewar-1.temp", "freezer-7.temp"] {
        let (code, text) = lab.cli(&["test-alarm", "--sensor", sensor, "--by", "readme"]);
        assert_eq!(code, Some(0), "test-alarm {sensor}: {text}\n{}", lab.log());
    }
    wait_for(Duration::from_secs(20), "alarms 1 and 2 active", || {
        let (_, text) = lab.cli(&["alarms", "--active", "--json"]);
        let ids = alarm_ids(&text);
        (ids.contains(&1) && ids.contains(&2)).then_some(())
    });

    let md = readme();
    let mut ran = 0;
    for block in blocks(&md).iter().filter(|b| b.lang == "sh") {
        for (line, cmd) in commands(block) {
            if covered(&cmd).is_some() || cmd.contains("/tmp/cw-demo") || cmd.starts_with("cryosim ctl") {
                continue;
            }
            let local = lab.localise(&cmd);
            run_line(lab.dir.path(), line, &local, &lab.env);
            ran += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.join();
    assert!(ran >= 20, "only {ran} README commands ran");

    // What they did is on the record.
    let (_, alarms) = lab.cli(&["alarms", "--json"]);
    let v: serde_json::Value = serde_json::from_str(alarms.trim()).expect("alarms --json");
    let by_id = |id: i64| {
        v.as_array()
            .and_then(|a| a.iter().find(|x| x["id"].as_i64() == Some(id)).cloned())
            .unwrap_or_else(|| panic!("alarm {id} missing: {alarms}"))
    };
    assert_eq!(by_id(1)["acknowledged_by"], "alice", "{alarms}");
    assert_eq!(by_id(2)["acknowledged_by"], "alice", "{alarms}");
    assert!(
        lab.smtp
            .messages()
            .iter()
            .any(|m| m.rcpt_tos.iter().any(|r| r.contains("alice@example.org"))),
        "no mail reached alice"
    );
    for f in ["out/dewar-1-week.pdf", "out/oq.pdf", "backups/cryowatch.db"] {
        assert!(lab.dir.path().join(f).exists(), "{f} was not written");
    }
    assert!(lab.daemon.running(), "the daemon died:\n{}", lab.log());
}

#[test]
fn the_quickstart_runs_against_the_demo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo_dir = dir.path().join("cw-demo");
    let md = readme();
    let start = blocks(&md)
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(commands)
        .find(|(_, c)| c.starts_with("cargo run -- demo --dir /tmp/cw-demo"))
        .expect("the quickstart's demo command");
    let args: Vec<String> = start
        .1
        .replace("/tmp/cw-demo", &demo_dir.display().to_string())
        .split_whitespace()
        .skip(3)
        .map(str::to_string)
        .collect();
    let log = dir.path().join("demo.log");
    let out = std::fs::File::create(&log).expect("demo log");
    let mut demo = Proc::spawn(
        "cryowatch demo",
        cryowatch()
            .args(&args)
            .args(["--for", "150s"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out),
    );
    let control = wait_for(Duration::from_secs(20), "the demo's banner", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.trim_start().starts_with("simulators"))
            .and_then(|l| l.split("control ").nth(1))
            .map(|a| a.trim().to_string())
    });
    let config = demo_dir.join("cryowatch.toml");
    // The quickstart acknowledges alarm 1: the demo's story raises it within a minute.
    wait_for(Duration::from_secs(90), "the demo's first alarm", || {
        let out = cryowatch()
            .args(["alarms", "--json", "-c"])
            .arg(&config)
            .output()
            .ok()?;
        alarm_ids(&String::from_utf8_lossy(&out.stdout))
            .contains(&1)
            .then_some(())
    });
    let mut ran = 0;
    for block in blocks(&md).iter().filter(|b| b.lang == "sh") {
        for (line, cmd) in commands(block) {
            if cmd.starts_with("cargo run") || !(cmd.contains("/tmp/cw-demo") || cmd.starts_with("cryosim ctl")) {
                continue;
            }
            let local = cmd
                .replace("/tmp/cw-demo", &demo_dir.display().to_string())
                .replace("127.0.0.1:PORT", &control);
            run_line(dir.path(), line, &local, &[]);
            ran += 1;
        }
    }
    assert!(ran >= 6, "only {ran} quickstart commands ran");
    assert!(
        demo_dir.join("dewar-1.pdf").exists(),
        "the quickstart's report was not written"
    );
    assert!(
        demo.running(),
        "the demo stopped early:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    demo.signal("TERM");
    let _ = demo.wait_exit(Duration::from_secs(20));
}

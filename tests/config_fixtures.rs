//! Every bad configuration under tests/fixtures/bad/ is refused by `cryowatch check`
//! with exit code 2 and exactly the problems in its `.err` file (the file name written
//! as FILE). Every example under config/ is accepted.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cryowatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cryowatch"));
    c.env_remove("RUST_LOG");
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn every_bad_fixture_is_refused_with_its_exact_problems() {
    let bad = files(&root().join("tests/fixtures/bad"), "toml");
    assert!(bad.len() >= 15, "fixtures missing: found {}", bad.len());
    let mut failures = Vec::new();
    for f in &bad {
        let expected = std::fs::read_to_string(f.with_extension("err"))
            .unwrap_or_else(|_| panic!("{} has no .err file", f.display()));
        let out = cryowatch()
            .arg("check")
            .arg("-c")
            .arg(f)
            .env_remove("CRYOWATCH_FIXTURE_UNSET_PASSWORD")
            .output()
            .expect("run cryowatch");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE");
        if out.status.code() != Some(2) || stderr != expected {
            failures.push(format!(
                "{}: exit {:?}\n--- expected\n{expected}--- got\n{stderr}",
                f.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_line_names_the_file_and_a_key_path() {
    let f = root().join("tests/fixtures/bad/many-problems-at-once.toml");
    let out = cryowatch()
        .arg("check")
        .arg("-c")
        .arg(&f)
        .output()
        .expect("run cryowatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() >= 10, "all problems at once, got:\n{stderr}");
    for line in stderr.lines() {
        let rest = line
            .strip_prefix(&format!("{}: ", f.display()))
            .unwrap_or_else(|| panic!("no file prefix: {line}"));
        let (path, _) = rest.split_once(": ").unwrap_or_else(|| panic!("no key path: {line}"));
        assert!(
            path.starts_with("sensor[") || path.starts_with("rule["),
            "unexpected key path in: {line}"
        );
    }
}

/// The examples under config/ are documentation: they must stay valid.
#[test]
fn every_example_config_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("ops.token");
    std::fs::write(&token, "s3cret-token-for-the-ops-team-0042\n").expect("token file");
    let examples = files(&root().join("config"), "toml");
    assert!(!examples.is_empty());
    for f in examples {
        let text = std::fs::read_to_string(&f)
            .expect("read example")
            .replace("/etc/cryowatch/ops.token", &token.display().to_string());
        let copy = dir.path().join(f.file_name().expect("name"));
        std::fs::write(&copy, text).expect("write copy");
        let out = cryowatch()
            .arg("check")
            .arg("-c")
            .arg(&copy)
            .env("CRYOWATCH_INFLUX_TOKEN", "t")
            .env("CRYOWATCH_MQTT_PASSWORD", "p")
            .env("CRYOWATCH_SMTP_PASSWORD", "p")
            .env("CRYOWATCH_TWILIO_TOKEN", "t")
            .output()
            .expect("run cryowatch");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} refused:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn environment_variables_override_file_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[site]\nname = \"x\"\n[store]\npath = \"from-file.db\"\n").expect("write");
    let out = cryowatch()
        .args(["check", "--explain", "-c"])
        .arg(&cfg)
        .env("CRYOWATCH__STORE__PATH", "/srv/from-env.db")
        .env("CRYOWATCH__SITE__TIMEZONE", "Europe/Berlin")
        .output()
        .expect("run cryowatch");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("store /srv/from-env.db"));
    let bad = cryowatch()
        .args(["check", "-c"])
        .arg(&cfg)
        .env("CRYOWATCH__SITE__TIMEZONE", "Mars/Olympus")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("site.timezone: unknown IANA time zone \"Mars/Olympus\""));
}

#[test]
fn a_missing_config_file_is_bad_input() {
    let out = cryowatch()
        .args(["check", "-c", "/nonexistent/cryowatch.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/cryowatch.toml: cannot read"));
}

#[test]
fn bad_command_line_arguments_exit_2() {
    let out = cryowatch()
        .args(["history", "-c", "/nonexistent.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "missing --sensor");
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[site]\nname = \"x\"\n[store]\npath = \"s.db\"\n").expect("write");
    let out = cryowatch()
        .args(["history", "--sensor", "x", "--from", "yesterday", "-c"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read time \"yesterday\""));
}

/// A base that `check` accepts, for the nasty variations below.
const NASTY_BASE: &str = r#"[site]
name = "nasty"
timezone = "UTC"
[store]
path = "/tmp/nasty.db"
[[modbus.device]]
id = "d"
transport = "tcp"
address = "127.0.0.1:502"
unit = 1
poll_interval = "1s"
timeout = "500ms"
[[asset]]
id = "a"
kind = "ln2_dewar"
[[sensor]]
id = "a.t"
asset = "a"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "d"
register = "input"
address = 0
type = "f32"
[[contact]]
id = "c"
email = "c@example.org"
[[escalation]]
id = "e"
[[escalation.step]]
after = "0s"
notify = ["contact:c"]
"#;

/// Configurations an outside probe used to break things, each a small edit of a good
/// one: every one is refused with exit 2 and a problem line naming the file — no panic,
/// no hang, nothing accepted that would misbehave later.
#[test]
fn nasty_configurations_are_refused_with_exit_2_and_no_crash() {
    let nasty: Vec<(&str, String)> = vec![
        ("empty file", String::new()),
        ("binary garbage", "\u{0}\u{1}\u{ff}\u{fe}[[[".into()),
        (
            "NUL in an id",
            NASTY_BASE.replace("id = \"a.t\"", "id = \"a.\\u0000t\""),
        ),
        (
            "newline in an id",
            NASTY_BASE.replace("id = \"a.t\"", "id = \"a.\\nt\""),
        ),
        ("unit id 300", NASTY_BASE.replace("unit = 1", "unit = 300")),
        ("negative unit id", NASTY_BASE.replace("unit = 1", "unit = -1")),
        (
            "register address 70000",
            NASTY_BASE.replace("address = 0", "address = 70000"),
        ),
        ("port 70000", NASTY_BASE.replace("127.0.0.1:502", "127.0.0.1:70000")),
        (
            "zero poll interval",
            NASTY_BASE.replace("poll_interval = \"1s\"", "poll_interval = \"0s\""),
        ),
        (
            "negative duration",
            NASTY_BASE.replace("timeout = \"500ms\"", "timeout = \"-5s\""),
        ),
        (
            "a duration of 1e30 years",
            NASTY_BASE.replace("timeout = \"500ms\"", "timeout = \"1000000000000000000000000000000y\""),
        ),
        (
            "unknown time zone",
            NASTY_BASE.replace("timezone = \"UTC\"", "timezone = \"Mars/Olympus_Mons\""),
        ),
        (
            "time zone path traversal",
            NASTY_BASE.replace("timezone = \"UTC\"", "timezone = \"../../../etc/passwd\""),
        ),
        (
            "NaN threshold",
            NASTY_BASE.to_string()
                + "[[rule]]\nid = \"r\"\nsensor = \"a.t\"\nkind = \"high\"\nthreshold = nan\nseverity = \"critical\"\n",
        ),
        (
            "infinite threshold",
            NASTY_BASE.to_string()
                + "[[rule]]\nid = \"r\"\nsensor = \"a.t\"\nkind = \"high\"\nthreshold = inf\nseverity = \"critical\"\n",
        ),
        (
            "rule combining itself",
            NASTY_BASE.to_string() + "[[rule]]\nid = \"r\"\nkind = \"all\"\nof = [\"r\"]\nseverity = \"critical\"\n",
        ),
        (
            "fallback loop",
            NASTY_BASE.to_string()
                + "[[channel]]\nid = \"x\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nfallback = \"y\"\n\
                   [[channel]]\nid = \"y\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/y\"\nfallback = \"x\"\n",
        ),
        (
            "NaN valid range",
            NASTY_BASE.replace("unit = \"degC\"", "unit = \"degC\"\nvalid_range = [nan, 1.0]"),
        ),
        (
            "a 2 MB site name",
            NASTY_BASE.replace("name = \"nasty\"", &format!("name = \"{}\"", "x".repeat(2 << 20))),
        ),
        (
            "deeply nested arrays",
            format!("{NASTY_BASE}x = {}1{}\n", "[".repeat(5000), "]".repeat(5000)),
        ),
        (
            "escalation repeat of a billion",
            NASTY_BASE.replace("id = \"e\"\n", "id = \"e\"\nrepeat = 1000000000\n"),
        ),
        (
            "duplicate table key",
            NASTY_BASE.replace("[store]\n", "[store]\npath = \"/tmp/a.db\"\n"),
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (name, text) in &nasty {
        let f = dir.path().join("nasty.toml");
        std::fs::write(&f, text).expect("write config");
        let out = cryowatch()
            .arg("check")
            .arg("-c")
            .arg(&f)
            .output()
            .expect("run cryowatch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.lines().all(|l| l.starts_with(&f.display().to_string()));
        if out.status.code() != Some(2) || stderr.is_empty() || !named || stderr.contains("panicked") {
            failures.push(format!(
                "{name}: exit {:?}\n{}",
                out.status.code(),
                stderr.chars().take(600).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} nasty configs:\n{}",
        failures.len(),
        nasty.len(),
        failures.join("\n")
    );
}

/// `check --explain` describes paging and decoding as well as polling, with the
/// defaults the file does not write marked as such.
#[test]
fn explain_describes_decoding_ups_tls_paging_and_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        r#"
[site]
name = "explained"
timezone = "America/Chicago"
[store]
path = "cw.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:1502"
[[ups]]
id = "ups-a"
nut = "127.0.0.1:3493"
name = "labups"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
[sensor.modbus]
device = "plc"
register = "input"
address = 0
type = "i16"
byte_order = "BADC"
scale = 0.1
offset = -5.0
fault_values = [-32768.0]
[[sensor]]
id = "ups-a.on_battery"
asset = "dewar-1"
quantity = "state"
unit = ""
[sensor.ups]
ups = "ups-a"
variable = "on_battery"
[[contact]]
id = "alice"
name = "Alice Nguyen"
phone = "+15551230001"
[[schedule]]
id = "rota"
rotation = "weekly"
handoff = "Mon 08:00"
members = ["alice"]
[[escalation]]
id = "oncall"
repeat = 1
[[escalation.step]]
after = "0s"
notify = ["schedule:rota"]
via = ["sms"]
[[route]]
escalation = "oncall"
severity = "alarm"
[[channel]]
id = "sms"
kind = "twilio"
base_url = "https://sms.example.org"
account_sid = "AC01"
auth_token = "t"
from = "+15550000000"
fallback = "modem"
[[channel]]
id = "modem"
kind = "gsm_modem"
serial = "/dev/serial/by-id/usb-modem"
ring = "20s"
"#,
    )
    .expect("write");
    let out = cryowatch()
        .args(["check", "--explain", "-c"])
        .arg(&cfg)
        .output()
        .expect("run cryowatch");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "    dewar-1.temp: i16 byte order BADC, value = raw * 0.1 + -5, fault values -32768 (read as sensor_fault)\n",
        "ups (NUT) ups-a = labups at 127.0.0.1:3493 every 5s:\n  ups-a.on_battery <- on_battery\n",
        "  dewar-1.temp 30s (default: 3 poll intervals, at least 30s)\n",
        "channel sms: twilio https://sms.example.org, from +15550000000, falls back to modem\n",
        "channel modem: gsm_modem /dev/serial/by-id/usb-modem @115200, rings 20s before each SMS, no fallback\n",
        "  channel[0] channel \"sms\" (twilio) (sms.example.org) trusts the system trust store (",
        "  alice (Alice Nguyen): phone +15551230001\n",
        "schedule rota: weekly, handoff Monday 08:00:00 (America/Chicago), members alice, \
         start 2024-01-01T08:00:00-06:00 (implied: no start written)\n  on call now: alice\n",
        "escalation oncall: runs again 1 more time(s), 15m (the default) after its last step\n",
        "  step 1: 0s after the alarm became active, notify schedule:rota (whoever is on call) via sms\n",
        "route[0]: alarm and worse alarms of every asset -> escalation oncall\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        !text.contains("ups-a.on_battery <- ups"),
        "UPS sensors are listed under their UPS, not MQTT:\n{text}"
    );
}

/// `check --as-user` reports every file the service user could not read, here a
/// secret only root may read, and a store directory it cannot write.
#[test]
fn check_as_user_names_the_files_the_service_user_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let secret = d.join("smtp.pass");
    std::fs::write(&secret, "s3cret\n").expect("write secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod secret");
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nname = \"perm\"\n[store]\npath = \"{}/cw.db\"\n[[channel]]\nid = \"email\"\nkind = \"smtp\"\n\
             host = \"smtp.example.org\"\nfrom = \"cw@example.org\"\npassword_file = \"{}\"\n",
            d.display(),
            secret.display()
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod config");
    let run = |user: &str| {
        cryowatch()
            .args(["check", "--as-user", user, "-c"])
            .arg(&cfg)
            .output()
            .expect("run cryowatch")
    };
    let out = run("nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let c = cfg.display();
    assert!(
        stderr.contains(&format!(
            "{c}: channel[0].password_file: {}: not readable by user nobody (mode 0600 root:root); \
             the service would restart-loop\n",
            secret.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{c}: store.path: {}: not writable by user nobody (mode 0755 root:root)",
            d.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c.toml: not readable"),
        "the config itself is readable: {stderr}"
    );
    assert_eq!(run("root").status.code(), Some(0));
    assert_eq!(run("no-such-user-here").status.code(), Some(2));
}

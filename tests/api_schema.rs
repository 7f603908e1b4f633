//! The JSON API against its own OpenAPI document: Schemathesis (from the test
//! virtualenv, `bash tests/run.sh` installs it) generates requests for every operation
//! and checks every answer, once per role (viewer, operator, admin) and once without
//! credentials. No 5xx, no status, header, content type or body the document does not
//! declare, no malformed input accepted. Each run is bounded (examples and seconds) so
//! the four together stay within about three minutes.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::api_lab::{self, ADMIN, OPERATOR, VIEWER};
use common::cryosim::CryoSim;
use common::http::call;
use common::{Proc, Site, free_port, python, wait_for};

const PATIENCE: Duration = Duration::from_secs(20);
/// Seconds one Schemathesis run may take (four runs: about two minutes in all).
const RUN_SECONDS: u32 = 25;
const MAX_EXAMPLES: u32 = 40;

struct Daemon {
    _dir: tempfile::TempDir,
    _sim: CryoSim,
    site: Site,
    daemon: Option<Proc>,
    addr: SocketAddr,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("dir");
        let sim = CryoSim::start(dir.path());
        let port = free_port();
        let site = Site::new(&api_lab::config("schema lab", port, sim.modbus));
        let daemon = site.start_daemon();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let d = Daemon {
            _dir: dir,
            _sim: sim,
            site,
            daemon: Some(daemon),
            addr,
        };
        wait_for(PATIENCE, "the API and the first readings", || {
            let auth = format!("Bearer {VIEWER}");
            let r = call(d.addr, "GET", "/api/v1/readyz", &[("Authorization", &auth)], None).ok()?;
            (r.status == 200).then_some(())
        });
        d
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.site.stop_daemon(d);
        }
    }
}

/// `schemathesis` next to the test interpreter (the repository's .venv).
fn schemathesis() -> PathBuf {
    let py = python();
    let exe = py.parent().unwrap_or(Path::new(".")).join("schemathesis");
    assert!(
        exe.exists(),
        "{} not found: run `bash tests/run.sh`, which installs Schemathesis into .venv",
        exe.display()
    );
    exe
}

/// Runs Schemathesis with every check against the daemon, as `token` (or with no
/// credentials, reading the document from a file since the served one needs them).
fn run(d: &Daemon, token: Option<&str>, label: &str) -> Result<(), String> {
    let base = format!("http://{}", d.addr);
    let mut cmd = Command::new(schemathesis());
    cmd.arg("--config-file")
        .arg(common::tests_dir().join("schemathesis.toml"))
        .arg("run");
    match token {
        Some(t) => {
            cmd.arg(format!("{base}/api/v1/openapi.json"))
                .args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        None => {
            let doc = d.site.path().join("openapi.json");
            std::fs::write(&doc, include_str!("../src/api/openapi.json")).expect("write the document");
            cmd.arg(&doc).args(["--url", &base]);
        }
    }
    cmd.args(["--checks", "all"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--max-time", &RUN_SECONDS.to_string()])
        .args(["--request-timeout", "10"])
        .args(["--workers", "1"])
        .args(["--seed", "1"])
        .arg("--no-color")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(d.site.path());
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run schemathesis: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("schemathesis as {label}: {:.1?}", started.elapsed());
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("--- schemathesis as {label} ---\n{text}"))
    }
}

#[test]
fn every_answer_of_the_api_matches_its_openapi_document_for_every_role_and_none() {
    let d = Daemon::start();
    let mut failures = Vec::new();
    for (token, label) in [
        (Some(VIEWER), "viewer"),
        (Some(OPERATOR), "operator"),
        (Some(ADMIN), "admin"),
        (None, "no credentials"),
    ] {
        if let Err(e) = run(&d, token, label) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n--- daemon log (tail) ---\n{}",
        failures.join("\n"),
        d.site
            .daemon_log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

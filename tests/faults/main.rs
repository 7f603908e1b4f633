//! Fault-injection suite: every peer is real (simulators, Mosquitto, aiosmtpd, the fake
//! modem, VictoriaMetrics, NUT) and one fault at a time is injected while readings
//! flow and alarms escalate. Prints one Markdown table — readings produced vs stored,
//! pages expected vs sent, crashes, recovery time — to stdout and to
//! `target/fault-report.md`, and fails when any row lost or duplicated something.
//!
//!   cargo test --test faults                 # every scenario
//!   cargo test --test faults -- broker kill  # scenarios whose name contains a word
//!
//! Runs as part of `bash tests/run.sh`.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod net;
mod outcome;

use outcome::Outcome;
use std::time::Instant;

/// A scenario: its name (for filtering) and the function that injects the fault.
pub type Scenario = (&'static str, fn() -> Outcome);

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let scenarios: Vec<Scenario> = net::scenarios()
        .into_iter()
        .chain(crash::scenarios())
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, run) in scenarios {
        eprintln!("faults: {name} ...");
        let t = Instant::now();
        let row = match std::panic::catch_unwind(run) {
            Ok(row) => row,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".to_string());
                Outcome {
                    error: Some(format!("scenario failed: {why}")),
                    ..Outcome::new(name)
                }
            }
        };
        eprintln!(
            "faults: {name} {} in {:.1} s",
            if row.ok() { "ok" } else { "FAIL" },
            t.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    let table = outcome::table(&rows);
    println!("\n{table}");
    let report = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-report.md");
    if let Err(e) = std::fs::write(&report, &table) {
        eprintln!("faults: cannot write {}: {e}", report.display());
    }
    eprintln!(
        "faults: {} scenarios in {:.0} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if rows.iter().any(|r| !r.ok()) {
        eprintln!("faults: FAILED: a row above lost, duplicated or crashed");
        std::process::exit(1);
    }
}

//! The benchmark report: every performance figure of cryowatch in one command, written
//! as a Markdown table with the target beside the measured value.
//!
//! Each figure is measured by its own bench (`benches/<name>.rs`, also runnable alone
//! with `cargo bench --bench <name>`). This binary compiles them all in as modules, so
//! they are built in the profile the report is built in, and runs each one in a child
//! process of itself (`report --figure NAME`): a bench that panics or hangs costs its
//! own rows, not the report. Each bench prints its figures on lines starting with
//! `REPORT key=value ...`; the report collects them, fills the table, prints it and
//! writes it to `bench-report.md` in the target directory.
//!
//! Run:
//!
//! - `cargo bench --bench report` — everything at full size, release build (about 20
//!   minutes; the footprint run alone is 10 minutes).
//! - `BENCH_QUICK=1 cargo test --bench report` — every size shrunk, test (debug)
//!   profile, about 2 minutes of run time: checks that every bench still runs and
//!   yields its figures. Its rows say "(quick, not a measurement)" instead of a verdict.
//! - `cargo bench --bench report -- --only modbus_poll,export_year` — some benches.
//!
//! Exit status 1 when a bench failed (crashed, timed out or printed no figures); a
//! figure that misses its target is reported in the table, not in the exit status.
//!
//! Needs what the benches need: `mosquitto`, `mosquitto_pub`/`mosquitto_sub`,
//! `victoria-metrics`, `wrk` and aiosmtpd (all installed by tests/run.sh).

// Each bench declares `mod support;` so that it also builds alone; here that module is
// compiled once per bench.
#![allow(clippy::duplicate_mod)]

#[path = "alarm_eval.rs"]
mod alarm_eval;
#[path = "api_status.rs"]
mod api_status;
#[path = "export_year.rs"]
mod export_year;
#[path = "footprint.rs"]
mod footprint;
#[path = "influx_mirror.rs"]
mod influx_mirror;
#[path = "modbus_poll.rs"]
mod modbus_poll;
#[path = "mqtt_ingest.rs"]
mod mqtt_ingest;
#[path = "page_latency.rs"]
mod page_latency;
#[path = "record_integrity.rs"]
mod record_integrity;
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One bench the report runs.
struct Bench {
    name: &'static str,
    main: fn(),
    /// Sizes under BENCH_QUICK=1 (the new benches read BENCH_QUICK themselves).
    quick_env: &'static [(&'static str, &'static str)],
    /// Longest run at full size, in seconds, before it is stopped.
    full_limit: u64,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "page_latency",
        main: page_latency::main,
        quick_env: &[("BENCH_EXCURSIONS", "8")],
        full_limit: 400,
    },
    Bench {
        name: "mqtt_ingest",
        main: mqtt_ingest::main,
        quick_env: &[("BENCH_N", "20000")],
        full_limit: 400,
    },
    Bench {
        name: "modbus_poll",
        main: modbus_poll::main,
        quick_env: &[],
        full_limit: 400,
    },
    Bench {
        name: "footprint",
        main: footprint::main,
        quick_env: &[],
        full_limit: 1200,
    },
    Bench {
        name: "export_year",
        main: export_year::main,
        quick_env: &[],
        full_limit: 600,
    },
    Bench {
        name: "alarm_eval",
        main: alarm_eval::main,
        quick_env: &[("BENCH_READINGS", "50000"), ("BENCH_ROUNDS", "50")],
        full_limit: 900,
    },
    Bench {
        name: "influx_mirror",
        main: influx_mirror::main,
        quick_env: &[
            ("BENCH_HISTORY", "20"),
            ("BENCH_STEADY_SECS", "3"),
            ("BENCH_COMPARE", "0"),
        ],
        full_limit: 900,
    },
    Bench {
        name: "record_integrity",
        main: record_integrity::main,
        quick_env: &[],
        full_limit: 600,
    },
    Bench {
        name: "api_status",
        main: api_status::main,
        quick_env: &[("BENCH_SECS", "3"), ("BENCH_CONNECTIONS", "4")],
        full_limit: 400,
    },
];

/// Longest run of one bench under BENCH_QUICK=1.
const QUICK_LIMIT: u64 = 180;

/// How one bench's run ended.
struct Outcome {
    figures: BTreeMap<String, String>,
    /// None when it exited 0 and printed figures; else what went wrong.
    failure: Option<String>,
    secs: f64,
    /// The command that measures it alone, as it was run here.
    command: String,
}

fn run_bench(bench: &Bench, quick: bool) -> Outcome {
    let exe = std::env::current_exe().expect("the report's own path");
    let mut cmd = Command::new(exe);
    cmd.args(["--figure", bench.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut shown_env = Vec::new();
    if quick {
        for &(k, v) in bench.quick_env {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
        shown_env = bench.quick_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if bench.quick_env.is_empty() {
            shown_env.push("BENCH_QUICK=1".to_string());
        }
    }
    shown_env.push(format!("cargo bench --bench {}", bench.name));
    let command = shown_env.join(" ");
    let limit = Duration::from_secs(if quick { QUICK_LIMIT } else { bench.full_limit });

    println!("\n=== {} ({command}; stopped after {} s)", bench.name, limit.as_secs());
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                figures: BTreeMap::new(),
                failure: Some(format!("could not start: {e}")),
                secs: 0.0,
                command,
            };
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut figures = BTreeMap::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  {line}");
            if let Some(rest) = line.strip_prefix("REPORT ") {
                for pair in rest.split_whitespace() {
                    if let Some((k, v)) = pair.split_once('=') {
                        figures.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        figures
    });
    let mut child = support::Killed(child);
    let failure = loop {
        match child.0.try_wait() {
            Ok(Some(status)) if status.success() => break None,
            Ok(Some(status)) => break Some(format!("exited with {status}")),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.0.kill();
                break Some(format!("stopped after {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => break Some(format!("wait failed: {e}")),
        }
    };
    drop(child);
    let figures = reader.join().unwrap_or_default();
    let failure = failure.or_else(|| figures.is_empty().then(|| "printed no REPORT line".to_string()));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "=== {} {} in {secs:.1} s",
        bench.name,
        failure.as_deref().unwrap_or("done")
    );
    Outcome {
        figures,
        failure,
        secs,
        command,
    }
}

/// A table row: what is measured, the target and where it comes from, the measured
/// value, whether it meets the target.
struct Row {
    figure: &'static str,
    target: &'static str,
    measured: String,
    /// None when the bench gave no figure.
    met: Option<bool>,
    command: String,
}

/// One bench's figures, by key.
struct Figures<'a>(&'a BTreeMap<String, String>);

impl Figures<'_> {
    /// A finite number.
    fn n(&self, key: &str) -> Option<f64> {
        self.0
            .get(key)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }

    fn t(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

/// The measured text and whether it meets the target; None when a figure is missing.
type Measure<'a> = &'a dyn Fn(&Figures) -> Option<(String, bool)>;

/// Builds the rows from the benches' figures.
fn rows(outcomes: &BTreeMap<&'static str, Outcome>) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |bench: &str, figure: &'static str, target: &'static str, measure: Measure| {
        let Some(o) = outcomes.get(bench) else {
            return;
        };
        let (measured, met) = match measure(&Figures(&o.figures)) {
            Some((m, ok)) => (m, Some(ok)),
            None => (
                format!(
                    "not measured: {}",
                    o.failure.as_deref().unwrap_or("the bench printed no such figure")
                ),
                None,
            ),
        };
        rows.push(Row {
            figure,
            target,
            measured,
            met,
            command: o.command.clone(),
        });
    };

    add(
        "page_latency",
        "P1 excursion → page accepted by the SMTP server (MQTT publish to mail), p50 / p99",
        "p99 < 250 ms (issue 4)",
        &|f| {
            let (p50, p99) = (f.n("page_p50_ms")?, f.n("page_p99_ms")?);
            Some((
                format!(
                    "p50 {p50:.1} ms, p99 {p99:.1} ms ({} of {} pages)",
                    f.n("page_pages")?,
                    f.n("page_wanted")?
                ),
                p99 < 250.0 && f.n("page_pages")? >= f.n("page_wanted")?,
            ))
        },
    );
    add(
        "mqtt_ingest",
        "P2 MQTT ingest into the store, QoS 1 flood, vs a bare `mosquitto_sub`",
        "≥ 80 % of bare, 0 lost (issue 2)",
        &|f| {
            let (ratio, lost) = (f.n("ingest_ratio_pct")?, f.n("ingest_lost")?);
            Some((
                format!(
                    "{:.0} readings/s = {ratio:.0} % of bare ({:.0} msg/s), {lost:.0} lost of {:.0}",
                    f.n("ingest_per_s")?,
                    f.n("ingest_bare_per_s")?,
                    f.n("ingest_n")?
                ),
                ratio >= 80.0 && lost == 0.0,
            ))
        },
    );
    add(
        "mqtt_ingest",
        "Bytes per reading on disk (the P2 flood's store; once sealed, and before: with the batches that bind readings until their block is sealed)",
        "≤ 32 B once sealed (issue 2)",
        &|f| {
            let (b, sealed) = (f.n("ingest_bytes_per_reading")?, f.n("ingest_bytes_sealed")?);
            Some((
                format!("{sealed:.1} B sealed ({b:.1} B before the seal)"),
                sealed <= 32.0,
            ))
        },
    );
    add(
        "modbus_poll",
        "P3 Modbus polling, 200 devices × 20 registers at 1 s: requests per poll",
        "1 request per device per poll (= devices); set by this report",
        &|f| {
            let (per_poll, per_device, devices) = (
                f.n("modbus_requests_per_poll")?,
                f.n("modbus_requests_per_device")?,
                f.n("modbus_devices")?,
            );
            Some((
                format!(
                    "{per_poll:.1} for {devices:.0} devices × {:.0} registers ({per_device:.2} per device); {:.3} polls/s per device, {:.0} readings/s stored",
                    f.n("modbus_registers")?,
                    f.n("modbus_polls_per_s")?,
                    f.n("modbus_stored_per_s")?
                ),
                per_device <= 1.005 && f.n("modbus_polls_per_s")? >= 0.95,
            ))
        },
    );
    add(
        "modbus_poll",
        "P3 Modbus polling: cryowatch CPU share (utime+stime ÷ wall)",
        "< 5 % of one core; set by this report",
        &|f| {
            let cpu = f.n("modbus_cpu_pct")?;
            Some((
                format!("{cpu:.1} % of one core (over {:.0} s)", f.n("modbus_window_s")?),
                cpu < 5.0,
            ))
        },
    );
    add(
        "footprint",
        "P4 RSS with 1,000 sensors (Modbus, 5 s poll) after the run",
        "< 100 MB; set by this report",
        &|f| {
            let rss = f.n("footprint_rss_mb")?;
            Some((
                format!(
                    "{rss:.1} MB after {:.0} s ({:.1} MB at half time, peak {:.1} MB)",
                    f.n("footprint_secs")?,
                    f.n("footprint_rss_half_mb")?,
                    f.n("footprint_hwm_mb")?
                ),
                rss < 100.0,
            ))
        },
    );
    add(
        "footprint",
        "P4 idle CPU with 1,000 sensors (steady state: second half of the run)",
        "< 2 % of one core; set by this report",
        &|f| {
            let cpu = f.n("footprint_idle_cpu_pct")?;
            Some((format!("{cpu:.2} % of one core"), cpu < 2.0))
        },
    );
    add(
        "export_year",
        "P5 `cryowatch history --format csv`, a year of 1-minute data (525,600 readings)",
        "< 5 s; set by this report",
        &|f| {
            let secs = f.n("export_secs")?;
            Some((
                format!(
                    "{secs:.2} s for {:.0} rows ({:.0} rows/s)",
                    f.n("export_readings")?,
                    f.n("export_rows_per_s")?
                ),
                secs < 5.0,
            ))
        },
    );
    add(
        "export_year",
        "P5 bytes per reading on disk (the year's store)",
        "≤ 32 B (issue 2)",
        &|f| {
            let b = f.n("export_bytes_per_reading")?;
            Some((format!("{b:.1} B"), b <= 32.0))
        },
    );
    add(
        "record_integrity",
        "Durable before acknowledged: a commit synced to disk (FULL) vs not (NORMAL), 1 reading / 1,000 readings",
        "the sync costs < 50 ms per commit, so P1 holds (issue 17)",
        &|f| {
            let (one, k) = (f.n("sync_one_full_ms")?, f.n("sync_k_full_ms")?);
            Some((
                format!(
                    "1 reading: {one:.2} ms FULL vs {:.2} ms NORMAL; {:.0} readings: {k:.2} ms FULL vs {:.2} ms NORMAL",
                    f.n("sync_one_normal_ms")?,
                    f.n("sync_k")?,
                    f.n("sync_k_normal_ms")?
                ),
                one - f.n("sync_one_normal_ms")? < 50.0 && k - f.n("sync_k_normal_ms")? < 50.0,
            ))
        },
    );
    add(
        "record_integrity",
        "Readings bound into the audit chain at commit (SHA-256 of the batch, one row), per reading",
        "< 1 µs per reading (issue 17)",
        &|f| {
            let us = f.n("bind_us_per_reading")?;
            Some((format!("{us:.3} µs"), us < 1.0))
        },
    );
    add(
        "record_integrity",
        "Seal of a 10-minute block, 1,000 sensors at 1 Hz, after checking every batch since the last seal",
        "< 5 s on the writer thread (issue 17)",
        &|f| {
            let ms = f.n("seal_ms")?;
            Some((
                format!(
                    "{ms:.0} ms for {:.0} sealed, {:.0} checked",
                    f.n("seal_readings")?,
                    f.n("seal_checked")?
                ),
                ms < 5000.0,
            ))
        },
    );
    add(
        "record_integrity",
        "Record watch: every unsealed reading (12 min × 1,000 sensors at 1 Hz) / the last 10 s of batches",
        "all < 5 s (once a minute), 10 s < 100 ms (every look) (issue 17)",
        &|f| {
            let (open, new) = (f.n("watch_open_ms")?, f.n("watch_new_ms")?);
            Some((
                format!(
                    "{open:.0} ms for {:.0} readings; {new:.1} ms for {:.0}",
                    f.n("watch_open_readings")?,
                    f.n("watch_new_readings")?
                ),
                open < 5000.0 && new < 100.0,
            ))
        },
    );
    add(
        "alarm_eval",
        "Alarm evaluation per reading (1,000 sensors, 3,000 rules, engine alone)",
        "< 5 µs (issue 3)",
        &|f| {
            let us = f.n("alarm_us_per_reading")?;
            Some((format!("{us:.2} µs ({:.0} readings)", f.n("alarm_readings")?), us < 5.0))
        },
    );
    add(
        "alarm_eval",
        "Reading → alarm event through the daemon, p99",
        "p99 < 10 ms (issue 3)",
        &|f| {
            let p99 = f.n("alarm_raised_p99_ms")?;
            Some((
                format!(
                    "p50 {:.2} ms, p99 {p99:.2} ms ({} of {} round trips)",
                    f.n("alarm_raised_p50_ms")?,
                    f.n("alarm_matched")?,
                    f.n("alarm_rounds")?
                ),
                p99 < 10.0,
            ))
        },
    );
    add(
        "influx_mirror",
        "InfluxDB back-fill rate (1,000 sensors' backlog into VictoriaMetrics)",
        "≥ 50,000 readings/s (a day's outage of 1,000 sensors at 1 Hz back-filled in < 30 min); issue 5 names no figure, set by this report",
        &|f| {
            let rate = f.n("backfill_per_s")?;
            let landed = f.t("backfill_landed") == "true";
            Some((
                format!(
                    "{rate:.0} readings/s ({:.0} readings, batch {:.0}; {})",
                    f.n("backfill_readings")?,
                    f.n("backfill_batch")?,
                    if landed {
                        "all landed once"
                    } else {
                        "NOT all landed once"
                    }
                ),
                rate >= 50_000.0 && landed,
            ))
        },
    );
    add(
        "influx_mirror",
        "InfluxDB mirroring cost, 1,000 sensors at 1 Hz (sink + extra writer CPU)",
        "< 2 % of one core; issue 5 names no figure, set by this report",
        &|f| {
            let cost = f.n("mirror_cost_pct")?;
            let landed = f.t("mirror_landed") == "true";
            Some((
                format!(
                    "{cost:.2} % of one core (over {:.0} s; {})",
                    f.n("mirror_steady_secs")?,
                    if landed { "all landed" } else { "NOT all landed" }
                ),
                cost < 2.0 && landed,
            ))
        },
    );
    add(
        "api_status",
        "`GET /api/v1/status`, 1,000 sensors, pipeline running, wrk on loopback",
        "≥ 300 requests/s (\"a few hundred\"); issue 7 names no figure, set by this report",
        &|f| {
            let rps = f.n("api_rps")?;
            Some((
                format!(
                    "{rps:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms ({:.0} connections, {:.0} s)",
                    f.n("api_p50_ms")?,
                    f.n("api_p99_ms")?,
                    f.n("api_connections")?,
                    f.n("api_secs")?
                ),
                rps >= 300.0,
            ))
        },
    );
    rows
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn markdown(rows: &[Row], outcomes: &BTreeMap<&'static str, Outcome>, quick: bool, wall: Duration) -> String {
    let mut md = String::new();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let rev = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    md.push_str("# cryowatch benchmark report\n\n");
    md.push_str(&format!(
        "{} · {} mode, {profile} build · revision {rev} · {cores} cores, load average at the end {load} · {:.0} s in all\n\n",
        cryowatch::model::format_rfc3339(cryowatch::model::now_ms()),
        if quick { "quick (BENCH_QUICK=1)" } else { "full" },
        wall.as_secs_f64()
    ));
    if quick {
        md.push_str(
            "Quick mode: every size is shrunk (and the build may be debug) so this only shows that every bench \
             runs and yields its figures. These numbers are not measurements; run `cargo bench --bench report` for them.\n\n",
        );
    }
    md.push_str("| figure | target | measured | verdict | measure it alone |\n| --- | --- | --- | --- | --- |\n");
    for r in rows {
        let verdict = match (quick, r.met) {
            (_, None) => "no figure",
            (true, Some(_)) => "(quick, not a measurement)",
            (false, Some(true)) => "met",
            (false, Some(false)) => "**short**",
        };
        md.push_str(&format!(
            "| {} | {} | {} | {verdict} | `{}` |\n",
            cell(r.figure),
            cell(r.target),
            cell(&r.measured),
            r.command
        ));
    }
    md.push_str("\n| bench | result | seconds |\n| --- | --- | ---: |\n");
    for (name, o) in BENCHES.iter().filter_map(|b| Some((b.name, outcomes.get(b.name)?))) {
        md.push_str(&format!(
            "| {name} | {} | {:.1} |\n",
            cell(o.failure.as_deref().unwrap_or("ok")),
            o.secs
        ));
    }
    md
}

/// The target directory this binary was built in (the nearest ancestor holding
/// Cargo's CACHEDIR.TAG), else `target`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|d| d.join("CACHEDIR.TAG").is_file())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(name) = value_of("--figure") {
        match BENCHES.iter().find(|b| b.name == name) {
            Some(b) => (b.main)(),
            None => {
                eprintln!("report: unknown bench {name:?}");
                std::process::exit(2);
            }
        }
        return;
    }
    let only: Option<Vec<String>> = value_of("--only").map(|s| s.split(',').map(str::to_string).collect());
    if let Some(only) = &only
        && let Some(bad) = only.iter().find(|n| !BENCHES.iter().any(|b| b.name == n.as_str()))
    {
        let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        eprintln!("report: unknown bench {bad:?}; benches: {}", names.join(", "));
        std::process::exit(2);
    }
    let quick = support::quick();
    let start = Instant::now();
    let mut outcomes = BTreeMap::new();
    for bench in BENCHES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == bench.name)) {
            continue;
        }
        outcomes.insert(bench.name, run_bench(bench, quick));
    }
    let rows = rows(&outcomes);
    let md = markdown(&rows, &outcomes, quick, start.elapsed());
    let path = target_dir().join("bench-report.md");
    println!("\n{md}");
    match std::fs::write(&path, &md) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("report: could not write {}: {e}", path.display()),
    }
    if outcomes.values().any(|o| o.failure.is_some()) {
        std::process::exit(1);
    }
}

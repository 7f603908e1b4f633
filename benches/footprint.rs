//! The daemon's footprint over a long quiet run: resident memory and idle CPU with 1,000
//! sensors after 10 minutes.
//!
//! 1,000 Modbus sensors — 50 devices × 20 input registers (i16 temperatures), polled at
//! the default interval of 5 s (200 readings/s) — from the Modbus TCP gateway in the
//! bench (`support::modbus_fleet`); every sensor has its asset's default rules (a -80 °C
//! freezer: `high`, `stale`, `fault`) and nothing alarms. The daemon is `cryowatch run`
//! (the binary Cargo builds with this bench). Every second the bench samples VmRSS from
//! `/proc/PID/status`; at the end it prints RSS at the half and at the end, the peak
//! (VmHWM), and the idle CPU: utime + stime from `/proc/PID/stat` over the second half
//! of the run (steady state) ÷ wall time, as a percentage of one core.
//!
//! Run: `cargo bench --bench footprint`. BENCH_SECS sets the length (default 600);
//! BENCH_QUICK=1 runs 20 s.

use std::time::{Duration, Instant};

use cryowatch::store::Store;

mod support;
use support::modbus_fleet::FleetServer;
use support::{alive, pid_cpu, proc_status_kib, size, start_fleet_daemon};

const DEVICES: u16 = 50;
const REGISTERS: u16 = 20;
const POLL: &str = "5s";

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let secs = size("BENCH_SECS", 600, 20);
    let fleet = FleetServer::start(DEVICES, REGISTERS);
    let (_dir, db, log, mut daemon) = start_fleet_daemon("footprint bench", fleet.addr, DEVICES, REGISTERS, POLL);
    let pid = daemon.0.id();
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let start = Instant::now();
    let half = Duration::from_secs(secs / 2);
    let end = Duration::from_secs(secs);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut at_half = None;
    let mut tick = 1u64;
    loop {
        let target = Duration::from_secs(tick).min(end);
        if let Some(wait) = target.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        assert!(alive(&mut daemon), "cryowatch exited:\n{}", daemon_log());
        let now = start.elapsed();
        if let Some(rss) = proc_status_kib(pid, "VmRSS") {
            samples.push((now.as_secs_f64(), rss));
        }
        if at_half.is_none() && now >= half {
            at_half = Some((pid_cpu(pid), now, samples.last().map_or(0, |s| s.1)));
        }
        if now >= end {
            break;
        }
        tick += 1;
    }
    let cpu_end = pid_cpu(pid);
    let wall_end = start.elapsed();
    let hwm = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    let cpu_total = cpu_end;
    drop(daemon);
    let (cpu_half, wall_half, rss_half) = at_half.expect("a sample at the half");
    let rss_end = samples.last().map_or(0, |s| s.1);
    let idle_pct = 100.0 * (cpu_end - cpu_half).as_secs_f64() / (wall_end - wall_half).as_secs_f64();
    let all_pct = 100.0 * cpu_total.as_secs_f64() / wall_end.as_secs_f64();
    let stored = Store::open_read_only(&db).and_then(|s| s.count()).unwrap_or(0);
    let sensors = u64::from(DEVICES) * u64::from(REGISTERS);
    let (requests, _, exceptions) = fleet.counts.snapshot();

    println!(
        "footprint: {sensors} Modbus sensors ({DEVICES} devices × {REGISTERS} registers, poll {POLL}), `cryowatch run` ({} build), {:.0} s",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        wall_end.as_secs_f64()
    );
    println!(
        "  RSS                 {:>8.1} MB at the end   ({:.1} MB at {:.0} s; peak VmHWM {:.1} MB)",
        mb(rss_end),
        mb(rss_half),
        wall_half.as_secs_f64(),
        mb(hwm)
    );
    // A coarse trace: ten samples across the run.
    let step = (samples.len() / 10).max(1);
    let trace: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(t, kib)| format!("{t:.0}s {:.1}", mb(*kib)))
        .collect();
    println!("  RSS over time (MB)  {}", trace.join(", "));
    println!(
        "  idle CPU            {idle_pct:>8.2} % of one core   (second half, {:.0} s; whole run incl. start {all_pct:.2} %)",
        (wall_end - wall_half).as_secs_f64()
    );
    println!("  pipeline            {stored} readings stored; {requests} Modbus requests, {exceptions} exceptions");
    let text = daemon_log();
    if let Some(first) = text.lines().find(|l| !l.trim().is_empty()) {
        println!("  daemon log          {} lines, first: {first}", text.lines().count());
    }
    println!(
        "REPORT footprint_sensors={sensors} footprint_secs={:.0} footprint_rss_mb={:.1} footprint_rss_half_mb={:.1} \
         footprint_hwm_mb={:.1} footprint_idle_cpu_pct={idle_pct:.2}",
        wall_end.as_secs_f64(),
        mb(rss_end),
        mb(rss_half),
        mb(hwm)
    );
}
